"""Colorize image files of any size and mode with a trained checkpoint; the ``colorize`` command.

Introduced in chapter 13 of the book (book/13-colorize-your-photos). The generator runs on a downscaled copy (longer side
``work_size``); its colour (a*b*) is upsampled bilinearly to the original size and recombined with
the *original, full-resolution* L channel, so no detail of the input is lost: only the colour
channels are at the model's resolution (colour is smooth; the eye reads detail from L).

Memory. Everything at full resolution is done in tiles of whole rows (about 262,000 pixels each):
the L channel is computed tile by tile, and the small a*b* map is upsampled and turned into RGB
tile by tile. What grows with the picture is the decoded file (3-4 bytes per pixel), its L channel
(float32, 4) and the 8-bit result (3-4, and Pillow's copy of it while saving): measured 13 bytes per
pixel instead of the 138 of converting the whole picture at once (a 6000x4000 JPEG on the CPU: the
peak grew by 0.32 GB instead of 3.3 GB; 1.1 GB instead of 4.1 GB in all).

Inputs are read by :func:`colorbook.data.images.read_image_file`: anything Pillow opens, in any
mode (gray ``1``/``L``/``I;16``/``I``/``F``, ``RGB``, ``RGBA``, ``LA``, palette, ``CMYK``), EXIF
orientation applied, the first frame of an animation (with a note); 16-bit images are read at full
precision. A colour input is converted to gray first (its colour is discarded). Alpha is kept.
Output: 8-bit PNG (RGBA when the input had alpha).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from colorbook import color
from colorbook.data.images import (
    IMAGE_EXTENSIONS,
    DecodedImage,
    image_files_in,
    read_image_file,
)
from colorbook.profile import default_device
from colorbook.training.checkpoint import load_generator

__all__ = ["read_image", "colorize_array", "colorize_files", "output_paths"]

# Pixels per tile of the full-resolution work: a few tens of MB of temporaries, whatever the picture.
_TILE_PIXELS = 1 << 18


def read_image(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read any image file as ``(rgb float32 (H, W, 3) in [0, 1], alpha float32 (H, W) in [0, 1] or None)``.

    :func:`colorbook.data.images.read_image_file` does the reading (EXIF orientation, first frame,
    every mode). Gray images are repeated over three channels; 16-bit images are scaled by 65535.
    The colour under transparent pixels is returned as stored (not composited).
    Raises ``FileNotFoundError`` or ``ValueError`` with one line naming the file.
    """
    image = read_image_file(path).image
    values = np.asarray(image, dtype=np.float32)
    if image.mode != "F":
        values = values / 255.0
    if image.mode in ("L", "F"):
        return np.repeat(values[..., None], 3, axis=2), None
    if image.mode == "LA":
        return np.repeat(values[..., :1], 3, axis=2), values[..., 1]
    if image.mode == "RGBA":
        return values[..., :3], values[..., 3]
    return values, None


# =============================================================================
# The full-resolution work, in tiles of rows
# =============================================================================
def _rows_per_tile(width: int) -> int:
    return max(1, _TILE_PIXELS // max(1, width))


def _lightness_of_rows(pixels: np.ndarray, device: torch.device) -> torch.Tensor:
    """``(rows, W)``, ``(rows, W, 1)`` or ``(rows, W, 3)`` float in ``[0, 1]`` -> normalised L
    ``(rows, W)`` float32 of its gray version (the luma of RGB; what a gray pixel's L is)."""
    # np.require copies read-only arrays (Pillow's), which torch cannot wrap safely
    x = torch.from_numpy(np.require(pixels, np.float32, ["C", "W"])).to(device)
    if x.ndim == 3 and x.shape[2] == 3:
        gray = color.rgb_to_gray(x.permute(2, 0, 1)[None])
    else:
        gray = x.reshape(1, 1, x.shape[0], x.shape[1])
    return color.rgb_to_lab_norm(gray.expand(-1, 3, -1, -1))[0, 0]


def _lightness(
    read_rows: Callable[[int, int], np.ndarray],
    height: int,
    width: int,
    device: torch.device,
) -> torch.Tensor:
    """Normalised L ``(H, W)`` float32 on the CPU, computed tile by tile from ``read_rows(top, bottom)``."""
    lightness = torch.empty((height, width), dtype=torch.float32)
    step = _rows_per_tile(width)
    for top in range(0, height, step):
        bottom = min(height, top + step)
        lightness[top:bottom] = _lightness_of_rows(read_rows(top, bottom), device).cpu()
    return lightness


def _image_rows(image: Image.Image) -> Callable[[int, int], np.ndarray]:
    """Rows of a decoded image (:data:`colorbook.data.images.DECODED_MODES`) as float in ``[0, 1]``,
    without its alpha channel."""

    def read_rows(top: int, bottom: int) -> np.ndarray:
        tile = np.asarray(image.crop((0, top, image.width, bottom)), dtype=np.float32)
        if image.mode in ("LA", "RGBA"):
            tile = tile[..., :-1]
        return tile if image.mode == "F" else tile / 255.0

    return read_rows


@torch.no_grad()
def _predict_ab(
    generator: torch.nn.Module,
    lightness: torch.Tensor,
    work_size: int,
    device: torch.device,
) -> torch.Tensor:
    """The generator's a*b* ``(1, 2, h, w)`` (normalised Lab, on ``device``) for a picture whose
    L is ``lightness`` ``(H, W)``; it sees the picture with its longer side ``work_size`` (never upscaled)."""
    height, width = lightness.shape
    scale = min(1.0, work_size / max(height, width))
    small_size = (max(1, round(height * scale)), max(1, round(width * scale)))
    full = lightness.to(device)[None, None]
    small_l = (
        F.interpolate(
            full, size=small_size, mode="bilinear", align_corners=False, antialias=True
        )
        if scale < 1
        else full
    )
    # a gray picture's a*, b*: neutral (only the L of the model's input matters)
    neutral = color.rgb_to_lab_norm(torch.full((1, 3, 1, 1), 0.5, device=device))[:, 1:]
    small_lab = torch.cat([small_l, neutral.expand(-1, -1, *small_size)], dim=1)
    space = generator.color_space
    gray = color.gray_of(color.convert(small_lab, "lab", space), space)
    # models whose strides need sizes of a multiple (the KTH generators: 32) get a reflect pad, cropped after
    multiple = getattr(generator, "size_multiple", 1)
    pad_h, pad_w = (-gray.shape[-2]) % multiple, (-gray.shape[-1]) % multiple
    if pad_h or pad_w:
        mode = (
            "reflect"
            if pad_h < gray.shape[-2] and pad_w < gray.shape[-1]
            else "replicate"
        )
        gray = F.pad(gray, (0, pad_w, 0, pad_h), mode=mode)
    out = generator(gray)[..., : small_size[0], : small_size[1]]
    return color.convert(out, space, "lab")[:, 1:]


def _bilinear_taps(
    out_size: int, in_size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices ``(low, high)`` and weight of ``high`` for each of ``out_size`` positions:
    ``F.interpolate(mode="bilinear", align_corners=False)`` along one axis, so that a tile of rows
    can be upsampled on its own with the result of upsampling the whole map."""
    position = (torch.arange(out_size, dtype=torch.float64, device=device) + 0.5) * (
        in_size / out_size
    ) - 0.5
    position = position.clamp_(min=0)
    low = position.floor().long().clamp_(max=in_size - 1)
    high = (low + 1).clamp_(max=in_size - 1)
    return low, high, (position - low).float()


@torch.no_grad()
def _render(
    lightness: torch.Tensor,
    small_ab: torch.Tensor,
    out: np.ndarray,
    device: torch.device,
) -> None:
    """Fill ``out[..., :3]`` (``(H, W, C)``, float32 in ``[0, 1]`` or uint8) with the RGB of the
    full-resolution L ``lightness`` ``(H, W)`` and the bilinearly upsampled ``small_ab`` ``(1, 2, h, w)``,
    tile by tile."""
    height, width = lightness.shape
    ab = small_ab[0]
    row_low, row_high, row_weight = _bilinear_taps(height, ab.shape[-2], device)
    col_low, col_high, col_weight = _bilinear_taps(width, ab.shape[-1], device)
    step = _rows_per_tile(width)
    for top in range(0, height, step):
        bottom = min(height, top + step)
        rows = torch.lerp(
            ab[:, row_low[top:bottom]],
            ab[:, row_high[top:bottom]],
            row_weight[top:bottom, None],
        )
        tile_ab = torch.lerp(rows[:, :, col_low], rows[:, :, col_high], col_weight)
        lab = torch.cat([lightness[top:bottom].to(device)[None], tile_ab], dim=0)[None]
        rgb = color.lab_norm_to_rgb(lab)[0].permute(1, 2, 0).cpu().numpy()
        if out.dtype == np.uint8:
            rgb = np.clip(np.round(rgb * 255.0), 0, 255)
        out[top:bottom, :, :3] = rgb


def _check_work_size(work_size: int) -> None:
    if int(work_size) != work_size or work_size < 1:
        raise ValueError(
            f"--work-size must be a positive number of pixels (the longer side the model sees), "
            f"got {work_size}"
        )


@torch.no_grad()
def colorize_array(
    generator: torch.nn.Module,
    rgb: np.ndarray,
    work_size: int = 256,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Colorize one image ``(H, W, 3)`` (or gray ``(H, W)``) float in ``[0, 1]`` (its
    colour is ignored); returns ``(H, W, 3)`` float32 RGB in ``[0, 1]``.

    The generator sees the image resized so its longer side is ``work_size`` (never
    upscaled); its a*b* is upsampled to full resolution and joined to the
    full-resolution L, in tiles of rows.
    """
    _check_work_size(work_size)
    device = torch.device(device)
    rgb = np.asarray(rgb)
    height, width = rgb.shape[:2]
    lightness = _lightness(lambda top, bottom: rgb[top:bottom], height, width, device)
    small_ab = _predict_ab(generator, lightness, work_size, device)
    result = np.empty((height, width, 3), dtype=np.float32)
    _render(lightness, small_ab, result, device)
    return result


def _colorize_decoded(
    generator: torch.nn.Module,
    decoded: DecodedImage,
    work_size: int,
    device: torch.device,
) -> np.ndarray:
    """A decoded file -> 8-bit ``(H, W, 3)`` RGB, or ``(H, W, 4)`` RGBA with the file's alpha."""
    image = decoded.image
    lightness = _lightness(_image_rows(image), image.height, image.width, device)
    pixels = np.empty(
        (image.height, image.width, 4 if decoded.has_alpha else 3), dtype=np.uint8
    )
    if decoded.has_alpha:
        pixels[..., 3] = np.asarray(image.getchannel("A"))
    del (
        image
    )  # the caller drops the decoded file too: only L and alpha are needed from here on
    small_ab = _predict_ab(generator, lightness, work_size, device)
    _render(lightness, small_ab, pixels, device)
    return pixels


def _colorize_file(
    generator: torch.nn.Module,
    source: Path,
    work_size: int,
    device: torch.device,
    on_note: Callable[[str], None],
) -> np.ndarray:
    decoded = read_image_file(source)
    if decoded.note:
        on_note(decoded.note)
    return _colorize_decoded(generator, decoded, work_size, device)


# =============================================================================
# Files: inputs, outputs, the batch
# =============================================================================
def _file_identity(path: Path) -> tuple[int, int] | None:
    """``(device, inode)`` of an existing file (the same for a symlink or hard link), else None."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def _expand_inputs(inputs: Sequence[str | os.PathLike]) -> tuple[list[Path], list[str]]:
    """Input paths -> the files to colorize (a folder stands for the image files directly inside
    it) and one failure line per folder without images. A file given twice is colorized once."""
    sources: list[Path] = []
    failures: list[str] = []
    seen: set[tuple[int, int] | Path] = set()
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = image_files_in(path)
            if not files:
                failures.append(
                    f"{path}: a folder without image files directly inside it "
                    f"(endings {', '.join(IMAGE_EXTENSIONS)})"
                )
        else:
            files = [
                path
            ]  # a missing file is reported with the other failures at the end
        for file in files:
            key = _file_identity(file) or file.absolute()
            if key not in seen:
                seen.add(key)
                sources.append(file)
    return sources, failures


def output_paths(
    sources: Sequence[str | os.PathLike], out_dir: str | os.PathLike
) -> list[Path]:
    """One distinct output path in ``out_dir`` for each of ``sources``; none of them is an input.

    ``<stem>_color.png``; inputs that share a stem (``same.png``, ``same.jpg``) get their ending in
    the name (``same_png_color.png``, ``same_jpg_color.png``); a name that is still taken (by
    another output, compared case-insensitively, or by an input file, e.g. ``pic_color.png``
    given beside ``pic.png`` with ``--out`` their folder) gets ``_2``, ``_3``, ...
    """
    out_dir = Path(out_dir)
    sources = [Path(s) for s in sources]
    inputs = {
        identity for identity in map(_file_identity, sources) if identity is not None
    }
    stems = Counter(s.stem for s in sources)
    taken: set[str] = set()
    targets = []
    for source in sources:
        base = (
            f"{source.stem}_color"
            if stems[source.stem] == 1
            else f"{source.stem}_{source.suffix.lstrip('.').lower() or 'noext'}_color"
        )
        target, number = out_dir / f"{base}.png", 2
        while target.name.casefold() in taken or _file_identity(target) in inputs:
            target, number = out_dir / f"{base}_{number}.png", number + 1
        taken.add(target.name.casefold())
        targets.append(target)
    return targets


def _check_out_dir(out_dir: Path) -> None:
    """One clear line, before any work, when ``out_dir`` cannot be the output folder."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(
            f"--out {out_dir} is a file, not a folder: give a folder for the colorized images"
        )
    existing = out_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(
            f"--out {out_dir} cannot be made: {existing} is a file, not a folder"
        )
    try:  # a real write: permissions, read-only file systems and ACLs all show up here
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise ValueError(
            f"--out {out_dir}: cannot write in {existing} ({error.strerror or error}); "
            "choose a folder you can write to"
        ) from None


def _failure_line(source: Path, error: BaseException) -> str:
    text = str(error) or type(error).__name__
    if isinstance(error, (MemoryError, torch.OutOfMemoryError)):
        text = f"out of memory ({text}); try a smaller --work-size or --device cpu"
    return text if text.startswith(str(source)) else f"{source}: {text}"


def _warn_note(note: str) -> None:
    warnings.warn(note, UserWarning, stacklevel=3)


def colorize_files(
    checkpoint: str | Path,
    inputs: Sequence[str | os.PathLike],
    out_dir: str | Path,
    work_size: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    overwrite: bool = False,
    on_note: Callable[[str], None] | None = None,
) -> list[Path]:
    """Colorize every file in ``inputs`` into ``out_dir`` (names: :func:`output_paths`); returns
    the written paths.

    ``inputs``: image files, or folders standing for the image files directly inside them.
    ``work_size``: the longer side the model sees (default ``max(2 x training size, 256)``).
    ``device``: through :func:`colorbook.profile.default_device` (default: CUDA when available).
    Checked before any work, each with one clear ``ValueError`` line: ``work_size`` >= 1,
    ``out_dir`` a folder that can be written (made when missing), and -- unless ``overwrite`` --
    no output file already there. Inputs are never overwritten. A file that cannot be read or
    colorized (damaged, a decompression bomb, missing, out of memory) does not stop the batch:
    the others are written, then one ``ValueError`` lists every failure. ``on_note`` receives
    one line per note (the first frame of an animation was used); default: a ``UserWarning``.
    """
    if work_size is not None:
        _check_work_size(work_size)
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)
    device = default_device(None if device is None else str(device))
    sources, failures = _expand_inputs(inputs)
    total = len(sources) + len(failures)
    generator, recipe = load_generator(checkpoint, device)
    work_size = work_size or max(2 * recipe.image_size, 256)
    targets = output_paths(sources, out_dir)
    if not overwrite:
        existing = [t for t in targets if t.exists()]
        if existing:
            shown = ", ".join(t.name for t in existing[:3]) + (
                f" and {len(existing) - 3} more" if len(existing) > 3 else ""
            )
            raise ValueError(
                f"{len(existing)} output file(s) already exist in {out_dir} ({shown}): pass "
                "--overwrite (overwrite=True) to replace them, or choose another --out"
            )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(
            f"--out {out_dir} cannot be made ({error.strerror or error})"
        ) from None
    on_note = on_note or _warn_note
    written: list[Path] = []
    for source, target in tqdm(
        list(zip(sources, targets)), desc="colorize", disable=not progress
    ):
        try:
            pixels = _colorize_file(generator, source, work_size, device, on_note)
            Image.fromarray(pixels).save(target, format="PNG")
        except (ValueError, OSError, MemoryError, torch.OutOfMemoryError) as error:
            failures.append(_failure_line(source, error))
            continue
        written.append(target)
    if failures:
        raise ValueError(
            f"{len(failures)} of {total} inputs could not be colorized "
            f"({len(written)} written to {out_dir}):\n  " + "\n  ".join(failures)
        )
    return written


def _run_colorize(args: argparse.Namespace) -> int:
    written = colorize_files(
        args.checkpoint,
        args.inputs,
        args.out,
        work_size=args.work_size,
        device=args.device,
        overwrite=args.overwrite,
        on_note=lambda note: tqdm.write(f"note: {note}", file=sys.stderr),
    )  # clear of the bar
    for path in written:
        print(path)
    return 0


def add_colorize_subcommand(subparsers) -> argparse.ArgumentParser:
    """Add ``colorize`` to an argparse subparsers object; the handler is in ``func``."""
    p = subparsers.add_parser(
        "colorize", help="colorize image files with a trained checkpoint"
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        help="checkpoint.pt written by `train` (or its directory)",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        help="image files (gray, RGB, RGBA or 16-bit, any size) or folders of them (not recursive)",
    )
    p.add_argument(
        "--out",
        required=True,
        help="output folder for <name>_color.png (never overwrites an input; see --overwrite)",
    )
    p.add_argument(
        "--work-size",
        type=int,
        help="longer side the model sees (default: max(2 x training size, 256))",
    )
    p.add_argument(
        "--device", help="cpu, cuda or cuda:N (default: cuda if available, else cpu)"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace output files that already exist in --out (inputs are never replaced)",
    )
    p.set_defaults(func=_run_colorize)
    return p
