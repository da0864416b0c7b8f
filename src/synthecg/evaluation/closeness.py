"""How close synthetic ECG is to real ECG as a distribution, each measure beside its real-vs-real floor.

FID, MMD and discriminator accuracies all depend on how many records they see, and none of them
reads 0 for two samples of one distribution. So every measure here is taken at one fixed N per
side, against real records that neither the generator nor the embedding classifier trained on,
and beside its *floor*: the same measure between two disjoint halves of those real records at the
same N, which is what a perfect generator would score (`against_floor`). Both sides hold every
class in the same numbers (`class_counts`). The draws repeat the pair with fresh halves and a
fresh synthetic subset; the floor's interval is the central 95 % of its draws, so a synthetic
value beyond it is further from real than real is from itself.

- FID (Heusel et al. 2017, "GANs trained by a two time-scale update rule ..."): the Fréchet
  distance of Gaussians fitted to two sets of embeddings; biased upward roughly as 1/N (Chong &
  Forsyth 2020, "Effectively unbiased FID ..."), hence one N and its floor.
- MMD² (Gretton et al. 2012, "A kernel two-sample test", JMLR 13): the unbiased estimate with
  a Gaussian kernel whose bandwidth is fixed once from real records (`median_bandwidth`) and
  shared by every generator, so all are measured with one kernel; `mmd2_permutation_p` is its
  permutation test.

Functions take plain arrays: embeddings [N, D] or records [N, leads, T]. Nothing here reads files.
"""

from collections.abc import Callable

import numpy as np
from scipy import linalg
from scipy.signal import welch

from synthecg.evaluation.statistics import percentile_interval

DRAWS = 20  # pairs of real halves and synthetic subsets each measure is averaged over
MAX_RECORDS = 500  # N per side at most: MMD's kernel is quadratic in it
MIN_RECORDS = 4  # below this per side a measure is reported missing, not computed
MMD_PERMUTATIONS = 500


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


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances [len(a), len(b)] between rows, flattened (by expansion: exact
    enough for kernels and nearest records, not for telling exact copies apart)."""
    a, b = (np.asarray(v, np.float64).reshape(len(v), -1) for v in (a, b))
    return np.maximum((a**2).sum(1)[:, None] + (b**2).sum(1)[None] - 2 * a @ b.T, 0.0)


def median_bandwidth(real: np.ndarray, max_records: int = 2000) -> float:
    """The median heuristic on real records only: the median distance between two of them (of a
    seeded sample of `max_records` where there are more: all pairs are quadratic in the records)."""
    if len(real) > max_records:
        real = real[np.sort(np.random.default_rng(0).permutation(len(real))[:max_records])]
    squared = squared_distances(real, real)[np.triu_indices(len(real), 1)]
    return float(np.sqrt(np.median(squared))) or 1.0


def _mmd2_from_kernel(kernel: np.ndarray, first: np.ndarray) -> float:
    """Unbiased MMD² of the rows marked `first` against the others, from their pooled kernel matrix.

    Sums through label vectors (z'Kz), not sub-matrices, so a permutation costs one product."""
    z = first.astype(np.float64)
    n, m = z.sum(), len(z) - z.sum()
    kz, diagonal = kernel @ z, np.diag(kernel)
    within_a = z @ kz - diagonal @ z
    between = (1 - z) @ kz
    within_b = kernel.sum() - z @ kz - 2 * between - diagonal @ (1 - z)
    return float(within_a / (n * (n - 1)) + within_b / (m * (m - 1)) - 2 * between / (n * m))


def _kernel(a: np.ndarray, b: np.ndarray, bandwidth: float) -> np.ndarray:
    pooled = np.concatenate([np.asarray(a, np.float64), np.asarray(b, np.float64)])
    return np.exp(-squared_distances(pooled, pooled) / (2 * bandwidth**2))


def mmd2(a: np.ndarray, b: np.ndarray, bandwidth: float) -> float:
    """Unbiased squared maximum mean discrepancy of two sets [N, D] with a Gaussian kernel of `bandwidth`."""
    return _mmd2_from_kernel(_kernel(a, b, bandwidth), np.arange(len(a) + len(b)) < len(a))


def mmd2_permutation_p(a: np.ndarray, b: np.ndarray, bandwidth: float, permutations: int = MMD_PERMUTATIONS,
                       seed: int = 0) -> float:
    """One-sided permutation p-value of MMD² (Gretton et al. 2012, §5): the share of random
    relabellings of the pooled records whose MMD² reaches the observed one."""
    kernel = _kernel(a, b, bandwidth)
    first = np.arange(len(kernel)) < len(a)
    observed = _mmd2_from_kernel(kernel, first)
    rng = np.random.default_rng(seed)
    null = [_mmd2_from_kernel(kernel, rng.permutation(first)) for _ in range(permutations)]
    return float((1 + np.sum(np.asarray(null) >= observed)) / (1 + permutations))


def amplitude_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over leads of the relative difference of mean peak-to-peak amplitude, records [N, leads, T]
    of `a` against the reference `b` (unit-free: the same in mV and normalised units)."""
    amplitude_a, amplitude_b = np.ptp(a, axis=-1).mean(0), np.ptp(b, axis=-1).mean(0)
    return float(np.mean(np.abs(amplitude_a - amplitude_b) / np.maximum(amplitude_b, 1e-12)))


def log_spectrum_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of the per-lead mean log10 Welch power spectra of records [N, leads, T]
    (a per-lead scale adds the same constant to both, so normalised and mV records agree)."""
    def log_power(x):
        _, power = welch(np.asarray(x, np.float64), nperseg=min(256, x.shape[-1]), axis=-1)
        return np.log10(power.mean(0) + 1e-12)

    return float(np.abs(log_power(a) - log_power(b)).mean())


def class_counts(synthetic_y: np.ndarray, real_y: np.ndarray, max_records: int = MAX_RECORDS) -> dict[int, int]:
    """Records per class and side for a measure and its floor: min(half the real ones, the synthetic
    ones) per class, scaled down together to `max_records` in all. Both sides then hold every class in
    the same numbers, so a sampler's class balance (e.g. 150 of each) is not read as a generator's fault."""
    counts = {int(c): min(int((real_y == c).sum()) // 2, int((synthetic_y == c).sum())) for c in np.unique(real_y)}
    total = sum(counts.values())
    if total > max_records:
        counts = {c: n * max_records // total for c, n in counts.items()}
    return {c: n for c, n in counts.items() if n > 0}


def against_floor(measure: Callable[[np.ndarray, np.ndarray, np.random.Generator], float], synthetic: np.ndarray,
                  real: np.ndarray, synthetic_y: np.ndarray | None = None, real_y: np.ndarray | None = None,
                  draws: int = DRAWS, max_records: int = MAX_RECORDS, seed: int = 0,
                  null_interval: Callable[[int], list[float]] | None = None) -> dict | None:
    """A measure of synthetic records against real ones, beside the same measure between two disjoint
    halves of the real ones, at N records per side (`class_counts`; without labels, one class).

    `measure(x, reference, rng)` compares x with the reference. Each draw splits the real records of
    every class into halves A and B and subsamples as many synthetic records S: value =
    measure(S, A), floor = measure(B, A). Returns value and floor (means over draws), their central
    95 % over draws (`value_interval`, `floor_interval`), N and the number of draws; None with fewer
    than MIN_RECORDS per side. A measure too slow for many draws, whose spread at chance is known in
    closed form, passes it as `null_interval(N)`: the floor's interval then comes from there.
    """
    synthetic_y = np.zeros(len(synthetic), int) if synthetic_y is None else np.asarray(synthetic_y)
    real_y = np.zeros(len(real), int) if real_y is None else np.asarray(real_y)
    counts = class_counts(synthetic_y, real_y, max_records)
    n = sum(counts.values())
    if n < MIN_RECORDS:
        return None
    rng = np.random.default_rng(seed)
    values, floors = [], []
    for _ in range(draws):
        half_a, half_b, subset = [], [], []
        for c, k in counts.items():
            order = rng.permutation(np.flatnonzero(real_y == c))
            half_a.append(order[:k])
            half_b.append(order[k : 2 * k])
            subset.append(rng.choice(np.flatnonzero(synthetic_y == c), k, replace=False))
        half_a, half_b, subset = (np.concatenate(part) for part in (half_a, half_b, subset))
        values.append(measure(synthetic[subset], real[half_a], rng))
        floors.append(measure(real[half_b], real[half_a], rng))
    return {"value": float(np.mean(values)), "value_interval": percentile_interval(values), "floor": float(np.mean(floors)),
            "floor_interval": null_interval(n) if null_interval else percentile_interval(floors), "n": int(n), "draws": draws}


