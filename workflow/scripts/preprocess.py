"""Rule preprocess_dataset: checked, labelled, split records of one dataset -> HDF5 + QC table."""

import json
from pathlib import Path

from synthecg.config import params_hash
from synthecg.data.download import verified_root
from synthecg.data.labels import ClassMap
from synthecg.data.preprocess import preprocess_dataset, read_catalogue, signal_spec
from synthecg.logs import logged_job

with logged_job(snakemake.log[0]) as log:
    params = snakemake.params
    dataset = snakemake.wildcards.source
    manifest = json.loads(Path(snakemake.input.manifest).read_text())
    location = json.loads(Path(snakemake.input.location).read_text())
    counts = preprocess_dataset(
        dataset,
        read_catalogue(snakemake.input.catalogue),
        root=verified_root(manifest, location),
        out_h5=Path(snakemake.output.h5),
        out_qc=Path(snakemake.output.qc),
        class_map=ClassMap.from_config(params.classes),
        spec=signal_spec(dataset, params.sampling_rate, params.flat_lead_std_mv),
        split_fractions=params.split_fractions,
        seed=params.seed,
        threads=snakemake.threads,
        # The release, not the URL it came from: the same bytes make the same file.
        attrs={
            "source": manifest["release"],
            "source_title": manifest["title"],
            "config_hash": params_hash(dict(params.items())),
        },
    )
    log.info("%s: records per split %s", dataset, counts)
