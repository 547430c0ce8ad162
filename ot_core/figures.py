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


# keys whose whole-number values are epoch seconds: shown as UTC times to a reader
_TIME_KEYS = ("lower", "upper", "as_of", "watermark", "cutoff")


def _readable(value: Any, key: str = "") -> Any:
    """``value`` with epoch seconds under time-like keys written as UTC ISO times."""
    from ot_core.timeutil import from_epoch, iso

    if isinstance(value, dict):
        return {k: _readable(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_readable(v, key) for v in value]
    timeish = key in _TIME_KEYS or key.endswith(("_time", "_at"))
    if timeish and isinstance(value, int) and not isinstance(value, bool) and 10**8 < value < 10**10:
        return iso(from_epoch(value))
    return value


def show_figures(figures: dict) -> None:
    """Display ``figures`` as a JSON output the runner reads back from the executed notebook.
    A reader sees them folded (they are for machines: ``ot runs --json``, dashboards), with
    epoch seconds as UTC times; the machine-readable payload is unchanged."""
    from html import escape

    from IPython.display import display

    payload = json.loads(json.dumps(figures, default=str))
    pretty = json.dumps(_readable(payload), indent=2, sort_keys=True)
    html = ("<details><summary>figures this run recorded in <code>ot_job_runs</code> "
            f"(times in UTC)</summary><pre>{escape(pretty)}</pre></details>")
    display({FIGURES_MIME: payload, "text/html": html,
             "text/plain": "figures recorded in ot_job_runs (see ot runs --json)"}, raw=True)


def read_figures(nb: Any) -> dict | None:
    """The last figures output of an executed notebook node (None if it recorded none)."""
    found = None
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data") or {}
            if FIGURES_MIME in data:
                found = data[FIGURES_MIME]
    return found
