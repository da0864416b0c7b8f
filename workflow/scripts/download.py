"""Rule download_dataset: select and fetch one dataset's records, verified against SHA256SUMS.txt."""

from synthecg.data.download import download_dataset
from synthecg.data.labels import ClassMap
from synthecg.io import write_csv_atomically, write_json_atomically
from synthecg.logs import logged_job

with logged_job(snakemake.log[0]):
    params = snakemake.params
    # Where the files come from and how they are fetched are read from the config, not params:
    # SHA256SUMS.txt fixes every byte, so a change of mirror, workers or retries must not rerun
    # the study (params are a rerun trigger).
    settings = snakemake.config["download"]
    catalogue, manifest, location = download_dataset(
        snakemake.wildcards.source,
        base=snakemake.config["physionet_url"],
        cache_root=params.cache,
        class_map=ClassMap.from_config(params.classes),
        max_records_per_class=params.max_records_per_class,
        sampling_rate=params.sampling_rate,
        seed=params.seed,
        split_fractions=params.split_fractions,
        workers=settings["workers"],
        retries=settings["retries"],
        backoff=settings["backoff"],
    )
    write_csv_atomically(catalogue, snakemake.output.catalogue)
    write_json_atomically(manifest, snakemake.output.manifest)
    write_json_atomically(location, snakemake.output.location)
