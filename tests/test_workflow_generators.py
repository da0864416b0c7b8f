"""The generator stages through the Snakemake CLI on the PhysioNet mirror, at tiny sizes."""

import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import REPO, SNAKEMAKE, run_snakemake, write_config
from synthecg.data.store import load_split, metadata

pytestmark = pytest.mark.integration

TINY_GENERATORS = {
    "names": ["diffwave", "timediffusion", "timevqvae"],
    "min_records_per_class": 2,
    "on_small_class": "skip",
    "training": {"seed": 0, "checkpoint_every": 10, "log_every": 5, "device": "auto"},
    "resources": {"mem_mb": 2000, "runtime": 10},
    "diffwave": {"residual_layers": 2, "residual_channels": 8, "dilation_cycle": 2, "embedding_dim": 16,
                 "diffusion_steps": 10, "beta_end": 0.5, "batch_size": 4, "steps": 10},
    "timediffusion": {"hidden_channels": 8, "max_dilation_exponent": 3, "batch_size": 4, "steps": 10,
                      "max_seed_records": 4, "sampling_steps": 2},
    "timevqvae": {"batch_size": 4, "steps": 10, "prior_steps": 10, "init_channels": 4, "hidden_channels": 8,
                  "n_resnet_blocks": 1, "prior_hidden_lf": 16, "prior_layers_lf": 1, "prior_heads_lf": 1,
                  "prior_hidden_hf": 8, "sampling_steps": 2},
}


def planned_rules(workdir):
    """Rules of the jobs a dry run would schedule."""
    result = run_snakemake(workdir, "synthetic", "--dry-run")
    return {line.split()[0] for line in result.stdout.splitlines() if line.strip().startswith(("download_", "preprocess_", "merge_", "train_", "sample_"))}


def test_generators_are_trained_and_sampled_per_source_dataset(mirror, tmp_path):
    write_config(tmp_path, physionet_url=str(mirror), max_records_per_class=6, generators=TINY_GENERATORS,
                 sampling={"per_class": 3, "ratio_to_real": 2.0, "batch_size": 2, "seed": 0})
    run_snakemake(tmp_path, "synthetic")
    results = tmp_path / "results"
    assert not (results / "generators" / "merged").exists()  # never trained on the merged set
    for source in ("ptbxl", "chapman"):
        real = metadata(results / "data" / f"{source}.h5")
        train_counts = real["records_per_class"]["train"]
        for name in TINY_GENERATORS["names"]:
            sidecar = json.loads((results / "generators" / source / name / "rep0/model.json").read_text())
            assert (results / "generators" / source / name / "rep0/loss.png").stat().st_size > 0
            synthetic = load_split(results / "synthetic" / source / name / "rep0.h5", "synthetic")
            meta = metadata(results / "synthetic" / source / name / "rep0.h5")
            assert meta["classes"] == real["classes"] and meta["fs"] == real["fs"] and meta["units"] == "mV"
            assert synthetic["x"].shape[1:] == (12, real["fs"] * real["seconds"])
            expected = {c: 3 if train_counts[c] >= 2 else 0 for c in real["classes"]}
            assert meta["records_per_class"]["synthetic"] == expected, (source, name)
            assert sidecar["skipped_classes"] == [c for c in real["classes"] if expected[c] == 0]
    assert json.loads((results / "generators/chapman/diffwave/rep0/model.json").read_text())["skipped_classes"][0] == "SR"

    # Only what a change touches is scheduled again.
    assert planned_rules(tmp_path) == set()
    write_config(tmp_path, physionet_url=str(mirror), max_records_per_class=6, generators=TINY_GENERATORS,
                 sampling={"per_class": 4, "ratio_to_real": 2.0, "batch_size": 2, "seed": 0})
    assert planned_rules(tmp_path) == {"sample_synthetic"}
    changed = {**TINY_GENERATORS, "diffwave": {**TINY_GENERATORS["diffwave"], "steps": 12}}
    write_config(tmp_path, physionet_url=str(mirror), max_records_per_class=6, generators=changed,
                 sampling={"per_class": 3, "ratio_to_real": 2.0, "batch_size": 2, "seed": 0})
    dry_run = run_snakemake(tmp_path, "synthetic", "--dry-run").stdout
    assert "train_generator" in dry_run and "generator=diffwave" in dry_run
    assert "generator=timevqvae" not in dry_run and "preprocess_dataset" not in dry_run
    # A second replicate: trained and sampled with the next seeds, nothing else redone.
    write_config(tmp_path, physionet_url=str(mirror), max_records_per_class=6,
                 generators={**TINY_GENERATORS, "replicates": 2},
                 sampling={"per_class": 3, "ratio_to_real": 2.0, "batch_size": 2, "seed": 0})
    dry_run = run_snakemake(tmp_path, "synthetic", "--dry-run").stdout
    assert set(re.findall(r"^(\w+)\s+\d+$", dry_run, re.M)) == {"train_generator", "sample_synthetic", "synthetic", "total"}
    assert set(re.findall(r"replicate=(\d+)", dry_run)) == {"1"}


def test_a_killed_training_job_resumes_from_its_checkpoint(mirror, tmp_path):
    generators = {**TINY_GENERATORS, "names": ["diffwave"],
                  "training": {"seed": 0, "checkpoint_every": 20, "log_every": 20, "device": "cpu"},
                  "diffwave": {**TINY_GENERATORS["diffwave"], "steps": 1500}}
    write_config(tmp_path, physionet_url=str(mirror), datasets=["ptbxl"], max_records_per_class=4,
                 generators=generators)
    run_snakemake(tmp_path, "preprocess")
    checkpoint = tmp_path / "results/generators/ptbxl/diffwave/rep0/checkpoint.pt"
    command = [str(SNAKEMAKE), "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
               "--configfile", str(tmp_path / "config.yaml"), "--cores", "1", "generators"]
    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.2)
    assert checkpoint.exists(), "training wrote no checkpoint"
    os.killpg(job.pid, signal.SIGKILL)  # as a cluster's out-of-time kill would
    job.wait()
    assert not (tmp_path / "results/generators/ptbxl/diffwave/rep0/model.json").exists()

    finished = {path: path.stat().st_mtime_ns for path in (tmp_path / "results/data").rglob("*") if path.is_file()}

    run_snakemake(tmp_path, "--unlock")  # what Snakemake asks for after a hard kill
    # The killed job's outputs are not taken as done: the dry run schedules it, and only it.
    planned = run_snakemake(tmp_path, "generators", "--rerun-incomplete", "--dry-run").stdout
    assert set(re.findall(r"^(\w+)\s+\d+$", planned, re.M)) == {"train_generator", "generators", "total"}
    run_snakemake(tmp_path, "generators", "--rerun-incomplete")
    # What had finished before the kill was not recomputed.
    assert {path: path.stat().st_mtime_ns for path in finished} == finished
    sidecar = json.loads((tmp_path / "results/generators/ptbxl/diffwave/rep0/model.json").read_text())
    assert sidecar["resumed_from"]["step"] >= 20
    log = (tmp_path / "results/logs/generators/ptbxl/diffwave/rep0.log").read_text()
    assert "resuming from" in log and not checkpoint.exists()
    steps = [int(step) for step in re.findall(r"main step (\d+)/\d+ loss", log)]
    assert steps[0] == sidecar["resumed_from"]["step"] + 20 and steps[-1] == 1500
