"""Reading one WFDB record into a checked [12, T] float32 array in mV.

Every way a record can be unusable raises a `RecordError` whose `reason` goes into the QC
table: the header cannot be read, the signal is truncated, the rate or length is wrong, a
lead is missing, a value is NaN or a lead is flat.
"""

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import wfdb
from scipy.signal import resample_poly

from synthecg.data.store import STANDARD_LEADS
from synthecg.errors import RecordError

_LEAD_KEYS = [lead.upper() for lead in STANDARD_LEADS]


@dataclass(frozen=True)
class SignalSpec:
    """What a record must look like on disk (`source_fs`) and after resampling (`fs`)."""

    source_fs: int
    fs: int
    seconds: int = 10
    flat_lead_std_mv: float = 1e-3  # a lead whose std over the record is below this is dead

    @property
    def source_samples(self) -> int:
        return self.source_fs * self.seconds

    @property
    def samples(self) -> int:
        return self.fs * self.seconds


def read_record(path: str | Path, spec: SignalSpec) -> np.ndarray:
    """The record at `path` (no extension) as float32 [12, spec.samples] in mV, standard lead order."""
    path = Path(path)
    try:
        record = wfdb.rdrecord(str(path))
    except Exception as error:  # wfdb fails with bare ValueErrors deep inside numpy
        raise _diagnose_unreadable(path, error) from None
    if record.fs != spec.source_fs:
        raise RecordError("wrong_sampling_rate", f"{path}.hea: {record.fs:g} Hz, expected {spec.source_fs} Hz")
    if record.sig_len != spec.source_samples:
        raise RecordError(
            "wrong_length",
            f"{path}.hea: {record.sig_len} samples, expected {spec.source_samples} "
            f"({spec.seconds} s at {spec.source_fs} Hz)",
        )
    names = [name.upper() for name in record.sig_name]
    missing = [lead for lead, key in zip(STANDARD_LEADS, _LEAD_KEYS) if key not in names]
    if missing:
        raise RecordError("missing_leads", f"{path}.hea: no lead {missing} (has {record.sig_name})")
    units = {unit.lower() for unit in record.units}
    if units != {"mv"}:
        raise RecordError("wrong_units", f"{path}.hea: units {sorted(units)}, expected mV")
    order = [names.index(key) for key in _LEAD_KEYS]
    signal = record.p_signal.T[order].astype(np.float32)
    if not np.isfinite(signal).all():
        leads = [STANDARD_LEADS[i] for i in np.flatnonzero(~np.isfinite(signal).all(axis=1))]
        raise RecordError("nan_values", f"{path}: missing or non-finite samples in leads {leads}")
    flat = signal.std(axis=1) < spec.flat_lead_std_mv
    if flat.any():
        leads = [STANDARD_LEADS[i] for i in np.flatnonzero(flat)]
        raise RecordError("flat_lead", f"{path}: leads {leads} are flat (std < {spec.flat_lead_std_mv} mV)")
    if spec.fs != spec.source_fs:
        signal = resample(signal, spec.source_fs, spec.fs)
    return signal


def resample(signal: np.ndarray, from_fs: int, to_fs: int) -> np.ndarray:
    """Polyphase resampling along the last axis (anti-aliased by resample_poly's FIR filter)."""
    ratio = Fraction(to_fs, from_fs)
    return resample_poly(signal, ratio.numerator, ratio.denominator, axis=-1).astype(np.float32)


def _diagnose_unreadable(path: Path, error: Exception) -> RecordError:
    """Say which file is broken and how, instead of wfdb's reshape error."""
    try:
        header = wfdb.rdheader(str(path))
    except Exception as header_error:
        return RecordError("unreadable_header", f"{path}.hea: {header_error}")
    if header.fmt and set(header.fmt) == {"16"} and header.file_name:
        signal_file = path.parent / header.file_name[0]
        expected = header.sig_len * header.n_sig * 2
        actual = signal_file.stat().st_size if signal_file.exists() else 0
        if actual < expected:
            return RecordError(
                "truncated_signal",
                f"{signal_file}: {actual} bytes, the header promises {expected}; the file is truncated",
            )
    files = ", ".join(sorted(set(header.file_name or [])))
    return RecordError(
        "unreadable_signal", f"{path.parent / files}: wfdb cannot read it; truncated or corrupt? ({error})"
    )
