"""Do a generator's records beat like real records of their class? Measured per class, beside real floors.

For each class: the share of synthetic records with a detectable rhythm and the share whose
rhythm fits the class (`synthecg.evaluation.rhythm`), next to the same shares for real records
of the class (what a perfect generator would score; held-out and training records, also shown
apart) and the shuffled-label floor (the share of all real records whose rhythm fits the class
rule: what records with the wrong label score). Its counterpart on the generator's side, the
generator's label floor: the share of the class's records that would fit it if their beats were
those of the generator's other classes (the class's detectable share x the share of the other
classes' detectable records that fit the class). Taken among detectable records, so that a class
the detectors read less often is not mistaken for one whose label carries no rhythm. A generator
whose class label carries no rhythm scores its fitting share at about this floor (an undertrained
model that beats slowly and irregularly in every class "fits" SB and AFIB so).
Beside them: per-lead amplitude and per-band power against real, the limb-lead residual (0 for
real ECG), and how close each record is to its nearest real training record (a copy scores 1).

`passes` applies the goal of the generator-quality issue to each class: a detectable rhythm in
at least 90 % of records, a class-fitting share within 15 points of real records, and
the amplitude within 25 % of real: the median over leads of the per-lead ratio, with no lead off
by more than 50 %. Per lead the issue asked 25 %, but real records miss that against each other:
two halves of the mirror's 25 SB training records differ by up to 26 % in a lead, and its 9 SB
held-out records differ from them by up to 33 % (benchmarks/generator_quality.py prints the ratios).
The reference amplitude of a class is every real record of it at hand.
"""

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.signal import welch

from synthecg.data.leads import limb_lead_residual
from synthecg.evaluation.rhythm import analyse_records, fits_class, rhythm_by_class

BANDS_HZ = {"0.5-5 Hz": (0.5, 5.0), "5-15 Hz": (5.0, 15.0), "15-40 Hz": (15.0, 40.0)}
GOAL = {"detectable": 0.9, "fits_class_gap": 0.15, "amplitude_tolerance": 0.25, "lead_amplitude_tolerance": 0.5}


BLOCK = 1024  # records worked on at a time: float64 temporaries of one block, whatever the set's size
MAX_FLOOR_QUERIES = 1000  # held-out records whose nearest-training correlation makes the floor (a seeded sample)


def per_record(measure, x: np.ndarray) -> np.ndarray:
    """measure(records) -> one row per record, computed a block of records at a time."""
    return np.concatenate([measure(x[i : i + BLOCK]) for i in range(0, len(x), BLOCK)]) if len(x) else measure(x)


def record_lead_std(x_mv: np.ndarray) -> np.ndarray:
    """Each lead's standard deviation within each record [N, leads, T] -> [N, leads], mV."""
    return per_record(lambda block: np.asarray(block).std(axis=-1), x_mv)


def lead_amplitude(x_mv: np.ndarray) -> np.ndarray:
    """Median over records of each lead's standard deviation within the record [N, leads, T] -> [leads], mV."""
    return np.median(record_lead_std(x_mv), axis=0)


def band_power(x_mv: np.ndarray, fs: int) -> dict[str, float]:
    """Mean Welch power per band over records and leads, a block of records at a time."""
    total, count = 0.0, 0
    for i in range(0, len(x_mv), BLOCK):
        block = np.asarray(x_mv[i : i + BLOCK], np.float64)
        frequencies, power = welch(block, fs=fs, nperseg=min(256, block.shape[-1]), axis=-1)
        total, count = total + power.sum(axis=(0, 1)), count + power.shape[0] * power.shape[1]
    mean = total / count
    return {name: float(mean[(frequencies >= low) & (frequencies < min(high, fs / 2))].mean())
            for name, (low, high) in BANDS_HZ.items()}


def nearest_correlation(queries: np.ndarray, references: np.ndarray, chunk: int = 256) -> np.ndarray:
    """For each query record [Q, leads, T], its largest Pearson correlation with a reference record [R, leads, T].

    Records are flattened over leads and time and compared whole: 1 is an exact copy (up to
    scale and offset), real records of one person reach ~0.9, unrelated ones ~0.3. The references
    are standardised a block at a time, so memory does not grow with their number.
    """
    def standardised(x):
        flat = np.asarray(x, np.float64).reshape(len(x), -1)
        flat = flat - flat.mean(axis=1, keepdims=True)
        return flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-12)

    queries = [standardised(queries[i : i + chunk]) for i in range(0, len(queries), chunk)]
    best = [np.full(len(q), -np.inf) for q in queries]
    for start in range(0, len(references), BLOCK):
        block = standardised(references[start : start + BLOCK])
        for q, top in zip(queries, best):
            np.maximum(top, (q @ block.T).max(axis=1), out=top)
    return np.concatenate(best) if best else np.zeros(0)


def real_reference(heldout_mv: np.ndarray, heldout_y: np.ndarray, fs: int, leads: Sequence[str],
                   train_mv: np.ndarray | None = None, train_y: np.ndarray | None = None, processes: int = 1,
                   rhythms: dict | None = None) -> dict:
    """What synthetic records are judged against: real records in mV [N, leads, T] with labels and
    their rhythm, held-out (validation + test) and, when given, the generator's training records.

    Computed once and reused for every generator: reading the rhythm takes ~60 ms a record, so
    `rhythms` may bring it already read ({"heldout": ..., "train": ...}, `analyse_records` tables).
    """
    rhythms = rhythms or {}
    parts = {"heldout": (heldout_mv, heldout_y)} | ({"train": (train_mv, train_y)} if train_mv is not None else {})
    return {name: (x, np.asarray(y), rhythms[name] if name in rhythms else analyse_records(x, fs, leads, processes))
            for name, (x, y) in parts.items()}


def generator_quality(synthetic_mv: np.ndarray, synthetic_y: np.ndarray, reference: dict,
                      classes: Sequence[str], fs: int, leads: Sequence[str], processes: int = 1,
                      synthetic_rhythm: pd.DataFrame | None = None) -> dict:
    """The per-class rhythm figures and the signal measures of one synthetic set [N, leads, T] in mV.

    A class's real share (what a perfect generator would score) pools every real record of the
    class in `reference` (held-out and training): the held-out split alone is too small for the
    rare classes (9 SB records on the mirror; one record is 11 points). Both parts are reported
    too. With training records in `reference`, also each record's nearest-training-record
    correlation, for synthetic and (as the floor) held-out real records.
    """
    if synthetic_rhythm is None:  # else read already, one row per record (the pipeline's synthetic_rhythm)
        synthetic_rhythm = analyse_records(synthetic_mv, fs, leads, processes)
    synthetic_by_class = rhythm_by_class(synthetic_rhythm, synthetic_y, classes)
    # The real records' parts are measured apart and their per-record figures pooled: the
    # records themselves are never copied into one array.
    parts = [reference[key] for key in ("heldout", "train") if key in reference]
    real_y = np.concatenate([y for _, y, _ in parts])
    real_rhythm = pd.concat([rhythm for _, _, rhythm in parts], ignore_index=True)
    real_by_class = rhythm_by_class(real_rhythm, real_y, classes)
    by_part = {key: rhythm_by_class(reference[key][2], reference[key][1], classes) for key in reference}
    real_std = np.concatenate([record_lead_std(x) for x, _, _ in parts])
    real_amplitude = np.median(real_std, axis=0)
    synthetic_std = record_lead_std(synthetic_mv)
    per_class = {}
    for index, name in enumerate(classes):
        if name not in synthetic_by_class:
            continue
        mine, real_mine = np.asarray(synthetic_y) == index, real_y == index
        reference_amplitude = np.median(real_std[real_mine], axis=0) if real_mine.any() else real_amplitude
        amplitude_ratio = np.median(synthetic_std[mine], axis=0) / np.maximum(reference_amplitude, 1e-9)
        floor = fits_class(real_rhythm, [name] * len(real_rhythm))
        other_rhythm = synthetic_rhythm[~mine]
        others = fits_class(other_rhythm, [name] * len(other_rhythm))[other_rhythm["detected"].to_numpy(bool)]
        synthetic, real = synthetic_by_class[name], real_by_class.get(name)
        per_class[name] = {
            "synthetic": synthetic,
            "real": real,
            **{f"real_{key}": by_part[key].get(name) for key in by_part},
            "shuffled_label_floor": None if np.isnan(floor).all() else float(np.mean(floor)),
            "generator_label_floor": None if not len(others) or np.isnan(others).all()
            else synthetic["detectable"] * float(np.mean(others)),
            "amplitude_ratio": {lead: float(r) for lead, r in zip(leads, amplitude_ratio)},
            "amplitude_ratio_median": float(np.median(amplitude_ratio)),
            "passes": passes(synthetic, real, amplitude_ratio),
        }
    heldout_x = reference["heldout"][0]
    real_power = _pooled_band_power([x for x, _, _ in parts], fs)
    synthetic_power = band_power(synthetic_mv, fs)
    report = {
        "classes": list(classes),
        "n_synthetic": int(len(synthetic_mv)),
        "n_real": {key: int(len(reference[key][0])) for key in reference},
        "per_class": per_class,
        "amplitude_ratio": {lead: float(r) for lead, r in zip(
            leads, np.median(synthetic_std, axis=0) / np.maximum(real_amplitude, 1e-9))},
        "band_power_ratio": {band: synthetic_power[band] / real_power[band] for band in BANDS_HZ},
        "limb_lead_residual_median": {
            "synthetic": float(np.median(per_record(limb_lead_residual, synthetic_mv))),
            "real": float(np.median(np.concatenate([per_record(limb_lead_residual, x) for x, _, _ in parts]))),
        },
        "passes_all_classes": bool(per_class) and all(entry["passes"] for entry in per_class.values()),
    }
    if "train" in reference:
        # The floor on a seeded sample of held-out records: every one against every training
        # record would grow with the square of the data (9,000 x 36,000 records for Chapman).
        train_x = reference["train"][0]
        floor_rows = np.sort(np.random.default_rng(0).permutation(len(heldout_x))[:MAX_FLOOR_QUERIES])
        report["nearest_train_correlation_median"] = {
            "synthetic": float(np.median(nearest_correlation(synthetic_mv, train_x))),
            "real_heldout": float(np.median(nearest_correlation(heldout_x[floor_rows], train_x))),
            "n_real_heldout": int(len(floor_rows)),
        }
    return report


def _pooled_band_power(parts: Sequence[np.ndarray], fs: int) -> dict[str, float]:
    """band_power over several arrays of records as if they were one, without joining them."""
    powers = [(band_power(x, fs), len(x)) for x in parts if len(x)]
    total = sum(n for _, n in powers)
    return {band: sum(power[band] * n for power, n in powers) / total for band in BANDS_HZ}


def passes(synthetic: dict, real: dict | None, amplitude_ratio: np.ndarray) -> bool:
    """The goal for one class (module docstring); a class without real held-out records cannot pass."""
    if real is None or synthetic["fits_class"] is None or real["fits_class"] is None:
        return False
    ratio = np.asarray(amplitude_ratio)
    return bool(
        synthetic["detectable"] >= GOAL["detectable"]
        and abs(synthetic["fits_class"] - real["fits_class"]) <= GOAL["fits_class_gap"]
        and abs(np.median(ratio) - 1) <= GOAL["amplitude_tolerance"]
        and np.all(np.abs(ratio - 1) <= GOAL["lead_amplitude_tolerance"])
    )
