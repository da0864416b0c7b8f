"""Rule merge_datasets: the union of the preprocessed datasets, split by split."""

from pathlib import Path

from synthecg.data.preprocess import merge_datasets
from synthecg.logs import logged_job

with logged_job(snakemake.log[0]) as log:
    inputs = {name: Path(path) for name, path in snakemake.input.items()}
    counts = merge_datasets(inputs, Path(snakemake.output.h5))
    log.info("merged %s: records per split %s", list(inputs), counts)
