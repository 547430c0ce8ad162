"""The audit records of job runs: the ``<control>.ot_job_runs`` table and figures.

Columns are a contract other notebooks read (pipeline health): run_id, job, parameters
(JSON, redacted), started_at, ended_at, status (running/succeeded/failed/skipped/abandoned),
notebook_path, error, figures (JSON), pid and host of the runner. ``run_id`` is max+1:
DuckDB has no SERIAL. Columns added since a table was created are added to it on first use.

A run whose process died (killed, machine lost) cannot finish its row; the next run of the
job, or ``ot runs``, marks such a row ``abandoned`` once the job's lock is free and the
recorded process is gone.

The runner never holds the warehouse open while a notebook's kernel runs (DuckDB admits
one writing process per file): each write opens, writes and disposes. A row that cannot be
written because another process has the DuckDB file (a skipped run, while the running
job's kernel holds it) is spooled to a file beside the warehouse and written by the next
runner that gets the file.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_fixed

from ot_core.config import PipelineConfig, load_config
from ot_core.db.connect import Database, connect_with_retries, open_database
from ot_core.db.schema import JOB_RUNS_TABLE, ensure, tables_for
from ot_core.engines import Backend
from ot_core.errors import is_transient
from ot_core.secrets import redact

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("ot.jobs")

STATUSES = ("running", "succeeded", "failed", "skipped", "abandoned")


def job_runs_table(cfg: PipelineConfig, backend: Backend) -> sa.Table:
    return tables_for(cfg, backend).job_runs


def ensure_table(conn: Connection, cfg: PipelineConfig, backend: Backend) -> sa.Table:
    """The job-runs table, after every missing table was created (with the others)."""
    ensure(conn, cfg, backend)
    return job_runs_table(cfg, backend)


def naive_utc(dt: datetime) -> datetime:
    """TIMESTAMP columns hold UTC without a zone."""
    return dt.astimezone(UTC).replace(tzinfo=None) if dt.tzinfo else dt


def to_json(value: Any) -> str:
    return redact(json.dumps(value, default=str, sort_keys=True))


def spool_path(db: Database) -> Path | None:
    """Where rows wait while another process holds an embedded warehouse file."""
    if db.backend.single_writer and db.url.database not in (None, "", ":memory:"):
        return Path(f"{db.url.database}.job_runs.pending.jsonl")
    return None


def _flush_spool(conn: Connection, t: sa.Table, db: Database) -> None:
    path = spool_path(db)
    if path is None or not path.exists():
        return
    lines = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    for row in lines:
        row["run_id"] = _next_id(conn, t)
        for k in ("started_at", "ended_at"):
            row[k] = datetime.fromisoformat(row[k]) if row.get(k) else None
        conn.execute(sa.insert(t).values(**row))
    path.unlink()


def _next_id(conn: Connection, t: sa.Table) -> int:
    from ot_core.engines import backend_for

    backend_for(conn).serialize_ids(conn, t.schema, t.name)  # two jobs starting at once
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(t.c.run_id), 0))).scalar_one()) + 1


def _write(db: Database, cfg: PipelineConfig, fn, *, wait_seconds: float = 10.0):
    """Open, ensure the table, flush spooled rows, run ``fn(conn, table)``, dispose.

    A warehouse file busy in another process is retried for ``wait_seconds``.
    """
    retrying = Retrying(stop=stop_after_delay(wait_seconds), wait=wait_fixed(0.2),
                        retry=retry_if_exception(is_transient), reraise=True)
    for attempt in retrying:
        with attempt:
            try:
                with db.engine.connect() as conn, conn.begin():
                    t = ensure_table(conn, cfg, db.backend)
                    _flush_spool(conn, t, db)
                    return fn(conn, t)
            finally:
                db.dispose()
    raise AssertionError("unreachable: tenacity re-raises the last failure")


def start_run(db: Database, cfg: PipelineConfig, job: str, parameters: dict,
              started: datetime, notebook_path: str | None, *, lock_held: bool = True) -> int:
    """The 'running' row of a new run. Rows of ``job`` still 'running' are marked abandoned
    first: with the job's lock held none of them can be alive (``lock_held``); without it
    (jobs that may overlap), those whose process on this host is gone."""
    def ins(conn, t):
        _abandon(conn, t, job, everyone=lock_held)
        run_id = _next_id(conn, t)
        conn.execute(sa.insert(t).values(
            run_id=run_id, job=job, parameters=to_json(parameters),
            started_at=naive_utc(started), status="running", notebook_path=notebook_path,
            pid=os.getpid(), host=socket.gethostname()))
        return run_id

    return _write(db, cfg, ins)


def process_gone(pid: int | None, host: str | None) -> bool:
    """True when the recorded runner is certainly not running any more; a process on
    another host cannot be checked from here (False)."""
    if pid is None or host != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _abandon(conn: Connection, t: sa.Table, job: str, *, everyone: bool) -> list[int]:
    """Mark ``job``'s 'running' rows abandoned: all of them when the caller holds the job's
    lock (no run of it can be alive), else those whose process is gone."""
    rows = conn.execute(sa.select(t.c.run_id, t.c.pid, t.c.host, t.c.notebook_path)
                        .where(t.c.job == job, t.c.status == "running")).fetchall()
    found = iso_now()
    marked = []
    for run_id, pid, host, nb in rows:
        if not everyone and not process_gone(pid, host):
            continue
        who = f"pid {pid} on {host}" if pid is not None else "its process"
        conn.execute(sa.update(t).where(t.c.run_id == run_id, t.c.status == "running").values(
            status="abandoned", notebook_path=_abandoned_notebook(nb),
            error=f"abandoned: the run's process ({who}) ended without recording an outcome "
                  f"(killed or its machine lost); found {found} with the job's lock free"))
        marked.append(int(run_id))
        log.warning("job %s run %d marked abandoned (%s gone)", job, run_id, who)
    return marked


def _abandoned_notebook(path: str | None) -> str | None:
    """A partial notebook an older runner left under the '-running' name (it saved as it
    ran) is renamed '-abandoned'; this runner writes none until the run ends."""
    if not path or not path.endswith("-running.ipynb"):
        return path
    new = path.removesuffix("-running.ipynb") + "-abandoned.ipynb"
    try:
        Path(path).replace(new)
    except OSError:
        return None if not Path(path).exists() else path
    return new


def iso_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sweep_abandoned(db: Database, cfg: PipelineConfig) -> list[int]:
    """For ``ot runs``: mark abandoned every 'running' row whose job's lock is free (taken
    and released here) and whose process is gone. Returns the run ids marked."""
    from ot_core.jobs.catalogue import load_catalogue
    from ot_core.jobs.lock import lock_for

    def running(conn, t):
        return sorted({r[0] for r in conn.execute(
            sa.select(t.c.job).where(t.c.status == "running")).fetchall()})

    jobs = _write(db, cfg, running, wait_seconds=0.0)
    catalogue = load_catalogue()
    marked: list[int] = []
    for job in jobs:
        if job not in catalogue.jobs:
            continue
        lock = lock_for(db, cfg, catalogue.job(job))
        if not lock.acquire():
            continue
        try:
            marked += _write(db, cfg, lambda conn, t, job=job: _abandon(conn, t, job, everyone=False),
                             wait_seconds=0.0)
        finally:
            lock.release()
    return marked


def finish_run(db: Database, cfg: PipelineConfig, run_id: int, *, status: str, ended: datetime,
               notebook_path: str, error: str | None, figures: Any,
               checksums: tuple[str, str] | None = None) -> None:
    """The run's final row. With ``checksums`` (the notebook's and its HTML twin's SHA-256)
    the row is sealed into the audit chain: the next ``seal_seq`` and the previous sealed
    record's notebook hash, taken in turns with other writers (docs/audit.md)."""
    assert status in STATUSES

    def upd(conn, t):
        seal: dict[str, Any] = {}
        if checksums is not None:
            from ot_core.engines import backend_for

            backend_for(conn).serialize_ids(conn, t.schema, t.name)
            last = conn.execute(sa.select(t.c.seal_seq, t.c.notebook_sha256)
                                .where(t.c.seal_seq.is_not(None))
                                .order_by(t.c.seal_seq.desc()).limit(1)).first()
            seal = {"notebook_sha256": checksums[0], "html_sha256": checksums[1],
                    "seal_seq": (int(last[0]) if last else 0) + 1,
                    "prev_sha256": last[1] if last else None}
        conn.execute(sa.update(t).where(t.c.run_id == run_id).values(
            ended_at=naive_utc(ended), status=status, notebook_path=notebook_path,
            error=redact(error) if error else None,
            figures=to_json(figures) if figures is not None else None, **seal))

    _write(db, cfg, upd, wait_seconds=120.0)


def record_skipped(db: Database, cfg: PipelineConfig, job: str, parameters: dict,
                   at: datetime, error: str) -> None:
    """A skipped run's row; spooled when the warehouse file is busy (it usually is)."""
    row = {"job": job, "parameters": to_json(parameters), "started_at": naive_utc(at),
           "ended_at": naive_utc(at), "status": "skipped", "notebook_path": None,
           "error": redact(error), "figures": None}

    def ins(conn, t):
        conn.execute(sa.insert(t).values(run_id=_next_id(conn, t), **row))

    path = spool_path(db)
    try:
        _write(db, cfg, ins, wait_seconds=0.0 if path else 10.0)
    except Exception as exc:  # noqa: BLE001
        if path is None or not is_transient(exc):
            raise
        with path.open("a") as f:
            f.write(json.dumps(row, default=lambda d: d.isoformat()) + "\n")
        log.info("warehouse file busy: skipped run of %s spooled to %s", job, path)


def recent_runs(job: str | None = None, *, failed: bool = False, status: str | None = None,
                limit: int = 20, warehouse: Database | str | None = None,
                config: PipelineConfig | str | None = None) -> pd.DataFrame:
    """Recent job runs, newest first: the library call behind ``ot runs`` and dashboards."""
    import pandas as pd

    cfg = config if isinstance(config, PipelineConfig) else load_config(config)
    db = warehouse if isinstance(warehouse, Database) else open_database("warehouse", warehouse)
    t = job_runs_table(cfg, db.backend)
    cols = [c.name for c in t.columns]
    try:
        with connect_with_retries(db, retries=cfg.cycle.source_retries,
                                  backoff=cfg.cycle.retry_backoff_seconds) as conn:
            if JOB_RUNS_TABLE not in db.backend.list_tables(conn, cfg.schemas.control, JOB_RUNS_TABLE):
                return pd.DataFrame(columns=cols)
            q = sa.select(t).order_by(t.c.run_id.desc()).limit(int(limit))
            if job:
                q = q.where(t.c.job == job)
            if failed:
                q = q.where(t.c.status == "failed")
            if status:
                q = q.where(t.c.status == status)
            rows = conn.execute(q).fetchall()
    finally:
        db.dispose()
    return pd.DataFrame([tuple(r) for r in rows], columns=cols)


def listed_runs(job: str | None = None, *, failed: bool = False, limit: int = 20,
                config: PipelineConfig | str | None = None) -> pd.DataFrame:
    """``ot runs``: rows a killed run left 'running' are marked abandoned first (when the
    warehouse is free and writable), then the recent runs."""
    cfg = config if isinstance(config, PipelineConfig) else load_config(config)
    with open_database("warehouse") as db:
        try:
            sweep_abandoned(db, cfg)
        except Exception as exc:  # noqa: BLE001 - busy file or a read-only user: list as is
            if not (is_transient(exc) or db.backend.is_permission_denied(exc)):
                raise
            log.info("runs left 'running' by a killed process not checked: %s",
                     redact(str(exc).splitlines()[0]))
        return recent_runs(job, failed=failed, limit=limit, config=cfg, warehouse=db)


def format_runs(job: str | None = None, *, failed: bool = False, limit: int = 20,
                config: PipelineConfig | str | None = None) -> str:
    """``ot runs``: recent runs as a text table a terminal shows unwrapped: start time to the
    second, duration, the notebook's file name (its folder follows from the job and date, as
    the last line says; ``--json`` has full paths), then on lines of their own an error's
    first line (cut at 90 characters; ``--json`` has all of it) and a file:// link to the
    record's HTML twin (a terminal opens it; no kernel needed to read it)."""
    from ot_core.resources import runs_dir

    df = listed_runs(job, failed=failed, limit=limit, config=config)
    if df.empty:
        return "no job runs recorded"
    base = runs_dir()
    rows = [("run", "job", "status", "started (UTC)", "took", "notebook")]
    errors: dict[int, list[str]] = {}
    for r in df.itertuples(index=False):
        start, end = _when(r.started_at), _when(r.ended_at)
        took = f"{(end - start).total_seconds():.1f} s" if start and end else "-"
        rows.append((str(r.run_id), str(r.job), str(r.status),
                     start.strftime("%Y-%m-%d %H:%M:%S") if start else "-", took,
                     Path(r.notebook_path).name if isinstance(r.notebook_path, str) else "-"))
        notes = []
        if isinstance(r.error, str) and r.error:
            first = r.error.splitlines()[0]
            notes.append(f"error: {first if len(first) <= 90 else first[:89] + '…'}")
        if isinstance(r.notebook_path, str) and Path(r.notebook_path).with_suffix(".html").exists():
            notes.append(f"record: {Path(r.notebook_path).with_suffix('.html').as_uri()}")
        if notes:
            errors[len(rows) - 1] = notes
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join([row[0].rjust(widths[0])]
                               + [c.ljust(w) for c, w in zip(row[1:-1], widths[1:], strict=True)]
                               + [row[-1]]).rstrip())
        lines += [" " * (widths[0] + 2) + note for note in errors.get(n, [])]
    lines.append(f"notebooks in {base / 'JOB/YYYY/MM/DD'} (UTC start date); "
                 "`ot runs verify` checks none changed")
    return "\n".join(lines)


def _when(value: Any) -> datetime | None:
    """A stored time as a datetime (None for a missing one: NULL, NaT or NaN)."""
    import pandas as pd

    return None if value is None or pd.isna(value) else pd.Timestamp(value).to_pydatetime()
