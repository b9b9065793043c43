"""Cartoon data: generated cartoons, folders of cartoon images, and the ``"cartoons"`` data set.

Introduced in the book's KTH chapter.

- :func:`make_cartoon` draws a flat-coloured cartoon with dark outlines (OpenCV drawing:
  a sky/ground background, hills, houses, trees, suns and round "characters" with faces),
  deterministic for a seed. It is the embedded default data set: it runs offline everywhere
  and ships no third-party images. (Cartoon videos with time codes and the frame extractor,
  the ``frames`` command, are in :mod:`colorbook.frames`.)
- :class:`CartoonImages` is the ``"cartoons"`` data set of :func:`colorbook.data.make_dataset`:
  generated cartoons (``root=None``), or a folder of images (with ``train/val/test``
  subfolders, as ``frames`` writes, or flat, then split 28:7:1 by
  :func:`colorbook.data.images.split_image_files`, the rule every image folder follows).

Gray images. Everywhere in colorbook the gray input of an RGB model is the BT.601 luma
``Y = 0.299 R + 0.587 G + 0.114 B`` on the gamma-encoded 8-bit values (what
``cv2.cvtColor(..., COLOR_RGB2GRAY)`` and :func:`colorbook.color.rgb_to_gray` compute). The
paper made its gray images with ImageMagick/ffmpeg without naming the formula.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from colorbook.data.images import (
    IMAGE_EXTENSIONS,
    SPLITS,
    DataWarning,
    read_image_file,
    split_counts,
    split_image_files,
    to_rgb,
)

__all__ = [
    "make_cartoon", "split_counts", "CartoonImages", "GeneratedCartoons", "CartoonFolder",
    "CachedImages", "cartoon_root", "cartoons_factory", "IMAGE_EXTENSIONS",
    "DEFAULT_GENERATED_SIZES", "FULL_GENERATED_SIZES", "SPLITS", "CACHE_MAX_BYTES",
]

# 28:7:1 like the paper's 28,000 / 7,000 / 1,000 frames, scaled down to 448 / 112 / 16.
DEFAULT_GENERATED_SIZES = {"train": 448, "val": 112, "test": 16}
# The full profile draws 100x the proportions (2,800 / 700 / 100) on the fly.
FULL_GENERATED_SIZES = {"train": 2800, "val": 700, "test": 100}
_SPLIT_SEED_OFFSET = {"train": 0, "val": 1_000_003, "test": 2_000_029}


def _cv2():
    try:
        import cv2
    except ImportError as error:  # pragma: no cover - cv2 is a dependency
        raise ImportError("colorbook.data.cartoons needs OpenCV: pip install opencv-python-headless") from error
    return cv2


# ---------------------------------------------------------------------------------------------
# Generated cartoons
# ---------------------------------------------------------------------------------------------

# Flat "cartoon" palette (RGB): saturated fills, like hand-painted cels.
_PALETTE = np.array([
    (255, 217, 15), (250, 128, 114), (65, 105, 225), (60, 179, 113), (255, 140, 0), (186, 85, 211),
    (0, 191, 255), (220, 20, 60), (154, 205, 50), (255, 182, 193), (139, 69, 19), (72, 209, 204),
    (255, 255, 255), (244, 164, 96), (30, 144, 255), (124, 252, 0), (255, 99, 71), (238, 130, 238),
], dtype=np.uint8)
_SKIES = np.array([(135, 206, 250), (176, 224, 230), (255, 228, 181), (221, 160, 221), (152, 251, 152),
                   (255, 250, 205), (255, 255, 255), (173, 216, 230)], dtype=np.uint8)
_GROUNDS = np.array([(34, 139, 34), (107, 142, 35), (210, 180, 140), (188, 143, 143), (95, 158, 160),
                     (205, 133, 63)], dtype=np.uint8)
_OUTLINE = (20, 20, 25)


def _colour(rng: np.random.Generator, table: np.ndarray = _PALETTE) -> tuple[int, int, int]:
    return tuple(int(c) for c in table[rng.integers(len(table))])


def _draw_character(img: np.ndarray, rng: np.random.Generator, cx: int, cy: int, r: int, t: int) -> None:
    """A round "character": a body, a head with eyes and a mouth, all outlined."""
    cv2 = _cv2()
    aa = cv2.LINE_AA
    body = _colour(rng)
    cv2.ellipse(img, (cx, cy + int(1.6 * r)), (int(0.9 * r), int(1.0 * r)), 0, 0, 360, body, -1, aa)
    cv2.ellipse(img, (cx, cy + int(1.6 * r)), (int(0.9 * r), int(1.0 * r)), 0, 0, 360, _OUTLINE, t, aa)
    skin = _colour(rng, _PALETTE[[0, 9, 13, 1]])
    cv2.circle(img, (cx, cy), r, skin, -1, aa)
    cv2.circle(img, (cx, cy), r, _OUTLINE, t, aa)
    hair = _colour(rng)
    if rng.random() < 0.7:  # hair as a filled arc on top of the head
        cv2.ellipse(img, (cx, cy - r // 3), (r, int(0.75 * r)), 0, 180, 360, hair, -1, aa)
        cv2.ellipse(img, (cx, cy - r // 3), (r, int(0.75 * r)), 0, 180, 360, _OUTLINE, t, aa)
    eye_r = max(1, r // 4)
    for side in (-1, 1):
        centre = (cx + side * r // 3, cy)
        cv2.circle(img, centre, eye_r, (255, 255, 255), -1, aa)
        cv2.circle(img, centre, eye_r, _OUTLINE, max(1, t - 1), aa)
        cv2.circle(img, centre, max(1, eye_r // 2), _OUTLINE, -1, aa)
    cv2.ellipse(img, (cx, cy + r // 2), (max(1, r // 3), max(1, r // 6)), 0, 0, 180, _OUTLINE, max(1, t - 1), aa)


def _draw_house(img: np.ndarray, rng: np.random.Generator, x: int, base: int, w: int, t: int) -> None:
    cv2 = _cv2()
    aa = cv2.LINE_AA
    h = int(w * rng.uniform(0.7, 1.1))
    wall = np.array([[x, base], [x + w, base], [x + w, base - h], [x, base - h]], np.int32)
    roof = np.array([[x - w // 8, base - h], [x + w + w // 8, base - h], [x + w // 2, base - h - int(0.6 * w)]],
                    np.int32)
    cv2.fillPoly(img, [wall], _colour(rng), aa)
    cv2.polylines(img, [wall], True, _OUTLINE, t, aa)
    cv2.fillPoly(img, [roof], _colour(rng), aa)
    cv2.polylines(img, [roof], True, _OUTLINE, t, aa)
    door = np.array([[x + w // 3, base], [x + 2 * w // 3, base], [x + 2 * w // 3, base - h // 2],
                     [x + w // 3, base - h // 2]], np.int32)
    cv2.fillPoly(img, [door], _colour(rng), aa)
    cv2.polylines(img, [door], True, _OUTLINE, t, aa)


def _draw_tree(img: np.ndarray, rng: np.random.Generator, x: int, base: int, s: int, t: int) -> None:
    cv2 = _cv2()
    aa = cv2.LINE_AA
    trunk = np.array([[x - s // 8, base], [x + s // 8, base], [x + s // 8, base - s], [x - s // 8, base - s]],
                     np.int32)
    cv2.fillPoly(img, [trunk], (139, 69, 19), aa)
    cv2.polylines(img, [trunk], True, _OUTLINE, t, aa)
    crown = _colour(rng, _PALETTE[[3, 8, 15, 11]])
    cv2.circle(img, (x, base - s - s // 3), max(2, s // 2), crown, -1, aa)
    cv2.circle(img, (x, base - s - s // 3), max(2, s // 2), _OUTLINE, t, aa)


def _draw_blob(img: np.ndarray, rng: np.random.Generator, size: int, t: int) -> None:
    """A random outlined shape: ellipse, star-ish polygon or rectangle."""
    cv2 = _cv2()
    aa = cv2.LINE_AA
    cx, cy = (int(v) for v in rng.integers(0, size, 2))
    r = int(size * rng.uniform(0.05, 0.16))
    kind = rng.integers(3)
    fill = _colour(rng)
    if kind == 0:
        axes = (r, max(2, int(r * rng.uniform(0.5, 1.0))))
        angle = float(rng.uniform(0, 180))
        cv2.ellipse(img, (cx, cy), axes, angle, 0, 360, fill, -1, aa)
        cv2.ellipse(img, (cx, cy), axes, angle, 0, 360, _OUTLINE, t, aa)
    else:
        n = int(rng.integers(3, 8)) if kind == 1 else 4
        angles = np.sort(rng.uniform(0, 2 * np.pi, n)) if kind == 1 else np.array([0.25, 0.75, 1.25, 1.75]) * np.pi
        radii = rng.uniform(0.5, 1.0, n) * r if kind == 1 else np.full(n, r)
        pts = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1).astype(np.int32)
        cv2.fillPoly(img, [pts], fill, aa)
        cv2.polylines(img, [pts], True, _OUTLINE, t, aa)


def make_cartoon(seed: int, size: int | tuple[int, int] = 256, shift: float = 0.0) -> np.ndarray:
    """Draw a flat-coloured cartoon with dark outlines, deterministic for ``seed``.

    ``size``: ``S`` (square) or ``(width, height)``. ``shift`` (pixels, as a fraction of the width)
    moves the characters sideways: a video's frames use it to animate one scene.
    Returns an RGB ``uint8`` array ``(height, width, 3)``.
    """
    cv2 = _cv2()
    width, height = (size, size) if isinstance(size, int) else size
    if width < 16 or height < 16:
        raise ValueError(f"cartoon size must be at least 16x16, got {width}x{height}")
    rng = np.random.default_rng(seed)
    scale = min(width, height)
    t = max(1, round(scale / 96))  # outline thickness: 1 px at 64, 3 px at 256
    img = np.empty((height, width, 3), np.uint8)
    horizon = int(height * rng.uniform(0.45, 0.7))
    img[:horizon] = _SKIES[rng.integers(len(_SKIES))]
    img[horizon:] = _GROUNDS[rng.integers(len(_GROUNDS))]
    if rng.random() < 0.6:  # sun
        c = (int(rng.integers(width)), int(rng.integers(max(1, horizon // 2))))
        cv2.circle(img, c, max(3, scale // 12), (255, 215, 0), -1, cv2.LINE_AA)
        cv2.circle(img, c, max(3, scale // 12), _OUTLINE, t, cv2.LINE_AA)
    for _ in range(int(rng.integers(0, 3))):  # hills on the horizon
        c = (int(rng.integers(width)), horizon)
        axes = (int(width * rng.uniform(0.2, 0.45)), int(height * rng.uniform(0.08, 0.2)))
        cv2.ellipse(img, c, axes, 0, 180, 360, _colour(rng, _GROUNDS), -1, cv2.LINE_AA)
        cv2.ellipse(img, c, axes, 0, 180, 360, _OUTLINE, t, cv2.LINE_AA)
    cv2.line(img, (0, horizon), (width, horizon), _OUTLINE, t, cv2.LINE_AA)
    for _ in range(int(rng.integers(0, 3))):
        kind = rng.random()
        x = int(rng.integers(0, max(1, width - width // 5)))
        if kind < 0.5:
            _draw_house(img, rng, x, horizon + int(rng.integers(0, max(1, height // 10))), max(8, width // 5), t)
        else:
            _draw_tree(img, rng, x, horizon + int(rng.integers(0, max(1, height // 10))), max(6, height // 6), t)
    for _ in range(int(rng.integers(1, 4))):
        _draw_blob(img, rng, scale, t)
    for _ in range(int(rng.integers(1, 3))):
        r = max(4, int(scale * rng.uniform(0.07, 0.13)))
        cx = int(rng.integers(r, max(r + 1, width - r)) + shift * width) % width
        cy = int(rng.integers(max(r, horizon - 2 * r), max(r + 1, min(height - 3 * r, horizon + r)) + 1))
        _draw_character(img, rng, cx, cy, r, t)
    return img




# ---------------------------------------------------------------------------------------------
# Data sets
# ---------------------------------------------------------------------------------------------

def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")
    return split


def _to_tensor(rgb_uint8: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb_uint8)).permute(2, 0, 1).float().div_(255.0)


class GeneratedCartoons(Dataset):
    """Generated cartoons (:func:`make_cartoon`): ``n`` images per split, drawn on the fly.

    Items ``(image (3, S, S) float in [0, 1] RGB, -1)``. Image ``i`` of a split is
    ``make_cartoon(seed * 7919 + offset(split) + i, S)``: the same for every run, different
    between splits. Default sizes 448 / 112 / 16 (the paper's 28:7:1).
    """

    color_space = "rgb"

    def __init__(self, split: str = "train", image_size: int = 256, n: int | None = None, seed: int = 0) -> None:
        self.split = _check_split(split)
        self.image_size = int(image_size)
        self.n = DEFAULT_GENERATED_SIZES[split] if n is None else int(n)
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.seed = seed

    def __len__(self) -> int:
        return self.n

    def image_seed(self, index: int) -> int:
        return self.seed * 7919 + _SPLIT_SEED_OFFSET[self.split] + index

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        if not -self.n <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} cartoons")
        index %= self.n
        return _to_tensor(make_cartoon(self.image_seed(index), self.image_size)), -1



def _load_rgb(path: Path, image_size: int, fit: str) -> np.ndarray:
    """Read an image with :func:`read_image_file` as RGB (transparent parts white) and fit it to a
    square (see :class:`CartoonFolder`): ``(S, S, 3)`` uint8."""
    decoded = read_image_file(path)
    if decoded.note:
        warnings.warn(decoded.note, DataWarning, stacklevel=3)
    img = to_rgb(decoded.image)
    if fit == "pad":
        img = ImageOps.pad(img, (image_size, image_size), method=Image.Resampling.BICUBIC, color=(255, 255, 255))
    else:
        img = ImageOps.fit(img, (image_size, image_size), method=Image.Resampling.BICUBIC)
    return np.array(img, dtype=np.uint8)  # a writable copy (torch.from_numpy warns on read-only arrays)


class CartoonFolder(Dataset):
    """A folder of cartoon images as a data set.

    Split: :func:`colorbook.data.images.split_image_files`, the rule of every image folder:
    ``root/train``, ``root/val``, ``root/test`` subfolders (what ``frames`` writes; a missing
    ``test`` falls back to ``val``), or else every image below ``root`` ranked by the hash of its
    relative path (salted with ``split_seed``) and cut ``split_proportions`` (28:7:1, the paper's
    28,000 / 7,000 / 1,000; every split gets at least one image when there are three). ``gray/``
    folders and hidden files are ignored; the file endings are
    :data:`colorbook.data.images.IMAGE_EXTENSIONS`. The split does not depend on a training seed,
    so runs with different seeds are evaluated on the same images.

    Each image is read by :func:`colorbook.data.images.read_image_file` (EXIF orientation, first
    frame of an animation, any mode) as RGB (transparent pixels composited onto white) and
    fitted to ``image_size x image_size``: ``fit="pad"`` (default) keeps the whole picture and
    its aspect ratio and pads with white (cartoon artwork usually sits on white, so padding adds
    nothing new and crops nothing off); ``fit="crop"`` takes the centre square. Items
    ``(image (3, S, S) float32 in [0, 1] RGB, -1)``. A file that cannot be read raises
    :class:`colorbook.data.images.ImageReadError` (a ``ValueError`` naming the file) when loaded.
    """

    color_space = "rgb"

    def __init__(self, root: str | Path, split: str = "train", image_size: int = 256, fit: str = "pad",
                 split_seed: int = 0, split_proportions: Sequence[float] = (28, 7, 1)) -> None:
        self.root = Path(root)
        self.split = _check_split(split)
        self.image_size = int(image_size)
        if fit not in ("pad", "crop"):
            raise ValueError(f"fit must be 'pad' or 'crop', got {fit!r}")
        self.fit = fit
        if not self.root.is_dir():
            raise FileNotFoundError(f"cartoon folder {self.root} does not exist: give a folder of images "
                                    "(or leave data_root unset for the generated cartoons)")
        chosen = split_image_files(self.root, split, proportions=split_proportions, seed=split_seed)
        self.layout = chosen.layout
        self.files = chosen.files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return _to_tensor(_load_rgb(self.files[index], self.image_size, self.fit)), -1


class CachedImages(Dataset):
    """Another data set's images held in memory as ``uint8`` (a quarter of float32's size), with
    ``as_tensors()`` so that the trainer can sample batches on the device without a DataLoader.
    Items ``(image (3, S, S) float in [0, 1], -1)``; ``color_space`` copied from the source."""

    def __init__(self, source: Dataset, progress: bool = False) -> None:
        self.color_space = source.color_space
        self.source_name = type(source).__name__
        first = source[0][0]
        self.images = torch.empty((len(source), *first.shape), dtype=torch.uint8)
        for i in tqdm(range(len(source)), desc="loading cartoons", disable=not progress, leave=False):
            self.images[i] = (source[i][0] * 255.0).round_().to(torch.uint8)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        return self.images[index].float().div_(255.0), -1

    def as_tensors(self) -> tuple[Tensor, Tensor]:
        """All images ``(N, 3, S, S)`` float in [0, 1] and labels ``(N,)`` (all -1)."""
        return self.images.float().div_(255.0), torch.full((len(self),), -1, dtype=torch.long)


CACHE_MAX_BYTES = 512 * 2 ** 20  # cache a split in memory when it is at most this large as float32


def CartoonImages(root: str | Path | None = None, split: str = "train", image_size: int = 256,
                  seed: int = 0, n: int | None = None, fit: str = "pad", cache: bool | None = None) -> Dataset:
    """The ``"cartoons"`` data set: :class:`GeneratedCartoons` when ``root`` is None (``n`` images,
    default 448/112/16, drawn from ``seed``), else :class:`CartoonFolder` on ``root`` (``fit`` pad |
    crop; ``seed`` unused, the folder's split is fixed). Either way
    ``color_space == "rgb"`` and items are ``(image (3, S, S) in [0, 1], -1)``.

    ``cache``: hold the split in memory (:class:`CachedImages`, which offers ``as_tensors()``);
    ``None`` (default) caches when the split takes at most 512 MB as float32 (e.g. 448 generated
    images at 256x256: 352 MB; a 783-image folder at 64x64: 38 MB), and otherwise reads or draws
    each image when it is asked for.
    """
    dataset: Dataset
    if root is None:
        dataset = GeneratedCartoons(split, image_size, n=n, seed=seed)
    else:  # a folder's split never depends on the seed: every run is evaluated on the same images
        dataset = CartoonFolder(root, split, image_size, fit=fit)
    if cache is None:
        cache = len(dataset) * 3 * image_size * image_size * 4 <= CACHE_MAX_BYTES
    return CachedImages(dataset) if cache else dataset




def cartoon_root(data_root: str | Path | None) -> Path | None:
    """The cartoon folder inside a shared ``data_root``: ``data_root/cartoons`` or ``data_root/cartoon``
    when one exists (one ``--data-root`` often serves every data set), else ``data_root`` itself."""
    if data_root is None:
        return None
    root = Path(data_root)
    for name in ("cartoons", "cartoon"):
        if (root / name).is_dir() and not (root / "train").is_dir():
            return root / name
    return root


def cartoons_factory(split: str = "train", *, data_root=None, image_size=None, profile: str = "quick",
                     seed: int = 0, **kwargs) -> Dataset:
    """The ``"cartoons"`` data set of :func:`colorbook.data.make_dataset`: generated cartoons (100x the
    quick counts in the full profile), or the cartoon folder of ``data_root``."""
    if data_root is None and profile == "full" and "n" not in kwargs:
        kwargs["n"] = FULL_GENERATED_SIZES[_check_split(split)]
    return CartoonImages(cartoon_root(data_root), split, image_size or 256, seed=seed, **kwargs)
