"""The command line: recipes, train, colorize, and clear errors for bad input."""
import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from colorbook import cli, recipes
from colorbook.colorize import read_image
from colorbook.training.loop import train


def run(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for name in ("recipes", "train", "colorize"):
        assert name in text


def test_recipes_lists_one_line_each(capsys):
    code, out, _ = run(capsys, "recipes", "--table", "dtu-mnist")
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 11
    assert lines[7].startswith("H ") and "10.228" in lines[7]


def test_train_unknown_recipe_is_a_clear_error(capsys, tmp_path):
    code, _, err = run(capsys, "train", "--recipe", "nope", "--out", str(tmp_path))
    assert code == 2 and "unknown recipe 'nope'" in err and "Traceback" not in err


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny trained depth-2 checkpoint (2 iterations are enough to exercise colorize)."""
    import sys
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    from conftest import TinyLab
    out = tmp_path_factory.mktemp("ckpt")
    recipe = dataclasses.replace(recipes.get("K").resolve("quick").with_options(base_channels=4), batch_size=4)
    train(recipe, out, iters=2, dataset=TinyLab(8, 16), eval_dataset=TinyLab(4, 16), progress=False)
    return out / "checkpoint.pt"


def _save(path, array, mode=None):
    Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


def test_colorize_any_mode_keeps_size_and_full_resolution_L(capsys, tmp_path, checkpoint):
    rng = np.random.default_rng(0)
    from skimage import data
    photo = data.astronaut()[::4, ::4]                            # 128x128 RGB
    gray_photo = (photo @ [0.299, 0.587, 0.114]).astype(np.uint8)
    inputs = [
        _save(tmp_path / "gray.png", gray_photo),
        _save(tmp_path / "rgb.jpg", photo),
        _save(tmp_path / "rgba.png", np.dstack([photo, np.full(photo.shape[:2], 200, np.uint8)])),
        _save(tmp_path / "odd.png", rng.integers(0, 255, (37, 53), dtype=np.uint8)),
    ]
    sixteen = tmp_path / "deep.png"
    Image.fromarray((gray_photo.astype(np.uint16) * 257)).save(sixteen)
    inputs.append(sixteen)
    code, out, err = run(capsys, "colorize", "--checkpoint", str(checkpoint), *map(str, inputs),
                         "--out", str(tmp_path / "out"), "--work-size", "64")
    assert code == 0, err
    for path in inputs:
        result = Image.open(tmp_path / "out" / f"{path.stem}_color.png")
        assert result.size == Image.open(path).size
    assert Image.open(tmp_path / "out" / "rgba_color.png").mode == "RGBA"
    # the output's luminance is the input's, at full resolution (the model ran at 64 px)
    result = np.asarray(Image.open(tmp_path / "out" / "gray_color.png").convert("L"), dtype=float)
    assert np.abs(result - gray_photo).mean() < 3.0


def test_colorize_reports_unreadable_files_without_a_traceback(capsys, tmp_path, checkpoint):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    good = _save(tmp_path / "good.png", np.full((20, 20), 128, np.uint8))
    code, _, err = run(capsys, "colorize", "--checkpoint", str(checkpoint), str(bad), str(good),
                       "--out", str(tmp_path / "out"))
    assert code == 2 and "broken.jpg" in err and "cannot read" in err and "Traceback" not in err
    assert (tmp_path / "out" / "good_color.png").exists()       # the readable one is still written
    code, _, err = run(capsys, "colorize", "--checkpoint", str(tmp_path / "missing.pt"), str(good),
                       "--out", str(tmp_path / "out"))
    assert code == 2 and "no checkpoint" in err


def test_read_image_scales_16_bit(tmp_path):
    path = tmp_path / "d.png"
    Image.fromarray(np.full((4, 4), 65535, np.uint16)).save(path)
    rgb, alpha = read_image(path)
    assert rgb.shape == (4, 4, 3) and alpha is None and np.allclose(rgb, 1.0)


def test_cli_train_writes_outputs(capsys, tmp_path, monkeypatch):
    """`train` end to end on real colorized MNIST digits, 2 iterations of the quick recipe K."""
    code, out, err = run(capsys, "train", "--recipe", "K", "--profile", "quick", "--iters", "2",
                         "--out", str(tmp_path), "--device", "cpu", "--batch-size", "4")
    assert code == 0, err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["iterations"] == 2 and metrics["dataset"] == "mnist" and metrics["dataset_size"] == 4000
    assert metrics["provenance"]["command"].startswith("python -m colorbook train")
    assert list((tmp_path / "samples").glob("*.png"))
