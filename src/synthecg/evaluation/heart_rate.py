"""Heart rate from detected R peaks, and how far synthetic heart rates sit from real ones per class.

The detector is a simplified Pan-Tompkins: band-pass 5-15 Hz (the QRS band), square the slope of
every lead and sum them (a 12-lead QRS energy that does not depend on one lead's polarity),
integrate over 120 ms, and take the peaks above a fraction of the record's high-percentile
energy, at least 250 ms apart (no rhythm in our classes beats faster than 240 bpm). It needs no
training and works at 100 Hz, which is what a sanity check of generated rhythms needs; it is not
a clinical-grade detector.
"""

import numpy as np
from scipy.signal import butter, find_peaks, sosfiltfilt
from scipy.stats import wasserstein_distance

MIN_RR_S = 0.25  # 240 bpm
QRS_WINDOW_S = 0.12
THRESHOLD = 0.3  # peaks must reach this fraction of the record's 99th-percentile energy


def r_peaks(x_mv: np.ndarray, fs: int) -> np.ndarray:
    """Sample indices of the R peaks of one record [leads, T] in mV."""
    x = np.asarray(x_mv, np.float64)
    high = min(15.0, 0.45 * fs)  # stay below Nyquist at low sampling rates
    band = sosfiltfilt(butter(2, [5.0, high], btype="band", fs=fs, output="sos"), x, axis=-1)
    energy = (np.diff(band, axis=-1) ** 2).sum(axis=0)
    window = max(1, round(QRS_WINDOW_S * fs))
    integrated = np.convolve(energy, np.ones(window) / window, mode="same")
    level = np.percentile(integrated, 99)
    if not np.isfinite(level) or level <= 0:
        return np.empty(0, dtype=int)
    peaks, _ = find_peaks(integrated, height=THRESHOLD * level, distance=max(1, round(MIN_RR_S * fs)))
    return peaks


def heart_rate_bpm(x_mv: np.ndarray, fs: int) -> float:
    """Mean heart rate of one record from its mean RR interval; NaN with fewer than two beats."""
    peaks = r_peaks(x_mv, fs)
    if len(peaks) < 2:
        return float("nan")
    return float(60.0 * fs / np.diff(peaks).mean())


def heart_rates(records_mv: np.ndarray, fs: int) -> np.ndarray:
    """Heart rate of each record [N, leads, T] -> [N] bpm (NaN where no rhythm is detected)."""
    return np.array([heart_rate_bpm(record, fs) for record in records_mv])


def _summary(rates: np.ndarray) -> dict:
    detected = rates[np.isfinite(rates)]
    summary = {"n": int(len(rates)), "n_detected": int(len(detected))}
    if len(detected):
        q25, median, q75 = np.percentile(detected, [25, 50, 75])
        summary |= {"mean": float(detected.mean()), "std": float(detected.std()), "q25": float(q25),
                    "median": float(median), "q75": float(q75)}
    return summary


def heart_rate_by_class(real_mv: np.ndarray, real_y: np.ndarray, synthetic_mv: np.ndarray, synthetic_y: np.ndarray,
                        classes: list[str], fs: int) -> dict:
    """Per class: real and synthetic heart-rate summaries and the Wasserstein-1 distance (bpm) between them.

    The distance is missing (None) where either side has no record with a detected rhythm.
    """
    real_rates, synthetic_rates = heart_rates(real_mv, fs), heart_rates(synthetic_mv, fs)
    report = {}
    for index, name in enumerate(classes):
        real, synthetic = real_rates[real_y == index], synthetic_rates[synthetic_y == index]
        if not len(real) and not len(synthetic):
            continue
        real_ok, synthetic_ok = real[np.isfinite(real)], synthetic[np.isfinite(synthetic)]
        distance = float(wasserstein_distance(real_ok, synthetic_ok)) if len(real_ok) and len(synthetic_ok) else None
        report[name] = {"real": _summary(real), "synthetic": _summary(synthetic), "wasserstein_bpm": distance}
    return report
