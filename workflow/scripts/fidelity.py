"""Rule fidelity: closeness of one dataset's synthetic set to its real data."""

from pathlib import Path

from synthecg.evaluation.fidelity import compute_fidelity
from synthecg.logs import logged_job

with logged_job(snakemake.log[0]) as log:
    report = compute_fidelity(
        Path(snakemake.input.real),
        [Path(p) for p in snakemake.input.synthetic],
        Path(snakemake.input.real_model),
        Path(snakemake.input.tstr_metrics),
        Path(snakemake.output.json),
        seed=snakemake.params.seed,
    )
    log.info("FID %.3f, MMD %.4f, discriminative accuracy %.3f", report["fid"], report["mmd"],
             report["discriminative_accuracy"])
