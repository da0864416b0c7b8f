"""Rule fidelity_report: closeness of one dataset's synthetic set to its real data, each measure beside its floor."""

from pathlib import Path

from synthecg.evaluation.fidelity import compute_fidelity
from synthecg.logs import logged_job


def described(name, measure):
    if measure is None:
        return f"{name}: too few records"
    low, high = measure.get("floor_interval") or (float("nan"), float("nan"))
    p = f", p {measure['p']:.3g}" if measure.get("p") is not None else ""
    return f"{name} {measure['value']:.4g} (floor {measure['floor']:.4g} [{low:.4g}, {high:.4g}]{p})"


with logged_job(snakemake.log[0]) as log:
    seeds = snakemake.params.seeds
    report = compute_fidelity(
        Path(snakemake.input.real),
        [Path(p) for p in snakemake.input.synthetic],
        dict(zip(seeds, map(Path, snakemake.input.real_models))),
        dict(zip(seeds, map(Path, snakemake.input.tstr_metrics))),
        Path(snakemake.output.json),
        Path(snakemake.input.real_rhythm),
        Path(snakemake.input.synthetic_rhythm),
    )
    for seed, scores in report["by_seed"].items():
        log.info("seed %s: %s", seed, "; ".join(described(m, scores[m]) for m in ("fid", "mmd2", "linear_probe_score")))
    log.info("signals: %s", "; ".join(described(m, v) for m, v in report["signals"].items()))
    privacy = report["privacy"]
    log.info("privacy: %d exact copies of training records; %s", privacy["exact_copies"]["value"],
             "; ".join(described(m, privacy.get(m)) for m in ("dcr_share", "dcr_tail_share")))
