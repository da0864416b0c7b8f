"""TimeDiffusion: per-class projectors, seeds kept through a checkpoint, seeded sampling."""

import dataclasses
import math

import pytest
import torch

from synthecg.errors import PipelineError
from synthecg.generators.timediffusion import TimeDiffusion, TimeDiffusionConfig

TINY = TimeDiffusionConfig(
    hidden_channels=8, max_dilation_exponent=3, batch_size=8, steps=10, max_seed_records=4, sampling_steps=3
)
N_CLASSES, LEADS = 3, 12


def ecg_like(n_per_class: int, n_samples: int, classes=(0, 1)) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth records whose frequency depends on the class: x [N, 12, T], y [N]."""
    t = torch.linspace(0, 1, n_samples)
    x, y = [], []
    for c in classes:
        for _ in range(n_per_class):
            phase = torch.rand(LEADS, 1) * 2 * math.pi
            x.append(torch.sin(2 * math.pi * (3 + 4 * c) * t + phase) + 0.05 * torch.randn(LEADS, n_samples))
            y.append(c)
    return torch.stack(x), torch.tensor(y)


def prepared_model(n_samples=64, config=TINY) -> TimeDiffusion:
    """A model whose classes 0 and 1 have training records and class 2 has none."""
    model = TimeDiffusion(config, N_CLASSES, LEADS, n_samples, 100)
    model.prepare(*ecg_like(6, n_samples))
    return model


def briefly_trained(model: TimeDiffusion, steps=5) -> TimeDiffusion:
    """A few Adam steps, so that the projectors (whose output starts at zero) do something."""
    x, y = ecg_like(4, model.n_samples)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = model.loss(x, y, "main")
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model


def draw(model, y, seed):
    return model.sample(torch.tensor(y), torch.Generator().manual_seed(seed))


def test_sample_gives_finite_records_of_the_requested_shape():
    torch.manual_seed(0)
    samples = draw(prepared_model(), [0, 1, 1, 0, 1], seed=1)
    assert samples.shape == (5, LEADS, 64)
    assert samples.dtype == torch.float32
    assert torch.isfinite(samples).all()


def test_at_proximity_one_an_untrained_model_returns_seeds_of_the_right_class():
    # The output convolution starts at zero, so nothing is restored and no noise is mixed in.
    torch.manual_seed(0)
    config = dataclasses.replace(TINY, proximity=1.0)
    model = prepared_model(config=config)
    samples = draw(model, [0, 1, 0, 1], seed=3)
    for record, c in zip(samples, [0, 1, 0, 1]):
        seeds = model.seeds[c, : model.seed_counts[c]]
        assert (seeds == record).all(dim=(1, 2)).any()
    # The seed is drawn at random: twenty records of one class do not all start from one seed.
    assert len(draw(model, [0] * 20, seed=4).unique(dim=0)) > 1


def test_loss_falls_when_overfitting_a_small_batch():
    # One noise level for every record, so that the loss moves with the model, not with the draw.
    torch.manual_seed(0)
    config = dataclasses.replace(TINY, hidden_channels=16, noise_level_min=0.3, noise_level_max=0.3)
    model = prepared_model(config=config)
    x, y = ecg_like(4, 64)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(80):
        loss = model.loss(x, y, "main")
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.8 * first, (first, last)


def test_each_record_trains_only_its_own_class_projector():
    torch.manual_seed(0)
    model = prepared_model()
    x, y = ecg_like(3, 64, classes=(1,))
    model.loss(x, y, "main").backward()
    gradient = [sum(0 if p.grad is None else p.grad.abs().sum() for p in projector.parameters())
                for projector in model.projectors]
    assert gradient[0] == 0 and gradient[2] == 0
    assert gradient[1] > 0


def test_sampling_uses_the_projector_of_each_record_class():
    torch.manual_seed(0)
    model = briefly_trained(prepared_model())
    before = draw(model, [0, 1], seed=2)
    with torch.no_grad():
        model.projectors[1].output.bias.fill_(100.0)  # break class 1's projector only
    after = draw(model, [0, 1], seed=2)
    assert torch.equal(after[0], before[0])
    assert not torch.allclose(after[1], before[1])


def test_same_seed_same_samples_and_another_seed_other_samples():
    torch.manual_seed(0)
    model = briefly_trained(prepared_model())  # left in training mode: dropout must not touch the samples
    y = [0, 1, 0, 1, 1]
    assert torch.equal(draw(model, y, seed=7), draw(model, y, seed=7))
    assert not torch.allclose(draw(model, y, seed=7), draw(model, y, seed=8))


def test_seeds_survive_a_state_dict_round_trip():
    torch.manual_seed(0)
    model = briefly_trained(prepared_model())
    fresh = TimeDiffusion(TINY, N_CLASSES, LEADS, 64, 100)  # never prepared
    fresh.load_state_dict(model.state_dict())
    y = [1, 0, 1, 0]
    assert torch.equal(fresh.sample(torch.tensor(y), torch.Generator().manual_seed(5)), draw(model, y, seed=5))


def test_sampling_a_class_without_training_records_names_it():
    torch.manual_seed(0)
    model = prepared_model()
    with pytest.raises(PipelineError, match="class 2: it had no training records"):
        draw(model, [0, 2, 1], seed=0)


def test_an_odd_length_trains_and_samples():
    torch.manual_seed(0)
    model = prepared_model(n_samples=101)
    x, y = ecg_like(2, 101)
    loss = model.loss(x, y, "main")
    loss.backward()
    assert torch.isfinite(loss)
    assert draw(model, [0, 1], seed=0).shape == (2, LEADS, 101)


def test_a_config_it_cannot_use_names_the_key():
    with pytest.raises(PipelineError, match="generators.timediffusion.proximity"):
        TimeDiffusion(TimeDiffusionConfig(proximity=1.5), N_CLASSES, LEADS, 64, 100)


def test_with_an_exact_projector_the_walk_down_the_levels_lands_on_the_clean_record():
    """A projector that knows the clean record answers level x (noise - clean) at every level:
    the sampler must then return that record exactly, whatever the proximity and rung count."""
    torch.manual_seed(0)
    for proximity, steps in [(0.9, 10), (0.3, 4), (0.0, 1)]:
        model = prepared_model(config=dataclasses.replace(TINY, proximity=proximity, sampling_steps=steps))
        target = torch.randn(LEADS, 64)

        class Exact(torch.nn.Module):
            def forward(self, noised, level):
                # noised = (1 - l) clean + l noise  =>  the noise part is noised - clean
                return noised - target

        model.projectors[0] = Exact()
        x = draw(model, [0, 0, 0], seed=1)
        torch.testing.assert_close(x, target.expand(3, -1, -1), atol=1e-5, rtol=0)


def test_samples_remember_their_seeds():
    torch.manual_seed(0)
    model = prepared_model(config=dataclasses.replace(TINY, proximity=1.0))
    x, seeds = model.sample_with_seeds(torch.tensor([0, 1, 1]), torch.Generator().manual_seed(0))
    torch.testing.assert_close(x, seeds)  # untrained and at proximity 1: nothing moves
