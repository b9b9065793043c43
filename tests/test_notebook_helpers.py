"""colorbook.notebook: figures are drawn into the notebook even under MPLBACKEND=Agg (in a real kernel), and
printed commands fit the page."""
from __future__ import annotations

import os

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat comes with nbmake; install requirements.txt")
nbclient = pytest.importorskip("nbclient", reason="nbclient comes with nbmake; install requirements.txt")

from colorbook.notebook import show_figures_inline  # noqa: E402


def test_setup_draws_figures_into_the_notebook_under_an_agg_backend(tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")  # as the test command and many CI shells set it
    monkeypatch.setenv("COLORBOOK_PROFILE", "quick")
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("from colorbook.notebook import setup\nS = setup()"),
        nbformat.v4.new_code_cell("import matplotlib.pyplot as plt\nplt.plot([0, 1])\nplt.show()"),
    ])
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = notebook.cells[1].outputs
    assert any("image/png" in output.get("data", {}) for output in outputs), (
        f"plt.show() drew nothing into the notebook: {outputs}")
    assert os.environ["MPLBACKEND"] == "Agg"


def test_outside_a_kernel_nothing_changes():
    assert show_figures_inline() is False


def test_print_command_fits_the_page_and_pastes_back_whole(capsys):
    from colorbook.notebook import PAGE_WIDTH, print_command
    # padding the first value by 0-11 characters moves every break, so that some line ends at
    # exactly the page width and the room for " \\" matters
    for pad in range(12):
        command = (f"python -m colorbook frames clip{'x' * pad}.avi --out frames --every 0.2 --skip-start 0 "
                   "--skip-end 0 --split 1:0:0 --size 128 --configs A,B,C,D,E,F,G,I,J --seed 0 --device cpu")
        print_command(command, indent=4)
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) > 1 and max(map(len, lines)) <= PAGE_WIDTH, (pad, lines)
        assert all(line.endswith(" \\") for line in lines[:-1]) and not lines[-1].endswith("\\")
        assert lines[0].startswith("    python") and all(line.startswith("        -") for line in lines[1:])
        # what the shell reads: the continuations removed, the same words in the same order
        assert " ".join(" ".join(lines).replace(" \\", " ").split()) == command
        assert not any(line.rstrip(" \\").endswith(("--skip-end", "--split", "--size")) for line in lines)
    print_command("python -m colorbook train --recipe K")  # short: one line, no continuation
    assert capsys.readouterr().out == "python -m colorbook train --recipe K\n"


def test_show_grids_puts_each_model_between_the_input_and_the_truth(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import torch
    from PIL import Image

    from colorbook.notebook import show_grids
    from colorbook.training.loop import image_grid

    gray, truth = torch.full((3, 3, 8, 8), 0.3), torch.full((3, 3, 8, 8), 0.7)
    for name, value in (("k", 0.0), ("h", 1.0)):
        grid = image_grid(torch.cat([gray, torch.full((3, 3, 8, 8), value), truth]), nrow=3)
        Image.fromarray(grid.mul(255).round().byte().permute(1, 2, 0).numpy()).save(tmp_path / f"{name}.png")
    fig = show_grids({"K: no critic": tmp_path / "k.png", "H: critic": tmp_path / "h.png"})
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert titles == ["gray input", "K: no critic", "H: critic", "truth"]
    assert fig.axes[2].images[0].get_array()[:, 2:10].min() == 255  # H's first tile: white
    assert fig.axes[1].images[0].get_array()[:, 2:10].max() == 0  # K's: black

    # a 14-inch figure is shown about 7 inches wide: its labels are drawn twice as large, and a label
    # longer than the figure is wrapped instead of cut off at the right edge
    long_label = "K: " + "a very long description of the model " * 6
    fig = show_grids({long_label: tmp_path / "k.png"}, width=14.0)
    title = fig.axes[1].title if fig.axes[1].get_title() else fig.axes[1]._left_title
    assert title.get_fontsize() == pytest.approx(22.0)
    assert "\n" in title.get_text() and title.get_text().replace("\n", " ") == long_label.strip()
    assert max(len(line) for line in title.get_text().splitlines()) <= int(14.0 * 72 / (0.55 * 22.0))


def test_training_curves_show_the_logit_gap_and_the_penalties_of_critics_only(tmp_path):
    import json

    import matplotlib
    matplotlib.use("Agg")

    from colorbook.notebook import plot_training_curves

    critic_rows = [{"iteration": i, "recon": 5.0 - i, "d_real_logit": 0.5 * i, "d_fake_logit": -0.5 * i,
                    "r1": 0.1, "gp": 0.2 * i} for i in range(4)]
    (tmp_path / "h.jsonl").write_text("".join(json.dumps(r) + "\n" for r in critic_rows))
    (tmp_path / "k.jsonl").write_text("".join(json.dumps({"iteration": i, "recon": 4.0}) + "\n" for i in range(4)))
    fig = plot_training_curves({"H": tmp_path / "h.jsonl", "K": tmp_path / "k.jsonl"}, smooth=1)
    recon, gap, penalty = fig.axes[:3]
    assert [line.get_label() for line in recon.lines] == ["H", "K"]
    assert [line.get_label() for line in gap.lines] == ["H"] == [line.get_label() for line in penalty.lines]
    assert list(gap.lines[0].get_ydata()) == [0.0, 1.0, 2.0, 3.0]  # real minus fake
    assert list(penalty.lines[0].get_ydata()) == pytest.approx([0.1, 0.3, 0.5, 0.7])  # GP + R1


def test_show_recorded_grids_shows_what_is_recorded_and_names_what_is_not(tmp_path, capsys):
    import json

    import matplotlib
    matplotlib.use("Agg")
    import torch
    from PIL import Image

    from colorbook.notebook import show_recorded_grids
    from colorbook.training.loop import image_grid

    folder = tmp_path / "dtu-mnist"
    folder.mkdir()
    grid = image_grid(torch.rand(9, 3, 8, 8), nrow=3)
    Image.fromarray(grid.mul(255).round().byte().permute(1, 2, 0).numpy()).save(folder / "K.png")
    (folder / "J.json").write_text(json.dumps({"config": "J"}))  # recorded on data that may not be shown
    fig = show_recorded_grids("dtu-mnist", ["K", "J", "H"], results_root=tmp_path)
    (folder / "K.json").write_text(json.dumps({"config": "K", "iterations": 1500}))
    longer = show_recorded_grids("dtu-mnist", ["K"], results_root=tmp_path).axes[1].get_title(loc="left")
    assert longer.endswith("(recorded: full profile, 1,500 iterations)")
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert titles[0] == "gray input" and titles[-1] == "truth" and len(titles) == 3
    assert titles[1].startswith("K: reconstruction only") and titles[1].endswith("(recorded: full profile)")
    printed = capsys.readouterr().out
    assert "J: recorded in results/dtu-mnist/ without a sample grid" in printed
    assert "not recorded yet in results/dtu-mnist/: H" in printed
    assert "reproduce --table dtu-mnist --profile full --configs H" in printed
    assert show_recorded_grids("dtu-mnist", ["H"], results_root=tmp_path) is None


def test_training_curves_of_kth_runs_show_l1_and_the_probability_gap(tmp_path):
    import json

    import matplotlib
    matplotlib.use("Agg")

    from colorbook.notebook import KTH_TRAINING_CURVES, plot_training_curves

    rows = [{"iteration": i, "g_l1": 0.3 - 0.1 * i, "d_real": 0.6, "d_fake": 0.6 - 0.1 * i} for i in range(3)]
    (tmp_path / "v2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "l1.jsonl").write_text("".join(json.dumps({"iteration": i, "g_l1": 0.2}) + "\n" for i in range(3)))
    fig = plot_training_curves({"v2": tmp_path / "v2.jsonl", "v2-l1": tmp_path / "l1.jsonl"}, smooth=1,
                               panels=KTH_TRAINING_CURVES)
    l1, gap = fig.axes[:2]
    assert [line.get_label() for line in l1.lines] == ["v2", "v2-l1"]
    assert [line.get_label() for line in gap.lines] == ["v2"]
    assert list(gap.lines[0].get_ydata()) == pytest.approx([0.0, 0.1, 0.2])


def test_training_curves_draw_the_first_run_on_top_and_each_run_in_its_own_dash(tmp_path):
    import json

    import matplotlib
    matplotlib.use("Agg")

    from colorbook.notebook import plot_training_curves
    rows = [{"iteration": i, "recon": 1.0, "d_real_logit": 0.0, "d_fake_logit": 0.0, "r1": 0.1} for i in range(10)]
    for name in ("k", "h", "j"):  # three identical runs: each must stay visible
        (tmp_path / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    fig = plot_training_curves({n: tmp_path / f"{n}.jsonl" for n in ("k", "h", "j")}, smooth=1)
    lines = fig.axes[0].lines
    assert [line.get_label() for line in lines] == ["k", "h", "j"]
    assert lines[0].get_zorder() > lines[1].get_zorder() > lines[2].get_zorder()
    # get_linestyle() names every custom dash "--": compare the dash patterns themselves
    assert len({str(line._unscaled_dash_pattern) for line in lines}) == 3


def test_recorded_result_reads_another_results_folder(tmp_path):
    import json

    from colorbook.notebook import recorded_result
    folder = tmp_path / "dev" / "kth" / "quick"
    folder.mkdir(parents=True)
    (folder / "v2.json").write_text(json.dumps({"config": "v2", "profile": "quick", "metrics": {}}))
    assert recorded_result("kth", "v2", profile="quick", results_root=tmp_path / "dev")["config"] == "v2"
    assert recorded_result("kth", "v2", profile="full", results_root=tmp_path / "dev") is None
    assert recorded_result("kth", "v3", profile="quick", results_root=tmp_path / "dev") is None


def test_stroke_colours_put_one_point_per_digit_in_each_panel_with_a_key():
    import matplotlib
    matplotlib.use("Agg")
    import torch

    from colorbook.data.mnist import mnist_ab
    from colorbook.notebook import plot_stroke_colours
    digits = torch.tensor([0, 7, 7])
    truth = torch.zeros(3, 3, 16, 16)
    truth[:, 1:] = mnist_ab(digits.tolist(), [0.0] * 3).float()[:, :, None, None]
    truth[:, 0, 4:12, 4:12] = 0.9
    gray = truth.clone()
    gray[:, 1:] = 0.5
    fig = plot_stroke_colours({"truth": truth, "gray": gray}, truth, digits)
    first, second = fig.axes[:2]
    assert [first.get_title(), second.get_title()] == ["truth", "gray"]
    predicted = second.collections[1]  # truth in gray, the predictions, the neutral point
    assert predicted.get_offsets().tolist() == [[0.5, 0.5]] * 3
    colours = predicted.get_facecolors()
    assert (colours[1] == colours[2]).all() and not (colours[0] == colours[1]).all()
    assert tuple(colours[1][:3]) == (0.0, 0.0, 0.0)  # 7 in black, not tab10's gray
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [str(d) for d in range(10)]
