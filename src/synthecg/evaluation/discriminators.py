"""Post-hoc discriminators: can a classifier trained after the fact tell synthetic records from real ones?

Both report TimeGAN's discriminative score (Yoon, Jarrett & van der Schaar 2019, "Time-series
generative adversarial networks", NeurIPS): |held-out accuracy − 0.5| of a real-vs-synthetic
classifier on equally many records of each, 0 when it cannot tell them apart. Every record is
scored once, by a model that did not train on it (k-fold cross-fitting).

- `linear_probe_score`: logistic regression on embeddings (the real-data classifier's features):
  what that feature space separates, no more;
- `cnn_score`: a small 1D CNN on the raw signals, which sees what an embedding trained to tell
  rhythm classes apart may ignore (noise, amplitude, morphology off the classes' axes).

Alone these numbers have no scale: `synthecg.evaluation.closeness.against_floor` sets them
beside the same score for two halves of real records.
"""

import numpy as np
import torch
from scipy.stats import binom
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

CNN_EPOCHS = 20
CNN_BATCH = 32
CNN_WIDTH = 16


def chance_interval(n_per_side: int, confidence: float = 0.95) -> list[float]:
    """Central interval of |accuracy − 0.5| for a discriminator at chance scoring 2 x n records once each
    (binomial): the floor's spread where too few draws can be afforded to measure it (`cnn_score`)."""
    total = 2 * n_per_side
    correct = np.arange(total + 1)
    score = np.abs(correct / total - 0.5)
    order = np.argsort(score, kind="stable")
    cumulative = np.cumsum(binom.pmf(correct, total, 0.5)[order])
    tail = (1 - confidence) / 2
    return [float(score[order][np.searchsorted(cumulative, q)]) for q in (tail, 1 - tail)]


def _labelled(x: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([x, reference]), np.repeat([1, 0], [len(x), len(reference)])


def linear_probe_score(x: np.ndarray, reference: np.ndarray, rng: np.random.Generator, folds: int = 5) -> float:
    """|accuracy − 0.5| of a cross-validated logistic regression telling embeddings x [N, D] from the reference's."""
    features, labels = _labelled(np.asarray(x).reshape(len(x), -1), np.asarray(reference).reshape(len(reference), -1))
    split = StratifiedKFold(min(folds, len(x), len(reference)), shuffle=True, random_state=int(rng.integers(2**31)))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return float(abs(cross_val_score(model, features, labels, cv=split).mean() - 0.5))


class RecordDiscriminator(nn.Module):
    """Three strided convolutions (kernel 7) with batch norm, average pooling over time, one logit."""

    def __init__(self, n_leads: int, width: int = CNN_WIDTH):
        super().__init__()
        layers, channels = [], n_leads
        for out in (width, 2 * width, 2 * width):
            layers += [nn.Conv1d(channels, out, 7, stride=2, padding=3), nn.BatchNorm1d(out), nn.ReLU()]
            channels = out
        self.net = nn.Sequential(*layers, nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


def _fit_and_score(train_x, train_y, test_x, test_y, seed: int, epochs: int) -> int:
    """Train a RecordDiscriminator on one fold, return how many records of the other it calls right."""
    torch.manual_seed(seed)
    model = RecordDiscriminator(train_x.shape[1])
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.from_numpy(np.asarray(train_x, np.float32)), torch.from_numpy(train_y.astype(np.float32))
    order = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(x), generator=order).split(CNN_BATCH):
            if len(batch) < 2:  # batch norm needs two records
                continue
            loss = nn.functional.binary_cross_entropy_with_logits(model(x[batch]), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(part) for part in torch.from_numpy(np.asarray(test_x, np.float32)).split(256)])
    return int(((logits.numpy() > 0) == test_y.astype(bool)).sum())


def cnn_score(x: np.ndarray, reference: np.ndarray, rng: np.random.Generator, folds: int = 2,
              epochs: int = CNN_EPOCHS) -> float:
    """|accuracy − 0.5| of a small CNN telling records x [N, leads, T] from the reference's, cross-fitted
    over `folds` (each record scored by the model trained on the other folds)."""
    records, labels = _labelled(np.asarray(x), np.asarray(reference))
    split = StratifiedKFold(min(folds, len(x), len(reference)), shuffle=True, random_state=int(rng.integers(2**31)))
    correct = sum(_fit_and_score(records[fit], labels[fit], records[held], labels[held], seed=fold, epochs=epochs)
                  for fold, (fit, held) in enumerate(split.split(records, labels)))
    return float(abs(correct / len(labels) - 0.5))
