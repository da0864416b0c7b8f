"""Rule fidelity_report: closeness of one dataset's synthetic set to its real data."""

from pathlib import Path

from synthecg.evaluation.fidelity import compute_fidelity
from synthecg.logs import logged_job

with logged_job(snakemake.log[0]) as log:
    seeds = snakemake.params.seeds
    report = compute_fidelity(
        Path(snakemake.input.real),
        [Path(p) for p in snakemake.input.synthetic],
        dict(zip(seeds, map(Path, snakemake.input.real_models))),
        dict(zip(seeds, map(Path, snakemake.input.tstr_metrics))),
        Path(snakemake.output.json),
        Path(snakemake.input.real_rhythm),
    )
    for seed, scores in report["by_seed"].items():
        log.info("seed %s: FID %.3f, MMD %.4f, discriminative accuracy %.3f", seed, scores["fid"], scores["mmd"],
                 scores["discriminative_accuracy"])
