"""The DTU models: a UNet colorizer with instance-normalised skips and a ResNet critic.

Introduced in chapter 3 (UNet, book/03-unet) and chapter 5 (critic, book/05-critic) of the book.

Both work on CIELAB normalised to ``[0, 1]`` (see :mod:`colorbook.color`):
the UNet reads the L channel ``(B, 1, H, W)`` and predicts a*b* ``(B, 2, H, W)``,
which it concatenates with the input L into a full image ``(B, 3, H, W)``. The critic
reads that 3-channel image; since L is the generator's own input, the critic is
conditioned on L by construction.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

__all__ = ["UNetColorizer", "ResNetCritic", "init_normal", "count_parameters", "CRITIC_ARCHS"]


def init_normal(module: nn.Module, std: float = 0.02) -> nn.Module:
    """DCGAN initialisation used by the DTU paper: conv/linear weights ~ N(0, std), biases 0,
    norm scales ~ N(1, std). Returns the module for chaining."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return module


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def _double_conv(in_ch: int, out_ch: int, dropout: float = 0.0, norm: bool = True) -> nn.Sequential:
    # BatchNorm inside the blocks (as pix2pix's UNet): with N(0, 0.02) weights and no normalisation the
    # signal shrinks ~2x per conv, and the bottleneck's gradients fell below Adam's epsilon (~1e-11), so
    # the network barely learned at the paper's learning rate
    def conv(a: int, b: int) -> list[nn.Module]:
        return [nn.Conv2d(a, b, 3, padding=1, bias=not norm), *([nn.BatchNorm2d(b)] if norm else []),
                nn.LeakyReLU(0.2, inplace=True)]
    layers: list[nn.Module] = [*conv(in_ch, out_ch), *conv(out_ch, out_ch)]
    if dropout > 0:
        layers.append(nn.Dropout2d(dropout))
    return nn.Sequential(*layers)


class UNetColorizer(nn.Module):
    """UNet of Xu et al. (2018) as used by the DTU paper: predicts a*b* from L.

    Architecture, for ``depth = n`` (2 for MNIST, 7 for 128x128 scenes):

    - encoder: ``n`` blocks (two 3x3 convs, each with BatchNorm and LeakyReLU 0.2), each followed by a
      2x2 max-pool (the paper does not say what is inside a block; without normalisation the DCGAN
      initialisation it prescribes makes the signal vanish with depth, so we normalise as pix2pix does);
      channels ``base, 2 base, 4 base, ...`` capped at ``max_channels``;
    - bottleneck: one more block at ``H / 2**n``;
    - decoder: ``n`` blocks, each: bilinear 2x upsampling, concatenation with the matching encoder
      output passed through a *learned-affine instance norm* (the skip carries "style": per-channel
      statistics are removed and re-learned), then two 3x3 convs;
    - head: 1x1 conv to 2 channels and a sigmoid, so a*b* lie in ``[0, 1]`` (0.5 = neutral gray);
    - optional 50% dropout in the first three decoder blocks (the pix2pix variant, DTU config R).

    Sizes: ``H`` and ``W`` must be divisible by ``2**depth`` for the pools to halve cleanly.
    Other sizes are reflect-padded up to the next multiple and the output cropped back, so any image
    size works (chosen over an error so that ``colorize`` accepts photos of any size).

    Input ``gray``: ``(B, 1, H, W)`` normalised L in ``[0, 1]``.
    Output: ``(B, 3, H, W)`` normalised L*a*b* in ``[0, 1]``: channel 0 is the input L unchanged.
    """

    color_space = "lab"

    def __init__(self, depth: int = 2, base_channels: int = 64, max_channels: int = 512,
                 dropout: float = 0.0, init_std: float = 0.02, block_norm: bool = True) -> None:
        super().__init__()
        if not 1 <= depth <= 8:
            raise ValueError(f"UNet depth must be between 1 and 8 blocks, got {depth} (the paper uses 2 and 7)")
        self.depth = depth
        channels = [min(base_channels * 2 ** i, max_channels) for i in range(depth + 1)]
        self.channels = channels
        self.encoders = nn.ModuleList()
        in_ch = 1
        for ch in channels[:-1]:
            self.encoders.append(_double_conv(in_ch, ch, norm=block_norm))
            in_ch = ch
        self.bottleneck = _double_conv(channels[-2], channels[-1], norm=block_norm)
        self.skip_norms = nn.ModuleList(nn.InstanceNorm2d(ch, affine=True) for ch in channels[:-1])
        self.decoders = nn.ModuleList()
        up_ch = channels[-1]
        for level in reversed(range(depth)):
            block_index = depth - 1 - level  # 0 for the first (coarsest) decoder block
            drop = dropout if block_index < 3 else 0.0
            self.decoders.append(_double_conv(up_ch + channels[level], channels[level], drop, norm=block_norm))
            up_ch = channels[level]
        self.head = nn.Conv2d(channels[0], 2, 1)
        init_normal(self, init_std)

    @property
    def size_multiple(self) -> int:
        """Input sizes that need no padding are multiples of this."""
        return 2 ** self.depth

    def forward(self, gray: torch.Tensor) -> torch.Tensor:
        if gray.dim() != 4 or gray.shape[1] != 1:
            raise ValueError(f"UNetColorizer expects a gray batch of shape (B, 1, H, W); got {tuple(gray.shape)}. "
                             "Use colorbook.color.gray_of(image, space) to make one.")
        height, width = gray.shape[-2:]
        multiple = self.size_multiple
        pad_h, pad_w = (-height) % multiple, (-width) % multiple
        x = gray
        if pad_h or pad_w:
            # reflect needs the pad smaller than the side; replicate covers tiny images
            mode = "reflect" if pad_h < height and pad_w < width else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for decoder, skip, norm in zip(self.decoders, reversed(skips), reversed(self.skip_norms)):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = decoder(torch.cat([x, norm(skip)], dim=1))
        ab = torch.sigmoid(self.head(x))[..., :height, :width]
        return torch.cat([gray, ab], dim=1)


CRITIC_ARCHS = {
    "resnet10": (torchvision.models.resnet.BasicBlock, [1, 1, 1, 1]),
    "resnet18": (torchvision.models.resnet.BasicBlock, [2, 2, 2, 2]),
    "resnet34": (torchvision.models.resnet.BasicBlock, [3, 4, 6, 3]),
    "resnet50": (torchvision.models.resnet.Bottleneck, [3, 4, 6, 3]),
    "resnet101": (torchvision.models.resnet.Bottleneck, [3, 4, 23, 3]),
    "resnet152": (torchvision.models.resnet.Bottleneck, [3, 8, 36, 3]),
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
    """An untrained torchvision ResNet as the DTU critic: L*a*b* image -> one logit.

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

    ``norm``: ``"batch"`` (torchvision's default), ``"instance"``, ``"group"`` or ``"none"``.

    Input ``image``: ``(B, 3, H, W)`` in ``[0, 1]``; ``gray`` is accepted for the common
    discriminator interface and ignored (L is channel 0 of ``image``). Output: logits ``(B,)``.
    """

    def __init__(self, arch: str = "resnet18", stem: str = "standard", norm: str = "batch",
                 in_channels: int = 3, init_std: float = 0.02, small_input_threshold: int = 64) -> None:
        super().__init__()
        if arch not in CRITIC_ARCHS:
            raise ValueError(f"unknown critic architecture {arch!r}: choose one of {', '.join(CRITIC_ARCHS)}")
        if stem not in ("auto", "small", "standard"):
            raise ValueError(f"stem must be 'auto', 'small' or 'standard', got {stem!r}")
        if norm not in _NORMS:
            raise ValueError(f"unknown critic norm {norm!r}: choose one of {', '.join(_NORMS)}")
        block, layers = CRITIC_ARCHS[arch]
        self.arch, self.norm = arch, norm
        self.small_input_threshold = small_input_threshold
        self.net = torchvision.models.resnet.ResNet(block, layers, num_classes=1, norm_layer=_NORMS[norm])
        # both stems are kept as separate modules (their weights must not alias in a checkpoint);
        # the ResNet's own conv1 becomes an identity and forward() applies the chosen stem
        self.standard_conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.small_conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.net.conv1 = nn.Identity()
        # 0 = undecided, 1 = small, 2 = standard; a buffer so checkpoints keep the decision
        self.register_buffer("stem_choice", torch.tensor({"auto": 0, "small": 1, "standard": 2}[stem]))
        init_normal(self, init_std)

    @property
    def stem(self) -> str:
        return {0: "auto", 1: "small", 2: "standard"}[int(self.stem_choice)]

    def forward(self, image: torch.Tensor, gray: torch.Tensor | None = None) -> torch.Tensor:
        if image.dim() != 4:
            raise ValueError(f"ResNetCritic expects (B, C, H, W), got shape {tuple(image.shape)}")
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
        last = [math.ceil(s / 2 ** halvings) for s in size]
        if min(last) < 2:
            raise ValueError(
                f"norm='instance' normalises each channel over its spatial positions, but a {size[0]}x{size[1]} "
                f"input leaves the critic's last stage {last[0]}x{last[1]} with the {self.stem} stem: one value "
                "per channel, which instance norm turns into 0, so every image would get the same score. Use "
                "stem='small' or 'auto' (2x2 for 32x32 inputs), inputs of at least "
                f"{2 ** halvings + 1}x{2 ** halvings + 1}, or norm='group' or 'batch'.")
