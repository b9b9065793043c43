"""Checkpoints and run folders as hostile files and careless users meet them: a crafted checkpoint never
runs code, a run is never replaced or relabelled unasked, two runs never share a folder."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from colorbook import cli
from colorbook.training.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_generator,
)
from colorbook.training.loop import LOCK_NAME, RunFolderBusy, train

fcntl = pytest.importorskip("fcntl")


class _Payload:
    """Unpickling this object creates a file: the stand-in for a shell command in a crafted checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))



@pytest.fixture
def run_kwargs(tiny_lab):
    return dict(dataset=tiny_lab(16), eval_dataset=tiny_lab(4, seed=1), progress=False)


@pytest.fixture
def finished_run(tiny, tmp_path, run_kwargs):
    out = tmp_path / "run"
    train(tiny("H"), out, iters=2, **run_kwargs)
    return out


def _run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("kind", ["crafted file", "real checkpoint with a payload added"])
def test_a_hostile_checkpoint_is_refused_before_any_of_its_code_runs(tmp_path, capsys, finished_run, kind):
    marker = tmp_path / "payload-ran"
    if kind == "crafted file":
        payload = {"generator": {}, "recipe": {}, "evil": _Payload(marker)}
    else:
        payload = torch.load(finished_run / "checkpoint.pt", weights_only=True)
        payload["provenance"]["note"] = _Payload(marker)
    evil = tmp_path / "evil" / "checkpoint.pt"
    evil.parent.mkdir()
    torch.save(payload, evil)
    image = tmp_path / "photo.png"
    from PIL import Image
    Image.new("L", (16, 16), 128).save(image)
    commands = [
        ("colorize", "--checkpoint", evil, "--out", tmp_path / "colorized", image),
        ("evaluate", "--checkpoint", evil, "--out", tmp_path / "eval.json", "--n", "4"),
        ("probe-critic", "--checkpoint", evil, "--out", tmp_path / "probe.json", "--steps", "1"),
        ("train", "--recipe", "H", "--out", evil.parent, "--resume", "--iters", "3"),
    ]
    for argv in commands:
        code, _, err = _run(capsys, *argv)
        assert not marker.exists(), f"`{argv[0]}` ran the checkpoint's payload"
        assert code == 2 and "refused" in err and "Traceback" not in err, (argv[0], err)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(evil)
    assert not marker.exists()


def test_checkpoints_hold_only_tensors_and_plain_data(finished_run):
    ckpt = torch.load(finished_run / "checkpoint.pt", weights_only=True)  # would raise on any other object
    assert isinstance(ckpt["rng"]["numpy"][1], list) and isinstance(ckpt["provenance"]["torch"], str)


def test_training_into_a_folder_with_a_run_is_refused_unless_resumed_or_overwritten(tiny, finished_run, run_kwargs, capsys):
    before = (finished_run / "checkpoint.pt").read_bytes()
    with pytest.raises(ValueError, match="already holds a training run.*checkpoint.pt.*--overwrite"):
        train(tiny("H"), finished_run, iters=2, **run_kwargs)
    assert (finished_run / "checkpoint.pt").read_bytes() == before
    code, _, err = _run(capsys, "train", "--recipe", "K", "--out", finished_run, "--iters", "1")
    assert code == 2 and "--overwrite" in err and "Traceback" not in err
    stale = finished_run / "samples" / "iter_999999.png"
    stale.write_bytes(b"old")
    train(tiny("H"), finished_run, iters=1, overwrite=True, **run_kwargs)
    assert not stale.exists(), "--overwrite must not leave the old run's sample grids beside the new ones"
    assert load_checkpoint(finished_run)["iteration"] == 1


def test_a_second_training_on_the_same_folder_is_refused(tiny, tmp_path, run_kwargs):
    out = tmp_path / "busy"
    out.mkdir()
    with open(out / LOCK_NAME, "a+") as holder:  # another process's lock, as `train` takes it
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RunFolderBusy, match="in use by another training process"):
            train(tiny("H"), out, iters=1, **run_kwargs)
    train(tiny("H"), out, iters=1, **run_kwargs)  # free again once the holder let go


def test_a_stale_temporary_checkpoint_is_removed(tiny, finished_run, run_kwargs):
    stale = finished_run / "checkpoint.pt.12345.tmp"
    stale.write_bytes(b"x" * 1000)
    train(tiny("H"), finished_run, iters=3, resume=True, **run_kwargs)
    assert not stale.exists()


@pytest.mark.parametrize("name, batch_size, iters, message", [
    ("I", 4, 4, "name 'H'"),              # same architecture, another recipe
    ("H", 8, 4, "batch_size 4"),          # another batch size
    ("H", 4, 1, "past --iters 1"),        # fewer iterations than done
    ("K", 4, 4, "name 'H'"),              # another architecture
])
def test_resume_refuses_a_checkpoint_of_other_settings(tiny, finished_run, run_kwargs, name, batch_size, iters,
                                                       message):
    before = (finished_run / "metrics.json").read_text()
    with pytest.raises(ValueError, match=message):
        train(dataclasses.replace(tiny(name), batch_size=batch_size), finished_run, resume=True, iters=iters,
              **run_kwargs)
    assert (finished_run / "metrics.json").read_text() == before


def test_a_checkpoint_with_a_broken_recipe_entry_gets_one_line(finished_run, tmp_path, capsys):
    ckpt = torch.load(finished_run / "checkpoint.pt", weights_only=True)
    ckpt["recipe"] = {"name": "H", "family": "dtu"}  # fields missing
    broken = tmp_path / "broken.pt"
    torch.save(ckpt, broken)
    with pytest.raises(CheckpointError, match="recipe"):
        load_generator(broken)
    code, _, err = _run(capsys, "colorize", "--checkpoint", broken, "--out", tmp_path / "o", broken)
    assert code == 2 and "Traceback" not in err


def test_a_corrupt_metrics_json_is_named(tiny, finished_run, run_kwargs):
    (finished_run / "metrics.json").write_text("{not json")
    with pytest.raises(ValueError, match="metrics.json"):
        train(tiny("H"), finished_run, iters=2, resume=True, **run_kwargs)


def test_a_checkpoint_with_a_cuda_rng_state_resumes_on_a_machine_without_cuda(tiny, finished_run, run_kwargs):
    """Written on a CUDA machine (its CUDA RNG states saved), resumed on a CPU-only one."""
    path = finished_run / "checkpoint.pt"
    ckpt = torch.load(path, weights_only=True)
    ckpt["rng"]["cuda"] = [torch.zeros(16, dtype=torch.uint8)]
    torch.save(ckpt, path)
    metrics = train(tiny("H"), finished_run, iters=3, resume=True, **run_kwargs)
    assert metrics["iterations"] == 3 and metrics["iterations_this_run"] == 1


@pytest.mark.parametrize("size", ["0", "-4"])
def test_a_non_positive_batch_size_is_one_line_before_training(tmp_path, capsys, size):
    code, _, err = _run(capsys, "train", "--recipe", "K", "--out", tmp_path / "r", "--batch-size", size)
    assert code == 2 and "--batch-size must be at least 1" in err
    assert not (tmp_path / "r").exists()


def test_a_closed_pipe_is_not_a_traceback():
    result = subprocess.run(f"{sys.executable} -m colorbook recipes -v | head -1", shell=True, capture_output=True,
                            text=True, timeout=120, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert result.stdout.startswith("A ") and "Traceback" not in result.stderr and "Broken" not in result.stderr


def test_loading_a_generator_builds_no_critic(finished_run, monkeypatch):
    """colorize and evaluate need only the generator: building the critic (a ResNet-152 and its
    unit-gradient measurement for the scene recipes, 2 s on this CPU) would be wasted work."""
    import colorbook.recipes.dtu as dtu

    def no_critic(*args, **kwargs):
        raise AssertionError("load_generator built a critic")
    monkeypatch.setattr(dtu, "ResNetCritic", no_critic)
    generator, recipe = load_generator(finished_run)
    assert recipe.name == "H" and not generator.training
