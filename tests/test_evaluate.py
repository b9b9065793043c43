"""`evaluate` and `reproduce`: metrics JSON, the FID failure path, recorded results with provenance."""
import json
from pathlib import Path

import pytest
import torch

from colorbook import cli
from colorbook.evaluate import evaluate_generator, generate
from colorbook.reproduce import reproduce


class Oracle(torch.nn.Module):
    """A 'generator' that knows the answer for a fixed data set: returns the true image for each gray input."""

    color_space = "lab"

    def __init__(self, images):
        super().__init__()
        self.images = images
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def forward(self, gray):
        index = [int((self.images[:, :1] - g).abs().flatten(1).sum(1).argmin()) for g in gray]
        return self.images[index]


class InMemory(torch.utils.data.Dataset):
    color_space = "lab"

    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return self.images[index], int(self.labels[index])

    def as_tensors(self):
        return self.images, self.labels


class Gray(torch.nn.Module):
    color_space = "lab"

    def forward(self, gray):
        return torch.cat([gray, torch.full_like(gray, 0.5), torch.full_like(gray, 0.5)], dim=1)


@pytest.fixture(scope="module")
def mnist_test():
    from colorbook.data.mnist import ColorizedMNIST
    from colorbook.training.stream import spread_indices
    full = ColorizedMNIST("test")                  # sorted by digit: take a spread, not a prefix
    images, labels = full.as_tensors()
    keep = spread_indices(len(full), 60)
    return InMemory(images[keep], labels[keep])


def test_generate_returns_pairs_in_order(mnist_test):
    real, fake, labels = generate(Gray(), mnist_test, n=10, batch_size=4, progress=False)
    assert real.shape == fake.shape == (10, 3, 32, 32)
    all_labels = mnist_test.as_tensors()[1]
    assert torch.equal(labels, all_labels[torch.linspace(0, len(all_labels) - 1, 10).round().long()])
    assert len(set(labels.tolist())) >= 8         # a spread over the digits, not ten zeros


def test_metrics_separate_the_truth_from_a_gray_prediction(mnist_test):
    images, _ = mnist_test.as_tensors()
    truth = evaluate_generator(Oracle(images), mnist_test, dataset_name="mnist", progress=False)
    gray = evaluate_generator(Gray(), mnist_test, dataset_name="mnist", progress=False)
    assert truth["hue_accuracy"] == 1.0 and truth["chroma_ratio"] == pytest.approx(1.0)
    assert gray["hue_accuracy"] == 0.0 and gray["chroma_ratio"] == pytest.approx(0.0, abs=1e-6)
    assert truth["classifier_frechet_distance"] < gray["classifier_frechet_distance"]
    assert "not FID" in truth["classifier_frechet_distance_note"]
    assert truth["n"] == 60 and "fid" not in truth


def test_evaluate_with_fid_fails_at_once_without_weights(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("COLORBOOK_FID_WEIGHTS", str(tmp_path / "absent.pth"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    model = tmp_path / "m.pt"
    code = cli.main(["evaluate", "--checkpoint", str(model), "--fid", "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    # checked before the (also missing) checkpoint: the message says how to get the weights
    assert "Inception" in err and "COLORBOOK_FID_WEIGHTS" in err


def test_reproduce_records_json_grid_and_table(tmp_path):
    paths = reproduce("dtu-mnist", "quick", ["K"], iters=2, runs_root=tmp_path / "runs",
                      results_root=tmp_path / "results", n_eval=40, fid="no", progress=False, command="test")
    assert [p.name for p in paths] == ["K.json"]
    record = json.loads(paths[0].read_text())
    assert record["profile"] == "quick" and record["iterations"] == 2 and record["n_eval"] == 40
    assert record["dataset"] == "mnist" and record["dataset_size_train"] == 4000
    assert record["paper"]["fid"] == 17.613
    assert {"hue_accuracy", "chroma_ratio", "classifier_frechet_distance", "psnr_rgb"} <= set(record["metrics"])
    assert record["metrics"]["fid"].startswith("not computed")
    assert {"command", "git_commit", "device", "torch", "date", "wall_time_s"} <= set(record["provenance"])
    folder = tmp_path / "results" / "dtu-mnist" / "quick"
    assert (folder / "K.png").exists()
    table = (folder / "table.md").read_text()
    assert "| K |" in table and "17.613" in table
    assert "Hellinger" not in table  # saturated at 1.0 on coloured digits: not a column of this table
    assert not (folder / "README.md").exists()  # the folder's hand-written results page is never replaced
    with pytest.raises(ValueError, match="not in table"):
        reproduce("dtu-mnist", "quick", ["L"], runs_root=tmp_path, results_root=tmp_path)


def test_reproduce_of_an_earlier_training_run_keeps_its_timing_and_command(tmp_path, monkeypatch, capsys):
    from colorbook.notebook import describe_provenance
    from colorbook.training.loop import train
    runs = tmp_path / "runs"
    trained = train("K", runs / "dtu-mnist" / "K-quick", profile="quick", iters=2, progress=False,
                    command="python -m colorbook train --recipe K (earlier)")
    [path] = reproduce("dtu-mnist", "quick", ["K"], iters=2, runs_root=runs, results_root=tmp_path / "results",
                       n_eval=40, fid="no", progress=False, command="reproduce (later)")
    record = json.loads(path.read_text())
    assert record["training"]["provenance"]["command"] == "python -m colorbook train --recipe K (earlier)"
    assert record["training"]["seconds_per_iteration"] == trained["seconds_per_iteration"] > 0
    assert record["provenance"]["training_wall_time_s"] == trained["provenance"]["wall_time_s"]
    table = (tmp_path / "results" / "dtu-mnist" / "quick" / "table.md").read_text()
    assert "- K: `python -m colorbook train --recipe K (earlier)`" in table
    assert f"| {record['training']['seconds_per_iteration']:.3f} | {trained['provenance']['wall_time_s']:.3f} |" in table
    line = describe_provenance(record)
    assert "command: reproduce (later)" in line and "trained by: python -m colorbook train --recipe K (earlier)" in line
    # the recording command only evaluated: its wall time is labelled so, not as the training's
    assert f"evaluation took {record['provenance']['wall_time_s']} s" in line and "training and evaluation" not in line

    # what a chapter shows from it: one row per recorded configuration, the missing ones named
    import colorbook.notebook as notebook
    from colorbook.notebook import recorded_table
    monkeypatch.setattr(notebook, "RESULTS_DIR", tmp_path / "results")
    capsys.readouterr()
    shown = recorded_table("dtu-mnist", ["K", "H"], profile="quick")
    out = capsys.readouterr().out
    assert max(map(len, out.splitlines())) <= 88  # wrapped to the page
    printed = " ".join(out.split())  # the lines joined again
    assert list(shown.index) == ["K"]
    assert shown.loc["K", "hue acc. ↑"] == round(record["metrics"]["hue_accuracy"], 3)
    assert shown.loc["K", "paper FID"] == 17.613 and shown.loc["K", "iterations"] == 2
    # one short line per record: when and where it was trained, and the file with the full provenance
    assert "K: quick profile, 2 iterations, CPU (" in printed
    assert "provenance in results/dtu-mnist/quick/K.json" in printed
    assert "(earlier)" not in printed and "(later)" not in printed
    assert "No quick-profile result recorded yet in results/dtu-mnist/quick/ for H (the paper reports FID 10.228)" in printed
    assert "record it with: python -m colorbook reproduce --table dtu-mnist --profile quick --configs H" in printed
    assert recorded_table("dtu-mnist", ["H", "I"], profile="quick") is None  # no empty table


def test_brief_provenances_give_one_line_per_group_of_records_made_alike():
    from colorbook.notebook import brief_provenances

    def record(day: str, threads: int, iterations: int = 1000) -> dict:
        return {"profile": "full", "iterations": iterations,
                "provenance": {"date": f"{day}T10:00:00+00:00", "command": "python -m colorbook reproduce",
                               "device": f"CPU (x86_64, 2 cores, {threads} torch threads)"}}

    lines = brief_provenances({"A": record("2026-12-05", 1), "B": record("2026-12-01", 1),
                               "K": record("2026-11-30", 2), "X": record("2026-12-05", 1, iterations=20)},
                              "results/dtu-mnist/")
    assert lines == [
        "A, B: full profile, 1000 iterations, CPU (1 torch thread), 2026-12-01 to 2026-12-05; "
        "provenance in results/dtu-mnist/<config>.json",
        "K: full profile, 1000 iterations, CPU (2 torch threads), 2026-11-30; provenance in results/dtu-mnist/K.json",
        "X: full profile, 20 iterations, CPU (1 torch thread), 2026-12-05; provenance in results/dtu-mnist/X.json",
    ]
    # a GPU's description is kept whole
    gpu = record("2026-12-05", 1)
    gpu["provenance"]["device"] = "NVIDIA H100 80GB HBM3"
    assert "NVIDIA H100 80GB HBM3, 2026-12-05" in brief_provenances({"H": gpu}, "results/dtu-mnist/")[0]


def test_short_commit_keeps_the_dirty_mark():
    from colorbook.provenance import short_commit
    assert short_commit("14be48f009009bb5bcbc2be7b0b1dc719edad659+dirty") == "14be48f00900+dirty"
    assert short_commit("2011fcefdfc6aeff16210fa467a5a8e8b71a7722") == "2011fcefdfc6"


def test_probe_critic_reports_gap_and_accuracy_per_gamma(tmp_path):
    from colorbook.evaluate import probe_critic
    from colorbook.training.loop import train
    train("H", tmp_path / "run", profile="quick", iters=2, progress=False)
    result = probe_critic(tmp_path / "run" / "checkpoint.pt", r1_gammas=(0.0, 1000.0), steps=12, n_eval=32,
                          progress=False, command="test")
    assert result["recipe"] == "H" and result["iterations"] == 2 and result["n_eval"] == 32
    free, held = result["runs"]["0"], result["runs"]["1000"]
    assert len(free["logit_gap"]) == 12 and 0.0 <= free["eval_accuracy"] <= 1.0
    # a near-gray generator is easy to tell from real colours; a huge R1 weight keeps the critic flat
    assert free["logit_gap_last_20"] > 0.1 and abs(held["logit_gap_last_20"]) < free["logit_gap_last_20"] / 3
    assert {"command", "git_commit", "device", "wall_time_s"} <= set(result["provenance"])


def test_probe_critic_command_line_errors_are_clear(tmp_path, capsys):
    from colorbook.cli import main
    code = main(["probe-critic", "--checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x.json")])
    assert code == 2 and "Traceback" not in capsys.readouterr().err


def test_probe_critic_rejects_gammas_that_are_not_numbers(tmp_path, capsys):
    from colorbook.cli import main
    code = main(["probe-critic", "--checkpoint", str(tmp_path / "x.pt"), "--r1-gammas", "0,ten",
                 "--out", str(tmp_path / "x.json")])
    err = capsys.readouterr().err
    assert code == 2 and "--r1-gammas" in err and "Traceback" not in err


def test_reproduce_takes_its_provenance_before_training(tmp_path, monkeypatch):
    # files edited while a long run trains must not mark the record "+dirty": the commit is read at the start
    import colorbook.reproduce as reproduce_module
    from colorbook.training.loop import train
    trained, real_train = [], train
    monkeypatch.setattr(reproduce_module, "train", lambda *a, **k: (trained.append(1), real_train(*a, **k))[1])
    monkeypatch.setattr(reproduce_module, "provenance", lambda device=None, command=None: {
        "command": command, "device": "cpu", "git_commit": "after-training" if trained else "before-training"})
    [path] = reproduce("dtu-mnist", "quick", ["K"], iters=1, runs_root=tmp_path / "runs",
                       results_root=tmp_path / "results", n_eval=16, fid="no", progress=False, command="test")
    assert trained and json.loads(path.read_text())["provenance"]["git_commit"] == "before-training"


# ----------------------------------------------------------------------------
# bad command-line input: one line, before any work
# ----------------------------------------------------------------------------
def _refuse_work(monkeypatch):
    """Make every step of an evaluation or probe fail loudly if it is reached."""
    import colorbook.evaluate as evaluate_module

    def exploding(*args, **kwargs):
        raise AssertionError("work started before the bad input was reported")

    for name in ("load_generator", "make_dataset", "generate", "evaluate_checkpoint", "probe_critic"):
        monkeypatch.setattr(evaluate_module, name, exploding)


@pytest.mark.parametrize("n", ["0", "-3"])
@pytest.mark.parametrize("command", ["evaluate", "probe-critic"])
def test_non_positive_n_is_refused_before_any_work(command, n, tmp_path, capsys, monkeypatch):
    _refuse_work(monkeypatch)
    code = cli.main([command, "--checkpoint", str(tmp_path / "m.pt"), "--n", n, "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert code == 2 and "--n must be at least 1" in err and err.count("\n") == 1


@pytest.mark.parametrize("command", ["evaluate", "probe-critic"])
def test_bad_out_is_refused_before_the_evaluation(command, tmp_path, capsys, monkeypatch):
    _refuse_work(monkeypatch)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    for out, expected in ((tmp_path, "is a directory"), (a_file / "r.json", "is a file, not a folder")):
        code = cli.main([command, "--checkpoint", str(tmp_path / "m.pt"), "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and expected in err and str(out) in err and err.count("\n") == 1
    assert a_file.read_text() == "mine"


def test_unwritable_out_folder_is_refused(tmp_path, monkeypatch):
    import os

    from colorbook.evaluate import check_output_file
    locked = tmp_path / "locked"
    locked.mkdir()
    # root may write anywhere, so the permission answer is simulated
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked)
    with pytest.raises(ValueError, match="no write permission"):
        check_output_file(locked / "sub" / "r.json")
    assert check_output_file(tmp_path / "new" / "r.json") == tmp_path / "new" / "r.json"


@pytest.mark.parametrize("device, expected", [("gpu", "unknown device 'gpu'"),
                                              ("cuda", "CUDA is not available")])
@pytest.mark.parametrize("command", ["evaluate", "probe-critic"])
def test_bad_device_is_one_line(command, device, expected, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    import colorbook.evaluate as evaluate_module
    monkeypatch.setattr(evaluate_module, "load_generator",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("checkpoint read before the device")))
    code = cli.main([command, "--checkpoint", str(tmp_path / "m.pt"), "--device", device,
                     "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert code == 2 and expected in err and "Traceback" not in err and err.count("\n") == 1


def test_a_scenes_checkpoint_on_mnist_fails_before_generating(tmp_path, capsys, monkeypatch):
    import colorbook.evaluate as evaluate_module
    from colorbook.training.loop import resolve_recipe
    scenes_recipe = resolve_recipe("L", "quick")  # trained on 'scenes' at 64x64
    assert scenes_recipe.dataset == "scenes" and scenes_recipe.image_size != 32
    monkeypatch.setattr(evaluate_module, "load_generator", lambda *a, **k: (Gray(), scenes_recipe))
    monkeypatch.setattr(evaluate_module, "generate",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("generated before the size check")))
    code = cli.main(["evaluate", "--checkpoint", str(tmp_path / "L.pt"), "--dataset", "mnist",
                     "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert code == 2 and "recipe L" in err and "64x64" in err and "32x32" in err and err.count("\n") == 1
    assert not (tmp_path / "r.json").exists()

    # the same check for a data set given directly: 64x64 digits do not fit the digit classifier
    big_digits = InMemory(torch.rand(4, 3, 64, 64), torch.arange(4))
    with pytest.raises(ValueError, match="32x32"):
        evaluate_generator(Gray(), big_digits, dataset_name="mnist", progress=False)


def test_evaluate_and_probe_never_replace_an_existing_output_unasked(tmp_path, capsys):
    from colorbook import cli
    existing = tmp_path / "evaluation.json"
    existing.write_text('{"mine": 1}')
    for command in (["evaluate"], ["probe-critic", "--steps", "1"]):
        code = cli.main([*command, "--checkpoint", str(tmp_path / "nowhere.pt"), "--out", str(existing)])
        err = capsys.readouterr().err
        assert code == 2 and "--overwrite" in err and "Traceback" not in err
        assert existing.read_text() == '{"mine": 1}'


def test_recorded_results_do_not_mark_the_commit_dirty_but_code_does(tmp_path):
    import subprocess

    from colorbook.provenance import git_commit

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "table.md").write_text("old\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    clean = git_commit(tmp_path)
    assert len(clean) == 40
    (tmp_path / "results" / "table.md").write_text("rewritten by reproduce\n")
    assert git_commit(tmp_path) == clean
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_commit(tmp_path) == clean + "+dirty"
