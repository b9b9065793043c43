"""The DTU critic: an untrained ResNet (torchvision's architecture, :mod:`colorbook.models.resnet`) that reads a normalised L*a*b* image ``(B, 3, H, W)``
and returns one logit per image. Since L is the generator's own input, the critic is conditioned on it by
construction. Introduced in chapter 5 of the book (book/05-critic).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["ResNetCritic", "CRITIC_ARCHS"]

from colorbook.models.common import init_normal
from colorbook.models.resnet import BasicBlock, Bottleneck, ResNet

CRITIC_ARCHS = {
    "resnet10": (BasicBlock, [1, 1, 1, 1]),
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
    "resnet101": (Bottleneck, [3, 4, 23, 3]),
    "resnet152": (Bottleneck, [3, 8, 36, 3]),
}

_NORMS = {
    "batch": nn.BatchNorm2d,
    # one group per channel = instance norm with affine; does not mix samples, so per-sample
    # gradient penalties stay per-sample
    "instance": lambda ch: nn.GroupNorm(ch, ch),
    "group": lambda ch: nn.GroupNorm(math.gcd(32, ch), ch),
    "none": lambda ch: nn.Identity(),
}


class ResNetCritic(nn.Module):
    """An untrained ResNet (torchvision's architecture) as the DTU critic: L*a*b* image -> one logit.

    ``arch`` is one of :data:`CRITIC_ARCHS` (the paper: ResNet18 for MNIST, ResNet152 for scenes;
    ``resnet10`` is a [1, 1, 1, 1] ResNet for the quick profile).

    The stem: torchvision's 7x7 stride-2 conv plus a stride-2 max-pool shrinks an image 4x before the
    first residual stage, which suits 224x224 photos but leaves a 32x32 digit only 8x8 (and 1x1 at the
    last stage). That still works: the last stage's receptive field covers the whole digit, and it is
    what an untrained torchvision ResNet does, so it is the default (``stem="standard"``), and it is 2-3x
    cheaper than the alternative. With ``stem="small"`` the stem is a 3x3 stride-1 conv followed by the
    max-pool, so a 32x32 input enters the residual stages at 16x16 and leaves at 2x2 (more spatial
    detail for the critic, about 4x the compute). ``stem="auto"`` picks ``"small"`` for inputs under
    64 pixels and the standard stem otherwise, at the first call; the choice is saved with the weights.

    ``norm``: ``"batch"`` (torchvision's default), ``"instance"``, ``"group"`` or ``"none"``. A critic
    that is gradient-penalised should not use ``"batch"``: the penalties are per sample, and BatchNorm
    couples the samples of a batch (Gulrajani et al. 2017); with the paper's N(0, 0.02) weights it also
    starts with input gradients of norm 8 (ResNet-18, 32 px) to 2,000 (ResNet-152, 128 px), so that
    R1 = gamma/2 |grad|^2 dwarfs the adversarial loss (chapter 7).

    ``init``: ``"dcgan"`` (the paper's N(0, ``init_std``) weights) or ``"torchvision"`` (the ResNet's own
    Kaiming initialisation). ``unit_gradient_at``: an image size; when given, the last layer is rescaled
    after initialisation so that the mean input-gradient norm |grad_x D(x)| over uniform random images of
    that size is 1: the penalties then start at their own scale (R1 = gamma/2) whatever the depth, width
    and normalisation (a data-independent version of LSUV initialisation, Mishkin and Matas 2016).

    Input ``image``: ``(B, 3, H, W)`` in ``[0, 1]``; ``gray`` is accepted for the common
    discriminator interface and ignored (L is channel 0 of ``image``). Output: logits ``(B,)``.
    """

    def __init__(
        self,
        arch: str = "resnet18",
        stem: str = "standard",
        norm: str = "batch",
        init: str = "dcgan",
        unit_gradient_at: int | None = None,
        in_channels: int = 3,
        init_std: float = 0.02,
        small_input_threshold: int = 64,
    ) -> None:
        super().__init__()
        if arch not in CRITIC_ARCHS:
            raise ValueError(
                f"unknown critic architecture {arch!r}: choose one of {', '.join(CRITIC_ARCHS)}"
            )
        if stem not in ("auto", "small", "standard"):
            raise ValueError(
                f"stem must be 'auto', 'small' or 'standard', got {stem!r}"
            )
        if norm not in _NORMS:
            raise ValueError(
                f"unknown critic norm {norm!r}: choose one of {', '.join(_NORMS)}"
            )
        block, layers = CRITIC_ARCHS[arch]
        self.arch, self.norm = arch, norm
        self.small_input_threshold = small_input_threshold
        self.net = ResNet(block, layers, num_classes=1, norm_layer=_NORMS[norm])
        # both stems are kept as separate modules (their weights must not alias in a checkpoint);
        # the ResNet's own conv1 becomes an identity and forward() applies the chosen stem
        self.standard_conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.small_conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.net.conv1 = nn.Identity()
        # 0 = undecided, 1 = small, 2 = standard; a buffer so checkpoints keep the decision
        self.register_buffer(
            "stem_choice", torch.tensor({"auto": 0, "small": 1, "standard": 2}[stem])
        )
        if init == "dcgan":
            init_normal(self, init_std)
        elif init != "torchvision":
            raise ValueError(
                f"unknown critic init {init!r}: choose 'dcgan' (the paper's N(0, 0.02)) or 'torchvision'"
            )
        self.init = init
        if unit_gradient_at is not None:
            self._scale_to_unit_input_gradient(int(unit_gradient_at), in_channels)

    def _scale_to_unit_input_gradient(
        self, size: int, channels: int, samples: int = 8
    ) -> None:
        # The logit is linear in the last layer, so dividing its weights and bias by the measured mean
        # input-gradient norm makes that norm 1. Measured in training mode (as the penalties see the
        # critic), without touching the global RNG or BatchNorm's running statistics.
        images = torch.rand(
            samples, channels, size, size, generator=torch.Generator().manual_seed(0)
        )
        images.requires_grad_(True)
        norms = [
            m for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
        ]
        saved = [
            (
                m.running_mean.clone(),
                m.running_var.clone(),
                m.num_batches_tracked.clone(),
            )
            for m in norms
        ]
        choice = self.stem_choice.clone()
        was_training = self.training
        self.train()
        (grad,) = torch.autograd.grad(self(images).sum(), images)
        self.train(was_training)
        self.stem_choice.copy_(choice)
        for m, (mean, var, count) in zip(norms, saved):
            (
                m.running_mean.copy_(mean),
                m.running_var.copy_(var),
                m.num_batches_tracked.copy_(count),
            )
        scale = grad.flatten(1).norm(dim=1).mean().clamp_min(1e-12)
        with torch.no_grad():
            self.net.fc.weight.div_(scale)
            self.net.fc.bias.div_(scale)

    @property
    def stem(self) -> str:
        return {0: "auto", 1: "small", 2: "standard"}[int(self.stem_choice)]

    def forward(
        self, image: torch.Tensor, gray: torch.Tensor | None = None
    ) -> torch.Tensor:
        if image.dim() != 4:
            raise ValueError(
                f"ResNetCritic expects (B, C, H, W), got shape {tuple(image.shape)}"
            )
        if int(self.stem_choice) == 0:
            small = min(image.shape[-2:]) < self.small_input_threshold
            self.stem_choice.fill_(1 if small else 2)
        if self.norm == "instance":
            self._check_instance_norm_input(image.shape[-2:])
        stem = self.small_conv1 if int(self.stem_choice) == 1 else self.standard_conv1
        return self.net(stem(image)).squeeze(1)

    def _check_instance_norm_input(self, size: torch.Size) -> None:
        # Each stride-2 step (stem conv for the standard stem, max-pool, stages 2-4) halves, rounding up.
        halvings = 5 if int(self.stem_choice) == 2 else 4
        last = [math.ceil(s / 2**halvings) for s in size]
        if min(last) < 2:
            raise ValueError(
                f"norm='instance' normalises each channel over its spatial positions, but a {size[0]}x{size[1]} "
                f"input leaves the critic's last stage {last[0]}x{last[1]} with the {self.stem} stem: one value "
                "per channel, which instance norm turns into 0, so every image would get the same score. Use "
                "stem='small' or 'auto' (2x2 for 32x32 inputs), inputs of at least "
                f"{2**halvings + 1}x{2**halvings + 1}, or norm='group' or 'batch'."
            )
