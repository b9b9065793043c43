"""Images from files: one reader, the file and folder data sets, one split rule.

Introduced in chapter 2 of the book (book/02-data)."""
from __future__ import annotations

import hashlib
import math
import os
import warnings
from collections.abc import Iterable, Sequence
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
# Photos from files
# =============================================================================
#: File name endings accepted by default (compared case-insensitively).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
# A decoded image counts as colourless when no pixel's channels differ by more
# than this many 8-bit levels (JPEG rounding of a gray picture stays below it).
_GRAY_SPREAD = 3
_WARN_NAMES = 3


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL image -> RGB; transparent pixels are composited over white."""
    if _has_alpha(image):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _palette_is_gray(image: Image.Image) -> bool:
    palette = image.getpalette() or []
    rgb = np.asarray(palette[: 3 * (len(palette) // 3)], dtype=np.int16).reshape(-1, 3)
    used = np.unique(np.asarray(image)) if image.size[0] * image.size[1] else np.array([], dtype=int)
    used = used[used < len(rgb)]
    return bool(len(used)) and bool((np.ptp(rgb[used], axis=1) <= _GRAY_SPREAD).all())


def _inspect_image(path: Path, min_size: int | None) -> tuple[str, str]:
    """Check one file. Returns ``(verdict, detail)`` with verdict one of
    ``"ok"``, ``"unreadable"``, ``"gray"``, ``"small"``.

    Decodes the whole file (JPEGs at 1/8 scale via ``draft``, which still reads
    every byte of the stream and so catches truncation) -- ``Image.verify``
    alone does not notice a truncated JPEG.
    """
    try:
        with Image.open(path) as image:
            width, height = image.size
            mode = image.mode
            if mode in _GRAY_MODES:
                return "gray", f"mode {mode}"
            if min_size is not None and min(width, height) < min_size:
                return "small", f"{width}x{height} < min_size {min_size}"
            if image.format == "JPEG":
                image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            image.load()
            if mode == "P" and not _has_alpha(image) and _palette_is_gray(image):
                return "gray", "gray palette"
            pixels = np.asarray(_to_rgb(image), dtype=np.int16)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        return "unreadable", f"{type(error).__name__}: {error}"
    if pixels.size == 0:
        return "unreadable", "empty image"
    spread = int((pixels.max(axis=2) - pixels.min(axis=2)).max())
    if spread <= _GRAY_SPREAD:
        return "gray", f"{mode} without colour (channel spread {spread})"
    return "ok", ""


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

    Each item: the file is decoded (EXIF rotation applied, transparency over
    white), resized so its *shorter* side is ``load_size`` (bicubic), then cut
    to ``crop_size x crop_size`` -- a random crop when ``train`` is true (the
    DTU recipe: random 128 crops of 256 images, each time an image is loaded;
    positions come from torch's global RNG, which DataLoader seeds per worker),
    the centre crop otherwise. Returns ``(image (3, crop, crop) float32 in
    [0, 1] RGB, label)``; ``label`` is the file's class index when given, else -1.

    Bad input, checked once at construction when ``validate`` is true (every
    file is decoded, JPEGs at 1/8 scale; measured 0.75 ms per 224 px JPEG and
    2 ms per 481x321 JPEG on a busy 2-core machine):

    * unreadable / corrupt / truncated file -> skipped;
    * no colour (gray modes ``1, L, LA, I, I;16, F``, a gray palette, or RGB
      whose channels never differ by more than 3 levels) -> skipped, since a
      colorizer cannot learn colour from it;
    * shorter side below ``min_size`` (when given) -> skipped;

    then ONE :class:`DataWarning` counts each kind and names the first few
    files. The skipped files are kept in ``self.skipped`` (kind -> list of
    ``(path, reason)``). Nothing left -> ``FileNotFoundError``.
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
        parts = []
        titles = {"unreadable": "unreadable or corrupt", "gray": "without colour", "small": "smaller than min_size"}
        for kind, entries in self.skipped.items():
            if entries:
                shown = ", ".join(f"{p.name} ({why})" for p, why in entries[:_WARN_NAMES])
                more = f", ... and {len(entries) - _WARN_NAMES} more" if len(entries) > _WARN_NAMES else ""
                parts.append(f"{len(entries)} {titles[kind]}: {shown}{more}")
        if parts:
            count = sum(len(v) for v in self.skipped.values())
            warnings.warn(
                f"{where}: skipped {count} of {total} image files -- " + "; ".join(parts) + ".",
                DataWarning,
                stacklevel=3,
            )

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
            with Image.open(path) as image:
                if image.format == "JPEG":
                    # Let libjpeg decode at a reduced scale when the photo is
                    # much larger than needed; draft keeps the size >= request.
                    width, height = image.size
                    scale = self.load_size / min(width, height)
                    image.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
                image = ImageOps.exif_transpose(image)
                rgb = _to_rgb(image)
                rgb.load()
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as error:
            raise RuntimeError(
                f"Could not read image {path}: {error}. Was it changed after the data set was built? "
                "Build the data set with validate=True to skip bad files."
            ) from error
        return _resize_shorter_side(rgb, self.load_size)

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


def _split_of_path(relative: str) -> str:
    """Deterministic 90/5/5 split from the SHA-1 of the relative POSIX path."""
    bucket = int(hashlib.sha1(relative.encode("utf-8")).hexdigest()[:8], 16) % 100
    return "train" if bucket < 90 else "val" if bucket < 95 else "test"


def _split_folders(root: Path) -> dict[str, Path]:
    found = {}
    for split, names in (("train", ("train",)), ("val", ("val", "validation")), ("test", ("test",))):
        for folder_name in names:
            if (root / folder_name).is_dir():
                found[split] = root / folder_name
                break
    return found


def _scan_images(folder: Path, extensions: Sequence[str]) -> list[Path]:
    """All files below ``folder`` with an accepted ending, skipping hidden files and folders, sorted."""
    wanted = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
    found = []
    for directory, subdirs, names in os.walk(folder, followlinks=True):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for file_name in names:
            if not file_name.startswith(".") and file_name.lower().endswith(wanted):
                found.append(Path(directory) / file_name)
    return sorted(found)


class ImageFolderDataset(ImageFileDataset):
    """Every image below ``root`` (recursive), one split of it, as RGB crops.

    Split rule:

    * ``root`` has ``train`` / ``val`` (or ``validation``) / ``test`` subfolders
      -> the requested one is used; a missing ``test`` falls back to ``val``
      (many sets ship train/val only) with a :class:`DataWarning`, any other
      missing split is a ``FileNotFoundError``.
    * otherwise the sorted file list is split by the SHA-1 hash of each file's
      path relative to ``root``: bucket ``hash % 100`` < 90 -> train, < 95 ->
      val, else test. Stable when files are added or removed, independent of any
      seed, but tiny folders may leave val/test empty (-> FileNotFoundError).

    Files are matched by ``extensions`` (case-insensitive); hidden files and
    folders (``.name``) are ignored. ``train`` defaults to ``split == "train"``
    (random crops) and evaluation splits use centre crops. See
    :class:`ImageFileDataset` for loading and for what happens to bad files.
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
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
        _check_sizes(load_size, crop_size)
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"Image folder not found: {root}")
        split_folders = _split_folders(root)
        if split_folders:
            if split not in split_folders and split == "test" and "val" in split_folders:
                warnings.warn(
                    f"{root} has no test folder; using {split_folders['val']} for the test split.",
                    DataWarning,
                    stacklevel=2,
                )
                split_folders["test"] = split_folders["val"]
            if split not in split_folders:
                raise FileNotFoundError(
                    f"{root} has split folders {sorted(p.name for p in split_folders.values())} "
                    f"but none for split {split!r}."
                )
            searched = split_folders[split]
            files = _scan_images(searched, extensions)
            how = f"all files in {searched}"
        else:
            searched = root
            files = [
                f for f in _scan_images(root, extensions) if _split_of_path(f.relative_to(root).as_posix()) == split
            ]
            how = f"files of {root} whose path hash falls in {split!r} (90/5/5 split)"
        self.extensions = tuple(extensions)
        self.searched = str(searched)
        if not files:
            raise FileNotFoundError(
                f"No image files for split {split!r}: searched {how} (recursively) for endings "
                f"{', '.join(self.extensions)}."
            )
        super().__init__(
            files,
            split=split,
            load_size=load_size,
            crop_size=crop_size,
            train=train,
            min_size=min_size,
            root=root,
            name=name,
            validate=validate,
            progress=progress,
            describe=f"{searched} ({split})",
        )

    def _empty_message(self, where: str, total: int) -> str:
        return (
            super()._empty_message(where, total)
            + f" Searched recursively for endings {', '.join(self.extensions)}."
        )


