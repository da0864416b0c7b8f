"""Does a synthetic set give its training records away? Copies, and nearness to training records.

Two questions, two kinds of evidence:

- *Exact copies*: a synthetic record equal to a training record, up to float32 round trips
  (mV <-> normalised, as the pipeline stores and reads records). Found on the raw signals by
  `nearest`, whose winner's distance is recomputed exactly: the fast ‖q‖² + ‖r‖² − 2q·r
  expansion loses ~1e-6 to 1e-5 to cancellation on 12 x 1000 records, more than a copy's
  own distance.
- *Nearer its training data than unseen real records are* (membership; a shifted or noised
  copy is still a copy): distance to closest record (DCR) after Platzer & Reutterer (2021,
  "Holdout-based empirical assessment of mixed-type synthetic data", Front. Big Data 4:679939).
  Per synthetic record, the nearest training record is compared with the nearest held-out
  record, the training set subsampled to the holdout's size so that chance is exactly 1/2:
  `dcr_share` is the share of synthetic records nearer a training record (0.5: no
  memorisation). In the low tail, where a few copies among many records would hide,
  `dcr_tail_share` is the share of synthetic records nearer a training record than the 5th
  percentile of their distances to held-out records (about 0.05 without memorisation; a low
  percentile rather than the minimum, which depends on the sets' sizes, and a share rather than
  a ratio of percentiles, which is 0/0 once copies fill both tails).
  Both are computed on median beats (`median_beats`), not raw samples: in raw L2 the nearest
  record is mostly a few bland "hub" records whatever the query, and a copy shifted by a
  quarter second is as far as any other record. The null comes from the real records
  themselves: if a generator knows nothing of which records it trained on, the labels
  "training" and "held-out" are exchangeable, so the statistics over random re-splits of the
  real records (same sizes) give their distribution without memorisation (a permutation
  test; interval and p-value). Bland synthetic records, near every real record, stay at the
  null because they are as near the held-out ones.
"""

import numpy as np
from scipy.signal import butter, find_peaks, sosfiltfilt
from scipy.special import gammaln

from synthecg.evaluation.closeness import squared_distances
from synthecg.evaluation.statistics import percentile_interval

COPY_RTOL = 1e-4  # a copy is within this share of the training record's norm; float32 round trips leave ~1e-7
BEAT_WINDOW_S = (-0.25, 0.45)  # around each QRS: the P wave before, the T wave after
PERMUTATIONS = 500
PERCENTILE = 5


# -- nearest records ---------------------------------------------------------------------------
def nearest(queries: np.ndarray, references: np.ndarray, block: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """For each query record, its nearest reference record (flattened Euclidean): (distances, indices).

    The winner is found with the fast expansion and its distance recomputed exactly, so that a
    copy reads 0 (or a float32 round trip's ~1e-7 of the norm), not the expansion's residue.
    """
    q = queries.reshape(len(queries), -1).astype(np.float64)
    r = references.reshape(len(references), -1).astype(np.float64)
    r_norms = (r**2).sum(1)
    index = np.empty(len(q), dtype=np.int64)
    for start in range(0, len(q), block):
        part = q[start : start + block]
        index[start : start + block] = (r_norms[None] - 2 * part @ r.T).argmin(1)  # ‖q‖² is the same for every r
    return np.sqrt(((q - r[index]) ** 2).sum(1)), index


def nearest_distances(queries: np.ndarray, references: np.ndarray, block: int = 256) -> np.ndarray:
    """Euclidean distance from each query record to its nearest reference record (exact for the winner)."""
    return nearest(queries, references, block)[0]


class CopyIndex:
    """Finds copies of reference records [R, ...] among query records, in time and memory linear
    in both counts (all pairs of 100,000 synthetic and 50,000 training records of 12 x 1,000
    samples would take ~10^14 operations).

    A copy q of reference r lies within rtol·‖r‖ of it, so along any unit direction their
    projections differ by at most that much. The references' projections onto PROJECTIONS random
    orthonormal directions are sorted along the first; a query's candidates are the references in
    the window its first projection allows, kept if every projection agrees within each one's own
    bound, and the survivors' distances computed exactly: no copy is missed, none invented.
    """

    PROJECTIONS = 8

    def __init__(self, references: np.ndarray, rtol: float = COPY_RTOL, seed: int = 0, block: int = 1024):
        self.references, self.rtol, self.block = references, rtol, block
        dims = int(np.prod(references.shape[1:]))
        basis = np.random.default_rng(seed).normal(size=(dims, self.PROJECTIONS))
        self.basis = np.linalg.qr(basis)[0]  # orthonormal columns: a projection never lengthens a difference
        projected, norms = self._project(references)
        self.order = np.argsort(projected[:, 0], kind="stable")
        self.projected, self.norms = projected[self.order], norms[self.order]
        self.bounds = rtol * np.maximum(self.norms, np.finfo(np.float32).tiny)
        self.widest = self.bounds.max(initial=0.0)

    def _project(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(projections [N, PROJECTIONS], norms [N]) of records, a float64 block at a time."""
        projected, norms = np.zeros((len(x), self.PROJECTIONS)), np.zeros(len(x))
        for i in range(0, len(x), self.block):
            part = np.asarray(x[i : i + self.block], np.float64).reshape(-1, self.basis.shape[0])
            projected[i : i + len(part)], norms[i : i + len(part)] = part @ self.basis, np.sqrt((part**2).sum(1))
        return projected, norms

    def copies(self, queries: np.ndarray) -> np.ndarray:
        """Whether each query record is a copy of a reference record: within rtol of its norm."""
        projected, _ = self._project(queries)
        first = self.projected[:, 0]
        low = np.searchsorted(first, projected[:, 0] - self.widest, side="left")
        high = np.searchsorted(first, projected[:, 0] + self.widest, side="right")
        found = np.zeros(len(queries), bool)
        for i in np.flatnonzero(high > low):
            candidates = np.arange(low[i], high[i])
            near = np.all(np.abs(self.projected[candidates] - projected[i]) <= self.bounds[candidates, None], axis=1)
            for j in candidates[near]:
                q = np.asarray(queries[i], np.float64).ravel()
                r = np.asarray(self.references[self.order[j]], np.float64).ravel()
                if np.sqrt(((q - r) ** 2).sum()) <= self.bounds[j]:
                    found[i] = True
                    break
        return found


def exact_copies(queries: np.ndarray, references: np.ndarray, rtol: float = COPY_RTOL) -> np.ndarray:
    """Whether each query record is a copy of a reference record: within `rtol` of its norm."""
    return CopyIndex(references, rtol).copies(queries)


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances [len(a), len(b)] of flattened rows (for DCRs)."""
    return np.sqrt(squared_distances(a, b))


# -- a representation where a shifted copy is still a copy --------------------------------------
def qrs_positions(record: np.ndarray, fs: int) -> np.ndarray:
    """QRS complexes of one record [leads, T] (any units): peaks of the Pan & Tompkins (1985) energy
    envelope (5-15 Hz band, derivative, squared, 150 ms moving average), summed over leads so that
    no single lead's noise or polarity decides; at least 250 ms apart (240 bpm)."""
    band = sosfiltfilt(butter(2, [5, min(15, 0.45 * fs)], btype="band", fs=fs, output="sos"), record, axis=-1)
    energy = (np.diff(band, axis=-1) ** 2).sum(0)
    width = max(1, round(0.15 * fs))
    envelope = np.convolve(energy, np.ones(width) / width, mode="same")
    peaks, _ = find_peaks(envelope, distance=max(1, round(0.25 * fs)), height=0.3 * np.percentile(envelope, 99))
    return peaks


def median_beats(x: np.ndarray, fs: int, window_s: tuple[float, float] = BEAT_WINDOW_S) -> np.ndarray:
    """Records [N, leads, T] -> the median beat of each [N, leads, W]: every lead cut around each
    QRS (`qrs_positions`) and the median taken over beats.

    The median beat (representative beat, as ECG analysis programs compute it) keeps a record's
    morphology and forgets where its beats fall, so a copy shifted in time lands on its source.
    A record without a detectable QRS falls back to the window at its centre.
    """
    before, after = round(-window_s[0] * fs), round(window_s[1] * fs)
    beats = np.empty((len(x), x.shape[1], before + after), np.float32)
    for i in range(len(x)):
        record = np.asarray(x[i], np.float64)  # one record at a time: the whole set in float64 is gigabytes
        peaks = qrs_positions(record, fs)
        peaks = peaks[(peaks >= before) & (peaks + after <= record.shape[-1])]
        if not len(peaks):
            peaks = np.array([record.shape[-1] // 2])
        windows = np.stack([record[:, p - before : p + after] for p in peaks])
        beats[i] = np.median(windows, axis=0)
    return beats


# -- distance to closest record against its permutation null -------------------------------------
def count_below(sorted_rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per row, how many of its entries are smaller than its value: np.searchsorted(row, value) for
    every row at once, by bisection over the columns (a Python loop over rows cost a fifth of a
    permutation test's time)."""
    index = np.arange(len(values))
    lo, hi = np.zeros(len(values), np.int64), np.full(len(values), sorted_rows.shape[1], np.int64)
    while (searching := lo < hi).any():
        mid = (lo + hi) // 2
        smaller = sorted_rows[index, np.minimum(mid, sorted_rows.shape[1] - 1)] < values
        lo = np.where(searching & smaller, mid + 1, lo)
        hi = np.where(searching & ~smaller, mid, hi)
    return lo


def dcr_statistics(distances: np.ndarray, train: np.ndarray, holdout: np.ndarray,
                   sorted_rows: np.ndarray | None = None) -> tuple[float, float]:
    """(dcr_share, dcr_tail_share) of queries, given their distances to a pool of real records
    [queries, pool] and which pool columns are training and which held-out records;
    `sorted_rows` is `distances` sorted along each row, if at hand (a permutation test reuses it).

    Both are expectations over training subsamples of the holdout's size, in closed form: a query
    with k training records nearer than a distance d keeps them all out of a subsample of h of n
    with probability C(n − k, h) / C(n, h). The share takes d = the query's nearest held-out
    record; the tail share (queries nearer a training record than the 5th percentile of the
    queries' held-out DCRs) takes d = that percentile. Counting k on sorted rows costs a binary
    search a query, so a test of 500 re-splits stays linear in the pool.
    """
    n, h = len(train), len(holdout)
    rows = np.sort(distances, axis=1) if sorted_rows is None else sorted_rows
    to_holdout_all = distances[:, holdout]
    to_holdout = to_holdout_all.min(1)
    k = count_below(rows, to_holdout)  # no held-out column is nearer than their minimum: all k are training records
    threshold = np.percentile(to_holdout, PERCENTILE)
    k_tail = count_below(rows, np.full(len(rows), threshold)) - (to_holdout_all < threshold).sum(1)

    def kept_out(k):  # C(n − k, h) / C(n, h): a subsample of h misses all k
        with np.errstate(invalid="ignore"):
            log_miss = gammaln(n - k + 1) - gammaln(n - k - h + 1) - gammaln(n + 1) + gammaln(n - h + 1)
        return np.where(n - k >= h, np.exp(log_miss), 0.0)

    return float((1 - kept_out(k)).mean()), float((1 - kept_out(k_tail)).mean())


def membership(queries: np.ndarray, train: np.ndarray, holdout: np.ndarray, permutations: int = PERMUTATIONS,
               seed: int = 0) -> dict:
    """DCR share and tail share of queries [Q, D] against training [N, D] and held-out [H, D]
    records (any one representation, e.g. flattened median beats), each beside its permutation null:
    the same statistic over `permutations` random re-splits of the real records into sets of the
    same sizes. `floor` is the null's median, `floor_interval` its central 95 %, `p` one-sided (nearer
    training). A holdout larger than the training set is cut to its size, so that the share's
    chance stays 1/2.
    """
    rng = np.random.default_rng(seed)
    queries, train, holdout = (np.asarray(a).reshape(len(a), -1) for a in (queries, train, holdout))
    if len(holdout) > len(train):
        holdout = holdout[np.sort(rng.permutation(len(holdout))[: len(train)])]
    n, h = len(train), len(holdout)
    pool = np.concatenate([train, holdout])
    distances = np.empty((len(queries), len(pool)))
    for i in range(0, len(queries), 256):  # a block of queries at a time: no float64 temporaries of the whole
        distances[i : i + 256] = pairwise_distances(queries[i : i + 256], pool)
    sorted_rows = np.sort(distances, axis=1)  # once: every re-split counts on it
    observed = dcr_statistics(distances, np.arange(n), np.arange(n, n + h), sorted_rows)
    null = []
    for _ in range(permutations):
        order = rng.permutation(n + h)
        null.append(dcr_statistics(distances, order[:n], order[n:], sorted_rows))
    null = np.array(null)
    report = {"n_queries": len(queries), "n_train": n, "n_holdout": h, "permutations": permutations}
    sizes = {"n": h, "queries": len(queries)}  # per side: the training set is subsampled to the holdout's size
    for column, name in enumerate(("dcr_share", "dcr_tail_share")):
        values = null[:, column]
        report[name] = {
            "value": observed[column], "floor": float(np.median(values)),
            "floor_interval": percentile_interval(values),
            "p": float((1 + (values >= observed[column]).sum()) / (1 + permutations)), **sizes,
        }
    return report
