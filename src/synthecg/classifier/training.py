"""Training the classifier: AdamW on cross-entropy, early stopping on validation macro-F1.

The weights of the best validation epoch are kept. CUDA with bf16 autocast when present, the
CPU otherwise. Inputs are normalised records [N, leads, T] float32 and labels [N].

The PTB-XL benchmark's protocol, when the config asks for it: each training step sees one random
crop of each record (`train_crop_seconds`), and a record is predicted from sliding windows whose
class probabilities are aggregated (`eval_window_seconds`, its stride, `eval_aggregate`), for
validation and test alike. The records' sampling rate `fs` turns those seconds into samples.

Class imbalance (`class_weighting`): `loss` weights each record's cross-entropy by the inverse
frequency of its class in the training records; `sampler` draws each epoch's records with
replacement so that every class fills the same share of the batches.
"""

import copy
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from sklearn.metrics import f1_score, roc_auc_score

from synthecg.classifier.resnet1d import ClassifierConfig, SlidingWindows

log = logging.getLogger("synthecg")


@dataclass
class FitResult:
    epochs: int = 0
    best_epoch: int = 0
    best_val_macro_f1: float | None = None
    best_val_score: float | None = None  # of config.early_stopping_metric, at best_epoch
    history: list[dict] = field(default_factory=list)  # {"epoch", "train_loss", "val_macro_f1", "val_macro_auroc"}
    wall_time_s: float = 0.0
    stopped_by: str = ""


def random_crops(x: torch.Tensor, length: int, rng: np.random.Generator) -> torch.Tensor:
    """One window of `length` samples from each record [B, leads, T], at a uniformly random start
    -> [B, leads, length]. Records no longer than `length` are returned whole."""
    n_samples = x.shape[-1]
    if length >= n_samples:
        return x
    starts = torch.from_numpy(rng.integers(0, n_samples - length + 1, size=len(x)))
    index = (starts[:, None] + torch.arange(length))[:, None, :].expand(-1, x.shape[1], -1)
    return torch.gather(x, 2, index.to(x.device))


@torch.no_grad()
def predict_probabilities(model: nn.Module, x: np.ndarray, device: torch.device, *,
                          windows: SlidingWindows | None, batch_size: int = 256) -> np.ndarray:
    """Class probabilities [N, classes] of records [N, leads, T]: of the whole record when `windows`
    is None (or not shorter than the records), else the max or mean over its windows' softmax
    outputs. Windows start every `stride` samples and end inside the record, as in the PTB-XL
    benchmark (a tail shorter than a window is not predicted on its own)."""
    model.eval()
    n_leads, n_samples = x.shape[1], x.shape[-1]
    windowed = windows is not None and windows.length < n_samples
    per_record = (n_samples - windows.length) // windows.stride + 1 if windowed else 1
    step = max(1, batch_size // per_record)  # batch_size counts what the model sees: windows
    outputs = []
    for start in range(0, len(x), step):
        batch = torch.from_numpy(x[start : start + step]).to(device)
        if windowed:  # [B, leads, W, length] -> [B * W, leads, length]
            batch = batch.unfold(-1, windows.length, windows.stride).transpose(1, 2)
            batch = batch.reshape(-1, n_leads, windows.length)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(batch)
        probabilities = torch.softmax(logits.float(), dim=1)
        if windowed:
            probabilities = probabilities.reshape(-1, per_record, model.n_classes)
            probabilities = probabilities.amax(dim=1) if windows.aggregate == "max" else probabilities.mean(dim=1)
        outputs.append(probabilities.cpu())
    return torch.cat(outputs).numpy() if outputs else np.zeros((0, model.n_classes), np.float32)


def inverse_frequency_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Per class: len(y) / (classes present x its count), so each present class weighs as much in
    total; 0 for a class without records (it cannot contribute to the loss anyway)."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = len(y) / (present.sum() * counts[present])
    return weights


def epoch_order(y: np.ndarray, n_classes: int, weighting: str, rng: np.random.Generator) -> np.ndarray:
    """The record indices of one epoch: a permutation, or (sampler) len(y) draws with replacement,
    each record drawn with probability 1 / (classes present x its class's count)."""
    if weighting != "sampler":
        return rng.permutation(len(y))
    per_record = inverse_frequency_weights(y, n_classes)[y]
    return rng.choice(len(y), size=len(y), replace=True, p=per_record / per_record.sum())


def validation_scores(model, x, y, device, windows: SlidingWindows | None) -> dict[str, float | None]:
    """Macro-F1 and macro-AUROC (one class against the rest) over the classes present in y, from one
    prediction pass; AUROC is None with fewer than two classes."""
    probabilities = predict_probabilities(model, x, device, windows=windows)
    present = sorted(set(y.tolist()))
    f1 = float(f1_score(y, probabilities.argmax(axis=1), labels=present, average="macro", zero_division=0))
    auroc = (float(np.mean([roc_auc_score(y == c, probabilities[:, c]) for c in present]))
             if len(present) > 1 else None)
    return {"macro_f1": f1, "macro_auroc": auroc}


def fit(
    model: nn.Module,
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    config: ClassifierConfig,
    *,
    learning_rate: float,
    seed: int,
    device: torch.device,
    fs: float | None,
    keep_initial: bool = False,
) -> FitResult:
    """Train in place; on return the model holds the weights of its best validation epoch.
    `fs`: the records' sampling rate (Hz), for the crops and windows; None only for whole records.
    `keep_initial`: the weights before training count as epoch 0 and are kept when no epoch
    scores higher on validation (fine-tuning a pretrained model)."""
    crop, windows = config.train_crop_samples(fs), config.eval_windows(fs)
    torch.manual_seed(seed)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=config.weight_decay)
    order = np.random.default_rng(seed)
    # The training records live on the device for the whole run (PTB-XL at 100 Hz: ~0.8 GB) and
    # batches and crops are cut there: no host-to-device copy per step. Which records and crops
    # are drawn still comes from the numpy stream `order`, so the CPU run is unchanged.
    x = torch.from_numpy(np.ascontiguousarray(train_x, dtype=np.float32)).to(device)
    y = torch.from_numpy(np.asarray(train_y, dtype=np.int64))
    y_on_device = y.to(device)
    n_classes = model.n_classes
    loss_weights = None
    if config.class_weighting == "loss":
        loss_weights = torch.tensor(inverse_frequency_weights(y.numpy(), n_classes), dtype=torch.float32, device=device)
    result = FitResult()
    best_state, best_score, waited = copy.deepcopy(model.state_dict()), -1.0, 0
    started = time.perf_counter()
    selection = config.early_stopping_metric

    def score_of(scores):  # AUROC is undefined with one validation class: fall back to macro-F1 there
        return scores[selection] if scores[selection] is not None else scores["macro_f1"]

    if keep_initial and len(val_y):
        scores = validation_scores(model, val_x, val_y, device, windows)
        best_score = score_of(scores)
        result.best_val_macro_f1, result.best_val_score = scores["macro_f1"], best_score
        result.history.append({"epoch": 0, "train_loss": None, **{f"val_{k}": v for k, v in scores.items()}})
        log.info("epoch 0 (initial weights): validation %s", scores)
    for epoch in range(1, config.max_epochs + 1):
        model.train()
        permutation = torch.from_numpy(epoch_order(y.numpy(), n_classes, config.class_weighting, order)).to(device)
        total = torch.zeros((), device=device)
        batches = 0
        for start in range(0, len(x), config.batch_size):
            index = permutation[start : start + config.batch_size]
            if len(index) < 2:  # batch norm needs two records
                continue
            batch = x[index] if crop is None else random_crops(x[index], crop, order)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(batch)
            loss = F.cross_entropy(logits.float(), y_on_device[index], weight=loss_weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach()
            batches += 1
        train_loss = float(total / max(batches, 1))  # one host sync per epoch
        scores = validation_scores(model, val_x, val_y, device, windows) if len(val_y) else None
        score = None if scores is None else score_of(scores)
        result.history.append({"epoch": epoch, "train_loss": train_loss,
                               **{f"val_{k}": v for k, v in (scores or {"macro_f1": None}).items()}})
        log.info("epoch %d: train loss %.4f, validation %s", epoch, train_loss, scores)
        result.epochs = epoch
        if score is None:  # nothing to validate on: keep the last epoch
            best_state, result.best_epoch = copy.deepcopy(model.state_dict()), epoch
            result.stopped_by = "no validation records: trained for max_epochs"
            continue
        if score > best_score:
            best_state, best_score, waited = copy.deepcopy(model.state_dict()), score, 0
            result.best_epoch, result.best_val_macro_f1, result.best_val_score = epoch, scores["macro_f1"], score
        else:
            waited += 1
            if waited >= config.patience:
                result.stopped_by = f"early stopping: no better validation {selection} for {config.patience} epochs"
                break
    result.stopped_by = result.stopped_by or "max_epochs"
    model.load_state_dict(best_state)
    result.wall_time_s = time.perf_counter() - started
    return result
