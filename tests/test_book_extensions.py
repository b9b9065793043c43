"""The book's own Sphinx extension (_ext/consecutive_streams.py)."""
from __future__ import annotations

import sys

import pytest

from colorbook.provenance import REPO_ROOT

pytest.importorskip("myst_nb", reason="myst-nb comes with jupyter-book; install requirements.txt")
sys.path.insert(0, str(REPO_ROOT / "_ext"))
from consecutive_streams import coalesce_consecutive_streams  # noqa: E402


def stream(text: str, name: str = "stdout") -> dict:
    return {"output_type": "stream", "name": name, "text": text}


def test_printed_lines_merge_only_between_the_same_two_displays():
    figure = {"output_type": "display_data", "data": {"image/png": ""}, "metadata": {}}
    table = {"output_type": "display_data", "data": {"text/html": "<table/>"}, "metadata": {}}
    outputs = [stream("seed 0:\n"), table, stream("mean over seeds\n"), stream("[0, 1, 2]:\n"), figure,
               stream("verdict: yes\n")]
    merged = coalesce_consecutive_streams(outputs)
    assert [o["output_type"] for o in merged] == ["stream", "display_data", "stream", "display_data", "stream"]
    assert merged[0]["text"] == "seed 0:\n" and merged[1] is table and merged[3] is figure
    assert merged[2]["text"] == "mean over seeds\n[0, 1, 2]:\n"  # one box, not two
    assert merged[4]["text"] == "verdict: yes\n"  # still under its figure


def test_a_progress_bar_keeps_only_its_last_state():
    merged = coalesce_consecutive_streams([stream("10%\r50%\r100%\n", "stderr")])
    assert merged == [stream("100%\n", "stderr")]


def test_the_extension_replaces_the_merge_that_myst_nb_calls():
    import myst_nb.core.render as render

    import consecutive_streams
    original = render.coalesce_streams
    try:
        consecutive_streams.setup(app=None)
        assert render.coalesce_streams is coalesce_consecutive_streams
    finally:
        render.coalesce_streams = original
