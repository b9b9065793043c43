"""Colorize image files of any size and mode with a trained checkpoint.

Introduced in chapter 13 of the book (book/13-colorize-your-photos). The generator runs on a downscaled copy (longer side
``work_size``); its colour (a*b*) is upsampled bilinearly to the original size and recombined with
the *original, full-resolution* L channel, so no detail of the input is lost: only the colour
channels are at the model's resolution (colour is smooth; the eye reads detail from L).

Accepted inputs: anything Pillow opens: gray (``L``, ``I;16``, ``I``, ``F``), ``RGB``, ``RGBA``,
``LA``, palette images; 16-bit images are read at full precision. A colour input is converted to
gray first (its colour is discarded). Alpha is kept. Output: 8-bit PNG (RGBA when the input had
alpha).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from colorbook import color
from colorbook.training.checkpoint import load_generator

__all__ = ["read_image", "colorize_array", "colorize_files"]


def read_image(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read any image file as ``(rgb float32 (H, W, 3) in [0, 1], alpha float32 (H, W) or None)``.

    Gray images are repeated over three channels; 16-bit images are scaled by 65535.
    Raises ``ValueError`` naming the file if it cannot be read.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                gray = np.asarray(img, dtype=np.float32)
                scale = 65535.0 if mode.startswith("I;16") or gray.max() > 255 else 255.0
                return np.repeat((gray / scale).clip(0, 1)[..., None], 3, axis=2), None
            if mode == "F":
                gray = np.asarray(img, dtype=np.float32)
                gray = gray / 255.0 if gray.max() > 1.0 else gray
                return np.repeat(gray.clip(0, 1)[..., None], 3, axis=2), None
            has_alpha = mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info)
            rgba = np.asarray(img.convert("RGBA" if has_alpha else "RGB"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"{path}: cannot read this file as an image ({error}); "
                         "give a PNG, JPEG, TIFF or another format Pillow reads") from None
    if has_alpha:
        return rgba[..., :3], rgba[..., 3]
    return rgba, None


@torch.no_grad()
def colorize_array(generator: torch.nn.Module, rgb: np.ndarray, work_size: int = 256,
                   device: str | torch.device = "cpu") -> np.ndarray:
    """Colorize one image ``(H, W, 3)`` float in ``[0, 1]`` (its colour is ignored); returns the same shape.

    The generator sees the image resized so its longer side is ``work_size`` (never upscaled).
    """
    device = torch.device(device)
    image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float().to(device)
    lab_full = color.rgb_to_lab_norm(color.rgb_to_gray(image).expand(-1, 3, -1, -1))  # a gray pixel's L
    height, width = image.shape[-2:]
    scale = min(1.0, work_size / max(height, width))
    small_size = (max(1, round(height * scale)), max(1, round(width * scale)))
    small_lab = F.interpolate(lab_full, size=small_size, mode="bilinear", align_corners=False, antialias=True) \
        if scale < 1 else lab_full
    space = generator.color_space
    small_in = color.convert(small_lab, "lab", space)
    gray = color.gray_of(small_in, space)
    # models whose strides need sizes of a multiple (the KTH generators: 32) get a reflect pad, cropped after
    multiple = getattr(generator, "size_multiple", 1)
    pad_h, pad_w = (-gray.shape[-2]) % multiple, (-gray.shape[-1]) % multiple
    if pad_h or pad_w:
        mode = "reflect" if pad_h < gray.shape[-2] and pad_w < gray.shape[-1] else "replicate"
        gray = F.pad(gray, (0, pad_w, 0, pad_h), mode=mode)
    out = generator(gray)[..., :small_size[0], :small_size[1]]
    out = color.convert(out, space, "lab")
    ab = F.interpolate(out[:, 1:], size=(height, width), mode="bilinear", align_corners=False)
    result = color.lab_norm_to_rgb(torch.cat([lab_full[:, :1], ab], dim=1))
    return result[0].permute(1, 2, 0).cpu().numpy()


def colorize_files(checkpoint: str | Path, inputs: list[str | Path], out_dir: str | Path,
                   work_size: int | None = None, device: str | torch.device = "cpu",
                   progress: bool = True) -> list[Path]:
    """Colorize every file in ``inputs`` into ``out_dir/<stem>_color.png``; returns the written paths.

    Unreadable files are reported together at the end (``ValueError`` listing them) after the
    readable ones are written.
    """
    generator, recipe = load_generator(checkpoint, device)
    work_size = work_size or max(2 * recipe.image_size, 256)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written, failures = [], []
    for path in tqdm(inputs, desc="colorize", disable=not progress):
        try:
            rgb, alpha = read_image(path)
        except (ValueError, FileNotFoundError) as error:
            failures.append(str(error))
            continue
        result = colorize_array(generator, rgb, work_size, device)
        pixels = (result * 255).round().clip(0, 255).astype(np.uint8)
        if alpha is not None:
            pixels = np.dstack([pixels, (alpha * 255).round().astype(np.uint8)])
        target = out_dir / f"{Path(path).stem}_color.png"
        Image.fromarray(pixels).save(target)
        written.append(target)
    if failures:
        raise ValueError(f"{len(failures)} of {len(inputs)} inputs could not be read "
                         f"({len(written)} written to {out_dir}):\n  " + "\n  ".join(failures))
    return written


def _run_colorize(args: argparse.Namespace) -> int:
    written = colorize_files(args.checkpoint, args.inputs, args.out, work_size=args.work_size, device=args.device or "cpu")
    for path in written:
        print(path)
    return 0


def add_colorize_subcommand(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("colorize", help="colorize image files with a trained checkpoint")
    p.add_argument("--checkpoint", required=True, help="checkpoint.pt written by `train` (or its directory)")
    p.add_argument("inputs", nargs="+", help="image files: gray, RGB, RGBA or 16-bit, any size")
    p.add_argument("--out", required=True, help="output directory for <name>_color.png")
    p.add_argument("--work-size", type=int, help="longer side the model sees (default: max(2 x training size, 256))")
    p.add_argument("--device", help="cpu or cuda (default cpu)")
    p.set_defaults(func=_run_colorize)
    return p
