"""Rules plot_transfer and plot_augmentation: figures from the long table of classifier runs."""

from pathlib import Path

import pandas as pd

from synthecg.evaluation import plots
from synthecg.logs import logged_job

FIGURES = {"plot_transfer": plots.transfer_curves, "plot_augmentation": plots.augmentation_gains}

with logged_job(snakemake.log[0]):
    runs = pd.read_csv(snakemake.input.runs)
    FIGURES[snakemake.rule](runs, Path(snakemake.output.png), metric=snakemake.params.metric)
