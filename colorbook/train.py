"""The one trainer that every recipe uses (DTU and KTH alike).

Introduced in chapters 4-5 of the book (book/04-reconstruction, 05-critic). Step order of one iteration:

1. take a batch (a per-iteration deterministic sample, so a resumed run sees the same batches);
2. convert it to the generator's colour space; ``gray = gray_of(real)``;
3. ``fake = G(gray)``;
4. discriminator step on ``fake.detach()`` (skipped for reconstruction-only recipes);
5. generator step, with the discriminator's parameters frozen (no wasted gradients);
6. learning-rate schedulers step; losses are logged (one JSON line per iteration);
7. every ``sample_every`` iterations a sample grid; every ``checkpoint_every`` an atomic checkpoint.

Seeding: ``recipe.seed`` (or ``seed=``) seeds torch, the batch order, the augmentations and the
objective's own generator. A run stopped and resumed with ``resume=True`` continues exactly: batches
are a function of the iteration number, and RNG states are saved in the checkpoint.

If a loss or a weight becomes NaN/Inf the run stops with :class:`TrainingDiverged`, leaving the last
good checkpoint in place and ``metrics.json`` saying where it stopped.
"""
from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from colorbook import color
from colorbook.profile import current_profile, default_device
from colorbook.provenance import provenance
from colorbook.recipes import Recipe, get, get_family

__all__ = ["TrainState", "Components", "TrainingDiverged", "train", "load_checkpoint", "load_generator",
           "BatchStream", "sample_grid", "CHECKPOINT_NAME", "resolve_recipe"]

CHECKPOINT_NAME = "checkpoint.pt"


class TrainingDiverged(RuntimeError):
    """A loss or weight became NaN/Inf; the last good checkpoint was kept."""


@dataclass
class TrainState:
    """What an objective may read about the run: ``iteration`` (0-based), ``total_iterations``,
    ``epoch`` (float: iterations x batch / data-set size), ``steps_per_epoch`` and ``generator``
    (a ``torch.Generator`` on the training device for the objective's randomness)."""

    iteration: int
    total_iterations: int
    steps_per_epoch: int
    generator: torch.Generator

    @property
    def epoch(self) -> float:
        return self.iteration / max(1, self.steps_per_epoch)


@dataclass
class Components:
    """What a recipe family builds: generator, discriminator (or None), objective, optimisers and
    learning-rate schedulers (stepped once per iteration)."""

    generator: nn.Module
    discriminator: nn.Module | None
    objective: Any
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer | None
    schedulers: list = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Data


class _SeededItems(torch.utils.data.Dataset):
    """Wraps a data set so that item ``(index, seed)`` is drawn with all RNGs seeded by ``seed``:
    random crops then depend only on the iteration, which makes resuming exact."""

    def __init__(self, dataset: torch.utils.data.Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        index, seed = key
        py_state, np_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            random.seed(seed)
            np.random.seed(seed % 2**32)
            try:
                return self.dataset[index]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)


class BatchStream:
    """Deterministic batches: batch ``k`` of a run is a function of (seed, k) only.

    Epoch ``e`` visits the data in the order ``randperm(n)`` seeded by ``(seed, e)``; the last
    incomplete batch of an epoch is dropped. Data sets with ``as_tensors()`` are kept whole on the
    device and indexed there (no DataLoader); others go through a DataLoader with workers.
    Yields ``(images (B,3,H,W) float in [0,1] in the data set's colour space, labels (B,))``.
    """

    def __init__(self, dataset, batch_size: int, device: torch.device, seed: int = 0,
                 num_workers: int | None = None) -> None:
        n = len(dataset)
        if n < batch_size:
            raise ValueError(f"the data set has {n} images, fewer than one batch of {batch_size}: "
                             "give more data or a smaller --batch-size")
        self.dataset, self.batch_size, self.device, self.seed = dataset, batch_size, device, seed
        self.steps_per_epoch = n // batch_size
        self.tensors = None
        if callable(getattr(dataset, "as_tensors", None)):
            images, labels = dataset.as_tensors()
            self.tensors = (images.to(device), labels.to(device))
        if num_workers is None:
            num_workers = min(4, max(0, (os.cpu_count() or 1) - 1))
        self.num_workers = num_workers

    def _indices(self, step: int) -> torch.Tensor:
        epoch, position = divmod(step, self.steps_per_epoch)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(len(self.dataset), generator=gen)
        return order[position * self.batch_size:(position + 1) * self.batch_size]

    def batches(self, start_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.tensors is not None:
            images, labels = self.tensors
            step = start_step
            while True:
                index = self._indices(step).to(self.device)
                yield images[index], labels[index]
                step += 1
        stream = self

        class _Sampler(torch.utils.data.Sampler):
            def __iter__(self):
                step = start_step
                while True:
                    yield [(int(i), stream.seed * 7919 + step * 131 + j)
                           for j, i in enumerate(stream._indices(step))]
                    step += 1

        loader = torch.utils.data.DataLoader(
            _SeededItems(self.dataset), batch_sampler=_Sampler(), num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda", persistent_workers=self.num_workers > 0)
        for images, labels in loader:
            yield images.to(self.device, non_blocking=True), torch.as_tensor(labels).to(self.device)


def spread_indices(length: int, count: int) -> list[int]:
    """``count`` indices spread evenly over ``range(length)`` (all of them when ``count >= length``)."""
    if count >= length:
        return list(range(length))
    return torch.linspace(0, length - 1, count).round().long().tolist()


def fixed_examples(dataset, count: int, space: str, device: torch.device) -> torch.Tensor:
    """``count`` images spread evenly over ``dataset`` (evaluation view; data sets may be sorted by class),
    converted to ``space``: ``(count,3,H,W)``."""
    count = min(count, len(dataset))
    images = torch.stack([dataset[i][0] for i in spread_indices(len(dataset), count)]).to(device)
    return color.convert(images, dataset.color_space, space)


# ---------------------------------------------------------------------------------------------
# Sample grids


@torch.no_grad()
def sample_grid(generator: nn.Module, real: torch.Tensor, path: str | Path | None = None,
                nrow: int | None = None) -> torch.Tensor:
    """A grid of three rows: gray input, the generator's colours, the truth (RGB ``(3,H',W')`` in [0,1]).

    ``real``: ``(N,3,H,W)`` in the generator's colour space. Saved as PNG when ``path`` is given.
    """
    import torchvision

    was_training = generator.training
    generator.eval()
    space = generator.color_space
    gray = color.gray_of(real, space)
    fake = generator(gray)
    generator.train(was_training)
    rows = [gray.expand(-1, 3, -1, -1), color.convert(fake, space, "rgb"), color.convert(real, space, "rgb")]
    grid = torchvision.utils.make_grid(torch.cat(rows).clamp(0, 1).cpu(), nrow=nrow or real.shape[0], padding=2)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        torchvision.utils.save_image(grid, str(path))
    return grid


# ---------------------------------------------------------------------------------------------
# Checkpoints


def _rng_state(objective_gen: torch.Generator) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state(),
             "objective": objective_gen.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any], objective_gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    objective_gen.set_state(state["objective"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _all_finite(module: nn.Module | None) -> bool:
    if module is None:
        return True
    return all(torch.isfinite(p).all() for p in module.parameters())


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", mmap: bool = False) -> dict[str, Any]:
    """Read a checkpoint written by :func:`train`, with a clear error for missing or foreign files.
    ``mmap=True`` maps the tensors instead of reading them: cheap when only the metadata is needed."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}: train one with `python -m colorbook train --recipe H --out DIR`")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False, mmap=mmap)
    except Exception as error:  # torch raises many kinds for corrupt files
        raise ValueError(f"{path} is not a readable colorbook checkpoint ({type(error).__name__}: {error})") from None
    if not isinstance(ckpt, dict) or "generator" not in ckpt or "recipe" not in ckpt:
        raise ValueError(f"{path} is not a colorbook checkpoint (it has no 'generator' and 'recipe' entries)")
    return ckpt


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, Recipe]:
    """Rebuild the generator of a checkpoint (in eval mode) and return it with its resolved recipe."""
    device = torch.device(device)
    ckpt = load_checkpoint(path, map_location=device)
    recipe = Recipe.from_dict(ckpt["recipe"])
    components = get_family(recipe.family)(recipe, device, 1)
    components.generator.load_state_dict(ckpt["generator"])
    return components.generator.eval(), recipe


# ---------------------------------------------------------------------------------------------
# The loop


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _mean_recent(rows: list[dict[str, float]], key: str, last: int = 50) -> float | None:
    values = [r[key] for r in rows[-last:] if key in r]
    return float(np.mean(values)) if values else None


def _finished_run_record(out_dir: Path, iters: int) -> dict[str, Any] | None:
    """``metrics.json`` of a run in ``out_dir`` that completed at its checkpoint's iteration, which has
    reached ``iters``; ``None`` when there is training left to do (or the record does not match)."""
    metrics_path = out_dir / "metrics.json"
    if not metrics_path.exists():
        return None
    recorded = json.loads(metrics_path.read_text())
    if recorded.get("status") != "completed":
        return None
    iteration = load_checkpoint(out_dir / CHECKPOINT_NAME, mmap=True)["iteration"]
    return recorded if iteration >= iters and recorded.get("iterations") == iteration else None


def resolve_recipe(recipe: str | Recipe, profile: str | None = None, *, iters: int | None = None,
                   seed: int | None = None, batch_size: int | None = None) -> Recipe:
    """The recipe a run actually uses: resolved to the profile in force (a recipe already resolved to
    ``quick`` stays quick), with ``iters``, ``seed`` and ``batch_size`` overridden when given."""
    import dataclasses
    base = get(recipe)
    resolved = base if base.profile == "quick" else base.resolve(current_profile(profile))
    overrides = {k: v for k, v in (("iters", iters), ("seed", seed), ("batch_size", batch_size)) if v is not None}
    return dataclasses.replace(resolved, **overrides) if overrides else resolved


def train(recipe: str | Recipe, out_dir: str | Path, *, profile: str | None = None, iters: int | None = None,
          device: str | torch.device | None = None, data_root: str | Path | None = None, resume: bool = False,
          seed: int | None = None, batch_size: int | None = None, sample_every: int | None = None,
          checkpoint_every: int | None = None, num_samples: int = 8, progress: bool = True,
          dataset=None, eval_dataset=None, command: str | None = None) -> dict[str, Any]:
    """Train ``recipe`` and write its outputs in ``out_dir``; returns the metrics written to ``metrics.json``.

    ``profile``: ``quick`` or ``full`` (default: :func:`colorbook.profile.current_profile`). ``iters``,
    ``batch_size`` and ``seed`` override the recipe. ``dataset`` / ``eval_dataset`` replace the recipe's
    data sets (used by tests and notebooks). Outputs: ``checkpoint.pt``, ``log.jsonl``, ``recipe.json``,
    ``samples/iter_XXXXXX.png`` and ``metrics.json``.
    """
    started = time.time()
    recipe = resolve_recipe(recipe, profile, iters=iters, seed=seed, batch_size=batch_size)
    if recipe.iters < 1:
        raise ValueError(f"iters must be at least 1, got {recipe.iters}")
    device = default_device(str(device) if device is not None else None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / CHECKPOINT_NAME
    if resume and ckpt_path.exists():
        # Decided before any data or model is built. Keep the finished run's own record (its wall time
        # and s/iteration): rewriting it would replace the training time with that of this no-op call.
        finished = _finished_run_record(out_dir, recipe.iters)
        if finished is not None:
            print(f"{ckpt_path} finished at iteration {finished['iterations']} (asked for {recipe.iters}): "
                  "nothing to do, keeping its metrics.json (pass a larger --iters to train further)")
            return finished

    _seed_everything(recipe.seed)
    if dataset is None or eval_dataset is None:
        from colorbook.data import make_dataset
    if dataset is None:
        dataset = make_dataset(recipe.dataset, "train", data_root=data_root, image_size=recipe.image_size,
                               profile=recipe.profile, seed=recipe.seed)
    if eval_dataset is None:
        eval_dataset = make_dataset(recipe.dataset, "test", data_root=data_root, image_size=recipe.image_size,
                                    profile=recipe.profile, seed=recipe.seed)
    stream = BatchStream(dataset, recipe.batch_size, device, seed=recipe.seed)
    parts: Components = get_family(recipe.family)(recipe, device, stream.steps_per_epoch)
    G, D, objective = parts.generator, parts.discriminator, parts.objective
    space = G.color_space
    objective_gen = torch.Generator(device=device).manual_seed(recipe.seed + 1)

    start = 0
    if resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path, map_location=device)
        G.load_state_dict(ckpt["generator"])
        parts.opt_g.load_state_dict(ckpt["opt_g"])
        if D is not None:
            D.load_state_dict(ckpt["discriminator"])
            parts.opt_d.load_state_dict(ckpt["opt_d"])
        for scheduler, state in zip(parts.schedulers, ckpt.get("schedulers", [])):
            scheduler.load_state_dict(state)
        _set_rng_state(ckpt["rng"], objective_gen)
        start = ckpt["iteration"]
        if start >= recipe.iters:
            print(f"{ckpt_path} is already at iteration {start} of {recipe.iters}: nothing to do "
                  "(pass a larger --iters to train further)")
    elif resume:
        print(f"--resume: no checkpoint in {out_dir} yet, starting from iteration 0")

    log_path = out_dir / "log.jsonl"
    history: list[dict[str, float]] = []
    if start > 0 and log_path.exists():  # drop log lines written after the checkpoint we resume from
        history = [row for row in map(json.loads, log_path.read_text().splitlines()) if row["iteration"] < start]
    with open(log_path, "w") as log_file:
        for row in history:
            log_file.write(json.dumps(row) + "\n")

    (out_dir / "recipe.json").write_text(json.dumps(recipe.to_dict(), indent=2, default=str))
    examples = fixed_examples(eval_dataset, num_samples, space, device)
    sample_every = sample_every or max(1, recipe.iters // 5)
    checkpoint_every = checkpoint_every or max(1, recipe.iters // 4)
    command = command if command is not None else f"colorbook.train.train({recipe.name!r}, profile={recipe.profile!r})"
    run_provenance = provenance(device, command)  # taken at the start: the commit that actually ran

    def save_checkpoint(iteration: int) -> None:
        _atomic_save({
            "recipe": recipe.to_dict(), "profile": recipe.profile, "iteration": iteration,
            "generator": G.state_dict(), "discriminator": D.state_dict() if D is not None else None,
            "opt_g": parts.opt_g.state_dict(), "opt_d": parts.opt_d.state_dict() if parts.opt_d else None,
            "schedulers": [s.state_dict() for s in parts.schedulers], "rng": _rng_state(objective_gen),
            "provenance": run_provenance,
        }, ckpt_path)

    def write_metrics(status: str, iteration: int, run_seconds: float) -> dict[str, Any]:
        trained = iteration - start
        metrics = {
            "recipe": recipe.name, "profile": recipe.profile, "status": status, "iterations": iteration,
            "iterations_this_run": trained, "batch_size": recipe.batch_size, "image_size": recipe.image_size,
            "dataset": recipe.dataset, "dataset_size": len(dataset), "seed": recipe.seed,
            "epochs": iteration / stream.steps_per_epoch,
            "seconds_per_iteration": run_seconds / trained if trained else None,
            "final_losses_mean_last_50": {k: _mean_recent(history, k) for k in sorted({k for r in history[-50:] for k in r})
                                          if k != "iteration"},
            "paper": dict(recipe.paper),
            "provenance": {**run_provenance, "wall_time_s": round(time.time() - started, 2)},
        }
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
        return metrics

    G.train()
    if D is not None:
        D.train()
    loop_started = time.time()
    iteration = start
    bar = tqdm(total=recipe.iters, initial=start, desc=f"train {recipe.name} ({recipe.profile})",
               disable=not progress, dynamic_ncols=True)
    batches = stream.batches(start)
    try:
        with open(log_path, "a") as log_file:
            for iteration in range(start, recipe.iters):
                state = TrainState(iteration, recipe.iters, stream.steps_per_epoch, objective_gen)
                images, _ = next(batches)
                real = color.convert(images, dataset.color_space, space)
                gray = color.gray_of(real, space)
                fake = G(gray)
                row: dict[str, float] = {"iteration": iteration, "epoch": round(state.epoch, 4)}
                if D is not None and objective.uses_discriminator:
                    D.requires_grad_(True)
                    parts.opt_d.zero_grad(set_to_none=True)
                    d_loss, logs = objective.discriminator_loss(D, real, fake.detach(), gray, state)
                    d_loss.backward()
                    parts.opt_d.step()
                    row.update(logs)
                    D.requires_grad_(False)
                parts.opt_g.zero_grad(set_to_none=True)
                g_loss, logs = objective.generator_loss(D, real, fake, gray, state)
                g_loss.backward()
                parts.opt_g.step()
                row.update(logs)
                for scheduler in parts.schedulers:
                    scheduler.step()
                bad = [k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
                if bad:
                    raise TrainingDiverged(f"iteration {iteration}: non-finite {', '.join(bad)}")
                history.append(row)
                log_file.write(json.dumps(row) + "\n")
                done = iteration + 1
                if done % sample_every == 0 or done == recipe.iters:
                    sample_grid(G, examples, out_dir / "samples" / f"iter_{done:06d}.png")
                if done % checkpoint_every == 0 or done == recipe.iters:
                    if not (_all_finite(G) and _all_finite(D)):
                        raise TrainingDiverged(f"iteration {iteration}: a weight became NaN/Inf")
                    log_file.flush()
                    save_checkpoint(done)
                bar.update(1)
                bar.set_postfix({k: f"{row[k]:.3g}" for k in ("d_loss", "g_loss", "recon") if k in row}, refresh=False)
        iteration = recipe.iters
    except TrainingDiverged as error:
        bar.close()
        write_metrics("diverged", iteration, time.time() - loop_started)
        raise TrainingDiverged(f"{error}. Training stopped; the last good checkpoint is kept at {ckpt_path} "
                               "(lower the learning rate or enable instance noise / R1).") from None
    bar.close()
    return write_metrics("completed", iteration, time.time() - loop_started)
