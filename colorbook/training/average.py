"""A moving average of the generator's weights (StyleGAN2-ADA's ``G_ema``), the model that is sampled,
evaluated and used to colorize when a recipe turns it on (option ``g_ema``).

An adversarial game does not settle: the critic wins for a few iterations, the generator answers, and the
weights at the last iteration are one draw from that wobble (on colorized MNIST one seed's burst in its
last 200 iterations ended at classifier FD 688 where two other seeds ended at 5 and 9;
results/critic-sweep/lr2e-4-clamp). Averaging the
weights over the recent past evaluates the middle of the wobble instead of wherever it happened to stop.

The half-life grows with training as in StyleGAN2-ADA's ``ema_rampup``: after ``t`` generator steps it is
``g_ema * t`` steps (0.05: the last 5 % of training dominates; 50 steps at the end of a 1,000-step run),
so one setting suits a 200-step quick run and a 1,000-step full run alike. Buffers (BatchNorm's running
statistics) are copied from the generator, not averaged, as StyleGAN2-ADA does.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["GeneratorAverage", "average_decay"]


def average_decay(rampup: float, steps_done: int) -> float:
    """The weight the average keeps after ``steps_done`` generator steps: ``0.5 ** (1 / half_life)`` with
    a half-life of ``rampup * steps_done`` steps (so about 0 after the first step: the average starts as
    the generator)."""
    if rampup <= 0:
        raise ValueError(f"g_ema must be positive (a fraction of the steps done, e.g. 0.05), got {rampup}")
    return 0.5 ** (1.0 / max(rampup * steps_done, 1e-8))


class GeneratorAverage(nn.Module):
    """An exponential moving average of ``generator``'s parameters, with its buffers copied.

    ``module``: the averaged copy (eval mode, no gradients), a network of the generator's class;
    ``update(generator, steps_done)`` folds in the generator's current weights. Its ``state_dict`` is the
    copy's, so a checkpoint's ``generator_ema`` loads into a plain generator."""

    def __init__(self, generator: nn.Module, rampup: float) -> None:
        super().__init__()
        average_decay(rampup, 1)  # checks the setting
        self.rampup = float(rampup)
        self.module = copy.deepcopy(generator).eval().requires_grad_(False)

    def state_dict(self, *args, **kwargs):  # the copy's keys, without the "module." prefix
        return self.module.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return self.module.load_state_dict(state_dict, strict=strict, assign=assign)

    @torch.no_grad()
    def update(self, generator: nn.Module, steps_done: int) -> None:
        """Move the average towards ``generator``'s weights after its ``steps_done``-th step (on the
        device, without a sync: the decay is a Python float)."""
        decay = average_decay(self.rampup, steps_done)
        averaged = list(self.module.parameters())
        current = [p.detach() for p in generator.parameters()]
        torch._foreach_lerp_(averaged, current, 1.0 - decay)  # what torch.optim.swa_utils' EMA uses
        for mine, theirs in zip(self.module.buffers(), generator.buffers()):
            mine.copy_(theirs)

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)
