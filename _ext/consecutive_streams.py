"""Sphinx extension for the book: merge a code cell's printed output only where it was printed in one
run, between the same two tables or figures.

A cell that prints for a while reaches the notebook as several stream outputs, which myst-nb shows as
several boxes. Its ``nb_merge_streams`` option joins them, but it joins every printed line of the cell
into the first box, above every table and figure the cell displays, so a verdict printed under its
figure lands above it. This extension makes that option merge only *consecutive* stream outputs
(myst-nb's own merge, \\r and \\b handling included, applied to each run of them): one box per run,
each where it was printed.
"""
from __future__ import annotations

from typing import Any

import myst_nb.core.render as render
from myst_nb.core.utils import coalesce_streams

_ORIGINAL = coalesce_streams


def coalesce_consecutive_streams(outputs: list) -> list:
    """``outputs`` with each run of consecutive stream outputs merged as myst-nb merges a cell's
    streams; every other output stays where it was, between the runs."""
    merged, run = [], []
    for output in outputs or []:
        if output.get("output_type") == "stream":
            run.append(output)
            continue
        merged += _ORIGINAL(run) if run else []
        run = []
        merged.append(output)
    return merged + (_ORIGINAL(run) if run else [])


def setup(app: Any) -> dict[str, Any]:
    if getattr(render, "coalesce_streams", None) is not _ORIGINAL:
        # a myst-nb that no longer calls the function by this name: fail the build loudly rather than
        # leave the printed lines out of place
        raise RuntimeError("consecutive_streams: myst_nb.core.render.coalesce_streams not found; "
                           "this extension needs updating for the installed myst-nb")
    render.coalesce_streams = coalesce_consecutive_streams
    return {"parallel_read_safe": True, "parallel_write_safe": True}
