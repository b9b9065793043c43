"""Each DTU loss term against a hand-computed case."""
import math

import pytest
import torch

from colorbook.losses.dtu import (
    DTUObjective,
    add_instance_noise,
    critic_adversarial_loss,
    critical_noise_std,
    generator_adversarial_loss,
    gradient_penalty,
    instance_noise_std,
    instance_smoothing,
    r1_penalty,
    reconstruction_loss,
    softplus,
)


class LinearCritic(torch.nn.Module):
    """D(x) = <w, x> + b: its input gradient is w everywhere, so penalties have closed forms."""

    def __init__(self, w: torch.Tensor, b: float = 0.0) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(w.clone())
        self.b = b

    def forward(self, x, gray=None):
        return (x * self.w).flatten(1).sum(1) + self.b


def test_softplus_adversarial_losses_by_hand():
    fake, real = torch.tensor([0.0, 1.0]), torch.tensor([2.0, -1.0])
    expected = (math.log(2) + math.log(1 + math.e)) / 2 + (math.log(1 + math.exp(-2)) + math.log(1 + math.e)) / 2
    assert critic_adversarial_loss(fake, real).item() == pytest.approx(expected, rel=1e-6)
    expected_g = (math.log(2) + math.log(1 + math.exp(-1))) / 2
    assert generator_adversarial_loss(fake).item() == pytest.approx(expected_g, rel=1e-6)


def test_critical_noise_scale_is_sqrt2_for_softplus_and_follows_f():
    assert critical_noise_std(softplus) == pytest.approx(math.sqrt(2), rel=1e-9)
    # f(x) = x^2/2 + x: f'(0) = 1, f''(0) = 1 -> sigma = 1
    assert critical_noise_std(lambda x: 0.5 * x ** 2 + x) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="undefined"):
        critical_noise_std(lambda x: 3 * x)


def test_noise_decays_linearly_to_zero():
    assert instance_noise_std(0, 500) == pytest.approx(math.sqrt(2))
    assert instance_noise_std(250, 500) == pytest.approx(math.sqrt(2) / 2)
    assert instance_noise_std(500, 500) == 0.0
    assert instance_noise_std(900, 500) == 0.0
    assert instance_noise_std(10, 0) == 0.0  # InN column blank: no noise
    x = torch.zeros(1000, 3, 4, 4)
    noisy = add_instance_noise(x, 2.0, torch.Generator().manual_seed(0))
    assert noisy.std().item() == pytest.approx(2.0, rel=0.02)
    assert add_instance_noise(x, 0.0) is x


def test_instance_smoothing_interpolates_and_beta0_is_plain_gan():
    real, fake = torch.ones(64, 3, 2, 2), torch.zeros(64, 3, 2, 2)
    fake_hat, real_hat, alpha = instance_smoothing(real, fake, 0.5, torch.Generator().manual_seed(0))
    assert alpha.min() >= 0 and alpha.max() <= 0.5 and alpha.std() > 0
    assert torch.allclose(fake_hat, alpha.expand_as(fake_hat))         # alpha*1 + (1-alpha)*0
    assert torch.allclose(real_hat, (1 - alpha).expand_as(real_hat))
    fake_hat, real_hat, _ = instance_smoothing(real, fake, 0.0)
    assert torch.equal(fake_hat, fake) and torch.equal(real_hat, real)
    with pytest.raises(ValueError, match="beta"):
        instance_smoothing(real, fake, 1.5)


def test_beta0_objective_equals_plain_loss():
    """With smoothing on but beta decayed to 0 and no noise, the critic loss is the plain cGAN loss."""
    torch.manual_seed(0)
    critic = LinearCritic(torch.randn(3, 4, 4) * 0.1)
    real, fake, gray = torch.rand(8, 3, 4, 4), torch.rand(8, 3, 4, 4), torch.rand(8, 1, 4, 4)
    objective = DTUObjective(smoothing=True, noise_iters=10, gp=False, r1_gamma=0)

    class State:
        iteration, rng = 10, torch.Generator().manual_seed(0)
    loss, logs = objective.critic_loss(critic, real, fake, gray, State)
    plain = critic_adversarial_loss(critic(fake), critic(real))
    assert loss.item() == pytest.approx(plain.item(), rel=1e-6)
    assert logs["beta"] == 0 and logs["noise_std"] == 0
    assert objective.critic_penalty(critic, real, fake, gray, State) == (None, {})


def test_gradient_penalty_of_a_linear_critic_is_closed_form():
    w = torch.full((3, 2, 2), 0.5)             # ||w|| = sqrt(12 * 0.25) = sqrt(3)
    critic = LinearCritic(w)
    points = torch.rand(5, 3, 2, 2)
    expected = 10.0 * (math.sqrt(3) - 1) ** 2
    penalty = gradient_penalty(critic, points, None, weight=10.0)
    assert penalty.item() == pytest.approx(expected, rel=1e-5)
    penalty.backward()                          # double backward reaches the critic's weights
    assert critic.w.grad is not None and critic.w.grad.abs().sum() > 0


def test_r1_of_a_linear_critic_is_half_gamma_times_squared_norm():
    critic = LinearCritic(torch.full((3, 2, 2), 0.5))
    penalty = r1_penalty(critic, torch.rand(4, 3, 2, 2), None, gamma=10.0)
    assert penalty.item() == pytest.approx(0.5 * 10.0 * 3.0, rel=1e-5)
    # a unit-norm critic: GP is zero, R1 is gamma/2
    unit = LinearCritic(torch.full((3, 2, 2), 1 / math.sqrt(12)))
    assert gradient_penalty(unit, torch.rand(4, 3, 2, 2)).item() == pytest.approx(0.0, abs=1e-8)


def test_reconstruction_losses_use_ab_only_and_huber_is_half_mse_below_delta():
    real = torch.zeros(2, 3, 4, 4)
    fake = torch.zeros(2, 3, 4, 4)
    fake[:, 0] = 1.0                             # an L difference must not count
    assert reconstruction_loss(fake, real, "mse").item() == 0
    fake[:, 1:] = 0.2
    assert reconstruction_loss(fake, real, "mse", weight=100).item() == pytest.approx(100 * 0.04, rel=1e-5)
    assert reconstruction_loss(fake, real, "huber").item() == pytest.approx(0.5 * 0.04, rel=1e-5)
    # delta 0.1: linear beyond it: |d| - 0.05 = 0.15
    assert reconstruction_loss(fake, real, "huber", huber_delta=0.1).item() == pytest.approx(0.15, rel=1e-5)
    with pytest.raises(ValueError, match="huber"):
        reconstruction_loss(fake, real, "ssim")


def test_generator_gets_gradients_only_through_the_fake():
    torch.manual_seed(0)
    critic = LinearCritic(torch.randn(3, 4, 4) * 0.1)
    real = torch.rand(4, 3, 4, 4)
    fake = torch.rand(4, 3, 4, 4, requires_grad=True)

    class State:
        iteration, rng = 0, torch.Generator().manual_seed(0)
    objective = DTUObjective(gp=True, r1_gamma=10, smoothing=True, noise_iters=100)
    loss, logs = objective.generator_loss(critic, real, fake, fake[:, :1], State)
    loss.backward()
    assert fake.grad.abs().sum() > 0
    assert set(logs) == {"recon", "g_adv"}
    assert loss.item() == pytest.approx(float(logs["recon"] + logs["g_adv"]), rel=1e-6)
    d_loss, d_logs = objective.critic_loss(critic, real, fake.detach(), fake[:, :1].detach(), State)
    assert {"d_adv", "d_real_logit", "d_fake_logit", "beta", "noise_std"} == set(d_logs)
    assert d_loss.item() == pytest.approx(float(d_logs["d_adv"]), rel=1e-6)
    penalty, p_logs = objective.critic_penalty(critic, real, fake.detach(), fake[:, :1].detach(), State)
    assert set(p_logs) == {"gp", "r1"}
    assert penalty.item() == pytest.approx(float(p_logs["gp"] + p_logs["r1"]), rel=1e-5)
    assert all(not v.requires_grad for v in (*logs.values(), *p_logs.values())), "logs must be detached"


def test_reconstruction_only_objective_has_no_critic():
    objective = DTUObjective(adversarial=False)
    assert not objective.uses_critic
    real, fake = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4)
    loss, logs = objective.generator_loss(None, real, fake, real[:, :1], None)
    assert set(logs) == {"recon"}


def test_gradient_penalty_moves_onto_fakes_when_beta_has_decayed():
    """With smoothing on, the paper's GP point x_F becomes G(y) itself once beta reaches 0."""
    seen = []

    class Recorder(LinearCritic):
        def forward(self, x, gray=None):
            seen.append(x.detach().clone())
            return super().forward(x, gray)

    critic = Recorder(torch.full((3, 2, 2), 0.5))
    real, fake = torch.ones(4, 3, 2, 2), torch.zeros(4, 3, 2, 2)

    class State:
        iteration, rng = 100, torch.Generator().manual_seed(0)
    DTUObjective(gp=True, smoothing=True, noise_iters=50).critic_penalty(critic, real, fake, real[:, :1], State)
    assert torch.equal(seen[-1], fake)      # the GP pass saw exactly the fakes
    seen.clear()
    DTUObjective(gp=True, smoothing=False, noise_iters=50).critic_penalty(critic, real, fake, real[:, :1], State)
    assert 0 < seen[-1].mean() < 1          # WGAN-GP's uniform interpolates between 0 and 1


def test_smoothing_can_have_its_own_schedule():
    objective = DTUObjective(smoothing=True, noise_iters=0, smoothing_iters=100)
    assert objective._beta(50) == pytest.approx(0.25)
    assert DTUObjective(smoothing=True, noise_iters=100)._beta(50) == pytest.approx(0.25)
