"""The pipeline through profiles/slurm on a real one-node SLURM cluster started on this machine.

Opt-in (`SYNTHECG_SLURM_TEST=1`, or `make test-slurm`): it needs root, installs Debian's
slurm-wlm and munge when missing and starts their daemons (tests/slurm/start-cluster.sh). The
node has a stand-in GPU (gres File=/dev/null), so the `gpu=1` requests of training and
classifier jobs are scheduled by SLURM for real, on the `gpu` partition; torch finds no CUDA and
uses the CPU.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, run_snakemake, write_config
from test_workflow_generators import TINY_GENERATORS

pytestmark = [pytest.mark.slurm, pytest.mark.integration]

GPU_RULES = {"train_generator", "sample_synthetic", "classifier_real", "classifier_augment", "classifier_synthetic",
             "classifier_finetune"}


@pytest.fixture(scope="module")
def slurm_cluster():
    if os.environ.get("SYNTHECG_SLURM_TEST") != "1":
        pytest.skip("opt-in: set SYNTHECG_SLURM_TEST=1 (needs root; installs slurm-wlm and munge)")
    started = subprocess.run(["bash", str(REPO / "tests/slurm/start-cluster.sh")], capture_output=True, text=True)
    if started.returncode != 0:
        pytest.fail(f"could not start the one-node SLURM cluster:\n{started.stdout}\n{started.stderr}")
    return shutil.which("sbatch")


def submitted_jobs(workdir: Path) -> list[dict]:
    """Every job SLURM still remembers (MinJobAge=600) that ran in `workdir`, from `scontrol show job`."""
    listing = subprocess.run(["scontrol", "--oneliner", "show", "job"], capture_output=True, text=True).stdout
    jobs = []
    for line in listing.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if Path(fields.get("WorkDir", "/")) == workdir:
            rule = fields.get("Comment", "").removeprefix("rule_").split("_wildcards_")[0]
            jobs.append({"rule": rule, "partition": fields["Partition"], "gpus": fields.get("TresPerJob", ""),
                         "state": fields["JobState"], "submit": fields["SubmitTime"], "start": fields["StartTime"],
                         "end": fields["EndTime"]})
    return jobs


def test_the_pipeline_runs_through_sbatch_with_gpu_jobs_on_the_gpu_partition(slurm_cluster, mirror, tmp_path):
    generators = {**TINY_GENERATORS, "names": ["diffwave"]}
    write_config(tmp_path, physionet_url=str(mirror), datasets=["ptbxl"], max_records_per_class=5,
                 generators=generators,
                 sampling={"per_class": 4, "ratio_to_real": 2.0, "batch_size": 4, "seed": 0},
                 classifier={"filters": [4, 8, 8], "batch_size": 8, "max_epochs": 1, "patience": 1},
                 experiments={"seeds": [0], "augment_ratios": [1], "finetune_fractions": [0, 1.0], "device": "auto",
                              "threads": 1})
    run_snakemake(
        tmp_path, "all",
        # --workflow-profile, not --profile: the latter would add profiles/default, whose gpu=1 limit
        # would hold the whole cluster to one GPU job at a time.
        "--workflow-profile", str(REPO / "profiles/slurm"),
        # The plugin's defaults wait 40 s before the first status query and add 10 s per idle query,
        # sized for big clusters; a one-node test cluster answers at once.
        "--slurm-init-seconds-before-status-checks", "1",
        "--slurm-status-command", "squeue",
        "--default-resources", "slurm_partition=cpu", "mem_mb=1000", "runtime=30",
        "--slurm-no-account",
        "--config", "seed=0",  # a --config must not undo the profile's GPU requests
    )
    assert (tmp_path / "results/tables/augmentation.csv").exists()
    assert (tmp_path / "results/plots/transfer.png").exists()
    jobs = submitted_jobs(tmp_path)
    rules = {job["rule"] for job in jobs}
    assert GPU_RULES <= rules and "preprocess_dataset" in rules
    assert not rules & {"download_dataset", "summarise_tables", "plot_transfer", "all"}  # local rules
    assert all(job["state"] == "COMPLETED" for job in jobs), jobs
    for job in jobs:
        on_gpu = job["rule"] in GPU_RULES
        assert job["partition"] == ("gpu" if on_gpu else "cpu"), job
        assert (job["gpus"] == "gres:gpu:1") == on_gpu, job
    # The node has one (stand-in) GPU: SLURM ran the GPU jobs one after another, and it was SLURM
    # that held them back: some were submitted while another GPU job was still running.
    gpu_jobs = sorted((job for job in jobs if job["rule"] in GPU_RULES), key=lambda job: job["start"])
    pairs = list(zip(gpu_jobs, gpu_jobs[1:]))
    assert all(before["end"] <= after["start"] for before, after in pairs), gpu_jobs
    assert any(after["submit"] < before["end"] for before, after in pairs), gpu_jobs
