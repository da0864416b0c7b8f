"""Rules sample_synthetic and sample_curated: synthetic records per class from one trained
generator, in mV; sample_curated keeps only records whose rhythm fits their class."""

from pathlib import Path

import torch

from synthecg.generators.jobs import sample_to_h5
from synthecg.logs import logged_job

with logged_job(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    params = snakemake.params
    sample_to_h5(
        Path(snakemake.input.model),
        Path(snakemake.input.sidecar),
        Path(snakemake.input.h5),
        Path(snakemake.output.h5),
        per_class=params.per_class,
        ratio_to_real=params.ratio_to_real,
        batch_size=params.batch_size,
        seed=params.seed,
        device=params.device,
        curate_max_draws=getattr(params, "curate_max_draws", None),
        out_curation=Path(snakemake.output.curation) if hasattr(snakemake.output, "curation") else None,
        processes=snakemake.threads,
    )
