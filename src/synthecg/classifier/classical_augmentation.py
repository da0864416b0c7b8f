"""Classical augmentation of real records, the cheap baseline a generator has to beat.

The transformations Iwana and Uchida (2021, "An empirical survey of data augmentation for time
series classification with neural networks", PLOS ONE) found safe for time series, plus the
baseline wander that ECG recordings themselves show. Each augmented record is one real training
record with all four applied, each with its own random draw:

- jitter: Gaussian noise, sd `jitter_std` (records are z-scored per lead, so 0.03 = 3 % of a
  lead's spread; Iwana and Uchida's sigma);
- scaling: each lead multiplied by a factor drawn from N(1, `scaling_std`) (their 0.1);
- time shift: a circular shift by up to `max_shift_seconds` either way (ECG rhythm is
  quasi-periodic, so the wrap-around joins two beats rather than inventing one);
- baseline wander: a sinusoid per lead, frequency uniform in 0.05 Hz..`wander_max_hz`, random
  phase, amplitude `wander_amplitude` (the respiration-band drift that filters usually remove).
"""

import copy
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from synthecg.errors import PipelineError


@dataclass(frozen=True)
class ClassicalAugmentation:
    jitter_std: float = 0.03
    scaling_std: float = 0.1
    max_shift_seconds: float = 1.0
    wander_amplitude: float = 0.2
    wander_max_hz: float = 0.5

    def __post_init__(self):
        for key, value in vars(self).items():
            if value < 0:
                raise PipelineError(f"config key experiments.classical_augmentation.{key}: {value} must be >= 0")


def make_classical_augmentation(settings: Mapping | None) -> ClassicalAugmentation:
    known = set(ClassicalAugmentation.__dataclass_fields__)
    unknown = sorted(set(settings or {}) - known)
    if unknown:
        raise PipelineError(f"config key experiments.classical_augmentation: unknown settings {unknown}; known: {sorted(known)}")
    return ClassicalAugmentation(**(settings or {}))


AUGMENT_BLOCK = 512  # records augmented at a time: float64 work arrays of one block, not of the whole set


def augment_records(x: np.ndarray, fs: float, settings: ClassicalAugmentation, rng: np.random.Generator,
                    rows: np.ndarray | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """Records [N, leads, T] (normalised), or x[rows] -> as many augmented copies, float32 (into `out`).

    Worked a block at a time, with the same random draws in the same order as one pass over all
    records (all jitter first, then the scalings, shifts and wander): the per-record draws are
    read after the jitter's by a copy of `rng` that skips it, and `rng` ends where one pass leaves it.
    """
    rows = np.arange(len(x)) if rows is None else np.asarray(rows)
    n, (n_leads, n_samples) = len(rows), x.shape[1:]
    out = np.empty((n, n_leads, n_samples), np.float32) if out is None else out
    blocks = [slice(i, min(i + AUGMENT_BLOCK, n)) for i in range(0, n, AUGMENT_BLOCK)]
    ahead = copy.deepcopy(rng)
    for block in blocks:  # the jitter's draws, skipped
        ahead.normal(0.0, settings.jitter_std, size=(block.stop - block.start, n_leads, n_samples))
    scaling = ahead.normal(1.0, settings.scaling_std, size=(n, n_leads, 1))
    max_shift = int(round(settings.max_shift_seconds * fs))
    shifts = ahead.integers(-max_shift, max_shift + 1, size=n) if max_shift else None
    if settings.wander_amplitude:
        t = np.arange(n_samples) / fs
        frequency = ahead.uniform(0.05, max(settings.wander_max_hz, 0.05), size=(n, n_leads, 1))
        phase = ahead.uniform(0, 2 * np.pi, size=(n, n_leads, 1))
    for block in blocks:
        part = x[rows[block]] + rng.normal(0.0, settings.jitter_std, size=(block.stop - block.start, n_leads, n_samples))
        part *= scaling[block]
        if shifts is not None:
            part = np.stack([np.roll(record, int(shift), axis=-1) for record, shift in zip(part, shifts[block])])
        if settings.wander_amplitude:
            part += settings.wander_amplitude * np.sin(2 * np.pi * frequency[block] * t + phase[block])
        out[block] = part
    rng.bit_generator.state = ahead.bit_generator.state
    return out


def classical_indices(y: np.ndarray, ratio: float, seed: int) -> np.ndarray:
    """round(ratio x count) source records per class, cycling through one seeded order of the
    class's records (each record used once before any is used twice)."""
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(y):
        pool = np.flatnonzero(y == c)
        n = round(ratio * len(pool))
        rounds = -(-n // len(pool))
        chosen.append(np.concatenate([rng.permutation(pool) for _ in range(rounds)])[:n] if n else pool[:0])
    return np.sort(np.concatenate(chosen)) if chosen else np.array([], dtype=int)
