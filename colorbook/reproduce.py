"""Reproduce a paper table: train and evaluate each configuration, record results with provenance.

``python -m colorbook reproduce --table dtu-mnist --profile quick --configs H,K``

For each configuration it trains the recipe (``runs/<table>/<config>-<profile>``, resumable), evaluates
the checkpoint (:mod:`colorbook.evaluate`) and writes

- ``results/<table>/<config>.json`` (full profile) or ``results/<table>/quick/<config>.json`` (quick
  profile; kept apart so that a quick run never overwrites a full-profile record): every metric,
  iterations, data set and its size, seed, the paper's number, and provenance (command, git commit,
  device, torch version, date, wall time);
- a small sample grid PNG beside it, only when the data is the project's own offline default
  (images from ``--data-root`` such as the development data are never copied into ``results/``);
- ``<config>.log.jsonl`` beside it: every 5th row of the training log (losses, the critic's logits,
  penalties), for the loss and penalty curves of the results gallery;
- ``results/<table>/[quick/]table.md``: a markdown table of all recorded configurations beside the
  paper's reported numbers (other JSON files in the folder, such as ``H-critic-probe.json``, are left
  out).

A record is never replaced by a run with other settings (profile, iterations, batch size, image size,
data set and data root, seed, resolved options) unless ``--overwrite`` is given; this is checked for
every configuration before any training starts. A re-run with the same settings replaces the record.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from colorbook import recipes
from colorbook.data import make_dataset
from colorbook.evaluate import evaluate_checkpoint
from colorbook.metrics.fid import FIDWeightsMissing, find_inception_weights
from colorbook.profile import check_profile, current_profile, default_device
from colorbook.provenance import REPO_ROOT, command_line, provenance, short_commit
from colorbook.training.checkpoint import load_generator
from colorbook.training.loop import resolve_recipe, sample_grid, train, write_log_excerpt
from colorbook.training.stream import fixed_examples

__all__ = ["reproduce", "results_dir", "write_markdown_table", "separate_training", "add_reproduce_subcommand",
           "TABLES", "RECORD_SETTINGS"]

TABLES = ("dtu-mnist", "dtu-scenes", "kth")
_COLUMNS = [("hue_accuracy", "hue acc."), ("chroma_ratio", "chroma ratio"),
            ("classifier_frechet_distance", "classifier FD"), ("psnr_ab", "PSNR a*b* (dB)"),
            ("ssim_rgb", "SSIM RGB"), ("colourfulness_ratio", "colourfulness ratio"),
            ("ab_hist_hellinger", "a*b* hist. Hellinger")]
#: The entries of a record that define the experiment: a run that differs in any of them measures
#: something else and may replace the record only when asked (``--overwrite``).
RECORD_SETTINGS = ("profile", "iterations", "batch_size", "image_size", "lr", "dataset", "data_root", "seed",
                   "options")
_NOT_RECORDED = "not recorded"


def results_dir(table: str, profile: str, root: str | Path | None = None) -> Path:
    """``<root>/<table>`` for the full profile, ``<root>/<table>/quick`` for the quick one."""
    base = Path(root) if root is not None else REPO_ROOT / "results"
    return base / table if profile == "full" else base / table / "quick"


def separate_training(record: dict[str, Any]) -> dict[str, Any] | None:
    """The provenance of the run that trained a record's checkpoint when a different command did (a `train`
    run that `reproduce` found finished and only evaluated); ``None`` when the record's own command trained it."""
    trained = record.get("training", {}).get("provenance")
    if trained and trained.get("command") != record.get("provenance", {}).get("command"):
        return trained
    return None


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "" if value is None else str(value)


def _read_json(path: Path) -> Any:
    """The JSON in ``path``; a corrupt file is named in one clear :class:`ValueError`."""
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}); repair it or move it away") from None


def _config_records(table: str, folder: Path) -> dict[str, dict[str, Any]]:
    """The configuration records in ``folder``: ``<config>.json`` for a configuration of ``table``
    holding ``metrics``. Other JSON files there (``H-critic-probe.json``, notes) are not records."""
    configs = {recipe.name for recipe in recipes.table(table)}
    records = {}
    for path in sorted(folder.glob("*.json")):
        if path.stem not in configs:
            continue
        record = _read_json(path)
        if isinstance(record, dict) and isinstance(record.get("metrics"), dict):
            records[path.stem] = record
    return records


def write_markdown_table(table: str, profile: str, root: str | Path | None = None) -> Path:
    """(Re)write ``table.md``, the markdown summary of every recorded configuration of ``table`` in ``profile``.

    Reads only configuration records (``<config>.json`` with ``metrics``); other JSON files are skipped.
    """
    folder = results_dir(table, profile, root)
    records = list(_config_records(table, folder).values())
    metric_keys = [(k, title) for k, title in _COLUMNS if any(k in r["metrics"] for r in records)
                   # every true pixel of a colorized digit lies in the outermost a*b* bins, so any model below
                   # ~90 % of the true chroma scores 1.0: the column says nothing on this table
                   and not (table == "dtu-mnist" and k == "ab_hist_hellinger")]
    has_fid = any(isinstance(r["metrics"].get("fid"), dict) for r in records)
    has_paper_fid = any(r.get("paper", {}).get("fid") is not None for r in records)  # the KTH report has none
    header = ["config", "what", *[t for _, t in metric_keys]] + (["FID (ours)"] if has_fid else []) + \
             (["paper FID"] if has_paper_fid else []) + \
             ["iterations", "device", "training s/iteration", "training wall time (s)"]
    lines = [f"# {table}: recorded results ({profile} profile)", "",
             "Written by `python -m colorbook reproduce`; every number below was measured by the run named in "
             "its JSON file (command, commit, device, date)."
             + (" The paper's FID is the paper's own number (10,000 vs 10,000 images, pytorch-fid), quoted for "
                "comparison; our metrics are not FID unless the column says so." if has_paper_fid else
                " The paper gives no number to set beside them."), "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in records:
        m = r["metrics"]
        row = [r["config"], r["summary"].split(" [")[0], *[_format(m.get(k)) for k, _ in metric_keys]]
        if has_fid:
            row.append(_format(m["fid"]["fid"]) if isinstance(m.get("fid"), dict) else "not computed")
        row += [_format(r.get("paper", {}).get("fid"))] if has_paper_fid else []
        row += [str(r["iterations"]), r["provenance"]["device"],
                _format(r.get("training", {}).get("seconds_per_iteration")),
                _format(r["provenance"].get("training_wall_time_s"))]
        lines.append("| " + " | ".join(row) + " |")
    trained_elsewhere = [(r["config"], separate_training(r)) for r in records if separate_training(r)]
    if trained_elsewhere:  # checkpoints that an earlier `train` command produced, evaluated by `reproduce`
        lines += ["", "Trained by an earlier command, then evaluated and recorded by `reproduce`:", ""]
        lines += [f"- {config}: `{p['command']}` (commit {short_commit(p.get('git_commit'))}, {p.get('device')}, "
                  f"{p.get('date')})" for config, p in trained_elsewhere]
    path = folder / "table.md"  # README.md beside it is the folder's results page, written by hand
    path.write_text("\n".join(lines) + "\n")
    return path


def _normalised(value: Any) -> Any:
    """``value`` as it reads back from a JSON record (tuples become lists), so that the two compare."""
    return json.loads(json.dumps(value, default=str))


def _planned_settings(recipe_name: str, profile: str, iters: int | None, data_root: str | None) -> dict[str, Any]:
    """The :data:`RECORD_SETTINGS` a run will record, known before it trains (as ``train`` resolves them)."""
    run = resolve_recipe(recipe_name, profile, iters=iters)
    return _normalised({"profile": profile, "iterations": run.iters, "batch_size": run.batch_size,
                        "image_size": run.image_size, "lr": run.lr, "dataset": run.dataset,
                        "data_root": _data_root_entry(data_root),
                        "seed": run.seed, "options": dict(run.options)})


def _data_root_entry(data_root: str | Path | None) -> str | None:
    # resolved, so that "data" and "./data" are the same data and a different folder is not
    return None if data_root is None else str(Path(data_root).expanduser().resolve())


def _recorded_settings(record: dict[str, Any], path: Path) -> dict[str, Any]:
    settings = {key: record.get(key, _NOT_RECORDED) for key in RECORD_SETTINGS}
    if "data_root" not in record:
        # Records written before data_root was recorded: their sample grid is written only for the
        # project's offline default data, so one beside the record means "no --data-root".
        settings["data_root"] = None if path.with_suffix(".png").exists() else _NOT_RECORDED
    return _normalised(settings)


def _differences(recorded: dict[str, Any], planned: dict[str, Any]) -> list[str]:
    """``"name recorded -> planned"`` for each setting that differs (options key by key)."""
    changes = []
    for key in RECORD_SETTINGS:
        old, new = recorded.get(key), planned.get(key)
        if old == new:
            continue
        if key == "options" and isinstance(old, dict) and isinstance(new, dict):
            changes += [f"options.{k} {old.get(k, 'unset')!r} -> {new.get(k, 'unset')!r}"
                        for k in sorted(set(old) | set(new)) if old.get(k, _NOT_RECORDED) != new.get(k, _NOT_RECORDED)]
        else:
            changes.append(f"{key} {old!r} -> {new!r}")
    return changes


def _check_replaceable(path: Path, planned: dict[str, Any], overwrite: bool) -> None:
    """Refuse, in one line, to replace the record at ``path`` with one of other settings unless asked."""
    if overwrite or not path.exists():
        return
    record = _read_json(path)
    if not isinstance(record, dict) or "metrics" not in record:
        raise ValueError(f"{path} exists but is not a reproduce record; move it away or pass --overwrite "
                         "(overwrite=True) to replace it")
    changes = _differences(_recorded_settings(record, path), planned)
    if changes:
        raise ValueError(f"{path} was recorded with other settings ({'; '.join(changes)}); not replacing it: "
                         "pass --overwrite (overwrite=True) to replace it, or --results DIR to record elsewhere")


def _fid_available(weights: str | None) -> bool:
    try:
        find_inception_weights(weights)
        return True
    except FIDWeightsMissing:
        return False


def reproduce(table: str, profile: str, configs: list[str] | None = None, *, iters: int | None = None,
              device: str | None = None, data_root: str | None = None, runs_root: str | Path | None = None,
              results_root: str | Path | None = None, n_eval: int | None = None, fid: str = "auto",
              fid_weights: str | None = None, command: str | None = None, progress: bool = True,
              overwrite: bool = False) -> list[Path]:
    """Train + evaluate each configuration of ``table`` and record it; returns the JSON paths written.

    ``fid``: ``"yes"`` (fail at once without weights), ``"no"``, or ``"auto"`` (compute it when the
    Inception weights are on this machine, else record why it is missing).

    An existing ``<config>.json`` (and its PNG) is replaced only by a run with the same
    :data:`RECORD_SETTINGS` (a re-run of the same experiment), or when ``overwrite`` is true; otherwise a
    :class:`ValueError` names the file and the differing settings, raised for every configuration
    before any training starts.
    """
    check_profile(profile)
    rows = recipes.table(table)
    if configs:
        wanted = {c.strip().lower() for c in configs if c.strip()}
        unknown = wanted - {r.name.lower() for r in rows}
        if unknown:
            raise ValueError(f"{', '.join(sorted(unknown))} not in table {table}: "
                             f"choose from {', '.join(r.name for r in rows)}")
        rows = [r for r in rows if r.name.lower() in wanted]
    if fid == "yes":
        find_inception_weights(fid_weights)
    compute_fid = fid == "yes" or (fid == "auto" and _fid_available(fid_weights))
    device = str(default_device(device))
    command = command or command_line()
    runs = Path(runs_root) if runs_root is not None else REPO_ROOT / "runs"
    out_folder = results_dir(table, profile, results_root)
    # Before any training: every record this run would replace, and every record the summary table reads
    # (a corrupt one would otherwise stop the run after the first configuration had trained).
    planned = {recipe.name: _planned_settings(recipe.name, profile, iters, data_root) for recipe in rows}
    for recipe in rows:
        _check_replaceable(out_folder / f"{recipe.name}.json", planned[recipe.name], overwrite)
    if out_folder.is_dir():
        _config_records(table, out_folder)
    out_folder.mkdir(parents=True, exist_ok=True)
    written = []
    for recipe in rows:
        started = time.time()
        run_provenance = provenance(device, command)  # at the start: the commit that actually runs
        run = runs / table / f"{recipe.name}-{profile}"
        train_metrics = train(recipe.name, run, profile=profile, iters=iters, device=device, data_root=data_root,
                              resume=True, progress=progress, command=command)
        metrics = evaluate_checkpoint(run / "checkpoint.pt", data_root=data_root, n=n_eval, fid=compute_fid,
                                      fid_weights=fid_weights, device=device, progress=progress, command=command)
        if not compute_fid:
            metrics["fid"] = ("not computed: " + ("disabled (--fid no)" if fid == "no" else
                              "pytorch-fid Inception weights are not on this machine (see colorbook.metrics.fid)"))
        resolved = recipes.get(recipe.name).resolve(profile)
        record = {
            "table": table, "config": recipe.name, "summary": recipe.summary, "profile": profile,
            "iterations": metrics["iterations"], "batch_size": train_metrics["batch_size"],
            "image_size": train_metrics["image_size"], "dataset": train_metrics["dataset"],
            # the resumed run's learning rate equals the recipe's (train refuses another on resume)
            "lr": resolved.lr,
            "data_root": _data_root_entry(data_root),
            "dataset_size_train": train_metrics["dataset_size"], "dataset_size_eval": metrics["dataset_size"],
            "n_eval": metrics["n"], "seed": train_metrics["seed"], "options": dict(resolved.options),
            "paper": dict(recipe.paper), "metrics": {k: v for k, v in metrics.items()
                                                     if k not in ("training_provenance", "provenance", "checkpoint")},
            "training": {"seconds_per_iteration": train_metrics["seconds_per_iteration"],
                         "final_losses_mean_last_50": train_metrics["final_losses_mean_last_50"],
                         "status": train_metrics["status"],
                         # the run that trained the checkpoint: an earlier `train` command when resumed
                         "iterations_this_run": train_metrics.get("iterations_this_run"),
                         "provenance": train_metrics["provenance"]},
            "provenance": {**run_provenance, "wall_time_s": round(time.time() - started, 1),
                           "training_wall_time_s": train_metrics["provenance"].get("wall_time_s")},
        }
        path = out_folder / f"{recipe.name}.json"
        # Again with what was actually recorded: a finished run found in the runs folder may hold more
        # iterations than asked for, which the check before training could not know.
        _check_replaceable(path, _recorded_settings(record, path), overwrite)
        path.write_text(json.dumps(record, indent=2, default=str))
        write_log_excerpt(run, path.with_suffix(".log.jsonl"))
        written.append(path)
        grid = out_folder / f"{recipe.name}.png"
        if data_root is None:  # only the project's own offline data may be shown
            generator, _ = load_generator(run / "checkpoint.pt", device)
            eval_set = make_dataset(resolved.dataset, "test", image_size=resolved.image_size, profile=profile)
            sample_grid(generator, fixed_examples(eval_set, 10, generator.color_space, torch.device(device)), grid)
        elif grid.exists():  # an earlier record's grid would pass for this record's samples
            grid.unlink()
        write_markdown_table(table, profile, results_root)
        print(f"{recipe.name}: wrote {path}")
    return written


def _run(args: argparse.Namespace) -> int:
    command = command_line(getattr(args, "argv", None))
    reproduce(args.table, current_profile(args.profile), args.configs.split(",") if args.configs else None,
              iters=args.iters, device=args.device, data_root=args.data_root, results_root=args.results,
              runs_root=args.runs, n_eval=args.n, fid=args.fid, fid_weights=args.fid_weights, command=command,
              overwrite=args.overwrite)
    return 0


def add_reproduce_subcommand(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("reproduce", help="train + evaluate every configuration of a paper table and "
                                                "record results/<table>/<config>.json with provenance")
    p.add_argument("--table", required=True, choices=TABLES)
    p.add_argument("--profile", choices=["quick", "full"], help="default: $COLORBOOK_PROFILE, else full on CUDA")
    p.add_argument("--configs", help="comma-separated configurations, e.g. H,K (default: the whole table)")
    p.add_argument("--iters", type=int, help="override the recipes' iterations")
    p.add_argument("--device", help="cpu or cuda")
    p.add_argument("--data-root", help="data folder (no sample grids are written for data from here)")
    p.add_argument("--n", type=int, help="evaluate on the first N test images (default: all)")
    p.add_argument("--fid", choices=["auto", "yes", "no"], default="auto",
                   help="FID with pytorch-fid's InceptionV3: auto = when its weights are on this machine")
    p.add_argument("--fid-weights", help="path to the pytorch-fid Inception weights")
    p.add_argument("--results", help="results folder (default: <repo>/results)")
    p.add_argument("--runs", help="training runs folder (default: <repo>/runs)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace recorded results made with other settings (iterations, batch size, data, "
                        "seed, options); without it such a run stops before training")
    p.set_defaults(func=_run)
    return p
