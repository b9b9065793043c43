"""The CUDA path: skipped without a CUDA device; the GPU lane (``python tools/gpu_check.py``) runs them.

Checkpoints move between machines (written on CUDA, resumed on the CPU and the reverse), resume continues
exactly with deterministic kernels, the fast step (bf16 autocast, fused Adam, compile) trains, and the
commands run with ``--device cuda``."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from colorbook import cli
from colorbook.training.checkpoint import load_checkpoint
from colorbook.training.loop import train
from colorbook.training.speed import Speed

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]



@pytest.fixture
def deterministic(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    yield Speed.eager()


def test_resume_on_cuda_continues_exactly(tiny, tmp_path, tiny_lab, deterministic):
    kwargs = dict(dataset=tiny_lab(16), eval_dataset=tiny_lab(4, seed=1), progress=False, device="cuda",
                  speed=deterministic)
    train(tiny(), tmp_path / "straight", iters=6, **kwargs)
    train(tiny(), tmp_path / "split", iters=3, **kwargs)
    train(tiny(), tmp_path / "split", iters=6, resume=True, **kwargs)
    a, b = (load_checkpoint(tmp_path / d)["generator"] for d in ("straight", "split"))
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key


@pytest.mark.parametrize("first, then", [("cuda", "cpu"), ("cpu", "cuda")])
def test_a_checkpoint_moves_between_cuda_and_cpu(tiny, tmp_path, tiny_lab, first, then):
    kwargs = dict(dataset=tiny_lab(16), eval_dataset=tiny_lab(4, seed=1), progress=False)
    train(tiny(), tmp_path, iters=2, device=first, **kwargs)
    metrics = train(tiny(), tmp_path, iters=4, device=then, resume=True, **kwargs)
    assert metrics["iterations"] == 4 and metrics["status"] == "completed"


def test_the_fast_cuda_step_trains_with_finite_losses(tiny, tmp_path, tiny_lab):
    speed = Speed.default_for("cuda", compile=True, log_every=3)
    metrics = train(tiny(gp=True), tmp_path, iters=6, device="cuda", speed=speed, dataset=tiny_lab(16),
                    eval_dataset=tiny_lab(4, seed=1), progress=False)
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(math.isfinite(v) for row in rows for v in row.values())
    assert {"gp", "r1"} <= set(rows[0]) and metrics["speed"]["bf16_autocast"]


def test_divergence_stops_on_cuda(tiny, tmp_path, tiny_lab):
    from colorbook.core import TrainingDiverged
    kwargs = dict(eval_dataset=tiny_lab(4, seed=1), progress=False, device="cuda")
    train(tiny(), tmp_path, iters=2, dataset=tiny_lab(16), **kwargs)
    poisoned = tiny_lab(16)
    poisoned.images[:] = float("nan")
    with pytest.raises(TrainingDiverged):
        train(tiny(), tmp_path, iters=6, resume=True, dataset=poisoned, **kwargs)
    assert load_checkpoint(tmp_path)["iteration"] == 2


def test_commands_run_with_device_cuda(tiny, tmp_path, tiny_lab, capsys):
    run = tmp_path / "run"  # 32 px: evaluate and probe-critic read the recipe's own data set, MNIST
    train(dataclasses.replace(tiny(), image_size=32), run, iters=2, dataset=tiny_lab(16, 32),
          eval_dataset=tiny_lab(4, 32, seed=1), progress=False, device="cuda")
    from PIL import Image
    image = tmp_path / "photo.png"
    Image.new("L", (40, 30), 100).save(image)
    for argv in (["colorize", "--checkpoint", run, "--out", tmp_path / "colorized", image, "--device", "cuda"],
                 ["evaluate", "--checkpoint", run, "--out", tmp_path / "eval.json", "--n", "32", "--device", "cuda"],
                 ["probe-critic", "--checkpoint", run, "--out", tmp_path / "probe.json", "--steps", "2", "--n", "32",
                  "--device", "cuda"]):
        code = cli.main([str(a) for a in argv])
        assert code == 0, (argv[0], capsys.readouterr().err)
