"""The prepared GPU command (benchmarks/gpu_generators.py) runs through on the CPU at toy sizes.

A GPU session has minutes: the command must work as it is when one comes. This runs its whole
code path (throughput, variants trained side by side as processes, sampling at a second guidance
scale, judging, privacy, the float16 HDF5 files) on real mirror records, at toy sizes."""

import json
import os
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from conftest import REPO, run_snakemake, write_config

pytestmark = pytest.mark.integration


def test_the_gpu_command_runs_through_and_writes_its_tables_and_samples(mirror, tmp_path):
    write_config(tmp_path, physionet_url=str(mirror), datasets=["ptbxl"], max_records_per_class=10)
    run_snakemake(tmp_path, "preprocess")
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks/gpu_generators.py"), "--data", str(tmp_path / "results/data/ptbxl.h5"),
         "--out", str(out), "--tiny", "--device", "cpu", "--per-class", "3", "--processes", "1",
         "--variants", "diffwave-cfg", "timediffusion"],
        capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    text = (out / "gpu_generators.md").read_text()
    assert done.stdout.rstrip().endswith(text.rstrip())  # the tables come last
    for heading in ("## Throughput", "## Side by side on one card", "## Quality per class and privacy"):
        assert heading in text
    report = json.loads((out / "gpu_generators.json").read_text())
    runs = {run["run"]: run for run in report["runs"]}
    assert set(runs) == {"diffwave-cfg", "diffwave-cfg guidance_scale 2", "timediffusion"}
    assert all(isinstance(run["meets_goal"], bool) and "dcr_share" in run["privacy"] for run in runs.values())
    for generator in ("diffwave", "timediffusion"):
        with h5py.File(out / f"{generator}.h5") as handle:
            assert handle["x"].dtype == np.float16 and handle["x"].shape[1:] == (12, 1000)
            assert np.bincount(handle["y"][:]).max() <= 3 and handle.attrs["units"] == "mV"
        assert (out / f"{generator}.h5").stat().st_size < 16 * 2**20


# Loaded by the phase-1 process alone (via PYTHONPATH): it dies, as a compiler's abort would, when
# it starts its second throughput row.
DIES_IN_PHASE1 = """
import importlib.abc, importlib.util, os, sys
if "--phase1" in sys.argv:
    class DieOnSecondRow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != "generator_throughput":
                return None
            sys.meta_path.remove(self)
            spec = importlib.util.find_spec(name)
            run_module = spec.loader.exec_module
            def exec_module(module):
                run_module(module)
                measure, calls = module.measure, []
                def measure_then_die(*args, **kwargs):
                    calls.append(1)
                    if len(calls) > 1:
                        os._exit(134)
                    return measure(*args, **kwargs)
                module.measure = measure_then_die
            spec.loader.exec_module = exec_module
            return spec
    sys.meta_path.insert(0, DieOnSecondRow())
"""


def test_a_phase_1_that_dies_loses_only_its_later_rows(mirror, tmp_path):
    """A hard crash in phase 1 (torch.compile, a CUDA graph) must not cost a short GPU loan the
    rest: phase 1 writes its rows as it goes, and phases 2 and 3 go on from what it wrote."""
    write_config(tmp_path, physionet_url=str(mirror), datasets=["ptbxl"], max_records_per_class=10)
    run_snakemake(tmp_path, "preprocess")
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(DIES_IN_PHASE1)
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks/gpu_generators.py"), "--data", str(tmp_path / "results/data/ptbxl.h5"),
         "--out", str(out), "--tiny", "--device", "cpu", "--per-class", "3", "--processes", "1",
         "--variants", "timediffusion", "diffwave"],
        capture_output=True, text=True, timeout=900,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))})
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "gpu_generators.json").read_text())
    assert report["phase1_exit"] == 134 and "phase 1 ended with 134" in done.stderr
    assert [row["generator"] for row in report["throughput"]] == ["diffwave"]  # the first row, then it died
    assert {run["run"] for run in report["runs"]} == {  # the baseline, also at the sampler's A/B settings
        "timediffusion", "diffwave", "diffwave sampling_eta 1 sampling_steps 100",
        "diffwave sampling_eta 1 sampling_steps 200"}
    assert done.stdout.rstrip().endswith((out / "gpu_generators.md").read_text().rstrip())


def test_variants_share_the_card_in_as_few_waves_as_its_memory_allows():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from gpu_generators import waves

    needs = {"a": 50, "b": 40, "c": 30, "d": 20}
    assert waves(list(needs), needs, 200) == [["a", "b", "c", "d"]]  # an H200: all at once
    assert waves(list(needs), needs, 80) == [["a", "c"], ["b", "d"]]
    assert waves(["big", "small"], {"big": 100, "small": 10}, 80) == [["big"], ["small"]]


def test_each_variant_gets_the_steps_its_measured_rate_buys_in_its_share_of_the_card():
    """Steps = 0.8 x seconds x (its stage's share) x steps/s alone / variants sharing the card, from the
    throughput row nearest its batch; TimeVQVAE's time goes a third to the VQ-VAE, two thirds to the prior."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from gpu_generators import plan_steps, variant_config

    def row(generator, stage, records_per_s, batch=256):
        return {"generator": generator, "stage": stage, "compile": "none", "precision": "bf16", "batch": batch,
                "records_per_s": records_per_s}

    rows = [row("diffwave", "main", 2560), row("diffwave", "main", 100, batch=16),
            row("timevqvae", "vqvae", 7680), row("timevqvae", "prior", 15360)]
    diffwave = plan_steps("diffwave", variant_config("diffwave", False), rows, 100, 2, False)
    assert diffwave == {"steps": 400}  # 10 steps/s at batch 256, 100 s shared two ways
    timevqvae = plan_steps("timevqvae", variant_config("timevqvae", False), rows, 90, 3, False)
    assert timevqvae == {"steps": 240, "prior_steps": 960}  # 30 and 60 steps/s, a third and two thirds of 90 s, 3 ways


def test_a_variant_cut_while_sampling_its_extra_settings_is_judged_on_what_it_wrote(tmp_path):
    """The deadline kills a worker wherever it is, and a sampler setting may crash. One that trained
    and wrote its preset-settings samples (samples0.npz) before it was killed or crashed keeps those;
    one killed in training, or crashed before, has failed. Phase 3 judges every variant's samples0
    before any extra setting's set."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from gpu_generators import finish, sample_sets

    from synthecg.io import partial_path

    processes = {}
    for name, sampled, command in [("cut", True, "import time; time.sleep(60)"),
                                   ("crashed after sampling", True, "raise SystemExit(3)"),
                                   ("training", False, "import time; time.sleep(60)"),
                                   ("crashed", False, "raise SystemExit(3)")]:
        (tmp_path / name).mkdir()
        if sampled:
            (tmp_path / name / "model.json").write_text("{}")
            (tmp_path / name / "samples0.npz").write_bytes(b"")
        log = open(tmp_path / f"{name}.log", "w")
        processes[name] = (subprocess.Popen([sys.executable, "-c", command], stdout=log, stderr=subprocess.STDOUT), log)
    failed, cut = finish(processes, tmp_path, deadline=time.perf_counter() + 10)
    assert set(cut) == {"cut", "crashed after sampling"} and set(failed) == {"training", "crashed"}
    assert failed["crashed"].startswith("exit 3") and failed["training"].startswith("exit killed")
    assert all(process.poll() is not None for process, _ in processes.values())

    for name, count in [("a", 3), ("b", 1), ("c", 2)]:
        (tmp_path / name).mkdir()
        for index in range(count):
            (tmp_path / name / f"samples{index}.npz").write_bytes(b"")
        partial_path(tmp_path / name / f"samples{count}.npz").write_bytes(b"")  # cut while writing: never judged
    order = [(name, path.name) for name, path in sample_sets(tmp_path, ["a", "b", "c"])]
    assert order == [("a", "samples0.npz"), ("b", "samples0.npz"), ("c", "samples0.npz"),
                     ("a", "samples1.npz"), ("a", "samples2.npz"), ("c", "samples1.npz")]


def test_past_its_budget_phase_3_judges_only_each_variants_preset_settings(tmp_path):
    """When the budget is spent, each variant is still judged once (samples0) and the extra settings'
    sets are listed as not judged; a set whose judging fails is listed and the others go on."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from gpu_generators import judge_sets

    for name, count in [("a", 3), ("b", 2)]:
        (tmp_path / name).mkdir()
        for index in range(count):
            (tmp_path / name / f"samples{index}.npz").write_bytes(b"")

    def judge_one(name, path):
        if name == "b":
            raise ValueError("unreadable")
        return (name, path.name)

    for budget_end, judged_sets, not_judged in [
            (time.perf_counter() - 1, [("a", "samples0.npz")], {"a": ["samples1.npz", "samples2.npz"], "b": ["samples1.npz"]}),
            (time.perf_counter() + 3600, [("a", "samples0.npz"), ("a", "samples1.npz"), ("a", "samples2.npz")], {})]:
        plans, kept = {"a": {}, "b": {}}, []
        judge_sets(tmp_path, ["a", "b"], plans, budget_end, kept.append, judge_one)
        assert kept == judged_sets
        assert {name: plan["not_judged"] for name, plan in plans.items() if "not_judged" in plan} == not_judged
        assert plans["b"]["judging_failed"][0] == "samples0.npz: ValueError: unreadable"
