"""Rule plot_confusion: test confusion matrices of the real-only and synthetic-only classifiers."""

from pathlib import Path

from synthecg.evaluation.plots import confusion_matrices
from synthecg.logs import logged_job

with logged_job(snakemake.log[0]):
    runs = {"real only": snakemake.input.real}
    runs |= {f"synthetic only: {g}": snakemake.input[g] for g in snakemake.params.generators}
    confusion_matrices(runs, Path(snakemake.output.png), title=f"{snakemake.wildcards.dataset}: test set")
