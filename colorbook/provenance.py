"""Provenance for recorded results: what ran, where, when, from which commit."""
from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent


def git_commit(repo: Path = REPO_ROOT) -> str:
    """The checked-out commit, with ``+dirty`` when tracked files outside ``results/`` have changes;
    ``unknown`` outside git. ``results/`` is left out because it is what runs write: ``reproduce``
    rewrites ``table.md`` after each record, which would otherwise mark every later record of the same
    checkout dirty although no code changed."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)results"], cwd=repo, capture_output=True, text=True,
                               timeout=10).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def short_commit(commit: Any) -> str:
    """``git_commit()``'s value shortened for a line of text, keeping its ``+dirty`` mark: ``abc123def456+dirty``."""
    text = str(commit)
    return text[:12] + ("+dirty" if text.endswith("+dirty") else "")


def device_name(device: torch.device | str | None = None) -> str:
    """A human-readable device name: the GPU's name, or the CPU with its core count."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def command_line(argv: list[str] | None = None) -> str:
    """The command as typed, for provenance: ``python -m colorbook`` and ``argv`` (default ``sys.argv[1:]``)."""
    args = sys.argv[1:] if argv is None else argv
    return "python -m colorbook " + " ".join(shlex.quote(a) for a in args)


def provenance(device: torch.device | str | None = None, command: str | None = None,
               wall_time_s: float | None = None) -> dict[str, Any]:
    """A dict describing this run: command, git commit, device, torch version, date (UTC), host, wall time."""
    record: dict[str, Any] = {
        "command": command if command is not None else command_line(),
        "git_commit": git_commit(),
        "device": device_name(device),
        "torch": str(torch.__version__),
        "python": platform.python_version(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
    }
    if wall_time_s is not None:
        record["wall_time_s"] = round(wall_time_s, 2)
    return record
