"""colorbook.notebook in a real kernel: figures are drawn into the notebook even under MPLBACKEND=Agg."""
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
