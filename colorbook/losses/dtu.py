r"""Every loss term of the DTU paper (section 3.3), each a small function, and the objective that
combines them for the training step (:mod:`colorbook.training.step`).

Introduced in chapters 4-8 of the book (book/04-reconstruction to 08-instance-smoothing).
Notation: ``D`` is the critic, returning logits ``(B,)``;
``x`` real images and ``G(y)`` generated images ``(B, 3, H, W)`` in normalised L*a*b* ``[0, 1]``;
``y`` the gray input ``(B, 1, H, W)``; ``f`` the adversarial function (softplus in the paper).

The game (the paper's V with instance smoothing):

.. math::
    V(D, G) = \mathbb{E}[f(D(\hat x_F | y)) + f(-D(\hat x_R | y))]

The critic minimises V (low scores for fakes, high scores for reals). For the generator we use the
standard *non-saturating* form, minimising :math:`\mathbb{E}[f(-D(\hat x_F|y))]`, instead of
maximising V directly: the paper writes the minimax form only; the non-saturating loss has the same
fixed point and useful gradients early in training (Goodfellow et al. 2014).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

AdversarialFn = Callable[[Tensor], Tensor]

__all__ = [
    "softplus",
    "critic_adversarial_loss",
    "generator_adversarial_loss",
    "critical_noise_std",
    "linear_decay",
    "instance_noise_std",
    "add_instance_noise",
    "instance_smoothing",
    "gradient_penalty",
    "r1_penalty",
    "reconstruction_loss",
    "DTUObjective",
]


def softplus(x: Tensor) -> Tensor:
    r"""The paper's :math:`f(x) = \log(1 + e^x)`, numerically stable."""
    return F.softplus(x)


def critic_adversarial_loss(
    fake_logits: Tensor, real_logits: Tensor, f: AdversarialFn = softplus
) -> Tensor:
    r"""Critic's loss :math:`\mathbb{E}[f(D(\hat x_F))] + \mathbb{E}[f(-D(\hat x_R))]`
    (a scalar).

    With ``f = softplus`` this is the binary cross-entropy of a logistic critic that
    calls reals 1 and fakes 0. ``fake_logits``, ``real_logits``: ``(B,)``.
    """
    return f(fake_logits).mean() + f(-real_logits).mean()


def generator_adversarial_loss(
    fake_logits: Tensor, f: AdversarialFn = softplus
) -> Tensor:
    r"""Generator's non-saturating loss :math:`\mathbb{E}[f(-D(\hat x_F))]` (a
    scalar)."""
    return f(-fake_logits).mean()


@functools.lru_cache(maxsize=32)
def critical_noise_std(f: AdversarialFn = softplus) -> float:
    r"""Instance-noise scale :math:`\sigma` with :math:`\sigma^2 = |f'(0)| / |f''(0)|`
    (Sønderby et al. 2016), from autograd. For softplus :math:`f'(0) = 1/2`,
    :math:`f''(0) = 1/4`, so :math:`\sigma^2 = 2` and :math:`\sigma = \sqrt 2`."""
    zero = torch.zeros((), dtype=torch.float64, requires_grad=True)
    (first,) = torch.autograd.grad(f(zero), zero, create_graph=True)
    if not first.requires_grad:  # f' is constant, so f'' is 0
        second = torch.zeros(())
    else:
        (second,) = torch.autograd.grad(first, zero, allow_unused=True)
        second = torch.zeros(()) if second is None else second
    if second.abs().item() == 0:
        raise ValueError(
            "f''(0) is 0: the critical instance-noise scale |f'(0)|/|f''(0)| is "
            "undefined for this f"
        )
    return float((first.abs() / second.abs()).sqrt().detach())


def linear_decay(iteration: int, decay_iters: int, start: float) -> float:
    """``start`` at iteration 0, decreasing linearly to 0 at ``decay_iters`` and staying
    there. ``decay_iters <= 0`` means the quantity is off (0)."""
    if decay_iters <= 0:
        return 0.0
    return start * max(0.0, 1.0 - iteration / decay_iters)


def instance_noise_std(
    iteration: int, decay_iters: int, f: AdversarialFn = softplus
) -> float:
    """Instance-noise standard deviation at ``iteration``: the critical scale of ``f``
    decayed linearly to 0 over ``decay_iters`` (the table's "InN" column)."""
    if decay_iters <= 0:
        return 0.0
    return linear_decay(iteration, decay_iters, critical_noise_std(f))


def add_instance_noise(
    images: Tensor, std: float, generator: torch.Generator | None = None
) -> Tensor:
    """``images + N(0, std^2)`` per pixel; returns ``images`` itself when ``std == 0``."""
    if std == 0:
        return images
    noise = torch.randn(
        images.shape, generator=generator, device=images.device, dtype=images.dtype
    )
    return images + std * noise


def instance_smoothing(
    real: Tensor, fake: Tensor, beta: float, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    r"""The paper's instance smoothing (equations 1-2): for each image draw
    :math:`\alpha \sim U[0, \beta]` and return

    - :math:`\hat x_F = \alpha x + (1 - \alpha) G(y)` (a fake with some of the true
      colour mixed in),
    - :math:`\hat x_R = (1 - \alpha) x + \alpha G(y)` (a real with some of the fake
      mixed in),
    - ``alpha`` of shape ``(B, 1, 1, 1)``.

    With ``beta = 0``, :math:`\hat x_F = G(y)` and :math:`\hat x_R = x`: the plain
    conditional GAN.
    """
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"instance-smoothing beta must lie in [0, 1], got {beta}")
    alpha = (
        torch.rand(
            (real.shape[0], 1, 1, 1),
            generator=generator,
            device=real.device,
            dtype=real.dtype,
        )
        * beta
    )
    fake_hat = alpha * real + (1 - alpha) * fake
    real_hat = (1 - alpha) * real + alpha * fake
    return fake_hat, real_hat, alpha


def _input_gradient(
    critic: Callable[..., Tensor], points: Tensor, gray: Tensor | None
) -> Tensor:
    points = points.detach().requires_grad_(True)
    scores = critic(points, gray)
    (grad,) = torch.autograd.grad(scores.sum(), points, create_graph=True)
    return grad.flatten(1)


def gradient_penalty(
    critic: Callable[..., Tensor],
    points: Tensor,
    gray: Tensor | None = None,
    weight: float = 10.0,
) -> Tensor:
    r"""WGAN-GP (Gulrajani et al. 2017): ``weight``
    :math:`\cdot\,\mathbb{E}[(\|\nabla_{\hat x} D(\hat x)\|_2 - 1)^2]` at ``points``
    ``(B, 3, H, W)`` (the paper evaluates it at :math:`\hat x_F`). Differentiable with
    respect to the critic's parameters (double backward). Computed in float32."""
    grad = _input_gradient(critic, points.float(), gray)
    return weight * (grad.norm(2, dim=1) - 1).pow(2).mean()


def r1_penalty(
    critic: Callable[..., Tensor],
    real: Tensor,
    gray: Tensor | None = None,
    gamma: float = 10.0,
) -> Tensor:
    r"""R1 (Mescheder et al. 2018): :math:`\frac{\gamma}{2}\,\mathbb{E}_x[\|\nabla_x
    D(x)\|_2^2]` on real images ``(B, 3, H, W)``; penalises the critic's slope on the
    data, which drives the game to converge."""
    grad = _input_gradient(critic, real.float(), gray)
    return 0.5 * gamma * grad.pow(2).sum(dim=1).mean()


def reconstruction_loss(
    fake: Tensor,
    real: Tensor,
    kind: str = "huber",
    weight: float = 1.0,
    huber_delta: float = 1.0,
) -> Tensor:
    r"""``weight`` times the per-pixel reconstruction error on the a*b* channels (L is
    copied from the input, so it carries no error).

    - ``"mse"``: :math:`\mathrm{mean}((x_F - x_R)^2)`;
    - ``"huber"`` (smooth L1): :math:`0.5 d^2/\delta` where :math:`|d| < \delta`, else
      :math:`|d| - 0.5\delta`.

    Note: with PyTorch's default :math:`\delta = 1` and a*b* in ``[0, 1]``, every
    difference is below :math:`\delta`, so Huber equals *half* the MSE. We keep that
    default because it is what ``nn.SmoothL1Loss()`` gives; set ``huber_delta`` smaller
    to get a loss that is really linear for large errors.
    """
    fake_ab, real_ab = fake[:, 1:], real[:, 1:]
    if kind == "mse":
        loss = F.mse_loss(fake_ab, real_ab)
    elif kind == "huber":
        loss = F.smooth_l1_loss(fake_ab, real_ab, beta=huber_delta)
    elif kind == "l1":
        loss = F.l1_loss(fake_ab, real_ab)
    else:
        raise ValueError(
            f"unknown reconstruction loss {kind!r}: choose 'huber', 'mse' or 'l1'"
        )
    return weight * loss


@dataclass
class DTUObjective:
    """The DTU game, configurable per row of Table 1 (see :mod:`colorbook.recipes`).

    Discriminator step (``fake`` detached):

    1. instance smoothing with :math:`\\beta` decayed linearly 0.5 -> 0 over ``smoothing_iters``
       (default: ``noise_iters``) (if ``smoothing``), else :math:`\\hat x_F = G(y)`, :math:`\\hat x_R = x`;
    2. instance noise with the critical std decayed to 0 over ``noise_iters`` on both inputs;
    3. ``critic_adversarial_loss``; plus ``gradient_penalty`` at :math:`\\hat x_F` (if ``gp``; this
       is G(y) itself once beta has decayed to 0, as the paper notes; when smoothing is off, at WGAN-GP's
       uniform interpolates between x and G(y)); plus ``r1_penalty``
       on the clean real images (if ``r1_gamma > 0``).

    The critic's main phase (:meth:`critic_loss`) is steps 1-2 and the adversarial loss; its
    regularisation phase (:meth:`critic_penalty`) the GP and R1 terms (see
    :mod:`colorbook.training.step`). Generator step: ``generator_adversarial_loss`` at the smoothed, noised :math:`\\hat x_F` (if
    ``adversarial``) plus ``recon_weight * reconstruction_loss``.
    """

    adversarial: bool = True
    f: AdversarialFn = softplus
    gp: bool = False
    gp_weight: float = 10.0
    r1_gamma: float = 0.0
    smoothing: bool = True
    smoothing_beta: float = 0.5
    noise_iters: int = 500
    # None: decay beta over noise_iters, the paper's (implied) schedule
    smoothing_iters: int | None = None
    recon: str = "huber"
    recon_weight: float = 100.0
    huber_delta: float = 1.0

    @property
    def uses_critic(self) -> bool:
        return self.adversarial

    @property
    def has_penalty(self) -> bool:
        """True when the critic is regularised (GP or R1)."""
        return self.adversarial and (self.gp or self.r1_gamma > 0)

    def _beta(self, iteration: int) -> float:
        iters = (
            self.noise_iters if self.smoothing_iters is None else self.smoothing_iters
        )
        return (
            linear_decay(iteration, iters, self.smoothing_beta)
            if self.smoothing
            else 0.0
        )

    def _critic_inputs(
        self, real: Tensor, fake: Tensor, state
    ) -> tuple[Tensor, Tensor, float, float]:
        beta = self._beta(state.iteration)
        if beta > 0:
            fake_hat, real_hat, _ = instance_smoothing(real, fake, beta, state.rng)
        else:
            fake_hat, real_hat = fake, real
        std = instance_noise_std(state.iteration, self.noise_iters, self.f)
        return (
            add_instance_noise(fake_hat, std, state.rng),
            add_instance_noise(real_hat, std, state.rng),
            beta,
            std,
        )

    def critic_loss(
        self, critic, real: Tensor, fake: Tensor, gray: Tensor, state
    ) -> tuple[Tensor, dict]:
        """Critic main phase: the adversarial loss on smoothed, noised inputs (``fake`` detached)."""
        fake_in, real_in, beta, std = self._critic_inputs(real, fake, state)
        fake_logits, real_logits = critic(fake_in, gray), critic(real_in, gray)
        loss = critic_adversarial_loss(fake_logits, real_logits, self.f)
        logs = {
            "d_adv": loss.detach(),
            "d_real_logit": real_logits.detach().float().mean(),
            "d_fake_logit": fake_logits.detach().float().mean(),
            "beta": beta,
            "noise_std": std,
        }
        return loss, logs

    def critic_penalty(
        self, critic, real: Tensor, fake: Tensor, gray: Tensor, state
    ) -> tuple[Tensor | None, dict]:
        """Critic regularisation phase: GP at the paper's x_F (if ``gp``) plus R1 on the
        clean reals (if ``r1_gamma > 0``); ``None`` when neither is on."""
        penalty, logs = None, {}
        if self.gp:
            # the paper's x_F; as beta decays to 0 it becomes G(y): the penalty moves
            # onto fakes
            if self.smoothing:
                points, _, _ = instance_smoothing(
                    real, fake, self._beta(state.iteration), state.rng
                )
            else:
                eps = torch.rand(
                    (real.shape[0], 1, 1, 1), generator=state.rng, device=real.device
                )
                points = eps * real + (1 - eps) * fake
            gp = gradient_penalty(critic, points, gray, self.gp_weight)
            penalty, logs["gp"] = gp, gp.detach()
        if self.r1_gamma > 0:
            r1 = r1_penalty(critic, real, gray, self.r1_gamma)
            penalty = r1 if penalty is None else penalty + r1
            logs["r1"] = r1.detach()
        return penalty, logs

    def generator_loss(
        self, critic, real: Tensor, fake: Tensor, gray: Tensor, state
    ) -> tuple[Tensor, dict]:
        """Generator phase: ``recon_weight * reconstruction_loss`` plus (if
        ``adversarial``) the non-saturating loss through the frozen critic, on the same
        smoothed, noised x_F as the critic saw."""
        recon = reconstruction_loss(
            fake, real, self.recon, self.recon_weight, self.huber_delta
        )
        logs = {"recon": recon.detach()}
        loss = recon
        if self.adversarial:
            fake_in, _, _, _ = self._critic_inputs(real, fake, state)
            adv = generator_adversarial_loss(critic(fake_in, gray), self.f)
            loss = loss + adv
            logs["g_adv"] = adv.detach()
        return loss, logs
