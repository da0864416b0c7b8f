"""TimeVQVAE at tiny sizes: shapes, both training stages, seeded sampling, parameter split."""

import math

import pytest
import torch

from synthecg.generators.timevqvae import TimeVQVAE, TimeVQVAEConfig

T = 64
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
    model = TimeVQVAE(TINY, n_classes=2, n_leads=12, n_samples=T)
    samples = model.sample(torch.tensor([0, 1, 1]), torch.Generator().manual_seed(0))
    assert samples.shape == (3, 12, T) and samples.dtype == torch.float32
    assert torch.isfinite(samples).all()


def test_guided_sampling_has_the_record_shape():
    torch.manual_seed(0)
    model = TimeVQVAE(TimeVQVAEConfig(**{**TINY.__dict__, "guidance_scale": 3.0}), 2, 12, T)
    samples = model.sample(torch.tensor([0, 1]), torch.Generator().manual_seed(0))
    assert samples.shape == (2, 12, T) and torch.isfinite(samples).all()


def test_stage1_loss_falls_when_overfitting_one_batch():
    torch.manual_seed(0)
    model = TimeVQVAE(TINY, 2, 12, T)
    x, y = toy_batch()
    losses = fit(model, x, y, "vqvae", 80)
    assert mean(losses[-5:]) < 0.5 * mean(losses[:5]), losses


def test_stage2_loss_falls_when_overfitting_one_batch():
    torch.manual_seed(0)
    model = TimeVQVAE(TINY, 2, 12, T)
    x, y = toy_batch()
    fit(model, x, y, "vqvae", 30)
    codebooks = {name: buffer.clone() for name, buffer in model.named_buffers()}
    losses = fit(model, x, y, "prior", 80)
    assert mean(losses[-10:]) < 0.7 * mean(losses[:10]), losses
    for name, buffer in model.named_buffers():  # stage 2 leaves the VQ-VAE frozen
        torch.testing.assert_close(buffer, codebooks[name], rtol=0, atol=0, msg=name)


def test_the_same_seed_gives_the_same_samples():
    torch.manual_seed(0)
    model = TimeVQVAE(TINY, 2, 12, T)
    labels = torch.tensor([0, 1, 0, 1])
    first = model.sample(labels, torch.Generator().manual_seed(7))
    torch.manual_seed(123)  # the global stream must not matter
    again = model.sample(labels, torch.Generator().manual_seed(7))
    other = model.sample(labels, torch.Generator().manual_seed(8))
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.equal(first, other)


def test_stage_parameters_split_every_trainable_parameter():
    model = TimeVQVAE(TINY, 2, 12, T)
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
    model = TimeVQVAE(TINY, 2, 12, length)
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
    model = TimeVQVAE(TINY, 2, 12, T)
    x, y = toy_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = [model.loss(x, y, stage) for stage in ("vqvae", "prior")]
    for loss in losses:
        assert loss.shape == () and torch.isfinite(loss)
        loss.backward()
