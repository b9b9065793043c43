"""Speed switches of the training step: what makes the same recipe run faster without changing what it
computes (beyond floating-point rounding).

Introduced in chapter 10 of the book, where full-scale runs are recorded. Every switch has a default per
device (:meth:`Speed.default_for`); :meth:`Speed.eager` is the plain float32 eager step every speed-up is
measured against (``python -m colorbook bench``).

========================  ===========  ====================================================================
switch                    CUDA default  what it does
========================  ===========  ====================================================================
``bf16_autocast``         on           forward passes in bfloat16 (no GradScaler needed); the gradient
                                       penalties stay in float32 (:func:`colorbook.training.step.train_step`)
``fused_adam``            on           one fused kernel per optimiser step instead of a loop over tensors
``cudnn_benchmark``       on           cuDNN picks the fastest convolution algorithm for each shape
``log_every``             25           the logged losses are read from the device every N iterations (one
                                       sync for N iterations, instead of ~10 per iteration)
``compile``               off          ``torch.compile`` of the generator and of the critic's plain passes;
                                       the penalties' double backward cannot be compiled, so they run through
                                       the eager critic, which shares the weights. Compiling costs tens of
                                       seconds up front: worth it for long runs (``--compile``)
``channels_last``         off          NHWC memory layout for the convolutions (instance norm returns
                                       contiguous tensors, so measure before using it)
========================  ===========  ====================================================================

On a CPU every switch defaults to off (the step is the eager float32 one), and ``log_every`` to 1.
Lazy regularisation (``options.reg_interval`` of a recipe) changes what the critic optimises and is a
recipe setting, not a speed switch.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from colorbook.core import Components

__all__ = ["Speed", "accelerate"]


@dataclass(frozen=True)
class Speed:
    """The speed switches of a run (see the module docstring)."""

    bf16_autocast: bool = False
    fused_adam: bool = False
    cudnn_benchmark: bool = False
    compile: bool = False
    channels_last: bool = False
    log_every: int = 1

    @classmethod
    def eager(cls) -> "Speed":
        """The plain eager float32 step, reading the logs every iteration: the baseline."""
        return cls()

    @classmethod
    def default_for(cls, device: torch.device | str, **overrides) -> "Speed":
        """The defaults of ``device``: the fast switches on CUDA, the eager step elsewhere."""
        if torch.device(device).type == "cuda":
            return dataclasses.replace(cls(bf16_autocast=True, fused_adam=True, cudnn_benchmark=True, log_every=25),
                                       **overrides)
        return dataclasses.replace(cls(), **overrides)

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return torch.bfloat16 if self.bf16_autocast else None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def accelerate(parts: Components, speed: Speed) -> Components:
    """``parts`` with ``speed``'s switches applied (in place, after any checkpoint states were loaded).

    Sets ``parts.fast_generator`` / ``parts.fast_critic`` to compiled twins that share the weights when
    ``speed.compile``; switches Adam to its fused kernel; moves the networks to channels-last memory."""
    if speed.log_every < 1:
        raise ValueError(f"log_every must be at least 1, got {speed.log_every}")
    # set either way: a global switch left on by an earlier run would make this one nondeterministic
    torch.backends.cudnn.benchmark = speed.cudnn_benchmark
    networks = [m for m in (parts.generator, parts.critic) if m is not None]
    if speed.channels_last:
        for module in networks:
            module.to(memory_format=torch.channels_last)
    if speed.fused_adam:
        for optimiser in (parts.opt_g, parts.opt_d):
            if isinstance(optimiser, torch.optim.Adam):
                for group in optimiser.param_groups:
                    group["fused"], group["foreach"] = True, None
                    for param in group["params"]:
                        # the fused kernel keeps its step counts beside the parameters, as float32: a state
                        # loaded from a checkpoint of the unfused optimiser (a CPU run) has them on the CPU
                        state = optimiser.state.get(param, {})
                        if isinstance(state.get("step"), torch.Tensor):
                            state["step"] = state["step"].to(device=param.device, dtype=torch.float32)
    if speed.compile:
        parts.fast_generator = torch.compile(parts.generator)
        if parts.critic is not None:
            parts.fast_critic = torch.compile(parts.critic)
    return parts
