"""The one switch between the ``quick`` and ``full`` profiles.

``full`` reproduces a paper's settings (meant for a GPU); ``quick`` shrinks data,
iterations and critic so that a run takes seconds to a few minutes on a 2-core CPU.
Notebooks, the command line and CI all read the same switch:

1. an explicit ``profile=`` argument or ``--profile`` option wins;
2. else the environment variable ``COLORBOOK_PROFILE`` (``quick`` or ``full``);
3. else ``full`` when CUDA is available and ``quick`` otherwise.
"""
from __future__ import annotations

import os

import torch

PROFILES = ("quick", "full")
ENV_VAR = "COLORBOOK_PROFILE"


def check_profile(profile: str) -> str:
    """Return ``profile`` if it names a profile, else raise a ValueError that lists them."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)} "
                         f"(set it with --profile or the environment variable {ENV_VAR})")
    return profile


def current_profile(explicit: str | None = None) -> str:
    """The profile in force: ``explicit``, else ``$COLORBOOK_PROFILE``, else by CUDA availability."""
    if explicit:
        return check_profile(explicit)
    from_env = os.environ.get(ENV_VAR, "").strip().lower()
    if from_env:
        return check_profile(from_env)
    return "full" if torch.cuda.is_available() else "quick"


def default_device(explicit: str | None = None) -> torch.device:
    """``explicit`` if given (with a clear error for CUDA on a machine without it), else cuda if available, else cpu."""
    if explicit:
        try:
            device = torch.device(explicit)
        except (RuntimeError, ValueError):
            raise ValueError(f"unknown device {explicit!r}: use --device cpu, cuda or cuda:N") from None
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"device {explicit!r} is not supported: use --device cpu, cuda or cuda:N")
        if device.type == "cuda":
            if not torch.cuda.is_available():
                raise ValueError(f"device {explicit!r} was asked for but CUDA is not available here: use --device cpu")
            if device.index is not None and device.index >= torch.cuda.device_count():
                raise ValueError(f"device {explicit!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
