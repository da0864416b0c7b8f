import shutil

import numpy as np
import pytest
import wfdb

from synthecg.data.records import SignalSpec, read_record, resample
from synthecg.data.store import STANDARD_LEADS
from synthecg.errors import RecordError

SPEC_100 = SignalSpec(source_fs=100, fs=100)


def write_record(directory, name="rec", fs=100, seconds=10, leads=STANDARD_LEADS, signal=None):
    """A small WFDB record (format 16, mV) written with wfdb itself."""
    n = fs * seconds
    if signal is None:
        t = np.arange(n) / fs
        signal = np.stack([np.sin(2 * np.pi * (1 + i / 10) * t) * (0.5 + i / 20) for i in range(len(leads))], 1)
    wfdb.wrsamp(name, fs=fs, units=["mV"] * len(leads), sig_name=list(leads), p_signal=signal,
                fmt=["16"] * len(leads), adc_gain=[1000.0] * len(leads), baseline=[0] * len(leads),
                write_dir=str(directory))
    return directory / name


def test_reads_a_record_in_standard_lead_order(tmp_path):
    shuffled = list(reversed([lead.upper() for lead in STANDARD_LEADS]))  # PTB-XL spells 'AVR'
    path = write_record(tmp_path, leads=shuffled)
    x = read_record(path, SPEC_100)
    raw = wfdb.rdrecord(str(path)).p_signal.T
    assert x.shape == (12, 1000) and x.dtype == np.float32
    np.testing.assert_allclose(x, raw[::-1], atol=1e-6)  # reordered by name, not position


def test_resampling_keeps_a_sine_and_its_amplitude():
    fs_in, fs_out = 500, 100
    t = np.arange(10 * fs_in) / fs_in
    x = np.sin(2 * np.pi * 5 * t)[None].repeat(12, 0)
    y = resample(x, fs_in, fs_out)
    assert y.shape == (12, 1000)
    expected = np.sin(2 * np.pi * 5 * np.arange(1000) / fs_out)
    np.testing.assert_allclose(y[:, 50:-50], expected[None, 50:-50].repeat(12, 0), atol=0.01)


def test_resampling_removes_content_above_the_new_nyquist():
    t = np.arange(5000) / 500
    x = np.sin(2 * np.pi * 80 * t)[None]  # 80 Hz would alias to 20 Hz at 100 Hz
    assert np.abs(resample(x, 500, 100)[:, 50:-50]).max() < 0.05


def test_real_chapman_record_resampled_to_100_hz(mirror):
    path = mirror / "ecg-arrhythmia/1.0.0/WFDBRecords/01/010/JS00001"
    x = read_record(path, SignalSpec(source_fs=500, fs=100))
    raw = wfdb.rdrecord(str(path)).p_signal.T
    assert x.shape == (12, 1000)
    # Means over 1 s windows survive resampling.
    np.testing.assert_allclose(x.reshape(12, 10, 100).mean(-1), raw.reshape(12, 10, 500).mean(-1), atol=0.02)


@pytest.mark.parametrize(
    ("make", "reason", "names"),
    [
        (lambda d: write_record(d, fs=250, seconds=4), "wrong_sampling_rate", "250 Hz, expected 100 Hz"),
        (lambda d: write_record(d, seconds=5), "wrong_length", "500 samples, expected 1000"),
        (lambda d: write_record(d, leads=STANDARD_LEADS[:11] + ("X",)), "missing_leads", "V6"),
    ],
)
def test_header_problems_are_named(tmp_path, make, reason, names):
    path = make(tmp_path)
    with pytest.raises(RecordError) as caught:
        read_record(path, SPEC_100)
    assert caught.value.reason == reason
    assert str(path) in caught.value.detail and names in caught.value.detail


def test_flat_and_nan_leads(tmp_path):
    signal = np.random.default_rng(0).normal(size=(1000, 12))
    signal[:, 3] = 0.2
    with pytest.raises(RecordError, match="flat_lead.*aVR"):
        read_record(write_record(tmp_path, "flat", signal=signal), SPEC_100)
    signal = np.random.default_rng(0).normal(size=(1000, 12))
    signal[10:20, 7] = np.nan  # wfdb writes NaN as the format's missing value
    with pytest.raises(RecordError, match="nan_values.*V2"):
        read_record(write_record(tmp_path, "gap", signal=signal), SPEC_100)


def test_truncated_signal_file_is_named(mirror, tmp_path):
    for suffix in (".hea", ".dat"):
        shutil.copy(mirror / f"ptb-xl/1.0.3/records100/00000/00001_lr{suffix}", tmp_path)
    dat = tmp_path / "00001_lr.dat"
    dat.write_bytes(dat.read_bytes()[:10000])
    with pytest.raises(RecordError) as caught:
        read_record(tmp_path / "00001_lr", SPEC_100)
    assert caught.value.reason == "truncated_signal"
    assert f"{dat}: 10000 bytes, the header promises 24000" in caught.value.detail


def test_unreadable_header_is_named(tmp_path):
    (tmp_path / "junk.hea").write_text("this is not a header\n")
    with pytest.raises(RecordError, match="unreadable_header"):
        read_record(tmp_path / "junk", SPEC_100)
