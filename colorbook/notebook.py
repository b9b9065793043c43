"""Small helpers that the book's notebooks share: set-up, load-or-train, plotting, recorded results.

Notebooks only orchestrate: every computation lives in the other modules. This module keeps the
notebooks short and consistent (the UvA "load or train" pattern: a chapter reuses a finished run of
the same recipe and profile if one exists, else trains it).
"""
from __future__ import annotations

import json
import os
import random
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch

from colorbook import color
from colorbook.gallery import comparison_rows, record_command
from colorbook.metrics.mnist import mean_stroke_ab
from colorbook.profile import current_profile, default_device
from colorbook.provenance import REPO_ROOT, short_commit
from colorbook.recipes import Recipe, get
from colorbook.reproduce import results_dir, separate_training
from colorbook.training.checkpoint import load_generator
from colorbook.training.loop import resolve_recipe, train

__all__ = ["Settings", "setup", "run_dir", "train_or_load", "show_images", "to_numpy_rgb", "plot_losses",
           "show_grids", "show_recorded_grids", "plot_training_curves", "TRAINING_CURVES",
           "KTH_TRAINING_CURVES", "read_log", "recorded_result",
           "recorded_table", "describe_provenance", "brief_provenances", "plot_stroke_colours", "print_wrapped", "print_command",
           "RESULTS_DIR", "RECORDED_METRICS"]

RESULTS_DIR = REPO_ROOT / "results"


@dataclass(frozen=True)
class Settings:
    profile: str
    device: torch.device

    @property
    def quick(self) -> bool:
        return self.profile == "quick"


def show_figures_inline() -> bool:
    """In a Jupyter kernel, draw matplotlib figures into the notebook (``%matplotlib inline``) whatever
    ``$MPLBACKEND`` says: a shell or CI that sets ``MPLBACKEND=Agg`` would otherwise build a book whose
    ``plt.show()`` draws nothing. Returns whether a kernel was found (outside one it does nothing)."""
    ipython = sys.modules.get("IPython")  # imported by every kernel; not imported here when absent
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None or getattr(shell, "kernel", None) is None:
        return False
    shell.run_line_magic("matplotlib", "inline")
    return True


def setup(seed: int = 0, profile: str | None = None) -> Settings:
    """Seed everything, pick the profile (``$COLORBOOK_PROFILE``, else full on CUDA / quick on CPU) and
    device, draw figures inline in a notebook (:func:`show_figures_inline`), and print the settings so
    the reader sees what this run does."""
    show_figures_inline()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    settings = Settings(current_profile(profile), default_device())
    print(f"colorbook profile: {settings.profile} | device: {settings.device} | torch {torch.__version__}")
    return settings


def read_json(path: Path) -> Any:
    """The JSON in ``path``; a corrupt file is named in one line (delete or restore it)."""
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}): delete it (a run) or restore it (a record)") from None


def run_dir(name: str) -> Path:
    """Where a notebook's training runs go: ``$COLORBOOK_RUNS/<name>`` (default ``<repo>/runs``, git-ignored)."""
    root = Path(os.environ.get("COLORBOOK_RUNS", REPO_ROOT / "runs"))
    return root / name


def train_or_load(recipe: "str | Recipe", name: str | None = None, *, profile: str | None = None, progress: bool = True,
                  **train_kwargs: Any) -> tuple[torch.nn.Module, dict[str, Any], Path]:
    """Train ``recipe`` (a name or a :class:`~colorbook.recipes.Recipe`, e.g. ``get("H").with_options(...)``;
    give such variants their own ``name``) into ``run_dir(name)``, or reuse a completed run there with the same recipe,
    profile and iterations. Returns ``(generator in eval mode, metrics dict, run directory)``."""
    profile = current_profile(profile)
    recipe_name = get(recipe).name
    out = run_dir(name or f"{recipe_name}-{profile}")
    metrics_path = out / "metrics.json"
    wanted = resolve_recipe(recipe, profile, **{k: train_kwargs.get(k) for k in ("iters", "seed", "batch_size")})
    metrics = read_json(metrics_path) if metrics_path.exists() else None
    recipe_path = out / "recipe.json"
    same_recipe = recipe_path.exists() and read_json(recipe_path) == json.loads(
        json.dumps(wanted.to_dict(), default=str))
    reusable = (metrics is not None and metrics.get("status") == "completed" and same_recipe
                and metrics.get("iterations") == wanted.iters and (out / "checkpoint.pt").exists())
    if reusable:
        print(f"reusing the finished run in {out} ({metrics['iterations']} iterations)")
    else:
        # the notebooks' own run folder: a stale run of other settings is replaced
        metrics = train(recipe, out, profile=profile, progress=progress, overwrite=True, **train_kwargs)
    generator, _ = load_generator(out / "checkpoint.pt", default_device())
    return generator, metrics, out


def to_numpy_rgb(images: torch.Tensor, space: str = "rgb") -> np.ndarray:
    """``(B,3,H,W)`` in ``space`` -> ``(B,H,W,3)`` RGB numpy in [0, 1] for matplotlib."""
    rgb = color.convert(images.detach().float().cpu(), space, "rgb").clamp(0, 1)
    return rgb.permute(0, 2, 3, 1).numpy()


def show_images(rows: Sequence[torch.Tensor], row_titles: Sequence[str] | None = None, space: str = "rgb",
                size: float = 1.4, title: str | None = None):
    """Plot rows of images (each ``(B,3,H,W)`` in ``space``, or ``(B,1,H,W)`` gray) as a grid; returns the figure."""
    import matplotlib.pyplot as plt
    n_rows, n_cols = len(rows), max(r.shape[0] for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(size * n_cols, size * n_rows), squeeze=False)
    for r, batch in enumerate(rows):
        pictures = batch.expand(-1, 3, -1, -1).detach().cpu().clamp(0, 1).permute(0, 2, 3, 1).numpy() \
            if batch.shape[1] == 1 else to_numpy_rgb(batch, space)
        for c in range(n_cols):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(pictures):
                ax.imshow(pictures[c], interpolation="nearest")
        if row_titles:
            axes[r, 0].set_title(row_titles[r], loc="left", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def read_log(run: str | Path) -> list[dict[str, float]]:
    """The per-iteration rows of a run's ``log.jsonl``."""
    path = Path(run) / "log.jsonl" if Path(run).is_dir() else Path(run)
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _running_mean(points: Sequence[tuple[float, float]], smooth: int) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of ``(iteration, value)`` points, ``y`` a running mean over ``smooth`` points (``x`` at
    each window's last point); unsmoothed when ``smooth`` is 1 or there are fewer points."""
    x, y = map(np.asarray, zip(*points))
    if smooth > 1 and len(y) >= smooth:
        y = np.convolve(y, np.ones(smooth) / smooth, mode="valid")
        x = x[smooth - 1:]
    return x, y


def plot_losses(run: str | Path, keys: Iterable[str], smooth: int = 5, ax=None, label_prefix: str = ""):
    """Plot logged quantities against the iteration, smoothed by a running mean of ``smooth``."""
    import matplotlib.pyplot as plt
    rows = read_log(run)
    ax = ax or plt.subplots(figsize=(6, 3))[1]
    for key in keys:
        points = [(r["iteration"], r[key]) for r in rows if key in r]
        if points:
            ax.plot(*_running_mean(points, smooth), label=label_prefix + key)
    ax.set_xlabel("iteration")
    ax.legend(fontsize=8)
    return ax


def show_grids(grids: Mapping[str, str | Path], width: float = 14.0):
    """Recorded sample grids of the same examples, side by side: the gray input, each model's colours
    under its label, the truth; one row per model, each label above its row, so that the pictures use
    the page's whole width. ``grids``: label -> sample-grid PNG (:func:`colorbook.gallery.comparison_rows`
    checks that they show the same examples). Returns the figure."""
    import matplotlib.pyplot as plt
    rows, labels = comparison_rows(grids)
    height, row_width = rows[0].shape[:2]
    # The page shows the figure about 7 inches wide: the labels scale with the figure so that they
    # read as 11-point text there, not as the 5-point text a 14-inch figure's 11 points become.
    fontsize = 11 * width / 7
    # labels wrapped to the figure's width (about 0.55 em a character), each row as tall as its picture
    # at full width plus its label's lines
    labels = [textwrap.fill(label, int(width * 72 / (0.55 * fontsize)), break_long_words=False)
              for label in labels]
    picture = width * height / row_width
    heights = [picture + (label.count("\n") + 1.6) * 1.25 * fontsize / 72 for label in labels]
    fig, axes = plt.subplots(len(rows), 1, figsize=(width, sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, row, label in zip(axes[:, 0], rows, labels):
        ax.imshow(row, interpolation="nearest")
        ax.set_title(label, loc="left", fontsize=fontsize)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def show_recorded_grids(table: str, configs: Sequence[str], profile: str = "full",
                        results_root: str | Path | None = None):
    """The sample grids that ``reproduce`` recorded beside the results of ``configs`` (``<config>.png``:
    the same test examples for every configuration), side by side between the gray input and the truth
    (:func:`show_grids`), each labelled with its configuration, what it is and the profile. A
    configuration without a grid is named: with the command that records it, or, when it is recorded
    on data the book may not show (``--data-root``), as such. Returns the figure, or ``None`` when no
    grid is recorded."""
    folder = results_dir(table, profile, results_root if results_root is not None else RESULTS_DIR)
    where = f"results/{table}/" + ("quick/" if profile == "quick" else "")
    grids, unrecorded = {}, []
    for config in configs:
        if (folder / f"{config}.png").exists():
            record = read_json(folder / f"{config}.json") if (folder / f"{config}.json").exists() else {}
            length = f", {record['iterations']:,} iterations" if "iterations" in record else ""
            label = f"{config}: {get(config).summary.split(' [')[0]} (recorded: {profile} profile{length})"
            grids[label] = folder / f"{config}.png"
        elif (folder / f"{config}.json").exists():
            print_wrapped(f"{config}: recorded in {where} without a sample grid (its data may not be shown)")
        else:
            unrecorded.append(config)
    if unrecorded:
        print_wrapped(f"not recorded yet in {where}: {', '.join(unrecorded)}; "
                      f"record {'it' if len(unrecorded) == 1 else 'them'} with:")
        print_command(record_command(table, unrecorded, profile), indent=4)
    return show_grids(grids) if grids else None


def plot_stroke_colours(panels: Mapping[str, torch.Tensor], truth: torch.Tensor, digits: torch.Tensor):
    """Where each model puts each test digit in the (a*, b*) square: one panel per model (``panels``:
    title -> its colorizations ``(B, 3, H, W)`` in normalised Lab), each digit's mean stroke colour
    (:func:`colorbook.metrics.mnist.mean_stroke_ab`) coloured by its true class (``digits`` ``(B,)``,
    with a key below), over the true colours in gray and the neutral point ``+``. Returns the figure."""
    import matplotlib.pyplot as plt

    # one colour per digit: tab10, except that its 7 is the gray of the reference points
    digit_rgb = np.array(plt.get_cmap("tab10").colors)
    digit_rgb[7] = 0.0
    true_ab = mean_stroke_ab(truth, truth)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4.6), squeeze=False)
    for ax, (title, predictions) in zip(axes[0], panels.items()):
        pred_ab = mean_stroke_ab(predictions, truth)
        ax.scatter(true_ab[:, 0], true_ab[:, 1], s=4, c="0.6", clip_on=False)
        ax.scatter(pred_ab[:, 0], pred_ab[:, 1], s=6, c=digit_rgb[digits.numpy()])
        ax.scatter([0.5], [0.5], marker="+", c="k", s=80)
        ax.set(xlim=(-0.03, 1.03), ylim=(-0.03, 1.03), aspect="equal", xlabel="a* (normalised)",
               ylabel="b* (normalised)", title=title)
    fig.tight_layout()
    key = [plt.Line2D([], [], ls="", marker="o", color=digit_rgb[d], label=str(d)) for d in range(10)]
    fig.legend(handles=key, title="true digit", ncol=10, fontsize=8, loc="upper center",
               bbox_to_anchor=(0.5, 0.02))
    return fig


#: The panels of :func:`plot_training_curves` for the DTU runs: title -> how a log row gives the value
#: (``None``: not logged), and whether the panel is drawn on a log scale.
TRAINING_CURVES = {
    "reconstruction term (λ x loss)": (lambda row: row.get("recon"), True),
    "critic: real minus fake logit": (lambda row: (row["d_real_logit"] - row["d_fake_logit"]
                                                   if "d_real_logit" in row and "d_fake_logit" in row else None),
                                      False),
    "critic's penalties (GP + R1)": (lambda row: (row.get("gp", 0.0) + row.get("r1", 0.0)
                                                  if "gp" in row or "r1" in row else None), True),
}
#: The same for the KTH runs, whose discriminator outputs probabilities and has no penalty.
KTH_TRAINING_CURVES = {
    "L1 on [0, 1] RGB (before its weight)": (lambda row: row.get("g_l1"), True),
    "discriminator: mean D(real) minus mean D(fake)": (lambda row: (row["d_real"] - row["d_fake"]
                                                                    if "d_real" in row and "d_fake" in row
                                                                    else None), False),
}


#: The dash patterns of :func:`plot_training_curves`, one per run in turn.
LINE_STYLES = ("-", (0, (5, 2)), (0, (1, 1.5)), (0, (6, 2, 1, 2)), (0, (2, 2)))


def plot_training_curves(logs: Mapping[str, str | Path], smooth: int = 5, width: float = 9.0,
                         panels: Mapping[str, tuple] | None = None):
    """The training curves of several runs, one panel per row, one colour and dash pattern per run in
    every panel (the first run on top),
    each smoothed by a running mean of ``smooth`` logged rows; the panels share the iteration axis and
    fit the page's width, so that their text stays legible. ``logs``: label -> a run folder, its
    ``log.jsonl`` or a recorded excerpt (``<config>.log.jsonl``). ``panels``: title -> (value of a log
    row or ``None``, log scale), default :data:`TRAINING_CURVES` (the reconstruction term, the
    critic's logit gap, its penalties; :data:`KTH_TRAINING_CURVES` for the KTH runs). A run that does
    not log a panel's value (no critic, no penalty) has no line there. Returns the figure."""
    import matplotlib.pyplot as plt
    panels = panels or TRAINING_CURVES
    fig, axes = plt.subplots(len(panels), 1, figsize=(width, 2.4 * len(panels) + 0.4), sharex=True,
                             squeeze=False)
    axes = axes[:, 0]
    for index, (label, log) in enumerate(logs.items()):
        rows = read_log(log)
        for ax, (value, _) in zip(axes, panels.values()):
            points = [(row["iteration"], value(row)) for row in rows if value(row) is not None]
            if points:
                # Runs often coincide (the same batches, a critic at chance): the first run (the
                # reference, e.g. K) is drawn on top and the others in their own dash pattern, so
                # that a curve hidden under another still shows through its gaps.
                ax.plot(*_running_mean(points, smooth), label=label, color=f"C{index % 10}", lw=1.4,
                        ls=LINE_STYLES[index % len(LINE_STYLES)], zorder=2 + len(logs) - index)
    for ax, (title, (_, log_scale)) in zip(axes, panels.items()):
        ax.set_title(title, loc="left")
        if log_scale and ax.lines and min(line.get_ydata().min() for line in ax.lines) > 0:
            ax.set_yscale("log")
    axes[-1].set_xlabel("iteration")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.tight_layout()
    fig.legend(handles, labels, loc="upper center", ncol=2 if len(labels) > 3 else len(labels),
               bbox_to_anchor=(0.5, 0.0))
    return fig


def recorded_result(table: str, config: str, profile: str | None = None,
                    results_root: str | Path | None = None) -> dict[str, Any] | None:
    """The recorded result of ``python -m colorbook reproduce`` for one configuration, or ``None`` when
    none is recorded yet. ``profile``: ``"full"`` (``results/<table>/<config>.json``), ``"quick"``
    (``results/<table>/quick/<config>.json``) or ``None``: the full-profile record if there is one, else
    the quick one. The record's ``profile`` key says which it is. ``results_root``: the folder that
    ``reproduce --results`` wrote to (default: the repository's ``results/``)."""
    root = Path(results_root) if results_root is not None else RESULTS_DIR
    candidates = {"full": [root / table / f"{config}.json"],
                  "quick": [root / table / "quick" / f"{config}.json"]}
    paths = candidates[profile] if profile else candidates["full"] + candidates["quick"]
    for path in paths:
        if path.exists():
            return read_json(path)
    return None


def describe_provenance(record: dict[str, Any]) -> str:
    """One line saying where a recorded result comes from."""
    p = record.get("provenance", {})
    trained_by = separate_training(record)
    # with an earlier training run, this command only evaluated: its wall time is not the training's
    took = "evaluation took" if trained_by else "training and evaluation took"
    line = (f"recorded {p.get('date', '?')} on {p.get('device', '?')}, commit {short_commit(p.get('git_commit', '?'))}, "
            f"profile {record.get('profile', '?')}, {record.get('iterations', '?')} iterations, "
            + (f"{took} {p['wall_time_s']} s; " if p.get("wall_time_s") is not None else "")
            + f"command: {p.get('command', '?')}")
    if trained_by:  # the checkpoint was trained by an earlier command
        per_iteration = record["training"].get("seconds_per_iteration")
        line += (f"; trained by: {trained_by.get('command', '?')} (commit {short_commit(trained_by.get('git_commit', '?'))}, "
                 f"{trained_by.get('device', '?')}, {trained_by.get('date', '?')}, training wall time "
                 f"{trained_by.get('wall_time_s', '?')} s"
                 + (f", {per_iteration:.2f} s/iteration)" if isinstance(per_iteration, (int, float)) else ")"))
    return line


def brief_provenances(records: Mapping[str, dict[str, Any]], folder: str) -> list[str]:
    """Short lines on where several records of one folder come from (``folder``, as the reader finds it
    in the repository, e.g. ``results/kth/quick/``): one line per group of records trained alike (same
    profile, iterations and device), naming its configurations and the days they were trained, and
    the files that hold the full provenance (:func:`describe_provenance`). ``records``: configuration
    -> record."""
    groups: dict[tuple, list[str]] = {}
    days: dict[str, str] = {}
    for config, record in records.items():
        trained = separate_training(record) or record.get("provenance", {})  # the training run's own
        key = (record.get("profile", "?"), record.get("iterations", "?"), _short_device(trained.get("device", "?")))
        groups.setdefault(key, []).append(config)
        days[config] = str(trained.get("date", "?"))[:10]
    lines = []
    for (profile, iterations, device), configs in groups.items():
        days_of = sorted({days[c] for c in configs})
        when = days_of[0] if len(days_of) == 1 else f"{days_of[0]} to {days_of[-1]}"
        files = f"{folder}{configs[0]}.json" if len(configs) == 1 else f"{folder}<config>.json"
        lines.append(f"{', '.join(configs)}: {profile} profile, {iterations} iterations, {device}, {when}; "
                     f"provenance in {files}")
    return lines


def _short_device(device: str) -> str:
    """``"CPU (x86_64, 2 cores, 1 torch threads)"`` -> ``"CPU (1 torch thread)"``: the thread count is the
    part of a CPU's description that changes a result; other devices are kept as recorded."""
    threads = re.search(r"(\d+) torch threads?", device)
    if device.startswith("CPU") and threads:
        count = int(threads.group(1))
        return f"CPU ({count} torch thread{'s' if count != 1 else ''})"
    return device


# The metrics a chapter shows for a recorded run (all of them are in its JSON file); arrows say which way is better.
RECORDED_METRICS = {"hue_accuracy": "hue acc. ↑", "chroma_ratio": "chroma ratio (1 = true)",
                    "classifier_frechet_distance": "classifier FD ↓ (not FID)", "psnr_ab": "PSNR a*b* (dB) ↑",
                    "ssim_rgb": "SSIM RGB ↑", "colourfulness_ratio": "colourfulness ratio (1 = true)"}


PAGE_WIDTH = 88  # characters of printed output the book's page shows without a scroll bar


def print_wrapped(text: str) -> None:
    """Print ``text`` wrapped to the page (88 columns; continuation lines indented), never breaking a
    word, a path or an option."""
    print(textwrap.fill(text, PAGE_WIDTH, subsequent_indent="    ", break_long_words=False,
                        break_on_hyphens=False))


def print_command(command: str, indent: int = 0) -> None:
    """Print a shell command so that it fits the page and can still be pasted whole: lines of at most 88
    columns, each but the last ending in `` \\`` (the shell's line continuation), continuation lines
    indented four more spaces than the first (``indent``). An option stays on the line of its value;
    a word longer than the page is left whole."""
    words = command.split()
    units: list[str] = []  # an option and its value stay on one line
    for word in words:
        if units and units[-1].startswith("-") and " " not in units[-1] and not word.startswith("-"):
            units[-1] += " " + word
        else:
            units.append(word)
    lines: list[str] = []
    line = ""
    for word in units:
        if not line:
            line = " " * indent + word
        elif len(line) + 1 + len(word) + len(" \\") > PAGE_WIDTH:  # leave room for the continuation
            lines.append(line + " \\")
            line = " " * (indent + 4) + word
        else:
            line += " " + word
    lines.append(line)
    print("\n".join(lines))


def recorded_table(table: str, configs: Sequence[str], profile: str | None = "full"):
    """The recorded results of ``configs`` as a small table (one row per configuration that has a record:
    profile, iterations, training digits/images, the main metrics, training s/iteration and the paper's FID),
    after printing one short provenance line per group of records made alike (:func:`brief_provenances`)
    and naming the configurations that have none.

    Returns a ``pandas.DataFrame``, so a notebook cell can end with it, or ``None`` when nothing is
    recorded (the cell then shows only the line naming the command that records it).
    Nothing is ever filled in: a configuration without a record is reported missing.
    """
    import pandas as pd

    rows, missing, found = {}, [], {}
    for config in configs:
        record = recorded_result(table, config, profile=profile)
        if record is None:
            missing.append(config)
        else:
            found[config] = record
    by_folder: dict[str, dict[str, dict]] = {}
    for config, record in found.items():
        where = f"results/{table}/" + ("quick/" if record.get("profile") == "quick" else "")
        by_folder.setdefault(where, {})[config] = record
    for where, records in by_folder.items():
        for line in brief_provenances(records, where):
            print_wrapped(line)
    for config, record in found.items():
        metrics = record.get("metrics", {})
        rows[config] = {"profile": record.get("profile"), "iterations": record.get("iterations"),
                        "training images": record.get("dataset_size_train"),
                        **{title: metrics[key] for key, title in RECORDED_METRICS.items()
                           if isinstance(metrics.get(key), (int, float))},
                        "s/iteration (training)": record.get("training", {}).get("seconds_per_iteration")}
        if record.get("paper", {}).get("fid") is not None:  # the KTH report gives no number
            rows[config]["paper FID"] = record["paper"]["fid"]
    if missing:
        where = f"results/{table}/" + ("quick/" if profile == "quick" else "")
        print_wrapped(f"No {profile + '-profile ' if profile else ''}result recorded yet in {where} for "
                      + ", ".join(f"{c} (the paper reports FID {get(c).paper.get('fid')})" for c in missing)
                      + f"; record {'it' if len(missing) == 1 else 'them'} with:")
        # the command on a line of its own, so that it can be copied whole
        print_command(record_command(table, missing, profile or "full"), indent=4)
    if not rows:  # nothing to show: no empty table under the line above
        return None
    return pd.DataFrame.from_dict(rows, orient="index").round(3)
