"""Training the classifier: AdamW on cross-entropy, early stopping on validation macro-F1.

The weights of the best validation epoch are kept. CUDA with bf16 autocast when present, the
CPU otherwise. Inputs are normalised records [N, leads, T] float32 and labels [N].
"""

import copy
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score

from synthecg.classifier.resnet1d import ClassifierConfig, ResNet1d

log = logging.getLogger("synthecg")


@dataclass
class FitResult:
    epochs: int = 0
    best_epoch: int = 0
    best_val_macro_f1: float | None = None
    history: list[dict] = field(default_factory=list)  # {"epoch", "train_loss", "val_macro_f1"}
    wall_time_s: float = 0.0
    stopped_by: str = ""


@torch.no_grad()
def predict_probabilities(model: ResNet1d, x: np.ndarray, device: torch.device, batch_size: int = 256) -> np.ndarray:
    model.eval()
    outputs = []
    for start in range(0, len(x), batch_size):
        batch = torch.from_numpy(x[start : start + batch_size]).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(batch)
        outputs.append(torch.softmax(logits.float(), dim=1).cpu())
    n_classes = model.head.out_features
    return torch.cat(outputs).numpy() if outputs else np.zeros((0, n_classes), np.float32)


def macro_f1(model, x, y, device) -> float:
    predictions = predict_probabilities(model, x, device).argmax(axis=1)
    return float(f1_score(y, predictions, labels=sorted(set(y.tolist())), average="macro", zero_division=0))


def fit(
    model: ResNet1d,
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    config: ClassifierConfig,
    *,
    learning_rate: float,
    seed: int,
    device: torch.device,
) -> FitResult:
    """Train in place; on return the model holds the weights of its best validation epoch."""
    torch.manual_seed(seed)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=config.weight_decay)
    order = np.random.default_rng(seed)
    x = torch.from_numpy(np.ascontiguousarray(train_x, dtype=np.float32))
    y = torch.from_numpy(np.asarray(train_y, dtype=np.int64))
    result = FitResult()
    best_state, best_score, waited = copy.deepcopy(model.state_dict()), -1.0, 0
    started = time.perf_counter()
    for epoch in range(1, config.max_epochs + 1):
        model.train()
        permutation = torch.from_numpy(order.permutation(len(x)))
        total = torch.zeros((), device=device)
        batches = 0
        for start in range(0, len(x), config.batch_size):
            index = permutation[start : start + config.batch_size]
            if len(index) < 2:  # batch norm needs two records
                continue
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(x[index].to(device, non_blocking=True))
            loss = F.cross_entropy(logits.float(), y[index].to(device, non_blocking=True))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach()
            batches += 1
        train_loss = float(total / max(batches, 1))  # one host sync per epoch
        score = macro_f1(model, val_x, val_y, device) if len(val_y) else None
        result.history.append({"epoch": epoch, "train_loss": train_loss, "val_macro_f1": score})
        log.info("epoch %d: train loss %.4f, validation macro-F1 %s", epoch, train_loss, score)
        result.epochs = epoch
        if score is None:  # nothing to validate on: keep the last epoch
            best_state, result.best_epoch = copy.deepcopy(model.state_dict()), epoch
            result.stopped_by = "no validation records: trained for max_epochs"
            continue
        if score > best_score:
            best_state, best_score, waited = copy.deepcopy(model.state_dict()), score, 0
            result.best_epoch, result.best_val_macro_f1 = epoch, score
        else:
            waited += 1
            if waited >= config.patience:
                result.stopped_by = f"early stopping: no better validation macro-F1 for {config.patience} epochs"
                break
    result.stopped_by = result.stopped_by or "max_epochs"
    model.load_state_dict(best_state)
    result.wall_time_s = time.perf_counter() - started
    return result
