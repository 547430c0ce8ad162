"""Amazon Redshift: production scale. SQL is compiled and parsed for it; no cluster here.

What differs from PostgreSQL: DISTKEY/SORTKEY table options
(docs/contracts.md#redshift-table-options), the
catalog (``pg_tables``), and bulk loads (production loads go through S3 + COPY; the
fallback here is a bound multi-row INSERT). Never build correlated DELETEs with SQLAlchemy
expressions for Redshift: sqlalchemy-redshift drops the correlation, so the statement would
delete every row; every such statement comes from the templates in ``sql/``.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ot_core.db.schema import ensure, tables_for
from ot_core.db.sql import Renderer
from ot_core.engines import Backend, register
from ot_core.jobs.lock import JobLock
from ot_core.jobs.maintenance import Maintainer, plan_sort_vacuum
from ot_core.jobs.records import naive_utc
from ot_core.quality.checksum import ChecksumDialect
from ot_core.timeutil import iso, utcnow

if TYPE_CHECKING:
    from ot_core.config import PipelineConfig
    from ot_core.db.connect import Database
    from ot_core.jobs.catalogue import JobSpec

# Distribution and sort keys per table and role. Merges delete by key only
# (docs/legacy-defects.md#12-range-predicate-defeating-the-distribution-key), so
# DISTKEY(order_id) co-locates a batch with the rows it replaces.
SORTKEYS = {
    "ecs_order_info": ("partner_id", "add_time"),
    "uni_tracking_info": ("update_time",),
    "uni_tracking_spath": ("pathTime",),
}


class RedshiftMaintainer(Maintainer):
    def statement(self, mart: str) -> str:
        return f"VACUUM SORT ONLY {self.db.backend.qualified(self.cfg.schemas.mart, mart)} TO 100 PERCENT"

    def plan(self, conn, last_vacuum):
        return plan_sort_vacuum(conn, self.cfg, self.db.backend, self.limits, last_vacuum,
                                self.statement)


class RowJobLock(JobLock):
    """A lock row that expires after the job's timeout (plus a margin) if never released."""

    MARGIN = timedelta(minutes=5)

    def __init__(self, db: Database, cfg: PipelineConfig, spec: JobSpec):
        super().__init__(db, cfg, spec)
        self.token = uuid.uuid4().hex
        self.table = tables_for(cfg, db.backend).job_locks
        self.name = db.backend.qualified(cfg.schemas.control, self.table.name)
        self._held = False

    def statements(self) -> dict[str, str]:
        r = Renderer(self.db.backend)
        return {k: r.render(f"jobs/lock_{k}.sql", locks=self.name)
                for k in ("expire", "take", "release")}

    def acquire(self) -> bool:
        sql = self.statements()
        now = utcnow()
        params = {"job": self.spec.name, "token": self.token, "now": naive_utc(now),
                  "holder": f"pid {os.getpid()} on {socket.gethostname()}, started {iso(now)}",
                  "expires_at": naive_utc(now + timedelta(seconds=self.spec.timeout_seconds)
                                          + self.MARGIN)}
        with self.db.engine.connect() as conn, conn.begin():
            ensure(conn, self.cfg, self.db.backend)  # the locks table is a control table
            conn.execute(sa.text(sql["expire"]), {"job": params["job"], "now": params["now"]})
            conn.execute(sa.text(sql["take"]), params)
            owner = conn.execute(sa.select(self.table.c.token)
                                 .where(self.table.c.job == self.spec.name)).scalar()
        self._held = owner == self.token
        return self._held

    def set_holder(self, description: str) -> None:
        t = self.table
        with self.db.engine.connect() as conn, conn.begin():
            conn.execute(sa.update(t).where(t.c.job == self.spec.name, t.c.token == self.token)
                         .values(holder=description))

    def holder(self) -> str:
        t = self.table
        with self.db.engine.connect() as conn:
            row = conn.execute(sa.select(t.c.holder, t.c.expires_at)
                               .where(t.c.job == self.spec.name)).first()
        return "another run" if row is None else f"{row[0]}; lock expires {row[1]} UTC"

    def release(self) -> None:
        if self._held:
            with self.db.engine.connect() as conn, conn.begin():
                conn.execute(sa.text(self.statements()["release"]),
                             {"job": self.spec.name, "token": self.token})
            self._held = False


class RedshiftChecksum(ChecksumDialect):
    def hash28(self, text: str) -> str:
        return f"STRTOL(SUBSTRING(MD5({text}), 1, 7), 16)"


@register
class RedshiftBackend(Backend):
    name = "redshift"
    roles = frozenset({"warehouse"})
    checksum_class = RedshiftChecksum
    lock_class = RowJobLock
    maintainer_class = RedshiftMaintainer

    def table_kwargs(self, role: str, contract: Any) -> dict[str, Any]:
        if role in ("mart", "hist"):
            return {
                "redshift_diststyle": "KEY",
                "redshift_distkey": "order_id",
                "redshift_sortkey": SORTKEYS[contract.name],
            }
        if role == "raw":
            return {"redshift_diststyle": "KEY", "redshift_distkey": "order_id",
                    "redshift_sortkey": ("_batch_id", "_raw_id")}
        return {}

    def serialize_ids(self, conn: Connection, schema: str | None, table: str) -> None:
        conn.exec_driver_sql(f"LOCK {self.qualified(schema, table)}")

    def schemas_with_table(self, conn: Connection, table: str) -> list[str]:
        rows = conn.execute(sa.text(
            "SELECT schemaname FROM pg_tables WHERE tablename = :t ORDER BY schemaname"),
            {"t": table})
        return [r[0] for r in rows]

    def list_tables(self, conn: Connection, schema: str | None, prefix: str = "") -> list[str]:
        rows = conn.execute(
            sa.text(
                "SELECT tablename FROM pg_tables WHERE schemaname = :schema "
                "AND tablename LIKE :pattern ORDER BY tablename"
            ),
            {"schema": schema, "pattern": prefix + "%"},
        )
        return [r[0] for r in rows if r[0].startswith(prefix)]
