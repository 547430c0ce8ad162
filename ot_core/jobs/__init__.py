"""Jobs: the catalogue, the papermill runner, audit records, locks and the scheduler."""

from ot_core.jobs.records import recent_runs, show_figures

__all__ = ["recent_runs", "show_figures"]
