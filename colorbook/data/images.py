"""Images from files: one reader, one list of image file endings, one split rule, and the file
and folder data sets.

* :func:`read_image_file` is the one place where colorbook opens an image file (the data sets
  here, :mod:`colorbook.data.cartoons` and :mod:`colorbook.colorize` all use it): EXIF orientation,
  every Pillow mode, decompression bombs, multi-frame files. :func:`to_rgb` turns what it returns
  into 8-bit RGB with transparent pixels over white.
* :data:`IMAGE_EXTENSIONS` are the file endings that count as images everywhere.
* :func:`split_image_files` is the one rule that cuts a folder of images into train/val/test.

Introduced in chapter 2 of the book (book/02-data)."""
from __future__ import annotations

import hashlib
import math
import os
import re
import struct
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import Dataset
from tqdm.auto import tqdm

SPLITS = ("train", "val", "test")


class DataWarning(UserWarning):
    """Files were skipped or a fallback was used while building a data set."""


# =============================================================================
# Reading one image file
# =============================================================================
#: File name endings of image files, for every folder colorbook reads (compared case-insensitively).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
#: Modes of the images :func:`read_image_file` returns.
DECODED_MODES = ("L", "LA", "RGB", "RGBA", "F")
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N"}
# A decoded image counts as colourless when no pixel's channels differ by more
# than this many 8-bit levels (JPEG rounding of a gray picture stays below it).
_GRAY_SPREAD = 3
_WARN_NAMES = 3


class ImageReadError(ValueError):
    """An image file cannot be used: not an image, damaged, or too large to decode safely.

    ``str(error)`` is one line that names the file; ``error.reason`` is the same without the path.
    """

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


@dataclass(frozen=True)
class DecodedImage:
    """What :func:`read_image_file` returns.

    ``image``: the first frame, EXIF orientation applied, in one of :data:`DECODED_MODES`:
    ``"L"``, ``"LA"``, ``"RGB"``, ``"RGBA"`` (8 bits per channel; alpha kept as it is, not
    composited) or ``"F"`` (gray as float32 in ``[0, 1]``, for 16-bit, 32-bit and float files,
    which keeps their precision). ``source_mode``: the mode in the file. ``full_size``:
    ``(width, height)`` stored in the file, before EXIF rotation and before a JPEG draft reduction.
    ``frames``: number of frames in the file. ``note``: one line for the user, or None.
    """

    image: Image.Image
    path: Path
    source_mode: str
    full_size: tuple[int, int]
    frames: int = 1
    note: str | None = None

    @property
    def has_alpha(self) -> bool:
        return self.image.mode in ("LA", "RGBA")


def _bomb_message(error: Exception) -> str:
    """One line for an image larger than Pillow's decompression-bomb limit (``error`` is Pillow's)."""
    limit = Image.MAX_IMAGE_PIXELS or 0
    found = re.search(r"\((\d+) pixels\)", str(error))  # Pillow names the size only in its message
    size = f"{int(found.group(1)):,} pixels ({int(found.group(1)) / 1e6:.0f} megapixels)" if found else "too many pixels"
    return (f"image of {size} refused: more than Pillow's limit of {limit:,} pixels "
            f"(PIL.Image.MAX_IMAGE_PIXELS) against decompression bombs; shrink it or split it into tiles first")


def _decoded_mode(image: Image.Image) -> Image.Image:
    """Any Pillow image -> the same picture in one of :data:`DECODED_MODES` (see :class:`DecodedImage`).

    16-bit modes (``I;16*``) are divided by 65535. ``I`` (32-bit integers) is divided by 65535 when
    a value exceeds 255, else by 255 (files that store 8-bit data in 32 bits); ``F`` is divided by
    255 when a value exceeds 1. Transparency of these high-depth modes is dropped (Pillow keeps no
    alpha channel for them). Palette, 1-bit, CMYK, YCbCr and other modes become RGB, or RGBA/LA
    when they carry transparency (a palette entry, a ``tRNS`` colour, or an alpha channel).
    """
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float32)
        if mode == "F":
            values = np.nan_to_num(values, nan=0.0, posinf=1.0, neginf=0.0)
        peak = float(values.max()) if values.size else 0.0
        if mode in _SIXTEEN_BIT_MODES or (mode == "I" and peak > 255):
            values = values / 65535.0
        elif mode == "I" or peak > 1.0:
            values = values / 255.0
        return Image.fromarray(np.clip(values, 0.0, 1.0, out=values), mode="F")
    if mode in ("LA", "RGBA"):
        return image
    if image.has_transparency_data:
        return image.convert("LA" if mode in ("L", "La", "1") else "RGBA")
    if mode in ("L", "RGB"):
        return image
    if mode == "1":
        return image.convert("L")
    return image.convert("RGB")


def read_image_file(path: str | os.PathLike, *, shorter_side: int | None = None) -> DecodedImage:
    """Read an image file the one way colorbook reads images.

    * The first frame of a multi-frame file (animated GIF/WebP/PNG, multi-page TIFF) is used, and
      ``note`` says so. (Not for MPO, the format of many phone JPEGs: its first frame is the photo,
      the others are previews or depth maps.)
    * The EXIF orientation is applied, so that phone photos come out upright.
    * Every Pillow mode is accepted and returned in one of :data:`DECODED_MODES` (see
      :class:`DecodedImage` and :func:`_decoded_mode`).
    * A file larger than Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``,
      89.5 megapixels; Pillow itself only warns up to twice that) is refused before decoding.
    * ``shorter_side``: a JPEG may be decoded by libjpeg at 1/2, 1/4 or 1/8 scale as long as its
      shorter side stays >= ``shorter_side`` (much faster for large photos); other formats ignore it.

    Raises ``FileNotFoundError`` when ``path`` is not a file and :class:`ImageReadError` (a
    ``ValueError``) with one line naming the file for anything else.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    try:
        # Our own file handle: Pillow then leaves the pixels alone when the file is closed.
        with open(path, "rb") as handle:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = Image.open(handle)
            full_size = image.size
            source_mode = image.mode
            frames = int(getattr(image, "n_frames", 1) or 1)
            if shorter_side is not None and image.format == "JPEG" and min(full_size) > 0:
                scale = shorter_side / min(full_size)
                if scale < 1:
                    image.draft(image.mode, (math.ceil(full_size[0] * scale), math.ceil(full_size[1] * scale)))
            image.load()
            ImageOps.exif_transpose(image, in_place=True)
            decoded = _decoded_mode(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageReadError(path, _bomb_message(error)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error) as error:
        # struct.error: Pillow's parsers (EXIF among them) let it through on damaged headers
        raise ImageReadError(path, f"cannot read this file as an image ({error}); give a PNG, JPEG, TIFF "
                                   "or another format Pillow reads") from None
    note = None
    if frames > 1 and image.format != "MPO":
        note = f"{path}: {image.format or 'image'} file with {frames} frames; only the first frame is used"
    return DecodedImage(decoded, path, source_mode, full_size, frames, note)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow image -> 8-bit RGB: transparent pixels are composited over white, float gray
    (``"F"`` in ``[0, 1]``, as :func:`read_image_file` returns) is scaled to 0..255."""
    image = _decoded_mode(image)
    if image.mode == "F":
        levels = np.asarray(image, dtype=np.float32) * 255.0
        return Image.fromarray(np.round(levels).astype(np.uint8), mode="L").convert("RGB")
    if image.mode in ("LA", "RGBA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


# The data sets' earlier name for to_rgb (colorbook.data.photos imports it).
_to_rgb = to_rgb


def _inspect_image(path: Path, min_size: int | None) -> tuple[str, str]:
    """Check one file. Returns ``(verdict, detail)`` with verdict one of
    ``"ok"``, ``"unreadable"``, ``"gray"``, ``"small"``; ``detail`` of an ``"ok"``
    file is its note (several frames) or empty.

    Decodes the whole file (JPEGs at 1/8 scale via ``draft``, which still reads
    every byte of the stream and so catches truncation) -- ``Image.verify``
    alone does not notice a truncated JPEG.
    """
    try:
        decoded = read_image_file(path, shorter_side=1)
    except ImageReadError as error:
        return "unreadable", error.reason
    except FileNotFoundError as error:
        return "unreadable", str(error)
    if decoded.source_mode in _GRAY_MODES:
        return "gray", f"mode {decoded.source_mode}"
    width, height = decoded.full_size
    if min_size is not None and min(width, height) < min_size:
        return "small", f"{width}x{height} < min_size {min_size}"
    pixels = np.asarray(to_rgb(decoded.image), dtype=np.int16)
    if pixels.size == 0:
        return "unreadable", "empty image"
    spread = int((pixels.max(axis=2) - pixels.min(axis=2)).max())
    if spread <= _GRAY_SPREAD:
        return "gray", f"{decoded.source_mode} without colour (channel spread {spread})"
    return "ok", decoded.note or ""


def _pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> (3, H, W) uint8 tensor (torchvision would add ~2 s of import time for this)."""
    return torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).permute(2, 0, 1).contiguous()


def _resize_shorter_side(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    scale = size / min(width, height)
    new_size = (max(size, round(width * scale)), max(size, round(height * scale)))
    if new_size == (width, height):
        return image
    return image.resize(new_size, Image.Resampling.BICUBIC, reducing_gap=3.0)


def _check_sizes(load_size: int, crop_size: int) -> None:
    if crop_size < 1 or load_size < 1:
        raise ValueError(f"load_size and crop_size must be positive, got {load_size} and {crop_size}.")
    if load_size < crop_size:
        raise ValueError(
            f"load_size={load_size} is smaller than crop_size={crop_size}: the shorter side is resized "
            "to load_size before cropping, so load_size must be >= crop_size."
        )


class ImageFileDataset(Dataset):
    """Colour photos from an explicit list of files, as RGB crops.

    Each item: the file is decoded by :func:`read_image_file` (EXIF rotation
    applied, first frame of a multi-frame file) and made RGB by :func:`to_rgb`
    (transparency over white), resized so its *shorter* side is ``load_size`` (bicubic), then cut
    to ``crop_size x crop_size`` -- a random crop when ``train`` is true (the
    DTU recipe: random 128 crops of 256 images, each time an image is loaded;
    positions come from torch's global RNG, which DataLoader seeds per worker),
    the centre crop otherwise. Returns ``(image (3, crop, crop) float32 in
    [0, 1] RGB, label)``; ``label`` is the file's class index when given, else -1.

    Bad input, checked once at construction when ``validate`` is true (every
    file is decoded, JPEGs at 1/8 scale; measured 0.75 ms per 224 px JPEG and
    2 ms per 481x321 JPEG on a busy 2-core machine):

    * unreadable / corrupt / truncated file, or one above Pillow's
      decompression-bomb limit -> skipped;
    * no colour (gray modes ``1, L, LA, I, I;16, F``, or a picture whose
      channels never differ by more than 3 levels, e.g. a gray palette) ->
      skipped, since a colorizer cannot learn colour from it;
    * shorter side below ``min_size`` (when given) -> skipped;
    * several frames (animated GIF, multi-page TIFF) -> kept, the first frame
      is used;

    then ONE :class:`DataWarning` counts each kind and names the first few
    files. The skipped files are kept in ``self.skipped`` (kind -> list of
    ``(path, reason)``), the multi-frame ones in ``self.first_frame_only``.
    Nothing left -> ``FileNotFoundError``.
    ``load_size < crop_size`` -> ``ValueError``. With ``validate=False`` files
    are trusted and a bad one raises ``RuntimeError`` when it is loaded.
    """

    color_space = "rgb"

    def __init__(
        self,
        files: Iterable[str | os.PathLike],
        split: str = "train",
        load_size: int = 256,
        crop_size: int = 128,
        train: bool | None = None,
        min_size: int | None = None,
        labels: Sequence[int] | None = None,
        root: str | os.PathLike | None = None,
        name: str = "images",
        validate: bool = True,
        progress: bool | None = None,
        describe: str | None = None,
    ) -> None:
        _check_sizes(load_size, crop_size)
        self.split = split
        self.load_size = int(load_size)
        self.crop_size = int(crop_size)
        self.train = (split == "train") if train is None else bool(train)
        self.min_size = min_size
        self.root = None if root is None else str(Path(root).resolve())
        self.name = name
        files = [Path(f) for f in files]
        if labels is not None and len(labels) != len(files):
            raise ValueError(f"got {len(files)} files but {len(labels)} labels.")
        label_list = [-1] * len(files) if labels is None else [int(x) for x in labels]
        where = describe or (f"{self.root} ({split})" if self.root else f"{len(files)} files ({split})")
        self.skipped: dict[str, list[tuple[Path, str]]] = {"unreadable": [], "gray": [], "small": []}
        self.first_frame_only: list[Path] = []
        if validate:
            kept = []
            show = len(files) > 2000 if progress is None else progress
            iterator: Iterable = zip(files, label_list)
            if show:
                iterator = tqdm(iterator, total=len(files), desc=f"checking images in {where}")
            for path, label in iterator:
                verdict, detail = _inspect_image(path, min_size)
                if verdict == "ok":
                    kept.append((path, label))
                    if detail:  # the note of a multi-frame file
                        self.first_frame_only.append(path)
                else:
                    self.skipped[verdict].append((path, detail))
            self._warn_skipped(where, len(files))
        else:
            kept = list(zip(files, label_list))
        if not kept:
            raise FileNotFoundError(self._empty_message(where, len(files)))
        self.files = [path for path, _ in kept]
        self.labels = [label for _, label in kept]

    # -- reporting -------------------------------------------------------------
    def _warn_skipped(self, where: str, total: int) -> None:
        def names(entries: list, label=lambda entry: entry[0].name + f" ({entry[1]})") -> str:
            more = f", ... and {len(entries) - _WARN_NAMES} more" if len(entries) > _WARN_NAMES else ""
            return ", ".join(label(entry) for entry in entries[:_WARN_NAMES]) + more

        titles = {"unreadable": "unreadable or corrupt", "gray": "without colour", "small": "smaller than min_size"}
        parts = [f"{len(entries)} {titles[kind]}: {names(entries)}" for kind, entries in self.skipped.items() if entries]
        count = sum(len(v) for v in self.skipped.values())
        message = f"{where}: skipped {count} of {total} image files -- " + "; ".join(parts) if parts else where + ": "
        if self.first_frame_only:
            message += ("; " if parts else "") + (f"{len(self.first_frame_only)} with several frames, of which only "
                                                  f"the first is used: {names(self.first_frame_only, lambda p: p.name)}")
        if parts or self.first_frame_only:
            warnings.warn(message + ".", DataWarning, stacklevel=3)

    def _empty_message(self, where: str, total: int) -> str:
        counts = ", ".join(f"{len(v)} {k}" for k, v in self.skipped.items() if v) or "none skipped"
        return f"No usable colour images in {where}: {total} candidate files ({counts})."

    # -- items -----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.files)

    def load_rgb(self, index: int) -> Image.Image:
        """The file as an RGB PIL image with its shorter side resized to ``load_size``."""
        path = self.files[index]
        try:
            # A JPEG much larger than needed is decoded by libjpeg at a reduced scale.
            decoded = read_image_file(path, shorter_side=self.load_size)
        except (ImageReadError, FileNotFoundError) as error:
            raise RuntimeError(
                f"Could not read image {path}: {error}. Was it changed after the data set was built? "
                "Build the data set with validate=True to skip bad files."
            ) from error
        return _resize_shorter_side(to_rgb(decoded.image), self.load_size)

    def _crop_box(self, width: int, height: int) -> tuple[int, int]:
        size = self.crop_size
        if self.train:
            top = int(torch.randint(0, height - size + 1, ()).item())
            left = int(torch.randint(0, width - size + 1, ()).item())
        else:
            top, left = (height - size) // 2, (width - size) // 2
        return top, left

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.load_rgb(index)
        top, left = self._crop_box(*image.size)
        crop = image.crop((left, top, left + self.crop_size, top + self.crop_size))
        return _pil_to_tensor(crop).float().div_(255.0), self.labels[index]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, split={self.split!r}, n={len(self)}, "
            f"load_size={self.load_size}, crop_size={self.crop_size}, train={self.train}, root={self.root!r})"
        )


# =============================================================================
# The split rule
# =============================================================================
#: Folders skipped when a folder tree is searched for images: ``frames`` writes the gray copies of
#: its frames into ``gray/``, and a colorizer must not train on gray pictures.
SKIPPED_FOLDERS = ("gray",)


def split_counts(n: int, proportions: Sequence[float] = (28, 7, 1)) -> dict[str, int]:
    """How many of ``n`` items go to train/val/test for ``proportions`` (largest remainders;
    every split with a non-zero proportion gets at least one item when ``n`` allows, taken from
    the largest split, so that a small folder still has a test image)."""
    if len(proportions) != 3 or any(s < 0 for s in proportions) or sum(proportions) <= 0:
        raise ValueError(f"split must be three non-negative proportions (train, val, test), got {proportions}")
    total = float(sum(proportions))
    exact = [n * s / total for s in proportions]
    counts = [math.floor(e) for e in exact]
    order = sorted(range(3), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    wanted = [i for i in range(3) if proportions[i] > 0]
    if n >= len(wanted):
        for i in wanted:
            if counts[i] == 0:
                counts[max(range(3), key=lambda j: counts[j])] -= 1
                counts[i] += 1
    return dict(zip(SPLITS, counts))


def _split_folders(root: Path) -> dict[str, Path]:
    found = {}
    for split, names in (("train", ("train",)), ("val", ("val", "validation")), ("test", ("test",))):
        for folder_name in names:
            if (root / folder_name).is_dir():
                found[split] = root / folder_name
                break
    return found


def _endings(extensions: Sequence[str]) -> tuple[str, ...]:
    return tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)


def _scan_images(folder: Path, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """All files below ``folder`` with an accepted ending, sorted; hidden files and folders
    (``.name``) and :data:`SKIPPED_FOLDERS` are skipped."""
    wanted = _endings(extensions)
    found = []
    for directory, subdirs, names in os.walk(folder, followlinks=True):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith(".") and d not in SKIPPED_FOLDERS)
        for file_name in names:
            if not file_name.startswith(".") and file_name.lower().endswith(wanted):
                found.append(Path(directory) / file_name)
    return sorted(found)


def image_files_in(folder: str | os.PathLike, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """The image files directly inside ``folder`` (not below it), sorted; hidden files skipped."""
    wanted = _endings(extensions)
    return sorted(p for p in Path(folder).iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(wanted))


@dataclass(frozen=True)
class SplitFiles:
    """What :func:`split_image_files` returns: ``files`` (sorted paths), ``layout`` (``"splits"``
    or ``"flat"``), ``searched`` (the folder searched) and ``how`` (one phrase for messages)."""

    files: list[Path]
    layout: str
    searched: Path
    how: str


def _rank_key(relative: str, seed: int) -> str:
    return hashlib.sha1(f"{seed}:{relative}".encode("utf-8")).hexdigest()


def split_image_files(
    root: str | os.PathLike,
    split: str,
    *,
    proportions: Sequence[float] = (90, 5, 5),
    seed: int = 0,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
) -> SplitFiles:
    """The image files of ``root`` that belong to ``split``: the one split rule of colorbook's folders.

    * ``root`` has ``train`` / ``val`` (or ``validation``) / ``test`` subfolders -> the images below
      the requested one (layout ``"splits"``, what ``frames`` writes); a missing ``test`` falls
      back to ``val`` (many sets ship train/val only) with a :class:`DataWarning`, any other
      missing split is a ``FileNotFoundError``.
    * otherwise (layout ``"flat"``) every image below ``root`` is ranked by the SHA-1 of
      ``f"{seed}:{path relative to root}"`` and the ranking is cut by :func:`split_counts`
      (``proportions`` train:val:test; every split gets at least one image when there are three).
      The split depends only on the relative paths and ``seed`` -- not on the order of the
      files, the machine, or a training seed -- and adding or removing a file moves at most a
      couple of other files to another split.

    Files are matched by ``extensions`` (case-insensitive) recursively; hidden files and folders
    and :data:`SKIPPED_FOLDERS` (``gray/``) are skipped. No file for ``split`` ->
    ``FileNotFoundError`` with one line saying where it looked.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    root = Path(root)
    endings = ", ".join(_endings(extensions))
    split_folders = _split_folders(root)
    if split_folders:
        if split not in split_folders and split == "test" and "val" in split_folders:
            warnings.warn(f"{root} has no test folder; using {split_folders['val']} for the test split.",
                          DataWarning, stacklevel=3)
            split_folders["test"] = split_folders["val"]
        if split not in split_folders:
            raise FileNotFoundError(f"{root} has split folders {sorted(p.name for p in split_folders.values())} "
                                    f"but none for split {split!r}.")
        searched = split_folders[split]
        files = _scan_images(searched, extensions)
        if not files:
            raise FileNotFoundError(f"no images for split {split!r} in {searched}: searched recursively for "
                                    f"files ending {endings}.")
        return SplitFiles(files, "splits", searched, f"all images below {searched}")
    every = _scan_images(root, extensions)
    if not every:
        raise FileNotFoundError(f"no images in {root}: searched recursively for files ending {endings}.")
    counts = split_counts(len(every), proportions)
    ranked = sorted(every, key=lambda f: _rank_key(f.relative_to(root).as_posix(), seed))
    start = sum(counts[s] for s in SPLITS[: SPLITS.index(split)])
    files = sorted(ranked[start : start + counts[split]])
    ratio = ":".join(f"{p:g}" for p in proportions)
    if not files:
        raise FileNotFoundError(f"no images for split {split!r} in {root}: its {len(every)} image files, split "
                                f"{ratio}, leave none for {split!r}; add images or make train/, val/, test/ folders.")
    return SplitFiles(files, "flat", root, f"images below {root} that rank in {split!r} ({ratio} split, seed {seed})")


class ImageFolderDataset(ImageFileDataset):
    """Every image below ``root`` (recursive), one split of it, as RGB crops.

    The split is :func:`split_image_files`: ``train`` / ``val`` (or
    ``validation``) / ``test`` subfolders when ``root`` has them (a missing
    ``test`` falls back to ``val`` with a :class:`DataWarning`), otherwise the
    images ranked by the hash of their relative path (salted with
    ``split_seed``) and cut ``split_proportions`` (90:5:5) -- the same rule as
    :class:`colorbook.data.cartoons.CartoonFolder`, which cuts 28:7:1.

    Files are matched by ``extensions`` (:data:`IMAGE_EXTENSIONS`,
    case-insensitive); hidden files and folders (``.name``) and ``gray/``
    folders are ignored. ``train`` defaults to ``split == "train"`` (random
    crops) and evaluation splits use centre crops. See :class:`ImageFileDataset`
    for loading and for what happens to bad files.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        load_size: int = 256,
        crop_size: int = 128,
        train: bool | None = None,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        min_size: int | None = None,
        name: str = "folder",
        validate: bool = True,
        progress: bool | None = None,
        split_proportions: Sequence[float] = (90, 5, 5),
        split_seed: int = 0,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
        _check_sizes(load_size, crop_size)
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"Image folder not found: {root}")
        chosen = split_image_files(root, split, proportions=split_proportions, seed=split_seed, extensions=extensions)
        self.extensions = tuple(extensions)
        self.searched = str(chosen.searched)
        self.layout = chosen.layout
        super().__init__(
            chosen.files,
            split=split,
            load_size=load_size,
            crop_size=crop_size,
            train=train,
            min_size=min_size,
            root=root,
            name=name,
            validate=validate,
            progress=progress,
            describe=f"{chosen.searched} ({split})",
        )

    def _empty_message(self, where: str, total: int) -> str:
        return (
            super()._empty_message(where, total)
            + f" Searched recursively for endings {', '.join(self.extensions)}."
        )


