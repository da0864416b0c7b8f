"""The data stages through the Snakemake CLI, against the PhysioNet mirror served over HTTP."""

import ast
import hashlib

import numpy as np
import pandas as pd
import pytest
import wfdb
import yaml
from scipy.signal import resample_poly

from conftest import REPO, run_snakemake, write_config
from synthecg.data.store import load_split, metadata

pytestmark = pytest.mark.integration

CLASSES = yaml.safe_load((REPO / "config.yaml").read_text())["classes"]


def expected_class(dataset, codes):
    found = {name for name, per in CLASSES.items() for code in codes if code in map(str, per[dataset])}
    return found.pop() if len(found) == 1 else None


def all_splits(path):
    return {split: load_split(path, split) for split in ("train", "val", "test")}


def test_preprocess_matches_records_read_with_wfdb(mirror, serve, tmp_path):
    server = serve(mirror)
    write_config(tmp_path, physionet_url=server.url, max_records_per_class=6)
    run_snakemake(tmp_path, "preprocess")
    data = tmp_path / "results" / "data"

    ptbxl_root = mirror / "ptb-xl/1.0.3"
    table = pd.read_csv(ptbxl_root / "ptbxl_database.csv", index_col="ecg_id")
    ptbxl = all_splits(data / "ptbxl.h5")
    classes = metadata(data / "ptbxl.h5")["classes"]
    assert classes == list(CLASSES)
    seen = 0
    for split, part in ptbxl.items():
        for x, y, record_id in zip(part["x"], part["y"], part["record_id"]):
            row = table.loc[int(record_id)]
            raw = wfdb.rdrecord(str(ptbxl_root / row.filename_lr)).p_signal.T
            np.testing.assert_allclose(x, raw, atol=1e-6)  # PTB-XL stores leads in the standard order
            assert classes[y] == expected_class("ptbxl", ast.literal_eval(row.scp_codes))
            assert split == {9: "val", 10: "test"}.get(row.strat_fold, "train")
            seen += 1
    labels = table["scp_codes"].map(lambda codes: expected_class("ptbxl", ast.literal_eval(codes)))
    assert seen == labels.value_counts().clip(upper=6).sum()  # 6 per class, where there are 6

    chapman_root = mirror / "ecg-arrhythmia/1.0.0"
    headers = {p.stem: p for p in chapman_root.glob("WFDBRecords/*/*/*.hea")}
    chapman = all_splits(data / "chapman.h5")
    for part in chapman.values():
        for x, y, record_id in zip(part["x"], part["y"], part["record_id"]):
            record = wfdb.rdrecord(str(headers[record_id].with_suffix("")))
            np.testing.assert_allclose(x, resample_poly(record.p_signal.T, 1, 5, axis=-1), atol=1e-5)
            dx = next(c for c in record.comments if c.startswith("Dx"))[3:].split(",")
            assert classes[y] == expected_class("chapman", [c.strip() for c in dx])
    patients = [set(part["patient_id"]) for part in chapman.values()]
    assert not (patients[0] & patients[1] or patients[0] & patients[2] or patients[1] & patients[2])

    for name in ("ptbxl", "chapman", "merged"):
        normalised = load_split(data / f"{name}.h5", "train", normalised=True)["x"]
        np.testing.assert_allclose(normalised.mean(axis=(0, 2)), 0, atol=1e-4)
        np.testing.assert_allclose(normalised.std(axis=(0, 2)), 1, atol=1e-3)
    merged = all_splits(data / "merged.h5")
    for split in merged:
        assert list(merged[split]["record_id"]) == list(ptbxl[split]["record_id"]) + list(chapman[split]["record_id"])
        np.testing.assert_array_equal(merged[split]["x"], np.concatenate([ptbxl[split]["x"], chapman[split]["x"]]))
        assert set(merged[split]["source"]) <= {"ptbxl", "chapman"}
    assert metadata(data / "merged.h5")["fs"] == 100

    qc = pd.read_csv(data / "chapman" / "qc.csv", dtype=str).set_index("record_id")
    assert qc.loc["JS20004", "reason"] == "flat_lead" and "V2" in qc.loc["JS20004", "detail"]
    assert qc.loc["JS20002", "reason"] == "no_class"
    assert "no_class" in set(pd.read_csv(data / "ptbxl" / "qc.csv")["reason"])

    # Only what the config selects is fetched: no 500 Hz file, no unselected record.
    fetched = [p for p in server.requests if p.startswith("/ptb-xl/1.0.3/records")]
    assert fetched and all(p.startswith("/ptb-xl/1.0.3/records100/") for p in fetched)
    assert len(fetched) == 2 * seen

    server.requests.clear()
    run_snakemake(tmp_path, "download", "--forcerun", "download_dataset")
    assert server.requests == []  # everything is cached and verified: nothing is fetched again


def replace_and_resum(folder, relpath, content):
    """Change a file of the mirror copy and its SHA256SUMS.txt line, as if upstream had it so."""
    (folder / relpath).write_bytes(content)
    sums = folder / "SHA256SUMS.txt"
    lines = [
        f"{hashlib.sha256(content).hexdigest()}  {relpath}" if line.endswith(f"  {relpath}") else line
        for line in sums.read_text().splitlines()
    ]
    sums.write_text("\n".join(lines) + "\n")


def test_broken_records_are_excluded_with_their_reason(mirror_copy, serve, tmp_path):
    ptbxl = mirror_copy / "ptb-xl/1.0.3"
    truncated = "records100/00000/00001_lr.dat"
    replace_and_resum(ptbxl, truncated, (ptbxl / truncated).read_bytes()[:10000])
    (ptbxl / "records100/00000/00004_lr.dat").write_bytes(b"corrupted")  # fails its checksum
    (ptbxl / "records100/00000/00005_lr.hea").unlink()  # the server answers 404
    header = "records100/00000/00006_lr.hea"
    replace_and_resum(ptbxl, header, (ptbxl / header).read_bytes().replace(b" 12 100 1000", b" 12 250 1000", 1))
    server = serve(mirror_copy)
    write_config(tmp_path, physionet_url=server.url, datasets=["ptbxl"], max_records_per_class=None)
    run_snakemake(tmp_path, "preprocess")

    qc = pd.read_csv(tmp_path / "results/data/ptbxl/qc.csv", dtype=str).set_index("record_id")
    assert qc.loc["1", "reason"] == "truncated_signal" and "00001_lr.dat: 10000 bytes" in qc.loc["1", "detail"]
    assert qc.loc["4", "reason"] == "checksum_mismatch" and "00004_lr.dat" in qc.loc["4", "detail"]
    assert qc.loc["5", "reason"] == "http_404" and "00005_lr.hea" in qc.loc["5", "detail"]
    assert qc.loc["6", "reason"] == "wrong_sampling_rate" and "250 Hz, expected 100 Hz" in qc.loc["6", "detail"]
    cache = tmp_path / "results/physionet/files/ptb-xl/1.0.3/records100/00000"
    assert not (cache / "00004_lr.dat").exists()  # the corrupt file was deleted, not kept
    assert not list(cache.parent.rglob("*.part"))
    kept = {r for split in ("train", "val", "test") for r in load_split(tmp_path / "results/data/ptbxl.h5", split)["record_id"]}
    assert not kept & {"1", "4", "5", "6"} and "7" in kept


def test_unsafe_path_in_a_records_listing_stops_the_download(mirror_copy, serve, tmp_path):
    chapman = mirror_copy / "ecg-arrhythmia/1.0.0"
    replace_and_resum(chapman, "RECORDS", (chapman / "RECORDS").read_bytes() + b"../../../etc/\n")
    write_config(tmp_path, physionet_url=serve(mirror_copy).url, datasets=["chapman"])
    result = run_snakemake(tmp_path, "download", check=False)
    assert result.returncode != 0
    assert "RECORDS: refusing the listed path '../../../etc/'" in result.stderr + result.stdout
    assert not (tmp_path / "results/physionet/chapman/manifest.json").exists()


def test_a_missing_index_file_fails_naming_its_url(mirror_copy, serve, tmp_path):
    (mirror_copy / "ptb-xl/1.0.3/ptbxl_database.csv").unlink()
    server = serve(mirror_copy)
    write_config(tmp_path, physionet_url=server.url, datasets=["ptbxl"])
    result = run_snakemake(tmp_path, "preprocess", check=False)
    assert result.returncode != 0
    assert f"{server.url}/ptb-xl/1.0.3/ptbxl_database.csv: HTTP 404" in result.stderr + result.stdout
    assert not (tmp_path / "results/data/ptbxl.h5").exists()
    assert not (tmp_path / "results/physionet/ptbxl/records.csv").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"sampling_rate": 250}, "config key sampling_rate: 250 is not one of [100, 500]"),
        ({"max_records_per_class": 0}, "config key max_records_per_class: 0 is less than the minimum of 1"),
        ({"physionet_url": "ftp://example.org"}, "config key physionet_url: 'ftp://example.org' is neither"),
        ({"datasets": ["ptbxl", "mitbih"]}, "config key datasets.1: 'mitbih' is not one of"),
        ({"split_fractions": {"train": 0.8, "val": 0.1, "test": 0.3}}, "config key split_fractions"),
        ({"generators": {"diffwave": {"layers": 3}}}, "config key generators.diffwave: unknown settings ['layers']"),
        ({"generators": {"on_small_class": "ignore"}}, "config key generators.on_small_class: 'ignore' is not one of"),
    ],
)
def test_an_invalid_config_stops_before_any_job(tmp_path, override, message):
    write_config(tmp_path, **override)
    result = run_snakemake(tmp_path, "--dry-run", check=False)
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    assert not (tmp_path / "results").exists()
