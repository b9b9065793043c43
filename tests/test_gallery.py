"""The gallery's helpers: recorded/missing status, seed summaries, and rows cut from sample grids."""
from __future__ import annotations

import json
import shlex

import numpy as np
import pytest
import torch
from PIL import Image

from colorbook.cli import build_parser
from colorbook import recipes
from colorbook.gallery import (check_claim, comparison_rows, finding_verdicts, grid_rows, record_command,
                               recorded_status, summarise_seeds)
from colorbook.training.loop import image_grid


def _save_grid(path, rows):
    """A sample grid as sample_grid writes it: ``rows`` (list of (N,3,H,W) in [0,1]) tiled row by row."""
    grid = image_grid(torch.cat(rows), nrow=rows[0].shape[0], padding=2)
    Image.fromarray(grid.mul(255).round().byte().permute(1, 2, 0).numpy()).save(path)


def test_recorded_status_names_what_is_missing_and_how_to_record_it(tmp_path):
    (tmp_path / "dtu-mnist").mkdir()
    (tmp_path / "dtu-mnist" / "K.json").write_text(json.dumps({"config": "K"}))
    status = {row["config"]: row for row in recorded_status("dtu-mnist", tmp_path)}
    assert list(status) == list("ABCDEFGHIJK")
    assert status["K"]["recorded"] and not status["H"]["recorded"]
    assert status["H"]["command"] == "python -m colorbook reproduce --table dtu-mnist --profile full --configs H"


def test_record_command_is_one_reproduce_call_for_every_missing_config():
    # the whole table is reproduce's default: no --configs list to run past the page
    every = [recipe.name for recipe in recipes.table("kth")]
    assert record_command("kth", every[::-1]) == "python -m colorbook reproduce --table kth --profile full"
    command = record_command("kth", ["v1", "min-patchgan-cond"], profile="quick")
    words = shlex.split(command)
    assert words[:3] == ["python", "-m", "colorbook"]
    args = build_parser().parse_args(words[3:])  # what the package's own CLI reads from it
    assert (args.command, args.table, args.profile) == ("reproduce", "kth", "quick")
    assert args.configs in ("v1,min-patchgan-cond", ["v1", "min-patchgan-cond"])


def test_summarise_seeds_gives_mean_and_range_per_variant():
    records = [{"variant": "a", "seed": 0, "metrics": {"chroma_ratio": 0.6, "hue_accuracy": None}},
               {"variant": "a", "seed": 1, "metrics": {"chroma_ratio": 0.8, "hue_accuracy": None}},
               {"variant": "b", "seed": 0, "metrics": {"chroma_ratio": 1.0}}]
    rows = summarise_seeds(records, metrics=("chroma_ratio", "hue_accuracy"))
    assert [r["variant"] for r in rows] == ["a", "b"] and rows[0]["seeds"] == 2
    assert rows[0]["chroma_ratio"] == pytest.approx(0.7)
    assert (rows[0]["chroma_ratio_min"], rows[0]["chroma_ratio_max"]) == (0.6, 0.8)
    assert rows[0]["hue_accuracy"] is None and rows[1]["chroma_ratio"] == 1.0


def test_grid_rows_cut_a_sample_grid_into_input_model_and_truth(tmp_path):
    gray, model, truth = torch.full((4, 3, 8, 8), 0.2), torch.rand(4, 3, 8, 8), torch.full((4, 3, 8, 8), 0.9)
    _save_grid(tmp_path / "g.png", [gray, model, truth])
    rows = grid_rows(tmp_path / "g.png")
    assert [r.shape for r in rows] == [(8, 4 * 10 + 2, 3)] * 3
    assert rows[0][:, 2:10].min() == rows[0][:, 2:10].max() == 51  # 0.2 * 255, the first tile
    expected = model[1].mul(255).round().byte().permute(1, 2, 0).numpy()
    assert np.array_equal(rows[1][:, 12:20], expected)  # the second tile of the model row
    Image.fromarray(np.zeros((51, 30, 3), np.uint8)).save(tmp_path / "not-a-grid.png")
    with pytest.raises(ValueError, match="is it a sample grid"):
        grid_rows(tmp_path / "not-a-grid.png")


def test_comparison_rows_stack_models_between_input_and_truth_and_refuse_other_examples(tmp_path):
    gray, truth = torch.full((2, 3, 8, 8), 0.3), torch.full((2, 3, 8, 8), 0.7)
    _save_grid(tmp_path / "k.png", [gray, torch.zeros(2, 3, 8, 8), truth])
    _save_grid(tmp_path / "h.png", [gray, torch.ones(2, 3, 8, 8), truth])
    rows, labels = comparison_rows({"K": tmp_path / "k.png", "H": tmp_path / "h.png"})
    assert labels == ["gray input", "K", "H", "truth"]
    assert rows[1][:, 2:10].max() == 0 and rows[2][:, 2:10].min() == 255
    _save_grid(tmp_path / "other.png", [gray * 0.5, torch.ones(2, 3, 8, 8), truth])
    with pytest.raises(ValueError, match="different examples"):
        comparison_rows({"K": tmp_path / "k.png", "other": tmp_path / "other.png"})


def test_check_claim_applies_each_bar():
    k = {"classifier_frechet_distance": 20.0, "chroma_ratio": 0.8, "colourfulness_ratio": 0.9, "hue_accuracy": 0.9}
    good = {"classifier_frechet_distance": 10.0, "chroma_ratio": 0.95, "colourfulness_ratio": 0.97, "hue_accuracy": 0.9}
    assert all(check_claim(good, k).values())
    assert check_claim({**good, "classifier_frechet_distance": 10.5}, k)["classifier_frechet_distance"] is False
    assert check_claim({**good, "chroma_ratio": 0.94}, k)["chroma_ratio"] is False
    assert check_claim({**good, "colourfulness_ratio": 0.9}, k)["colourfulness_ratio"] is False
    assert check_claim({**good, "hue_accuracy": 0.89}, k)["hue_accuracy"] is False


def _record(fid, hue, chroma, distance):
    return {"paper": {"fid": fid},
            "metrics": {"hue_accuracy": hue, "chroma_ratio": chroma, "classifier_frechet_distance": distance}}


def test_finding_verdicts_agree_disagree_tie_and_leave_out_gray_models():
    tolerance = {"hue_accuracy": 0.02, "chroma_ratio": 0.02, "classifier_frechet_distance": 1.0}
    findings = [("H vs K", "H", "K"), ("C vs B", "C", "B"), ("G vs E", "G", "E")]
    records = {"H": _record(10.2, 0.95, 0.975, 5.0), "K": _record(17.6, 0.90, 0.99, 5.5),
               "C": _record(11.8, 0.50, 0.05, 90.0), "B": _record(18.0, 0.5, 0.6, 40.0),
               "G": _record(10.6, 0.9, 0.9, 3.0)}  # E not recorded: skipped
    rows, left_out = finding_verdicts(records, tolerance, near_gray_below=0.1, findings=findings)
    [row] = rows
    assert row["finding"] == "H vs K" and row["paper FID"] == "10.200 vs 17.600 (first better)"
    assert row["hue_accuracy"] == "0.950 vs 0.900: agrees"          # H better, as the paper says
    assert row["chroma_ratio"] == "0.975 vs 0.990: tie"              # 0.025 vs 0.01 from 1: within 0.02
    assert row["classifier_frechet_distance"] == "5.000 vs 5.500: tie"
    assert left_out == ["C vs B (C near gray)"]
    records["K"] = _record(17.6, 0.99, 0.5, 9.0)                     # now K is the better on hue
    [row], _ = finding_verdicts(records, tolerance, near_gray_below=0.1, findings=findings)
    assert row["hue_accuracy"].endswith("disagrees") and row["chroma_ratio"].endswith("agrees")
    assert row["classifier_frechet_distance"].endswith("agrees")
