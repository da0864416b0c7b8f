"""Rule plot_fidelity: the closeness measures of every dataset and generator as one heatmap."""

from pathlib import Path

from synthecg.evaluation.plots import fidelity_heatmap
from synthecg.evaluation.tables import collect_fidelity, fidelity_summary
from synthecg.logs import logged_job

with logged_job(snakemake.log[0]):
    fidelity_heatmap(fidelity_summary(collect_fidelity(snakemake.input.reports)), Path(snakemake.output.png))
