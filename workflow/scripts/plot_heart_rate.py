"""Rule plot_heart_rate: heart rate per class, real against each generator."""

from pathlib import Path

from synthecg.evaluation.plots import heart_rate_ranges
from synthecg.logs import logged_job

with logged_job(snakemake.log[0]):
    heart_rate_ranges([Path(p) for p in snakemake.input.reports], Path(snakemake.output.png))
