"""Generated cartoons, time-coded videos, frame extraction, the cartoon data sets and the `frames` command."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from colorbook.data.cartoons import (
    DEFAULT_GENERATED_SIZES,
    CachedImages,
    CartoonFolder,
    CartoonImages,
    GeneratedCartoons,
    cartoon_root,
    make_cartoon,
    split_counts,
)
from colorbook.frames import (
    add_frames_subcommand,
    draw_time_code,
    extract_frames,
    frame_timestamps,
    make_cartoon_video,
    read_time_code,
)

# ---------------------------------------------------------------------------------------------
# Generated cartoons


def test_cartoons_are_deterministic_per_seed_and_differ_between_seeds():
    a, b, c = make_cartoon(7, 64), make_cartoon(7, 64), make_cartoon(8, 64)
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert make_cartoon(3, (96, 48)).shape == (48, 96, 3)


def test_cartoons_are_flat_coloured_with_dark_outlines():
    for seed in range(5):
        image = make_cartoon(seed, 128)
        colours, counts = np.unique(image.reshape(-1, 3), axis=0, return_counts=True)
        top = np.sort(counts)[::-1][:12].sum() / counts.sum()
        assert top > 0.8, f"seed {seed}: the 12 most common colours cover only {top:.0%} (not flat)"
        dark = (image.max(axis=2) < 50).mean()
        assert 0.01 < dark < 0.3, f"seed {seed}: {dark:.1%} dark outline pixels"
        assert image.std(axis=(0, 1)).mean() > 20, "a cartoon needs colour variation"


def test_cartoon_size_error():
    with pytest.raises(ValueError, match="at least 16x16"):
        make_cartoon(0, 8)


# ---------------------------------------------------------------------------------------------
# Time codes and videos


@pytest.mark.parametrize("number", [0, 1, 5, 255, 1234, 65535])
def test_time_code_round_trips_through_crop_and_resize(number):
    frame = draw_time_code(make_cartoon(number, (160, 120)), number)
    assert read_time_code(frame) == number
    side = 120  # the centre square, resized like the frame extractor does
    square = frame[:, 20:20 + side]
    assert read_time_code(cv2.resize(square, (64, 64), interpolation=cv2.INTER_AREA)) == number
    tensor = torch.from_numpy(square).permute(2, 0, 1).float() / 255
    assert read_time_code(tensor) == number


def test_time_code_range_error():
    with pytest.raises(ValueError, match="out of range"):
        draw_time_code(np.zeros((32, 32, 3), np.uint8), 70000)


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_cartoon_video_is_readable_and_every_frame_carries_its_number(tmp_path, suffix):
    path = make_cartoon_video(tmp_path / f"clip{suffix}", seconds=3, fps=4, size=(96, 64), seed=1)
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened()
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(4.0)
    numbers = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        numbers.append(read_time_code(frame))
    capture.release()
    assert numbers == list(range(12))


def test_video_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown video extension"):
        make_cartoon_video(tmp_path / "x.gif", seconds=1, fps=2)
    with pytest.raises(ValueError, match="seconds"):
        make_cartoon_video(tmp_path / "x.mp4", seconds=0, fps=2)


# ---------------------------------------------------------------------------------------------
# Frame extraction


def test_frame_timestamps_follow_the_paper_rule():
    # a 22-minute episode: every 15 s from 1:00 to 21:00
    times = frame_timestamps(22 * 60, 15, 60, 60)
    assert times[0] == 60 and times[-1] == 21 * 60 and len(times) == 81
    assert frame_timestamps(100, 15, 60, 60) == []
    with pytest.raises(ValueError, match="every_s"):
        frame_timestamps(100, 0)


def test_split_counts_keep_the_proportions_and_the_total():
    assert split_counts(36000) == {"train": 28000, "val": 7000, "test": 1000}
    for n in (0, 1, 5, 104, 1007):
        counts = split_counts(n)
        assert sum(counts.values()) == n
        assert counts["train"] >= counts["val"] >= counts["test"]
    with pytest.raises(ValueError, match="three"):
        split_counts(10, (1, 1))


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    clip = make_cartoon_video(folder / "clip.mp4", seconds=20, fps=5, size=(160, 120), seed=1)
    other = make_cartoon_video(folder / "other.avi", seconds=12, fps=5, size=(120, 160), seed=2)
    long = make_cartoon_video(folder / "episode.mp4", seconds=180, fps=1, size=(64, 48), seed=3)
    bad = folder / "broken.mp4"
    bad.write_bytes(b"this is not a video")
    return {"clip": clip, "other": other, "long": long, "bad": bad, "missing": folder / "missing.mp4"}


@pytest.mark.parametrize("method", ["seek", "scan"])
def test_extract_frames_takes_the_right_timestamps(videos, tmp_path, method):
    summary = extract_frames([videos["clip"], videos["other"]], tmp_path, every_s=2, skip_start_s=3,
                             skip_end_s=3, size=64, method=method, progress=False)
    clip, other = summary["videos"]
    assert clip["timestamps"] == [3, 5, 7, 9, 11, 13, 15, 17]
    assert other["timestamps"] == [3, 5, 7, 9]
    for video in (clip, other):
        assert video["frame_indices"] == [round(t * 5) for t in video["timestamps"]]
        decoded = [read_time_code(cv2.imread(f)) for f in video["files"]]
        assert decoded == video["frame_indices"], "the saved frames are not the frames at those times"
        for f in video["files"]:
            assert cv2.imread(f).shape == (64, 64, 3)
    assert sum(summary["counts"].values()) == 12
    assert not summary["skipped"] and not summary["failed_frames"]


def test_extract_frames_with_the_papers_defaults(videos, tmp_path):
    """Every 15 s, skipping the first and last minute, 256x256, on a 3-minute video."""
    summary = extract_frames([videos["long"]], tmp_path, progress=False)
    (video,) = summary["videos"]
    assert video["timestamps"] == [60, 75, 90, 105, 120]
    assert [read_time_code(cv2.imread(f)) for f in video["files"]] == [60, 75, 90, 105, 120]
    assert cv2.imread(video["files"][0]).shape == (256, 256, 3)
    assert summary["settings"]["every_s"] == 15 and summary["settings"]["skip_start_s"] == 60


def test_extract_frames_split_gray_and_report(videos, tmp_path):
    summary = extract_frames([videos["clip"], videos["bad"], videos["missing"], videos["other"]], tmp_path,
                             every_s=1, skip_start_s=0, skip_end_s=0, size=32, split=(2, 1, 1), seed=5,
                             progress=False)
    assert {s["path"] for s in summary["skipped"]} == {str(videos["bad"]), str(videos["missing"])}
    assert all(s["reason"] for s in summary["skipped"])
    total = 20 + 12  # t = 0..19 and 0..11 (a frame at t = duration does not exist)
    assert summary["counts"] == split_counts(total, (2, 1, 1))
    files = {split: sorted((tmp_path / split).glob("*.png")) for split in ("train", "val", "test")}
    assert {k: len(v) for k, v in files.items()} == summary["counts"]
    # gray copies: BT.601 luma of the colour frame
    colour = cv2.imread(str(files["train"][0]))
    gray = cv2.imread(str(tmp_path / "gray" / "train" / files["train"][0].name), cv2.IMREAD_GRAYSCALE)
    b, g, r = (colour[..., i].astype(float) for i in range(3))
    assert np.abs(gray - (0.299 * r + 0.587 * g + 0.114 * b)).max() <= 1.0
    assert json.loads((tmp_path / "frames.json").read_text())["counts"] == summary["counts"]
    # deterministic: the same seed puts the same frames in the same splits
    extract_frames([videos["clip"], videos["other"]], tmp_path / "again", every_s=1, skip_start_s=0,
                           skip_end_s=0, size=32, split=(2, 1, 1), seed=5, progress=False)
    assert sorted(p.name for p in (tmp_path / "again" / "test").glob("*.png")) == [p.name for p in files["test"]]


def test_rerunning_into_the_same_folder_is_refused_or_needs_overwrite(videos, tmp_path):
    """A rerun used to rewrite frames.json and leave the earlier run's PNGs beside the new ones."""
    settings = dict(every_s=2, skip_start_s=0, skip_end_s=0, size=32, progress=False)
    first = extract_frames([videos["clip"]], tmp_path, **settings)
    (tmp_path / "notes.txt").write_text("mine")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(ValueError) as caught:
        extract_frames([videos["other"]], tmp_path, **settings)
    message = str(caught.value)
    assert "frames.json" in message and "20 PNG files" in message and "--overwrite" in message
    assert "\n" not in message
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before  # nothing touched
    second = extract_frames([videos["other"]], tmp_path, overwrite=True, **settings)
    pngs = {p.name for p in tmp_path.glob("*/*.png")} | {p.name for p in tmp_path.glob("gray/*/*.png")}
    assert pngs == {Path(f).name for v in second["videos"] for f in v["files"]}
    assert not any(Path(f).exists() for v in first["videos"] for f in v["files"])
    assert (tmp_path / "notes.txt").read_text() == "mine"  # only the frames of the earlier run go


def test_the_frames_command_refuses_a_used_folder_in_one_line(videos, tmp_path, capsys):
    cli = pytest.importorskip("colorbook.cli")
    argv = ["frames", str(videos["clip"]), "--out", str(tmp_path), "--every", "5", "--skip-start", "0",
            "--skip-end", "0", "--size", "32"]
    assert cli.main(argv) == 0
    capsys.readouterr()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "already holds frames" in err and len(err.strip().splitlines()) == 1
    assert cli.main(argv + ["--overwrite"]) == 0
    assert len(list(tmp_path.glob("*/*.png"))) == 4


def test_a_short_video_says_why_it_gives_no_frames(videos, tmp_path, capsys):
    """A 12-second video with the paper's defaults used to report "0 frames" and nothing else."""
    with pytest.raises(ValueError) as caught:
        extract_frames([videos["other"]], tmp_path, progress=False)
    message = str(caught.value)
    assert "12.0 s" in message and "60 s are skipped at each end" in message
    for option in ("--skip-start", "--skip-end", "--every"):
        assert option in message
    assert "\n" not in message and not list(tmp_path.iterdir())  # refused before writing anything
    cli = pytest.importorskip("colorbook.cli")
    assert cli.main(["frames", str(videos["other"]), "--out", str(tmp_path / "out")]) == 2
    assert "60 s are skipped at each end" in capsys.readouterr().err
    # beside a long enough video, the short one is reported with its reason
    assert cli.main(["frames", str(videos["other"]), str(videos["long"]), "--out", str(tmp_path / "both"),
                     "--size", "32", "--skip-start", "50", "--skip-end", "50"]) == 0
    out = capsys.readouterr().out
    assert "other.avi: 0 frames" in out and "50 s are skipped at each end (--skip-start, --skip-end)" in out


def test_frames_out_must_be_a_folder(videos, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        extract_frames([videos["clip"]], tmp_path / "file", progress=False)


def test_extract_frames_input_errors(tmp_path):
    with pytest.raises(ValueError, match="no video"):
        extract_frames([], tmp_path)
    with pytest.raises(ValueError, match="method"):
        extract_frames(["x.mp4"], tmp_path, method="guess")


def test_frames_command(videos, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_frames_subcommand(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["frames", str(videos["clip"]), str(videos["bad"]), "--out", str(tmp_path),
                              "--every", "4", "--skip-start", "2", "--skip-end", "2", "--size", "32",
                              "--split", "1:1:1", "--no-gray"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "skipped" in out and "wrote 5 frames" in out  # t = 2, 6, 10, 14, 18
    assert not (tmp_path / "gray").exists()


def test_frames_command_through_the_package_cli(videos, tmp_path):
    cli = pytest.importorskip("colorbook.cli", reason="colorbook.cli wires the frames subcommand")
    status = cli.main(["frames", str(videos["clip"]), "--out", str(tmp_path), "--every", "5", "--skip-start", "0",
                       "--skip-end", "0", "--size", "32"])
    assert status == 0
    assert len(list(tmp_path.glob("*/*.png"))) == 4


# ---------------------------------------------------------------------------------------------
# Data sets


def test_generated_cartoon_data_set():
    train = CartoonImages(None, "train", 32, cache=False)
    assert isinstance(train, GeneratedCartoons) and train.color_space == "rgb"
    assert len(train) == DEFAULT_GENERATED_SIZES["train"]
    image, label = train[3]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and label == -1
    assert 0 <= image.min() and image.max() <= 1
    assert torch.equal(image, CartoonImages(None, "train", 32, cache=False)[3][0])
    assert not torch.equal(image, CartoonImages(None, "val", 32, cache=False)[3][0])
    assert not torch.equal(image, CartoonImages(None, "train", 32, seed=1, cache=False)[3][0])


def test_small_splits_are_cached_with_as_tensors():
    cached = CartoonImages(None, "test", 32)
    assert isinstance(cached, CachedImages) and cached.color_space == "rgb"
    images, labels = cached.as_tensors()
    assert images.shape == (16, 3, 32, 32) and labels.tolist() == [-1] * 16
    lazy = CartoonImages(None, "test", 32, cache=False)
    assert torch.allclose(images[5], lazy[5][0], atol=0.5 / 255)
    assert not hasattr(lazy, "as_tensors")


def _write_folder(root: Path, n: int = 12) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        image = make_cartoon(i, (48, 32))  # landscape: padding shows top and bottom
        cv2.imwrite(str(root / f"img_{i:02d}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[10:30, 10:30] = (255, 0, 0, 255)  # opaque red square, transparent elsewhere
    cv2.imwrite(str(root / "transparent.png"), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))


def test_flat_folder_is_split_deterministically_and_completely(tmp_path):
    _write_folder(tmp_path / "art")
    splits = {s: CartoonImages(tmp_path / "art", s, 32, cache=False) for s in ("train", "val", "test")}
    names = {s: {p.name for p in d.files} for s, d in splits.items()}
    assert sum(len(v) for v in names.values()) == 13
    assert not (names["train"] & names["val"]) and not (names["train"] & names["test"])
    assert [len(names[s]) for s in ("train", "val", "test")] == list(split_counts(13).values())
    assert names["train"] == {p.name for p in CartoonFolder(tmp_path / "art", "train", 32).files}
    assert {p.name for p in CartoonFolder(tmp_path / "art", "train", 32, split_seed=1).files} != names["train"]


def test_folder_images_are_padded_with_white_or_centre_cropped(tmp_path):
    _write_folder(tmp_path / "art")
    padded = CartoonFolder(tmp_path / "art", "train", 32, fit="pad")
    index = next(i for i, p in enumerate(padded.files) if p.name.startswith("img_"))
    image = padded[index][0]
    assert image.shape == (3, 32, 32)
    assert (image[:, 0, :] > 0.95).all() and (image[:, -1, :] > 0.95).all(), "pad rows must be white"
    cropped = CartoonFolder(tmp_path / "art", "train", 32, fit="crop")[index][0]
    assert not (cropped[:, 0, :] > 0.95).all()
    all_files = CartoonFolder(tmp_path / "art", "train", 40, split_proportions=(1, 0, 0))
    transparent = all_files[[p.name for p in all_files.files].index("transparent.png")][0]
    assert torch.allclose(transparent[:, 2, 2], torch.ones(3)), "transparent pixels become white"
    assert torch.allclose(transparent[:, 20, 20], torch.tensor([1.0, 0.0, 0.0]), atol=0.02)


def test_frames_output_is_a_folder_data_set(videos, tmp_path):
    extract_frames([videos["clip"]], tmp_path, every_s=1, skip_start_s=0, skip_end_s=0, size=32, progress=False)
    for split in ("train", "val", "test"):
        data = CartoonImages(tmp_path, split, 32)
        assert len(data) == len(list((tmp_path / split).glob("*.png")))
    train = CartoonFolder(tmp_path, "train", 32)
    assert train.layout == "splits"
    assert all("gray" not in p.parts for p in train.files)


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        CartoonFolder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        CartoonFolder(tmp_path / "empty")
    with pytest.raises(ValueError, match="split"):
        CartoonImages(None, "training")
    with pytest.raises(ValueError, match="fit"):
        _write_folder(tmp_path / "art", 2)
        CartoonFolder(tmp_path / "art", fit="stretch")


def test_shared_data_root_finds_its_cartoon_folder(tmp_path):
    (tmp_path / "cartoon").mkdir()
    assert cartoon_root(tmp_path) == tmp_path / "cartoon"
    assert cartoon_root(tmp_path / "cartoon") == tmp_path / "cartoon"
    assert cartoon_root(None) is None


def test_cartoons_are_registered_with_make_dataset(tmp_path):
    from colorbook.data import make_dataset
    generated = make_dataset("cartoons", "test", image_size=32)
    assert generated.color_space == "rgb" and len(generated) == DEFAULT_GENERATED_SIZES["test"]
    _write_folder(tmp_path / "cartoon")
    folder = make_dataset("cartoons", "train", data_root=tmp_path, image_size=32)
    assert len(folder) == split_counts(13)["train"]
    assert folder[0][0].shape == (3, 32, 32)


def test_shared_cartoon_folder_when_available():
    root = os.environ.get("COLORBOOK_DATA_ROOT")
    if not root or not (Path(root) / "cartoon").is_dir():
        pytest.skip("set COLORBOOK_DATA_ROOT to a folder with cartoon/ (the development data) to run this")
    train = CartoonImages(Path(root) / "cartoon", "train", 64, cache=False)
    test = CartoonImages(Path(root) / "cartoon", "test", 64, cache=False)
    assert len(train) > 10 * len(test) > 0
    image = train[0][0]
    assert image.shape == (3, 64, 64) and 0 <= image.min() and image.max() <= 1
