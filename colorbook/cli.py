"""``python -m colorbook SUBCOMMAND``: recipes, train, colorize, frames, evaluate, probe-critic, reproduce.

Each subcommand has ``--help``. Errors that come from bad input (unknown recipe, missing file,
unreadable image) print one clear line and exit with status 2 instead of a traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import textwrap

from colorbook import bench, colorize, evaluate, frames, reproduce
from colorbook.core import TrainingDiverged
from colorbook.metrics.fid import FIDWeightsMissing
from colorbook.profile import default_device
from colorbook.provenance import command_line
from colorbook.recipes import all_recipes, get
from colorbook.training.loop import train
from colorbook.training.speed import Speed

# commands defined beside the code they run: each module adds its own parser
_COMMAND_MODULES = (colorize.add_colorize_subcommand, frames.add_frames_subcommand, evaluate.add_evaluate_subcommand, evaluate.add_probe_subcommand,
                    reproduce.add_reproduce_subcommand, bench.add_bench_subcommand)


def _cmd_recipes(args: argparse.Namespace) -> int:
    for recipe in all_recipes():
        if args.table and recipe.table != args.table:
            continue
        paper = recipe.paper.get("fid")
        paper_text = f"  (paper FID {paper})" if paper is not None else ""
        print(f"{recipe.name:<14} {recipe.table:<11} {recipe.summary}{paper_text}")
        if args.verbose:
            full, quick = recipe, recipe.resolve("quick")
            print(textwrap.indent(f"full:  {full.iters} iters, batch {full.batch_size}, {full.image_size}px, "
                                  f"options {dict(full.options)}\nquick: {quick.iters} iters, batch {quick.batch_size}, "
                                  f"{quick.image_size}px, overrides {dict(recipe.quick)}\nnotes: {recipe.notes}", "    "))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    device = default_device(args.device)
    speed = Speed.eager() if args.eager else Speed.default_for(device)
    if args.compile:
        speed = dataclasses.replace(speed, compile=True)
    recipe = get(args.recipe)
    if args.reg_interval is not None:
        if args.reg_interval < 1:
            raise ValueError(f"--reg-interval must be at least 1, got {args.reg_interval}")
        recipe = recipe.with_options(reg_interval=args.reg_interval)
    metrics = train(recipe, args.out, profile=args.profile, iters=args.iters, device=device, speed=speed,
                    data_root=args.data_root, resume=args.resume, overwrite=args.overwrite, seed=args.seed, batch_size=args.batch_size,
                    sample_every=args.sample_every, checkpoint_every=args.checkpoint_every,
                    command=command_line(args.argv))
    print(json.dumps({k: metrics[k] for k in ("recipe", "profile", "status", "iterations", "seconds_per_iteration")}))
    print(f"wrote {args.out}/checkpoint.pt, log.jsonl, samples/, metrics.json")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m colorbook",
                                     description="Colorize grayscale images with the GANs of the colorbook course.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")

    p = sub.add_parser("recipes", help="list the training recipes, one line each")
    p.add_argument("--table", help="only this table: dtu-mnist, dtu-scenes or kth")
    p.add_argument("-v", "--verbose", action="store_true", help="also show settings of both profiles and notes")
    p.set_defaults(func=_cmd_recipes)

    p = sub.add_parser("train", help="train a recipe; writes checkpoint, loss log, sample grids, metrics.json")
    p.add_argument("--recipe", required=True, help="recipe name, e.g. H (see `recipes`)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--profile", choices=["quick", "full"],
                   help="quick (CPU-sized) or full (paper settings); default $COLORBOOK_PROFILE, else full on CUDA, quick on CPU")
    p.add_argument("--iters", type=int, help="number of iterations (default: the recipe's, for the profile)")
    p.add_argument("--device", help="cpu or cuda (default: cuda if available)")
    p.add_argument("--data-root", help="data folder (MNIST IDX files, an image folder, Places365 root, cartoon folder)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt exactly where it stopped")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a run already in OUT (its checkpoint, log, metrics and samples are deleted)")
    p.add_argument("--seed", type=int, help="random seed (default: the recipe's, 0)")
    p.add_argument("--batch-size", type=int, help="override the recipe's batch size")
    p.add_argument("--sample-every", type=int, help="write a sample grid every N iterations")
    p.add_argument("--checkpoint-every", type=int, help="write a checkpoint every N iterations")
    p.add_argument("--reg-interval", type=int, metavar="K",
                   help="regularise the critic every K steps with the penalty x K (lazy R1/GP, StyleGAN2); "
                        "default 1, the papers' every-step penalty")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the generator and the critic's plain passes (costs compile time up front)")
    p.add_argument("--eager", action="store_true",
                   help="plain eager float32 step (no bf16 autocast, fused Adam or cuDNN benchmark on CUDA)")
    p.set_defaults(func=_cmd_train)

    for add_command in _COMMAND_MODULES:
        add_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv  # recorded as the command in provenance
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, NotADirectoryError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of our output went away (`recipes -v | head -1`): not an error of ours; keep Python
        # from complaining again when it flushes stdout at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except TrainingDiverged as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    except FIDWeightsMissing as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
