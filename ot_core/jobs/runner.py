"""Execute a job notebook with papermill and keep the executed copy, whatever the outcome.

The path is CLI → this module → papermill → a kernel that imports ``ot_core``. Connection
URLs never become parameters: the kernel inherits ``OT_SOURCE_URL`` / ``OT_WAREHOUSE_URL``
from the environment, so they never appear in a notebook.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..config import PROJECT_ROOT
from ..errors import JobError
from ..timeutil import utcnow

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks" / "jobs"


def runs_dir() -> Path:
    return Path(os.environ.get("OT_RUNS_DIR", "runs")).resolve()


def notebook_for(job: str) -> Path:
    path = NOTEBOOK_DIR / f"{job}.ipynb"
    if not path.exists():
        known = sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb"))
        raise JobError(f"no job notebook {job!r}; known jobs: {', '.join(known)}")
    return path


def notebook_parameters(path: Path) -> dict[str, dict[str, Any]]:
    import papermill

    return papermill.inspect_notebook(str(path))


def output_path(job: str, started: datetime, status: str, base: Path | None = None) -> Path:
    base = base or runs_dir()
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    return base / job / started.strftime("%Y/%m/%d") / f"{job}-{stamp}-{status}.ipynb"


@dataclass
class JobRun:
    job: str
    status: str
    notebook: Path
    started: datetime
    ended: datetime
    error: str | None = None

    @property
    def exit_code(self) -> int:
        return 0 if self.status == "succeeded" else 1


def execute(job: str, parameters: dict[str, Any] | None = None, *, base: Path | None = None,
            timeout: int | None = None) -> JobRun:
    """Run ``job``'s notebook; the executed notebook is kept under the runs folder."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    nb = notebook_for(job)
    params = dict(parameters or {})
    declared = notebook_parameters(nb)
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise JobError(f"job {job!r} has no parameter {unknown[0]!r}; its parameters: "
                       f"{', '.join(declared) or '(none)'}")
    started = utcnow().replace(microsecond=0)
    running = output_path(job, started, "running", base)
    running.parent.mkdir(parents=True, exist_ok=True)
    error = None
    status = "succeeded"
    try:
        papermill.execute_notebook(
            str(nb), str(running), parameters=params, kernel_name="python3",
            progress_bar=False, log_output=False, execution_timeout=timeout,
            cwd=str(PROJECT_ROOT),
        )
    except PapermillExecutionError as e:
        status, error = "failed", f"{e.ename}: {e.evalue}"
    except Exception as e:  # kernel died, timeout, ...: still a failed run with its notebook
        status, error = "failed", f"{type(e).__name__}: {e}"
    final = output_path(job, started, status, base)
    if running.exists():
        running.replace(final)
    return JobRun(job, status, final, started, utcnow(), error)
