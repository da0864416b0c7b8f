import torch

from synthecg.generators.diffwave import DiffWave, DiffWaveConfig

TINY = DiffWaveConfig(residual_layers=3, residual_channels=16, dilation_cycle=3, embedding_dim=32,
                      diffusion_steps=20, beta_end=0.3, batch_size=8, steps=10, learning_rate=5e-3)


def test_shapes_for_any_length():
    model = DiffWave(TINY, n_classes=3, n_leads=12, n_samples=101)
    x, y = torch.randn(4, 12, 101), torch.tensor([0, 1, 2, 0])
    assert model.loss(x, y).shape == ()
    sample = model.sample(y, torch.Generator().manual_seed(0))
    assert sample.shape == (4, 12, 101) and sample.dtype == torch.float32 and torch.isfinite(sample).all()


def test_loss_falls_when_overfitting_one_batch():
    torch.manual_seed(0)
    model = DiffWave(TINY, 2, 12, 64)
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


def test_the_sampler_inverts_the_noising_with_a_perfect_noise_predictor():
    """With the exact noise of one known record, ancestral sampling must land on that record,
    on the full schedule and on a fast one: this checks the sampler's arithmetic."""
    for fast in ((), (1e-4, 1e-3, 1e-2, 5e-2, 2e-1, 5e-1)):
        config = DiffWaveConfig(residual_layers=1, residual_channels=4, dilation_cycle=1, embedding_dim=8,
                                diffusion_steps=50, beta_end=0.2, fast_betas=fast)
        model = DiffWave(config, 1, 12, 32)
        target = torch.randn(1, 12, 32)
        betas, _ = model._sampling_schedule()
        alpha_bars = torch.cumprod(1 - betas, 0)
        step_of = {round(float(t), 4): i for i, t in enumerate(model._sampling_schedule()[1])}

        def exact_noise(x_t, t, y):
            alpha_bar = alpha_bars[step_of[round(float(t[0]), 4)]]
            return (x_t - alpha_bar.sqrt() * target) / (1 - alpha_bar).sqrt()

        model.predict_noise = exact_noise
        sample = model.sample(torch.zeros(2, dtype=torch.long), torch.Generator().manual_seed(0))
        torch.testing.assert_close(sample, target.expand(2, -1, -1), atol=1e-4, rtol=0)


def test_fast_schedule_maps_onto_training_steps():
    model = DiffWave(DiffWaveConfig(residual_layers=1, residual_channels=4, dilation_cycle=1, embedding_dim=8,
                                    fast_betas=(1e-4, 1e-3, 1e-2, 5e-2, 2e-1, 5e-1)), 1, 12, 32)
    _, steps = model._sampling_schedule()
    assert steps[0] == 0 and (steps[1:] > steps[:-1]).all() and steps[-1] <= 199
