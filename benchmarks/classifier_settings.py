r"""Classifier settings measured on real records: the real-only classifier over seeds, one row per variant.

The learning rates and class weighting in config.yaml and presets/cpu.yaml were chosen with it:

    # the quick run's data (config.yaml: 80 records per class), then its classifier at four settings
    .venv/bin/snakemake preprocess --config physionet_url=../shared/data/physionet
    .venv/bin/python benchmarks/classifier_settings.py --data results/data/ptbxl.h5 --seeds 0 1 2 \
        --variant "lr 1e-3, 30 epochs" learning_rate=1e-3 max_epochs=30 patience=30 \
        --variant "lr 3e-3, 40 epochs" learning_rate=3e-3 max_epochs=40 patience=40 \
        --variant "lr 3e-3, 80 epochs" learning_rate=3e-3 max_epochs=80 patience=80 \
        --variant "configured (config.yaml)" --shuffled
    # every record of the mirror, the CPU preset's classifier with each class weighting
    .venv/bin/snakemake preprocess --configfile presets/cpu.yaml --config physionet_url=../shared/data/physionet
    .venv/bin/python benchmarks/classifier_settings.py --config presets/cpu.yaml --data results/data/ptbxl.h5 \
        --seeds 0 1 --variant "plain, lr 1e-3" class_weighting=none learning_rate=1e-3 \
        --variant "plain, lr 3e-3" class_weighting=none --variant "weighted loss" class_weighting=loss \
        --variant "balanced batches" class_weighting=sampler
    # early stopping on validation macro-F1 (the default) or macro-AUROC: the quick data (6 seeds),
    # then the CPU preset's
    .venv/bin/python benchmarks/classifier_settings.py --data results/data/ptbxl.h5 --seeds 0 1 2 3 4 5 \
        --variant "select by F1" early_stopping_metric=macro_f1 --variant "select by AUROC" early_stopping_metric=macro_auroc
    .venv/bin/python benchmarks/classifier_settings.py --config presets/cpu.yaml --data results/data/ptbxl.h5 \
        --seeds 0 1 --variant "select by F1" early_stopping_metric=macro_f1 \
        --variant "select by AUROC" early_stopping_metric=macro_auroc

Each variant starts from the `classifier` section of config.yaml merged with --config, overrides
the given fields (values parsed as YAML), and trains the pipeline's `real` experiment
(`synthecg.classifier.experiments.run_experiment`) once per seed on --threads CPU threads. It
prints macro-F1 and macro-AUROC per seed with their mean ± std, beside the majority-class floor
(every test record called the largest training class) and, with --shuffled, the shuffled-label
floor trained with the same settings. --out keeps every run's scores as JSON.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from synthecg.classifier.experiments import run_experiment  # noqa: E402
from synthecg.classifier.resnet1d import make_classifier_config  # noqa: E402
from synthecg.config import parse_overrides, read_config  # noqa: E402

SCORES = ("macro_f1", "macro_auroc")


def train(experiment: str, data: Path, settings: dict, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        metrics = run_experiment(experiment, data, Path(scratch) / "metrics.json",
                                 config=make_classifier_config(settings), seed=seed, device="cpu")
    run = {"seed": seed, "minutes": round((time.perf_counter() - started) / 60, 2),
           "epochs": metrics["epochs"], "best_epoch": metrics["best_epoch"],
           **{score: metrics[score] for score in SCORES}}
    if experiment == "real":
        run["majority_class"] = {score: metrics["majority_class_baseline"][score] for score in SCORES}
    return run


def mean_std(values: list) -> str:
    values = np.array([np.nan if v is None else v for v in values], float)
    std = f" ± {np.nanstd(values, ddof=1):.3f}" if np.isfinite(values).sum() > 1 else ""
    return f"{np.nanmean(values):.3f}{std}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a preprocessed dataset (results/data/<dataset>.h5)")
    parser.add_argument("--config", type=Path, help="merged over config.yaml (e.g. presets/cpu.yaml)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variant", nargs="+", action="append", metavar=("NAME", "KEY=VALUE"),
                        help="a name and classifier fields to override; repeat for more variants")
    parser.add_argument("--shuffled", action="store_true", help="also train each variant on shuffled labels")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="every run's scores as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = dict(read_config(REPO / "config.yaml", args.config)["classifier"])
    variants = {name: {**base, **parse_overrides(pairs)} for name, *pairs in (args.variant or [["configured"]])}
    experiments = ("real", "shuffled") if args.shuffled else ("real",)
    results = {}
    print(f"{args.data}: real-only classifier, seeds {args.seeds}; mean ± std over seeds")
    print(f"{'variant':<28} {'experiment':<9} {'macro-F1':>15} {'macro-AUROC':>15} {'minutes':>8}  epochs (best) per seed")
    for name, settings in variants.items():
        results[name] = {"settings": settings}
        for experiment in experiments:
            runs = [train(experiment, args.data, settings, seed) for seed in args.seeds]
            results[name][experiment] = runs
            print(f"{name:<28} {experiment:<9} {mean_std([r['macro_f1'] for r in runs]):>15} "
                  f"{mean_std([r['macro_auroc'] for r in runs]):>15} {sum(r['minutes'] for r in runs):>8.1f}  "
                  + " ".join(f"{r['epochs']} ({r['best_epoch']})" for r in runs), flush=True)
        majority = results[name]["real"][0]["majority_class"]
        print(f"{'':<28} {'majority':<9} {majority['macro_f1']:>15.3f} "
              f"{'–' if majority['macro_auroc'] is None else format(majority['macro_auroc'], '.3f'):>15}")
    if args.out:
        args.out.write_text(json.dumps({"data": str(args.data), "seeds": args.seeds, "variants": results}, indent=1))


if __name__ == "__main__":
    main()
