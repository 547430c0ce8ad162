"""Execute a job notebook with papermill and keep the executed copy, whatever the outcome.

The path is CLI/scheduler → this module → papermill → a kernel that imports ``ot_core``.
Connection URLs never become parameters: the kernel inherits ``OT_SOURCE_URL`` /
``OT_WAREHOUSE_URL`` from the environment, so they never appear in a notebook; the
executed notebook is still scrubbed of any known secret before it is kept.

Order of a run: check parameters (nothing runs on a bad one) → take the job's lock (busy:
a 'skipped' row and :class:`JobLocked`, exit 75) → 'running' row → papermill (the runner
holds no warehouse connection meanwhile, except PostgreSQL's lock session) → figures read
back from the notebook → final row → lock released.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat

from ot_core.config import PipelineConfig, resolve_config
from ot_core.db.connect import remember_env_secrets
from ot_core.db.warehouse import Warehouse
from ot_core.errors import JobError, JobLocked
from ot_core.jobs import records
from ot_core.jobs.catalogue import Catalogue, JobSpec, load_catalogue
from ot_core.resources import runs_dir
from ot_core.secrets import redact
from ot_core.timeutil import iso, utcnow

log = logging.getLogger("ot.jobs")
_TYPES = {"int": int, "float": float, "bool": bool, "str": str}


def notebook_parameters(path: Path) -> dict[str, dict[str, Any]]:
    import papermill

    return papermill.inspect_notebook(str(path))


def output_path(job: str, started: datetime, status: str, base: Path | None = None) -> Path:
    base = base or runs_dir()
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    return base / job / started.strftime("%Y/%m/%d") / f"{job}-{stamp}-{status}.ipynb"


def _declared_type(info: dict[str, Any]) -> type | None:
    name = str(info.get("inferred_type_name") or "")
    for key, typ in _TYPES.items():
        if name == key or name.startswith(f"{key} ") or f"[{key}]" in name or name.startswith(f"{key}|"):
            return typ
    return None


def _coerce(job: str, name: str, value: Any, info: dict[str, Any]) -> Any:
    typ = _declared_type(info)
    allows_none = str(info.get("default")) == "None"
    if isinstance(value, str) and value.strip().lower() in ("none", "null") and allows_none:
        return None
    if value is None and allows_none:
        return None
    if typ is None:
        return value
    want = typ.__name__
    if isinstance(value, str) and typ is not str:
        text = value.strip()
        try:
            if typ is bool:
                if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return text.lower() in ("true", "1", "yes")
            return typ(text)
        except ValueError:
            raise JobError(f"job {job!r}: parameter {name!r} expects {want}; got {value!r}. "
                           "Nothing was run.") from None
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise JobError(f"job {job!r}: parameter {name!r} expects {want}; got {value!r}. "
                       "Nothing was run.")
    return value


def resolve_parameters(spec: JobSpec, given: dict[str, Any] | None) -> dict[str, Any]:
    """Catalogue defaults overlaid with ``given``, each checked against the parameters cell."""
    declared = notebook_parameters(spec.notebook_path)
    merged = {**spec.parameters, **(given or {})}
    unknown = sorted(set(merged) - set(declared))
    if unknown:
        raise JobError(f"job {spec.name!r} has no parameter {unknown[0]!r}; its parameters: "
                       f"{', '.join(declared) or '(none)'}. Nothing was run.")
    out = {k: _coerce(spec.name, k, v, declared[k]) for k, v in merged.items()}
    for k, v in out.items():
        if isinstance(v, str) and redact(v) != v:
            raise JobError(f"job {spec.name!r}: parameter {k!r} looks like it carries a "
                           "password; secrets come from the environment, never parameters")
    return out


@dataclass
class JobRun:
    job: str
    status: str
    notebook: Path | None
    started: datetime
    ended: datetime
    error: str | None = None
    run_id: int | None = None
    html: Path | None = None
    figures: dict | None = field(default=None)

    @property
    def exit_code(self) -> int:
        return 0 if self.status == "succeeded" else 1


def scrub_notebook(path: Path) -> None:
    """Redact known secrets from every output of an executed notebook (defence in depth)."""
    text = path.read_text()
    clean = redact(text)
    if clean != text:
        path.write_text(clean)


def to_html(notebook: Path) -> Path:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(str(notebook), as_version=4))
    out = notebook.with_suffix(".html")
    out.write_text(redact(body))
    return out


def execute(job: str, parameters: dict[str, Any] | None = None, *, html: bool = False,
            catalogue: Catalogue | None = None, config: PipelineConfig | str | None = None,
            base: Path | None = None) -> JobRun:
    """Run ``job``'s notebook under its lock; raises JobLocked when a run is in progress."""
    spec = (catalogue or load_catalogue()).job(job)
    if not spec.notebook_path.exists():
        raise JobError(f"job {job!r}: notebook {spec.notebook} does not exist")
    params = resolve_parameters(spec, parameters)
    cfg = resolve_config(config)
    remember_env_secrets()  # the kernel's connections: their passwords are scrubbed too
    with Warehouse.open(cfg) as warehouse:
        wh = warehouse.db
        lock = warehouse.lock(spec)
        started = utcnow().replace(microsecond=0)
        if not spec.overlap and not lock.acquire():
            holder = redact(lock.holder())
            records.record_skipped(wh, cfg, job, params, started,
                                   f"skipped: already running: {holder}")
            raise JobLocked(job, holder)
        try:
            return _run_locked(spec, params, wh, cfg, lock, started, html, base)
        finally:
            lock.release()


def _run_locked(spec: JobSpec, params, wh, cfg, lock, started, html, base) -> JobRun:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    running = output_path(spec.name, started, "running", base)
    running.parent.mkdir(parents=True, exist_ok=True)
    run_id = records.start_run(wh, cfg, spec.name, params, started, str(running))
    lock.set_holder(f"run {run_id}, pid {os.getpid()}, started {iso(started)}")
    log.info("job %s run %d started: %s", spec.name, run_id, running)
    status, error = "succeeded", None
    try:
        papermill.execute_notebook(
            str(spec.notebook_path), str(running), parameters=params, kernel_name="python3",
            progress_bar=False, log_output=False, execution_timeout=spec.timeout_seconds,
            cwd=str(running.parent),
        )
    except PapermillExecutionError as e:
        status, error = "failed", f"{e.ename}: {e.evalue}"
    except Exception as e:  # noqa: BLE001 - kernel died, timeout: a failed run with its notebook
        status, error = "failed", f"{type(e).__name__}: {e}"
    final = output_path(spec.name, started, status, base)
    figures = None
    if running.exists():
        scrub_notebook(running)
        running.replace(final)
        figures = records.read_figures(final)
    error = redact(error) if error else None
    html_path = to_html(final) if html and final.exists() else None
    ended = utcnow()
    records.finish_run(wh, cfg, run_id, status=status, ended=ended, notebook_path=str(final),
                       error=error, figures=figures)
    log.info("job %s run %d %s", spec.name, run_id, status)
    return JobRun(spec.name, status, final, started, ended, error, run_id, html_path, figures)
