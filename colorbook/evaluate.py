"""Evaluate any checkpoint on the matching data set: ``python -m colorbook evaluate``.

Introduced in chapter 9 of the book (book/09-evaluation). For colorized MNIST it reports hue accuracy (overall and per
digit), chroma ratio and the digit-classifier Fréchet distance (not FID); for every data set PSNR and
SSIM (RGB and a*b*), colourfulness ratio and the a*b* histogram distance; FID (pytorch-fid's
InceptionV3) when asked for and when its weights are on this machine.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from colorbook import color
from colorbook.provenance import provenance

__all__ = ["generate", "evaluate_checkpoint", "evaluate_generator", "add_evaluate_subcommand"]


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
    from colorbook.train import spread_indices
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
    from colorbook.metrics import ImageMetrics, MNISTMetrics

    started = time.time()
    if fid:  # fail at once, before any work, when the Inception weights are missing
        from colorbook.fid import find_inception_weights
        find_inception_weights(fid_weights)
    real, fake, labels = generate(generator, dataset, n, device=device, progress=progress)
    space = generator.color_space
    result: dict[str, Any] = {"dataset": dataset_name, "n": int(real.shape[0]), "image_size": int(real.shape[-1])}
    images = ImageMetrics(space)
    images.update(fake, real)
    result.update(images.compute())
    if dataset_name == "mnist":
        from colorbook.metrics import classifier_frechet_distance
        digits = MNISTMetrics()
        real_lab, fake_lab = color.convert(real, space, "lab"), color.convert(fake, space, "lab")
        digits.update(fake_lab, real_lab, labels)
        result.update(digits.compute())
        result["classifier_frechet_distance"] = classifier_frechet_distance(real_lab, fake_lab)
        result["classifier_frechet_distance_note"] = (
            "Frechet distance in the features of colorbook.metrics.DigitClassifier (trained on colorized MNIST); "
            "not FID, not comparable with the paper's FID")
    if fid:
        from colorbook.fid import compute_fid
        result["fid"] = compute_fid(real, fake, weights=fid_weights, n=None, space=space, real_key=fid_real_key,
                                    device=device, progress=progress)
    result["seconds"] = round(time.time() - started, 2)
    return result


def evaluate_checkpoint(checkpoint: str | Path, *, dataset: str | None = None, data_root: str | None = None,
                        n: int | None = None, fid: bool = False, fid_weights: str | None = None,
                        device: str | torch.device = "cpu", progress: bool = True,
                        command: str | None = None) -> dict[str, Any]:
    """Evaluate a checkpoint of any recipe on the test split of its data set (or ``dataset``)."""
    from colorbook.data import dataset_fingerprint, make_dataset
    from colorbook.train import load_checkpoint, load_generator

    if fid:  # before anything else: a missing weight file must fail at once
        from colorbook.fid import find_inception_weights
        find_inception_weights(fid_weights)
    generator, recipe = load_generator(checkpoint, device)
    name = dataset or recipe.dataset
    if name != recipe.dataset:
        print(f"note: {recipe.name} was trained on {recipe.dataset!r}; evaluating on {name!r}")
    test = make_dataset(name, "test", data_root=data_root, image_size=recipe.image_size, profile=recipe.profile,
                        seed=recipe.seed)
    result = evaluate_generator(generator, test, dataset_name=name, n=n, fid=fid, fid_weights=fid_weights,
                                fid_real_key=dataset_fingerprint(test), device=device, progress=progress)
    ckpt = load_checkpoint(checkpoint)
    result.update({"recipe": recipe.name, "profile": recipe.profile, "iterations": ckpt["iteration"],
                   "checkpoint": str(checkpoint), "dataset_size": len(test),
                   "training_provenance": ckpt.get("provenance"),
                   "provenance": provenance(device, command)})
    return result


def _run(args: argparse.Namespace) -> int:
    import shlex
    import sys
    command = "python -m colorbook " + " ".join(shlex.quote(a) for a in getattr(args, "argv", sys.argv[1:]))
    result = evaluate_checkpoint(args.checkpoint, dataset=args.dataset, data_root=args.data_root, n=args.n,
                                 fid=args.fid, fid_weights=args.fid_weights, device=args.device or "cpu",
                                 command=command)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
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
                                                      "(needs its weights on this machine; see colorbook.fid)")
    p.add_argument("--fid-weights", help="path to pt_inception-2015-12-05-6726825d.pth "
                                         "(default: $COLORBOOK_FID_WEIGHTS, then torch hub's cache)")
    p.add_argument("--device", help="cpu or cuda (default cpu)")
    p.add_argument("--out", required=True, help="output JSON file")
    p.set_defaults(func=_run)
    return p
