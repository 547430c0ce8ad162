"""Half-year periods: arithmetic, catalog discovery and rotation
(docs/lifecycle.md#half-year-periods).

A period is ``YYYY_h1`` = [Jan 1, Jul 1) or ``YYYY_h2`` = [Jul 1, Jan 1) in UTC. Bounds are
epoch integers computed here in Python and bound as parameters, never derived in SQL
(a period is a function of the date, so none can be missing from a list:
docs/legacy-defects.md#8-history-period-not-defined-in-time).
Which history tables exist is read from the catalog at run time (ot_core.db.catalog), never
listed by hand (docs/legacy-defects.md#3-history-tables-listed-by-hand). Rotation creates
every table mart data or the next weeks can need, ahead of time, and is safe to run any
number of times.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ot_core.config import PipelineConfig
from ot_core.db.catalog import HistoryTable, parse_history_name
from ot_core.db.connect import Database
from ot_core.db.schema import ddl, hist_prefix, keyed_table, mart_name
from ot_core.engines import Backend
from ot_core.errors import PermissionMissing
from ot_core.timeutil import add_months, from_epoch, iso, parse_as_of, to_epoch

if TYPE_CHECKING:
    from ot_core.db.warehouse import Warehouse

log = logging.getLogger("ot.periods")

AHEAD = timedelta(days=45)  # rotation creates the periods the next 45 days can need


@dataclass(frozen=True, order=True)
class Period:
    year: int
    half: int  # 1 or 2

    @property
    def name(self) -> str:
        return f"{self.year}_h{self.half}"

    @property
    def start(self) -> int:
        """First epoch second of the period (inclusive)."""
        return to_epoch(datetime(self.year, 1 if self.half == 1 else 7, 1, tzinfo=UTC))

    @property
    def end(self) -> int:
        """First epoch second after the period (exclusive)."""
        return self.next().start

    def next(self) -> Period:
        return Period(self.year, 2) if self.half == 1 else Period(self.year + 1, 1)

    def table(self, table: str) -> str:
        """History relation name of ``table`` for this period."""
        return f"{hist_prefix(table)}{self.name}"


def period_of(epoch: int) -> Period:
    """The half-year an epoch second belongs to (UTC)."""
    dt = from_epoch(epoch)
    return Period(dt.year, 1 if dt.month <= 6 else 2)


def periods_between(first: int, last: int) -> list[Period]:
    """Every period from the one holding ``first`` to the one holding ``last`` (inclusive)."""
    if last < first:
        return []
    p, stop, out = period_of(first), period_of(last), []
    while p <= stop:
        out.append(p)
        p = p.next()
    return out


def cutoff(as_of: datetime | int, retention_months: int) -> int:
    """as_of minus the retention in calendar months, as epoch seconds (Aug 31 → Feb 28)."""
    at = from_epoch(as_of) if isinstance(as_of, int) else as_of
    return to_epoch(add_months(at, -retention_months))


def hist_table(cfg: PipelineConfig, backend: Backend, table: str, period: Period) -> sa.Table:
    """The history table of ``table`` for ``period``: the mart's columns incl. _raw_id and
    _batch_id, PRIMARY KEY where the backend declares keys, DISTKEY/SORTKEY on Redshift."""
    return keyed_table(cfg.landed(table), sa.MetaData(), cfg.schemas.mart, period.table(table),
                       "hist", backend)


def oldest_mart_value(conn: Connection, cfg: PipelineConfig, backend: Backend,
                      table: str) -> int | None:
    """MIN(archive column) of a mart: one index probe on PostgreSQL (see mart_indexes)."""
    col = backend.quote(cfg.table(table).archive_column)
    sql = f"SELECT MIN({col}) FROM {backend.qualified(cfg.schemas.mart, mart_name(table))}"
    value = conn.execute(sa.text(sql)).scalar()
    return None if value is None else int(value)


def needed_periods(cfg: PipelineConfig, as_of: int, oldest: int | None) -> list[Period]:
    """Periods a mart can need: from its oldest row (or the cutoff) to as_of + 45 days."""
    first = cutoff(as_of, cfg.retention_months)
    if oldest is not None:
        first = min(first, oldest)
    return periods_between(first, as_of + int(AHEAD.total_seconds()))


def discover(conn: Connection, cfg: PipelineConfig, backend: Backend) -> dict[str, list[HistoryTable]]:
    """Every table's history tables from ONE catalog query (the lifecycle runs every cycle,
    and catalog views are slow on PostgreSQL). Same name pattern as catalog.history_tables."""
    names = backend.list_tables(conn, cfg.schemas.mart, "hist_")
    out: dict[str, list[HistoryTable]] = {}
    for table in cfg.tables:
        found = (parse_history_name(table, n) for n in names)
        out[table] = sorted(h for h in found if h is not None)
    return out


@dataclass
class RotationResult:
    as_of: str
    created: list[str] = field(default_factory=list)
    existing: int = 0
    missing_grants: list[str] = field(default_factory=list)

    def summary(self) -> str:
        made = ", ".join(self.created) if self.created else "none"
        text = f"rotation as_of {self.as_of}: created {made}; {self.existing} already existed"
        if self.missing_grants:
            text += "; not permitted: " + ", ".join(self.missing_grants)
        return text


def ensure_periods(conn: Connection, cfg: PipelineConfig, backend: Backend, as_of: int,
                   tables: list[str] | None = None, *,
                   existing: dict[str, list[HistoryTable]] | None = None,
                   oldest: dict[str, int | None] | None = None) -> RotationResult:
    """Create the missing history tables (idempotent). Each CREATE commits on its own, so a
    refused one (no grant) leaves the others and the caller's later steps unaffected.

    Where DDL is not permitted the result lists the missing grant, e.g. "CREATE on schema
    settlement_ods"; the caller decides whether that is fatal (``ot rotate``) or a warning
    (the cycle, whose rows then stay in the mart under an exception).
    """
    res = RotationResult(as_of=iso(from_epoch(as_of)))
    if existing is None or oldest is None:
        with conn.begin():
            existing = discover(conn, cfg, backend)
            oldest = {t: oldest_mart_value(conn, cfg, backend, t) for t in cfg.tables}
    for table in tables or list(cfg.tables):
        have = {h.name for h in existing[table]}
        for period in needed_periods(cfg, as_of, oldest[table]):
            name = period.table(table)
            if name in have:
                res.existing += 1
                continue
            try:
                with conn.begin():
                    conn.exec_driver_sql(ddl(hist_table(cfg, backend, table, period), backend))
            except sa.exc.DBAPIError as e:
                if not backend.is_permission_denied(e):
                    raise
                grant = f"CREATE on schema {cfg.schemas.mart}"
                if grant not in res.missing_grants:
                    res.missing_grants.append(grant)
                log.warning("cannot create %s.%s: the warehouse user lacks %s", cfg.schemas.mart,
                            name, grant)
                break
            res.created.append(f"{cfg.schemas.mart}.{name}")
    return res


def rotate(as_of: str | datetime | None = None, *, config: PipelineConfig | str | None = None,
           warehouse: Warehouse | Database | str | None = None) -> RotationResult:
    """``ot rotate`` / the rotate_periods job: create history tables ahead of need.

    Raises PermissionMissing (naming the grant) when the warehouse user may not create them.
    """
    from ot_core.db.warehouse import using

    at = to_epoch(parse_as_of(as_of))
    with using(config, warehouse) as wh:
        return _rotate(wh, at)


def _rotate(wh: Warehouse, at: int) -> RotationResult:
    cfg = wh.cfg
    with wh.connect() as conn:
        with conn.begin():
            wh.ensure(conn)
        try:  # marts created before the lifecycle indexes existed get them here (idempotent)
            with conn.begin():
                for table in cfg.tables:
                    for stmt in wh.backend.mart_indexes(cfg.schemas.mart, mart_name(table),
                                                        cfg.table(table).archive_column):
                        conn.exec_driver_sql(stmt)
        except sa.exc.DBAPIError as e:
            if not wh.backend.is_permission_denied(e):
                raise
            log.warning("mart indexes not checked: the warehouse user may not create them")
        res = ensure_periods(conn, cfg, wh.backend, at)
    log.info(res.summary())
    if res.missing_grants:
        raise PermissionMissing(
            f"{res.summary()}. Ask the warehouse administrator to grant "
            f"{' and '.join(res.missing_grants)} to the pipeline's user, or create the tables "
            "with a user that has it (ot rotate)."
        )
    return res
