"""Photos of scenes: Places365 categories and the offline default photos (scikit-image, scikit-learn).

Introduced in chapter 2 of the book (book/02-data)."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from colorbook.data.images import (
    SPLITS,
    ImageFileDataset,
    ImageFolderDataset,
    _check_sizes,
    _pil_to_tensor,
    _resize_shorter_side,
    _to_rgb,
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




def scenes_factory(
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


