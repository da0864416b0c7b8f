"""Rule merged_rhythm: the merged set's rhythm table from its sources' (real_rhythm), no record read again."""

from pathlib import Path

import pandas as pd

from synthecg.data.store import metadata
from synthecg.evaluation.rhythm import merged_split_rhythms
from synthecg.io import write_csv_atomically
from synthecg.logs import logged_job

with logged_job(snakemake.log[0]) as log:
    meta = metadata(Path(snakemake.input.h5))
    # As strings, so that each value is written back as its source's job wrote it.
    tables = {name: pd.read_csv(snakemake.input[name], dtype=str, keep_default_na=False) for name in meta["merged_from"]}
    table = merged_split_rhythms(tables, meta)
    write_csv_atomically(table, Path(snakemake.output.csv))
    log.info("%d records from %s", len(table), ", ".join(meta["merged_from"]))
