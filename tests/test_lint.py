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
