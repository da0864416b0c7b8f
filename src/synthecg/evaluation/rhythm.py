"""Is there a rhythm in a record, how fast, how regular, and does it fit the record's class?

Beats come from two well-kept QRS detectors of `wfdb.processing`, XQRS and GQRS, run on the
same lead. Where they agree (bSQI, Li, Clifford & Mark 2008: the share of beats that both find
within 150 ms of each other) the beats are trusted; where they disagree the lead has no rhythm a
detector can read. A record has a *detectable rhythm* when two of the leads in
`DETECTION_LEADS` reach `MIN_AGREEMENT` on their own and their beats agree with each other:
a heart beats in every lead at once, noise does not. Heart rate and RR regularity come from the
best agreeing lead. White or low-passed noise, flat records and records at a tenth of real
amplitude read as "no rhythm" instead of as a heart rate (tests/test_rhythm.py).

Before detection each lead loses its baseline (200 ms then 600 ms median filters, the classic
ECG baseline estimate, which also absorbs a baseline step) and is resampled to 250 Hz: both
detectors were tuned for 250-360 Hz, and at 100 Hz XQRS counts T waves as beats (an SB record at
48 bpm reads ~90). GQRS works in physical units (QRS amplitude thresholds in µV), so records must
be in mV.

The class rules are the textbook definitions, on 10-s records: SB under 60 bpm; GSVT (sinus and
supraventricular tachycardias) over 100 bpm; SR 60-100 bpm and regular; AFIB irregular.
Regularity is the median absolute change between successive RR intervals over the median RR
(robust to one ectopic beat, which a coefficient of variation is not). On the mirror's real
PTB-XL records 93 % of SR lie under `IRREGULARITY_LIMIT` and 90 % of AFIB above it.
"""

import logging
from collections.abc import Mapping, Sequence
from fractions import Fraction

import numpy as np
import pandas as pd
from scipy.signal import medfilt, resample_poly
from scipy.stats import wasserstein_distance
from wfdb import processing

DETECTION_FS = 250  # Hz the detectors run at (see the module docstring)
DETECTION_LEADS = ("II", "V2", "V5")  # limb lead II and two precordial leads of different axes
AGREEMENT_TOLERANCE_S = 0.15  # beats this close are the same beat (bSQI's usual window)
MIN_AGREEMENT = 0.9  # bSQI a lead needs, and two leads need with each other
MIN_BEATS = 4  # fewer agreed beats in 10 s (under ~24 bpm) is no rhythm
IRREGULARITY_LIMIT = 0.06  # median |ΔRR| / median RR above this is irregular
SR_RANGE_BPM = (60.0, 100.0)

COLUMNS = ["detected", "heart_rate_bpm", "rr_irregularity", "agreement", "n_beats", "lead"]


def agreement(a: np.ndarray, b: np.ndarray, tolerance: float) -> float:
    """bSQI of two beat lists (sample indices): 2 x (beats of a matched in b) / (len(a) + len(b))."""
    if len(a) == 0 or len(b) == 0:
        return 0.0
    nearest = np.abs(a[:, None] - b[None, :]).min(axis=1)
    return float(min(1.0, 2 * (nearest <= tolerance).sum() / (len(a) + len(b))))


def detect_beats(lead_mv: np.ndarray, fs: int) -> tuple[np.ndarray, np.ndarray]:
    """XQRS and GQRS beats of one lead [T] in mV, as sample indices at DETECTION_FS."""
    lead = np.asarray(lead_mv, np.float64)
    short, long = (2 * round(seconds * fs / 2) + 1 for seconds in (0.2, 0.6))  # odd kernels
    lead = lead - medfilt(medfilt(lead, short), long)
    ratio = Fraction(DETECTION_FS, fs)
    signal = resample_poly(lead, ratio.numerator, ratio.denominator)
    logging.getLogger("wfdb").disabled = True  # XQRS logs each learning phase
    xqrs = processing.xqrs_detect(signal, fs=DETECTION_FS, verbose=False)
    gqrs = processing.gqrs_detect(signal, fs=DETECTION_FS)
    return np.asarray(xqrs, np.int64), np.asarray(gqrs, np.int64)


def analyse_record(x_mv: np.ndarray, fs: int, leads: Sequence[str]) -> dict:
    """One record [leads, T] in mV -> {detected, heart_rate_bpm, rr_irregularity, agreement, n_beats, lead}.

    Heart rate (bpm, from the mean RR) and irregularity are NaN where the rhythm is not detectable.
    """
    tolerance = AGREEMENT_TOLERANCE_S * DETECTION_FS
    good = []  # (bSQI, lead name, XQRS beats) of leads whose two detectors agree
    best_score = 0.0
    for name in DETECTION_LEADS:
        lead = np.asarray(x_mv[list(leads).index(name)])
        if not np.isfinite(lead).all():
            continue
        xqrs, gqrs = detect_beats(lead, fs)
        score = agreement(xqrs, gqrs, tolerance)
        best_score = max(best_score, score)
        if score >= MIN_AGREEMENT and len(xqrs) >= MIN_BEATS:
            good.append((score, name, xqrs))
    good.sort(key=lambda item: -item[0])
    detected = len(good) >= 2 and agreement(good[0][2], good[1][2], tolerance) >= MIN_AGREEMENT
    if not detected:
        return {"detected": False, "heart_rate_bpm": np.nan, "rr_irregularity": np.nan,
                "agreement": best_score, "n_beats": int(len(good[0][2])) if good else 0, "lead": ""}
    score, name, beats = good[0]
    rr = np.diff(beats) / DETECTION_FS
    return {"detected": True, "heart_rate_bpm": float(60.0 / rr.mean()),
            "rr_irregularity": float(np.median(np.abs(np.diff(rr))) / np.median(rr)),
            "agreement": score, "n_beats": int(len(beats)), "lead": name}


def analyse_records(x_mv: np.ndarray, fs: int, leads: Sequence[str], processes: int = 1) -> pd.DataFrame:
    """Records [N, leads, T] in mV -> one row per record with the columns of `analyse_record`.

    ~60 ms a record on one core; `processes` > 1 spreads the records over worker processes.
    """
    if processes > 1 and len(x_mv) > processes:
        from concurrent.futures import ProcessPoolExecutor

        chunks = np.array_split(np.arange(len(x_mv)), processes)
        with ProcessPoolExecutor(processes) as pool:
            parts = pool.map(analyse_records, [x_mv[chunk] for chunk in chunks], [fs] * processes, [leads] * processes)
            return pd.concat(list(parts), ignore_index=True)
    return pd.DataFrame([analyse_record(record, fs, leads) for record in x_mv], columns=COLUMNS)


def fits_class(rhythm: pd.DataFrame, class_names: Sequence[str]) -> np.ndarray:
    """Whether each record's rhythm fits its class name -> float [N]: 1, 0, or NaN for a class with no rule.

    A record without a detectable rhythm fits no class.
    """
    rate, irregularity = rhythm["heart_rate_bpm"].to_numpy(float), rhythm["rr_irregularity"].to_numpy(float)
    with np.errstate(invalid="ignore"):
        rules = {
            "SR": (rate >= SR_RANGE_BPM[0]) & (rate <= SR_RANGE_BPM[1]) & (irregularity <= IRREGULARITY_LIMIT),
            "SB": rate < SR_RANGE_BPM[0],
            "GSVT": rate > SR_RANGE_BPM[1],
            "AFIB": irregularity > IRREGULARITY_LIMIT,
        }
    names = np.asarray(class_names)
    detected = rhythm["detected"].to_numpy(bool)
    result = np.full(len(rhythm), np.nan)
    for name, rule in rules.items():
        mine = names == name
        result[mine] = (rule & detected)[mine]
    return result


def rhythm_by_class(rhythm: pd.DataFrame, y: np.ndarray, classes: Sequence[str]) -> dict:
    """Per class present in y: {n, detectable, fits_class, heart_rate_median_bpm, rr_irregularity_median}.

    Shares are of all the class's records; `fits_class` is None for a class with no rule.
    """
    y = np.asarray(y)
    fits = fits_class(rhythm, np.asarray(classes)[y])
    report = {}
    for index, name in enumerate(classes):
        mine = y == index
        if not mine.any():
            continue
        part = rhythm[mine]
        rates = part["heart_rate_bpm"].dropna()
        report[name] = {
            "n": int(mine.sum()),
            "detectable": float(part["detected"].mean()),
            "fits_class": None if np.isnan(fits[mine]).all() else float(fits[mine].mean()),
            "heart_rate_median_bpm": float(rates.median()) if len(rates) else None,
            "rr_irregularity_median": float(part["rr_irregularity"].median()) if len(rates) else None,
        }
    return report


def _rate_summary(rhythm: pd.DataFrame) -> dict:
    rates = rhythm["heart_rate_bpm"].dropna().to_numpy()
    summary = {"n": int(len(rhythm)), "n_detected": int(len(rates)),
               "detectable": float(len(rates) / len(rhythm)) if len(rhythm) else None}
    if len(rates):
        q25, median, q75 = np.percentile(rates, [25, 50, 75])
        summary |= {"mean": float(rates.mean()), "std": float(rates.std()), "q25": float(q25),
                    "median": float(median), "q75": float(q75)}
    return summary


def heart_rate_by_class(real: pd.DataFrame, real_y: np.ndarray, synthetic: pd.DataFrame, synthetic_y: np.ndarray,
                        classes: Sequence[str]) -> dict:
    """Per class: real and synthetic heart-rate summaries (from `analyse_records`) and the
    Wasserstein-1 distance in bpm between them, None where a side has no detectable rhythm."""
    report = {}
    for index, name in enumerate(classes):
        real_part, synthetic_part = real[np.asarray(real_y) == index], synthetic[np.asarray(synthetic_y) == index]
        if not len(real_part) and not len(synthetic_part):
            continue
        real_rates = real_part["heart_rate_bpm"].dropna().to_numpy()
        synthetic_rates = synthetic_part["heart_rate_bpm"].dropna().to_numpy()
        distance = (float(wasserstein_distance(real_rates, synthetic_rates))
                    if len(real_rates) and len(synthetic_rates) else None)
        report[name] = {"real": _rate_summary(real_part), "synthetic": _rate_summary(synthetic_part),
                        "wasserstein_bpm": distance}
    return report


def rate_against_floor(real: pd.DataFrame, real_y: np.ndarray, synthetic: pd.DataFrame, synthetic_y: np.ndarray,
                       classes: Sequence[str], seed: int = 0) -> dict:
    """Per class with records on both sides: the Wasserstein-1 distance (bpm) between synthetic and real
    heart rates, and the share of synthetic records with a detectable rhythm minus that of real ones
    (`detectable_gap`; below 0: fewer readable records than real), each beside its floor:
    the same figure for half of the real records of the class against the other half, at the same
    N (`synthecg.evaluation.closeness.against_floor`). None where a side has too few records."""
    from synthecg.evaluation.closeness import against_floor

    report = {}
    for index, name in enumerate(classes):
        real_part, synthetic_part = real[np.asarray(real_y) == index], synthetic[np.asarray(synthetic_y) == index]
        if not len(real_part) or not len(synthetic_part):
            continue
        rates = [part["heart_rate_bpm"].dropna().to_numpy() for part in (synthetic_part, real_part)]
        detected = [part["detected"].to_numpy(float) for part in (synthetic_part, real_part)]
        report[name] = {
            "wasserstein_bpm": against_floor(lambda x, ref, rng: wasserstein_distance(x, ref), *rates, seed=seed),
            # A difference of shares, so that the floor holds both halves' sampling, not one's.
            "detectable_gap": against_floor(lambda x, ref, rng: float(x.mean() - ref.mean()), *detected, seed=seed),
        }
    return report


def split_rhythms(real_h5, processes: int = 1, block: int = 256) -> pd.DataFrame:
    """The rhythm of every record of a dataset's HDF5, split by split: columns split, row and `COLUMNS`.

    Read once per dataset (`results/quality/{dataset}/real_rhythm.csv`) and shared by every
    generator's quality and closeness reports. Records are read `block` at a time, each block
    by one of `processes` worker processes straight from the file, so memory stays at a block a
    process whatever the dataset's size (a whole split held in memory and sent to the workers
    took 2 GB at the releases' size).
    """
    from synthecg.data.store import metadata

    meta = metadata(real_h5)
    blocks = [
        (split, start, min(count, start + block))
        for split, count in meta["splits"].items()
        for start in range(0, count, block)
    ]
    arguments = ([str(real_h5)] * len(blocks), blocks, [meta["fs"]] * len(blocks), [meta["leads"]] * len(blocks))
    if processes > 1 and len(blocks) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(processes, len(blocks))) as pool:
            parts = list(pool.map(_block_rhythm, *arguments))
    else:
        parts = list(map(_block_rhythm, *arguments))
    return pd.concat(parts, ignore_index=True)[["split", "row", *COLUMNS]]


def _block_rhythm(real_h5: str, block: tuple[str, int, int], fs: int, leads: Sequence[str]) -> pd.DataFrame:
    """`analyse_records` over rows start:stop of one split of a dataset's HDF5 (stored in mV)."""
    from synthecg.data.store import open_store

    split, start, stop = block
    with open_store(real_h5) as handle:
        x_mv = handle[split]["x"][start:stop]
    return analyse_records(x_mv, fs, leads).assign(split=split, row=np.arange(start, stop))


def merged_split_rhythms(source_tables: Mapping[str, pd.DataFrame], merged_meta: Mapping) -> pd.DataFrame:
    """The `split_rhythms` table of a merged set from its sources' tables, without reading a record
    again: the merged set holds each source's records unchanged, split by split, in the order of
    its `merged_from` attribute (`merge_datasets`). The tables come as read from their CSV files
    (read them as strings to write them back unchanged); each split's rows are checked against the
    merged set's record count."""
    parts = []
    for split, count in merged_meta["splits"].items():
        offset = 0
        for name in merged_meta["merged_from"]:
            part = source_tables[name]
            part = part[part["split"] == split]
            parts.append(part.assign(row=part["row"].astype(int) + offset))
            offset += len(part)
        if offset != count:
            from synthecg.errors import PipelineError

            raise PipelineError(f"the rhythm tables of {merged_meta['merged_from']} have {offset} rows for split "
                                f"{split!r}, the merged set {count} records; delete them and rerun")
    return pd.concat(parts, ignore_index=True)


def read_split_rhythm(table: pd.DataFrame, split: str, n_records: int, source) -> pd.DataFrame:
    """One split's rows of a `split_rhythms` table, checked against the split's record count."""
    part = table[table["split"] == split].sort_values("row")
    if len(part) != n_records:
        from synthecg.errors import PipelineError

        raise PipelineError(f"{source}: has {len(part)} rhythm rows for split {split!r}, the data {n_records} records; "
                            "delete it and rerun")
    return typed_rhythm(part)


def typed_rhythm(table: pd.DataFrame) -> pd.DataFrame:
    """The rhythm columns of a table read back from CSV, typed as `analyse_records` gives them."""
    part = table[COLUMNS].reset_index(drop=True)
    return part.assign(detected=part["detected"].astype(bool), lead=part["lead"].fillna(""))
