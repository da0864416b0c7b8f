"""The README and docs/ point at things that exist, and the report's front page states the run's status.

Each checker takes the repository root, so that the tests can also run it on a copy with something
broken planted in it and see it fail.
"""

import re
import shutil
import subprocess
import types
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
INLINE_CODE = re.compile(r"`([^`\n]+)`")


def documents(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def code_spans(text: str) -> list[str]:
    """Fenced blocks and inline code: where commands, targets and paths are named."""
    blocks = FENCE.findall(text)
    return blocks + INLINE_CODE.findall(FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for line in FENCE.sub("", path.read_text()).splitlines():
        match = re.match(r"#{1,6} (.+)", line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            found.add(base if count == 0 else f"{base}-{count}")
            seen[base] = count + 1
    return found


def broken_links(root: Path) -> list[str]:
    """Relative links (and images) in README.md and docs/*.md whose file, or heading, is missing."""
    broken = []
    for document in documents(root):
        for match in LINK.finditer(FENCE.sub("", document.read_text())):
            target = match.group(1) or match.group(2)
            if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            resolved = (document.parent / path).resolve() if path else document
            name = f"{document.relative_to(root)}: {target}"
            if not resolved.exists():
                broken.append(f"{name} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                broken.append(f"{name} (no such heading)")
    return broken


def make_targets(root: Path) -> set[str]:
    return set(re.findall(r"^([\w-]+):", (root / "Makefile").read_text(), re.M))


def named_make_targets(root: Path) -> dict[str, str]:
    """`make TARGET` in the docs' code, target -> the document that names it."""
    named = {}
    for document in documents(root):
        for span in code_spans(document.read_text()):
            for target in re.findall(r"(?:^|[\s;&(])make ([a-z][\w-]*)", span, re.M):
                named.setdefault(target, document.name)
    return named


def rules(root: Path) -> set[str]:
    sources = [root / "Snakefile", *sorted((root / "workflow" / "rules").glob("*.smk"))]
    return {name for source in sources for name in re.findall(r"^(?:rule|checkpoint) (\w+):", source.read_text(), re.M)}


def named_rules(root: Path) -> dict[str, str]:
    """Snakemake targets the docs name: `SNAKEMAKE_ARGS=<target>`, `snakemake <target>`, `--forcerun <rule>`,
    and the first column of tables headed "target". Paths (results/...) are files, not rules."""
    named = {}

    def add(word, document):
        if word and not word.startswith("-") and "/" not in word and "." not in word and "<" not in word:
            named.setdefault(word, document.name)

    for document in documents(root):
        text = document.read_text()
        for span in code_spans(text):
            for word in re.findall(r"SNAKEMAKE_ARGS=\"?([^\s\"]+)", span):
                add(word, document)
            for word in re.findall(r"(?:^|[\s/])snakemake ((?:[\w-]+ ?)+)", span, re.M):
                add(word.split()[0], document)
            for word in re.findall(r"--forcerun (\w+)", span):
                add(word, document)
        in_target_table = False
        for line in text.splitlines():
            if line.startswith("| target |"):
                in_target_table = True
            elif not line.startswith("|"):
                in_target_table = False
            elif in_target_table and not line.startswith("|---"):
                for word in INLINE_CODE.findall(line.split("|")[1]):
                    add(word, document)
    return named


def named_benchmarks(root: Path) -> dict[str, str]:
    named = {}
    for document in documents(root):
        for script in re.findall(r"benchmarks/[\w-]+\.py", document.read_text()):
            named.setdefault(script, document.name)
    return named


def test_every_relative_link_in_the_docs_resolves():
    assert broken_links(REPO) == []


def test_every_make_target_the_docs_name_is_in_the_makefile():
    named = named_make_targets(REPO)
    assert {"run", "test"} <= set(named)
    assert {t: doc for t, doc in named.items() if t not in make_targets(REPO)} == {}


def test_every_snakemake_target_the_docs_name_is_a_rule():
    named = named_rules(REPO)
    assert {"download", "preprocess", "generators", "synthetic", "classifiers", "fidelity", "tables", "plots"} <= set(named)
    assert {r: doc for r, doc in named.items() if r not in rules(REPO)} == {}


def test_every_benchmark_the_docs_name_exists():
    named = named_benchmarks(REPO)
    assert len(named) >= 9  # each script in benchmarks/ is described with its figures
    assert {s: doc for s, doc in named.items() if not (REPO / s).is_file()} == {}


def committed_benchmarks() -> list[str]:
    """benchmarks/*.py under version control (a script still being written is not held to this yet)."""
    listed = subprocess.run(["git", "ls-files", "benchmarks/*.py"], cwd=REPO, capture_output=True, text=True)
    return sorted(listed.stdout.split()) if listed.returncode == 0 else \
        sorted(f"benchmarks/{p.name}" for p in (REPO / "benchmarks").glob("*.py"))


def test_every_committed_benchmark_script_is_documented_with_its_figures():
    assert [s for s in committed_benchmarks() if s not in named_benchmarks(REPO)] == [], \
        "describe each benchmark, its command and its latest figures in docs/benchmarks.md"


def test_each_docs_page_opens_with_a_title_and_a_short_summary():
    for page in sorted((REPO / "docs").glob("*.md")):
        lines = page.read_text().splitlines()
        summary = lines[2:lines.index("", 2)] if "" in lines[2:] else lines[2:]
        assert lines[0].startswith("# ") and lines[1] == "" and 1 <= len(summary) <= 3, page.name


@pytest.fixture
def repo_copy(tmp_path) -> Path:
    """The docs copied, everything they point at linked: a repository to break on purpose."""
    for item in REPO.iterdir():
        if item.name in ("README.md", "docs"):
            continue
        if not item.name.startswith("."):
            (tmp_path / item.name).symlink_to(item)
    shutil.copy(REPO / "README.md", tmp_path / "README.md")
    shutil.copytree(REPO / "docs", tmp_path / "docs", symlinks=True)
    return tmp_path


def test_the_checkers_find_a_planted_broken_link_target_rule_and_benchmark(repo_copy):
    assert broken_links(repo_copy) == []
    with open(repo_copy / "docs" / "data.md", "a") as page:
        page.write("\nSee [the missing page](missing.md), [a missing heading](generators.md#no-such-heading),\n"
                   "`make deploy`, `make run SNAKEMAKE_ARGS=train_everything` and `benchmarks/no_such.py`.\n")
    assert broken_links(repo_copy) == ["docs/data.md: missing.md (no such file)",
                                       "docs/data.md: generators.md#no-such-heading (no such heading)"]
    assert "deploy" in set(named_make_targets(repo_copy)) - make_targets(repo_copy)
    assert "train_everything" in set(named_rules(repo_copy)) - rules(repo_copy)
    assert not (repo_copy / "benchmarks/no_such.py").exists() and "benchmarks/no_such.py" in named_benchmarks(repo_copy)


def render_front_page(config: dict, files: list) -> str:
    """workflow/report/workflow.rst as `snakemake --report` renders it (snakemake.report: the same Jinja
    environment, the config, the report's file records; docutils to HTML)."""
    from docutils.core import publish_parts
    from jinja2 import Environment

    snakemake = types.SimpleNamespace(config=config)
    text = Environment(trim_blocks=True, lstrip_blocks=True).from_string(
        (REPO / "workflow" / "report" / "workflow.rst").read_text()).render(snakemake=snakemake, categories={},
                                                                            files=files)
    return publish_parts(text, writer="html")["html_body"]


def test_the_report_front_page_says_which_generators_pass_the_rhythm_check(tmp_path):
    quality = tmp_path / "quality.csv"
    quality.write_text("dataset,generator,class,n_synthetic,detectable,fits_class,real_fits_class,"
                       "shuffled_label_floor,generator_label_floor,amplitude_ratio,limb_lead_residual,passes\n"
                       "ptbxl,diffwave,SR,100,0.0,0.0,0.76,0.68,0.0,1.4,3e-08,False\n"
                       "ptbxl,diffwave,SB,100,0.0,0.0,0.91,0.14,0.0,1.4,3e-08,False\n"
                       "ptbxl,timediffusion,SR,100,0.96,0.76,0.76,0.68,0.25,1.0,3e-08,True\n"
                       "ptbxl,timediffusion,AFIB,100,0.89,0.81,0.83,0.10,0.09,1.0,3e-08,False\n")
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    html = render_front_page(config, [types.SimpleNamespace(path=tmp_path / "other.png"),
                                      types.SimpleNamespace(path=quality)])
    assert "ptbxl, diffwave: fails in every class (SR, SB)." in html
    assert "ptbxl, timediffusion: passes in SR; fails in AFIB." in html
    assert "One classifier seed" in html and "At most 80 records per class" in html

    config["experiments"]["seeds"] = [0, 1, 2]
    html = render_front_page(config, [])  # a partial run: no quality table in the report
    assert "holds no quality table" in html and "3 classifier seeds" in html and "ptbxl, diffwave" not in html
