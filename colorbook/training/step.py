"""One training step of every recipe, in phases (StyleGAN2-ADA style): critic main, critic
regularisation, generator.

Introduced in chapter 5 of the book (book/05-critic), which shows this code. The phases:

==================  ==========================================  =======================================
phase               when                                        what it optimises
==================  ==========================================  =======================================
critic main         the objective uses a critic                 ``critic_loss`` on ``fake.detach()``
critic penalty      also, every ``reg_interval`` iterations     ``critic_penalty`` (GP, R1): added to
                                                                the main loss when the interval is 1
                                                                (one Adam step, the papers' setting);
                                                                its own step, weighted by the interval,
                                                                when it is k > 1 (lazy regularisation)
generator           always                                      ``generator_loss``, critic frozen
generator average   the recipe has one (option ``g_ema``)       nothing: the average moves towards the
                                                                generator's new weights
==================  ==========================================  =======================================

The critic's parameters are trainable only during its own phases: in the generator phase they are
frozen (``requires_grad_(False)``), so the generator's backward pass computes no gradients for the critic
and cannot touch its optimiser's state. The learning-rate schedules step once per iteration, at the end.

Nothing here reads a value back from the device: every phase returns detached scalar tensors, and the
training loop reads them all at once when it writes its log (:mod:`colorbook.training.loop`).
"""

from __future__ import annotations

import contextlib
from typing import Iterable

import torch
from torch import Tensor, nn

from colorbook import color
from colorbook.core import Components, Logs, TrainState

__all__ = [
    "train_step",
    "prepare_batch",
    "adam_for_interval",
    "critic_phase",
    "generator_phase",
]


def prepare_batch(
    images: Tensor, source_space: str, space: str
) -> tuple[Tensor, Tensor]:
    """``(real, gray)`` from a batch ``images`` ``(B, 3, H, W)`` in ``source_space``: ``real`` in the
    generator's colour ``space`` and its gray ``(B, 1, H, W)``, both in ``[0, 1]``."""
    real = color.convert(images, source_space, space)
    return real, color.gray_of(real, space)


def adam_for_interval(
    params: Iterable[nn.Parameter], lr: float, betas: tuple[float, float], interval: int
) -> torch.optim.Adam:
    """Adam for a critic regularised every ``interval`` steps: StyleGAN2's lazy regularisation takes
    ``interval + 1`` optimiser steps where the eager schedule takes ``interval``, so it scales the
    learning rate by ``c = interval / (interval + 1)`` and each beta to ``beta ** c``. ``interval = 1``:
    plain Adam (the penalty shares the main step)."""
    if interval < 1:
        raise ValueError(
            f"the regularisation interval must be at least 1, got {interval}"
        )
    c = interval / (interval + 1) if interval > 1 else 1.0
    return torch.optim.Adam(params, lr=lr * c, betas=(betas[0] ** c, betas[1] ** c))


def _plain(fast: nn.Module | None, eager: nn.Module) -> nn.Module:
    """The module for plain forward passes: the compiled twin when there is one (``is None``, not ``or``:
    a compiled module has no truth value)."""
    return eager if fast is None else fast


def _autocast(device: torch.device, dtype: torch.dtype | None):
    return (
        torch.autocast(device.type, dtype=dtype)
        if dtype is not None
        else contextlib.nullcontext()
    )


def critic_phase(
    parts: Components,
    real: Tensor,
    fake: Tensor,
    gray: Tensor,
    state: TrainState,
    autocast_dtype: torch.dtype | None = None,
) -> Logs:
    """The critic's main phase and, when due, its regularisation phase (one optimiser
    step each, or one for both when ``parts.reg_interval`` is 1). ``fake`` must already
    be detached. Returns the logs, with ``d_loss`` the critic's total loss of this
    iteration."""
    critic, objective, optimiser = parts.critic, parts.objective, parts.opt_d
    interval = parts.reg_interval
    due = state.iteration % interval == 0
    critic.requires_grad_(True)
    optimiser.zero_grad(set_to_none=True)
    with _autocast(
        real.device, autocast_dtype
    ):  # plain passes: through the compiled twin when there is one
        loss, logs = objective.critic_loss(
            _plain(parts.fast_critic, critic), real, fake, gray, state
        )
    if (
        due and interval == 1
    ):  # the papers' setting: one Adam step on adversarial loss + penalty
        penalty, penalty_logs = _penalty(objective, critic, real, fake, gray, state)
        if penalty is not None:
            loss = loss + penalty
            logs.update(penalty_logs)
    loss.backward()
    optimiser.step()
    logs["d_loss"] = loss.detach()
    if (
        due and interval > 1
    ):  # lazy regularisation: its own phase and step, after the main one
        optimiser.zero_grad(set_to_none=True)
        penalty, penalty_logs = _penalty(objective, critic, real, fake, gray, state)
        if penalty is not None:
            (penalty * interval).backward()
            optimiser.step()
            logs.update(penalty_logs)
    critic.requires_grad_(False)
    return logs


def _penalty(
    objective,
    critic: nn.Module,
    real: Tensor,
    fake: Tensor,
    gray: Tensor,
    state: TrainState,
):
    # in float32 whatever the autocast setting: the penalties' double backward is unstable in reduced precision
    with torch.autocast(real.device.type, enabled=False):
        return objective.critic_penalty(
            critic, real.float(), fake.float(), gray.float(), state
        )


def generator_phase(
    parts: Components,
    real: Tensor,
    fake: Tensor,
    gray: Tensor,
    state: TrainState,
    autocast_dtype: torch.dtype | None = None,
) -> Logs:
    """The generator's phase: its loss through the frozen critic, one optimiser step."""
    critic = (
        _plain(parts.fast_critic, parts.critic) if parts.objective.uses_critic else None
    )
    parts.opt_g.zero_grad(set_to_none=True)
    with _autocast(real.device, autocast_dtype):
        loss, logs = parts.objective.generator_loss(critic, real, fake, gray, state)
    loss.backward()
    parts.opt_g.step()
    logs["g_loss"] = loss.detach()
    return logs


def train_step(
    parts: Components,
    real: Tensor,
    gray: Tensor,
    state: TrainState,
    autocast_dtype: torch.dtype | None = None,
) -> Logs:
    """One iteration: ``fake = G(gray)``, the critic's phases on ``fake.detach()``, the
    generator's phase with the critic frozen, the generator's moving average (if any),
    then the learning-rate schedules.

    ``real``: ``(B, 3, H, W)`` in the generator's colour space in ``[0, 1]``; ``gray``:
    ``(B, 1, H, W)``. ``autocast_dtype`` (e.g. ``torch.bfloat16`` on a GPU): forward
    passes in reduced precision, the penalties in float32. Returns the logs: detached
    scalar tensors (and plain floats), not yet read from the device.
    """
    generator = _plain(parts.fast_generator, parts.generator)
    with _autocast(real.device, autocast_dtype):
        fake = generator(gray)
    logs: Logs = {}
    if parts.critic is not None and parts.objective.uses_critic:
        logs.update(
            critic_phase(parts, real, fake.detach(), gray, state, autocast_dtype)
        )
    logs.update(generator_phase(parts, real, fake, gray, state, autocast_dtype))
    if parts.generator_average is not None:
        parts.generator_average.update(parts.generator, state.iteration + 1)
    for scheduler in parts.schedulers:
        scheduler.step()
    return logs
