"""How close synthetic ECG is to real ECG: distribution distances, a discriminator, memorisation.

All functions take plain arrays: embeddings [N, D] (e.g. the pooled features of a classifier
trained on real data, its `embed`) or records [N, leads, T]. Nothing here reads files.
"""

import numpy as np
from scipy import linalg
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two sets of embeddings [N, D] (FID's formula)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(root).all():  # near-singular covariances: regularise, as FID implementations do
        eps = 1e-6 * np.eye(len(cov_a))
        root = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    value = ((mean_a - mean_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root.real)
    return float(max(value, 0.0))


def mmd_rbf(a: np.ndarray, b: np.ndarray, bandwidth: float | None = None) -> float:
    """Unbiased squared maximum mean discrepancy with a Gaussian kernel.

    The bandwidth defaults to the median distance between all pooled points (median heuristic).
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    pooled = np.concatenate([a, b])
    squared = ((pooled[:, None] - pooled[None]) ** 2).sum(-1)
    if bandwidth is None:
        off_diagonal = squared[~np.eye(len(pooled), dtype=bool)]
        bandwidth = float(np.sqrt(np.median(off_diagonal))) or 1.0
    kernel = np.exp(-squared / (2 * bandwidth**2))
    n, m = len(a), len(b)
    k_aa, k_bb, k_ab = kernel[:n, :n], kernel[n:, n:], kernel[:n, n:]
    within_a = (k_aa.sum() - np.trace(k_aa)) / (n * (n - 1))
    within_b = (k_bb.sum() - np.trace(k_bb)) / (m * (m - 1))
    return float(within_a + within_b - 2 * k_ab.mean())


def discriminative_score(real: np.ndarray, synthetic: np.ndarray, seed: int = 0) -> float:
    """Held-out accuracy of a logistic-regression real-vs-synthetic classifier on features [N, D].

    Both sets are cut to the same size first, so 0.5 means indistinguishable and 1.0 means
    every record is told apart.
    """
    rng = np.random.default_rng(seed)
    n = min(len(real), len(synthetic))
    x = np.concatenate([real[rng.permutation(len(real))[:n]], synthetic[rng.permutation(len(synthetic))[:n]]])
    x = x.reshape(len(x), -1)
    y = np.repeat([0, 1], n)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.5, stratify=y, random_state=seed)
    scaler = StandardScaler().fit(x_train)
    model = LogisticRegression(max_iter=2000).fit(scaler.transform(x_train), y_train)
    return float(model.score(scaler.transform(x_test), y_test))


def nearest_distances(queries: np.ndarray, references: np.ndarray, block: int = 256) -> np.ndarray:
    """Euclidean distance from each query record to its nearest reference record (flattened)."""
    q = queries.reshape(len(queries), -1).astype(np.float64)
    r = references.reshape(len(references), -1).astype(np.float64)
    r_norms = (r**2).sum(1)
    out = np.empty(len(q))
    for start in range(0, len(q), block):
        part = q[start : start + block]
        squared = (part**2).sum(1)[:, None] + r_norms[None] - 2 * part @ r.T
        out[start : start + block] = np.sqrt(np.maximum(squared.min(1), 0.0))
    return out


def memorisation(synthetic: np.ndarray, train: np.ndarray, holdout: np.ndarray, copy_tolerance: float = 1e-6) -> dict:
    """Do synthetic records sit closer to the training records than unseen real records do?

    `share_closer_than_any_holdout`: synthetic records nearer a training record than the nearest
    held-out record is (a generator that copies its training data scores high);
    `exact_copies`: synthetic records within `copy_tolerance` of one. Both are also high for bland
    records (e.g. near the mean ECG), which sit close to every real record, seen or not. So
    `share_nearer_train_than_holdout` asks, per synthetic record, whether its nearest real record
    is a training or a held-out one: a generator that has not learnt the training records in
    particular scores `share_expected_without_memorisation` (the training records' share of all
    real records) on average; one that reproduces them scores more.
    """
    synthetic_to_train = nearest_distances(synthetic, train)
    holdout_to_train = nearest_distances(holdout, train)
    synthetic_to_holdout = nearest_distances(synthetic, holdout)
    return {
        "median_synthetic_to_train": float(np.median(synthetic_to_train)),
        "median_holdout_to_train": float(np.median(holdout_to_train)),
        "share_closer_than_any_holdout": float((synthetic_to_train < holdout_to_train.min()).mean()),
        "share_nearer_train_than_holdout": float((synthetic_to_train < synthetic_to_holdout).mean()),
        "share_expected_without_memorisation": len(train) / (len(train) + len(holdout)),
        "exact_copies": int((synthetic_to_train <= copy_tolerance).sum()),
    }
