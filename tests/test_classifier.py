"""The classifier, its metrics and how each experiment builds its training set."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, precision_score, roc_auc_score

from synthecg.classifier.classical_augmentation import ClassicalAugmentation, augment_records, classical_indices
from synthecg.classifier.experiments import (
    augmentation_indices,
    balance_indices,
    load_classifier,
    nested_fraction_indices,
    run_experiment,
)
from synthecg.classifier.resnet1d import ClassifierConfig, SlidingWindows, build_classifier, make_classifier_config
from synthecg.classifier.resnet1d_wang import ResNet1dWang
from synthecg.classifier.training import (
    epoch_order,
    fit,
    inverse_frequency_weights,
    predict_probabilities,
    random_crops,
)
from synthecg.classifier.wang2017_resnet import Wang2017ResNet
from synthecg.data.store import STANDARD_LEADS, DatasetWriter, RunningStats
from synthecg.errors import PipelineError
from synthecg.evaluation.metrics import classification_metrics

WHOLE_RECORDS = {"train_crop_seconds": None, "eval_window_seconds": None}
TINY = ClassifierConfig(filters=(8, 16, 16), batch_size=16, max_epochs=15, patience=15, learning_rate=3e-3,
                        **WHOLE_RECORDS)
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
    torch.manual_seed(0)  # the initial weights, whatever tests ran before in this process
    model = build_classifier(TINY, 12, 3)
    result = fit(model, x, y, val_x, val_y, TINY, learning_rate=TINY.learning_rate, seed=0, device=torch.device("cpu"),
                 fs=None)
    test_x, test_y = toy(10, seed=2)
    accuracy = (predict_probabilities(model, test_x, torch.device("cpu"), windows=None).argmax(1) == test_y).mean()
    assert accuracy >= 0.9 and result.best_val_macro_f1 >= 0.9
    assert 1 <= result.best_epoch <= result.epochs


@pytest.mark.parametrize("metric", ["macro_f1", "macro_auroc"])
def test_the_best_epoch_is_the_one_with_the_best_score_of_the_chosen_metric(metric):
    x, y = toy(10)
    val_x, val_y = toy(4, seed=1)
    config = dataclasses.replace(TINY, early_stopping_metric=metric, max_epochs=6, patience=6)
    result = fit(build_classifier(config, 12, 3), x, y, val_x, val_y, config, learning_rate=config.learning_rate,
                 seed=0, device=torch.device("cpu"), fs=None)
    scores = [epoch[f"val_{metric}"] for epoch in result.history]
    best = int(np.argmax(scores))  # the first of equal scores: a tie does not move the best epoch
    assert result.best_epoch == result.history[best]["epoch"] and result.best_val_score == scores[best]
    assert all({"val_macro_f1", "val_macro_auroc"} <= set(epoch) for epoch in result.history)
    with pytest.raises(PipelineError, match="classifier.early_stopping_metric: 'loss' is none of"):
        make_classifier_config({"early_stopping_metric": "loss"})


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
        return type("R", (), {"epochs": 0, "best_epoch": 0, "best_val_macro_f1": None, "best_val_score": None, "stopped_by": "spy",
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


def n_parameters(model):
    return sum(p.numel() for p in model.parameters())


def test_resnet1d_wang_is_the_default_and_takes_records_and_crops():
    model = build_classifier(ClassifierConfig(), 12, 4).eval()
    assert isinstance(model, ResNet1dWang) and model.n_classes == 4
    with torch.no_grad():
        for n_samples, steps in [(1000, 250), (250, 63)]:  # 10 s and a 2.5 s crop at 100 Hz; strides 1, 2, 2
            x = torch.randn(2, 12, n_samples)
            assert model(x).shape == (2, 4)
            assert model.embed(x).shape == (2, 256)  # max ‖ average pooling of 128 channels
            assert model.blocks(model.stem(x)).shape == (2, 128, steps)


def test_resnet1d_wang_has_the_benchmarks_parameter_count():
    # helme/ecg_ptbxl_benchmarking resnet1d_wang(input_channels=12, num_classes=4), bias-free convolutions:
    #   stem   conv 12->128 k7: 12*128*7 = 10,752; BN 256                          ->  11,008
    #   block1 conv k5 128*128*5 = 81,920; BN 256; conv k3 128*128*3 = 49,152; BN 256;
    #          identity shortcut (stride 1, 128 -> 128)                           -> 131,584
    #   block2 as block1 + shortcut conv 1x1 stride 2 128*128 = 16,384 + BN 256   -> 148,224
    #   block3 as block2                                                          -> 148,224
    #   head   BN 256: 512; Linear 256->128: 32,896; BN 128: 256; Linear 128->4: 516 -> 34,180
    #   total 11,008 + 131,584 + 2 * 148,224 + 34,180 = 473,220
    assert n_parameters(build_classifier(ClassifierConfig(), 12, 4)) == 473_220
    narrow = build_classifier(make_classifier_config({"filters": [32, 32, 32]}), 12, 4)
    assert n_parameters(narrow) < 473_220 // 10


def test_wang2017_resnet_is_still_selectable_with_its_old_size():
    config = make_classifier_config({"architecture": "wang2017_resnet"})
    model = build_classifier(config, 12, 4).eval()
    assert isinstance(model, Wang2017ResNet)
    assert n_parameters(model) == 509_700  # 64/128/128 filters, kernels 8/5/3, as before resnet1d_wang
    with torch.no_grad():
        assert model(torch.randn(2, 12, 1000)).shape == (2, 4) and model.embed(torch.randn(2, 12, 250)).shape == (2, 128)


def test_unknown_architecture_fails_naming_the_key():
    with pytest.raises(PipelineError, match=r"config key classifier\.architecture: unknown architecture 'resnet50'"):
        make_classifier_config({"architecture": "resnet50"})
    with pytest.raises(PipelineError, match=r"classifier\.eval_aggregate"):
        make_classifier_config({"eval_aggregate": "median"})
    with pytest.raises(PipelineError, match=r"classifier\.eval_window_seconds: 2.5 s needs the records' sampling rate"):
        ClassifierConfig().eval_windows(None)


def test_the_benchmark_protocol_in_samples():
    config = ClassifierConfig()
    assert config.train_crop_samples(100) == 250 and config.train_crop_samples(500) == 1250
    assert config.eval_windows(100) == SlidingWindows(250, 125, "max")
    whole = make_classifier_config({"train_crop_seconds": 0, "eval_window_seconds": None})
    assert whole.train_crop_samples(100) is None and whole.eval_windows(100) is None


def test_a_random_training_crop_has_its_length_and_lies_inside_the_record():
    n_samples, length = 1000, 250
    x = torch.arange(n_samples, dtype=torch.float32).expand(64, 12, n_samples) + 10_000 * torch.arange(64)[:, None, None]
    crops = random_crops(x, length, np.random.default_rng(0))
    assert crops.shape == (64, 12, length)
    starts = crops[:, 0, 0] - 10_000 * torch.arange(64)  # each record's own samples, from its start on
    torch.testing.assert_close(crops, x[:, :, :length] + starts[:, None, None])
    assert starts.min() >= 0 and starts.max() <= n_samples - length
    assert len(set(starts.tolist())) > 32  # random starts, not one fixed window
    assert random_crops(x[:, :, :200], length, np.random.default_rng(0)).shape[-1] == 200  # short: whole
    near = random_crops(x[:, :, :260], length, np.random.default_rng(0))  # 11 possible starts, both ends included
    assert set((near[:, 0, 0] - 10_000 * torch.arange(64)).tolist()) == set(range(11))


class PositionModel(torch.nn.Module):
    """Logits [first sample of lead 0, 0]: a window's class-0 probability is the sigmoid of where it starts."""

    n_classes = 2

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(tuple(x.shape))
        return torch.stack([x[:, 0, 0], torch.zeros(len(x))], dim=1)


def test_sliding_window_prediction_aggregates_the_windows():
    n_samples = 10
    x = np.zeros((3, 12, n_samples), np.float32)
    x[:, 0] = (np.arange(n_samples) - 5) / 2 + np.arange(3)[:, None]  # record r, sample t: (t - 5) / 2 + r
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    starts = np.array([0, 2, 4, 6])  # windows of 4 every 2 samples, inside 10 samples
    p0 = sigmoid((starts[None] - 5) / 2 + np.arange(3)[:, None])  # [record, window]
    device = torch.device("cpu")
    model = PositionModel()
    highest = predict_probabilities(model, x, device, windows=SlidingWindows(4, 2, "max"), batch_size=8)
    np.testing.assert_allclose(highest[:, 0], p0.max(1), rtol=1e-6)  # the last window's
    np.testing.assert_allclose(highest[:, 1], (1 - p0).max(1), rtol=1e-6)  # the first window's
    assert model.seen == [(8, 12, 4), (4, 12, 4)]  # two records' windows, then the third's
    mean = predict_probabilities(model, x, device, windows=SlidingWindows(4, 2, "mean"))
    np.testing.assert_allclose(mean[:, 0], p0.mean(1), rtol=1e-6)
    whole = predict_probabilities(model, x, device, windows=None)
    np.testing.assert_allclose(whole[:, 0], p0[:, 0], rtol=1e-6)
    model.seen.clear()
    predict_probabilities(model, np.zeros((2, 12, 1000), np.float32), device, windows=ClassifierConfig().eval_windows(100))
    assert model.seen == [(14, 12, 250)]  # the benchmark's 7 windows per 10 s record: starts 0, 125, ..., 750


def test_fit_trains_on_crops_and_validates_on_windows():
    x, y = toy(4)
    config = ClassifierConfig(filters=(4, 4, 4), batch_size=4, max_epochs=1, patience=1, train_crop_seconds=0.5,
                              eval_window_seconds=0.25, eval_window_stride_seconds=0.25)
    model = build_classifier(config, 12, 3)
    lengths = []
    model.register_forward_hook(lambda module, args, out: lengths.append((module.training, args[0].shape[-1])))
    fit(model, x, y, x, y, config, learning_rate=1e-3, seed=0, device=torch.device("cpu"), fs=T)
    assert {n for training, n in lengths if training} == {32}  # 0.5 s at 64 Hz
    assert {n for training, n in lengths if not training} == {16}  # 0.25 s windows


def test_a_classifier_saved_before_the_architecture_setting_loads_as_wang2017(tmp_path):
    old = {"filters": [4, 8, 8], "kernels": [8, 5, 3], "batch_size": 8, "learning_rate": 1e-3, "weight_decay": 1e-2,
           "max_epochs": 1, "patience": 1, "finetune_learning_rate": 1e-4}
    model = Wang2017ResNet(12, 3, (4, 8, 8))
    torch.save({"model": model.state_dict(), "config": old, "classes": ["A", "B", "C"], "n_leads": 12},
               tmp_path / "model.pt")
    loaded = load_classifier(tmp_path / "model.pt")
    assert isinstance(loaded, Wang2017ResNet) and loaded.config.eval_windows(100) is None


def test_scratch_and_finetune_at_a_fraction_train_on_the_identical_real_records(tmp_path, monkeypatch):
    write_set(tmp_path / "real.h5", {"train": toy(10), "val": toy(3, 1), "test": toy(3, 2)})
    write_set(tmp_path / "syn.h5", {"synthetic": toy(6, 5)})
    config = ClassifierConfig(filters=(4, 8, 8), batch_size=8, max_epochs=1, patience=1, **WHOLE_RECORDS)
    run_experiment("synthetic", tmp_path / "real.h5", tmp_path / "s.json", config=config, seed=0,
                   synthetic_h5=[tmp_path / "syn.h5"], out_model=tmp_path / "pre.pt")
    seen = {}

    def spy(model, x, y, *args, keep_initial, **kwargs):
        seen[len(seen)] = (x.copy(), y.copy(), keep_initial, kwargs["learning_rate"])
        return type("R", (), {"epochs": 0, "best_epoch": 0, "best_val_macro_f1": None, "best_val_score": None, "stopped_by": "spy",
                              "wall_time_s": 0.0, "history": []})()

    monkeypatch.setattr("synthecg.classifier.experiments.fit", spy)
    for experiment in ("finetune", "scratch"):
        run_experiment(experiment, tmp_path / "real.h5", tmp_path / f"{experiment}.json", config=config, seed=4,
                       fraction=0.3, pretrained=tmp_path / "pre.pt")
    (finetune_x, finetune_y, finetune_keeps, finetune_lr), (scratch_x, scratch_y, scratch_keeps, scratch_lr) = seen.values()
    np.testing.assert_array_equal(finetune_x, scratch_x)
    np.testing.assert_array_equal(finetune_y, scratch_y)
    assert finetune_keeps and not scratch_keeps  # only a pretrained model has an epoch 0 worth keeping
    assert (finetune_lr, scratch_lr) == (config.finetune_learning_rate, config.learning_rate)
    untrained = run_experiment("scratch", tmp_path / "real.h5", tmp_path / "zero.json", config=config, seed=4,
                               fraction=0)
    assert untrained["epochs"] == 0 and "randomly initialised" in untrained["stopped_by"]


def test_fine_tuning_keeps_the_pretrained_weights_when_no_epoch_beats_them():
    x, y = toy()
    model = build_classifier(TINY, 12, 3)
    fit(model, x, y, *toy(8, seed=1), TINY, learning_rate=TINY.learning_rate, seed=0, device=torch.device("cpu"), fs=None)
    pretrained = {k: v.clone() for k, v in model.state_dict().items()}
    # Fine-tuning on shuffled labels can only make a good model worse on validation.
    shuffled = np.random.default_rng(0).permutation(y)
    config = ClassifierConfig(filters=(8, 16, 16), batch_size=16, max_epochs=3, patience=3, **WHOLE_RECORDS)
    result = fit(model, x, shuffled, *toy(8, seed=1), config, learning_rate=1e-2, seed=0,
                 device=torch.device("cpu"), fs=None, keep_initial=True)
    assert result.best_epoch == 0 and result.history[0]["epoch"] == 0
    for key, value in pretrained.items():
        torch.testing.assert_close(model.state_dict()[key], value)


def test_class_weights_and_balanced_batches_give_each_class_the_same_share():
    y = np.array([0] * 70 + [1] * 20 + [2] * 10)
    weights = inverse_frequency_weights(y, 4)
    assert weights[3] == 0  # a class without training records
    totals = [weights[c] * (y == c).sum() for c in range(3)]
    np.testing.assert_allclose(totals, [len(y) / 3] * 3)
    drawn = np.concatenate([epoch_order(y, 4, "sampler", np.random.default_rng(s)) for s in range(50)])
    shares = np.bincount(y[drawn], minlength=3) / len(drawn)
    np.testing.assert_allclose(shares, [1 / 3] * 3, atol=0.02)
    plain = epoch_order(y, 4, "none", np.random.default_rng(0))
    assert sorted(plain) == list(range(len(y)))


def test_class_weighting_moves_the_learnt_prior_from_the_class_frequencies_to_uniform():
    # Records that carry no information: all a network can learn is the prior. 60:3, like SR:SB.
    x, y = np.zeros((63, 12, T), np.float32), np.array([0] * 60 + [1] * 3)
    no_validation = np.zeros((0, 12, T), np.float32), np.zeros(0, int)
    minority_probability = {}
    for weighting in ("none", "loss", "sampler"):
        config = ClassifierConfig(filters=(8, 16, 16), batch_size=16, max_epochs=10, patience=10, learning_rate=3e-3,
                                  class_weighting=weighting, **WHOLE_RECORDS)
        torch.manual_seed(0)
        model = build_classifier(config, 12, 2)
        fit(model, x, y, *no_validation, config, learning_rate=config.learning_rate, seed=0,
            device=torch.device("cpu"), fs=None)
        minority_probability[weighting] = predict_probabilities(model, x[:1], torch.device("cpu"), windows=None)[0, 1]
    assert minority_probability["none"] < 0.1, minority_probability  # the frequency, 3 / 63
    assert minority_probability["loss"] > 0.3 and minority_probability["sampler"] > 0.3, minority_probability


def test_unknown_class_weighting_fails_naming_the_key():
    with pytest.raises(PipelineError, match="classifier.class_weighting"):
        make_classifier_config({"class_weighting": "oversample"})


def test_balance_tops_every_class_up_to_the_largest():
    real_y = np.array([0] * 10 + [1] * 4 + [2] * 1)
    synthetic_y = np.array([0] * 30 + [1] * 30 + [2] * 30)
    taken = synthetic_y[balance_indices(real_y, synthetic_y, None, seed=0)]
    assert np.bincount(taken, minlength=3).tolist() == [0, 6, 9]
    taken = synthetic_y[balance_indices(real_y, synthetic_y, 12, seed=0)]
    assert np.bincount(taken, minlength=3).tolist() == [2, 8, 11]


def test_classical_augmentation_keeps_each_records_class_and_changes_its_signal():
    x, y = toy(5)
    index = classical_indices(y, 2.5, seed=0)
    assert np.bincount(y[index]).tolist() == [12, 12, 12]  # round(2.5 x 5), every record at least twice
    settings = ClassicalAugmentation(max_shift_seconds=0.1)
    augmented = augment_records(x[index], fs=T, settings=settings, rng=np.random.default_rng(0))
    assert augmented.shape == x[index].shape and augmented.dtype == np.float32
    difference = augmented - x[index]
    assert 0.05 < difference.std() < 1.0  # changed, but not beyond recognition
    none = ClassicalAugmentation(jitter_std=0, scaling_std=0, max_shift_seconds=0, wander_amplitude=0)
    np.testing.assert_allclose(augment_records(x, T, none, np.random.default_rng(0)), x, atol=1e-6)


def test_the_real_run_reports_the_majority_class_floor(tmp_path):
    x, y = toy(8)
    write_set(tmp_path / "real.h5", {"train": (x[:14], y[:14]), "val": toy(3, 1), "test": toy(4, 2)})
    config = ClassifierConfig(filters=(4, 8, 8), batch_size=8, max_epochs=1, patience=1, **WHOLE_RECORDS)
    metrics = run_experiment("real", tmp_path / "real.h5", tmp_path / "r.json", config=config, seed=0)
    floor = metrics["majority_class_baseline"]
    assert floor["macro_auroc"] == 0.5 and floor["accuracy"] == pytest.approx(1 / 3)
    assert floor["balanced_accuracy"] == pytest.approx(1 / 3)  # one class of three recalled: every metric the tables show
    shuffled = run_experiment("shuffled", tmp_path / "real.h5", tmp_path / "s.json", config=config, seed=0)
    assert shuffled["train_records_per_class"] == metrics["train_records_per_class"]


def test_a_merged_run_is_also_scored_on_each_sources_part_of_the_test_split(tmp_path):
    x, y = toy(6, 2)
    path = tmp_path / "merged.h5"
    splits = {"train": toy(6), "val": toy(3, 1), "test": (x, y)}
    stats = RunningStats()
    with DatasetWriter(path, T, tuple(splits)) as writer:
        for split, (records, labels) in splits.items():
            for i, (record, label) in enumerate(zip(records, labels)):
                writer.append(split, record, int(label), f"{split}{i}", f"p{i}", ("ptbxl", "chapman")[i % 2])
                stats = stats.merge(RunningStats.of(record)) if split == "train" else stats
        writer.finish({"classes": ["A", "B", "C"], "leads": list(STANDARD_LEADS), "fs": T, "seconds": 1, "units": "mV",
                       "dataset": "merged", "norm_mean": stats.mean, "norm_std": stats.std, "norm_count": stats.count})
    config = ClassifierConfig(filters=(4, 8, 8), batch_size=8, max_epochs=1, patience=1, **WHOLE_RECORDS)
    metrics = run_experiment("real", path, tmp_path / "m.json", config=config, seed=0)
    parts = metrics["by_source"]
    assert set(parts) == {"ptbxl", "chapman"} and parts["ptbxl"]["n_test"] + parts["chapman"]["n_test"] == len(y)
    single = tmp_path / "single.h5"
    write_set(single, splits)
    assert "by_source" not in run_experiment("real", single, tmp_path / "s.json", config=config, seed=0)


def test_an_empty_synthetic_set_gives_null_scores_with_the_reason_and_so_does_its_fine_tuning(tmp_path):
    """A curated set none of whose records fit their class holds no records: its synthetic-only run
    and the fine-tuning of that run's (untrained) model say so with null scores, and the grid goes on."""
    write_set(tmp_path / "real.h5", {"train": toy(6), "val": toy(3, 1), "test": toy(3, 2)})
    empty = (np.zeros((0, 12, T), np.float32), np.zeros(0, int))
    write_set(tmp_path / "curated.h5", {"synthetic": empty})
    config = ClassifierConfig(filters=(4, 8, 8), batch_size=8, max_epochs=1, patience=1)
    synthetic = run_experiment("synthetic", tmp_path / "real.h5", tmp_path / "s.json", config=config, seed=0,
                               synthetic_h5=[tmp_path / "curated.h5"], out_model=tmp_path / "pre.pt")
    assert synthetic["macro_f1"] is None and "holds no records" in synthetic["not_trained"]
    assert json.loads((tmp_path / "s.json").read_text())["macro_auroc"] is None
    finetuned = run_experiment("finetune", tmp_path / "real.h5", tmp_path / "f.json", config=config, seed=0,
                               fraction=0.5, pretrained=tmp_path / "pre.pt")
    assert finetuned["macro_f1"] is None and "was not trained" in finetuned["not_trained"]
    augmented = run_experiment("augment", tmp_path / "real.h5", tmp_path / "a.json", config=config, seed=0,
                               synthetic_h5=[tmp_path / "curated.h5"], ratio=1.0)
    assert sum(augmented["train_records_per_class"].values()) == len(toy(6)[1])  # the real records alone


def one_pass_augmentation(x, fs, settings, rng):
    """augment_records as it was before it worked in blocks (every draw over all records at once):
    the reference its blocks must reproduce exactly."""
    n, n_leads, n_samples = x.shape
    out = x + rng.normal(0.0, settings.jitter_std, size=x.shape)
    out *= rng.normal(1.0, settings.scaling_std, size=(n, n_leads, 1))
    max_shift = int(round(settings.max_shift_seconds * fs))
    if max_shift:
        shifts = rng.integers(-max_shift, max_shift + 1, size=n)
        out = np.stack([np.roll(record, int(shift), axis=-1) for record, shift in zip(out, shifts)])
    if settings.wander_amplitude:
        t = np.arange(n_samples) / fs
        frequency = rng.uniform(0.05, max(settings.wander_max_hz, 0.05), size=(n, n_leads, 1))
        phase = rng.uniform(0, 2 * np.pi, size=(n, n_leads, 1))
        out += settings.wander_amplitude * np.sin(2 * np.pi * frequency * t + phase)
    return out.astype(np.float32)


def test_classical_augmentation_in_blocks_draws_and_returns_what_one_pass_does(monkeypatch):
    from synthecg.classifier import classical_augmentation

    monkeypatch.setattr(classical_augmentation, "AUGMENT_BLOCK", 4)
    x, y = toy(5)
    index = classical_indices(y, 2.5, seed=0)
    settings = ClassicalAugmentation(max_shift_seconds=0.1)
    reference_rng, rng = np.random.default_rng(3), np.random.default_rng(3)
    expected = one_pass_augmentation(x[index], T, settings, reference_rng)
    out = np.zeros((len(index) + 1, *x.shape[1:]), np.float32)
    augment_records(x, T, settings, rng, rows=index, out=out[1:])
    np.testing.assert_array_equal(out[1:], expected)
    assert not out[0].any()
    assert rng.random() == reference_rng.random()  # the generator is left where one pass leaves it
