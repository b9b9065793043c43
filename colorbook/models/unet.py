"""The DTU generator: a UNet colorizer with instance-normalised skips (Xu et al. 2018, as the DTU report
uses it). Introduced in chapter 3 of the book (book/03-unet).

It works on CIELAB normalised to ``[0, 1]`` (see :mod:`colorbook.color`): it reads the L channel
``(B, 1, H, W)``, predicts a*b* ``(B, 2, H, W)`` and concatenates them with the input L into a full image
``(B, 3, H, W)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["UNetColorizer", "OUTPUTS"]

from colorbook.models.common import init_normal


def _double_conv(
    in_ch: int, out_ch: int, dropout: float = 0.0, norm: bool = True
) -> nn.Sequential:
    # BatchNorm inside the blocks (as pix2pix's UNet): with N(0, 0.02) weights and no normalisation the
    # signal shrinks ~2x per conv, and the bottleneck's gradients fell below Adam's epsilon (~1e-11), so
    # the network barely learned at the paper's learning rate
    def conv(a: int, b: int) -> list[nn.Module]:
        return [
            nn.Conv2d(a, b, 3, padding=1, bias=not norm),
            *([nn.BatchNorm2d(b)] if norm else []),
            nn.LeakyReLU(0.2, inplace=True),
        ]

    layers: list[nn.Module] = [*conv(in_ch, out_ch), *conv(out_ch, out_ch)]
    if dropout > 0:
        layers.append(nn.Dropout2d(dropout))
    return nn.Sequential(*layers)


#: The UNet's output functions (see :class:`UNetColorizer`).
OUTPUTS = ("sigmoid", "clamp", "clamp-st")


class UNetColorizer(nn.Module):
    """UNet of Xu et al. (2018) as used by the DTU paper: predicts a*b* from L.

    Architecture, for ``depth = n`` (2 for MNIST, 7 for 128x128 scenes):

    - encoder: ``n`` blocks (two 3x3 convs, each with BatchNorm and LeakyReLU 0.2), each
      followed by a 2x2 max-pool (the paper does not say what is inside a block; without
      normalisation the DCGAN initialisation it prescribes makes the signal vanish with
      depth, so we normalise as pix2pix does); channels ``base, 2 base, 4 base, ...``
      capped at ``max_channels``;
    - bottleneck: one more block at ``H / 2**n``;
    - decoder: ``n`` blocks, each: bilinear 2x upsampling, concatenation with the
      matching encoder output passed through a *learned-affine instance norm* (the skip
      carries "style": per-channel statistics are removed and re-learned), then two 3x3
      convs;
    - head: 1x1 conv to 2 channels, then ``output="sigmoid"`` (0.5 ~ neutral gray, which
      is 128/255) or ``output="clamp"``, ``clamp(0.5 + z, 0, 1)``, so a*b* lie in
      ``[0, 1]``. The sigmoid reaches 0 and 1 only at infinite logits and its slope
      falls to 0.05 at 0.95, so the most saturated colours (the colorized-MNIST code
      puts one of a*, b* *on* 0 or 1) are approached ever more slowly; the clamp reaches
      them with slope 1, but passes no gradient once ``0.5 + z`` has left the range, so
      a pixel pushed out of it stays there; ``output="clamp-st"`` clamps the same and
      passes the gradient through as if it did not (a straight-through estimator), so it
      can come back;
    - optional 50% dropout in the first three decoder blocks (the pix2pix variant, DTU
      config R).

    Sizes: ``H`` and ``W`` must be divisible by ``2**depth`` for the pools to halve
    cleanly. Other sizes are reflect-padded up to the next multiple and the output
    cropped back, so any image size works (chosen over an error so that ``colorize``
    accepts photos of any size).

    Input ``gray``: ``(B, 1, H, W)`` normalised L in ``[0, 1]``. Output: ``(B, 3, H,
    W)`` normalised L*a*b* in ``[0, 1]``: channel 0 is the input L unchanged.
    """

    color_space = "lab"

    def __init__(
        self,
        depth: int = 2,
        base_channels: int = 64,
        max_channels: int = 512,
        dropout: float = 0.0,
        init_std: float = 0.02,
        block_norm: bool = True,
        output: str = "sigmoid",
    ) -> None:
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(
                f"unknown UNet output {output!r}: choose one of {', '.join(OUTPUTS)}"
            )
        self.output = output
        if not 1 <= depth <= 8:
            raise ValueError(
                f"UNet depth must be between 1 and 8 blocks, got {depth} "
                "(the paper uses 2 and 7)"
            )
        self.depth = depth
        channels = [min(base_channels * 2**i, max_channels) for i in range(depth + 1)]
        self.channels = channels
        self.encoders = nn.ModuleList()
        in_ch = 1
        for ch in channels[:-1]:
            self.encoders.append(_double_conv(in_ch, ch, norm=block_norm))
            in_ch = ch
        self.bottleneck = _double_conv(channels[-2], channels[-1], norm=block_norm)
        self.skip_norms = nn.ModuleList(
            nn.InstanceNorm2d(ch, affine=True) for ch in channels[:-1]
        )
        self.decoders = nn.ModuleList()
        up_ch = channels[-1]
        for level in reversed(range(depth)):
            block_index = depth - 1 - level  # 0 for the first (coarsest) decoder block
            drop = dropout if block_index < 3 else 0.0
            self.decoders.append(
                _double_conv(
                    up_ch + channels[level], channels[level], drop, norm=block_norm
                )
            )
            up_ch = channels[level]
        self.head = nn.Conv2d(channels[0], 2, 1)
        init_normal(self, init_std)

    @property
    def size_multiple(self) -> int:
        """Input sizes that need no padding are multiples of this."""
        return 2**self.depth

    def forward(self, gray: torch.Tensor) -> torch.Tensor:
        if gray.dim() != 4 or gray.shape[1] != 1:
            raise ValueError(
                "UNetColorizer expects a gray batch of shape (B, 1, H, W); got "
                f"{tuple(gray.shape)}. Use colorbook.color.gray_of(image, space) to "
                "make one."
            )
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
        for decoder, skip, norm in zip(
            self.decoders, reversed(skips), reversed(self.skip_norms)
        ):
            x = F.interpolate(
                x, size=skip.shape[-2:], mode="bilinear", align_corners=False
            )
            x = decoder(torch.cat([x, norm(skip)], dim=1))
        logits = self.head(x)[..., :height, :width]
        if self.output == "sigmoid":
            ab = torch.sigmoid(logits)
        elif self.output == "clamp":  # slope 1 up to the ends of the range, 0 beyond
            ab = (logits + 0.5).clamp(0.0, 1.0)
        else:  # "clamp-st": the clamp's values, slope 1 everywhere
            shifted = logits + 0.5
            ab = shifted + (shifted.clamp(0.0, 1.0) - shifted).detach()
        return torch.cat([gray, ab], dim=1)
