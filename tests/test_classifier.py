"""The classifier, its metrics and how each experiment builds its training set."""

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, precision_score, roc_auc_score

from synthecg.classifier.experiments import augmentation_indices, nested_fraction_indices, run_experiment
from synthecg.classifier.resnet1d import ClassifierConfig, ResNet1d, make_classifier_config
from synthecg.classifier.training import fit, predict_probabilities
from synthecg.data.store import STANDARD_LEADS, DatasetWriter, RunningStats
from synthecg.errors import PipelineError
from synthecg.evaluation.metrics import classification_metrics

TINY = ClassifierConfig(filters=(8, 16, 16), batch_size=16, max_epochs=15, patience=15, learning_rate=3e-3)
T = 64


def toy(n_per_class=20, seed=0, classes=(0, 1, 2)):
    """Separable classes: sines of 1, 4 and 9 cycles on every lead, with noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(T) / T
    xs, ys = [], []
    for c in classes:
        for _ in range(n_per_class):
            wave = np.sin(2 * np.pi * (1, 4, 9)[c] * t + rng.uniform(0, 6.3))
            xs.append(wave[None].repeat(12, 0) + 0.3 * rng.normal(size=(12, T)))
            ys.append(c)
    return np.asarray(xs, np.float32), np.asarray(ys)


def test_the_classifier_learns_a_separable_task():
    x, y = toy()
    val_x, val_y = toy(8, seed=1)
    model = ResNet1d(TINY, 12, 3)
    result = fit(model, x, y, val_x, val_y, TINY, learning_rate=TINY.learning_rate, seed=0, device=torch.device("cpu"))
    test_x, test_y = toy(10, seed=2)
    accuracy = (predict_probabilities(model, test_x, torch.device("cpu")).argmax(1) == test_y).mean()
    assert accuracy >= 0.9 and result.best_val_macro_f1 >= 0.9
    assert 1 <= result.best_epoch <= result.epochs


def test_metrics_agree_with_scikit_learn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    probabilities = rng.dirichlet(np.ones(3), 60)
    probabilities[np.arange(60), y] += 0.3 * rng.random(60)  # better than chance
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    metrics = classification_metrics(y, probabilities, ["A", "B", "C"])
    predicted = probabilities.argmax(1)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y, predicted))
    assert metrics["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, predicted))
    assert metrics["macro_precision"] == pytest.approx(precision_score(y, predicted, average="macro"))
    assert metrics["macro_f1"] == pytest.approx(f1_score(y, predicted, average="macro"))
    assert metrics["per_class_f1"]["B"] == pytest.approx(f1_score(y, predicted, average=None)[1])
    assert metrics["macro_auroc"] == pytest.approx(roc_auc_score(y, probabilities, multi_class="ovr", average="macro"))
    assert metrics["missing"] == {}
    assert np.asarray(metrics["confusion_matrix"]).sum() == 60


def test_a_class_absent_from_the_test_split_is_missing_with_its_reason():
    y = np.array([0, 0, 1, 1, 0])
    probabilities = np.eye(3)[[0, 1, 1, 1, 2]]
    metrics = classification_metrics(y, probabilities, ["A", "B", "C"])
    assert metrics["per_class_f1"]["C"] is None
    assert metrics["missing"]["per_class_f1.C"] == "class C has no record in the test split"
    assert metrics["macro_over_classes"] == ["A", "B"]
    assert metrics["macro_f1"] == pytest.approx(f1_score(y, probabilities.argmax(1), labels=[0, 1], average="macro"))
    empty = classification_metrics(np.array([], int), np.zeros((0, 3)), ["A", "B", "C"])
    assert empty["macro_f1"] is None and empty["missing"]["macro_f1"] == "the test split is empty"
    assert empty["per_class_f1"] == {"A": None, "B": None, "C": None}
    single = classification_metrics(np.array([1, 1]), np.eye(3)[[1, 0]], ["A", "B", "C"])
    assert single["macro_auroc"] is None and "fewer than two classes" in single["missing"]["macro_auroc"]


def test_augmentation_takes_the_configured_count_per_class():
    real_y = np.array([0] * 10 + [1] * 4 + [2] * 1)
    synthetic_y = np.array([0] * 30 + [1] * 30 + [2] * 30)
    for ratio, expected in [(0.5, {0: 5, 1: 2, 2: 0}), (2, {0: 20, 1: 8, 2: 2})]:
        taken = synthetic_y[augmentation_indices(real_y, synthetic_y, ratio, seed=0)]
        assert {c: int((taken == c).sum()) for c in (0, 1, 2)} == expected


def test_fine_tuning_fractions_are_stratified_and_nested():
    y = np.array([0] * 40 + [1] * 20 + [2] * 3)
    previous = set()
    for fraction in (0.05, 0.1, 0.25, 0.5, 1.0):
        chosen = set(nested_fraction_indices(y, fraction, seed=3).tolist())
        assert previous <= chosen, fraction
        counts = np.bincount(y[list(chosen)], minlength=3)
        assert counts[0] == np.ceil(40 * fraction) and counts[2] >= 1
        previous = chosen
    assert len(nested_fraction_indices(y, 0, seed=3)) == 0
    assert set(nested_fraction_indices(y, 0.25, 4)) != set(nested_fraction_indices(y, 0.25, 3))


def write_set(path, splits, classes=("A", "B", "C"), synthetic=False):
    stats = RunningStats()
    with DatasetWriter(path, T, tuple(splits)) as writer:
        for split, (x, y) in splits.items():
            for i, (record, label) in enumerate(zip(x, y)):
                writer.append(split, record, int(label), f"{split}{i}", f"p{i}", "toy")
                if split in ("train", "synthetic"):
                    stats = stats.merge(RunningStats.of(record))
        writer.finish({"classes": list(classes), "leads": list(STANDARD_LEADS), "fs": T, "seconds": 1,
                       "units": "mV", "dataset": "toy", "norm_mean": stats.mean, "norm_std": stats.std,
                       "norm_count": stats.count})


def test_fine_tuning_starts_from_the_pretrained_weights(tmp_path, monkeypatch):
    write_set(tmp_path / "real.h5", {"train": toy(6), "val": toy(3, 1), "test": toy(3, 2)})
    write_set(tmp_path / "syn.h5", {"synthetic": toy(6, 5)})
    config = ClassifierConfig(filters=(4, 8, 8), batch_size=8, max_epochs=1, patience=1)
    run_experiment("synthetic", tmp_path / "real.h5", tmp_path / "s.json", config=config, seed=0,
                   synthetic_h5=[tmp_path / "syn.h5"], out_model=tmp_path / "pre.pt")
    pretrained = torch.load(tmp_path / "pre.pt", weights_only=False)["model"]
    seen = {}

    def spy(model, *args, **kwargs):
        seen.update({k: v.clone() for k, v in model.state_dict().items()})
        return type("R", (), {"epochs": 0, "best_epoch": 0, "best_val_macro_f1": None, "stopped_by": "spy",
                              "wall_time_s": 0.0, "history": []})()

    monkeypatch.setattr("synthecg.classifier.experiments.fit", spy)
    metrics = run_experiment("finetune", tmp_path / "real.h5", tmp_path / "f.json", config=config, seed=0,
                             fraction=0.5, pretrained=tmp_path / "pre.pt")
    for key, value in pretrained.items():
        torch.testing.assert_close(seen[key], value)
    assert metrics["train_records_per_class"] == {"A": 3, "B": 3, "C": 3}
    assert json.loads((tmp_path / "f.json").read_text())["experiment"] == "finetune"


def test_unknown_classifier_settings_are_config_errors():
    with pytest.raises(PipelineError, match=r"config key classifier: unknown settings \['depth'\]"):
        make_classifier_config({"depth": 3})
