"""The study's experiments and their controls: which records a classifier trains on, and scoring it.

- `real`: the real training split;
- `shuffled`: the real training split with its labels permuted (seeded): the floor a classifier
  must beat to have learnt anything;
- `augment`: the real training split plus `ratio` x (real count) synthetic records per class;
- `classical`: the same, with classically augmented real records instead of synthetic ones
  (classical_augmentation.py): the cheap gain a generator has to beat;
- `balance`: the real training split plus synthetic records that top every class up to the
  majority class's count (or `balance_target`): a practitioner's use of a class-conditional generator;
- `synthetic`: synthetic records only, tested on real (TSTR); its model is the pretrained one;
- `finetune`: the `synthetic` model, fine-tuned on a stratified fraction of the real training
  split; the fractions are nested (the 10 % subset holds the 5 % one) for a given seed;
- `scratch`: a randomly initialised model trained on exactly the records `finetune` gets at that
  fraction and seed: transfer helps where `finetune` beats `scratch`.

Every run validates on the real validation split (early stopping) and is scored on the same
real test split; a run on the merged set is also scored on each source's part of it (`by_source`),
which holds exactly the records of that source's own test split, so "merging helps" compares
like with like. Synthetic records (stored in mV) are normalised with the real set's statistics.
"""

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from synthecg.checkpoints import load_checkpoint, save_checkpoint
from synthecg.classifier.classical_augmentation import (
    ClassicalAugmentation,
    augment_records,
    classical_indices,
)
from synthecg.classifier.resnet1d import ClassifierConfig, build_classifier, make_classifier_config
from synthecg.classifier.training import fit, predict_probabilities
from synthecg.data.store import (
    load_labels,
    load_rows,
    load_split,
    load_synthetic,
    metadata,
    records_digest,
    synthetic_labels,
)
from synthecg.errors import PipelineError
from synthecg.evaluation.metrics import classification_metrics
from synthecg.generators.training import pick_device
from synthecg.io import write_json_atomically

log = logging.getLogger("synthecg")
EXPERIMENTS = ("real", "shuffled", "augment", "classical", "balance", "synthetic", "finetune", "scratch")


def per_class_take(y: np.ndarray, counts: Mapping[int, int], seed: int) -> np.ndarray:
    """Indices of `counts[c]` records of each class c, in a seeded order (all there are, if fewer)."""
    rng = np.random.default_rng(seed)
    chosen = []
    for c, n in sorted(counts.items()):
        pool = np.flatnonzero(y == c)
        if n > len(pool):
            log.warning("class %d: %d records asked for, only %d available; using all", c, n, len(pool))
        chosen.append(rng.permutation(pool)[:n])
    return np.sort(np.concatenate(chosen)) if chosen else np.array([], dtype=int)


def augmentation_indices(real_y: np.ndarray, synthetic_y: np.ndarray, ratio: float, seed: int) -> np.ndarray:
    """round(ratio x real count) synthetic records of each class."""
    counts = {int(c): round(ratio * int((real_y == c).sum())) for c in np.unique(real_y)}
    return per_class_take(synthetic_y, counts, seed)


def balance_indices(real_y: np.ndarray, synthetic_y: np.ndarray, target: int | None, seed: int) -> np.ndarray:
    """Synthetic records that bring each class of the real training split up to `target` records
    (None: the largest class's count); classes already there get none."""
    counts = np.bincount(real_y)
    target = int(counts.max()) if target is None else int(target)
    wanted = {int(c): max(0, target - int(counts[c])) for c in np.unique(real_y)}
    return per_class_take(synthetic_y, wanted, seed)


def nested_fraction_indices(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A stratified fraction of the records: per class, a prefix of one seeded order, so that a
    larger fraction always contains a smaller one. At least one record per class when f > 0."""
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(y):
        pool = rng.permutation(np.flatnonzero(y == c))
        n = 0 if fraction == 0 else max(1, math.ceil(fraction * len(pool) - 1e-9))
        chosen.append(pool[:n])
    return np.sort(np.concatenate(chosen)) if chosen else np.array([], dtype=int)


def run_experiment(
    experiment: str,
    real_h5: Path,
    out_metrics: Path,
    *,
    config: ClassifierConfig,
    seed: int,
    synthetic_h5: Sequence[Path] = (),
    ratio: float | None = None,
    fraction: float | None = None,
    pretrained: Path | None = None,
    out_model: Path | None = None,
    classical: ClassicalAugmentation | None = None,
    balance_target: int | None = None,
    device: str = "auto",
    extra: Mapping | None = None,
) -> dict:
    if experiment not in EXPERIMENTS:
        raise PipelineError(f"unknown experiment {experiment!r}; choose from {EXPERIMENTS}")
    meta = metadata(real_h5)
    classes = meta["classes"]
    n_leads = len(meta["leads"])
    val, test = (load_split(real_h5, split, normalised=True) for split in ("val", "test"))
    train_y = load_labels(real_h5, "train")
    torch_device = pick_device(device)
    fs = float(meta["fs"])  # seconds of crops and windows -> samples
    torch.manual_seed(seed)
    model = build_classifier(config, n_leads, len(classes))
    learning_rate, keep_initial = config.learning_rate, False
    # Each arm reads only the records it trains on, straight into the array it trains on: at the
    # releases' size a second copy of the training set would double a run's memory.
    if experiment in ("real", "shuffled"):
        x = load_split(real_h5, "train", normalised=True)["x"]
        y = train_y if experiment == "real" else np.random.default_rng(seed).permutation(train_y)
    elif experiment == "classical":
        index = classical_indices(train_y, ratio, seed)
        x = np.empty((len(train_y) + len(index), *val["x"].shape[1:]), np.float32)
        real_x = load_rows(real_h5, "train", np.arange(len(train_y)), normalised=True, out=x[: len(train_y)])
        augment_records(real_x, fs, classical or ClassicalAugmentation(), np.random.default_rng(seed), rows=index,
                        out=x[len(train_y):])
        y = np.concatenate([train_y, train_y[index]])
    elif experiment in ("augment", "balance"):
        synthetic_y = synthetic_labels(synthetic_h5, meta)
        index = (augmentation_indices(train_y, synthetic_y, ratio, seed) if experiment == "augment"
                 else balance_indices(train_y, synthetic_y, balance_target, seed))
        x = np.empty((len(train_y) + len(index), *val["x"].shape[1:]), np.float32)
        load_rows(real_h5, "train", np.arange(len(train_y)), normalised=True, out=x[: len(train_y)])
        load_synthetic(synthetic_h5, meta, rows=index, out=x[len(train_y):])
        y = np.concatenate([train_y, synthetic_y[index]])
    elif experiment == "synthetic":
        x, y = load_synthetic(synthetic_h5, meta)
    else:  # finetune, scratch: the same nested real subset
        index = nested_fraction_indices(train_y, fraction, seed)
        x, y = load_rows(real_h5, "train", index, normalised=True), train_y[index]
        if experiment == "finetune":
            saved = load_checkpoint(pretrained, what="the pretrained classifier",
                                    remedy="rerun the synthetic run that makes it")
            if saved.get("not_trained"):
                return _untrained_run(out_metrics, experiment, meta, seed, config, test, extra,
                                      f"its pretrained model ({pretrained}) was not trained: {saved['not_trained']}")
            model.load_state_dict(saved["model"])
            learning_rate, keep_initial = config.finetune_learning_rate, config.finetune_keep_pretrained
    if len(y) == 0 and experiment == "synthetic":
        # A curated set none of whose records fit their class: nothing to pretrain on. The run says
        # so (its scores are null, the tables leave it out) instead of stopping the grid; its model
        # file is marked, so fine-tuning it says so too rather than fine-tuning random weights.
        reason = f"the synthetic set ({', '.join(map(str, synthetic_h5))}) holds no records"
        if out_model is not None:
            save_checkpoint({"model": model.state_dict(), "config": asdict(config), "classes": classes,
                             "n_leads": n_leads, "not_trained": reason}, out_model)
        return _untrained_run(out_metrics, experiment, meta, seed, config, test, extra, reason)
    if len(y) == 0 and experiment not in ("finetune", "scratch"):
        raise PipelineError(f"{real_h5}: no training records for the {experiment} experiment")
    if len(y):
        result = fit(model, x, y, val["x"], val["y"], config, learning_rate=learning_rate, seed=seed,
                     device=torch_device, fs=fs, keep_initial=keep_initial)
        fit_summary = {"epochs": result.epochs, "best_epoch": result.best_epoch,
                       "best_val_macro_f1": result.best_val_macro_f1, "best_val_score": result.best_val_score,
                       "stopped_by": result.stopped_by,
                       "wall_time_s": round(result.wall_time_s, 3), "history": result.history}
    else:  # fraction 0: the pretrained (finetune) or untrained (scratch) model as it is
        model.to(torch_device)
        untouched = "pretrained" if experiment == "finetune" else "randomly initialised"
        fit_summary = {"epochs": 0, "best_epoch": 0, "best_val_macro_f1": None,
                       "stopped_by": f"fraction 0: {untouched} model, not trained", "wall_time_s": 0.0, "history": []}
    probabilities = predict_probabilities(model, test["x"], torch_device, windows=config.eval_windows(fs))
    metrics = classification_metrics(test["y"], probabilities, classes)
    # Which test records, in which order: the tables pair runs scored on the same ones.
    metrics["test_records_sha256"] = records_digest(test["record_id"])
    sources = sorted(set(test["source"].tolist()))
    if meta.get("dataset") == "merged":  # each source's part of the test split, to compare with the single-dataset runs
        metrics["by_source"] = {}
        metrics["test_sources"] = test["source"].tolist()  # per test record: the tables resample each part
        for source in sources:
            part = test["source"] == source
            scores = classification_metrics(test["y"][part], probabilities[part], classes)
            metrics["by_source"][source] = {key: scores[key] for key in
                                            ("n_test", "macro_f1", "macro_auroc", "accuracy", "balanced_accuracy",
                                             "per_class_f1", "missing", "resampled")}
            metrics["by_source"][source]["test_records_sha256"] = records_digest(test["record_id"][part])
    if experiment == "real":  # the floor of predicting the training split's largest class for every record
        majority = np.zeros_like(probabilities)
        majority[:, np.bincount(train_y, minlength=len(classes)).argmax()] = 1.0
        floor = classification_metrics(test["y"], majority, classes)
        metrics["majority_class_baseline"] = {key: floor[key] for key in ("macro_f1", "macro_auroc", "accuracy", "balanced_accuracy")}
    metrics.update(fit_summary)
    metrics.update({
        "experiment": experiment, "dataset": meta["dataset"], "seed": seed, "device": str(torch_device),
        "train_records_per_class": {name: int((y == i).sum()) for i, name in enumerate(classes)},
        "classifier": asdict(config), **(extra or {}),
    })
    if out_model is not None:
        save_checkpoint({"model": model.state_dict(), "config": asdict(config), "classes": classes,
                         "n_leads": n_leads}, out_model)
    write_json_atomically(metrics, out_metrics)
    return metrics


def _untrained_run(out_metrics: Path, experiment: str, meta: Mapping, seed: int, config: ClassifierConfig,
                   test: Mapping, extra: Mapping | None, reason: str) -> dict:
    """metrics.json of a run that had nothing to train on: null scores and why."""
    log.warning("%s run not trained: %s", experiment, reason)
    metrics = {key: None for key in ("macro_f1", "macro_auroc", "accuracy", "balanced_accuracy")}
    metrics.update({
        "not_trained": reason, "n_test": len(test["y"]), "experiment": experiment, "dataset": meta["dataset"], "seed": seed,
        "test_records_sha256": records_digest(test["record_id"]), "epochs": 0, "best_epoch": 0,
        "stopped_by": f"not trained: {reason}", "train_records_per_class": {name: 0 for name in meta["classes"]},
        "classifier": asdict(config), **(extra or {}),
    })
    write_json_atomically(metrics, out_metrics)
    return metrics


def load_classifier(path: Path, device: torch.device | None = None) -> nn.Module:
    """A saved classifier in eval mode; its settings (protocol included) as `model.config`."""
    saved = load_checkpoint(path, what="the classifier", remedy="rerun the classifier run that made it")
    settings = saved["config"]
    if "architecture" not in settings:  # saved before resnet1d_wang: Wang et al. (2017) on whole records
        settings = {**settings, "architecture": "wang2017_resnet", "train_crop_seconds": None,
                    "eval_window_seconds": None}
    config = make_classifier_config(settings)
    model = build_classifier(config, saved["n_leads"], len(saved["classes"]))
    model.load_state_dict(saved["model"])
    return model.to(device or "cpu").eval()
