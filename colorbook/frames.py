"""Videos with time codes and frame extraction, the way the KTH paper built its Simpsons data set;
the ``frames`` command.

Introduced in chapter 2 of the book (book/02-data)."""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from torch import Tensor
from tqdm.auto import tqdm

from colorbook.data.cartoons import _cv2, make_cartoon
from colorbook.data.images import SPLITS, split_counts

_VIDEO_CODECS = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "mp4v", ".mov": "mp4v"}

# ---------------------------------------------------------------------------------------------
# Time codes and videos
# ---------------------------------------------------------------------------------------------

_CODE_BITS = 16  # a 4x4 grid of black/white cells: frame numbers up to 65,535


def _code_box(width: int, height: int) -> tuple[int, int, int]:
    """(x0, y0, side) of the code: the middle half of the centre square of a width x height frame."""
    side = min(width, height) // 2
    return (width - side) // 2, (height - side) // 2, side


def draw_time_code(frame: np.ndarray, number: int) -> np.ndarray:
    """Draw ``number`` (``0 <= number < 2**16``) as a 4x4 grid of white (1) / black (0) cells, most
    significant bit first, over the middle half of the frame's centre square. In place; returns
    ``frame``. The code survives a centre-square crop, resizing and lossy video compression."""
    if not 0 <= number < 2 ** _CODE_BITS:
        raise ValueError(f"time code {number} out of range 0..{2 ** _CODE_BITS - 1}")
    x0, y0, side = _code_box(frame.shape[1], frame.shape[0])
    for bit in range(_CODE_BITS):
        row, col = divmod(bit, 4)
        on = (number >> (_CODE_BITS - 1 - bit)) & 1
        ya, yb = y0 + row * side // 4, y0 + (row + 1) * side // 4
        xa, xb = x0 + col * side // 4, x0 + (col + 1) * side // 4
        frame[ya:yb, xa:xb] = 255 if on else 0
    return frame


def read_time_code(image: np.ndarray | Tensor) -> int:
    """Decode the number drawn by :func:`draw_time_code` from a frame, or from its centre-square
    crop at any size (uint8 ``(H, W, 3)`` / ``(H, W)`` array, or a ``(3, H, W)`` tensor in [0, 1])."""
    if isinstance(image, Tensor):
        image = (image.detach().cpu().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    gray = image.mean(axis=2) if image.ndim == 3 else image.astype(np.float64)
    x0, y0, side = _code_box(gray.shape[1], gray.shape[0])
    number = 0
    for bit in range(_CODE_BITS):
        row, col = divmod(bit, 4)
        cell = side / 4
        # sample the middle half of each cell: compression blurs the edges
        ya, yb = int(y0 + (row + 0.25) * cell), int(y0 + (row + 0.75) * cell)
        xa, xb = int(x0 + (col + 0.25) * cell), int(x0 + (col + 0.75) * cell)
        number = (number << 1) | int(gray[ya:max(yb, ya + 1), xa:max(xb, xa + 1)].mean() > 127)
    return number


def make_cartoon_video(path: str | Path, seconds: float = 20.0, fps: float = 5.0,
                       size: tuple[int, int] = (320, 240), seed: int = 0, scene_every_s: float = 4.0,
                       fourcc: str | None = None) -> Path:
    """Write a short cartoon video and return its path.

    ``size`` is ``(width, height)``; a new scene starts every ``scene_every_s`` seconds and its
    characters drift sideways. Every frame carries its frame number ``i`` (time ``i / fps``) as a
    block code in the middle (:func:`read_time_code`). Codec: ``fourcc`` or, by extension,
    ``mp4v`` for .mp4 and ``MJPG`` for .avi (both written and read back by opencv-python-headless).
    """
    cv2 = _cv2()
    path = Path(path)
    n_frames = int(round(seconds * fps))
    if n_frames < 1 or fps <= 0:
        raise ValueError(f"need seconds * fps >= 1 and fps > 0, got seconds={seconds}, fps={fps}")
    if n_frames > 2 ** _CODE_BITS:
        raise ValueError(f"at most {2 ** _CODE_BITS} frames fit the time code, asked for {n_frames}")
    codec = fourcc or _VIDEO_CODECS.get(path.suffix.lower())
    if codec is None:
        raise ValueError(f"unknown video extension {path.suffix!r}: use one of {', '.join(_VIDEO_CODECS)} "
                         "or pass fourcc=")
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), float(fps), tuple(size))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV could not open a {codec} video writer for {path}")
    try:
        for i in range(n_frames):
            t = i / fps
            scene = int(t // scene_every_s)
            frame = make_cartoon(seed * 100_003 + scene, size, shift=(t % scene_every_s) / scene_every_s * 0.3)
            draw_time_code(frame, i)
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path


# ---------------------------------------------------------------------------------------------
# Frame extraction
# ---------------------------------------------------------------------------------------------

@dataclass
class _VideoInfo:
    path: Path
    fps: float
    frame_count: int


def frame_timestamps(duration_s: float, every_s: float = 15.0, skip_start_s: float = 60.0,
                     skip_end_s: float = 60.0) -> list[float]:
    """Times ``skip_start_s, skip_start_s + every_s, ...`` up to ``duration_s - skip_end_s`` (inclusive)."""
    if every_s <= 0:
        raise ValueError(f"every_s must be > 0, got {every_s}")
    if skip_start_s < 0 or skip_end_s < 0:
        raise ValueError("skip_start_s and skip_end_s must be >= 0")
    end = duration_s - skip_end_s
    times: list[float] = []
    k = 0
    while (t := skip_start_s + k * every_s) <= end + 1e-9:
        times.append(float(round(t, 6)))
        k += 1
    return times


def _probe(path: Path) -> _VideoInfo | str:
    """Frame rate and frame count of a video, or the reason it cannot be read."""
    cv2 = _cv2()
    if not path.is_file():
        return "file not found"
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            return "OpenCV cannot open it (unknown format or codec)"
        fps = capture.get(cv2.CAP_PROP_FPS)
        if not fps or fps <= 0 or not math.isfinite(fps):
            return "no frame rate in the file"
        ok, _ = capture.read()
        if not ok:
            return "the first frame cannot be decoded"
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if count <= 0:  # some containers do not store it: count by grabbing the rest
            count = 1
            while capture.grab():
                count += 1
        return _VideoInfo(path, float(fps), count)
    finally:
        capture.release()


def _square(frame_bgr: np.ndarray, size: int) -> np.ndarray:
    """Centre square crop, resized to size x size (area interpolation when shrinking)."""
    cv2 = _cv2()
    height, width = frame_bgr.shape[:2]
    side = min(height, width)
    y0, x0 = (height - side) // 2, (width - side) // 2
    crop = frame_bgr[y0:y0 + side, x0:x0 + side]
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(crop, (size, size), interpolation=interpolation)


def _earlier_frames(out_dir: Path) -> list[Path]:
    """What an earlier run of :func:`extract_frames` left in ``out_dir``: ``frames.json`` and the
    PNG files directly inside ``train/``, ``val/``, ``test/`` and ``gray/<split>/``."""
    found = [out_dir / "frames.json"] if (out_dir / "frames.json").is_file() else []
    for folder in [out_dir / s for s in SPLITS] + [out_dir / "gray" / s for s in SPLITS]:
        if folder.is_dir():
            found += sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file())
    return found


def _describe_files(out_dir: Path, files: Sequence[Path]) -> str:
    """``frames.json and 36 PNG files in train/, val/, gray/train/`` for a refusal message."""
    pngs = [f for f in files if f != out_dir / "frames.json"]
    folders = sorted({f.parent.relative_to(out_dir).as_posix() + "/" for f in pngs})
    parts = (["frames.json"] if len(pngs) < len(files) else []) + \
        ([f"{len(pngs)} PNG files in {', '.join(folders)}"] if pngs else [])
    return " and ".join(parts)


def _why_no_frames(duration_s: float, every_s: float, skip_start_s: float, skip_end_s: float) -> str:
    """One line saying why a video of ``duration_s`` seconds gives no frame, and what changes it."""
    skipped = (f"{skip_start_s:g} s are skipped at each end" if skip_start_s == skip_end_s else
               f"{skip_start_s:g} s are skipped at the start and {skip_end_s:g} s at the end")
    return (f"it lasts {duration_s:.1f} s, but {skipped} (--skip-start, --skip-end), which leaves no time to take "
            f"a frame from (one every {every_s:g} s, --every): lower --skip-start and --skip-end, "
            "e.g. --skip-start 0 --skip-end 0")


def extract_frames(videos: Iterable[str | Path], out_dir: str | Path, every_s: float = 15.0,
                   skip_start_s: float = 60.0, skip_end_s: float = 60.0, size: int = 256,
                   split: Sequence[float] = (28, 7, 1), seed: int = 0, save_gray: bool = True,
                   method: str = "seek", progress: bool = True, overwrite: bool = False) -> dict:
    """Build a frame data set from video files, as the KTH paper built its Simpsons set.

    For each video: times ``skip_start_s, skip_start_s + every_s, ...`` up to ``duration -
    skip_end_s`` (paper: every 15 s, skipping the first and last minute); the frame at time ``t``
    is frame number ``round(t * fps)``. Each frame is centre-square cropped, resized to
    ``size x size`` and written as PNG to ``out_dir/<split>/<video stem>_<t>s.png``; with
    ``save_gray`` also its BT.601 luma (``0.299 R + 0.587 G + 0.114 B``, OpenCV's
    ``COLOR_BGR2GRAY``) to ``out_dir/gray/<split>/``.

    The split is deterministic: all (video, time) pairs are shuffled with ``seed`` and cut in the
    proportions ``split`` (train, val, test; 28:7:1 like the paper's 28,000/7,000/1,000), so frames
    of one video land in all splits. ``method="seek"`` jumps to each frame with
    ``CAP_PROP_POS_FRAMES``; ``"scan"`` decodes sequentially (slower, for files whose seeking is
    unreliable). Unreadable videos are skipped and reported.

    Returns a summary dict: ``videos`` (per video: ``path``, ``fps``, ``frames``, ``duration_s``,
    ``timestamps``, ``frame_indices``, ``files``), ``counts`` (per split), ``skipped`` (``[{"path",
    "reason"}]`` for unreadable videos), ``failed_frames`` (frames that could not be decoded),
    ``settings``. It is also written to ``out_dir/frames.json``. A video too short to give a frame
    has ``reason`` (one line: its duration, the seconds skipped, the options that change it).

    Refused with one ``ValueError`` line before anything is written: ``out_dir`` is a file;
    ``out_dir`` holds an earlier run (``frames.json`` or PNGs in ``train/``, ``val/``, ``test/``,
    ``gray/<split>/``) and ``overwrite`` is false -- with ``overwrite`` exactly those files are
    removed first, nothing else in ``out_dir``; no video gives any frame (each one's reason).
    """
    cv2 = _cv2()
    if method not in ("seek", "scan"):
        raise ValueError(f"method must be 'seek' or 'scan', got {method!r}")
    if size < 8:
        raise ValueError(f"size must be at least 8, got {size}")
    videos = [Path(v) for v in videos]
    if not videos:
        raise ValueError("no video files given")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} is a file, not a folder: give a folder for the frames")
    earlier = _earlier_frames(out_dir)
    if earlier and not overwrite:
        raise ValueError(f"{out_dir} already holds frames of an earlier run ({_describe_files(out_dir, earlier)}): "
                         "pass --overwrite (overwrite=True) to remove them first, or choose another --out")
    settings = {"every_s": every_s, "skip_start_s": skip_start_s, "skip_end_s": skip_end_s, "size": size,
                "split": list(split), "seed": seed, "method": method, "save_gray": save_gray,
                "gray_formula": "0.299 R + 0.587 G + 0.114 B (BT.601, cv2.COLOR_BGR2GRAY)"}
    split_counts(0, split)  # validates `split`

    infos: list[_VideoInfo] = []
    skipped: list[dict] = []
    for path in videos:
        info = _probe(path)
        if isinstance(info, str):
            skipped.append({"path": str(path), "reason": info})
            print(f"frames: skipping {path}: {info}", file=sys.stderr)
        else:
            infos.append(info)

    # every (video, time) pair, then a seeded shuffle decides the split of each
    jobs: list[tuple[int, float, int]] = []
    per_video: list[dict] = []
    for v, info in enumerate(infos):
        duration = info.frame_count / info.fps
        times = [t for t in frame_timestamps(duration, every_s, skip_start_s, skip_end_s)
                 if round(t * info.fps) < info.frame_count]
        indices = [int(round(t * info.fps)) for t in times]
        per_video.append({"path": str(info.path), "fps": info.fps, "frames": info.frame_count,
                          "duration_s": round(duration, 3), "timestamps": times, "frame_indices": indices,
                          "files": []})
        if not times:
            per_video[-1]["reason"] = _why_no_frames(duration, every_s, skip_start_s, skip_end_s)
        jobs += [(v, t, i) for t, i in zip(times, indices)]
    if not jobs:
        problems = [f"{item['path']}: {item['reason']}" for item in skipped + per_video if "reason" in item]
        raise ValueError("no frames to take: " + "; ".join(problems))
    for path in earlier:  # only now: a refused or failing run leaves the earlier frames alone
        path.unlink()
    counts = split_counts(len(jobs), split)
    order = np.random.default_rng(seed).permutation(len(jobs))
    split_of: dict[int, str] = {}
    start = 0
    for name in SPLITS:
        for j in order[start:start + counts[name]]:
            split_of[int(j)] = name
        start += counts[name]

    for name in SPLITS:
        (out_dir / name).mkdir(parents=True, exist_ok=True)
        if save_gray:
            (out_dir / "gray" / name).mkdir(parents=True, exist_ok=True)

    written = {name: 0 for name in SPLITS}
    failed: list[dict] = []
    bar = tqdm(total=len(jobs), desc="frames", unit="frame", disable=not progress)
    job_index = 0
    for v, info in enumerate(infos):
        capture = cv2.VideoCapture(str(info.path))
        record = per_video[v]
        position = 0  # next frame a sequential read returns
        for t, frame_index in zip(record["timestamps"], record["frame_indices"]):
            name = split_of[job_index]
            job_index += 1
            if method == "seek":
                capture.set(cv2.CAP_PROP_POS_FRAMES, frame_index)
                ok, frame = capture.read()
            else:
                ok = True
                while ok and position < frame_index:
                    ok = capture.grab()
                    position += 1
                ok, frame = capture.read() if ok else (False, None)
                position += 1
            if not ok or frame is None:
                failed.append({"path": str(info.path), "time_s": t, "frame": frame_index})
                bar.update(1)
                continue
            square = _square(frame, size)
            stem = f"{info.path.stem}_{t:08.2f}s"
            target = out_dir / name / f"{stem}.png"
            cv2.imwrite(str(target), square)
            if save_gray:
                cv2.imwrite(str(out_dir / "gray" / name / f"{stem}.png"), cv2.cvtColor(square, cv2.COLOR_BGR2GRAY))
            record["files"].append(str(target))
            written[name] += 1
            bar.update(1)
        capture.release()
    bar.close()
    summary = {"videos": per_video, "counts": written, "skipped": skipped, "failed_frames": failed,
               "settings": settings, "out_dir": str(out_dir)}
    (out_dir / "frames.json").write_text(json.dumps(summary, indent=1))
    return summary




# ---------------------------------------------------------------------------------------------
# Command line: python -m colorbook frames VIDEO... --out DIR
# ---------------------------------------------------------------------------------------------

def _parse_split(text: str) -> tuple[float, float, float]:
    parts = text.replace("/", ":").split(":")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"split must look like 28:7:1, got {text!r}") from None
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"split must have three parts train:val:test, got {text!r}")
    return values  # type: ignore[return-value]


def add_frames_subcommand(subparsers) -> argparse.ArgumentParser:
    """Add ``frames`` to an argparse subparsers object; the handler is in ``func``."""
    parser = subparsers.add_parser(
        "frames", help="extract a cartoon frame data set from video files (one frame every 15 s)",
        description="Take one frame every --every seconds from each video, skipping the first and last "
                    "minute (as the KTH paper did with The Simpsons), crop the centre square, resize, and "
                    "write train/val/test PNG folders (plus gray versions) usable as --data-root.")
    parser.add_argument("videos", nargs="+", metavar="VIDEO", help="video files (anything OpenCV can read)")
    parser.add_argument("--out", required=True, help="output folder (train/, val/, test/, gray/, frames.json)")
    parser.add_argument("--every", type=float, default=15.0, help="seconds between frames (default 15)")
    parser.add_argument("--skip-start", type=float, default=60.0, help="seconds skipped at the start (default 60)")
    parser.add_argument("--skip-end", type=float, default=60.0, help="seconds skipped at the end (default 60)")
    parser.add_argument("--size", type=int, default=256, help="side of the square frames (default 256)")
    parser.add_argument("--split", type=_parse_split, default=(28.0, 7.0, 1.0),
                        help="train:val:test proportions (default 28:7:1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split shuffle (default 0)")
    parser.add_argument("--no-gray", action="store_true", help="do not write the gray/ copies")
    parser.add_argument("--method", choices=("seek", "scan"), default="seek",
                        help="seek to each frame (fast) or decode sequentially (robust)")
    parser.add_argument("--overwrite", action="store_true",
                        help="remove the frames of an earlier run in --out first (frames.json and the PNGs in "
                             "train/, val/, test/, gray/); without it such a folder is refused")
    parser.set_defaults(func=run_frames_command)
    return parser


def run_frames_command(args: argparse.Namespace) -> int:
    """Handler of ``frames``: runs :func:`extract_frames` and prints a short report (a video that
    gives no frame says why). Exit status 0, or 1 when no frame could be written (all failed to
    decode); bad input raises ``ValueError`` (the CLI prints it, exit status 2)."""
    summary = extract_frames(args.videos, args.out, every_s=args.every, skip_start_s=args.skip_start,
                             skip_end_s=args.skip_end, size=args.size, split=args.split, seed=args.seed,
                             save_gray=not args.no_gray, method=args.method, overwrite=args.overwrite)
    for video in summary["videos"]:
        why = f": {video['reason']}" if "reason" in video else ""
        print(f"{video['path']}: {len(video['files'])} frames ({video['duration_s']:.1f} s at {video['fps']:.3g} fps)"
              f"{why}")
    for item in summary["skipped"]:
        print(f"skipped {item['path']}: {item['reason']}")
    if summary["failed_frames"]:
        print(f"{len(summary['failed_frames'])} frames could not be decoded (listed in frames.json)")
    counts = summary["counts"]
    print(f"wrote {sum(counts.values())} frames to {args.out}: "
          + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0 if sum(counts.values()) > 0 else 1


