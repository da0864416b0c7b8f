"""The workflow stays lint-clean and formatted, as the Snakemake workflow catalog asks."""

import subprocess
import sys
from pathlib import Path

from conftest import REPO, SNAKEMAKE


def test_snakemake_lint_is_clean():
    result = subprocess.run([str(SNAKEMAKE), "--lint"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr, result.stdout + result.stderr


def test_snakefmt_leaves_the_workflow_unchanged():
    snakefmt = Path(sys.executable).with_name("snakefmt")
    result = subprocess.run(
        [str(snakefmt), "--check", "Snakefile", "workflow/"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_every_job_rule_declares_its_memory():
    """A cluster grants a job the memory its rule asks (profiles/slurm); a rule that asks none gets
    the site's default, which the releases' size can exceed (benchmarks/scale_rehearsal.py --jobs)."""
    import re

    missing = []
    for path in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"^(?=rule \w+:)", path.read_text(), flags=re.M)[1:]:
            name = re.match(r"rule (\w+):", block).group(1)
            if not re.search(r"^\s+mem_mb=", block, flags=re.M):
                missing.append(f"{path.name}: {name}")
    assert not missing, f"rules without resources: mem_mb: {missing}"
