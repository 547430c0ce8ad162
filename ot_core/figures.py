"""Figures a job notebook hands back to its runner: one JSON output of a mime type of its
own, displayed by the notebook and read from the executed notebook by ``jobs/runner.py``
(they become the ``figures`` column of the job-runs table).

Kept at the base so any layer's notebook display can report figures without importing the
job machinery.
"""

from __future__ import annotations

import json
from typing import Any

FIGURES_MIME = "application/vnd.ot.figures+json"


def show_figures(figures: dict) -> None:
    """Display ``figures`` as a JSON output the runner reads back from the executed notebook."""
    from IPython.display import display

    payload = json.loads(json.dumps(figures, default=str))
    display({FIGURES_MIME: payload, "text/plain": f"figures: {json.dumps(payload, sort_keys=True)}"},
            raw=True)


def read_figures(nb: Any) -> dict | None:
    """The last figures output of an executed notebook node (None if it recorded none)."""
    found = None
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data") or {}
            if FIGURES_MIME in data:
                found = data[FIGURES_MIME]
    return found
