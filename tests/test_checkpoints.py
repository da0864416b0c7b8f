"""Model files hold plain data only, and loading one that holds more runs none of its code."""

import numpy as np
import pytest
import torch

from synthecg.checkpoints import load_checkpoint, save_checkpoint
from synthecg.classifier.experiments import load_classifier, run_experiment
from synthecg.classifier.resnet1d import ClassifierConfig
from synthecg.errors import PipelineError
from synthecg.generators.base import build
from synthecg.generators import training
from synthecg.generators.training import load_generator, train
from test_classifier import WHOLE_RECORDS, toy, write_set
from test_generators import T, tiny, toy_data

CLASSIFIER = ClassifierConfig(filters=(4, 8, 8), batch_size=8, max_epochs=1, patience=1, **WHOLE_RECORDS)


class CreatesFile:
    """Unpickled, this opens (creates) `marker`: the harmless stand-in for code a shared model.pt could run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def load_generator_model(path, tmp_path):
    load_generator(path)


def resume_generator_training(path, tmp_path):
    x, y = toy_data()
    model = build("diffwave", tiny("diffwave", steps=5), 2, 12, T, T)
    train(model, x, y, seed=0, checkpoint_path=path, fingerprint="f", name="diffwave")


def load_classifier_model(path, tmp_path):
    load_classifier(path)


def fine_tune_classifier(path, tmp_path):
    write_set(tmp_path / "real.h5", {"train": toy(6), "val": toy(3, 1), "test": toy(3, 2)})
    run_experiment("finetune", tmp_path / "real.h5", tmp_path / "f.json", config=CLASSIFIER, seed=0,
                   fraction=0.5, pretrained=path)


@pytest.mark.parametrize("load,role", [
    (load_generator_model, "the generator"),
    (resume_generator_training, "the training checkpoint of diffwave"),
    (load_classifier_model, "the classifier"),
    (fine_tune_classifier, "the pretrained classifier"),
])
def test_a_shared_model_file_that_would_run_code_is_refused_and_runs_none(load, role, tmp_path):
    marker = tmp_path / "code_ran"
    planted = tmp_path / "model.pt"
    torch.save({"model": CreatesFile(marker)}, planted)
    with pytest.raises(PipelineError, match=rf"(?s)model\.pt: refused to load {role}: .*\(io\.open\).*delete it and rerun"):
        load(planted, tmp_path)
    assert not marker.exists()
    torch.load(planted, weights_only=False)  # the plant is real: an unguarded load runs it
    assert marker.exists()


def test_a_classifier_round_trips_through_its_model_file(tmp_path):
    write_set(tmp_path / "real.h5", {"train": toy(6), "val": toy(3, 1), "test": toy(3, 2)})
    write_set(tmp_path / "syn.h5", {"synthetic": toy(6, 5)})
    torch.manual_seed(0)
    run_experiment("synthetic", tmp_path / "real.h5", tmp_path / "s.json", config=CLASSIFIER, seed=0,
                   synthetic_h5=[tmp_path / "syn.h5"], out_model=tmp_path / "model.pt")
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    loaded = load_classifier(tmp_path / "model.pt")
    assert saved["classes"] == ["A", "B", "C"] and saved["config"]["filters"] == (4, 8, 8)
    for key, value in saved["model"].items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)
    assert loaded.config.filters == (4, 8, 8) and not loaded.training


def test_a_part_way_training_checkpoint_is_plain_data(tmp_path, monkeypatch):
    """Part-way through a stage the checkpoint holds the optimiser, the batch stream and the EMA
    weights as well; a later run reads all of them with weights_only=True."""
    x, y = toy_data()
    model = build("diffwave", tiny("diffwave", steps=7), 2, 12, T, T)
    saved = {}

    def keep_part_way(payload, path):
        if payload["step"]:
            saved.update(payload)
        save_checkpoint(payload, path)

    monkeypatch.setattr(training, "save_checkpoint", keep_part_way)
    train(model, x, y, seed=0, checkpoint_path=tmp_path / "ck.pt", fingerprint="f", checkpoint_every=5, log_every=5)
    assert saved["step"] == 5 and saved["optimizer"] and saved["batch_rng"] is not None
    save_checkpoint(saved, tmp_path / "part_way.pt")
    again = load_checkpoint(tmp_path / "part_way.pt", what="a checkpoint", remedy="rerun")
    torch.testing.assert_close(again["batch_rng"], saved["batch_rng"], rtol=0, atol=0)
    torch.testing.assert_close(again["rng_cpu"], saved["rng_cpu"], rtol=0, atol=0)
    assert again["optimizer"]["param_groups"] == saved["optimizer"]["param_groups"]


def test_saving_anything_but_plain_data_fails_and_leaves_no_file(tmp_path):
    with pytest.raises(TypeError, match=r"model\.pt: not saved, the payload holds .*numpy"):
        save_checkpoint({"history": [{"loss": np.float64(0.5)}]}, tmp_path / "model.pt")
    assert list(tmp_path.iterdir()) == []


def test_a_damaged_model_file_names_itself_and_the_fix(tmp_path):
    save_checkpoint({"model": {"w": torch.zeros(3)}}, tmp_path / "model.pt")
    whole = (tmp_path / "model.pt").read_bytes()
    (tmp_path / "model.pt").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(PipelineError, match=r"model\.pt: cannot read the generator .*delete it and rerun its training"):
        load_generator(tmp_path / "model.pt")
