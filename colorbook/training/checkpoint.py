"""Checkpoints: written atomically, read safely, portable between CPU and CUDA machines.

Introduced in chapter 4 of the book (book/04-reconstruction).

A checkpoint is a ``torch.save`` dict of tensors and plain data only (numbers, strings, lists, dicts):
the RNG states are stored as plain lists and tensors, the provenance as strings. It is therefore read
with ``torch.load(weights_only=True)``, whose unpickler refuses any other object *before* building it:
a crafted file cannot run code when ``colorize``, ``evaluate``, ``probe-critic`` or ``train --resume``
opens it. Everything is loaded onto the CPU first (the RNG states must stay CPU tensors), and the model
and optimiser states move to the training device as they are loaded into their modules.
"""
from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from colorbook.recipes import Recipe, get_family

__all__ = ["CHECKPOINT_NAME", "CheckpointError", "save_checkpoint", "load_checkpoint", "load_generator",
           "rng_state", "set_rng_state", "all_finite"]

CHECKPOINT_NAME = "checkpoint.pt"


class CheckpointError(ValueError):
    """A file is missing, unreadable, unsafe or not a colorbook checkpoint."""


def rng_state(objective_rng: torch.Generator) -> dict[str, Any]:
    """Every RNG a run uses, as tensors and plain data (safe to load with ``weights_only=True``)."""
    version, internal, gauss = random.getstate()
    name, keys, position, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), int(position), int(has_gauss), float(cached)],
        "objective": objective_rng.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], objective_rng: torch.Generator) -> None:
    """Restore :func:`rng_state`'s RNGs (a CUDA state is restored only where CUDA is available)."""
    torch.set_rng_state(state["torch"].cpu())
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    objective_rng.set_state(state["objective"].cpu())
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> None:
    """Write ``payload`` atomically: a temporary file beside ``path``, then ``os.replace``; a run killed
    while saving leaves the previous checkpoint intact."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def all_finite(module: nn.Module | None) -> bool:
    """True when every parameter of ``module`` (or ``None``) is finite."""
    if module is None:
        return True
    return bool(torch.stack([torch.isfinite(p).all() for p in module.parameters()]).all())


def load_checkpoint(path: str | Path, mmap: bool = False) -> dict[str, Any]:
    """Read a checkpoint written by :func:`colorbook.training.loop.train` onto the CPU.

    Refuses, with a :class:`CheckpointError` and before running any of its code, a file that holds
    anything but tensors and plain data. ``path`` may be the run's folder. ``mmap=True`` maps the
    tensors instead of reading them: cheap when only the metadata is needed.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}: train one with "
                              "`python -m colorbook train --recipe H --out DIR`")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path} was refused: it holds objects other than tensors and plain data, so "
                              f"loading it could run code ({first_line[:160]}). Only load checkpoints "
                              "written by colorbook") from None
    except Exception as error:  # torch raises many kinds for corrupt or foreign files
        raise CheckpointError(f"{path} is not a readable colorbook checkpoint "
                              f"({type(error).__name__}: {str(error)[:200]})") from None
    if not isinstance(ckpt, dict) or "generator" not in ckpt or "recipe" not in ckpt:
        raise CheckpointError(f"{path} is not a colorbook checkpoint (it has no 'generator' and 'recipe' entries)")
    return ckpt


def recipe_of(ckpt: dict[str, Any], path: str | Path) -> Recipe:
    """The resolved recipe stored in a checkpoint, with a clear error when the entry is broken."""
    try:
        return Recipe.from_dict(ckpt["recipe"])
    except (TypeError, ValueError, AttributeError) as error:
        raise CheckpointError(f"{path}: its 'recipe' entry is broken ({error}); it was not written by "
                              "this version of colorbook") from None


def load_generator(path: str | Path, device: str | torch.device = "cpu", *,
                   averaged: bool = True) -> tuple[nn.Module, Recipe]:
    """Rebuild the generator of a checkpoint (in eval mode, on ``device``) with its resolved recipe.

    A run whose recipe keeps a moving average of the generator's weights (option ``g_ema``) gives the
    average (``averaged=False``: the weights of its last step)."""
    device = torch.device(device)
    ckpt = load_checkpoint(path)
    recipe = recipe_of(ckpt, path)
    weights = ckpt.get("generator_ema") if averaged else None
    try:
        components = get_family(recipe.family)(recipe, device, 1, with_critic=False)  # the generator is all we need
        components.generator.load_state_dict(weights if weights is not None else ckpt["generator"])
    except (KeyError, RuntimeError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: its weights do not fit recipe {recipe.name!r} "
                              f"({str(error).splitlines()[0][:200]})") from None
    return components.generator.eval(), recipe
