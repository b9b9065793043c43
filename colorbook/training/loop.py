"""The training loop of every recipe (DTU and KTH alike): cadence around the one step.

Introduced in chapters 4-5 of the book (book/04-reconstruction, 05-critic). The step itself (the
critic's and the generator's phases) is :func:`colorbook.training.step.train_step`; this module keeps
the cadence:

1. take batch ``k`` of a :class:`~colorbook.training.stream.BatchStream` (a function of the seed and
   ``k`` only, so a resumed run sees the same batches), convert it to the generator's colour space;
2. :func:`~colorbook.training.step.train_step`;
3. every ``log_every`` iterations read the logged scalars of those iterations from the device at once
   (one sync), check them for NaN/Inf, and append one JSON line per iteration to ``log.jsonl``;
4. every ``sample_every`` iterations a sample grid; every ``checkpoint_every`` an atomic checkpoint.

Seeding: ``recipe.seed`` (or ``seed=``) seeds torch, the batch order, the augmentations and the
objective's own RNG. A run stopped and resumed with ``resume=True`` continues exactly: batches are a
function of the iteration number, and RNG states are saved in the checkpoint.

If a loss or a weight becomes NaN/Inf the run stops with :class:`~colorbook.core.TrainingDiverged`,
leaving the last good checkpoint in place and ``metrics.json`` saying where it stopped.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from colorbook import color
from colorbook.core import Components, Logs, TrainingDiverged, TrainState
from colorbook.data import make_dataset
from colorbook.profile import current_profile, default_device
from colorbook.provenance import provenance
from colorbook.recipes import Recipe, get, get_family
from colorbook.training.average import GeneratorAverage
from colorbook.training.checkpoint import (
    CHECKPOINT_NAME,
    CheckpointError,
    all_finite,
    load_checkpoint,
    recipe_of,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from colorbook.training.speed import Speed, accelerate
from colorbook.training.step import prepare_batch, train_step
from colorbook.training.stream import BatchStream, fixed_examples

__all__ = ["train", "resolve_recipe", "sample_grid", "image_grid", "read_logs", "write_log_excerpt", "LOG_EXCERPT_EVERY",
           "RUN_FILES", "RunFolderBusy"]

try:  # POSIX advisory locks; where there are none (Windows), two runs on one folder are not detected
    import fcntl
except ImportError:  # pragma: no cover - not on Linux or macOS
    fcntl = None

#: what a training run writes into its folder
RUN_FILES = (CHECKPOINT_NAME, "log.jsonl", "metrics.json", "recipe.json", "samples")
LOCK_NAME = ".train.lock"
# the settings a resumed run must share with its checkpoint (``iters`` may grow: that is what resuming is for)
_RESUME_KEYS = ("name", "family", "dataset", "image_size", "batch_size", "lr", "options", "profile", "seed")


class RunFolderBusy(ValueError):
    """Another training process is writing to the same folder."""


@torch.no_grad()
def sample_grid(generator: nn.Module, real: torch.Tensor, path: str | Path | None = None,
                nrow: int | None = None) -> torch.Tensor:
    """A grid of three rows: gray input, the generator's colours, the truth (RGB ``(3,H',W')`` in [0,1]).

    ``real``: ``(N,3,H,W)`` in the generator's colour space. Saved as PNG when ``path`` is given.
    """
    was_training = generator.training
    generator.eval()
    space = generator.color_space
    gray = color.gray_of(real, space)
    fake = generator(gray).float()
    generator.train(was_training)
    rows = [gray.expand(-1, 3, -1, -1), color.convert(fake, space, "rgb"), color.convert(real, space, "rgb")]
    grid = image_grid(torch.cat(rows).clamp(0, 1).cpu(), nrow=nrow or real.shape[0], padding=2)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        pixels = grid.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(path)
    return grid


def image_grid(images: torch.Tensor, nrow: int, padding: int = 2) -> torch.Tensor:
    """Images ``(N, C, H, W)`` tiled ``nrow`` to a row with ``padding`` black pixels around each:
    ``(C, H', W')``, as ``torchvision.utils.make_grid`` lays them out (written here so that importing
    colorbook does not import torchvision)."""
    count, channels, height, width = images.shape
    columns = min(nrow, count)
    rows = -(-count // columns)
    cell_h, cell_w = height + padding, width + padding
    grid = images.new_zeros((channels, rows * cell_h + padding, columns * cell_w + padding))
    for index in range(count):
        top, left = (index // columns) * cell_h + padding, (index % columns) * cell_w + padding
        grid[:, top:top + height, left:left + width] = images[index]
    return grid


def read_logs(pending: list[tuple[int, float, Logs]]) -> list[dict[str, float]]:
    """Rows of plain floats from the logs of several iterations, read from the device in one sync.

    ``pending``: ``(iteration, epoch, logs)`` per iteration, ``logs`` holding detached scalar tensors
    and plain floats. Returns one dict per iteration with ``iteration`` and ``epoch`` first."""
    tensors = [value.detach().float().reshape(()) for _, _, logs in pending for value in logs.values()
               if isinstance(value, torch.Tensor)]
    values = iter(torch.stack(tensors).tolist() if tensors else [])
    rows = []
    for iteration, epoch, logs in pending:
        row: dict[str, float] = {"iteration": iteration, "epoch": round(epoch, 4)}
        for key, value in logs.items():
            row[key] = next(values) if isinstance(value, torch.Tensor) else float(value)
        rows.append(row)
    return rows


#: Recorded results keep every 5th row of a run's training log: 200 rows for a 1,000-iteration run, enough
#: for loss and penalty curves, small enough to commit.
LOG_EXCERPT_EVERY = 5


def write_log_excerpt(run: str | Path, path: str | Path, every: int = LOG_EXCERPT_EVERY) -> Path:
    """Write rows 0, ``every``, 2 ``every``, ... of the run folder's ``log.jsonl`` to ``path`` (JSON
    lines, unchanged), for the loss and penalty curves of a recorded result. Returns ``path``."""
    if every < 1:
        raise ValueError(f"every must be at least 1, got {every}")
    rows = (Path(run) / "log.jsonl").read_text().splitlines()
    path = Path(path)
    path.write_text("".join(line + "\n" for line in rows[::every]))
    return path


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _mean_recent(rows: list[dict[str, float]], key: str, last: int = 50) -> float | None:
    values = [r[key] for r in rows[-last:] if key in r]
    return float(np.mean(values)) if values else None


def _finished_run_record(out_dir: Path, iters: int, iteration: int) -> dict[str, Any] | None:
    """``metrics.json`` of a run in ``out_dir`` that completed at its checkpoint's ``iteration``, which has
    reached ``iters``; ``None`` when there is training left to do (or the record does not match)."""
    metrics_path = out_dir / "metrics.json"
    if not metrics_path.exists():
        return None
    try:
        recorded = json.loads(metrics_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{metrics_path} is not valid JSON ({error}); move it away to resume") from None
    if not isinstance(recorded, dict) or recorded.get("status") != "completed":
        return None
    return recorded if iteration >= iters and recorded.get("iterations") == iteration else None


@contextlib.contextmanager
def _run_folder_lock(out_dir: Path):
    """Hold an exclusive lock on ``out_dir`` for the whole run: a second ``train`` on the same folder
    fails at once instead of interleaving logs and racing on the checkpoint. The lock dies with the
    process, so a killed run never leaves the folder locked."""
    if fcntl is None:
        yield
        return
    with open(out_dir / LOCK_NAME, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise RunFolderBusy(f"{out_dir} is in use by another training process (pid {holder}): wait for it "
                                "to finish, or train into another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _existing_run(out_dir: Path) -> list[str]:
    """What an earlier run left in ``out_dir`` (those of :data:`RUN_FILES` that exist)."""
    found = []
    for name in RUN_FILES:
        path = out_dir / name
        if path.is_dir():
            count = sum(1 for _ in path.iterdir())
            if count:
                found.append(f"{name}/ ({count} files)")
        elif path.exists():
            found.append(name)
    return found


def _check_resumable(ckpt: dict[str, Any], ckpt_path: Path, recipe: Recipe) -> int:
    """The iteration to resume from, after checking that the checkpoint was trained with ``recipe``'s
    settings (any difference would silently relabel or change the run)."""
    stored = json.loads(json.dumps(recipe_of(ckpt, ckpt_path).to_dict(), default=list))
    wanted = json.loads(json.dumps(recipe.to_dict(), default=list))
    differences = [f"{key} {stored.get(key)!r} (asked: {wanted.get(key)!r})" for key in _RESUME_KEYS
                   if stored.get(key) != wanted.get(key)]
    if differences:
        raise CheckpointError(f"cannot resume {ckpt_path}: it was trained with other settings: "
                              + "; ".join(d[:160] for d in differences)
                              + ". Resume with the same recipe and options, or train into a new --out")
    iteration = int(ckpt["iteration"])
    if iteration > recipe.iters:
        raise ValueError(f"{ckpt_path} is at iteration {iteration}, past --iters {recipe.iters}: pass --iters "
                         f"{iteration} or more to continue it, or train into a new --out")
    return iteration


def resolve_recipe(recipe: str | Recipe, profile: str | None = None, *, iters: int | None = None,
                   seed: int | None = None, batch_size: int | None = None) -> Recipe:
    """The recipe a run actually uses: resolved to the profile in force (a recipe already resolved to
    ``quick`` stays quick), with ``iters``, ``seed`` and ``batch_size`` overridden when given."""
    base = get(recipe)
    resolved = base if base.profile == "quick" else base.resolve(current_profile(profile))
    for name, value in (("iters", iters), ("batch_size", batch_size)):
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    overrides = {k: v for k, v in (("iters", iters), ("seed", seed), ("batch_size", batch_size)) if v is not None}
    return dataclasses.replace(resolved, **overrides) if overrides else resolved


def train(recipe: str | Recipe, out_dir: str | Path, *, profile: str | None = None, iters: int | None = None,
          device: str | torch.device | None = None, data_root: str | Path | None = None, resume: bool = False,
          seed: int | None = None, batch_size: int | None = None, sample_every: int | None = None,
          checkpoint_every: int | None = None, num_samples: int = 8, progress: bool = True, dataset=None,
          eval_dataset=None, command: str | None = None, speed: Speed | None = None,
          overwrite: bool = False) -> dict[str, Any]:
    """Train ``recipe`` and write its outputs in ``out_dir``; returns the metrics written to ``metrics.json``.

    ``profile``: ``quick`` or ``full`` (default: :func:`colorbook.profile.current_profile`). ``iters``,
    ``batch_size`` and ``seed`` override the recipe. ``dataset`` / ``eval_dataset`` replace the recipe's
    data sets (used by tests and notebooks). A folder that already holds a run is continued with
    ``resume=True`` (same recipe and settings, more iterations), replaced with ``overwrite=True`` (its
    checkpoint, log, metrics and sample grids are deleted first), and otherwise refused. ``speed``: the speed switches (:class:`~colorbook.training.speed.Speed`; default
    :meth:`Speed.default_for` the device).
    Outputs: ``checkpoint.pt``, ``log.jsonl``, ``recipe.json``, ``samples/iter_XXXXXX.png`` and
    ``metrics.json``.
    """
    started = time.time()
    recipe = resolve_recipe(recipe, profile, iters=iters, seed=seed, batch_size=batch_size)
    device = default_device(str(device) if device is not None else None)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} is a file, not a folder: choose a folder for the run")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"cannot create the run folder {out_dir} ({error.strerror}): choose another --out") from None
    with _run_folder_lock(out_dir):
        return _train_locked(recipe, out_dir, started=started, device=device, data_root=data_root, resume=resume,
                             sample_every=sample_every, checkpoint_every=checkpoint_every,
                             num_samples=num_samples, progress=progress, dataset=dataset,
                             eval_dataset=eval_dataset, command=command,
                             speed=speed or Speed.default_for(device), overwrite=overwrite)


def _train_locked(recipe: Recipe, out_dir: Path, *, started: float, device: torch.device, data_root, resume: bool,
                  sample_every, checkpoint_every, num_samples: int, progress: bool, dataset, eval_dataset,
                  command: str | None, speed: Speed, overwrite: bool) -> dict[str, Any]:
    ckpt_path = out_dir / CHECKPOINT_NAME
    for stale in out_dir.glob(f"{CHECKPOINT_NAME}*.tmp"):  # left by a run killed while saving (we hold the lock)
        stale.unlink()
    existing = _existing_run(out_dir)
    if existing and not resume:
        if not overwrite:
            raise ValueError(f"{out_dir} already holds a training run ({', '.join(existing)}): pass --resume to "
                             "continue it, --overwrite to replace it, or choose another --out")
        for name in RUN_FILES:
            path = out_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    if resume and ckpt_path.exists():
        # Decided before any data or model is built (the tensors are only mapped, not read): the checkpoint
        # must be of this recipe and settings. Keep a finished run's own record (its wall time and
        # s/iteration): rewriting it would replace the training time with that of this no-op call.
        iteration = _check_resumable(load_checkpoint(ckpt_path, mmap=True), ckpt_path, recipe)
        finished = _finished_run_record(out_dir, recipe.iters, iteration)
        if finished is not None:
            print(f"{ckpt_path} finished at iteration {finished['iterations']} (asked for {recipe.iters}): "
                  "nothing to do, keeping its metrics.json (pass a larger --iters to train further)")
            return finished

    _seed_everything(recipe.seed)
    if dataset is None:
        dataset = make_dataset(recipe.dataset, "train", data_root=data_root, image_size=recipe.image_size,
                               profile=recipe.profile, seed=recipe.seed)
    if eval_dataset is None:
        eval_dataset = make_dataset(recipe.dataset, "test", data_root=data_root, image_size=recipe.image_size,
                                    profile=recipe.profile, seed=recipe.seed)
    stream = BatchStream(dataset, recipe.batch_size, device, seed=recipe.seed)
    parts: Components = get_family(recipe.family)(recipe, device, stream.steps_per_epoch)
    G, D = parts.generator, parts.critic
    space = G.color_space
    objective_rng = torch.Generator(device=device).manual_seed(recipe.seed + 1)

    ema_rampup = float(recipe.options.get("g_ema", 0.0) or 0.0)
    if ema_rampup < 0:
        raise ValueError(f"recipe {recipe.name}: options.g_ema must be 0 (off) or a positive fraction, got {ema_rampup}")
    average = GeneratorAverage(G, ema_rampup) if ema_rampup > 0 else None

    start = 0
    if resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        start = int(ckpt["iteration"])
        try:
            G.load_state_dict(ckpt["generator"])
            if average is not None:
                average.load_state_dict(ckpt["generator_ema"])
            parts.opt_g.load_state_dict(ckpt["opt_g"])
            if D is not None:
                D.load_state_dict(ckpt["critic"])
                parts.opt_d.load_state_dict(ckpt["opt_d"])
            for scheduler, state in zip(parts.schedulers, ckpt.get("schedulers", [])):
                scheduler.load_state_dict(state)
            set_rng_state(ckpt["rng"], objective_rng)
        except (KeyError, RuntimeError, ValueError, TypeError) as error:
            raise CheckpointError(f"cannot resume {ckpt_path}: its states do not fit this run "
                                  f"({str(error).splitlines()[0][:200]})") from None
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
    log_every = speed.log_every
    command = command if command is not None else f"colorbook.training.loop.train({recipe.name!r}, profile={recipe.profile!r})"
    run_provenance = provenance(device, command)  # taken at the start: the commit that actually ran

    def write_checkpoint(iteration: int) -> None:
        save_checkpoint({
            "recipe": recipe.to_dict(), "profile": recipe.profile, "iteration": iteration,
            "generator": G.state_dict(),
            "generator_ema": average.state_dict() if average is not None else None, "critic": D.state_dict() if D is not None else None,
            "opt_g": parts.opt_g.state_dict(), "opt_d": parts.opt_d.state_dict() if parts.opt_d else None,
            "schedulers": [s.state_dict() for s in parts.schedulers], "rng": rng_state(objective_rng),
            "provenance": run_provenance,
        }, ckpt_path)

    def write_metrics(status: str, iteration: int, run_seconds: float) -> dict[str, Any]:
        trained = iteration - start
        metrics = {
            "recipe": recipe.name, "profile": recipe.profile, "status": status, "iterations": iteration,
            "iterations_this_run": trained, "batch_size": recipe.batch_size, "image_size": recipe.image_size,
            "dataset": recipe.dataset, "dataset_size": len(dataset), "seed": recipe.seed,
            "epochs": iteration / stream.steps_per_epoch,
            "seconds_per_iteration": run_seconds / trained if trained > 0 else None,
            "final_losses_mean_last_50": {k: _mean_recent(history, k) for k in sorted({k for r in history[-50:] for k in r})
                                          if k != "iteration"},
            "paper": dict(recipe.paper),
            "speed": speed.to_dict(),
            "provenance": {**run_provenance, "wall_time_s": round(time.time() - started, 2)},
        }
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
        return metrics

    pending: list[tuple[int, float, Logs]] = []

    def flush_logs(log_file) -> None:
        """Read the pending iterations' logs in one sync, check them, write them."""
        rows = read_logs(pending)
        pending.clear()
        for row in rows:
            bad = [k for k, v in row.items() if not math.isfinite(v)]
            if bad:
                raise TrainingDiverged(f"iteration {row['iteration']}: non-finite {', '.join(bad)}")
            history.append(row)
            log_file.write(json.dumps(row) + "\n")

    accelerate(parts, speed)  # after the checkpoint's states were loaded
    if average is not None:
        average.module.to(memory_format=torch.channels_last if speed.channels_last else torch.contiguous_format)
        parts.generator_average = average
    shown = average.module if average is not None else G  # what is sampled, evaluated and used to colorize
    G.train()
    if D is not None:
        D.train()
    loop_started = time.time()
    iteration = start
    good_iteration = start  # last iteration whose logs were read and found finite
    bar = tqdm(total=recipe.iters, initial=start, desc=f"train {recipe.name} ({recipe.profile})",
               disable=not progress, dynamic_ncols=True)
    batches = stream.batches(start)
    try:
        with open(log_path, "a") as log_file:
            for iteration in range(start, recipe.iters):
                state = TrainState(iteration, recipe.iters, stream.steps_per_epoch, objective_rng)
                images, _ = next(batches)
                real, gray = prepare_batch(images, dataset.color_space, space)
                if speed.channels_last:
                    real, gray = (x.contiguous(memory_format=torch.channels_last) for x in (real, gray))
                pending.append((iteration, state.epoch, train_step(parts, real, gray, state, speed.autocast_dtype)))
                done = iteration + 1
                sample_due = done % sample_every == 0 or done == recipe.iters
                checkpoint_due = done % checkpoint_every == 0 or done == recipe.iters
                if done % log_every == 0 or sample_due or checkpoint_due:
                    flush_logs(log_file)
                    good_iteration = done
                    row = history[-1]
                    bar.set_postfix({k: f"{row[k]:.3g}" for k in ("d_loss", "g_loss", "recon") if k in row},
                                    refresh=False)
                if sample_due:
                    sample_grid(shown, examples, out_dir / "samples" / f"iter_{done:06d}.png")
                if checkpoint_due:
                    if not (all_finite(G) and all_finite(D) and all_finite(shown)):
                        raise TrainingDiverged(f"iteration {iteration}: a weight became NaN/Inf")
                    log_file.flush()
                    write_checkpoint(done)
                bar.update(1)
        iteration = recipe.iters
    except TrainingDiverged as error:
        bar.close()
        write_metrics("diverged", good_iteration, time.time() - loop_started)
        raise TrainingDiverged(f"{error}. Training stopped; the last good checkpoint is kept at {ckpt_path} "
                               "(lower the learning rate or enable instance noise / R1).") from None
    bar.close()
    return write_metrics("completed", iteration, time.time() - loop_started)
