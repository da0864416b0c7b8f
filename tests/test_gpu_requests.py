"""Which jobs ask the scheduler for a GPU (config key gpu_jobs), read from Snakemake's dry run."""

import re

import pytest

from conftest import REPO, run_snakemake, write_config

pytestmark = pytest.mark.integration

MODEL_RULES = {"train_generator", "sample_synthetic", "classifier_real", "classifier_shuffled", "classifier_augment",
               "classifier_classical", "classifier_balance", "classifier_synthetic", "classifier_finetune",
               "classifier_scratch"}


def gpu_requests(workdir, resource: str = "gpu") -> dict[str, set[int]]:
    """rule -> the values of `resource` its planned jobs ask for (0 where a job asks none)."""
    output = run_snakemake(workdir, "all", "--dry-run").stdout
    requests = {}
    for rule, body in re.findall(r"^(?:local)?rule (\w+):\n(.*?)(?=^\S|\Z)", output, re.M | re.S):
        value = re.search(rf"resources:.*\b{resource}=(\d+)", body)
        requests.setdefault(rule, set()).add(int(value.group(1)) if value else 0)
    return requests


@pytest.mark.parametrize("gpu_jobs,device,expected", [
    ("always", "cpu", 1),  # e.g. a cluster whose login node has no GPU
    ("never", "cuda", 0),
    ("auto", "cpu", 0),
    ("auto", "cuda", 1),
])
def test_model_jobs_ask_for_a_gpu_as_configured_and_no_other_job_does(tmp_path, mirror, gpu_jobs, device, expected):
    write_config(tmp_path, physionet_url=str(mirror), gpu_jobs=gpu_jobs,
                 experiments={"seeds": [0], "augment_ratios": [1], "finetune_fractions": [0, 1.0], "device": device},
                 generators={"names": ["diffwave"], "training": {"device": device}})
    requests = gpu_requests(tmp_path)
    assert MODEL_RULES <= set(requests)
    for rule, values in requests.items():
        assert values == ({expected} if rule in MODEL_RULES else {0}), rule


def test_gpu_jobs_take_the_slots_configured_and_share_a_card_when_asked(tmp_path, mirror):
    """A card offers 4 slots (profiles/default); GPU jobs take 4 by default (one at a time) or
    what gpu_slots says (presets/gpu.yaml: 1, four at once); jobs on the CPU take none."""
    base = dict(physionet_url=str(mirror), gpu_jobs="always",
                experiments={"seeds": [0], "augment_ratios": [1], "finetune_fractions": [0, 1.0]},
                generators={"names": ["diffwave"]})
    write_config(tmp_path, **base)
    default = gpu_requests(tmp_path, "gpu_slots")
    write_config(tmp_path, **base, gpu_slots={"generators": 1, "classifiers": 2})
    shared = gpu_requests(tmp_path, "gpu_slots")
    for rule in MODEL_RULES:
        assert default[rule] == {4}, rule
        assert shared[rule] == ({1} if rule in {"train_generator", "sample_synthetic"} else {2}), rule
    assert all(values == {0} for rule, values in shared.items() if rule not in MODEL_RULES)
    assert "gpu_slots=4" in (REPO / "profiles" / "default" / "config.yaml").read_text()
