"""Rules plot_transfer and plot_augmentation: figures from the summary tables (cells, comparisons)."""

from pathlib import Path

import pandas as pd

from synthecg.evaluation import plots
from synthecg.logs import logged_job

FIGURES = {"plot_transfer": plots.transfer_curves, "plot_augmentation": plots.augmentation_gains}

with logged_job(snakemake.log[0]):
    table = pd.read_csv(snakemake.input.table)
    FIGURES[snakemake.rule](table, Path(snakemake.output.png), metric=snakemake.params.metric)
