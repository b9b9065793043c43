"""The contracts between the parts of colorbook: what a training step reads and what a recipe builds.

Imports nothing else of colorbook, so every module can import it. Introduced in chapter 5 of the book
(book/05-critic), where the training step is shown.

- :class:`TrainState`: what an objective may read about the run (iteration, epoch, its own RNG).
- :class:`Components`: what a recipe family builds (networks, objective, optimisers, schedules).
- :class:`Objective`: the protocol every objective follows (DTU, KTH): three phases, each returning a
  loss and a dict of *detached* scalar tensors to log, so that nothing syncs with the device inside a
  step.
- :class:`TrainingDiverged`: raised when a loss or a weight becomes NaN/Inf.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

__all__ = ["TrainState", "Components", "Objective", "Logs", "TrainingDiverged"]

#: What a phase logs: name -> detached 0-dim tensor (or a plain float for schedule values).
Logs = dict[str, "Tensor | float"]


class TrainingDiverged(RuntimeError):
    """A loss or weight became NaN/Inf; the last good checkpoint was kept."""


@dataclass
class TrainState:
    """What an objective may read about the run.

    ``iteration`` (0-based), ``total_iterations``, ``steps_per_epoch`` (batches per pass over the data)
    and ``rng``: a ``torch.Generator`` on the training device for the objective's own randomness
    (instance noise, smoothing, label smoothing), saved in checkpoints so a resumed run continues exactly.
    """

    iteration: int
    total_iterations: int
    steps_per_epoch: int
    rng: torch.Generator

    @property
    def epoch(self) -> float:
        """Fractional epoch: iterations / batches per epoch."""
        return self.iteration / max(1, self.steps_per_epoch)


@dataclass
class Components:
    """What a recipe family builds for one run.

    ``generator``; ``critic`` (the discriminator, or ``None`` for reconstruction-only recipes);
    ``objective`` (an :class:`Objective`); ``opt_g`` / ``opt_d`` their optimisers; ``schedulers``
    (learning-rate schedules, stepped once per iteration); ``reg_interval``: the critic's regularisation
    phase runs every ``reg_interval`` iterations (1 = every step, the papers' setting; k > 1 is
    StyleGAN2's lazy regularisation: the penalty is multiplied by k, and the family scaled Adam's lr and
    betas by k / (k + 1) when it built ``opt_d``). ``fast_generator`` / ``fast_critic``: optional compiled
    twins that share the weights (:func:`colorbook.training.speed.accelerate`), used for the plain passes;
    the penalties' double backward always runs through the eager ``critic``. ``generator_average``: the
    moving average of the generator's weights (:class:`~colorbook.training.average.GeneratorAverage`,
    recipe option ``g_ema``), updated at the end of every step; ``None`` when the recipe has none.
    """

    generator: nn.Module
    critic: nn.Module | None
    objective: "Objective"
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer | None
    schedulers: list = field(default_factory=list)
    reg_interval: int = 1
    fast_generator: nn.Module | None = None
    fast_critic: nn.Module | None = None
    generator_average: nn.Module | None = None


@runtime_checkable
class Objective(Protocol):
    """A GAN objective in three phases (see :func:`colorbook.training.step.train_step`).

    ``real``, ``fake``: ``(B, 3, H, W)`` in the generator's colour space, in ``[0, 1]``; ``fake`` is
    already detached in the two critic phases; ``gray``: ``(B, 1, H, W)`` in ``[0, 1]``. Each method
    returns ``(loss, logs)``: a scalar loss tensor and a dict of detached scalars to log.
    """

    uses_critic: bool

    def critic_loss(self, critic: nn.Module, real: Tensor, fake: Tensor, gray: Tensor,
                    state: TrainState) -> tuple[Tensor, Logs]:
        """Critic main phase: the adversarial loss."""
        ...

    def critic_penalty(self, critic: nn.Module, real: Tensor, fake: Tensor, gray: Tensor,
                       state: TrainState) -> tuple[Tensor | None, Logs]:
        """Critic regularisation phase: gradient penalties (``None`` when the objective has none)."""
        ...

    def generator_loss(self, critic: nn.Module | None, real: Tensor, fake: Tensor, gray: Tensor,
                       state: TrainState) -> tuple[Tensor, Logs]:
        """Generator phase: adversarial term (if any) plus reconstruction."""
        ...
