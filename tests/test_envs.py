"""The conda environments: each rule names one, its pins agree with pyproject.toml, and it holds
every third-party package that the rule's script imports (traced by importing it for real)."""

import re
import subprocess
import sys
import tomllib

import pytest
import yaml

from conftest import REPO

# Import names that differ from their package names on PyPI.
PACKAGE_OF_MODULE = {"sklearn": "scikit-learn", "yaml": "PyYAML"}
THIRD_PARTY = {"numpy", "scipy", "pandas", "h5py", "wfdb", "requests", "tqdm", "jsonschema", "yaml", "torch",
               "sklearn", "matplotlib", "seaborn"}


def pyproject_pins() -> dict[str, str]:
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return dict(pin.split("==") for pin in dependencies)


def env_pins(path) -> dict[str, str]:
    spec = yaml.safe_load(path.read_text())
    pip = next(entry["pip"] for entry in spec["dependencies"] if isinstance(entry, dict))
    return dict(pin.split("==") for pin in pip)


def rules_with_envs() -> list[tuple[str, str, str]]:
    """(rule, conda env file, script) for every rule that runs a script."""
    found = []
    for smk in sorted((REPO / "workflow/rules").glob("*.smk")):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            name = block.split(":", 1)[0]
            conda = re.search(r'conda:\s*"\.\./\.\./(envs/[\w.]+)"', block)
            script = re.search(r'script:\s*"\.\./(scripts/[\w.]+)"', block)
            if script:
                assert conda, f"rule {name} runs a script but names no conda environment"
                found.append((name, conda.group(1), "workflow/" + script.group(1)))
    return found


def test_every_env_pins_exactly_the_versions_of_pyproject():
    pins = pyproject_pins()
    envs = sorted((REPO / "envs").glob("*.yaml"))
    assert envs
    for env in envs:
        for package, version in env_pins(env).items():
            assert pins.get(package) == version, f"{env.name}: {package}=={version}, pyproject.toml has {pins.get(package)}"


@pytest.mark.parametrize("rule,env,script", rules_with_envs(), ids=lambda v: str(v).split("/")[-1])
def test_the_env_of_each_rule_holds_what_its_script_imports(rule, env, script):
    modules = re.findall(r"^(?:from|import) (synthecg[\w.]*)", (REPO / script).read_text(), re.M)
    modules += re.findall(r"^(?:from|import) (\w+)", (REPO / script).read_text(), re.M)
    probe = ("import sys\n" + "".join(f"import {m}\n" for m in sorted(set(modules)))
             + "print(' '.join(sorted({k.split('.')[0] for k in sys.modules})))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    needed = {PACKAGE_OF_MODULE.get(m, m) for m in loaded if m in THIRD_PARTY}
    missing = needed - set(env_pins(REPO / env))
    assert not missing, f"rule {rule} ({script}) imports {sorted(missing)}, which {env} lacks"
