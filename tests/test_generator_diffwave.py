import dataclasses

import pytest
import torch

from synthecg.errors import PipelineError
from synthecg.generators.diffwave import (DiffWave, DiffWaveConfig, min_snr_weight, sampling_timesteps,
                                          terminal_signal)

TINY = DiffWaveConfig(residual_layers=3, residual_channels=16, dilation_cycle=3, embedding_dim=32,
                      diffusion_steps=20, beta_end=0.3, batch_size=8, steps=10, learning_rate=5e-3)


def test_shapes_for_any_length():
    model = DiffWave(TINY, n_classes=3, n_leads=12, n_samples=101, fs=100)
    x, y = torch.randn(4, 12, 101), torch.tensor([0, 1, 2, 0])
    assert model.loss(x, y).shape == ()
    sample = model.sample(y, torch.Generator().manual_seed(0))
    assert sample.shape == (4, 12, 101) and sample.dtype == torch.float32 and torch.isfinite(sample).all()


def test_loss_falls_when_overfitting_one_batch():
    torch.manual_seed(0)
    model = DiffWave(TINY, 2, 12, 64, 100)
    x, y = torch.sin(torch.linspace(0, 12, 64)).repeat(8, 12, 1), torch.tensor([0, 1] * 4)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(150):
        torch.manual_seed(1)  # the same diffusion steps and noise each time: one fixed batch to overfit
        loss = model.loss(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) / 10 < 0.6 * sum(losses[:10]) / 10


def test_the_default_schedule_ends_in_noise_and_the_audio_one_does_not():
    assert terminal_signal(DiffWaveConfig()) < 0.01
    assert terminal_signal(DiffWaveConfig(beta_end=0.02)) == pytest.approx(0.13, abs=0.01)  # DiffWave's audio recipe


def gaussian_oracle(model, variances):
    """The exact noise predictor for data ~ N(0, diag(variances)): E[noise | x_t]."""
    def predict_noise(x_t, t, y):
        a = model.alpha_bars[t][:, None, None]
        return (1 - a).sqrt() * x_t / (a * variances + 1 - a)
    return predict_noise


@pytest.mark.parametrize("sampling_steps,eta,floor", [(0, 1.0, 0.9), (100, 0.0, 0.85), (50, 0.0, 0.85)])
def test_with_an_exact_noise_predictor_samples_keep_the_data_variance(sampling_steps, eta, floor):
    """Data with most variance in a few directions, as ECG has at low frequencies, sampled with the
    exact noise predictor: the audio schedule, which does not end in noise, starts sampling with
    too little of that variance and keeps under half of it; the default keeps most of it in every
    direction (the rest is the short chain's discretisation)."""
    variances = torch.tensor([20.0] * 4 + [0.05] * 8)[:, None]  # [leads, 1]: per-lead variance

    def kept(config):
        model = DiffWave(config, 1, 12, 256, 100)
        model.predict_noise = gaussian_oracle(model, variances)
        x = model.sample(torch.zeros(200, dtype=torch.long), torch.Generator().manual_seed(0))
        ratio = x.var(dim=(0, 2))[:, None] / variances
        return ratio[:4].mean().item(), ratio[4:].mean().item()

    small = dict(residual_layers=1, residual_channels=4, dilation_cycle=1, embedding_dim=8,
                 sampling_steps=sampling_steps, sampling_eta=eta)
    assert min(kept(DiffWaveConfig(**small))) > floor
    assert kept(DiffWaveConfig(**small, beta_end=0.02))[0] < 0.5


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
@pytest.mark.parametrize("sampling_steps", [0, 7, 50])
def test_the_sampler_inverts_the_noising_with_a_perfect_noise_predictor(sampling_steps, prediction):
    """With the exact noise (or v) of one known record the chain lands on that record, whatever its length."""
    config = DiffWaveConfig(residual_layers=1, residual_channels=4, dilation_cycle=1, embedding_dim=8,
                            diffusion_steps=60, sampling_steps=sampling_steps, prediction=prediction)
    model = DiffWave(config, 1, 12, 32, 100)
    target = torch.randn(1, 12, 32)

    def exact_noise(x_t, t, y):
        a = model.alpha_bars[t][:, None, None]
        noise = (x_t - a.sqrt() * target) / (1 - a).sqrt()
        return noise if prediction == "epsilon" else a.sqrt() * noise - (1 - a).sqrt() * target

    model.predict_noise = exact_noise
    sample = model.sample(torch.zeros(2, dtype=torch.long), torch.Generator().manual_seed(0))
    torch.testing.assert_close(sample, target.expand(2, -1, -1), atol=1e-4, rtol=0)


def test_a_short_sampling_chain_is_spread_over_the_training_steps():
    steps = sampling_timesteps(DiffWaveConfig(diffusion_steps=200, sampling_steps=50))
    assert len(steps) == 50 and steps[0] == 0 and steps[-1] == 199 and (steps[1:] > steps[:-1]).all()
    assert len(sampling_timesteps(DiffWaveConfig(diffusion_steps=200, sampling_steps=0))) == 200


def test_dilations_stop_below_the_record_length():
    model = DiffWave(dataclasses.replace(TINY, residual_layers=12, dilation_cycle=12), 1, 12, 1000, 100)
    dilations = [block.dilated_conv.dilation[0] for block in model.blocks]
    assert max(dilations) == 512 and dilations[:10] == [2**i for i in range(10)]


def test_samples_stay_within_the_training_records_range():
    model = DiffWave(TINY, 1, 12, 64, 100)
    torch.nn.init.normal_(model.output_projection.weight, std=5.0)  # a wild, untrained predictor
    model.prepare(torch.randn(16, 12, 64).clamp(-3, 3), torch.zeros(16, dtype=torch.long))
    sample = model.sample(torch.zeros(8, dtype=torch.long), torch.Generator().manual_seed(0))
    assert sample.abs().max() <= 3.0 + 1e-4


@pytest.mark.parametrize("scale", [1.0, 2.0, 3.0])
def test_guidance_extrapolates_from_the_null_class_to_the_class(scale):
    """Exact predictors for a class whose records are all `target` and a null class whose records are
    all zero: guidance at scale w lands on w x target (w = 1: the class itself), for either target."""
    for prediction in ("epsilon", "v"):
        config = DiffWaveConfig(residual_layers=1, residual_channels=4, dilation_cycle=1, embedding_dim=8,
                                diffusion_steps=60, sampling_steps=20, prediction=prediction,
                                p_uncond=0.1, guidance_scale=scale)
        model = DiffWave(config, 2, 12, 32, 100)
        target = torch.randn(1, 12, 32)

        def exact(x_t, t, y):
            a = model.alpha_bars[t][:, None, None]
            clean = torch.where((y == model.n_classes)[:, None, None], torch.zeros_like(target), target)
            noise = (x_t - a.sqrt() * clean) / (1 - a).sqrt()
            return noise if prediction == "epsilon" else a.sqrt() * noise - (1 - a).sqrt() * clean

        model.predict_noise = exact
        sample = model.sample(torch.tensor([1, 1]), torch.Generator().manual_seed(0))
        torch.testing.assert_close(sample, scale * target.expand(2, -1, -1), atol=1e-4, rtol=0)


def test_guidance_needs_a_null_class_and_training_uses_it():
    with pytest.raises(PipelineError, match="p_uncond"):
        DiffWave(dataclasses.replace(TINY, guidance_scale=2.0), 3, 12, 64, 100)
    guided = DiffWave(dataclasses.replace(TINY, p_uncond=0.5), 3, 12, 64, 100)
    assert guided.class_embedding.num_embeddings == 4 and DiffWave(TINY, 3, 12, 64, 100).class_embedding.num_embeddings == 3
    seen = []
    guided.predict_noise = lambda x_t, t, y: seen.append(y) or torch.zeros_like(x_t)
    torch.manual_seed(0)
    guided.loss(torch.randn(400, 12, 64), torch.zeros(400, dtype=torch.long))
    assert 0.4 < (seen[0] == 3).float().mean() < 0.6 and set(seen[0].tolist()) == {0, 3}


def test_min_snr_weights_only_lower_the_nearly_clean_steps():
    """A gamma above every step's SNR weighs nothing differently; gamma 5 lowers the loss of the
    steps whose SNR is above 5 (the first few of the chain) and leaves the rest."""
    model = DiffWave(TINY, 2, 12, 64, 100)
    x, y = torch.randn(64, 12, 64), torch.tensor([0, 1] * 32)

    def loss(**settings):
        model.config = dataclasses.replace(TINY, **settings)
        torch.manual_seed(3)
        return model.loss(x, y).item()

    plain = loss()
    assert loss(min_snr_gamma=1e12) == pytest.approx(plain, rel=1e-6)
    assert loss(min_snr_gamma=5.0) < plain
    snr = model.alpha_bars / (1 - model.alpha_bars)
    assert (snr > 5).any() and (snr < 5).any()  # the tiny schedule has steps on both sides


def test_min_snr_weights_follow_the_clean_records_error_for_noise_and_v_targets():
    """SNR 10 and 2 at gamma 5: a noise target's loss is the clean error x SNR, so its weight is
    min(SNR, 5) / SNR = 0.5 and 1; a v target's is the clean error x (SNR + 1): 5/11 and 2/3."""
    alpha_bar = torch.tensor([10 / 11, 2 / 3])  # SNR = alpha_bar / (1 - alpha_bar) = 10, 2
    torch.testing.assert_close(min_snr_weight(alpha_bar, 5.0, "epsilon"), torch.tensor([0.5, 1.0]))
    torch.testing.assert_close(min_snr_weight(alpha_bar, 5.0, "v"), torch.tensor([5 / 11, 2 / 3]))
