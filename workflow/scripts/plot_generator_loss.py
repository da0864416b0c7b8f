"""Rule plot_generator_loss: every generator's training loss in one figure."""

from itertools import product
from pathlib import Path

from synthecg.evaluation.plots import generator_losses
from synthecg.logs import logged_job

with logged_job(snakemake.log[0]):
    keys = product(snakemake.params.sources, snakemake.params.generators)  # the order of expand() in loss_curves
    generator_losses(dict(zip(keys, map(Path, snakemake.input.curves))), Path(snakemake.output.png))
