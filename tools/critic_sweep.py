"""The critic sweep of the "critic that learns" work: train DTU variants that differ only in the critic
(normalisation, initialisation, unit input gradient, R1 weight, regularisation interval) and record, for
each, the held-back metrics, the critic's input-gradient norm at initialisation and after training, the
penalty/adversarial ratio during training, and (optionally) whether a fresh critic can tell the trained
generator's colours from real ones (``probe-critic``).

    python tools/critic_sweep.py --profile quick --variants K,paper,group-unit --seeds 0,1

Each variant is a set of recipe options applied to a base recipe (``--base``, default H); the variant
``K`` (no critic) is the reference every other must beat: list it in ``--variants``. ``--set
OPTION=VALUE`` changes an option for every variant, K included (e.g. ``--set depth=3``), and
``--iters``, ``--lr``, ``--batch-size`` the recipe's training settings. Records go to
``<out>/<profile>/<variant>-s<seed>.json`` (``--out`` default ``results/critic-sweep``) with
provenance, beside each a sample grid of 20 held-back test images (``.png``) and every 5th row of its
training log (``.log.jsonl``); ``summary.md`` tabulates the folder. A record is never replaced
unless ``--overwrite``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from colorbook.data import make_dataset  # noqa: E402
from colorbook.evaluate import evaluate_checkpoint, probe_critic  # noqa: E402
from colorbook.provenance import provenance  # noqa: E402
from colorbook.recipes import get, get_family  # noqa: E402
from colorbook.training.checkpoint import load_checkpoint, load_generator  # noqa: E402
from colorbook.training.loop import sample_grid, train, write_log_excerpt  # noqa: E402
from colorbook.training.stream import fixed_examples  # noqa: E402

# Each variant names every critic option it depends on (norm, init, unit gradient, R1 weight), so that it
# means the same thing whatever the base recipe's defaults are (the recipes' own critic is GroupNorm,
# unit gradient, and on MNIST R1 gamma 0.1). R1 gamma 10 is the paper's for H and Q.
_PAPER = {"critic_norm": "batch", "critic_init": "dcgan", "critic_unit_gradient": False}
_GROUP_UNIT = {"critic_norm": "group", "critic_init": "dcgan", "critic_unit_gradient": True}
VARIANTS = {
    "K": {},  # reconstruction only: the reference every variant must beat
    "paper": {**_PAPER, "r1_gamma": 10.0},
    "paper-no-r1": {**_PAPER, "r1_gamma": 0.0},
    "batch-unit": {**_PAPER, "critic_unit_gradient": True, "r1_gamma": 10.0},
    "group": {**_GROUP_UNIT, "critic_unit_gradient": False, "r1_gamma": 10.0},
    "group-unit": {**_GROUP_UNIT, "r1_gamma": 10.0},
    "group-unit-lazy16": {**_GROUP_UNIT, "r1_gamma": 10.0, "reg_interval": 16},
    "group-unit-no-r1": {**_GROUP_UNIT, "r1_gamma": 0.0},
    "group-unit-r1-1": {**_GROUP_UNIT, "r1_gamma": 1.0},
    "group-unit-r1-01": {**_GROUP_UNIT, "r1_gamma": 0.1},
    # the recipes' H critic (gamma 0.1) with a larger adversarial share: reconstruction weight 30 or 10
    # instead of the paper's 100
    "group-unit-r1-01-recon30": {**_GROUP_UNIT, "r1_gamma": 0.1, "recon_weight": 30.0},
    "group-unit-r1-01-recon10": {**_GROUP_UNIT, "r1_gamma": 0.1, "recon_weight": 10.0},
    "none-unit": {"critic_norm": "none", "critic_init": "torchvision", "critic_unit_gradient": True,
                  "r1_gamma": 10.0},
}
METRICS = ("hue_accuracy", "chroma_ratio", "colourfulness_ratio", "classifier_frechet_distance")


def input_gradient_norm(critic: torch.nn.Module, size: int, device: torch.device) -> float:
    """Mean |grad_x D(x)| over 16 uniform random images (training mode, as the penalties see it)."""
    images = torch.rand(16, 3, size, size, generator=torch.Generator().manual_seed(123)).to(device)
    images.requires_grad_(True)
    critic.train()
    (grad,) = torch.autograd.grad(critic(images).sum(), images)
    return grad.flatten(1).norm(dim=1).mean().item()


def write_figures(run: Path, stem: Path, profile: str, device: torch.device) -> None:
    """Beside a record ``<stem>.json``: ``<stem>.png``, a grid of the same 20 held-back digits for every
    variant (rows gray / this model / truth; the book's gallery stacks the middle rows of several
    records), and ``<stem>.log.jsonl``, every 5th row of the training log (for loss and penalty curves)."""
    generator, recipe = load_generator(run / "checkpoint.pt", device)
    test_set = make_dataset(recipe.dataset, "test", image_size=recipe.image_size, profile=profile)
    sample_grid(generator, fixed_examples(test_set, 20, generator.color_space, device), stem.with_suffix(".png"))
    write_log_excerpt(run, stem.with_suffix(".log.jsonl"))


def run_variant(name: str, options: dict, args, seed: int, out_dir: Path) -> dict:
    base = get("K" if name == "K" else args.base).resolve(args.profile)
    recipe = dataclasses.replace(base.with_options(**{**options, **args.set}), seed=seed,
                                 **({"iters": args.iters} if args.iters else {}),
                                 **({"lr": args.lr} if args.lr else {}),
                                 **({"batch_size": args.batch_size} if args.batch_size else {}))
    device = torch.device(args.device)
    started = time.time()
    run = Path(args.runs) / f"{Path(args.out).name}-{args.profile}-{name}-s{seed}"
    record: dict = {"variant": name, "base": base.name, "options": dict(recipe.options), "seed": seed,
                    "iterations": recipe.iters, "lr": recipe.lr, "batch_size": recipe.batch_size,
                    "profile": args.profile, "provenance": provenance(device, " ".join(["python", *sys.argv]))}
    if base.options.get("adversarial", True) and name != "K":
        torch.manual_seed(seed)
        critic = get_family("dtu")(recipe, device, 1).critic
        record["input_gradient_norm_at_init"] = input_gradient_norm(critic, recipe.image_size, device)
    metrics = train(recipe, run, profile=args.profile, device=device, progress=False, overwrite=True,
                    command=record["provenance"]["command"])
    record["training"] = {"seconds_per_iteration": metrics["seconds_per_iteration"],
                          "final_losses_mean_last_50": metrics["final_losses_mean_last_50"]}
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    penalties = [(r.get("r1", 0.0) + r.get("gp", 0.0), r["d_adv"]) for r in rows if "d_adv" in r and ("r1" in r or "gp" in r)]
    if penalties:
        record["penalty_over_adversarial"] = {
            "first_10": statistics.mean(p / a for p, a in penalties[:10]),
            "last_50": statistics.mean(p / a for p, a in penalties[-50:]),
            "max_penalty": max(p for p, _ in penalties)}
    if "input_gradient_norm_at_init" in record:  # every variant with a critic, penalised or not
        gaps = [r["d_real_logit"] - r["d_fake_logit"] for r in rows if "d_real_logit" in r]
        record["logit_gap_last_50"] = statistics.mean(gaps[-50:])
        ckpt = load_checkpoint(run)
        critic = get_family("dtu")(recipe, device, 1).critic
        critic.load_state_dict(ckpt["critic"])
        record["input_gradient_norm_after_training"] = input_gradient_norm(critic, recipe.image_size, device)
    evaluation = evaluate_checkpoint(run, n=args.n, device=device, progress=False)
    record["metrics"] = {k: evaluation.get(k) for k in (*METRICS, "n")}
    if evaluation["averaged"]:  # the same run's last-step weights: the average's effect, on one trajectory
        last = evaluate_checkpoint(run, n=args.n, device=device, progress=False, averaged=False)
        record["metrics_last_step"] = {k: last.get(k) for k in (*METRICS, "n")}
    write_figures(run, out_dir / f"{name}-s{seed}", args.profile, device)
    if args.probe_steps and name != "K":
        probe = probe_critic(run, r1_gammas=(options.get("r1_gamma", recipe.options.get("r1_gamma", 10.0)),),
                             steps=args.probe_steps, n_eval=256, device=device, progress=False)
        (only,) = probe["runs"].values()
        record["probe"] = {"r1_gamma": only["r1_gamma"], "logit_gap_last_20": only["logit_gap_last_20"],
                           "eval_accuracy": only["eval_accuracy"], "steps": args.probe_steps}
    record["provenance"]["wall_time_s"] = round(time.time() - started, 1)
    return record


def summary(out_dir: Path) -> str:
    records = [json.loads(p.read_text()) for p in sorted(out_dir.glob("*-s*.json"))]
    lines = ["| variant | seed | iters | hue acc. | chroma ratio | colourfulness ratio | classifier FD | "
             "|grad| init | |grad| trained | penalty/adv (first 10, last 50) | probe acc. | "
             "last step's weights (runs with g_ema): hue acc., chroma ratio, classifier FD |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        m, pen, probe = r["metrics"], r.get("penalty_over_adversarial"), r.get("probe")
        f = lambda v, d=3: "" if v is None else f"{v:.{d}f}"  # noqa: E731
        lines.append(f"| {r['variant']} | {r['seed']} | {r['iterations']} | {f(m['hue_accuracy'])} | {f(m['chroma_ratio'])} | "
                     f"{f(m['colourfulness_ratio'])} | {f(m['classifier_frechet_distance'], 1)} | "
                     f"{f(r.get('input_gradient_norm_at_init'), 2)} | {f(r.get('input_gradient_norm_after_training'), 2)} | "
                     + (f"{pen['first_10']:.3g}, {pen['last_50']:.3g}" if pen else "") + " | "
                     + (f"{probe['eval_accuracy']:.3f}" if probe else "") + " | "
                     + (", ".join([f(last["hue_accuracy"]), f(last["chroma_ratio"]),
                                   f(last["classifier_frechet_distance"], 1)])
                        if (last := r.get("metrics_last_step")) else "") + " |")
    return "\n".join(lines) + "\n"


def _option(text: str) -> tuple[str, object]:
    """``name=value`` with the value read as JSON where it parses (``depth=3``, ``r1_gamma=0.1``)."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected OPTION=VALUE, got {text!r}")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=["quick", "full"], default="quick")
    parser.add_argument("--base", default="H")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--iters", type=int, help="override the recipe's iterations (recorded)")
    parser.add_argument("--lr", type=float, help="override the recipe's learning rate (recorded)")
    parser.add_argument("--batch-size", type=int, help="override the recipe's batch size (recorded)")
    parser.add_argument("--set", type=_option, action="append", default=[], metavar="OPTION=VALUE",
                        help="a recipe option for every variant, K included (recorded), e.g. depth=3")
    parser.add_argument("--n", type=int, help="test images to evaluate on (default: all)")
    parser.add_argument("--probe-steps", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=str(REPO / "results" / "critic-sweep"))
    parser.add_argument("--runs", default=str(REPO / "runs" / "critic-sweep"))
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    args.set = dict(args.set)
    out_dir = Path(args.out) / args.profile
    out_dir.mkdir(parents=True, exist_ok=True)
    for seed in [int(s) for s in args.seeds.split(",")]:
        for name in args.variants.split(","):
            path = out_dir / f"{name}-s{seed}.json"
            if path.exists() and not args.overwrite:
                print(f"{path} exists: skipped (pass --overwrite to replace it)")
                continue
            record = run_variant(name, VARIANTS[name], args, seed, out_dir)
            path.write_text(json.dumps(record, indent=2))
            m = record["metrics"]
            print(f"{name} s{seed}: " + ", ".join(f"{k} {m[k]:.3f}" for k in METRICS if m.get(k) is not None)
                  + f" ({record['provenance']['wall_time_s']} s)", flush=True)
            (out_dir / "summary.md").write_text(summary(out_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
