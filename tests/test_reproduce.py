"""`reproduce`: the summary table reads only configuration records, and a recorded result is replaced only
by a run of the same settings or when asked (--overwrite), checked before any training."""
from __future__ import annotations

import json
import shutil

import pytest

import colorbook.reproduce as reproduce_module
from colorbook import cli
from colorbook.provenance import REPO_ROOT
from colorbook.reproduce import reproduce, results_dir, write_markdown_table
from colorbook.training.loop import write_log_excerpt


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A results folder with a real quick-profile record of K (1 iteration), made once for this module."""
    root = tmp_path_factory.mktemp("recorded")
    reproduce("dtu-mnist", "quick", ["K"], iters=1, runs_root=root / "runs", results_root=root / "results",
              n_eval=16, fid="no", progress=False, command="first run")
    return root


@pytest.fixture
def results(recorded, tmp_path):
    """A private copy of the recorded results folder; the K record's folder."""
    shutil.copytree(recorded / "results", tmp_path / "results")
    return results_dir("dtu-mnist", "quick", tmp_path / "results")


@pytest.fixture
def no_training(monkeypatch):
    def exploding(*args, **kwargs):
        raise AssertionError("training started before the recorded result was checked")
    monkeypatch.setattr(reproduce_module, "train", exploding)


def test_summary_table_skips_json_files_that_are_not_records(results, tmp_path):
    # a critic probe and a note beside the records (results/dtu-mnist/H-critic-probe.json is one)
    (results / "H-critic-probe.json").write_text(json.dumps({"recipe": "H", "runs": {}}))
    (results / "notes.json").write_text(json.dumps({"metrics": "not a record: not named after a configuration"}))
    table = write_markdown_table("dtu-mnist", "quick", tmp_path / "results").read_text()
    assert "| K |" in table and "critic-probe" not in table and "notes" not in table


def test_summary_table_names_a_corrupt_record(results, tmp_path):
    (results / "H.json").write_text('{"metrics": ')
    with pytest.raises(ValueError, match=r"H\.json is not valid JSON"):
        write_markdown_table("dtu-mnist", "quick", tmp_path / "results")


@pytest.mark.parametrize("change, kwargs, expected", [
    ({}, {"iters": 2}, "iterations 1 -> 2"),
    ({"seed": 7}, {"iters": 1}, "seed 7 -> 0"),
    ({"batch_size": 64}, {"iters": 1}, "batch_size 64 -> "),
    ({"lr": 0.01}, {"iters": 1}, "lr 0.01 -> "),
    ({"options": {"recon_weight": 1.0}}, {"iters": 1}, "options.recon_weight 1.0 -> "),
    ({}, {"iters": 1, "data_root": "elsewhere"}, "data_root None -> "),
])
def test_a_run_with_other_settings_never_replaces_a_record(results, tmp_path, no_training, change, kwargs,
                                                           expected):
    record_path, grid = results / "K.json", results / "K.png"
    record = json.loads(record_path.read_text())
    for key, value in change.items():
        record[key] = {**record[key], **value} if isinstance(value, dict) else value
    record_path.write_text(json.dumps(record, indent=2))
    before, grid_before = record_path.read_bytes(), grid.read_bytes()
    if "data_root" in kwargs:
        kwargs = {**kwargs, "data_root": str(tmp_path / kwargs["data_root"])}
    with pytest.raises(ValueError) as caught:
        reproduce("dtu-mnist", "quick", ["K"], runs_root=tmp_path / "runs", results_root=tmp_path / "results",
                  n_eval=16, fid="no", progress=False, command="second run", **kwargs)
    message = str(caught.value)
    assert str(record_path) in message and expected in message and "--overwrite" in message
    assert "\n" not in message
    assert record_path.read_bytes() == before and grid.read_bytes() == grid_before


def test_every_configuration_is_checked_before_the_first_trains(results, tmp_path, no_training):
    # H is not recorded (it would train first); K, recorded with 1 iteration, is what refuses
    with pytest.raises(ValueError, match=r"K\.json was recorded with other settings"):
        reproduce("dtu-mnist", "quick", ["H", "K"], iters=2, runs_root=tmp_path / "runs",
                  results_root=tmp_path / "results", n_eval=16, fid="no", progress=False)
    (results / "C.json").write_text("{ broken")  # a corrupt record elsewhere in the table: named at once
    with pytest.raises(ValueError, match=r"C\.json is not valid JSON"):
        reproduce("dtu-mnist", "quick", ["H"], iters=2, runs_root=tmp_path / "runs",
                  results_root=tmp_path / "results", n_eval=16, fid="no", progress=False)


def test_command_line_refusal_is_one_line_naming_the_flag(results, tmp_path, no_training, capsys):
    code = cli.main(["reproduce", "--table", "dtu-mnist", "--profile", "quick", "--configs", "K", "--iters", "2",
                     "--fid", "no", "--results", str(tmp_path / "results"), "--runs", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert "K.json" in err and "iterations 1 -> 2" in err and "--overwrite" in err


def test_same_settings_replace_the_record_and_overwrite_replaces_any(recorded, results, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(recorded / "runs", runs)
    common = dict(runs_root=runs, results_root=tmp_path / "results", n_eval=16, fid="no", progress=False)
    # a record from before data_root was recorded (its grid shows it used the offline data) is the same run
    legacy = json.loads((results / "K.json").read_text())
    del legacy["data_root"]
    (results / "K.json").write_text(json.dumps(legacy))
    [path] = reproduce("dtu-mnist", "quick", ["K"], iters=1, command="same settings", **common)
    record = json.loads(path.read_text())
    assert record["provenance"]["command"] == "same settings" and record["data_root"] is None

    [path] = reproduce("dtu-mnist", "quick", ["K"], iters=2, command="asked to", overwrite=True, **common)
    record = json.loads(path.read_text())
    assert record["iterations"] == 2 and record["provenance"]["command"] == "asked to"
    assert (results / "K.png").exists()


def test_a_record_keeps_every_fifth_row_of_its_training_log(recorded, results):
    log = [json.loads(line) for line in (results / "K.log.jsonl").read_text().splitlines()]
    run_log = [json.loads(line) for line in
               (recorded / "runs" / "dtu-mnist" / "K-quick" / "log.jsonl").read_text().splitlines()]
    assert log == run_log[::5] and log[0]["iteration"] == 0 and "recon" in log[0]


def test_log_excerpt_starts_at_the_first_row_and_keeps_every_nth(tmp_path):
    (tmp_path / "log.jsonl").write_text("".join(json.dumps({"iteration": i}) + "\n" for i in range(1, 13)))
    path = write_log_excerpt(tmp_path, tmp_path / "excerpt.jsonl", every=5)
    assert [json.loads(line)["iteration"] for line in path.read_text().splitlines()] == [1, 6, 11]
    with pytest.raises(ValueError, match="at least 1"):
        write_log_excerpt(tmp_path, tmp_path / "excerpt.jsonl", every=0)


def test_summary_table_of_a_report_without_numbers_quotes_none(tmp_path):
    # the KTH report judges by eye: its table has no paper-FID column and says there is no number
    folder = results_dir("kth", "quick", tmp_path / "results")
    folder.mkdir(parents=True)
    shutil.copy(REPO_ROOT / "results" / "kth" / "quick" / "v2.json", folder / "v2.json")
    table = write_markdown_table("kth", "quick", tmp_path / "results").read_text()
    assert "| v2 |" in table and "paper FID" not in table
    assert "The paper gives no number to set beside them." in table and "paper's FID" not in table
