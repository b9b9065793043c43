"""What the networks share: the DCGAN initialisation the DTU report prescribes, and parameter counts.
Introduced in chapter 3 of the book (book/03-unet).
"""
from __future__ import annotations

from torch import nn

__all__ = ["init_normal", "count_parameters"]


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
