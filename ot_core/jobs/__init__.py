"""Jobs: the catalogue, the papermill runner, audit records, locks and the scheduler.

``recent_runs`` and ``show_figures`` (what notebooks import from here) load on first use, so
importing a job module (the lock, for ``ot cycle``) does not import the notebook stack.
"""

from __future__ import annotations

from typing import Any

__all__ = ["recent_runs", "show_figures"]


def __getattr__(name: str) -> Any:
    if name == "recent_runs":
        from ot_core.jobs.records import recent_runs

        return recent_runs
    if name == "show_figures":
        from ot_core.figures import show_figures

        return show_figures
    raise AttributeError(f"module 'ot_core.jobs' has no attribute {name!r}")
