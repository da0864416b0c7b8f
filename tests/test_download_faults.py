"""The data stage under faults: transient failures stop the download and a rerun fetches only
what is missing; definitive ones are replaced by the next records of their class; a flaky server,
a killed download or another copy of the release gives the same dataset, byte for byte."""

import filecmp
import os
import signal
import subprocess
import time

import pandas as pd
import pytest
import yaml

from conftest import REPO, SNAKEMAKE, run_snakemake, write_config
from synthecg.data.download import download_dataset
from synthecg.data.labels import ClassMap, ptbxl_catalogue
from synthecg.data.physionet import parse_checksums
from synthecg.data.preprocess import read_catalogue
from synthecg.errors import DownloadError

CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())
CLASS_MAP = ClassMap.from_config(CONFIG["classes"])
FAST_RETRIES = {"workers": 8, "retries": 4, "backoff": 0.01, "job_retries": 0}


def download(dataset, base, cache, budget, sampling_rate=100, **settings):
    return download_dataset(
        dataset, str(base), cache, CLASS_MAP, budget, sampling_rate, CONFIG["seed"], CONFIG["split_fractions"],
        **{"backoff": 0.01, **settings},
    )


def selected_files(catalogue, extension=".dat"):
    return [p + suffix for p in catalogue[catalogue["selected"]]["record_path"] for suffix in (".hea", extension)]


def test_a_transient_failure_stops_the_download_and_a_rerun_fetches_only_what_is_missing(mirror, serve, tmp_path):
    clean, _, _ = download("ptbxl", mirror, tmp_path / "unused", 2)
    victim = "/ptb-xl/1.0.3/" + selected_files(clean)[1]
    server = serve(mirror, faults={"script": {victim: ["500", "reset", "truncate"]}})
    with pytest.raises(DownloadError) as caught:
        download("ptbxl", server.url, tmp_path / "cache", 2, retries=2)
    message = str(caught.value)
    assert caught.value.reason == "transient"
    assert f"{server.url}{victim}: failed after 3 tries" in message
    assert "Rerun the same command" in message and "only the files not yet verified are fetched" in message

    server.requests.clear()
    catalogue, manifest, location = download("ptbxl", server.url, tmp_path / "cache", 2, retries=2)
    assert server.requests == [victim]  # the index and every other record came from the verified cache
    pd.testing.assert_frame_equal(catalogue, clean)  # the same records: the fault changed nothing
    assert set(selected_files(catalogue)) <= set(manifest["files"])
    assert location["files"][victim.removeprefix("/ptb-xl/1.0.3/")]["status"] == "fetched"


def test_a_missing_record_is_replaced_by_the_next_of_its_class(mirror_copy, tmp_path):
    ptbxl = mirror_copy / "ptb-xl/1.0.3"
    before, _, _ = download("ptbxl", mirror_copy, tmp_path / "unused", 3)
    gone = before[before["selected"]].iloc[0]
    (ptbxl / f"{gone.record_path}.dat").unlink()
    after, manifest, _ = download("ptbxl", mirror_copy, tmp_path / "unused", 3)

    assert after.loc[gone.name, "download_reason"] == "missing_file" and not after.loc[gone.name, "selected"]
    assert f"{gone.record_path}.dat" not in manifest["files"]
    counts = lambda table: table[table["selected"]].groupby(["label", "fold"]).size()  # noqa: E731
    kept = before["selected"] & (before.index != gone.name)
    assert (after["selected"] | ~kept).all()  # every other choice stands
    assert counts(after).groupby("label").sum().equals(counts(before).groupby("label").sum())
    replacement = after[after["selected"] & ~before["selected"]]
    assert len(replacement) == 1 and replacement.iloc[0]["label"] == gone["label"]


def test_at_500_hz_each_budget_is_met_where_the_data_exist(mirror, tmp_path):
    """The mirror has 500 Hz files for some PTB-XL records only: the others are replaced."""
    budget = 12
    catalogue, manifest, _ = download("ptbxl", mirror, tmp_path / "unused", budget, sampling_rate=500)
    listed = parse_checksums((mirror / "ptb-xl/1.0.3/SHA256SUMS.txt").read_text(), "SHA256SUMS.txt")
    everything = ptbxl_catalogue(mirror / "ptb-xl/1.0.3/ptbxl_database.csv", CLASS_MAP, 500)
    exists = everything["record_path"].map(lambda p: f"{p}.dat" in listed and f"{p}.hea" in listed)
    available = everything[exists & (everything["label"] != "")].groupby("label").size()
    selected = catalogue[catalogue["selected"]]
    assert selected.groupby("label").size().to_dict() == available.clip(upper=budget).to_dict()
    assert set(selected_files(catalogue)) <= set(manifest["files"])
    assert set(catalogue.loc[catalogue["download_reason"] != "", "download_reason"]) == {"not_in_checksums"}
    for split in ("val", "test"):  # the budget is still shared over the folds
        assert (selected["fold"].map({9: "val", 10: "test"}) == split).any()


@pytest.mark.integration
def test_snakemake_reruns_a_stopped_download_which_then_fetches_only_what_is_missing(mirror, serve, tmp_path):
    clean, _, _ = download("ptbxl", mirror, tmp_path / "unused", 2)
    victim = "/ptb-xl/1.0.3/" + selected_files(clean)[1]
    server = serve(mirror, faults={"script": {victim: ["500"] * 3}})
    write_config(tmp_path, physionet_url=server.url, datasets=["ptbxl"], max_records_per_class=2,
                 download={**FAST_RETRIES, "retries": 2, "job_retries": 1})
    result = run_snakemake(tmp_path, "download")
    assert f"{server.url}{victim}: failed after 3 tries (HTTP 500" in result.stderr  # the first attempt's error
    assert server.requests.count(victim) == 4  # 3 tries, then 1 in the job's second attempt
    repeated = {path for path in server.requests if server.requests.count(path) > 1}
    assert repeated == {victim}  # nothing else was fetched twice
    catalogue = read_catalogue(tmp_path / "results/physionet/ptbxl/records.csv")
    assert catalogue["record_id"][catalogue["selected"]].tolist() == clean["record_id"][clean["selected"]].tolist()


@pytest.mark.integration
def test_a_flaky_server_gives_the_dataset_of_a_clean_run_and_another_copy_reruns_nothing(mirror, serve, tmp_path):
    settings = dict(datasets=["ptbxl", "chapman"], max_records_per_class=4, download=FAST_RETRIES)
    clean, flaky = tmp_path / "clean", tmp_path / "flaky"
    clean.mkdir(), flaky.mkdir()
    write_config(clean, physionet_url=str(mirror), **settings)
    run_snakemake(clean, "preprocess")

    # As the issue found it: a quarter of the answers server errors, 15 % of bodies cut in half.
    rates = {"500": 0.15, "503/0": 0.10, "reset": 0.10, "truncate": 0.15}
    server = serve(mirror, faults={"rates": rates, "seed": 13, "max_requests": 2000, "seconds": 240})
    write_config(flaky, physionet_url=server.url, **settings)
    run_snakemake(flaky, "preprocess")
    assert not server.exhausted and set(server.injected) == set(rates), server.injected

    def same(relpath):
        return filecmp.cmp(clean / relpath, flaky / relpath, shallow=False)

    for name in ("ptbxl", "chapman", "merged"):  # same config hash, records, splits, bytes
        assert same(f"results/data/{name}.h5"), name
    for source in ("ptbxl", "chapman"):
        assert same(f"results/physionet/{source}/records.csv") and same(f"results/physionet/{source}/manifest.json")
        catalogue = read_catalogue(flaky / f"results/physionet/{source}/records.csv")
        assert (catalogue["download_reason"] == "").all()
        qc = [pd.read_csv(run / f"results/data/{source}/qc.csv", dtype=str) for run in (clean, flaky)]
        pd.testing.assert_frame_equal(*(table[["record_id", "reason"]] for table in qc))

    # Another copy of the release (here the local folder), fetched another way: nothing to redo.
    other_way = {**FAST_RETRIES, "workers": 2, "retries": 1}
    write_config(flaky, physionet_url=str(mirror), **{**settings, "download": other_way})
    planned = run_snakemake(flaky, "preprocess", "--dry-run")
    assert "Nothing to be done" in planned.stdout + planned.stderr, planned.stdout


@pytest.mark.integration
def test_a_killed_download_fetches_only_what_is_missing_and_trusts_no_partial_file(mirror, serve, tmp_path):
    from synthecg.data.splits import ptbxl_split, select_per_class

    # Two records of the first round of the selection, which the download fetches together
    # (500 Hz: their .dat files are 120 kB, more than one block of the download loop).
    listed = parse_checksums((mirror / "ptb-xl/1.0.3/SHA256SUMS.txt").read_text(), "SHA256SUMS.txt")
    index = ptbxl_catalogue(mirror / "ptb-xl/1.0.3/ptbxl_database.csv", CLASS_MAP, 500)
    index["split"] = index["fold"].map(ptbxl_split)
    for budget in (3, 6, 12):
        first_round = index[select_per_class(index, budget, CONFIG["seed"], CONFIG["split_fractions"])]
        stalled = [f"{p}.dat" for p in first_round["record_path"] if f"{p}.dat" in listed][:2]
        if len(stalled) == 2:
            break
    server = serve(mirror, faults={"script": {f"/ptb-xl/1.0.3/{relpath}": ["stall"] for relpath in stalled}})
    write_config(tmp_path, physionet_url=server.url, datasets=["ptbxl"], max_records_per_class=budget,
                 sampling_rate=500, download=FAST_RETRIES)
    cache = tmp_path / "results/physionet/files/ptb-xl/1.0.3"
    parts = [cache / f"{relpath}.part" for relpath in stalled]

    command = [str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
               "--configfile", str(tmp_path / "config.yaml"), "--cores", "2", "--nolock", "download"]
    job = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while not all(part.is_file() and part.stat().st_size > 0 for part in parts):
        assert job.poll() is None and time.monotonic() < deadline, "the download never reached the stalled files"
        time.sleep(0.2)
    time.sleep(1)  # let the other files of the round finish
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    server.release.set()

    verified = {p: p.stat().st_mtime_ns for p in cache.rglob("*") if p.is_file() and p.suffix != ".part"}
    sizes = [part.stat().st_size for part in parts]
    assert all(0 < size < (mirror / "ptb-xl/1.0.3" / relpath).stat().st_size for size, relpath in zip(sizes, stalled))
    with open(parts[1], "r+b") as handle:  # a part that went bad on disk must not pass for good data
        first = handle.read(1)
        handle.seek(0)
        handle.write(bytes([first[0] ^ 0xFF]))
    server.requests.clear()

    run_snakemake(tmp_path, "download")  # (the killed run took no lock: no --unlock needed)
    assert not [p for p in server.requests if cache / p.removeprefix("/ptb-xl/1.0.3/") in verified]
    assert f"bytes={sizes[0]}-" in server.ranges and f"bytes={sizes[1]}-" in server.ranges
    assert server.requests.count(f"/ptb-xl/1.0.3/{stalled[1]}") == 2  # resumed, failed its checksum, fetched clean
    assert {p: p.stat().st_mtime_ns for p in verified} == verified  # nothing verified was written again
    catalogue = read_catalogue(tmp_path / "results/physionet/ptbxl/records.csv")
    for relpath in selected_files(catalogue):
        assert (cache / relpath).read_bytes() == (mirror / "ptb-xl/1.0.3" / relpath).read_bytes(), relpath
    assert not list(cache.rglob("*.part"))
