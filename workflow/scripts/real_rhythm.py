"""Rule real_rhythm: the rhythm of every real record of a dataset, read once for every report that needs it."""

from pathlib import Path

from synthecg.evaluation.rhythm import split_rhythms
from synthecg.io import write_csv_atomically
from synthecg.logs import logged_job

with logged_job(snakemake.log[0]) as log:
    table = split_rhythms(Path(snakemake.input.h5), processes=snakemake.threads)
    write_csv_atomically(table, Path(snakemake.output.csv))
    log.info("%d records, %.1f %% with a detectable rhythm", len(table), 100 * table["detected"].mean())
