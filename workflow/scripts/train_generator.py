"""Rule train_generator: one generator on one dataset's training split, resumable."""

from pathlib import Path

import torch

from synthecg.generators.jobs import fit_generator
from synthecg.logs import logged_job

with logged_job(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    params = snakemake.params
    output = snakemake.output
    sidecar = fit_generator(
        Path(snakemake.input.h5),
        snakemake.wildcards.generator,
        params.settings,
        out_model=Path(output.model),
        out_sidecar=Path(output.sidecar),
        out_curve_csv=Path(output.curve_csv),
        out_curve_png=Path(output.curve_png),
        checkpoint_path=Path(params.checkpoint),
        seed=params.seed,
        min_records_per_class=params.min_records_per_class,
        on_small_class=params.on_small_class,
        checkpoint_every=params.checkpoint_every,
        log_every=params.log_every,
        class_balance=params.class_balance,
        leads=params.leads,
        device=params.device,
        augmentation=params.augmentation,
    )
    log.info("trained in %.1f s on %s, final loss %s", sidecar["wall_time_s"], sidecar["device"], sidecar["final_loss"])
