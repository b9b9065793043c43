"""The `colorize` command and colorbook.colorize: names that never overwrite an input, clear
one-line errors before any work, a batch that survives one bad file, and bounded memory (tiles)."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from colorbook import cli, color, colorize, recipes
from colorbook.colorize import colorize_array, colorize_files, output_paths
from colorbook.training.checkpoint import load_generator
from colorbook.training.loop import train

sys.path.insert(0, str(Path(__file__).parent))
from test_images import _animated_gif, png_header_only  # noqa: E402


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny trained depth-2 checkpoint (2 iterations are enough to exercise colorize)."""
    from conftest import TinyLab
    out = tmp_path_factory.mktemp("ckpt")
    recipe = dataclasses.replace(recipes.get("K").resolve("quick").with_options(base_channels=4), batch_size=4)
    train(recipe, out, iters=2, dataset=TinyLab(8, 16), eval_dataset=TinyLab(4, 16), progress=False)
    return out / "checkpoint.pt"


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def gray_png(path: Path, size=(20, 16), value: int = 128) -> Path:
    Image.new("L", size, value).save(path)
    return path


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


# =============================================================================
# Names: never an input, never two inputs on one output
# =============================================================================
def test_an_output_never_overwrites_an_input(capsys, tmp_path, checkpoint):
    """pic.png and pic_color.png with --out their own folder: pic.png's output used to be written
    over the input pic_color.png."""
    gray_png(tmp_path / "pic.png")
    gray_png(tmp_path / "pic_color.png", value=30)
    original = (tmp_path / "pic_color.png").read_bytes()
    code, out, err = run(capsys, "colorize", "--checkpoint", checkpoint, tmp_path / "pic.png",
                         tmp_path / "pic_color.png", "--out", tmp_path, "--work-size", "32")
    assert code == 0, err
    assert (tmp_path / "pic_color.png").read_bytes() == original
    written = [Path(line) for line in out.split()]
    assert [p.name for p in written] == ["pic_color_2.png", "pic_color_color.png"]
    assert all(p.is_file() for p in written)


def test_inputs_that_share_a_name_get_distinct_outputs(capsys, tmp_path, checkpoint):
    """same.png and same.jpg used to be written to one same_color.png, the second over the first."""
    gray_png(tmp_path / "same.png", value=40)
    Image.new("L", (20, 16), 220).save(tmp_path / "same.jpg")
    code, out, err = run(capsys, "colorize", "--checkpoint", checkpoint, tmp_path / "same.png",
                         tmp_path / "same.jpg", "--out", tmp_path / "out", "--work-size", "32")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["same_jpg_color.png", "same_png_color.png"]
    dark = np.asarray(Image.open(tmp_path / "out" / "same_png_color.png").convert("L"), dtype=float).mean()
    light = np.asarray(Image.open(tmp_path / "out" / "same_jpg_color.png").convert("L"), dtype=float).mean()
    assert dark < 80 < 180 < light


def test_output_paths_are_distinct_case_insensitively(tmp_path):
    sources = [tmp_path / "a" / "x.png", tmp_path / "b" / "x.png", tmp_path / "X_color.png"]
    targets = output_paths(sources, tmp_path / "out")
    assert [t.name for t in targets] == ["x_png_color.png", "x_png_color_2.png", "X_color_color.png"]


def test_existing_outputs_are_kept_unless_overwrite(capsys, tmp_path, checkpoint):
    source = gray_png(tmp_path / "pic.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "pic_color.png").write_bytes(b"made by the user")
    code, _, err = run(capsys, "colorize", "--checkpoint", checkpoint, source, "--out", tmp_path / "out")
    assert code == 2 and "pic_color.png" in one_error_line(err) and "--overwrite" in err
    assert (tmp_path / "out" / "pic_color.png").read_bytes() == b"made by the user"
    code, _, err = run(capsys, "colorize", "--checkpoint", checkpoint, source, "--out", tmp_path / "out",
                       "--overwrite", "--work-size", "32")
    assert code == 0, err
    assert Image.open(tmp_path / "out" / "pic_color.png").size == (20, 16)


# =============================================================================
# Clear errors before any work
# =============================================================================
def test_out_that_is_a_file_is_one_clear_line(capsys, tmp_path, checkpoint):
    """It used to end in a FileExistsError traceback from mkdir."""
    source = gray_png(tmp_path / "pic.png")
    (tmp_path / "taken").write_text("a file")
    code, _, err = run(capsys, "colorize", "--checkpoint", checkpoint, source, "--out", tmp_path / "taken")
    assert code == 2 and "is a file, not a folder" in one_error_line(err)
    code, _, err = run(capsys, "colorize", "--checkpoint", checkpoint, source, "--out", tmp_path / "taken" / "sub")
    assert code == 2 and "is a file" in one_error_line(err)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, where nobody may write")
def test_an_unwritable_out_folder_is_one_clear_line_before_any_work(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(colorize, "load_generator", lambda *a, **k: pytest.fail("work started"))
    code, _, err = run(capsys, "colorize", "--checkpoint", tmp_path / "none.pt", gray_png(tmp_path / "p.png"),
                       "--out", "/proc/colorbook-out")
    assert code == 2 and "cannot write in /proc" in one_error_line(err)


@pytest.mark.parametrize("size", ["0", "-3"])
def test_a_work_size_below_one_is_refused(capsys, tmp_path, checkpoint, size):
    """0 used to mean "the default" silently, and a negative size failed deep inside torch."""
    code, _, err = run(capsys, "colorize", "--checkpoint", checkpoint, gray_png(tmp_path / "p.png"),
                       "--out", tmp_path / "out", "--work-size", size)
    assert code == 2 and "--work-size must be a positive number of pixels" in one_error_line(err)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="work-size"):
        colorize_array(torch.nn.Identity(), np.zeros((4, 4, 3)), work_size=int(size))


@pytest.mark.parametrize("device", ["gpu", "cuda:7"])
def test_device_goes_through_default_device(capsys, tmp_path, checkpoint, device):
    """`--device gpu` used to end in torch's RuntimeError traceback."""
    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    code, _, err = run(capsys, "colorize", "--checkpoint", checkpoint, gray_png(tmp_path / "p.png"),
                       "--out", tmp_path / "out", "--device", device)
    assert code == 2 and device in one_error_line(err) and "--device" in err


# =============================================================================
# Folders and batches
# =============================================================================
def test_a_folder_input_means_the_images_inside_it(capsys, tmp_path, checkpoint):
    """A folder used to be reported as "no such file"."""
    photos = tmp_path / "photos"
    photos.mkdir()
    gray_png(photos / "a.png")
    gray_png(photos / "b.jpg")
    (photos / "notes.txt").write_text("not an image")
    (photos / "nested").mkdir()
    gray_png(photos / "nested" / "deeper.png")
    code, out, err = run(capsys, "colorize", "--checkpoint", checkpoint, photos, "--out", tmp_path / "out",
                         "--work-size", "32")
    assert code == 0, err
    assert sorted(Path(p).name for p in out.split()) == ["a_color.png", "b_color.png"]
    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "colorize", "--checkpoint", checkpoint, tmp_path / "empty", "--out", tmp_path / "out2")
    assert code == 2 and "empty: a folder without image files" in err


def test_one_bad_file_does_not_stop_the_batch(capsys, tmp_path, checkpoint):
    """A decompression bomb used to abort the batch (Pillow's error is no OSError) with a traceback."""
    first = gray_png(tmp_path / "first.png")
    bomb = png_header_only(tmp_path / "bomb.png", 30000, 30000)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    last = gray_png(tmp_path / "last.png")
    code, out, err = run(capsys, "colorize", "--checkpoint", checkpoint, first, bomb, broken,
                         tmp_path / "missing.png", last, "--out", tmp_path / "out", "--work-size", "32")
    assert code == 2 and "Traceback" not in err
    assert (tmp_path / "out" / "first_color.png").is_file() and (tmp_path / "out" / "last_color.png").is_file()
    assert "3 of 5 inputs could not be colorized (2 written to" in err
    assert "bomb.png: image of 900,000,000 pixels" in err and "broken.jpg: cannot read" in err
    assert "missing.png: no such file" in err


def test_an_animation_is_colorized_from_its_first_frame_with_a_note(capsys, tmp_path, checkpoint):
    gif = _animated_gif(tmp_path / "anim.gif")
    code, out, err = run(capsys, "colorize", "--checkpoint", checkpoint, gif, "--out", tmp_path / "out",
                         "--work-size", "32")
    assert code == 0
    notes = [line for line in err.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and "anim.gif" in notes[0] and "first frame" in notes[0]


def test_alpha_is_kept(tmp_path, checkpoint):
    rgba = np.zeros((12, 10, 4), np.uint8)
    rgba[..., :3] = 90
    rgba[..., 3] = np.arange(10, dtype=np.uint8) * 25
    Image.fromarray(rgba).save(tmp_path / "a.png")
    (written,) = colorize_files(checkpoint, [tmp_path / "a.png"], tmp_path / "out", work_size=32, device="cpu",
                                progress=False)
    result = np.asarray(Image.open(written))
    assert result.shape == (12, 10, 4) and np.array_equal(result[..., 3], rgba[..., 3])


# =============================================================================
# Tiles: the same picture, bounded memory
# =============================================================================
@torch.no_grad()
def _untiled_reference(generator, rgb: np.ndarray, work_size: int) -> np.ndarray:
    """colorize_array as it was before tiling (whole picture at once, ~170 bytes per pixel)."""
    image = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float()
    lab_full = color.rgb_to_lab_norm(color.rgb_to_gray(image).expand(-1, 3, -1, -1))
    height, width = image.shape[-2:]
    scale = min(1.0, work_size / max(height, width))
    small_size = (max(1, round(height * scale)), max(1, round(width * scale)))
    small_lab = F.interpolate(lab_full, size=small_size, mode="bilinear", align_corners=False, antialias=True) \
        if scale < 1 else lab_full
    space = generator.color_space
    gray = color.gray_of(color.convert(small_lab, "lab", space), space)
    out = color.convert(generator(gray)[..., :small_size[0], :small_size[1]], space, "lab")
    ab = F.interpolate(out[:, 1:], size=(height, width), mode="bilinear", align_corners=False)
    return color.lab_norm_to_rgb(torch.cat([lab_full[:, :1], ab], dim=1))[0].permute(1, 2, 0).numpy()


def test_tiles_give_the_untiled_result(tmp_path, checkpoint, monkeypatch):
    from skimage import data
    generator, _ = load_generator(checkpoint, "cpu")
    photo = data.astronaut()[40:340, 60:280]  # 300 x 220, colour (its colour is ignored)
    rgb = photo.astype(np.float32) / 255
    monkeypatch.setattr(colorize, "_TILE_PIXELS", 220 * 7)  # 7 rows per tile: 43 tiles
    reference = _untiled_reference(generator, rgb, 64)
    tiled = colorize_array(generator, rgb, work_size=64)
    assert tiled.shape == (300, 220, 3)
    assert np.abs(tiled - reference).max() <= 1 / 255
    # the file path too (8-bit rounding on top)
    Image.fromarray(photo).save(tmp_path / "astronaut.png")
    (written,) = colorize_files(checkpoint, [tmp_path / "astronaut.png"], tmp_path / "out", work_size=64,
                                device="cpu", progress=False)
    saved = np.asarray(Image.open(written), dtype=np.float32)
    assert np.abs(saved - np.round(reference * 255)).max() <= 1


MEMORY_SCRIPT = textwrap.dedent("""
    import json, resource, sys
    import torch
    torch.set_num_threads(1)
    from colorbook.colorize import colorize_files
    checkpoint, small, big, out = sys.argv[1:5]
    colorize_files(checkpoint, [small], out, work_size=64, device="cpu", progress=False)  # warm up
    def rss_kb():
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * resource.getpagesize() // 1024
    before = max(rss_kb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    colorize_files(checkpoint, [big], out, work_size=64, device="cpu", progress=False)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"grew_kb": after - before}))
""")


@pytest.mark.skipif(not Path("/proc/self/statm").is_file(), reason="reads the resident set size from /proc")
def test_peak_memory_does_not_grow_with_170_bytes_per_pixel(tmp_path, checkpoint):
    """Colorizing the whole picture at once took ~170 bytes per pixel (4.1 GB for 24 MP); tiles keep
    the growth near the decoded file, its L and the 8-bit result. Measured in a fresh process on a
    4-megapixel gray picture (the unfiled code needs ~650 MB more than the warm-up here)."""
    side = 2000
    ramp = np.add.outer(np.arange(side), np.arange(side)) % 256
    Image.fromarray(ramp.astype(np.uint8)).save(tmp_path / "big.png")
    gray_png(tmp_path / "small.png", (64, 48))
    result = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(checkpoint), str(tmp_path / "small.png"),
                             str(tmp_path / "big.png"), str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    grew = json.loads(result.stdout.strip().splitlines()[-1])["grew_kb"] * 1024
    bytes_per_pixel = grew / side ** 2
    assert bytes_per_pixel < 40, f"peak memory grew by {bytes_per_pixel:.0f} bytes per pixel"
