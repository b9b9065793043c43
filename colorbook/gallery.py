"""The results gallery's computations (book/15-results-gallery): which results are recorded, the
sweeps summarised over seeds, and side-by-side grids built from the recorded sample grids.

Nothing here trains or fills in a number: every value comes from a JSON record in ``results/``, and
a result that is not recorded is reported as missing, with the one command that records it.
"""
from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from colorbook import recipes
from colorbook.provenance import REPO_ROOT

__all__ = ["SWEEP_METRICS", "record_command", "recorded_status", "sweep_records", "summarise_seeds", "grid_rows",
           "comparison_rows", "CLAIM", "check_claim", "DTU_MNIST_FINDINGS", "VERDICT_METRICS", "finding_verdicts"]

#: The critic sweep's metrics, in the order the gallery shows them.
SWEEP_METRICS = ("hue_accuracy", "chroma_ratio", "colourfulness_ratio", "classifier_frechet_distance")


def record_command(table: str, configs: Sequence[str], profile: str = "full") -> str:
    """The one command that records the results of ``configs`` of ``table`` in ``profile``; without
    ``--configs`` when they are the whole table (``reproduce``'s default), so that it fits a line."""
    command = f"python -m colorbook reproduce --table {table} --profile {profile}"
    if sorted(configs) == sorted(recipe.name for recipe in recipes.table(table)):
        return command
    return f"{command} --configs {','.join(configs)}"


def recorded_status(table: str, results_root: str | Path | None = None) -> list[dict[str, Any]]:
    """One row per configuration of ``table`` (in table order): whether its full-profile record
    ``results/<table>/<config>.json`` exists, and the command that records it.

    Returns dicts with keys ``config``, ``recorded`` (bool), ``path`` (relative to the results root's
    parent) and ``command``.
    """
    root = Path(results_root) if results_root is not None else REPO_ROOT / "results"
    rows = []
    for recipe in recipes.table(table):
        path = root / table / f"{recipe.name}.json"
        rows.append({"config": recipe.name, "recorded": path.is_file(),
                     "path": f"{root.name}/{table}/{recipe.name}.json",
                     "command": record_command(table, [recipe.name])})
    return rows


def sweep_records(folder: str | Path) -> list[dict[str, Any]]:
    """The records of one critic-sweep folder (``<variant>-s<seed>.json``), sorted by variant and seed."""
    records = [json.loads(p.read_text()) for p in Path(folder).glob("*-s*.json")]
    return sorted(records, key=lambda r: (r["variant"], r["seed"]))


def summarise_seeds(records: Sequence[Mapping[str, Any]],
                    metrics: Sequence[str] = SWEEP_METRICS) -> list[dict[str, Any]]:
    """Per variant (first-seen order): the number of seeds, and per metric the mean, min and max over
    the seeds (``None`` where no seed has the metric).

    Returns dicts ``{"variant", "seeds", "<metric>": mean, "<metric>_min", "<metric>_max"}``.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        groups.setdefault(record["variant"], []).append(record)
    rows = []
    for variant, group in groups.items():
        row: dict[str, Any] = {"variant": variant, "seeds": len(group)}
        for metric in metrics:
            values = [r["metrics"][metric] for r in group if r["metrics"].get(metric) is not None]
            row[metric] = statistics.mean(values) if values else None
            row[f"{metric}_min"] = min(values) if values else None
            row[f"{metric}_max"] = max(values) if values else None
        rows.append(row)
    return rows


def grid_rows(path: str | Path, rows: int = 3, padding: int = 2) -> list[np.ndarray]:
    """Split a recorded sample grid (:func:`colorbook.training.loop.sample_grid`: ``rows`` rows of
    tiles with ``padding`` black pixels around each) into its rows.

    Returns ``rows`` arrays ``(tile_height, width, 3)``, ``uint8`` RGB: for a sample grid, the gray
    input, the model's colours and the truth.
    """
    pixels = np.asarray(Image.open(path).convert("RGB"))
    tile = (pixels.shape[0] - padding) // rows - padding
    if tile <= 0 or rows * (tile + padding) + padding != pixels.shape[0]:
        raise ValueError(f"{path}: {pixels.shape[0]} pixels high is not {rows} rows of tiles with "
                         f"{padding}-pixel padding; is it a sample grid?")
    return [pixels[padding + i * (tile + padding): padding + i * (tile + padding) + tile] for i in range(rows)]


def comparison_rows(grids: Mapping[str, str | Path]) -> tuple[list[np.ndarray], list[str]]:
    """Side-by-side rows from sample grids of the same examples: the gray input (from the first grid),
    each grid's model row under its label, and the truth.

    ``grids``: label -> sample-grid PNG. Raises ``ValueError`` when the grids do not show the same
    inputs (then the rows would not line up). Returns ``(rows, labels)``.
    """
    if not grids:
        raise ValueError("no sample grids given")
    split = {label: grid_rows(path) for label, path in grids.items()}
    first_label, first = next(iter(split.items()))
    for label, (gray, _, truth) in split.items():
        if gray.shape != first[0].shape or not np.array_equal(gray, first[0]) or not np.array_equal(truth, first[2]):
            raise ValueError(f"the grids of {first_label!r} and {label!r} show different examples")
    rows = [first[0], *(model for _, model, _ in split.values()), first[2]]
    return rows, ["gray input", *split, "truth"]


#: The bar an adversarial recipe must clear against reconstruction only (K) for the book to say the
#: critic helps (the issue "A critic that learns"): metric -> (what it must be, description).
CLAIM = {
    "classifier_frechet_distance": "at most half of K's",
    "chroma_ratio": "at least 0.95",
    "colourfulness_ratio": "at least 0.95",
    "hue_accuracy": "not below K's",
}


def check_claim(adversarial: Mapping[str, float], reference: Mapping[str, float]) -> dict[str, bool]:
    """Whether an adversarial model's metrics clear :data:`CLAIM` against the reference's (K's).

    ``adversarial``, ``reference``: metric name -> value (e.g. a record's ``metrics``, or a row of
    :func:`summarise_seeds`: then the seeds' means are compared). Returns metric -> passed.
    """
    return {
        "classifier_frechet_distance": adversarial["classifier_frechet_distance"]
        <= 0.5 * reference["classifier_frechet_distance"],
        "chroma_ratio": adversarial["chroma_ratio"] >= 0.95,
        "colourfulness_ratio": adversarial["colourfulness_ratio"] >= 0.95,
        "hue_accuracy": adversarial["hue_accuracy"] >= reference["hue_accuracy"],
    }


#: The DTU report's findings on colorized MNIST, each read from a pair of Table 1 rows:
#: (what is compared, first configuration, second configuration). The paper's FIDs say which is better.
DTU_MNIST_FINDINGS = (
    ("adversarial (H) vs reconstruction only (K)", "H", "K"),
    ("instance smoothing: C vs B", "C", "B"),
    ("instance smoothing: H vs J", "H", "J"),
    ("R1 on top of GP: G vs E", "G", "E"),
    ("R1 instead of GP: H vs G", "H", "G"),
    ("R1 gamma 10 vs 1 (ours: 0.1 vs 0.01): H vs I", "H", "I"),
    ("Huber vs MSE: E vs D", "E", "D"),
)

#: The metrics a finding is checked on, each as its distance from the ideal value (smaller is better).
VERDICT_METRICS = {
    "hue_accuracy": lambda value: 1 - value,
    "chroma_ratio": lambda value: abs(value - 1),
    "classifier_frechet_distance": lambda value: value,
}


def finding_verdicts(records: Mapping[str, Mapping[str, Any]], tolerance: Mapping[str, float],
                     near_gray_below: float, findings: Sequence[tuple[str, str, str]] = DTU_MNIST_FINDINGS
                     ) -> tuple[list[dict[str, str]], list[str]]:
    """Check each of the paper's ``findings`` in recorded results, metric by metric.

    ``records``: configuration -> record (``metrics`` and ``paper.fid``, as ``reproduce`` writes them);
    ``tolerance``: metric -> the largest gap called a tie (a gap no larger than chance gives);
    ``near_gray_below``: a model with a chroma ratio below this has no colour to compare, and a finding
    that involves one is left out. A finding whose two configurations are not both recorded is skipped.

    Returns ``(rows, left_out)``: per checked finding a dict ``{"finding", "paper FID": "15.784 vs
    18.010 (first better)", <metric>: "0.930 vs 0.910: agrees" | "...: disagrees" | "...: tie"}``
    ("agrees": the configuration with the paper's lower FID is the better one by more than the
    tolerance); and one line per finding left out, naming the near-gray configurations.
    """
    rows, left_out = [], []
    for label, first, second in findings:
        a, b = records.get(first), records.get(second)
        if a is None or b is None:
            continue
        gray = [c for c, r in ((first, a), (second, b)) if r["metrics"]["chroma_ratio"] < near_gray_below]
        if gray:
            left_out.append(f"{label} ({' and '.join(gray)} near gray)")
            continue
        paper_first_better = a["paper"]["fid"] < b["paper"]["fid"]
        row = {"finding": label, "paper FID": f"{a['paper']['fid']:.3f} vs {b['paper']['fid']:.3f} "
                                              f"({'first' if paper_first_better else 'second'} better)"}
        for metric, badness in VERDICT_METRICS.items():
            x, y = a["metrics"][metric], b["metrics"][metric]
            gap = badness(y) - badness(x)  # > 0: the first is better
            if abs(gap) <= tolerance[metric]:
                word = "tie"
            else:
                word = "agrees" if (gap > 0) == paper_first_better else "disagrees"
            row[metric] = f"{x:.3f} vs {y:.3f}: {word}"
        rows.append(row)
    return rows, left_out
