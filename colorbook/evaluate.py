"""Evaluate any checkpoint on the matching data set: ``python -m colorbook evaluate``.

Introduced in chapter 9 of the book (book/09-evaluation). For colorized MNIST it reports hue accuracy (overall and per
digit), chroma ratio and the digit-classifier Fréchet distance (not FID); for every data set PSNR and
SSIM (RGB and a*b*), colourfulness ratio and the a*b* histogram distance; FID (pytorch-fid's
InceptionV3) when asked for and when its weights are on this machine.

``python -m colorbook probe-critic`` asks a different question of a trained generator: can a fresh critic,
built as the recipe builds it, learn to tell its colourings from real ones, with and without R1?
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from colorbook import color
from colorbook.core import TrainState
from colorbook.data import dataset_fingerprint, make_dataset
from colorbook.metrics.digits import classifier_frechet_distance
from colorbook.metrics.fid import compute_fid, find_inception_weights
from colorbook.metrics.image import ImageMetrics
from colorbook.metrics.mnist import MNISTMetrics
from colorbook.profile import default_device
from colorbook.provenance import command_line, provenance
from colorbook.recipes import get_family
from colorbook.training.checkpoint import load_checkpoint, load_generator
from colorbook.training.step import critic_phase, prepare_batch
from colorbook.training.stream import BatchStream, spread_indices

__all__ = ["generate", "evaluate_checkpoint", "evaluate_generator", "probe_critic", "check_output_file",
           "add_evaluate_subcommand", "add_probe_subcommand"]

#: The MNIST metrics' digit classifier reads 32x32 colorized MNIST (colorbook.metrics.digits) only.
MNIST_METRICS_SIZE = 32


def _check_n(n: int | None, option: str = "--n") -> None:
    """Refuse a non-positive image count before any work (else it fails only once the data is loaded)."""
    if n is not None and n < 1:
        raise ValueError(f"{option} must be at least 1 (the number of test images to evaluate on), got {n}")


def check_output_file(path: str | Path, option: str = "--out", example: str = "evaluation.json",
                      overwrite: bool = True) -> Path:
    """``path`` as a :class:`Path` if a file can be written there; else one clear :class:`ValueError`.

    Called before an evaluation starts, so that a directory, a path under a file or an unwritable folder
    is reported at once instead of after minutes of work whose result would then be lost. ``example``
    is the file name suggested inside a directory (not ``metrics.json``: a run folder's training record).
    ``overwrite=False`` also refuses an existing file (nothing a user made is replaced unasked).
    """
    out = Path(path).expanduser()
    if out.is_dir():
        raise ValueError(f"{option} {out} is a directory: give a file name such as {out / example}")
    if out.exists() and not overwrite:
        raise ValueError(f"{option} {out} already exists: pass --overwrite to replace it, or choose another file")
    # the nearest folder that exists is where the missing ones (if any) will be created
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{option} {out} cannot be written: {parent} is a file, not a folder; "
                         "choose another output path")
    target = out if out.exists() else parent
    if not os.access(target, os.W_OK) or (target == parent and not os.access(parent, os.X_OK)):
        raise ValueError(f"{option} {out} cannot be written: no write permission for {target}; "
                         "choose another output path")
    return out


def _check_mnist_size(image_size: int, what: str) -> None:
    """The MNIST metrics need 32x32 digits: refuse other sizes before the slow generation, not after."""
    if image_size != MNIST_METRICS_SIZE:
        raise ValueError(f"{what} works on {image_size}x{image_size} images, but the MNIST metrics (digit "
                         f"classifier) need {MNIST_METRICS_SIZE}x{MNIST_METRICS_SIZE} colorized MNIST: evaluate it "
                         "on the data set it was trained on (leave out --dataset)")


@torch.no_grad()
def generate(generator: torch.nn.Module, dataset, n: int | None = None, batch_size: int = 64,
             device: str | torch.device = "cpu", progress: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run ``generator`` over ``n`` items spread evenly over ``dataset`` (all when ``None``).

    Returns ``(real, fake, labels)``: real and fake ``(N, 3, H, W)`` in the generator's colour space
    (on the CPU), labels ``(N,)``.
    """
    device = torch.device(device)
    n = len(dataset) if n is None else min(n, len(dataset))
    if n < 1:
        raise ValueError("the evaluation data set is empty")
    generator.eval()
    space = generator.color_space
    subset = torch.utils.data.Subset(dataset, spread_indices(len(dataset), n))  # test sets may be sorted by class
    loader = torch.utils.data.DataLoader(subset, batch_size=batch_size, shuffle=False)
    reals, fakes, labels = [], [], []
    for images, batch_labels in tqdm(loader, desc="generate", disable=not progress, leave=False):
        real = color.convert(images.to(device), dataset.color_space, space)
        reals.append(real.cpu())
        fakes.append(generator(color.gray_of(real, space)).cpu())
        labels.append(torch.as_tensor(batch_labels))
    return torch.cat(reals), torch.cat(fakes), torch.cat(labels)


def evaluate_generator(generator: torch.nn.Module, dataset, *, dataset_name: str, n: int | None = None,
                       fid: bool = False, fid_weights: str | None = None, fid_real_key: str | None = None,
                       device: str | torch.device = "cpu", progress: bool = True) -> dict[str, Any]:
    """Every metric for ``generator`` on ``dataset`` (see the module docstring); plain floats in a dict."""
    started = time.time()
    _check_n(n, "n")
    if fid:  # fail at once, before any work, when the Inception weights are missing
        find_inception_weights(fid_weights)
    if dataset_name == "mnist" and len(dataset) > 0:  # one item is cheap; the generation below is not
        _check_mnist_size(int(dataset[0][0].shape[-1]), "this data set")
    real, fake, labels = generate(generator, dataset, n, device=device, progress=progress)
    space = generator.color_space
    result: dict[str, Any] = {"dataset": dataset_name, "n": int(real.shape[0]), "image_size": int(real.shape[-1])}
    images = ImageMetrics(space)
    images.update(fake, real)
    result.update(images.compute())
    if dataset_name == "mnist":
        digits = MNISTMetrics()
        real_lab, fake_lab = color.convert(real, space, "lab"), color.convert(fake, space, "lab")
        digits.update(fake_lab, real_lab, labels)
        result.update(digits.compute())
        result["classifier_frechet_distance"] = classifier_frechet_distance(real_lab, fake_lab)
        result["classifier_frechet_distance_note"] = (
            "Frechet distance in the features of colorbook.metrics.DigitClassifier (trained on colorized MNIST); "
            "not FID, not comparable with the paper's FID")
    if fid:
        result["fid"] = compute_fid(real, fake, weights=fid_weights, n=None, space=space, real_key=fid_real_key,
                                    device=device, progress=progress)
    result["seconds"] = round(time.time() - started, 2)
    return result


def evaluate_checkpoint(checkpoint: str | Path, *, dataset: str | None = None, data_root: str | None = None,
                        n: int | None = None, fid: bool = False, fid_weights: str | None = None,
                        device: str | torch.device = "cpu", progress: bool = True,
                        command: str | None = None, averaged: bool = True) -> dict[str, Any]:
    """Evaluate a checkpoint of any recipe on the test split of its data set (or ``dataset``).

    A run with a moving average of the generator's weights (recipe option ``g_ema``) is evaluated with the
    average; ``averaged=False`` evaluates the weights of its last step instead (``"averaged"`` in the
    result says which was used).

    Bad input (``n`` below 1, an unknown or missing ``device``, missing FID weights, a checkpoint whose
    images do not fit the MNIST metrics) fails with one clear error before any images are generated.
    """
    _check_n(n)
    device = default_device(str(device))  # one clear line for "gpu", or cuda without CUDA
    if fid:  # before anything else: a missing weight file must fail at once
        find_inception_weights(fid_weights)
    generator, recipe = load_generator(checkpoint, device, averaged=averaged)
    name = dataset or recipe.dataset
    if name == "mnist":
        _check_mnist_size(recipe.image_size, f"{checkpoint} (recipe {recipe.name}, trained on {recipe.dataset!r})")
    if name != recipe.dataset:
        print(f"note: {recipe.name} was trained on {recipe.dataset!r}; evaluating on {name!r}")
    test = make_dataset(name, "test", data_root=data_root, image_size=recipe.image_size, profile=recipe.profile,
                        seed=recipe.seed)
    result = evaluate_generator(generator, test, dataset_name=name, n=n, fid=fid, fid_weights=fid_weights,
                                fid_real_key=dataset_fingerprint(test), device=device, progress=progress)
    ckpt = load_checkpoint(checkpoint)
    result.update({"recipe": recipe.name, "profile": recipe.profile, "iterations": ckpt["iteration"],
                   "checkpoint": str(checkpoint), "dataset_size": len(test),
                   "averaged": bool(averaged and ckpt.get("generator_ema") is not None),
                   "training_provenance": ckpt.get("provenance"),
                   "provenance": provenance(device, command)})
    return result


def probe_critic(checkpoint: str | Path, *, r1_gammas: Sequence[float] = (0.0, 10.0), steps: int = 150,
                 n_eval: int = 512, device: str | torch.device = "cpu", seed: int = 0, progress: bool = True,
                 command: str | None = None) -> dict[str, Any]:
    """How fast a fresh critic learns to tell a trained generator's colourings from real colours.

    The checkpoint's generator is frozen. For each R1 weight in ``r1_gammas`` a fresh critic, built and
    optimised exactly as the recipe builds them, trained by the training step's own critic phase
    (:func:`colorbook.training.step.critic_phase`) (architecture, normalisation, the paper's N(0, 0.02)
    initialisation, Adam and learning rate), trains for ``steps`` batches of the recipe's size on the
    softplus critic loss plus R1, without instance noise or smoothing (the state of the game once they have
    decayed). It records, per step, the logit gap ``mean D(real) - mean D(fake)`` in training mode and, at
    the end, the critic's accuracy on ``n_eval`` test images and their colourings in eval mode. A critic
    whose gap stays near 0 gives the generator no adversarial signal: its loss term is then a constant.

    Returns a JSON-ready dict: per gamma the gap trajectory, its mean over the last 20 steps, the eval
    accuracy and seconds per step; plus the recipe, iterations and provenance.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    _check_n(n_eval)
    device = default_device(str(device))  # one clear line for "gpu", or cuda without CUDA
    run_provenance, run_started = provenance(device, command), time.time()  # the commit that actually runs
    generator, recipe = load_generator(checkpoint, device)
    generator.requires_grad_(False)
    if recipe.family != "dtu":
        raise ValueError(f"probe-critic probes the DTU critic with R1; recipe {recipe.name} is of the "
                         f"{recipe.family!r} family")
    space = generator.color_space
    train_set = make_dataset(recipe.dataset, "train", image_size=recipe.image_size, profile=recipe.profile,
                             seed=recipe.seed)
    test_set = make_dataset(recipe.dataset, "test", image_size=recipe.image_size, profile=recipe.profile,
                            seed=recipe.seed)
    eval_real, eval_fake, _ = generate(generator, test_set, n=n_eval, device=device, progress=False)
    runs: dict[str, Any] = {}
    for gamma in r1_gammas:
        torch.manual_seed(seed)
        # the critic's own phases of the training step, with the game as it stands once instance noise and
        # smoothing have decayed (K, which has no critic, is probed with the critic its GAN rows use)
        probe_recipe = recipe.with_options(adversarial=True, gp=False, r1_gamma=float(gamma), noise_iters=0,
                                           smoothing=False, reg_interval=1)
        parts = get_family(recipe.family)(probe_recipe, device, 1)
        critic = parts.critic
        critic.train()
        batches = BatchStream(train_set, recipe.batch_size, device, seed=seed).batches(0)
        rng = torch.Generator(device=device).manual_seed(seed + 1)
        gaps, started = [], time.perf_counter()
        for step in tqdm(range(steps), desc=f"probe critic (R1 gamma {gamma:g})", disable=not progress, leave=False):
            images, _ = next(batches)
            real, gray = prepare_batch(images, train_set.color_space, space)
            with torch.no_grad():
                fake = generator(gray)
            logs = critic_phase(parts, real, fake, gray, TrainState(step, steps, 1, rng))
            gaps.append(logs["d_real_logit"] - logs["d_fake_logit"])
        gaps = torch.stack(gaps).tolist()  # one device sync for the whole probe
        seconds = (time.perf_counter() - started) / steps
        critic.eval()
        with torch.no_grad():
            real_scores = torch.cat([critic(b.to(device), color.gray_of(b, space).to(device)).cpu()
                                     for b in eval_real.split(128)])
            fake_scores = torch.cat([critic(b.to(device), color.gray_of(b, space).to(device)).cpu()
                                     for b in eval_fake.split(128)])
        accuracy = 0.5 * ((real_scores > 0).float().mean() + (fake_scores < 0).float().mean()).item()
        runs[f"{gamma:g}"] = {"r1_gamma": gamma, "logit_gap": gaps, "logit_gap_last_20": float(np.mean(gaps[-20:])),
                              "eval_accuracy": accuracy, "eval_real_logit": float(real_scores.mean()),
                              "eval_fake_logit": float(fake_scores.mean()), "seconds_per_step": seconds}
    ckpt = load_checkpoint(checkpoint)
    return {"recipe": recipe.name, "profile": recipe.profile, "iterations": ckpt["iteration"],
            "checkpoint": str(checkpoint), "critic": recipe.options.get("critic", "resnet18"),
            "critic_norm": recipe.options.get("critic_norm", "batch"), "lr": recipe.lr,
            "batch_size": recipe.batch_size, "steps": steps, "n_eval": len(eval_real), "seed": seed,
            "runs": runs, "training_provenance": ckpt.get("provenance"),
            "provenance": {**run_provenance, "wall_time_s": round(time.time() - run_started, 1)}}


def _write_json(result: dict[str, Any], path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    return out


def _run_probe(args: argparse.Namespace) -> int:
    try:
        gammas = [float(g) for g in args.r1_gammas.split(",") if g.strip()]
    except ValueError:
        raise ValueError(f"--r1-gammas must be comma-separated numbers such as 0,1,10, got {args.r1_gammas!r}") from None
    _check_n(args.n)
    check_output_file(args.out, example="critic-probe.json", overwrite=args.overwrite)  # before the probe
    result = probe_critic(args.checkpoint, r1_gammas=gammas, steps=args.steps, n_eval=args.n,
                          device=args.device or "cpu", seed=args.seed, command=command_line(getattr(args, "argv", None)))
    out = _write_json(result, args.out)
    for key, run in result["runs"].items():
        print(f"R1 gamma {key}: logit gap over the last 20 steps {run['logit_gap_last_20']:.3f}, "
              f"eval accuracy {run['eval_accuracy']:.3f}, {run['seconds_per_step']:.2f} s/step")
    print(f"wrote {out}")
    return 0


def add_probe_subcommand(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("probe-critic", help="train fresh critics against a frozen generator: does the "
                                                   "adversarial term give any signal? (JSON)")
    p.add_argument("--checkpoint", required=True, help="checkpoint.pt written by `train`")
    p.add_argument("--r1-gammas", default="0,10", help="comma-separated R1 weights to compare (default 0,10)")
    p.add_argument("--steps", type=int, default=150, help="critic updates per gamma (default 150)")
    p.add_argument("--n", type=int, default=512, help="test images for the final accuracy (default 512)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", help="cpu or cuda (default cpu)")
    p.add_argument("--out", required=True, help="output JSON file")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=_run_probe)
    return p


def _run(args: argparse.Namespace) -> int:
    _check_n(args.n)
    check_output_file(args.out, overwrite=args.overwrite)  # before the evaluation: not lost to a bad --out
    result = evaluate_checkpoint(args.checkpoint, dataset=args.dataset, data_root=args.data_root, n=args.n,
                                 fid=args.fid, fid_weights=args.fid_weights, device=args.device or "cpu",
                                 command=command_line(getattr(args, "argv", None)))
    out = _write_json(result, args.out)
    keys = ["hue_accuracy", "chroma_ratio", "classifier_frechet_distance", "psnr_rgb", "ssim_rgb",
            "colourfulness_ratio", "ab_hist_hellinger"]
    print(json.dumps({k: round(result[k], 4) for k in keys if k in result}))
    if "fid" in result:
        print(f"FID {result['fid']['fid']:.3f} ({result['fid']['implementation']}, {result['fid']['resize']})")
    print(f"wrote {out}")
    return 0


def add_evaluate_subcommand(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("evaluate", help="evaluate a checkpoint: metrics JSON (hue accuracy, chroma ratio, "
                                               "PSNR/SSIM, colourfulness, optional FID)")
    p.add_argument("--checkpoint", required=True, help="checkpoint.pt written by `train` (or its directory)")
    p.add_argument("--dataset", help="mnist, scenes or cartoons (default: the recipe's)")
    p.add_argument("--data-root", help="MNIST IDX folder, image folder, Places365 root or cartoon folder")
    p.add_argument("--n", type=int, help="evaluate on N test images spread evenly over the test set (default: all)")
    p.add_argument("--fid", action="store_true", help="also compute FID with pytorch-fid's InceptionV3 "
                                                      "(needs its weights on this machine; see colorbook.metrics.fid)")
    p.add_argument("--fid-weights", help="path to pt_inception-2015-12-05-6726825d.pth "
                                         "(default: $COLORBOOK_FID_WEIGHTS, then torch hub's cache)")
    p.add_argument("--device", help="cpu or cuda (default cpu)")
    p.add_argument("--out", required=True, help="output JSON file")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=_run)
    return p
