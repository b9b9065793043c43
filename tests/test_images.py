"""The one image reader, the one list of image file endings and the one folder split rule
(colorbook.data.images), and that the data sets and `colorize` all use them."""
from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colorbook.colorize import read_image
from colorbook.data import cartoons, images
from colorbook.data.cartoons import CartoonFolder, cartoons_factory
from colorbook.data.images import (
    IMAGE_EXTENSIONS,
    DataWarning,
    ImageFileDataset,
    ImageFolderDataset,
    ImageReadError,
    read_image_file,
    split_counts,
    split_image_files,
    to_rgb,
)

RED, BLUE = (220, 20, 30), (20, 40, 220)


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that claims ``width x height`` 8-bit gray pixels but holds none: what Pillow's
    decompression-bomb check sees first (opening it must not decode anything)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b""))
                     + chunk(b"IEND", b""))
    return path


def half_red_half_blue(width: int = 40, height: int = 20) -> Image.Image:
    pixels = np.empty((height, width, 3), np.uint8)
    pixels[:, : width // 2] = RED
    pixels[:, width // 2 :] = BLUE
    return Image.fromarray(pixels)


def save_with_orientation(path: Path, image: Image.Image, orientation: int) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation  # the EXIF Orientation tag, as a phone writes it
    image.save(path, quality=95, exif=exif)
    return path


# =============================================================================
# The reader
# =============================================================================
def test_exif_orientation_is_applied_by_every_reader(tmp_path):
    """A phone photo stored sideways with Orientation 6 comes out upright in the data sets and in
    colorize (cartoon folders and colorize used to ignore the tag)."""
    stored = half_red_half_blue(40, 20)
    upright = np.asarray(stored.transpose(Image.Transpose.ROTATE_270), dtype=float)  # what a viewer shows
    folder = tmp_path / "photos"
    folder.mkdir()
    path = save_with_orientation(folder / "phone.jpg", stored, 6)

    decoded = read_image_file(path)
    assert decoded.image.size == (20, 40) and decoded.full_size == (40, 20)
    assert np.abs(np.asarray(to_rgb(decoded.image), dtype=float) - upright).mean() < 4

    rgb, alpha = read_image(path)  # colorize's reader
    assert rgb.shape == (40, 20, 3) and alpha is None
    assert np.abs(rgb * 255 - upright).mean() < 4

    data_set = ImageFileDataset([path], load_size=20, crop_size=20, validate=False)
    assert data_set.load_rgb(0).size == (20, 40)

    cartoon = CartoonFolder(folder, "train", 40, fit="pad", split_proportions=(1, 0, 0))[0][0]
    # upright and padded left and right: the top is red, the bottom blue, the sides white
    assert np.allclose(cartoon[:, 5, 20].numpy() * 255, RED, atol=12)
    assert np.allclose(cartoon[:, 35, 20].numpy() * 255, BLUE, atol=12)
    assert (cartoon[:, 20, 2] > 0.95).all()


def _tiff(tmp_path: Path, mode: str, pixels) -> Path:
    image = Image.new(mode, (6, 4), pixels)
    path = tmp_path / f"{mode.replace(';', '_')}.tiff"
    image.save(path)
    return path


# mode, the fill value, the RGB that to_rgb gives (transparency over white), colorize's rgb and alpha
MODES = [
    ("1", 1, (255, 255, 255), (1.0, 1.0, 1.0), None),
    ("L", 100, (100, 100, 100), (100 / 255,) * 3, None),
    ("LA", (100, 0), (255, 255, 255), (100 / 255,) * 3, 0.0),
    ("RGB", RED, RED, tuple(c / 255 for c in RED), None),
    ("RGBA", (*RED, 255), RED, tuple(c / 255 for c in RED), 1.0),
    ("RGBA", (*RED, 0), (255, 255, 255), tuple(c / 255 for c in RED), 0.0),
    ("CMYK", (0, 255, 255, 0), (255, 0, 0), (1.0, 0.0, 0.0), None),
    ("I;16", 32768, (128, 128, 128), (32768 / 65535,) * 3, None),
    ("I;16B", 65535, (255, 255, 255), (1.0, 1.0, 1.0), None),
    ("I", 40000, (156, 156, 156), (40000 / 65535,) * 3, None),
    ("I", 200, (200, 200, 200), (200 / 255,) * 3, None),  # 8-bit values stored in 32 bits
    ("F", 0.25, (64, 64, 64), (0.25, 0.25, 0.25), None),
]


@pytest.mark.parametrize("mode, fill, expected_rgb, expected_float, expected_alpha", MODES,
                         ids=[f"{m[0]}-{i}" for i, m in enumerate(MODES)])
def test_every_mode_reads_the_same_everywhere(tmp_path, mode, fill, expected_rgb, expected_float, expected_alpha):
    path = _tiff(tmp_path, mode, fill)
    decoded = read_image_file(path)
    assert decoded.source_mode == mode and decoded.image.mode in images.DECODED_MODES
    assert np.asarray(to_rgb(decoded.image))[0, 0].tolist() == list(expected_rgb)
    rgb, alpha = read_image(path)
    assert np.allclose(rgb[0, 0], expected_float, atol=1e-4)
    assert (alpha is None) == (expected_alpha is None)
    if alpha is not None:
        assert alpha[0, 0] == pytest.approx(expected_alpha)
    # the cartoon folder reads 16-bit and float files at their real brightness (it used to clip
    # I;16 to white and F in [0, 1] to black)
    folder = tmp_path / "folder"
    folder.mkdir()
    path.rename(folder / path.name)
    cartoon = CartoonFolder(folder, "train", 4, fit="crop", split_proportions=(1, 0, 0))[0][0]
    assert np.allclose(cartoon[:, 2, 2].numpy() * 255, expected_rgb, atol=1)


def test_palette_images_with_and_without_transparency(tmp_path):
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, *RED] + [0] * 762)
    palette.save(tmp_path / "opaque.png")
    palette.save(tmp_path / "see_through.png", transparency=1)
    gray_with_trns = Image.new("L", (4, 4), 7)
    gray_with_trns.save(tmp_path / "gray_trns.png", transparency=7)  # a tRNS colour, no alpha channel

    opaque = read_image_file(tmp_path / "opaque.png")
    assert opaque.image.mode == "RGB" and opaque.image.getpixel((0, 0)) == RED
    clear = read_image_file(tmp_path / "see_through.png")
    assert clear.has_alpha and to_rgb(clear.image).getpixel((0, 0)) == (255, 255, 255)
    gray = read_image_file(tmp_path / "gray_trns.png")
    assert gray.image.mode == "LA" and to_rgb(gray.image).getpixel((0, 0)) == (255, 255, 255)
    _, alpha = read_image(tmp_path / "gray_trns.png")  # colorize keeps the transparency
    assert alpha is not None and float(alpha.max()) == 0.0


def test_a_decompression_bomb_is_refused_with_the_file_and_its_size(tmp_path):
    bomb = png_header_only(tmp_path / "bomb.png", 30000, 30000)
    with pytest.raises(ImageReadError) as caught:
        read_image_file(bomb)
    message = str(caught.value)
    assert "bomb.png" in message and "900,000,000 pixels" in message and "\n" not in message
    assert isinstance(caught.value, ValueError)  # the command line prints it as one `error:` line


def test_pillows_warning_band_is_refused_too(tmp_path, monkeypatch):
    """Between 1x and 2x MAX_IMAGE_PIXELS Pillow only warns and decodes; the reader refuses."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    half_red_half_blue(40, 40).save(tmp_path / "big.png")  # 1,600 pixels
    with pytest.raises(ImageReadError, match=r"big.png: image of 1,600 pixels"):
        read_image_file(tmp_path / "big.png")
    with pytest.raises(ValueError, match="big.png"):
        read_image(tmp_path / "big.png")


def test_unreadable_and_missing_files(tmp_path):
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ImageReadError, match="text.png: cannot read this file as an image"):
        read_image_file(tmp_path / "text.png")
    with pytest.raises(FileNotFoundError, match="missing.png: no such file"):
        read_image_file(tmp_path / "missing.png")


def _animated_gif(path: Path, n: int = 3) -> Path:
    frames = [Image.new("RGB", (8, 8), colour) for colour in (RED, BLUE, (20, 200, 40))[:n]]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return path


def test_an_animation_gives_its_first_frame_and_says_so(tmp_path):
    gif = _animated_gif(tmp_path / "anim.gif")
    decoded = read_image_file(gif)
    assert decoded.frames == 3
    assert decoded.note is not None and "anim.gif" in decoded.note and "first frame" in decoded.note
    assert np.allclose(np.asarray(to_rgb(decoded.image))[0, 0], RED, atol=8)
    still = read_image_file(_tiff(tmp_path, "RGB", RED))
    assert still.frames == 1 and still.note is None
    # the folder data set names it in its one warning, and keeps it
    folder = tmp_path / "train"
    folder.mkdir()
    gif.rename(folder / "anim.gif")
    with pytest.warns(DataWarning, match="1 with several frames, of which only the first is used: anim.gif"):
        dataset = ImageFolderDataset(tmp_path, "train", load_size=8, crop_size=8)
    assert [p.name for p in dataset.files] == ["anim.gif"]


# =============================================================================
# One list of endings, one split rule
# =============================================================================
def test_one_list_of_image_endings():
    assert cartoons.IMAGE_EXTENSIONS is IMAGE_EXTENSIONS
    assert cartoons.split_counts is split_counts
    assert {".png", ".jpg", ".jpeg", ".ppm", ".webp"} <= set(IMAGE_EXTENSIONS)


def _flat_folder(root: Path, n: int, extension: str = ".png") -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        pixels = np.random.default_rng(i).integers(0, 256, (8, 8, 3), dtype=np.uint8)
        paths.append(root / f"img_{i:03d}{extension}")
        Image.fromarray(pixels).save(paths[-1])
    return paths


def test_cartoon_and_photo_folders_follow_the_same_rule(tmp_path):
    """Both folder data sets take their files from split_image_files (they used to disagree: a
    seeded permutation cut 28:7:1 for cartoons, a per-file hash bucket 90/5/5 for photos, and
    different lists of endings: .ppm files were invisible to the cartoon folder)."""
    _flat_folder(tmp_path / "art", 30)
    _flat_folder(tmp_path / "art", 1, ".ppm")
    for split in ("train", "val", "test"):
        cartoon = CartoonFolder(tmp_path / "art", split, 8, split_proportions=(90, 5, 5))
        photos = ImageFolderDataset(tmp_path / "art", split, load_size=8, crop_size=8)
        assert cartoon.files == photos.files == split_image_files(tmp_path / "art", split).files
    assert sum(len(CartoonFolder(tmp_path / "art", s, 8).files) for s in ("train", "val", "test")) == 31


def test_the_split_rule_cuts_exact_counts_and_is_stable(tmp_path):
    paths = _flat_folder(tmp_path / "flat", 40)
    chosen = {s: split_image_files(tmp_path / "flat", s, proportions=(28, 7, 1)).files for s in ("train", "val", "test")}
    assert {s: len(f) for s, f in chosen.items()} == split_counts(40, (28, 7, 1))
    assert sorted(sum(chosen.values(), [])) == sorted(paths)
    assert all(f == sorted(f) for f in chosen.values())
    # another seed, another split; the same seed, the same split
    other = split_image_files(tmp_path / "flat", "train", proportions=(28, 7, 1), seed=1).files
    assert other != chosen["train"]
    assert split_image_files(tmp_path / "flat", "train", proportions=(28, 7, 1)).files == chosen["train"]
    # one more file moves at most a couple of the others to another split
    _flat_folder(tmp_path / "extra", 1)
    (tmp_path / "extra" / "img_000.png").rename(tmp_path / "flat" / "new.png")
    after = {s: set(split_image_files(tmp_path / "flat", s, proportions=(28, 7, 1)).files) for s in chosen}
    moved = sum(len(set(chosen[s]) - after[s]) for s in chosen)
    assert moved <= 2


def test_the_split_rule_skips_gray_copies_and_hidden_files_and_explains_empty_splits(tmp_path):
    _flat_folder(tmp_path / "flat", 2)
    _flat_folder(tmp_path / "flat" / "gray", 5)
    _flat_folder(tmp_path / "flat" / ".cache", 5)
    assert len(split_image_files(tmp_path / "flat", "train", proportions=(1, 1, 0)).files) == 1
    with pytest.raises(FileNotFoundError, match=r"no images for split 'test' in .*flat: its 2 image files"):
        split_image_files(tmp_path / "flat", "test")
    (tmp_path / "none").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no images in .*none: searched recursively for files ending \.jpg"):
        split_image_files(tmp_path / "none", "train")
    with pytest.raises(ValueError, match="split"):
        split_image_files(tmp_path / "flat", "training")


def test_split_folders_and_the_val_fallback(tmp_path):
    _flat_folder(tmp_path / "train", 3)
    _flat_folder(tmp_path / "validation", 2)
    assert split_image_files(tmp_path, "train").layout == "splits"
    with pytest.warns(DataWarning, match="no test folder"):
        test = split_image_files(tmp_path, "test")
    assert [p.parent.name for p in test.files] == ["validation", "validation"]


def test_a_folders_split_does_not_depend_on_the_training_seed(tmp_path):
    """Runs with different seeds are evaluated on the same images (the cartoon factory used to
    reshuffle the folder with the training seed)."""
    _flat_folder(tmp_path / "art", 40)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        seed0 = cartoons_factory("test", data_root=tmp_path / "art", image_size=8, seed=0, cache=False)
        seed1 = cartoons_factory("test", data_root=tmp_path / "art", image_size=8, seed=1, cache=False)
    assert seed0.files == seed1.files
