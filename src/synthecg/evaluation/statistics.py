"""Uncertainty of the classifier scores: bootstrap intervals over test records, paired tests over seeds.

Intervals: a stratified percentile bootstrap of the test split. Each resample draws, within every
class, as many records as the class has, with replacement, so every resample keeps the class counts
of the split (that is what `scipy.stats.bootstrap` does with one sample per class and
`paired=False`). It is written out here for two reasons: macro-F1 and macro-AUROC are computed
for all resamples at once from how often each record occurs in each resample (a weight matrix),
which is far faster than scoring each resample with scikit-learn; and one seeded set of resamples
per test split is shared by every run scored on it. A run's resampled scores can then be averaged
over seeds or subtracted between experiments resample by resample, giving intervals of seed means
and of paired differences that resample the test records jointly. Percentile rather than BCa: it
needs nothing but the resampled scores, so it carries over to any such average or difference, and
it stays defined with a class of one test record (BCa's jackknife would leave that class empty).

Tests: paired differences over classifier seeds, tested with the paired t-test, whose p-value can
fall below 0.05 with 3 seeds (a sign-flip or Wilcoxon test cannot go below 0.25 there), with
Holm's step-down correction across a family of comparisons. Where the differences have no spread
(the same on every seed) the t-test is undefined and the sign-flip test's p is reported instead.
"""

from collections.abc import Sequence

import numpy as np
from scipy import stats

N_RESAMPLES = 2000
CONFIDENCE = 0.95
RESAMPLING_SEED = 0
MACRO_METRICS = ("macro_f1", "macro_auroc")
_CHUNK = 250  # resamples scored at a time: bounds memory on large test splits


def stratified_weights(y_true: np.ndarray, n_resamples: int = N_RESAMPLES, seed: int = RESAMPLING_SEED) -> np.ndarray:
    """[n_resamples, N]: how often each record occurs in each resample; every class keeps its count."""
    y_true = np.asarray(y_true)
    rng = np.random.default_rng(seed)
    weights = np.zeros((n_resamples, len(y_true)), np.int32)
    for c in np.unique(y_true):
        members = np.flatnonzero(y_true == c)
        weights[:, members] = rng.multinomial(len(members), np.full(len(members), 1 / len(members)), size=n_resamples)
    return weights


def weighted_macro_scores(y_true: np.ndarray, probabilities: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """Macro-F1 and macro-AUROC (one class against the rest) of each row of `weights`, over the
    classes present in `y_true`, as in synthecg.evaluation.metrics; AUROC is NaN with fewer than two.

    With weights of ones these are scikit-learn's f1_score(average="macro") and roc_auc_score
    (ties count one half). Weights are whole counts, so float32 sums stay exact far past any test split.
    """
    y_true, probabilities = np.asarray(y_true), np.asarray(probabilities)
    present = np.unique(y_true)
    y_pred = probabilities.argmax(axis=1)
    truth = y_true[:, None] == present[None, :]
    called = y_pred[:, None] == present[None, :]
    f1, auroc = np.zeros(len(weights)), np.zeros(len(weights))
    for start in range(0, len(weights), _CHUNK):
        # Records along the first axis: sums over records add whole rows. (Plain sums rather than a
        # matrix product: a multithreaded BLAS can crawl on a busy machine.)
        w = np.ascontiguousarray(weights[start:start + _CHUNK].T, np.float32)
        rows = slice(start, start + w.shape[1])
        for k in range(len(present)):
            tp = w[truth[:, k] & called[:, k]].sum(axis=0, dtype=float)
            fp = w[~truth[:, k] & called[:, k]].sum(axis=0, dtype=float)
            fn = w[truth[:, k] & ~called[:, k]].sum(axis=0, dtype=float)
            denominator = 2 * tp + fp + fn
            f1[rows] += np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0) / len(present)
        if len(present) > 1:
            auroc[rows] = np.mean([_weighted_auroc(truth[:, k], probabilities[:, c], w)
                                   for k, c in enumerate(present)], axis=0)
    return {"macro_f1": f1,
            "macro_auroc": auroc if len(present) > 1 else np.full(len(weights), np.nan)}


def _weighted_auroc(positive: np.ndarray, score: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUROC per column of w [records, resamples]: the share of (positive, negative)
    pairs ranked right, ties counting half.

    Running sums over records are the slow step, so they run over the smaller side only (the
    class itself, or the rest): each record of the larger side looks up the smaller side's weight
    scored below it and tied with it."""
    small = positive if positive.sum() <= (~positive).sum() else ~positive
    order = np.argsort(score[small], kind="stable")
    small_scores = score[small][order]
    below = np.zeros((len(order) + 1, w.shape[1]), np.float32)  # [k]: weight of the k lowest-scored
    np.cumsum(w[small][order], axis=0, out=below[1:])
    others = score[~small]
    strictly, or_tied = np.searchsorted(small_scores, others, "left"), np.searchsorted(small_scores, others, "right")
    # Pairs where the larger side's record is scored above, ties counting half.
    above = (w[~small] * (below[strictly].astype(float) + below[or_tied]) / 2).sum(axis=0)
    pairs = w[~small].sum(axis=0, dtype=float) * below[-1]
    share = np.divide(above, pairs, out=np.full(w.shape[1], np.nan), where=pairs > 0)
    return share if small is not positive else 1 - share  # above a positive: a pair ranked wrong


def percentile_interval(resampled: np.ndarray, confidence: float = CONFIDENCE) -> list[float] | None:
    """[low, high] of the resampled statistic; None when it is undefined (NaN) on every resample."""
    resampled = np.asarray(resampled, float)
    resampled = resampled[np.isfinite(resampled)]
    if not len(resampled):
        return None
    tail = (1 - confidence) / 2
    return [float(v) for v in np.quantile(resampled, [tail, 1 - tail])]


def bootstrap_intervals(y_true: np.ndarray, probabilities: np.ndarray, n_resamples: int = N_RESAMPLES,
                        confidence: float = CONFIDENCE, seed: int = RESAMPLING_SEED) -> dict:
    """One run's intervals of macro-F1 and macro-AUROC, for metrics.json (None where undefined)."""
    resampled = weighted_macro_scores(y_true, probabilities, stratified_weights(y_true, n_resamples, seed))
    return {**{metric: percentile_interval(resampled[metric], confidence) for metric in MACRO_METRICS},
            "confidence": confidence, "method": method(n_resamples, seed)}


def method(n_resamples: int = N_RESAMPLES, seed: int = RESAMPLING_SEED) -> str:
    return f"stratified percentile bootstrap of the test records ({n_resamples} resamples, seed {seed})"


class SharedResamples:
    """Every run's resampled macro scores, on one set of resamples per dataset's test split.

    Runs of a dataset are scored on the same test records (in the same order), so resample b means
    the same records for all of them: averaging runs or subtracting arms resample by resample keeps
    the pairing, and the percentile interval of the result resamples the test records jointly.
    """

    def __init__(self, n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE, seed: int = RESAMPLING_SEED):
        self.n_resamples, self.confidence, self.seed = n_resamples, confidence, seed
        self._labels: dict[str, np.ndarray] = {}
        self._weights: dict[str, np.ndarray] = {}
        self._scores: dict[tuple, dict[str, np.ndarray]] = {}

    def add(self, dataset: str, key: tuple, y_true: Sequence[int], probabilities: Sequence[Sequence[float]]) -> None:
        y_true = np.asarray(y_true, int)
        if dataset not in self._labels:
            self._labels[dataset] = y_true
            self._weights[dataset] = stratified_weights(y_true, self.n_resamples, self.seed)
        elif not np.array_equal(self._labels[dataset], y_true):
            raise ValueError(f"{key}: scored on other test records than the dataset's other runs")
        if len(y_true):
            self._scores[key] = weighted_macro_scores(y_true, np.asarray(probabilities, float), self._weights[dataset])

    def __contains__(self, key: tuple) -> bool:
        return key in self._scores

    def interval(self, metric: str, keys: Sequence[tuple]) -> list[float] | None:
        """Interval of the mean over `keys` (runs, e.g. seeds); None unless every run has its scores."""
        if not keys or any(k not in self._scores for k in keys):
            return None
        return percentile_interval(np.mean([self._scores[k][metric] for k in keys], axis=0), self.confidence)

    def difference_interval(self, metric: str, arm: Sequence[tuple], baseline: Sequence[tuple]) -> list[float] | None:
        """Interval of mean(arm) - mean(baseline), both on the same resamples."""
        if not arm or not baseline or any(k not in self._scores for k in [*arm, *baseline]):
            return None
        difference = (np.mean([self._scores[k][metric] for k in arm], axis=0)
                      - np.mean([self._scores[k][metric] for k in baseline], axis=0))
        return percentile_interval(difference, self.confidence)


def paired_t_test(arm: Sequence[float], baseline: Sequence[float]) -> dict:
    """Paired t-test (two-sided) of arm - baseline over matched seeds; pairs with a missing side are dropped.

    Returns n, mean and sample std of the differences and p (NaN with fewer than two pairs)."""
    arm, baseline = np.asarray(arm, float), np.asarray(baseline, float)
    paired = np.isfinite(arm) & np.isfinite(baseline)
    arm, baseline = arm[paired], baseline[paired]
    differences = arm - baseline
    n = len(differences)
    mean = float(differences.mean()) if n else np.nan
    std = float(differences.std(ddof=1)) if n > 1 else np.nan
    if n < 2:
        p = np.nan
    elif std < 1e-12:  # rounding noise aside, every seed differs by the same amount: t is undefined
        # No difference: 1. The same non-zero difference on every seed (a score that moves in coarse
        # steps on a small test split can do that by chance): the sign-flip test's p, 2 / 2^n, its
        # smallest value, rather than the t statistic's limit of 0, which would survive any correction.
        p = 1.0 if mean == 0 else 2.0 ** (1 - n)
    else:
        p = float(stats.ttest_rel(arm, baseline).pvalue)
    return {"n": n, "mean_difference": mean, "std_difference": std, "p": p}


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error), in the input order; NaN (no test) stays
    NaN and does not count towards the family size."""
    p = np.asarray(p_values, float)
    adjusted = np.full(len(p), np.nan)
    tested = np.flatnonzero(np.isfinite(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    m = len(order)
    # The k-th smallest p (k from 0) is multiplied by m - k; the running maximum keeps the order.
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return adjusted


def verdict(mean_difference: float, n: int, p_adjusted: float, alpha: float = 0.05) -> str:
    """Plain reading of one comparison of a higher-is-better score."""
    if n < 2:
        return "n < 2: no test"
    if np.isfinite(p_adjusted) and p_adjusted < alpha:
        return "better" if mean_difference > 0 else "worse"
    return "no supported difference"

