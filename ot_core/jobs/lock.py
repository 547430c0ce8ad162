"""One run per job at a time, across processes, and a crashed run never blocks for ever.

The lock kind follows the warehouse: each engine module defines its own and returns it from
``job_lock`` (``ot_core/engines``):

- DuckDB: an OS file lock beside the warehouse file. The OS drops it when the process dies.
  A sidecar JSON names the holder.
- PostgreSQL: a session-level advisory lock on a connection the runner holds while the
  kernel runs; the server drops it when the session ends. The holder is named through the
  session's ``application_name``.
- Redshift (no advisory locks): a lock row with an expiry in ``<control>.ot_job_locks``,
  taken with INSERT ... WHERE NOT EXISTS; an expired row (a crashed run) is deleted first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ot_core.engines.strategies import JobLock
from ot_core.timeutil import iso, utcnow

if TYPE_CHECKING:
    from ot_core.config import PipelineConfig
    from ot_core.db.connect import Database
    from ot_core.db.warehouse import Warehouse
    from ot_core.jobs.catalogue import JobSpec


def lock_for(db: Database, cfg: PipelineConfig, spec: JobSpec) -> JobLock:
    """The job lock of ``spec`` on ``db``'s engine."""
    from ot_core.db.warehouse import Warehouse

    return Warehouse(cfg, db).lock(spec)


@contextmanager
def held(job: str, config: PipelineConfig | str | None = None,
         warehouse: Warehouse | None = None) -> Iterator[None]:
    """Hold ``job``'s lock around a direct command (``ot cycle``) exactly as ``ot run`` does,
    so a cycle started by hand can never overlap a scheduled one. Busy → JobLocked."""
    from ot_core.db.warehouse import using
    from ot_core.jobs.catalogue import load_catalogue

    spec = load_catalogue().job(job)
    with using(config, warehouse) as wh:
        if spec.overlap:
            yield
            return
        with wh.hold(job, spec.timeout_seconds,
                     f"'ot {job}' command, pid {os.getpid()}, started {iso(utcnow())}"):
            yield


__all__ = ["JobLock", "held", "lock_for"]
