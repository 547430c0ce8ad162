"""The exceptions log ``order_tracking_exceptions``: list, resolve, and next id.

The lifecycle's safety check opens one exception per mart row that is older than the cutoff
but could not be verified in history (the row stays in the mart); the lifecycle resolves it
itself once the row is archived. A person can list them (``ot exceptions list``) and close
one with a note (``ot exceptions resolve ID --note TEXT``, or the triage notebook) after
dealing with its cause; who did is recorded (``resolved_by``).
exception_id is assigned here as max + 1: the table has no sequence (DuckDB has no SERIAL,
Redshift IDENTITY values are not consecutive) and only the one running cycle writes to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ot_core.config import PipelineConfig
from ot_core.db.connect import Database
from ot_core.db.schema import tables_for
from ot_core.db.warehouse import Warehouse, using
from ot_core.engines import Backend
from ot_core.errors import PermissionMissing, UsageError
from ot_core.timeutil import utcnow

if TYPE_CHECKING:
    import pandas as pd

ROUTING_GAP = "ARCHIVE_ROUTING_GAP"


def _table(cfg: PipelineConfig, backend: Backend) -> sa.Table:
    return tables_for(cfg, backend).exceptions


def exception_state(conn: Connection, cfg: PipelineConfig, backend: Backend,
                    exception_type: str) -> tuple[int, dict[str, int]]:
    """The next free exception_id, and per source table how many ``exception_type``
    exceptions are open (a mart with none has nothing to resolve). One read per cycle."""
    t = _table(cfg, backend)
    backend.serialize_ids(conn, t.schema, t.name)  # a resolve from a notebook may run meanwhile
    is_open = sa.and_(t.c.resolved_at.is_(None), t.c.exception_type == exception_type)
    rows = conn.execute(
        sa.select(t.c.source_table, sa.func.max(t.c.exception_id),
                  sa.func.sum(sa.case((is_open, 1), else_=0)))
        .group_by(t.c.source_table)).all()
    top = max((int(r[1]) for r in rows), default=0)
    return top + 1, {r[0]: int(r[2] or 0) for r in rows}


def exceptions_frame(conn: Connection, cfg: PipelineConfig, backend: Backend,
                     include_resolved: bool = False) -> pd.DataFrame:
    """Open exceptions (or all of them), oldest first."""
    import pandas as pd

    t = _table(cfg, backend)
    q = sa.select(t).order_by(t.c.exception_id)
    if not include_resolved:
        q = q.where(t.c.resolved_at.is_(None))
    rows = conn.execute(q).mappings().all()
    return pd.DataFrame([dict(r) for r in rows], columns=[c.name for c in t.columns])


def resolve_in(conn: Connection, cfg: PipelineConfig, backend: Backend, exception_id: int,
               note: str) -> dict:
    """Close one open exception with a note; refuses unknown or already-resolved ids.

    The one write an analyst makes, so it goes one narrow way: on an engine with roles the
    pipeline's resolve procedure (``Backend.resolver_statements``), the only thing the
    analyst role may change; elsewhere an UPDATE of the resolution columns alone. Either
    way ``resolved_by`` is who the database says is connected, never typed text."""
    if not note or not note.strip():
        raise UsageError("a resolution note is required: say what was done about it")
    t = _table(cfg, backend)
    row = conn.execute(sa.select(t).where(t.c.exception_id == exception_id)).mappings().first()
    if row is None:
        raise UsageError(f"no exception with id {exception_id}; see `ot exceptions list --all`")
    if row["resolved_at"] is not None:
        raise UsageError(f"exception {exception_id} was already resolved at {row['resolved_at']}")
    if backend.routine_kind is None:
        old = row["notes"] or ""
        notes = (f"{old} | resolved: {note.strip()}" if old else f"resolved: {note.strip()}")
        done = conn.execute(
            sa.update(t).where(t.c.exception_id == exception_id, t.c.resolved_at.is_(None))
            .values(resolved_at=utcnow().replace(tzinfo=None, microsecond=0),
                    resolved_by=backend.database_user(conn), notes=notes[:1000])).rowcount
        if done != 1:
            raise UsageError(f"exception {exception_id} was already resolved meanwhile")
    else:
        _call_resolver(conn, backend, str(t.schema), exception_id, note.strip()[:1000])
    return dict(conn.execute(sa.select(t).where(t.c.exception_id == exception_id)).mappings().one())


def _call_resolver(conn: Connection, backend: Backend, schema: str, exception_id: int,
                   note: str) -> None:
    name = backend.qualified(schema, backend.resolver_name)
    try:
        conn.execute(sa.text(f"CALL {name}(:i, :n)"), {"i": exception_id, "n": note})
    except sa.exc.DBAPIError as e:
        if "is not open" in str(e.orig):
            raise UsageError(f"exception {exception_id} was already resolved meanwhile"
                             ) from None
        if backend.is_permission_denied(e):
            raise PermissionMissing(
                f"this role may not resolve exceptions: it needs EXECUTE on "
                f"{backend.resolver(schema)} (docs/roles.md: `ot roles --sql`)") from None
        raise


def list_exceptions(include_resolved: bool = False, *, config: PipelineConfig | str | None = None,
                    warehouse: Warehouse | Database | str | None = None) -> pd.DataFrame:
    """``ot exceptions list [--all]``."""
    with using(config, warehouse) as wh, wh.connect() as conn, conn.begin():
        wh.ensure(conn)
        return exceptions_frame(conn, wh.cfg, wh.backend, include_resolved)


def resolve_exception(exception_id: int, note: str, *, config: PipelineConfig | str | None = None,
                      warehouse: Warehouse | Database | str | None = None) -> dict:
    """``ot exceptions resolve ID --note TEXT``."""
    with using(config, warehouse) as wh, wh.connect() as conn, conn.begin():
        wh.ensure(conn)
        return resolve_in(conn, wh.cfg, wh.backend, exception_id, note)
