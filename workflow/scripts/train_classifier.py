"""Rules classifier_*: train and score one classifier of the experiment grid."""

from pathlib import Path

import torch

from synthecg.classifier.classical_augmentation import make_classical_augmentation
from synthecg.classifier.experiments import run_experiment
from synthecg.classifier.resnet1d import make_classifier_config
from synthecg.logs import logged_job

with logged_job(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    wildcards, params = snakemake.wildcards, snakemake.params
    inputs, outputs = snakemake.input, snakemake.output
    metrics = run_experiment(
        params.experiment,
        Path(inputs.real),
        Path(outputs.metrics),
        config=make_classifier_config(params.classifier),
        seed=int(wildcards.seed),
        synthetic_h5=[Path(p) for p in inputs.get("synthetic", [])],
        ratio=float(wildcards.ratio) if "ratio" in wildcards.keys() else None,
        fraction=float(wildcards.fraction) if "fraction" in wildcards.keys() else None,
        pretrained=Path(inputs.pretrained) if "pretrained" in inputs.keys() else None,
        out_model=Path(outputs.model) if "model" in outputs.keys() else None,
        classical=make_classical_augmentation(params.get("classical")),
        balance_target=params.get("balance_target"),
        device=params.device,
        extra={"generator": wildcards.get("generator", params.get("generator", "none")),
               "generator_replicate": params.get("replicate")},
    )
    if metrics.get("not_trained"):
        log.info("not trained: %s", metrics["not_trained"])
    else:  # a score is null where undefined (e.g. an empty test split)
        shown = {key: float("nan") if metrics.get(key) is None else metrics[key] for key in ("macro_f1", "accuracy")}
        log.info("macro-F1 %.3f, accuracy %.3f on %d test records", shown["macro_f1"], shown["accuracy"],
                 metrics["n_test"])
