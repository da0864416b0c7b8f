"""Rule plot_samples: a real and a synthetic 12-lead record per class, side by side."""

from pathlib import Path

from synthecg.evaluation.plots import sample_grid
from synthecg.logs import logged_job

with logged_job(snakemake.log[0]):
    sample_grid(Path(snakemake.input.real), Path(snakemake.input.synthetic), Path(snakemake.output.png),
                seed=snakemake.params.seed)
