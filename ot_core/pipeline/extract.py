"""Change data capture: which source rows a cycle reads, and reading them in chunks.

Strategies (per table in the config):

* ``timestamp``: rows with ``lower <= col < upper`` where ``upper`` is the cycle's as_of
  (whole seconds, exclusive) and ``lower`` is the previous watermark minus the lookback.
  The overlap re-reads the boundary seconds, so a row committed late, or updated again
  within the second the previous cycle stopped at, is read again; the landing step drops
  re-read rows that are already the mart's version, and the merge keeps the latest
  (version column, then ``_raw_id``). Nothing at the boundary is lost or counted twice.
* ``full_refresh``: every row (before as_of, when a timestamp column is known).

The watermark is the previous ``upper``: replaying a cycle with the same as_of reads
nothing new, which is what makes reruns reproducible.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ot_core.config import PipelineConfig, TableConfig, TimestampCDC
from ot_core.contract import CONTRACTS, TableContract
from ot_core.db.connect import Database, with_retries
from ot_core.db.sql import Renderer
from ot_core.engines import Backend
from ot_core.errors import SourceUnavailable, TerminalError, first_line
from ot_core.pipeline.readers import read_tables
from ot_core.pipeline.source_contract import check_table
from ot_core.secrets import redact

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class Window:
    table: str
    strategy: str
    lower: int | None  # None: no lower bound (first extraction or full refresh)
    upper: int
    overlap_end: int | None  # rows below this were in the previous window
    # the source's CDC column allows NULL: the rows holding NULL, which no range selects,
    # are read too, every cycle (docs/cycle.md#null-cdc-values)
    null_cdc: bool = False

    @property
    def first(self) -> bool:
        """The table's first extraction (a backfill): no watermark yet."""
        return self.lower is None and self.overlap_end is None

    @property
    def template(self) -> str:
        return "extract/incremental.sql" if self.lower is not None else "extract/backfill.sql"

    def nulls(self) -> Window | None:
        """The window of the rows whose CDC value is NULL, read after this one (None when
        the source's CDC column is NOT NULL)."""
        if not self.null_cdc:
            return None
        return Window(self.table, "null_cdc", None, self.upper, self.overlap_end)


def plan_window(table: str, tcfg: TableConfig, watermark: int | None, upper: int, *,
                null_cdc: bool = False) -> Window | None:
    """The window a cycle at ``upper`` must read, or None when it is already covered.
    ``null_cdc``: the source's CDC column allows NULL (see ``Window.nulls``)."""
    if isinstance(tcfg.cdc, TimestampCDC):
        if watermark is None:
            return Window(table, "timestamp", None, upper, None, null_cdc)
        if upper <= watermark:
            return None
        return Window(table, "timestamp", max(0, watermark - tcfg.cdc.lookback_seconds), upper,
                      watermark, null_cdc)
    if watermark is not None and upper <= watermark:
        return None
    # every re-read row is compared with the mart at landing: unchanged rows land nothing
    return Window(table, "full_refresh", None, upper, None if watermark is None else upper,
                  null_cdc and tcfg.cdc.column is not None)


@dataclass(frozen=True)
class SourceState:
    """What the source said before a cycle read it: its clock (epoch seconds) and the tables
    whose CDC column allows NULL."""

    clock: int
    null_cdc: frozenset[str] = frozenset()


def check_source_columns(conn: Connection, backend: Backend, contract: TableContract,
                         cdc_column: str | None = None) -> bool:
    """Stop before reading if the source table breaks the contract (names, types, lengths,
    nulls; see ``source_contract``); log a drift the landing can hold. True when the CDC
    column ``cdc_column`` allows NULL."""
    found = backend.source_columns(conn, contract.name)
    check_table(contract, found)
    return any(c.name == cdc_column and c.nullable for c in found)


def check_source(cfg: PipelineConfig, src: Database) -> SourceState:
    """Check every source table against the contract before the warehouse is touched, and
    return the source's own clock (epoch seconds; a cycle never reads past it) and which
    CDC columns allow NULL.

    Done once for all tables up front, so a missing column in the last table cannot leave
    the first ones landed: a bad source stops the cycle with nothing written and no
    watermark moved. An unreachable source is retried with backoff, then reported as
    ``SourceUnavailable``; a refused login or missing grant is terminal and is reported
    without a traceback and without the password.
    """

    def attempt() -> SourceState:
        with src.engine.connect() as conn:
            nullable = frozenset(t for t in cfg.tables if check_source_columns(
                conn, src.backend, CONTRACTS[t], cfg.table(t).cdc.column))
            return SourceState(src.backend.clock(conn), nullable)

    try:
        return with_retries(attempt, what=f"reading the source {src.display}",
                     retries=cfg.cycle.source_retries, backoff=cfg.cycle.retry_backoff_seconds,
                     error=SourceUnavailable)
    except sa.exc.DBAPIError as e:
        reason = redact(first_line(e))
        raise TerminalError(
            f"the source {src.display} refused the cycle ({reason}); check the user, password "
            "and grants of OT_SOURCE_URL. Nothing was extracted."
        ) from None


_BIND = re.compile(r":([a-z_]+)\b")


@dataclass(frozen=True)
class ExtractQuery:
    """One window's extract statement, and the narrower pages a paging reader asks for.

    ``sql()`` keeps the window bounds as bound parameters (the DB-API reader);
    ``literal()`` inlines them for a reader that takes no parameters (connectorx). Every
    inlined value is an integer through ``int()``: the window bounds, a page's key range
    ends and the last row's ORDER BY values (epoch seconds and BIGINT keys).
    """

    renderer: Renderer
    contract: TableContract
    cdc_column: str | None
    window: Window
    params: dict[str, int]

    @property
    def order(self) -> list[str]:
        """The ORDER BY columns: the keyset a page continues after."""
        key = list(self.contract.key)
        return key if self.window.lower is None else [str(self.cdc_column), *key]

    @property
    def template(self) -> str:
        if self.window.strategy == "null_cdc":
            return "extract/null_cdc.sql"
        return self.window.template

    def sql(self, page: Sequence[str] = (), limit: int | None = None) -> str:
        return self.renderer.render(
            self.template,
            source=self.renderer.backend.qualified(None, self.contract.name),
            columns=self.contract.column_names, key=list(self.contract.key),
            cdc_column=self.cdc_column, page=list(page),
            limit=None if limit is None else int(limit))

    def literal(self, page: Sequence[str] = (), limit: int | None = None) -> str:
        values = {k: str(int(v)) for k, v in self.params.items()}
        return _BIND.sub(lambda m: values[m.group(1)], self.sql(page, limit))

    def after(self, last: Sequence[int]) -> str:
        """(a, b, c) > (va, vb, vc), spelled out so the index range is used."""
        names = self.order
        cond = ""
        for i in range(len(names) - 1, -1, -1):
            col, value = self.renderer.q(names[i]), int(last[i])
            term = f"{col} > {value}"
            cond = term if not cond else f"({term} OR ({col} = {value} AND {cond}))"
        return f"({cond})"

    def key_range(self, key: str, lo: int, hi: int) -> str:
        """lo <= key < hi."""
        col = self.renderer.q(key)
        return f"({col} >= {int(lo)} AND {col} < {int(hi)})"

    def key_bounds(self, key: str) -> str:
        """The table's key range: a superset of the window's (each range still applies
        the window's bounds) that the source answers from its primary key, not a scan."""
        col = self.renderer.q(key)
        source = self.renderer.backend.qualified(None, self.contract.name)
        # one aggregate per subquery: SQLite answers a lone MIN or MAX from the index
        return f"SELECT (SELECT MIN({col}) FROM {source}), (SELECT MAX({col}) FROM {source})"


def extract_query(backend: Backend, contract: TableContract, tcfg: TableConfig,
                  window: Window) -> ExtractQuery:
    params: dict[str, int] = {} if window.strategy == "null_cdc" else {"upper": window.upper}
    if window.lower is not None:
        params["lower"] = window.lower
    return ExtractQuery(Renderer(backend), contract, tcfg.cdc.column, window, params)


def read_window(conn: Connection, backend: Backend, cfg: PipelineConfig,
                window: Window) -> Iterator[pa.Table]:
    """Yield the window's rows from the source connection ``conn`` as typed Arrow tables, in
    chunks that keep memory flat (a first extraction reads key ranges in parallel where the
    reader can)."""
    for part in (window, window.nulls()):
        if part is None:
            continue
        query = extract_query(backend, cfg.landed(part.table), cfg.table(part.table), part)
        yield from read_tables(conn, backend, query, cfg.cycle.chunk_rows, backfill=part.first)
