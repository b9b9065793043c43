"""The GPU lane: unit tests with CUDA visible, then a short end-to-end check at full scale, in one command.

    python tools/gpu_check.py --out results/gpu-check/<gpu>.json

On one H100/H200-class GPU it should take under 5 minutes: the unit tests (CUDA tests included), recipes H
and K of the full profile for 1,000 iterations, Q and min-patchgan for 50, a held-back evaluation of H and
K on the 1,000 test digits no run trains on, and the step benchmark (``python -m colorbook bench``). Each
step runs as its own command with its own time limit; the record holds every command, its exit code, wall
time and result, with provenance, and whether the speed targets of the GPU issue were met.

``--device cpu --profile quick --scale 0.01 --skip-tests`` runs the same steps with the quick networks and
tiny iteration counts on any machine: a check of this script, not of the GPU.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# seconds for the whole recipe (H, K: 1000 iterations) or per iteration (Q, min-patchgan): the GPU issue's targets
TARGETS = {"H": ("seconds_for_1000_iterations", 10.0), "K": ("seconds_for_1000_iterations", 3.0),
           "Q": ("seconds_per_iteration", 0.12), "min-patchgan": ("seconds_per_iteration", 0.04)}


def _step(record: dict, name: str, argv: list[str], timeout: float, env: dict) -> dict:
    started = time.time()
    try:
        done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        rc, out = done.returncode, (done.stdout + done.stderr)[-3000:]
    except subprocess.TimeoutExpired as expired:
        rc, out = "timeout", str(expired.stdout or "")[-3000:]
    step = {"command": " ".join(argv), "exit": rc, "wall_s": round(time.time() - started, 1), "output_tail": out}
    record["steps"][name] = step
    print(f"{name}: exit {rc} in {step['wall_s']} s", flush=True)
    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="record (JSON)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the iteration counts (smoke test)")
    parser.add_argument("--profile", choices=["quick", "full"], default="full", help="quick: a smoke test of this script")
    parser.add_argument("--skip-tests", action="store_true")
    parser.add_argument("--runs", help="folder for the training runs (default: a temporary folder)")
    args = parser.parse_args(argv)
    from colorbook.provenance import (
        provenance,  # after sys.path: the checkout's package
    )
    python = sys.executable
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    runs = Path(args.runs or tempfile.mkdtemp(prefix="gpu-check-"))
    record: dict = {"provenance": provenance(args.device, " ".join(["python", *sys.argv])),
                    "profile": args.profile, "scale": args.scale, "steps": {}}
    started = time.time()
    if not args.skip_tests:
        step = _step(record, "unit tests", [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], 900,
                     {**env, "COLORBOOK_PROFILE": "quick", "MPLBACKEND": "Agg"})
        step["summary"] = step["output_tail"].strip().splitlines()[-1] if step["output_tail"].strip() else ""
    for name, iters in (("H", 1000), ("K", 1000), ("Q", 50), ("min-patchgan", 50)):
        n = max(2, round(iters * args.scale))
        out = runs / name
        step = _step(record, f"train {name}", [python, "-m", "colorbook", "train", "--recipe", name, "--profile", args.profile,
                                               "--device", args.device, "--iters", str(n), "--out", str(out),
                                               "--overwrite"], 600, env)
        metrics_path = out / "metrics.json"
        if step["exit"] == 0 and metrics_path.exists():
            metrics = json.loads(metrics_path.read_text())
            step.update(iterations=metrics["iterations"], seconds_per_iteration=metrics["seconds_per_iteration"],
                        seconds_for_1000_iterations=metrics["seconds_per_iteration"] * 1000,
                        final_losses=metrics["final_losses_mean_last_50"], speed=metrics.get("speed"))
            key, target = TARGETS[name]
            if args.profile == "full" and args.scale == 1.0:  # the targets are for the full recipes only
                step["target"] = {"what": key, "at_most": target, "measured": step[key], "met": step[key] <= target}
    for name in ("H", "K"):
        evaluation = runs / f"eval-{name}.json"
        step = _step(record, f"evaluate {name}", [python, "-m", "colorbook", "evaluate", "--checkpoint",
                                                  str(runs / name), "--device", args.device, "--out", str(evaluation)],
                     300, env)
        if step["exit"] == 0 and evaluation.exists():
            result = json.loads(evaluation.read_text())
            step["metrics"] = {k: result.get(k) for k in ("n", "hue_accuracy", "chroma_ratio",
                                                          "classifier_frechet_distance", "colourfulness_ratio")}
    bench_out = runs / "bench.json"
    step = _step(record, "bench", [python, "-m", "colorbook", "bench", "--device", args.device, "--out",
                                   str(bench_out), "--overwrite", "--trace", "--iters",
                                   str(max(2, round(20 * min(1.0, args.scale * 50))))]
                 + ["--profile", args.profile], 600, env)
    if step["exit"] == 0 and bench_out.exists():
        record["bench"] = json.loads(bench_out.read_text())
    record["provenance"]["wall_time_s"] = round(time.time() - started, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2))
    print(f"wrote {out} ({record['provenance']['wall_time_s']} s)")
    failed = [name for name, step in record["steps"].items() if step["exit"] != 0]
    if failed:
        print("failed steps: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
