"""``python -m colorbook bench``: seconds per training step, the plain eager float32 step against the fast
one, for the recipes that span the project (H, K, Q, min-patchgan), timed in the same run.

Introduced in chapter 10 of the book. Each recipe's step runs on a synthetic batch of the recipe's size (no
data loading: this times the step, not the disk) for ``warmup`` untimed and ``iters`` timed iterations,
first with :meth:`Speed.eager` (the baseline), then with the device's fast switches
(:meth:`Speed.default_for`, optionally ``--compile``). The logged losses are read from the device exactly as
the training loop reads them. The record (``--out``) holds per recipe
``{"baseline": {"seconds_per_iteration": ...}, "fast": {...}, "speedup": ...}`` plus provenance, so that
records of different machines compare; ``--trace`` adds the top operators of the fast step (torch
profiler), which says where the time goes.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from colorbook.core import TrainState
from colorbook.evaluate import check_output_file
from colorbook.profile import current_profile, default_device
from colorbook.provenance import command_line, device_name, provenance
from colorbook.recipes import get, get_family
from colorbook.training.loop import read_logs
from colorbook.training.speed import Speed, accelerate
from colorbook.training.step import prepare_batch, train_step

__all__ = ["bench", "bench_recipe", "add_bench_subcommand", "DEFAULT_RECIPES"]

DEFAULT_RECIPES = ("H", "K", "Q", "min-patchgan")
_DATASET_SPACE = {"mnist": "lab", "scenes": "rgb", "cartoons": "rgb"}


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_steps(name: str, profile: str, device: torch.device, speed: Speed, iters: int, warmup: int,
                trace: bool = False) -> dict[str, Any]:
    recipe = get(name).resolve(profile)
    torch.manual_seed(0)
    parts = accelerate(get_family(recipe.family)(recipe, device, 100), speed)
    parts.generator.train()
    if parts.critic is not None:
        parts.critic.train()
    size = recipe.image_size
    images = torch.rand(recipe.batch_size, 3, size, size, device=device,
                        generator=torch.Generator(device).manual_seed(0))  # a batch in [0, 1] of the data's space
    real, gray = prepare_batch(images, _DATASET_SPACE[recipe.dataset], parts.generator.color_space)
    if speed.channels_last:
        real, gray = (x.contiguous(memory_format=torch.channels_last) for x in (real, gray))
    rng = torch.Generator(device).manual_seed(1)

    def run(start: int, count: int) -> None:
        pending = []
        for iteration in range(start, start + count):
            state = TrainState(iteration, recipe.iters, 100, rng)
            pending.append((iteration, 0.0, train_step(parts, real, gray, state, speed.autocast_dtype)))
            if len(pending) >= speed.log_every:
                read_logs(pending)
                pending.clear()
        if pending:
            read_logs(pending)

    started = time.perf_counter()
    run(0, warmup)
    _synchronize(device)
    warmup_seconds = time.perf_counter() - started
    started = time.perf_counter()
    run(warmup, iters)
    _synchronize(device)
    seconds = (time.perf_counter() - started) / iters
    result: dict[str, Any] = {"seconds_per_iteration": seconds, "warmup_seconds": round(warmup_seconds, 3),
                              "speed": speed.to_dict()}
    if trace:
        activities = [torch.profiler.ProfilerActivity.CPU]
        if device.type == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        with torch.profiler.profile(activities=activities) as profiler:
            run(warmup + iters, min(iters, 5))
            _synchronize(device)
        sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        result["top_operators"] = profiler.key_averages().table(sort_by=sort, row_limit=15, max_name_column_width=60)
    return result


def bench_recipe(name: str, *, profile: str, device: torch.device, iters: int = 20, warmup: int = 5,
                 fast: Speed | None = None, trace: bool = False) -> dict[str, Any]:
    """Time ``name``'s step with the eager baseline and with ``fast`` (default: the device's switches)."""
    fast = fast or Speed.default_for(device)
    baseline = _time_steps(name, profile, device, Speed.eager(), iters, warmup)
    quick = _time_steps(name, profile, device, fast, iters, warmup, trace=trace)
    recipe = get(name).resolve(profile)
    return {"baseline": baseline, "fast": quick,
            "speedup": baseline["seconds_per_iteration"] / quick["seconds_per_iteration"],
            "batch_size": recipe.batch_size, "image_size": recipe.image_size, "recipe_iterations": recipe.iters,
            "projected_seconds_for_the_recipe": quick["seconds_per_iteration"] * recipe.iters}


def bench(recipes: list[str], *, profile: str, device: torch.device, iters: int = 20, warmup: int = 5,
          fast: Speed | None = None, trace: bool = False, command: str | None = None,
          progress: bool = True) -> dict[str, Any]:
    """:func:`bench_recipe` for each recipe, with provenance: the JSON of ``results/bench/<device>.json``."""
    if iters < 1 or warmup < 0:
        raise ValueError(f"--iters must be at least 1 and --warmup at least 0, got {iters} and {warmup}")
    started = time.time()
    record: dict[str, Any] = {"profile": profile, "timed_iterations": iters, "warmup_iterations": warmup,
                              "provenance": provenance(device, command), "recipes": {}}
    for name in tqdm(recipes, desc="bench", disable=not progress):
        record["recipes"][get(name).name] = bench_recipe(name, profile=profile, device=device, iters=iters,
                                                         warmup=warmup, fast=fast, trace=trace)
    record["provenance"]["wall_time_s"] = round(time.time() - started, 1)
    return record


def _device_slug(device: torch.device) -> str:
    if device.type == "cpu":
        return "cpu"
    return re.sub(r"[^A-Za-z0-9]+", "-", device_name(device)).strip("-").lower()


def _run(args: argparse.Namespace) -> int:
    device = default_device(args.device)
    fast = Speed.default_for(device)
    if args.compile:
        fast = dataclasses.replace(fast, compile=True)
    names = [n.strip() for n in args.recipes.split(",") if n.strip()]
    for name in names:
        get(name)  # an unknown name fails before any timing
    out = Path(args.out) if args.out else Path("results") / "bench" / f"{_device_slug(device)}.json"
    check_output_file(out, example="cpu.json")  # before minutes of timing whose record would be lost
    if out.exists() and not args.overwrite:
        raise ValueError(f"{out} already holds a bench record: pass --overwrite to replace it, or --out another file")
    record = bench(names, profile=current_profile(args.profile), device=device, iters=args.iters,
                   warmup=args.warmup, fast=fast, trace=args.trace, command=command_line(getattr(args, "argv", None)))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2))
    print(f"{'recipe':<14}{'baseline s/it':>15}{'fast s/it':>12}{'speed-up':>10}")
    for name, row in record["recipes"].items():
        print(f"{name:<14}{row['baseline']['seconds_per_iteration']:>15.4f}{row['fast']['seconds_per_iteration']:>12.4f}"
              f"{row['speedup']:>9.2f}x")
    print(f"wrote {out}")
    return 0


def add_bench_subcommand(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("bench", help="time the training step: eager float32 baseline against the fast "
                                            "step, per recipe (JSON record)")
    p.add_argument("--recipes", default=",".join(DEFAULT_RECIPES), help="comma-separated (default H,K,Q,min-patchgan)")
    p.add_argument("--profile", choices=["quick", "full"],
                   help="recipe sizes: default $COLORBOOK_PROFILE, else full on CUDA, quick on CPU")
    p.add_argument("--iters", type=int, default=20, help="timed iterations per recipe and setting (default 20)")
    p.add_argument("--warmup", type=int, default=5, help="untimed iterations first (default 5; more with --compile)")
    p.add_argument("--compile", action="store_true", help="also torch.compile in the fast setting")
    p.add_argument("--trace", action="store_true", help="record the fast step's top operators (torch profiler)")
    p.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    p.add_argument("--out", help="output JSON (default results/bench/<device>.json)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing record")
    p.set_defaults(func=_run)
    return p
