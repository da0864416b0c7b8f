"""The shared generator machinery, exercised with every model at tiny sizes."""

import json

import numpy as np
import pytest
import torch

from synthecg.data.store import STANDARD_LEADS, DatasetWriter, RunningStats, load_split, metadata
from synthecg.errors import PipelineError
from synthecg.generators.base import build, make_config
from synthecg.generators.jobs import classes_to_train, fit_generator, sample_to_h5, synthetic_counts
from synthecg.data.leads import limb_lead_residual
from synthecg.generators.training import load_generator, record_weights, save_generator, train

T = 64
TINY = {
    "diffwave": dict(residual_layers=4, residual_channels=32, dilation_cycle=4, embedding_dim=32,
                     diffusion_steps=50, beta_end=0.2, batch_size=32, steps=40, learning_rate=5e-3),
    "timediffusion": dict(hidden_channels=16, max_dilation_exponent=4, batch_size=16, steps=40,
                          learning_rate=5e-3, max_seed_records=8, sampling_steps=5),
    "timevqvae": dict(batch_size=16, steps=20, prior_steps=20, init_channels=8, hidden_channels=16,
                      n_resnet_blocks=1, codebook_size_lf=16, codebook_size_hf=16, prior_hidden_lf=32,
                      prior_layers_lf=2, prior_heads_lf=2, prior_hidden_hf=16, prior_layers_hf=1, prior_heads_hf=1,
                      learning_rate=2e-3, prior_learning_rate=2e-3, sampling_steps=6),
}


def toy_data(n_per_class=24, seed=0):
    """Two classes that differ clearly: a slow small sine and a fast large one, 12 leads."""
    rng = np.random.default_rng(seed)
    t = np.arange(T) / T
    xs, ys = [], []
    for label, (frequency, amplitude) in enumerate([(1, 0.5), (6, 1.5)]):
        for _ in range(n_per_class):
            phase = rng.uniform(0, 2 * np.pi)
            wave = amplitude * np.sin(2 * np.pi * frequency * t + phase)
            xs.append(np.repeat(wave[None], 12, 0) + 0.05 * rng.normal(size=(12, T)))
            ys.append(label)
    return np.asarray(xs, np.float32), np.asarray(ys, np.int64)


def tiny(name, **changes):
    return make_config(name, {**TINY[name], **changes})


@pytest.mark.parametrize("name", sorted(TINY))
def test_save_and_load_give_identical_samples(name, tmp_path):
    torch.manual_seed(0)
    model = build(name, tiny(name, steps=5), 2, 12, T, T)
    x, y = toy_data()
    model.prepare(torch.from_numpy(x), torch.from_numpy(y))
    save_generator(model, name, tmp_path / "model.pt")
    loaded = load_generator(tmp_path / "model.pt")
    labels = torch.tensor([0, 1, 1, 0])
    first = model.eval().sample(labels, torch.Generator().manual_seed(3))
    again = loaded.sample(labels, torch.Generator().manual_seed(3))
    assert first.shape == (4, 12, T)
    torch.testing.assert_close(first, again, rtol=0, atol=0)


def test_a_model_whose_weights_no_longer_fit_the_code_is_a_clear_error(tmp_path):
    """A model saved by an older layout (here: the HF prior's former LF prefix, one position per LF
    token more) names its file and says to retrain, instead of a bare state-dict error."""
    model = build("timevqvae", tiny("timevqvae", steps=5), 2, 12, T, T)
    save_generator(model, "timevqvae", tmp_path / "model.pt")
    saved = torch.load(tmp_path / "model.pt", weights_only=False)
    position = saved["model"]["priors.hf.position"]
    saved["model"]["priors.hf.position"] = torch.cat([position, position[:, 1:]], dim=1)
    torch.save(saved, tmp_path / "model.pt")
    with pytest.raises(PipelineError, match=r"(?s)model\.pt: made by another version of this pipeline.*rerun its training"):
        load_generator(tmp_path / "model.pt")


class Interrupted(Exception):
    pass


# Where a job is killed: 7 steps before the end, or (TimeVQVAE) 2 steps into stage 2, after stage 1's
# last checkpoint and before stage 2's first, where stage 1's optimiser must not be restored.
KILLS = [(name, "late") for name in sorted(TINY)] + [("timevqvae", "stage boundary")]


@pytest.mark.parametrize("name,kill", KILLS)
def test_an_interrupted_run_resumes_where_it_stopped(name, kill, tmp_path, monkeypatch):
    x, y = toy_data()
    config = tiny(name, steps=20)

    def run(checkpoint, stop_after_calls=None):
        torch.manual_seed(0)
        model = build(name, config, 2, 12, T, T)
        if stop_after_calls is not None:  # fail like a killed job, part-way through
            calls = iter(range(stop_after_calls + 1))
            original = model.loss

            def loss(*args):
                if next(calls) == stop_after_calls:
                    raise Interrupted
                return original(*args)

            monkeypatch.setattr(model, "loss", loss)
        record = train(model, x, y, seed=1, checkpoint_path=checkpoint, fingerprint="f",
                       checkpoint_every=5, log_every=5)
        return model, record

    uninterrupted, full_record = run(tmp_path / "a.pt")
    steps = [stage.steps for stage in uninterrupted.training_plan()]
    stop = sum(steps) - 7 if kill == "late" else steps[0] + 2
    with pytest.raises(Interrupted):
        run(tmp_path / "b.pt", stop_after_calls=stop)
    resumed, record = run(tmp_path / "b.pt")
    expected = {"stage_index": 1, "step": 0} if kill == "stage boundary" else None
    assert record.resumed_from is not None and (record.resumed_from == expected or record.resumed_from["step"] > 0)
    assert record.history == full_record.history  # same steps, same losses
    for (key, a), b in zip(uninterrupted.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=f"{name}: {key} differs after resuming")


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    x, y = toy_data()
    torch.manual_seed(0)
    model = build("diffwave", tiny("diffwave", steps=20), 2, 12, T, T)
    original = model.loss
    calls = {"n": 0}

    def loss(*args):
        calls["n"] += 1
        value = original(*args)
        return value * float("nan") if calls["n"] > 12 else value

    monkeypatch.setattr(model, "loss", loss)
    with pytest.raises(PipelineError, match=r"loss became nan by step 15; the last good checkpoint \(step 10\)"):
        train(model, x, y, seed=0, checkpoint_path=tmp_path / "ck.pt", fingerprint="f", checkpoint_every=5, log_every=5)
    saved = torch.load(tmp_path / "ck.pt", weights_only=False)
    assert saved["step"] == 10 and all(np.isfinite(h["loss"]) for h in saved["history"])


@pytest.mark.parametrize("name", sorted(TINY))
def test_samples_follow_their_class(name, tmp_path):
    """Trained briefly on two clearly different classes, each class's samples are nearer its own."""
    x, y = toy_data()
    torch.manual_seed(0)
    model = build(name, tiny(name, **CONDITIONING_STEPS[name]), 2, 12, T, T)
    train(model, x, y, seed=0, checkpoint_path=tmp_path / "ck.pt", fingerprint="f", checkpoint_every=10_000, log_every=50)
    samples = model.sample(torch.tensor([0] * 8 + [1] * 8), torch.Generator().manual_seed(0)).numpy()

    def dominant_frequency(records):  # of the lead average, which the classes share across leads
        spectrum = np.abs(np.fft.rfft(records.mean(axis=1), axis=-1))[:, 1:]
        return spectrum.argmax(axis=1) + 1

    real = [np.median(dominant_frequency(x[y == c])) for c in (0, 1)]
    assert real == [1, 6]
    found = dominant_frequency(samples)
    nearest = np.abs(found[:, None] - np.asarray(real)[None]).argmin(1)
    assert (nearest[:8] == 0).mean() >= 0.75 and (nearest[8:] == 1).mean() >= 0.75, found


# Steps per stage for the class-conditioning test: a diffusion model needs a while before its samples are clean.
CONDITIONING_STEPS = {
    "diffwave": {"steps": 3000},
    "timediffusion": {"steps": 100},
    "timevqvae": {"steps": 100, "prior_steps": 300},
}


def test_small_classes_are_skipped_or_fail_as_configured():
    counts = {"SR": 10, "SB": 1, "AFIB": 0}
    assert classes_to_train("ptbxl", ["SR", "SB", "AFIB"], counts, 2, "skip") == ["SR"]
    with pytest.raises(PipelineError, match="ptbxl: class SB has 1 training records.*on_small_class: skip"):
        classes_to_train("ptbxl", ["SR", "SB", "AFIB"], counts, 2, "fail")


def test_synthetic_counts_are_absolute_or_relative_to_real():
    real = {"SR": 10, "SB": 3, "AFIB": 0}
    assert synthetic_counts(["SR", "SB", "AFIB"], real, ["SR", "SB"], None, 1.5) == {"SR": 15, "SB": 5, "AFIB": 0}
    assert synthetic_counts(["SR", "SB", "AFIB"], real, ["SR"], 7, 1.5) == {"SR": 7, "SB": 0, "AFIB": 0}


def test_unknown_model_settings_are_config_errors():
    with pytest.raises(PipelineError, match=r"config key generators.diffwave: unknown settings \['layers'\]"):
        make_config("diffwave", {"layers": 3})


def write_real_set(path, x, y):
    stats = RunningStats()
    with DatasetWriter(path, x.shape[-1], ("train", "val", "test")) as writer:
        for i, (record, label) in enumerate(zip(x, y)):
            writer.append("train", record, int(label), f"r{i}", f"p{i}", "toy")
            stats = stats.merge(RunningStats.of(record))
        writer.finish({"classes": ["SLOW", "FAST", "NONE"], "leads": list(STANDARD_LEADS), "fs": T,
                       "seconds": 1, "units": "mV", "dataset": "toy", "norm_mean": stats.mean,
                       "norm_std": stats.std, "norm_count": stats.count, "config_hash": "x",
                       "records_per_class": {"train": {"SLOW": int((y == 0).sum()), "FAST": int((y == 1).sum()), "NONE": 0},
                                             "val": {}, "test": {}}})


def test_fit_and_sample_jobs_write_the_synthetic_set(tmp_path):
    x, y = toy_data(n_per_class=6)
    x = x * 2 + 1  # physical units: not already normalised
    write_real_set(tmp_path / "real.h5", x, y)
    out = tmp_path / "gen"
    sidecar = fit_generator(
        tmp_path / "real.h5", "diffwave", TINY["diffwave"] | {"steps": 10}, out_model=out / "model.pt",
        out_sidecar=out / "model.json", out_curve_csv=out / "loss.csv", out_curve_png=out / "loss.png",
        checkpoint_path=out / "checkpoint.pt", seed=0, min_records_per_class=2, checkpoint_every=5, log_every=5,
        leads="all",
    )
    assert sidecar["skipped_classes"] == ["NONE"] and sidecar["stages"] == {"main": 10}
    assert json.loads((out / "model.json").read_text())["device"] == "cpu"
    assert (out / "loss.png").stat().st_size > 0 and not (out / "checkpoint.pt").exists()
    counts = sample_to_h5(out / "model.pt", out / "model.json", tmp_path / "real.h5", tmp_path / "syn.h5",
                          per_class=None, ratio_to_real=1.5, batch_size=4, seed=0)
    assert counts == {"SLOW": 9, "FAST": 9, "NONE": 0}
    synthetic = load_split(tmp_path / "syn.h5", "synthetic")
    meta = metadata(tmp_path / "syn.h5")
    assert synthetic["x"].shape == (18, 12, T) and synthetic["y"].tolist() == [0] * 9 + [1] * 9
    assert meta["generator"] == "diffwave" and meta["seed"] == 0 and meta["units"] == "mV"
    assert meta["checkpoint_sha256"] == sidecar["checkpoint_sha256"]
    # Written back in mV: the model's normalised samples, denormalised with the real training statistics.
    model = load_generator(out / "model.pt")
    generator = torch.Generator().manual_seed(0)
    first_batch = model.sample(torch.zeros(4, dtype=torch.long), generator).numpy()
    real_meta = metadata(tmp_path / "real.h5")
    mean, std = (np.asarray(real_meta[k], np.float32)[:, None] for k in ("norm_mean", "norm_std"))
    np.testing.assert_allclose(synthetic["x"][:4], first_batch * std + mean, rtol=1e-5, atol=1e-5)


def test_with_independent_leads_the_model_learns_8_and_the_limb_leads_follow_from_i_and_ii(tmp_path):
    x, y = toy_data(n_per_class=6)
    write_real_set(tmp_path / "real.h5", x * 2 + 1, y)
    out = tmp_path / "gen"
    sidecar = fit_generator(
        tmp_path / "real.h5", "diffwave", TINY["diffwave"] | {"steps": 5}, out_model=out / "model.pt",
        out_sidecar=out / "model.json", out_curve_csv=out / "loss.csv", out_curve_png=out / "loss.png",
        checkpoint_path=out / "checkpoint.pt", seed=0, leads="independent",
    )
    assert sidecar["leads"] == ["I", "II", "V1", "V2", "V3", "V4", "V5", "V6"]
    assert load_generator(out / "model.pt").n_leads == 8
    sample_to_h5(out / "model.pt", out / "model.json", tmp_path / "real.h5", tmp_path / "syn.h5",
                 per_class=3, ratio_to_real=1.0, batch_size=4, seed=0)
    synthetic = load_split(tmp_path / "syn.h5", "synthetic")["x"]
    assert synthetic.shape == (6, 12, T)
    assert limb_lead_residual(synthetic).max() < 1e-5
    assert limb_lead_residual(load_split(tmp_path / "real.h5", "train")["x"]).min() > 0.1  # the toy set's leads are unrelated


def test_class_balance_gives_each_class_its_share_of_batch_slots():
    y = torch.tensor([0] * 900 + [1] * 75 + [2] * 25)
    for balance, expected in [(0.0, [0.9, 0.075, 0.025]), (1.0, [1 / 3] * 3)]:
        weights = record_weights(y, balance)
        shares = [float(weights[y == c].sum()) for c in range(3)]
        assert shares == pytest.approx(expected, abs=1e-9)


def test_augmentation_shifts_and_scales_each_record_as_one():
    """Each record is rolled in time and scaled as a whole: its leads keep their relations."""
    from synthecg.generators.training import RecordAugmentation, augment_batch

    x = torch.randn(64, 12, T)
    shifted = augment_batch(x, RecordAugmentation(max_shift_seconds=0.1), T, torch.Generator().manual_seed(0))
    shifts = [next(s for s in range(-7, 8) if torch.equal(torch.roll(a, s, -1), b)) for a, b in zip(x, shifted)]
    assert len(set(shifts)) > 5 and max(map(abs, shifts)) <= round(0.1 * T)
    scaled = augment_batch(x, RecordAugmentation(scale_std=0.2), T, torch.Generator().manual_seed(0))
    factors = scaled / x
    torch.testing.assert_close(factors, factors[:, :1, :1].expand_as(factors))  # one factor a record
    assert 0.1 < factors[:, 0, 0].log().std() < 0.3
    with pytest.raises(PipelineError, match="scale_std"):
        RecordAugmentation(scale_std=-1)


def test_an_augmented_run_resumes_to_the_same_weights_and_differs_from_a_plain_one(tmp_path, monkeypatch):
    from synthecg.generators.training import RecordAugmentation

    x, y = toy_data()
    augmentation = RecordAugmentation(max_shift_seconds=0.2, scale_std=0.1)

    def run(checkpoint, augment, stop_after_calls=None):
        torch.manual_seed(0)
        model = build("diffwave", tiny("diffwave", steps=20), 2, 12, T, T)
        if stop_after_calls is not None:
            original, calls = model.loss, iter(range(stop_after_calls + 1))

            def loss(*args):
                if next(calls) == stop_after_calls:
                    raise Interrupted
                return original(*args)

            monkeypatch.setattr(model, "loss", loss)
        train(model, x, y, seed=1, checkpoint_path=checkpoint, fingerprint="f", checkpoint_every=5, log_every=5,
              augmentation=augment)
        return model.state_dict()

    whole = run(tmp_path / "a.pt", augmentation)
    with pytest.raises(Interrupted):
        run(tmp_path / "b.pt", augmentation, stop_after_calls=13)
    resumed = run(tmp_path / "b.pt", augmentation)
    plain = run(tmp_path / "c.pt", RecordAugmentation())
    for key in whole:
        torch.testing.assert_close(whole[key], resumed[key], msg=key)
    assert any(not torch.equal(whole[key], plain[key]) for key in whole)


def test_a_curated_set_keeps_only_records_that_fit_their_class_and_says_what_fell_short(tmp_path, monkeypatch,
                                                                                          real_ptbxl_records):
    """A stand-in generator whose every other record is a real record of the class and the rest
    are noise: the curated set holds only real records, draws on until each class has its count,
    and where the draws run out keeps what fitted (no noise tops it up), as the JSON says."""
    import synthecg.generators.jobs as jobs

    x_mv, names = real_ptbxl_records
    classes = ["SR", "SB", "AFIB", "GSVT"]
    labels = np.array([classes.index(n) for n in names])
    stats = RunningStats()
    with DatasetWriter(tmp_path / "real.h5", 1000, ("train", "val", "test")) as writer:
        for i, (record, label) in enumerate(zip(x_mv, labels)):
            writer.append("train", record, int(label), f"r{i}", f"p{i}", "ptbxl")
            stats = stats.merge(RunningStats.of(record))
        writer.finish({"classes": classes, "leads": list(STANDARD_LEADS), "fs": 100, "seconds": 10, "units": "mV",
                       "dataset": "ptbxl", "norm_mean": stats.mean, "norm_std": stats.std, "norm_count": stats.count,
                       "config_hash": "x", "records_per_class": {"train": {c: int((labels == i).sum())
                                                                          for i, c in enumerate(classes)}, "val": {}, "test": {}}})
    (tmp_path / "model.json").write_text(json.dumps({"classes": classes, "trained_classes": ["SB", "GSVT"],
                                                      "generator": "stand-in", "leads": list(STANDARD_LEADS),
                                                      "checkpoint_sha256": "x"}))
    rng = np.random.default_rng(0)

    def stand_in(model, leads, meta, y, generator):
        c = int(y[0])
        real = x_mv[rng.choice(np.flatnonzero(labels == c), len(y))]
        noise = rng.normal(0, 0.3, real.shape)
        return np.where((np.arange(len(y)) % 2 == 0)[:, None, None], real, noise).astype(np.float32)

    monkeypatch.setattr(jobs, "load_generator", lambda path, device: None)
    monkeypatch.setattr(jobs, "sample_millivolts", stand_in)
    common = dict(per_class=6, ratio_to_real=1.0, batch_size=4, seed=0)
    counts = sample_to_h5(tmp_path / "m.pt", tmp_path / "model.json", tmp_path / "real.h5", tmp_path / "cur.h5",
                          curate_max_draws=10, out_curation=tmp_path / "cur.json", **common)
    curation = json.loads((tmp_path / "cur.json").read_text())["per_class"]
    assert counts == {"SR": 0, "SB": 6, "AFIB": 0, "GSVT": 6}
    for name in ("SB", "GSVT"):
        assert curation[name]["kept"] == 6 and curation[name]["short"] == 0 and curation[name]["drawn"] >= 12
    real_records = {record.astype(np.float32).tobytes() for record in x_mv}
    assert all(record.tobytes() in real_records for record in load_split(tmp_path / "cur.h5", "synthetic")["x"])
    # Draws that run out (at most 1.5 x the count): what fitted, never topped up with noise.
    sample_to_h5(tmp_path / "m.pt", tmp_path / "model.json", tmp_path / "real.h5", tmp_path / "short.h5",
                 curate_max_draws=1.5, out_curation=tmp_path / "short.json", **common)
    short = json.loads((tmp_path / "short.json").read_text())["per_class"]
    for name in ("SB", "GSVT"):
        assert short[name]["drawn"] == 9 and 0 < short[name]["kept"] <= 5 and short[name]["short"] == 6 - short[name]["kept"]
    assert metadata(tmp_path / "short.h5")["records_per_class"]["synthetic"]["SB"] == short["SB"]["kept"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (a GPU machine runs it: pytest -k gpu)")
@pytest.mark.parametrize("name", sorted(TINY))
def test_an_interrupted_run_resumes_on_a_gpu_without_error(name, tmp_path, monkeypatch):
    """On a GPU bitwise equality is not promised (non-deterministic kernels), a clean resume is."""
    x, y = toy_data()
    model = build(name, tiny(name, steps=20), 2, 12, T, T)
    original, calls = model.loss, iter(range(10**6))

    def loss(*args):
        if next(calls) == 13:
            raise Interrupted
        return original(*args)

    monkeypatch.setattr(model, "loss", loss)
    common = dict(seed=1, checkpoint_path=tmp_path / "c.pt", fingerprint="f", checkpoint_every=5, log_every=5,
                  device=torch.device("cuda"))
    with pytest.raises(Interrupted):
        train(model, x, y, **common)
    record = train(model, x, y, **common)
    assert record.resumed_from is not None and record.device.startswith("cuda")
    assert all(np.isfinite(entry["loss"]) for entry in record.history)
