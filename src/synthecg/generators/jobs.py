"""The two generator jobs of the workflow: train one generator on one dataset, and sample it.

Training writes `model.pt` (weights and what rebuilds the model), `model.json` (settings, steps,
seed, final loss, wall time, device, skipped classes), and the loss curve as CSV and PNG.
Sampling writes a synthetic set in the layout of the real data (`synthecg.data.store`), in mV.
"""

import hashlib
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from synthecg.config import params_hash
from synthecg.data.leads import INDEPENDENT_LEADS, LEAD_CHOICES, complete_leads, lead_indices
from synthecg.data.store import DatasetWriter, load_split, metadata
from synthecg.errors import PipelineError
from synthecg.generators.base import build, make_config
from synthecg.generators.training import RecordAugmentation, load_generator, pick_device, save_generator, train
from synthecg.io import write_csv_atomically, write_json_atomically

log = logging.getLogger("synthecg")


def classes_to_train(
    dataset: str, classes: list[str], counts: Mapping[str, int], min_records: int, on_small_class: str
) -> list[str]:
    """The classes with enough training records; the others fail the job or are skipped, as configured."""
    small = [name for name in classes if counts.get(name, 0) < min_records]
    for name in small:
        message = (
            f"{dataset}: class {name} has {counts.get(name, 0)} training records, fewer than "
            f"generators.min_records_per_class = {min_records}"
        )
        if on_small_class == "fail":
            raise PipelineError(f"{message}; set generators.on_small_class: skip to train without it")
        log.warning("%s; skipped (generators.on_small_class: skip), so it gets no synthetic records", message)
    return [name for name in classes if name not in small]


def fit_generator(
    real_h5: Path,
    name: str,
    overrides: Mapping,
    *,
    out_model: Path,
    out_sidecar: Path,
    out_curve_csv: Path,
    out_curve_png: Path,
    checkpoint_path: Path,
    seed: int,
    min_records_per_class: int = 1,
    on_small_class: str = "skip",
    checkpoint_every: int = 500,
    log_every: int = 50,
    class_balance: float = 1.0,
    leads: str = "independent",
    device: str = "auto",
    augmentation: Mapping | None = None,
) -> dict:
    """Train generator `name` on the training split of `real_h5` and write the model, its sidecar and loss curve.

    `leads`: "independent" trains on the 8 independent leads (the other 4 are derived when
    sampling), "all" on all 12. `class_balance`: see `training.record_weights`. `augmentation`:
    the fields of `training.RecordAugmentation` (config key generators.training.augmentation).
    """
    augment = RecordAugmentation(**(augmentation or {}))
    meta = metadata(real_h5)
    dataset, classes = meta["dataset"], meta["classes"]
    config = make_config(name, overrides)
    counts = meta["records_per_class"]["train"]
    kept = classes_to_train(dataset, classes, counts, min_records_per_class, on_small_class)
    if not kept:
        raise PipelineError(f"{dataset}: no class has enough training records to train {name}")
    if leads not in LEAD_CHOICES:
        raise PipelineError(f"config key generators.leads: {leads!r}; choose from {sorted(LEAD_CHOICES)}")
    generated = list(LEAD_CHOICES[leads])
    train_set = load_split(real_h5, "train", normalised=True)
    keep = np.isin(train_set["y"], [classes.index(c) for c in kept])
    # Copied only where a class or lead is left out: at the releases' size a copy is gigabytes.
    train_x = train_set["x"] if keep.all() else train_set["x"][keep]
    if list(generated) != list(meta["leads"]):
        train_x = train_x[:, lead_indices(generated, meta["leads"])]
    torch_device = pick_device(device)
    torch.manual_seed(seed)  # the initial weights
    model = build(name, config, len(classes), len(generated), train_x.shape[2], meta["fs"])
    fingerprint = params_hash(
        {"generator": name, "config": asdict(config), "seed": seed, "data": meta.get("config_hash"),
         "kept": kept, "n_train": int(keep.sum()), "leads": generated, "class_balance": class_balance}
        # only when on, so that checkpoints made before augmentation existed still resume
        | ({"augmentation": asdict(augment)} if augment.active else {})
    )
    record = train(
        model, train_x, train_set["y"][keep], seed=seed, checkpoint_path=checkpoint_path,
        fingerprint=fingerprint, checkpoint_every=checkpoint_every, log_every=log_every,
        class_balance=class_balance, device=torch_device, name=f"{dataset}/{name}", augmentation=augment,
    )
    save_generator(model, name, out_model)
    curve = pd.DataFrame(record.history, columns=["stage", "step", "loss"])
    write_csv_atomically(curve, out_curve_csv)
    plot_loss_curve(curve, f"{name} on {dataset}", out_curve_png)
    sidecar = {
        "generator": name,
        "dataset": dataset,
        "config": asdict(config),
        "classes": classes,
        "leads": generated,
        "class_balance": class_balance,
        "augmentation": asdict(augment),
        "trained_classes": kept,
        "skipped_classes": [c for c in classes if c not in kept],
        "training_records": int(keep.sum()),
        "stages": {s.name: s.steps for s in model.training_plan()},
        "seed": seed,
        "final_loss": {s: float(curve[curve.stage == s].loss.iloc[-1]) for s in curve.stage.unique()},
        "wall_time_s": round(record.wall_time_s, 3),
        "device": record.device,
        "resumed_from": record.resumed_from,
        "parameters": sum(p.numel() for p in model.parameters()),
        "checkpoint_sha256": sha256_file(out_model),
    }
    write_json_atomically(sidecar, out_sidecar)
    checkpoint_path.unlink(missing_ok=True)  # the final weights are saved; resume state is no longer needed
    return sidecar


def plot_loss_curve(curve: pd.DataFrame, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = list(curve["stage"].unique())
    figure, axes = plt.subplots(1, max(1, len(stages)), figsize=(5 * max(1, len(stages)), 3.5), squeeze=False)
    for axis, stage in zip(axes[0], stages):
        part = curve[curve["stage"] == stage]
        axis.plot(part["step"], part["loss"])
        axis.set(title=f"{title}: {stage}", xlabel="step", ylabel="training loss")
        if (part["loss"] > 0).all():
            axis.set_yscale("log")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def synthetic_counts(
    classes: list[str], real_counts: Mapping[str, int], trained: list[str], per_class: int | None, ratio_to_real: float
) -> dict[str, int]:
    """How many records to sample per class: a fixed number, or a multiple of the real training count."""
    return {
        name: (per_class if per_class is not None else math.ceil(ratio_to_real * real_counts.get(name, 0)))
        if name in trained else 0
        for name in classes
    }


def sample_to_h5(
    model_path: Path,
    sidecar_path: Path,
    real_h5: Path,
    out_h5: Path,
    *,
    per_class: int | None,
    ratio_to_real: float,
    batch_size: int,
    seed: int,
    device: str = "auto",
    curate_max_draws: float | None = None,
    out_curation: Path | None = None,
    processes: int = 1,
) -> dict[str, int]:
    """Sample every trained class and write the records, in mV, as a synthetic set.

    With `curate_max_draws`, a curated set: only records whose rhythm fits their class by the
    rhythm reader (`evaluation.rhythm.fits_class`, read on `processes` processes) are kept, batches
    drawn until the class has its count or `curate_max_draws` x its count have been drawn. A class
    that falls short keeps only what fitted: it is never topped up with records that do not fit,
    and `out_curation` (JSON) says per class what was asked, drawn and kept.
    """
    meta = metadata(real_h5)
    sidecar = json.loads(Path(sidecar_path).read_text())
    classes = meta["classes"]
    if sidecar["classes"] != classes:
        raise PipelineError(f"{model_path}: trained on classes {sidecar['classes']}, but {real_h5} has {classes}")
    torch_device = pick_device(device)
    model = load_generator(model_path, torch_device)
    counts = synthetic_counts(classes, meta["records_per_class"]["train"], sidecar["trained_classes"], per_class, ratio_to_real)
    generator = torch.Generator(device=torch_device).manual_seed(seed)
    source = f"{meta['dataset']}/{sidecar['generator']}" + ("-curated" if curate_max_draws else "")
    curation = {}
    with DatasetWriter(out_h5, meta["fs"] * meta["seconds"], ("synthetic",)) as writer:
        for class_index, name in enumerate(classes):
            wanted = counts[name]
            most = math.ceil(curate_max_draws * wanted) if curate_max_draws else wanted
            drawn = kept = fitting = 0
            while kept < wanted and drawn < most:
                n = min(batch_size, most - drawn)
                y = torch.full((n,), class_index, dtype=torch.long, device=torch_device)
                x = sample_millivolts(model, sidecar["leads"], meta, y, generator)
                drawn += n
                if not np.isfinite(x).all():
                    raise PipelineError(f"{model_path}: sampling class {name} gave non-finite values; retrain it")
                if curate_max_draws:
                    # here, not at the top: every training and sampling job would import wfdb's detectors
                    from synthecg.evaluation.rhythm import analyse_records, fits_class

                    # 1 fits, 0 does not, NaN: the class has no rhythm rule, so nothing to curate by (kept)
                    fits = fits_class(analyse_records(x, meta["fs"], meta["leads"], processes), [name] * n) != 0
                    fitting += int(fits.sum())
                    x = x[fits][: wanted - kept]
                for i, record in enumerate(x):
                    writer.append("synthetic", record, class_index, f"{name}-{kept + i}", "", source)
                kept += len(x)
            counts[name] = kept
            curation[name] = {"wanted": wanted, "drawn": drawn, "kept": kept, "short": wanted - kept,
                              "fitting_share": fitting / drawn if curate_max_draws and drawn else None}
        writer.finish(
            {
                **{key: meta[key] for key in ("classes", "leads", "fs", "seconds", "units")},
                "norm_mean": meta["norm_mean"], "norm_std": meta["norm_std"], "norm_count": meta["norm_count"],
                "dataset": meta["dataset"],
                "generator": sidecar["generator"],
                "checkpoint_sha256": sidecar["checkpoint_sha256"],
                "seed": seed,
                "records_per_class": {"synthetic": counts},
            }
        )
    if out_curation is not None:
        write_json_atomically({"source": source, "max_draws": curate_max_draws, "per_class": curation}, out_curation)
    short = {name: entry["short"] for name, entry in curation.items() if entry["short"] > 0}
    log.info("%s: sampled %s%s", source, counts, f"; short of fitting records: {short}" if short else "")
    return counts


def sample_millivolts(model, generated_leads, meta: Mapping, y: torch.Tensor, generator: torch.Generator) -> np.ndarray:
    """Records of classes y as all 12 leads in mV [len(y), 12, T]: the model's normalised leads
    are scaled back with the real training split's statistics, and leads it does not generate
    are derived from I and II (`synthecg.data.leads`)."""
    rows = lead_indices(generated_leads, meta["leads"])
    mean = np.asarray(meta["norm_mean"], np.float32)[rows, None]
    std = np.asarray(meta["norm_std"], np.float32)[rows, None]
    x = model.sample(y, generator).float().cpu().numpy() * std + mean
    if list(generated_leads) == list(INDEPENDENT_LEADS):
        return complete_leads(x)
    return x
