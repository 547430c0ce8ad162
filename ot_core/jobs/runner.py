"""Execute a job notebook with papermill and keep the executed copy, whatever the outcome.

The path is CLI/scheduler → this module → papermill → a kernel that imports ``ot_core``.
Connection URLs never become parameters: the kernel inherits ``OT_SOURCE_URL`` /
``OT_WAREHOUSE_URL`` from the environment, so they never appear in a notebook; the
executed notebook is still scrubbed of any known secret before it is kept.

Order of a run: check parameters (nothing runs on a bad one) → take the job's lock (busy:
a 'skipped' row and :class:`JobLocked`, exit 75) → 'running' row (rows of the job a killed
runner left 'running' become 'abandoned') → papermill executes the notebook in memory (the
runner holds no warehouse connection meanwhile, except PostgreSQL's lock session) → a
header cell with the run's identity and outcome is put on top → the notebook is scrubbed
and written once → figures read from the in-memory notebook → final row → lock released.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import ot_core
from ot_core.config import PipelineConfig, resolve_config
from ot_core.db.connect import remember_env_secrets, url_from_env
from ot_core.db.warehouse import Warehouse
from ot_core.errors import JobError, JobLocked, exit_code_of
from ot_core.figures import read_figures
from ot_core.jobs import alerts, audit, records
from ot_core.jobs.catalogue import Catalogue, JobSpec, load_catalogue
from ot_core.resources import runs_dir
from ot_core.secrets import masked, redact
from ot_core.timeutil import iso, utcnow

log = logging.getLogger("ot.jobs")
_TYPES = {"int": int, "float": float, "bool": bool, "str": str}


HEADER_TAG = "ot-run-header"


def papermill():
    """papermill, imported without ``rfc3987_syntax``: when that package is installed,
    jsonschema (imported by nbformat) compiles some 40 grammars at import to check IRI
    formats notebook validation never uses — about 2 s of every run's start."""
    if "papermill" not in sys.modules and "jsonschema" not in sys.modules:
        blocked = "rfc3987_syntax" not in sys.modules
        if blocked:
            sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]
        try:
            import papermill as pm
        finally:
            if blocked:
                del sys.modules["rfc3987_syntax"]
        return pm
    import papermill as pm

    return pm


def notebook_parameters(path: Path) -> dict[str, dict[str, Any]]:
    return papermill().inspect_notebook(str(path))


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


def _as_list(job: str, name: str, value: Any) -> list:
    """A list parameter from the command line: ``uti``, ``ecs,uti`` or a JSON list."""
    if isinstance(value, (list, tuple)):
        return list(value)
    text = str(value).strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if not isinstance(parsed, list):
            raise JobError(f"job {job!r}: parameter {name!r} expects a list (e.g. ecs,uti or "
                           f'["ecs", "uti"]); got {value!r}. Nothing was run.')
        return parsed
    return [part.strip() for part in text.split(",") if part.strip()]


def _coerce(job: str, name: str, value: Any, info: dict[str, Any]) -> Any:
    if str(info.get("inferred_type_name") or "").split("[")[0] in ("list", "List"):
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null")
                             and str(info.get("default")) == "None"):
            return None
        return _as_list(job, name, value)
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
        """0 succeeded; a failed run keeps the meaning of the project's error that stopped
        its notebook (75 transient: retry later; 2 usage; 3 terminal; 1 a data check or any
        other failure)."""
        if self.status == "succeeded":
            return 0
        return exit_code_of(self.error.split(":", 1)[0] if self.error else None)

    def as_json(self) -> dict[str, Any]:
        """What ``ot run --json`` prints for schedulers."""
        return {"run_id": self.run_id, "job": self.job, "status": self.status,
                "notebook": str(self.notebook) if self.notebook else None,
                "error": redact(self.error) if self.error else None, "exit_code": self.exit_code}


def to_html(nb: Any, notebook: Path) -> Path:
    """A self-contained HTML copy beside ``notebook`` (the runner writes one for every run)."""
    out = notebook.with_suffix(".html")
    out.write_text(audit.to_html(nb))
    return out


@cache
def code_version() -> str:
    """ot_core's version, with the git commit when it runs from a checkout (``+dirty`` when
    tracked files differ from it), else the installed distribution's version."""
    root = Path(ot_core.__file__).resolve().parent.parent
    version = f"ot_core {ot_core.__version__}"
    if (root / ".git").exists():
        try:
            commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                                    capture_output=True, text=True, timeout=10, check=True).stdout.strip()
            dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                    "--untracked-files=no"], capture_output=True, text=True,
                                   timeout=10, check=True).stdout.strip()
            return f"{version}, git commit {commit}{'+dirty' if dirty else ''} (checkout {root})"
        except (OSError, subprocess.SubprocessError):
            pass
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return f"{version}, installed ot-workbench {dist_version('ot-workbench')}"
    except PackageNotFoundError:
        return f"{version} (not installed, no checkout)"


def _md(text: str) -> str:
    """One table-cell-safe line."""
    return " ".join(str(text).split()).replace("|", "\\|")


def run_header(spec: JobSpec, run_id: int, params: dict, started: datetime, ended: datetime,
               status: str, error: str | None, failed_cell: int | None, urls: dict[str, str]) -> str:
    """The markdown an executed notebook opens with: who ran what, when, and how it ended."""
    outcome = f"**{status}**"
    if error:
        where = f" (cell In [{failed_cell}])" if failed_cell is not None else ""
        outcome += f" — `{_md(error.splitlines()[0] if error.strip() else error)[:500]}`{where}"
    rows = [
        ("run id", str(run_id)),
        ("job", f"`{spec.name}` (notebook `{spec.notebook}`, cron `{spec.schedule}`, "
                f"timeout {spec.timeout_seconds} s)"),
        ("status", outcome),
        ("parameters", f"`{_md(records.to_json(params))}`"),
        ("started (UTC)", iso(started)),
        ("ended (UTC)", iso(ended)),
        ("duration", f"{(ended - started).total_seconds():.1f} s"),
        ("code version", _md(code_version())),
        ("source", f"`{_md(urls['source'])}`"),
        ("warehouse", f"`{_md(urls['warehouse'])}`"),
        ("runner", f"pid {os.getpid()} on {_md(socket.gethostname())}"),
    ]
    lines = [f"# Run {run_id} of job `{spec.name}`: {status.upper()}", "",
             "| | |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows]]
    return redact("\n".join(lines))


def notebook_error(nb: Any) -> tuple[str | None, int | None]:
    """The first error output of an executed notebook: 'Name: value' and its cell's count."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                if out.get("ename") == "SystemExit" and str(out.get("evalue")) in ("", "0"):
                    continue
                return f"{out.get('ename')}: {out.get('evalue')}", cell.get("execution_count")
    return None, None


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
    urls = {role: masked(url_from_env(role)) for role in ("source", "warehouse")}
    with Warehouse.open(cfg) as warehouse:
        wh = warehouse.db
        lock = warehouse.lock(spec)
        started = utcnow().replace(microsecond=0)
        if not spec.overlap and not lock.acquire():
            holder = redact(lock.holder())
            records.record_skipped(wh, cfg, job, params, started,
                                   f"skipped: already running: {holder}")
            skipped = JobLocked(job, holder)
        else:
            skipped = None
            try:
                run = _run_locked(spec, params, wh, cfg, lock, started, html, base, urls)
            finally:
                lock.release()
    # the lock is free and the warehouse closed: alerts hold up nothing, and never raise
    alerts.after_job(job, cfg)
    if skipped is not None:
        raise skipped
    return run


def _execute_in_memory(spec: JobSpec, params: dict, cwd: Path) -> tuple[Any, str | None, int | None]:
    """Execute the notebook with papermill without writing it anywhere (no per-cell saves):
    the runner writes it once, with its header. Returns the notebook as far as it ran."""
    papermill()
    from papermill.engines import papermill_engines
    from papermill.execute import prepare_notebook_metadata, remove_error_markers
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook
    from papermill.utils import chdir

    nb = load_notebook_node(str(spec.notebook_path))
    if params:
        nb = parameterize_notebook(nb, params, kernel_name="python3")
    nb = remove_error_markers(prepare_notebook_metadata(nb, str(spec.notebook_path), None))
    error, failed_cell = None, None
    try:
        with chdir(str(cwd)), _kernel_manager() as km:
            nb = papermill_engines.execute_notebook_with_engine(
                None, nb, input_path=str(spec.notebook_path), output_path=None,
                kernel_name="python3", progress_bar=False, log_output=False, start_timeout=60,
                execution_timeout=spec.timeout_seconds, km=km)
    except Exception as e:  # noqa: BLE001 - kernel died, timeout: a failed run with its notebook
        error = f"{type(e).__name__}: {e}"
    cell_error, failed_cell = notebook_error(nb)
    return nb, cell_error or error, failed_cell


@contextmanager
def _kernel_manager() -> Iterator[Any]:
    """The job's kernel, spoken to over Unix sockets in a private folder (no TCP port that
    any local user could connect to, and no warning about one in every run's output).

    An *async* manager, as nbclient expects: with a blocking one its client blocks the event
    loop while it waits for output, so neither the job's timeout nor a dead kernel is ever
    noticed (a cell sleeping past ``timeout_seconds`` ran to its end; a kernel that died
    left the run waiting for ever)."""
    import tempfile

    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import run_sync

    with tempfile.TemporaryDirectory(prefix="ot-kernel-") as folder:
        km = AsyncKernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(folder, "k"))
        try:
            yield km
        finally:  # a kernel manager handed to papermill is the caller's to shut down
            if km.has_kernel:
                run_sync(km.shutdown_kernel)(now=True)


def _run_locked(spec: JobSpec, params, wh, cfg, lock, started, html, base, urls) -> JobRun:
    import nbformat

    folder = output_path(spec.name, started, "running", base).parent
    folder.mkdir(parents=True, exist_ok=True)
    # no notebook exists until the run ends (it is written once, with its outcome)
    run_id = records.start_run(wh, cfg, spec.name, params, started, None,
                               lock_held=not spec.overlap)
    lock.set_holder(f"run {run_id}, pid {os.getpid()}, started {iso(started)}")
    log.info("job %s run %d started", spec.name, run_id,
             extra={"event": "job_started", "job": spec.name, "run_id": run_id})
    nb, error, failed_cell = _execute_in_memory(spec, params, folder)
    status = "failed" if error else "succeeded"
    error = redact(error) if error else None
    ended = utcnow()
    header = nbformat.v4.new_markdown_cell(
        run_header(spec, run_id, params, started, ended, status, error, failed_cell, urls))
    header.metadata["tags"] = [HEADER_TAG]
    nb.cells.insert(0, header)
    if error and failed_cell is None:  # no cell raised it (timeout, a lost kernel): say so last
        nb.cells.append(nbformat.v4.new_markdown_cell(f"**The run failed here:** `{_md(error)[:500]}`"))
    final = output_path(spec.name, started, status, base)
    figures = read_figures(nb)
    sealed = audit.seal(nb, final)  # once, scrubbed, signed, read-only, with its HTML twin
    records.finish_run(wh, cfg, run_id, status=status, ended=ended, notebook_path=str(final),
                       error=error, figures=figures,
                       checksums=(sealed.notebook_sha256, sealed.html_sha256))
    log.info("job %s run %d %s", spec.name, run_id, status,
             extra={"event": "job_finished", "job": spec.name, "run_id": run_id,
                    "status": status, "seconds": round((ended - started).total_seconds(), 3),
                    "notebook": str(final)})
    return JobRun(spec.name, status, final, started, ended, error, run_id, sealed.html, figures)
