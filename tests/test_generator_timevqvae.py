"""TimeVQVAE at tiny sizes: shapes, both training stages, seeded sampling, parameter split, the token
grid in milliseconds, the learning-rate schedule, the prior's dropout and its cached tokens."""

import dataclasses
import math

import pytest
import torch

from synthecg.errors import PipelineError
from synthecg.generators.timevqvae import TimeVQVAE, TimeVQVAEConfig, TokenPrior, stage1_r2
from synthecg.generators.training import train

T = 64
FS = 100
TINY = TimeVQVAEConfig(
    batch_size=4, steps=60, prior_steps=60, init_channels=8, hidden_channels=16, n_resnet_blocks=1,
    codebook_size_lf=16, codebook_size_hf=16, prior_hidden_lf=32, prior_layers_lf=1, prior_heads_lf=2,
    prior_hidden_hf=16, prior_layers_hf=1, prior_heads_hf=1, prior_dropout=0.0, sampling_steps=4,
)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors gain nothing from threads, and on a busy shared CPU OpenMP's spin-waiting
    makes every small convolution many times slower (a 10x slower test file)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def toy_batch(n=4, length=T, seed=0):
    """Sines of a few frequencies per lead with a little noise: [n, 12, length], labels [n]."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(length) / length
    frequency = torch.randint(1, 6, (n, 12, 1), generator=generator)
    phase = 2 * math.pi * torch.rand(n, 12, 1, generator=generator)
    x = torch.sin(2 * math.pi * frequency * t + phase) + 0.1 * torch.randn(n, 12, length, generator=generator)
    return x.float(), torch.arange(n) % 2


def fit(model, x, y, stage, steps, learning_rate=3e-3):
    """Adam on one fixed batch; the loss of every step."""
    model.train()
    optimizer = torch.optim.Adam(model.stage_parameters(stage), lr=learning_rate)
    losses = []
    for _ in range(steps):
        loss = model.loss(x, y, stage)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def mean(values):
    return sum(values) / len(values)


def test_samples_have_the_record_shape():
    torch.manual_seed(0)
    model = TimeVQVAE(TINY, n_classes=2, n_leads=12, n_samples=T, fs=FS)
    samples = model.sample(torch.tensor([0, 1, 1]), torch.Generator().manual_seed(0))
    assert samples.shape == (3, 12, T) and samples.dtype == torch.float32
    assert torch.isfinite(samples).all()


def test_guided_sampling_has_the_record_shape():
    torch.manual_seed(0)
    model = TimeVQVAE(TimeVQVAEConfig(**{**TINY.__dict__, "guidance_scale": 3.0}), 2, 12, T, FS)
    samples = model.sample(torch.tensor([0, 1]), torch.Generator().manual_seed(0))
    assert samples.shape == (2, 12, T) and torch.isfinite(samples).all()


def test_stage1_loss_falls_when_overfitting_one_batch():
    torch.manual_seed(0)
    model = TimeVQVAE(TINY, 2, 12, T, FS)
    x, y = toy_batch()
    losses = fit(model, x, y, "vqvae", 80)
    assert mean(losses[-5:]) < 0.5 * mean(losses[:5]), losses


def test_stage2_loss_falls_when_overfitting_one_batch():
    torch.manual_seed(0)
    model = TimeVQVAE(TINY, 2, 12, T, FS)
    x, y = toy_batch()
    fit(model, x, y, "vqvae", 30)
    codebooks = {name: buffer.clone() for name, buffer in model.named_buffers()}
    losses = fit(model, x, y, "prior", 80)
    assert mean(losses[-10:]) < 0.7 * mean(losses[:10]), losses
    for name, buffer in model.named_buffers():  # stage 2 leaves the VQ-VAE frozen
        torch.testing.assert_close(buffer, codebooks[name], rtol=0, atol=0, msg=name)


def test_the_same_seed_gives_the_same_samples():
    torch.manual_seed(0)
    model = TimeVQVAE(TINY, 2, 12, T, FS)
    labels = torch.tensor([0, 1, 0, 1])
    first = model.sample(labels, torch.Generator().manual_seed(7))
    torch.manual_seed(123)  # the global stream must not matter
    again = model.sample(labels, torch.Generator().manual_seed(7))
    other = model.sample(labels, torch.Generator().manual_seed(8))
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.equal(first, other)


def test_stage_parameters_split_every_trainable_parameter():
    model = TimeVQVAE(TINY, 2, 12, T, FS)
    vqvae = {id(p) for p in model.stage_parameters("vqvae")}
    prior = {id(p) for p in model.stage_parameters("prior")}
    assert vqvae and prior and not vqvae & prior
    assert vqvae | prior == {id(p) for p in model.parameters() if p.requires_grad}
    assert [(s.name, s.steps) for s in model.training_plan()] == [("vqvae", 60), ("prior", 60)]
    with pytest.raises(ValueError, match="stages 'vqvae' and 'prior'"):
        model.stage_parameters("main")


@pytest.mark.parametrize("length", [101, 37])
def test_odd_lengths_come_back_exactly(length):
    torch.manual_seed(0)
    model = TimeVQVAE(TINY, 2, 12, length, FS)
    x, y = toy_batch(length=length)
    low, high = model.split_bands(x)
    torch.testing.assert_close(low + high, x, rtol=0, atol=1e-5)  # the bands add up to the record
    assert model.reconstruct(x).shape == (4, 12, length)
    for stage in ("vqvae", "prior"):
        assert torch.isfinite(model.loss(x, y, stage))
    assert model.sample(torch.tensor([1, 0]), torch.Generator().manual_seed(0)).shape == (2, 12, length)


def test_losses_run_under_bf16_autocast():
    """The training loop wraps `loss` in bf16 autocast on CUDA; the STFT stays in float32."""
    torch.manual_seed(0)
    model = TimeVQVAE(TINY, 2, 12, T, FS)
    x, y = toy_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = [model.loss(x, y, stage) for stage in ("vqvae", "prior")]
    for loss in losses:
        assert loss.shape == () and torch.isfinite(loss)
        loss.backward()


# --- the token grid in milliseconds ---


def test_token_grid_is_set_in_milliseconds():
    """10 s at 100 Hz, n_fft 4 (10 ms a frame): 160 / 80 ms per token give 16 / 8 frames a token."""
    model = TimeVQVAE(dataclasses.replace(TINY, lf_token_ms=160, hf_token_ms=80), 2, 12, 1000, FS)
    assert model.token_grid == {"lf": (1, 63), "hf": (2, 126)}
    assert model.n_tokens == {"lf": 63, "hf": 252}
    old = TimeVQVAE(dataclasses.replace(TINY, lf_token_ms=1280, hf_token_ms=320), 2, 12, 1000, FS)
    assert old.n_tokens == {"lf": 8, "hf": 64}  # the authors' downsampled widths 8 / 32


@pytest.mark.parametrize("fs", [100, 250, 500])
def test_a_token_spans_about_its_milliseconds_at_any_sampling_rate(fs):
    n_samples = 10 * fs
    model = TimeVQVAE(dataclasses.replace(TINY, lf_token_ms=160, hf_token_ms=40), 2, 12, n_samples, fs)
    for band, token_ms in (("lf", 160), ("hf", 40)):
        columns = model.token_grid[band][1]
        span_ms = 10_000 / columns
        assert token_ms / math.sqrt(2) <= span_ms <= token_ms * math.sqrt(2), (band, columns)


def test_a_token_length_must_be_positive():
    with pytest.raises(PipelineError, match="hf_token_ms"):
        TimeVQVAE(dataclasses.replace(TINY, hf_token_ms=0), 2, 12, T, FS)


# --- stage-1 R^2 ---


def test_stage1_r2_is_one_for_a_perfect_reconstruction_and_zero_for_the_mean(monkeypatch):
    model = TimeVQVAE(TINY, 2, 12, T, FS)
    x, _ = toy_batch(n=10)
    monkeypatch.setattr(model, "reconstruct", lambda batch: batch.clone())
    assert stage1_r2(model, x, batch_size=3) == pytest.approx(1.0)
    lead_mean = x.mean(dim=(0, 2), keepdim=True)
    monkeypatch.setattr(model, "reconstruct", lambda batch: lead_mean.expand_as(batch).clone())
    assert stage1_r2(model, x, batch_size=3) == pytest.approx(0.0, abs=1e-9)


def test_stage1_r2_evaluates_in_eval_mode_and_restores_the_mode(monkeypatch):
    model = TimeVQVAE(TINY, 2, 12, T, FS).train()
    seen = []
    original = model.reconstruct

    def spy(batch):
        seen.append((model.training, torch.is_grad_enabled()))
        return original(batch)

    monkeypatch.setattr(model, "reconstruct", spy)
    x, _ = toy_batch(n=6)
    r2 = stage1_r2(model, x.numpy(), batch_size=4)  # numpy records work too
    assert math.isfinite(r2) and r2 < 1.0
    assert seen == [(False, False), (False, False)]
    assert model.training


# --- the learning-rate schedule ---


def test_both_stages_warm_up_then_decay_along_a_cosine():
    config = dataclasses.replace(TINY, steps=1000, prior_steps=2000, learning_rate=1e-3, prior_learning_rate=2e-3)
    stages = TimeVQVAE(config, 2, 12, T, FS).training_plan()
    assert [stage.name for stage in stages] == ["vqvae", "prior"]
    for stage in stages:
        assert stage.cosine and stage.warmup_steps == stage.steps // 10  # the authors' warm-up share 0.1
        peak = stage.learning_rate
        assert stage.learning_rate_at(0) == pytest.approx(peak / stage.warmup_steps)
        assert stage.learning_rate_at(stage.warmup_steps - 1) == pytest.approx(peak)
        assert stage.learning_rate_at(stage.steps // 2) < peak
        assert stage.learning_rate_at(stage.steps - 1) == pytest.approx(1e-3 * peak, rel=1e-2)  # min_lr 1e-6 at 1e-3


# --- the prior's dropout ---


def test_class_and_mask_embeddings_reach_the_first_block_undropped():
    torch.manual_seed(0)
    codebook, n_tokens, n_context = 8, 12, 6
    context_index = (torch.arange(n_tokens) // 2)[:, None]  # token i sits at context token i // 2's time
    prior = TokenPrior(codebook, n_tokens, n_classes=3, hidden=16, layers=1, heads=1, ff_mult=1, dropout=0.9,
                       context_codebook_size=6, context_index=context_index).train()
    seen = {}
    prior.blocks[0].register_forward_pre_hook(lambda module, inputs: seen.update(h=inputs[0].detach()))
    tokens = torch.randint(codebook, (4, n_tokens))
    tokens[:, ::2] = codebook  # every other token masked
    classes, context = torch.tensor([0, 1, 2, 3]), torch.randint(6, (4, n_context))
    with torch.no_grad():
        saved_context = prior.context_embedding.weight.clone()
        prior.context_embedding.weight.zero_()  # first without context: what is left must be exact
    prior(tokens, classes, context)
    h, position = seen["h"], prior.position.detach()[0]
    expected_class = prior.class_embedding(classes).detach() + position[0]
    torch.testing.assert_close(h[:, 0], expected_class)  # the class token, whole
    token_part, token_position = h[:, 1:], position[1:]
    masked = tokens == codebook
    expected_mask = prior.token_embedding.weight.detach()[codebook] + token_position
    torch.testing.assert_close(token_part[:, ::2], expected_mask[::2].expand(4, -1, -1))  # mask tokens, whole
    # Known tokens are dropped (p = 0.9: nearly every value is zeroed or scaled).
    known = prior.token_embedding(tokens).detach() + token_position
    assert not torch.allclose(token_part[~masked], known[~masked])
    # The context is dropped too: with it back, the mask tokens' inputs differ from mask + context.
    with torch.no_grad():
        prior.context_embedding.weight.copy_(saved_context)
    prior(tokens, classes, context)
    aligned_context = prior.context_embedding(context).detach()[:, context_index].sum(2)
    assert not torch.allclose(seen["h"][:, 1:][masked], (expected_mask.expand(4, -1, -1) + aligned_context)[masked])


@pytest.mark.parametrize("lf_ms, hf_ms", [(160.0, 80.0), (320.0, 80.0), (80.0, 160.0)])
def test_the_hf_prior_reads_each_lf_token_at_the_hf_tokens_of_its_time(lf_ms, hf_ms):
    """Changing one LF token changes the HF prior's input at exactly the HF tokens centred in its
    time span (every HF bin), each of which overlaps that span, and nowhere else, also where the two
    bands pad their frames differently (320 / 80 ms on 1,001 frames) or HF tokens are the longer."""
    torch.manual_seed(0)
    model = TimeVQVAE(dataclasses.replace(TINY, lf_token_ms=lf_ms, hf_token_ms=hf_ms), 2, 12, 1000, FS).eval()
    (lf_rows, lf_columns), (hf_rows, hf_columns) = model.token_grid["lf"], model.token_grid["hf"]
    lf_frames, hf_frames = model.padded_frames["lf"] // lf_columns, model.padded_frames["hf"] // hf_columns
    prior, seen = model.priors["hf"], {}
    prior.blocks[0].register_forward_pre_hook(lambda module, inputs: seen.update(h=inputs[0].detach()))
    lf = torch.randint(model.codebook_sizes["lf"], (1, model.n_tokens["lf"]))
    hf = torch.randint(model.codebook_sizes["hf"], (1, model.n_tokens["hf"]))
    prior(hf, torch.tensor([0]), lf)
    before = seen["h"][0, 1:]
    for hf_column in (hf_columns // 2, hf_columns - 1):
        column = min((hf_column * hf_frames + hf_frames // 2) // lf_frames, lf_columns - 1)
        changed_lf = lf.clone()
        changed_lf[0, column] = (lf[0, column] + 1) % model.codebook_sizes["lf"]
        prior(hf, torch.tensor([0]), changed_lf)
        changed = (seen["h"][0, 1:] != before).any(-1).reshape(hf_rows, hf_columns)  # HF tokens are row-major
        columns = torch.nonzero(changed.all(0)).flatten().tolist()
        assert torch.equal(changed.any(0), changed.all(0)) and hf_column in columns  # every bin of a column
        lf_start, lf_end = column * lf_frames, (column + 1) * lf_frames
        for i in columns:  # each overlaps the LF token's span, centred in it (the last LF column takes the rest)
            centre = i * hf_frames + hf_frames / 2
            assert i * hf_frames < lf_end and (i + 1) * hf_frames > lf_start
            assert lf_start <= centre and (centre < lf_end or column == lf_columns - 1)


# --- choice temperatures per band ---


def test_choice_temperatures_are_set_per_band():
    torch.manual_seed(0)
    model = TimeVQVAE(dataclasses.replace(TINY, choice_temperature_lf=4.0, choice_temperature_hf=4.0), 2, 12, T, FS)
    cold_hf = TimeVQVAE(dataclasses.replace(TINY, choice_temperature_lf=4.0, choice_temperature_hf=0.0), 2, 12, T, FS)
    cold_hf.load_state_dict(model.state_dict())
    y = torch.tensor([0, 1] * 8)

    def decode(m, band, context=None):
        m.eval()
        return m._iterative_decoding(y, torch.Generator().manual_seed(3), band, context)

    lf = decode(model, "lf")
    torch.testing.assert_close(decode(cold_hf, "lf"), lf, rtol=0, atol=0)  # the LF temperature is the same
    assert not torch.equal(decode(cold_hf, "hf", lf), decode(model, "hf", lf))


# --- stage 2 on cached tokens ---


def test_stage_inputs_give_records_to_stage1_and_tokens_to_stage2():
    torch.manual_seed(0)
    model = TimeVQVAE(TINY, 2, 12, T, FS)
    x, y = toy_batch(n=7)
    assert model.stage_inputs("vqvae", x, y)[0] is x
    model.train()
    tokens, labels = model.stage_inputs("prior", x, y)
    assert labels is y and tokens.dtype == torch.long and tokens.shape == (7, sum(model.n_tokens.values()))
    assert model.training  # encoding does not leave the model in eval mode
    expected = model.tokens(x)
    torch.testing.assert_close(tokens, torch.cat([expected["lf"], expected["hf"]], 1), rtol=0, atol=0)
    torch.testing.assert_close(model.token_table(x, batch_size=3), tokens, rtol=0, atol=0)  # batching does not matter


def test_the_prior_loss_on_cached_tokens_equals_the_loss_on_records():
    torch.manual_seed(0)
    model = TimeVQVAE(dataclasses.replace(TINY, prior_dropout=0.3), 2, 12, T, FS)
    x, y = toy_batch(n=6)
    fit(model, x, y, "vqvae", 10)
    tokens, _ = model.stage_inputs("prior", x, y)
    assert tokens.dtype == torch.long
    model.train()
    torch.manual_seed(5)
    from_records = model.loss(x, y, "prior")
    torch.manual_seed(5)
    from_tokens = model.loss(tokens, y, "prior")
    torch.testing.assert_close(from_tokens, from_records, rtol=0, atol=0)


def test_stage2_training_never_runs_the_encoders(tmp_path):
    torch.manual_seed(0)
    model = TimeVQVAE(dataclasses.replace(TINY, steps=3, prior_steps=5), 2, 12, T, FS)
    x, y = toy_batch(n=8)
    original = model.stage_inputs

    def stage_inputs(stage, train_x, train_y):
        inputs = original(stage, train_x, train_y)
        if stage == "prior":
            for encoder in model.encoders.values():
                encoder.forward = lambda *args: pytest.fail("stage 2 re-encoded records")
        return inputs

    model.stage_inputs = stage_inputs
    record = train(model, x.numpy(), y.numpy(), seed=0, checkpoint_path=tmp_path / "ck.pt", fingerprint="f",
                   checkpoint_every=10**9, log_every=1)
    assert [entry["stage"] for entry in record.history] == ["vqvae"] * 3 + ["prior"] * 5


def test_a_prior_that_has_memorised_one_record_per_class_samples_it_back():
    """Sampling's end of the bargain: given a prior that knows each class's token sequence, MaskGIT
    decoding (class token, LF first, HF with the LF context) returns those tokens and their decoding.
    (benchmarks/timevqvae_sampling.py makes the same check on a trained model and real records.)"""
    torch.manual_seed(0)
    config = dataclasses.replace(TINY, p_uncond=0.0, prior_hidden_hf=32, prior_heads_hf=2)
    model = TimeVQVAE(config, n_classes=2, n_leads=12, n_samples=T, fs=FS)
    x, y = toy_batch(n=2)
    fit(model, x, y, "vqvae", 30)
    model.eval()
    tokens = model.token_table(x)
    n_lf = model.n_tokens["lf"]
    # The two classes' records differ in both bands: a sampler that ignored the class could not pass.
    assert (tokens[0, :n_lf] != tokens[1, :n_lf]).any() and (tokens[0, n_lf:] != tokens[1, n_lf:]).any()
    fit(model, tokens, y, "prior", 300)
    model.eval()
    sampled = model.sample_tokens(y, torch.Generator().manual_seed(0))
    assert (sampled["lf"] == tokens[:, :n_lf]).float().mean() >= 0.9
    assert (sampled["hf"] == tokens[:, n_lf:]).float().mean() >= 0.9
    samples = model.sample(y, torch.Generator().manual_seed(0))
    memorised = model._decode_tokens(tokens[:, :n_lf], "lf") + model._decode_tokens(tokens[:, n_lf:], "hf")
    with torch.no_grad():  # token ids decode to what stage 1 decoded from its quantised latents in training
        spec = model._stft(x)
        for band in ("lf", "hf"):
            quantized, ids, _ = model.quantizers[band](model._encode(spec, band))
            torch.testing.assert_close(model._decode_tokens(ids, band), model._decode(quantized, band))
    assert torch.nn.functional.cosine_similarity(samples.flatten(1), memorised.flatten(1)).min() > 0.9
