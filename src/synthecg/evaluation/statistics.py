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

Tests: the paired difference of two arms, mean over classifier seeds, has two sources of variance:
the seeds (training runs differ) and the test records (the split is a sample, shared by both arms
and every seed). `paired_test` adds both: the seeds' spread of the differences, as in a paired
t-test, and the part of the record variance that every seed shares, from the shared resamples (the
part each seed has on its own is already in the seeds' spread); the t reference takes Welch and
Satterthwaite's degrees of freedom, n - 1 when the seeds' spread dominates, more as the records'
part grows. Why not the bootstrap over seeds and records together: drawing 3 seeds with
replacement shrinks their spread by 2/3 and carries no small-sample penalty, so where the seeds'
variance is many times the records' (larger test splits than the mirror's 167 records) it rejects
a true null 20-26 % of the time at alpha 0.05 with 3 seeds, 13-16 % with 5; paired_test 5-8 %
(benchmarks/paired_test_calibration.py, whose docstring has the mirror's rates as well). The
t-test over seeds alone takes a draw of test records that every seed shares for an effect (19-58 %
on such a null of the mirror's runs). A sign-flip test over seeds cannot go below 0.25 with 3
seeds. Holm's step-down correction runs over a pre-registered family of comparisons.
"""

from collections.abc import Mapping, Sequence

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


def resampled_scores(y_true: np.ndarray, probabilities: np.ndarray, n_resamples: int = N_RESAMPLES,
                     seed: int = RESAMPLING_SEED) -> dict[str, np.ndarray]:
    """One run's macro scores on each stratified resample of its test records: the resamples every
    run of the same test split shares (same labels, same seed), so the tables can use them as they are."""
    return weighted_macro_scores(y_true, probabilities, stratified_weights(y_true, n_resamples, seed))


def bootstrap_intervals(resampled: dict[str, np.ndarray], confidence: float = CONFIDENCE,
                        n_resamples: int = N_RESAMPLES, seed: int = RESAMPLING_SEED) -> dict:
    """One run's intervals of macro-F1 and macro-AUROC from its `resampled_scores`, for metrics.json
    (None where undefined)."""
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

    def add(self, dataset: str, key: tuple, y_true: Sequence[int], probabilities: Sequence[Sequence[float]],
            resampled: Mapping | None = None) -> None:
        """A run's resampled scores: `resampled` as the run stored them (metrics.json's `resampled`,
        taken when made by this method: the same resamples), else computed from its predictions,
        which at the releases' test sizes is most of the tables' time (~0.1 s a run)."""
        y_true = np.asarray(y_true, int)
        if dataset not in self._labels:
            self._labels[dataset] = y_true
        elif not np.array_equal(self._labels[dataset], y_true):
            raise ValueError(f"{key}: scored on other test records than the dataset's other runs")
        if not len(y_true):
            return
        if resampled and resampled.get("method") == method(self.n_resamples, self.seed):
            self._scores[key] = {metric: np.asarray(resampled[metric], float) for metric in MACRO_METRICS}
            return
        if dataset not in self._weights:
            self._weights[dataset] = stratified_weights(y_true, self.n_resamples, self.seed)
        self._scores[key] = weighted_macro_scores(y_true, np.asarray(probabilities, float), self._weights[dataset])

    def __contains__(self, key: tuple) -> bool:
        return key in self._scores

    def interval(self, metric: str, keys: Sequence[tuple]) -> list[float] | None:
        """Interval of the mean over `keys` (runs, e.g. seeds); None unless every run has its scores."""
        if not keys or any(k not in self._scores for k in keys):
            return None
        return percentile_interval(np.mean([self._scores[k][metric] for k in keys], axis=0), self.confidence)

    def resampled(self, metric: str, keys: Sequence[tuple]) -> np.ndarray | None:
        """[len(keys), n_resamples]: each run's score on each shared resample; None unless every run has them."""
        if not keys or any(k not in self._scores for k in keys):
            return None
        return np.array([self._scores[k][metric] for k in keys])

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


def paired_test(arm: Sequence[float], baseline: Sequence[float], arm_resampled: np.ndarray | None = None,
                baseline_resampled: np.ndarray | None = None) -> dict:
    """Two-sided test of mean(arm - baseline) over matched seeds, its variance from the seeds and the test records.

    `arm`, `baseline`: [n] scores on the whole test split, seed by seed; `*_resampled`: [n, resamples]
    the same runs' scores on the shared resamples of the test records (SharedResamples.resampled).

    Per seed s the difference is d_s = mu + u_s + e_s: u_s the seed's own (variance tau^2), e_s the
    test records' (variance v; covariance c between two seeds, since both arms and every seed are
    scored on the same records). The mean difference has variance tau^2/n + v_R, v_R = v/n + c(n-1)/n
    the records' variance of the seed mean, and the seeds' sample variance s^2 has expectation
    tau^2 + v - c. The resamples give v_R and c to within their many records; s^2 has n - 1 degrees
    of freedom. So se^2 = s^2/n + c (unbiased), but never below v_R (tau^2 >= 0: where the seeds
    differ less than the records alone would make them, the records' variance stands; the moment
    estimate of tau^2 truncated at 0). t = mean / se is referred to Student's t with Welch and
    Satterthwaite's degrees of freedom, df = (n - 1) (se^2 / (s^2/n))^2: n - 1 where the seeds'
    spread is all of se^2 (the paired t-test), more as the records' part grows. Level and power on
    the mirror's classifiers: benchmarks/paired_test_calibration.py.

    Without resampled scores (no stored predictions) the records' part is unknown and the test is
    the paired t-test over seeds (`test` says which). Pairs with a missing side are dropped. Returns
    n, mean and sample std of the differences, se, df, p, p_seeds (the t-test over seeds alone) and test."""
    arm, baseline = np.asarray(arm, float), np.asarray(baseline, float)
    paired = np.isfinite(arm) & np.isfinite(baseline)
    seeds = paired_t_test(arm, baseline)
    n, mean, std = seeds["n"], seeds["mean_difference"], seeds["std_difference"]
    result = {**seeds, "p_seeds": seeds["p"], "se": np.nan, "df": np.nan, "test": "seeds only"}
    if n < 2 or arm_resampled is None or baseline_resampled is None:
        return result
    differences = (np.asarray(arm_resampled, float) - np.asarray(baseline_resampled, float))[paired]
    differences = differences[:, np.isfinite(differences).all(axis=0)]  # e.g. AUROC undefined on a resample
    if differences.shape[1] < 2:
        return result
    covariance = np.cov(differences)  # [n, n] over resamples
    shared = max(0.0, (covariance.sum() - np.trace(covariance)) / (n * (n - 1)))  # c
    records = covariance.sum() / n ** 2  # v_R: the variance of the seed mean over resamples
    seed_part = std ** 2 / n
    se = np.sqrt(max(seed_part + shared, records))
    if se < 1e-12:  # no spread from either source: as paired_t_test (1, or 2 / 2^n for a constant gain)
        p, df = seeds["p"], np.nan
    else:
        df = (n - 1) * (se ** 2 / seed_part) ** 2 if seed_part > 0 else np.inf
        p = float(2 * stats.t.sf(abs(mean) / se, df))
    return {**result, "se": float(se), "df": float(df), "p": p, "test": "seeds and test records"}


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


def verdict(mean_difference: float, n: int, p: float, alpha: float = 0.05, exploratory: bool = False) -> str:
    """Plain reading of one comparison of a higher-is-better score: `p` Holm-adjusted over the
    pre-registered family, or, for an exploratory comparison, unadjusted (and the verdict says so)."""
    if n < 2:
        return "n < 2: no test"
    reading = "better" if mean_difference > 0 else "worse"
    if not (np.isfinite(p) and p < alpha):
        reading = "no supported difference"
    return f"{reading} (exploratory)" if exploratory else reading

