"""The prepared GPU study (benchmarks/gpu_study.py) runs the pipeline from carried data, on the CPU at toy sizes.

A GPU machine has no mirror and no network: the data stage must travel preprocessed and be taken as
done there, and a short loan must get the primary table at the end of the output. This prepares a
tiny data stage from the mirror, runs the study's `run --tiny` from it through Snakemake, and checks
that nothing of the data stage ran and that the primary comparisons come last."""

import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
import zipfile

import pandas as pd
import pytest

from conftest import REPO, run_snakemake, write_config

sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_study  # noqa: E402

SCRIPT = str(REPO / "benchmarks/gpu_study.py")


@pytest.mark.integration
def test_the_study_runs_from_prepared_data_without_the_data_stage_and_prints_the_primary_table_last(mirror, tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    write_config(source, physionet_url=str(mirror), datasets=["ptbxl"],
                 max_records_per_class=gpu_study.TINY_RECORDS_PER_CLASS)
    run_snakemake(source, "preprocess")
    prepared, study, out = tmp_path / "prepared", tmp_path / "study", tmp_path / "out"
    subprocess.run([sys.executable, SCRIPT, "prepare", str(prepared), "--results", str(source / "results"),
                    "--no-wheels"], check=True, capture_output=True, text=True)
    assert not (prepared / "results/benchmarks").exists()  # only the data stage's outputs travel

    done = subprocess.run([sys.executable, SCRIPT, "run", str(prepared), "--tiny", "--workdir", str(study),
                           "--cores", "2", "--save", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    report = json.loads((study / "gpu_study.json").read_text())
    assert not set(report["planned_jobs"]) & set(gpu_study.DATA_RULES)
    assert {"train_generator", "classifier_finetune", "summarise_tables"} <= set(report["rules"])
    assert not (study / "results/benchmarks/download").exists()
    assert not (study / "results/benchmarks/preprocess").exists()
    for table in ("comparisons", "augmentation", "transfer"):
        assert (study / f"results/tables/{table}.csv").is_file()

    # Last: the primary family's rows of comparisons.md, then the wall time.
    lines = done.stdout.rstrip().splitlines()
    assert lines[-1].startswith("Whole command: ") and "tiny grid" in lines[-1]
    heading = lines.index("## Primary comparisons (results/tables/comparisons.md)")
    assert heading > lines.index("| rule | jobs | wall s (sum) | longest s | peak RSS MB |")
    rows = [line for line in lines[heading + 1:-1] if line.startswith("| ptbxl ")]
    primary = pd.read_csv(study / "results/tables/comparisons.csv").query("family == 'primary'")
    assert len(rows) == len(primary) > 0
    assert all(" primary " in row for row in rows)

    # What comes back fits the device tool's limits: at most 8 plain files, flat, plain names;
    # the tables travel inside the archive.
    assert_saved_within_the_device_limits(out)
    assert (out / "comparisons.md").read_text() == (study / "results/tables/comparisons.md").read_text()
    assert json.loads((out / "gpu_study.json").read_text())["grid"] == "tiny"
    with tarfile.open(out / "results.tar.gz") as archive:
        names = archive.getnames()
    assert "results/tables/comparisons.csv" in names and any(n.startswith("results/benchmarks/") for n in names)

    # Stopped from outside (SIGTERM, as the device tool's limit stops a command) while jobs run:
    # Snakemake is stopped, not left behind, and what was made comes back all the same.
    cut, cut_out = tmp_path / "cut", tmp_path / "cut-out"
    running = subprocess.Popen([sys.executable, SCRIPT, "run", str(prepared), "--tiny", "--workdir", str(cut),
                                "--cores", "2", "--save", str(cut_out)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while not list((cut / "results/benchmarks/generators").rglob("*.tsv")) and time.monotonic() < deadline:
        time.sleep(1)  # until the first generator has trained
    running.send_signal(signal.SIGTERM)
    output = running.communicate(timeout=120)[0]
    assert running.returncode == 143, output[-3000:]
    assert "stopped by SIGTERM" in output.splitlines()[-1]
    assert_saved_within_the_device_limits(cut_out)
    assert json.loads((cut_out / "gpu_study.json").read_text())["snakemake_exit"] == gpu_study.TERMINATED
    with tarfile.open(cut_out / "results.tar.gz") as archive:
        assert any(n.startswith("results/benchmarks/generators/") for n in archive.getnames())
    assert subprocess.run(["pgrep", "-f", f"directory {cut}"]).returncode == 1  # no Snakemake left running
    resumed = subprocess.run([sys.executable, SCRIPT, "run", str(prepared), "--tiny", "--workdir", str(cut),
                              "--cores", "2", "--dry-run"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]  # locks or none, it goes on

    # The data stage made to look older than its inputs: the run refuses before running anything.
    os.utime(study / "results/physionet/ptbxl/manifest.json")
    again = subprocess.run([sys.executable, SCRIPT, "run", str(prepared), "--tiny", "--workdir", str(study),
                            "--cores", "2"], capture_output=True, text=True, timeout=300)
    assert again.returncode != 0 and "would rerun the data stage" in again.stderr
    assert "preprocess_dataset" in again.stderr


def assert_saved_within_the_device_limits(out):
    """The device tool returns at most 8 plain files, 16 MiB each, no deeper than 2 folders, named
    in letters, digits, '.', '_' and '-': --save writes 5, flat."""
    saved = sorted(out.rglob("*"))
    always = {"gpu_study.json", "gpu_study.log", "gpu_study.yaml", "results.tar.gz"}
    assert always <= {p.name for p in saved} <= always | {"comparisons.md"}  # the table, once it is made
    assert all(p.is_file() and p.parent == out and re.fullmatch(r"[A-Za-z0-9._-]+", p.name) for p in saved)
    assert all(p.stat().st_size < 16 * 2**20 for p in saved)


def fake_wheel(folder, name, version):
    """A minimal pure-Python wheel of one module."""
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{name}.py", "ANSWER = 42\n")
        wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        wheel.writestr(f"{info}/WHEEL",
                       "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{info}/RECORD", "")
    return path


def test_run_installs_only_the_carried_wheels_whose_version_is_missing(tmp_path):
    import yaml

    wheels = tmp_path / "prepared" / "wheels"
    wheels.mkdir(parents=True)
    fake_wheel(wheels, "gpu_study_absent", "0.1")
    # Present at this version: left alone (this one is not even a zip, so installing it would fail).
    (wheels / f"PyYAML-{yaml.__version__}-py3-none-any.whl").write_text("not a wheel")
    site = tmp_path / "site"
    code = (f"import sys; sys.path.insert(0, {str(REPO / 'benchmarks')!r}); import gpu_study, pathlib; "
            f"gpu_study.ensure_packages(pathlib.Path({str(tmp_path / 'prepared')!r}), pathlib.Path({str(site)!r})); "
            "import gpu_study_absent; print(gpu_study_absent.ANSWER)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "42" and "installed 1 wheels" in done.stdout
    assert (site / "gpu_study_absent.py").is_file() and not list(site.glob("*yaml*"))


def test_only_wheels_that_install_on_the_gpu_machines_python_are_carried():
    """The GPU machine runs CPython 3.12 on Linux x86_64: a cp311 wheel from this machine's cache,
    or one for another platform, would stop the run there."""
    takes = gpu_study.installs_there
    assert takes("wfdb-4.3.1-py3-none-any.whl") and takes("six-1.17.0-py2.py3-none-any.whl")
    assert takes("pydantic_core-2.50.5-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
    assert takes("cryptography-46.0.0-cp311-abi3-manylinux_2_28_x86_64.whl")
    assert takes("connection_pool-0.0.3-1-cp312-cp312-linux_x86_64.whl")  # built here, with a build tag
    assert not takes("pydantic_core-2.50.5-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
    assert not takes("greenlet-3.5.6-cp312-cp312-manylinux_2_24_aarch64.whl")
    assert not takes("rpds_py-2026.9.1-cp312-cp312-macosx_11_0_arm64.whl")
    assert not takes("wrapt-2.5.2-cp312-cp312-musllinux_1_2_x86_64.whl")
    assert not takes("cryptography-46.0.0-cp313-abi3-manylinux_2_28_x86_64.whl")


def test_a_wheel_for_another_python_is_neither_taken_from_the_cache_nor_left_in_the_folder(tmp_path, monkeypatch):
    cache, folder = tmp_path / "cache", tmp_path / "wheels"
    cache.mkdir()
    folder.mkdir()
    (folder / "wrapt-2.5.2-cp311-cp311-manylinux_2_17_x86_64.whl").write_text("an earlier prepare's, for 3.11")
    (cache / "tabulate-0.10.0-cp311-cp311-manylinux_2_17_x86_64.whl").write_text("a build for 3.11")
    (cache / "wrapt-2.5.2-cp312-cp312-manylinux_2_17_x86_64.whl").write_text("a build for 3.12")
    downloaded = []
    monkeypatch.setattr(gpu_study, "WHEELS", [])
    monkeypatch.setattr(gpu_study, "SPARE_WHEELS", ["tabulate==0.10.0", "wrapt==2.5.2"])
    monkeypatch.setattr(gpu_study, "SOURCE_ONLY", [])
    monkeypatch.setattr(gpu_study.subprocess, "run", lambda command, **_: downloaded.append(command[-1]))
    gpu_study.fetch_wheels(folder, cache)
    assert downloaded == ["tabulate==0.10.0"]  # fetched for the GPU machine instead
    assert [p.name for p in folder.iterdir()] == ["wrapt-2.5.2-cp312-cp312-manylinux_2_17_x86_64.whl"]


@pytest.mark.integration
def test_prepare_makes_the_gpu_presets_data_stage_itself_and_prints_the_device_calls(mirror, tmp_path):
    """Without --results, `prepare` carries presets/gpu.yaml's data (every record of the mirror's PTB-XL),
    made in a workdir of its own, never whatever the repository's results/ holds."""
    import h5py
    import yaml

    prepared = tmp_path / "prepared"
    done = subprocess.run([sys.executable, SCRIPT, "prepare", str(prepared), "--mirror", str(mirror),
                           "--data-workdir", str(tmp_path / "data-stage"), "--no-wheels"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (prepared / "results/data/ptbxl.h5").read_bytes() == \
        (tmp_path / "data-stage/results/data/ptbxl.h5").read_bytes()
    with h5py.File(prepared / "results/data/ptbxl.h5") as carried:
        records = sum(len(carried[split]["y"]) for split in carried)
    quick = yaml.safe_load((REPO / "config.yaml").read_text())
    assert records > quick["max_records_per_class"] * 4  # every record of the mirror, not a quick run's cap a class
    assert "outside the repository" in done.stderr  # tmp_path cannot be carried


def test_the_device_calls_carry_the_prepared_folder_by_its_path_in_the_repository():
    calls = gpu_study.device_calls(REPO / ".gpu-study")
    assert 'carry [".gpu-study"]' in calls
    assert "--target /tmp/site .gpu-study/wheels/wfdb-*.whl" in calls
    assert "--data .gpu-study/results/data/ptbxl.h5 --out $OUT --minutes 7.5" in calls
    assert "gpu_study.py run .gpu-study --save $OUT" in calls
