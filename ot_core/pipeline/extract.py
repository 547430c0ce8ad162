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

from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ot_core.config import PipelineConfig, TableConfig, TimestampCDC
from ot_core.contract import CONTRACTS, TableContract
from ot_core.db.connect import Database, with_retries
from ot_core.db.sql import Renderer
from ot_core.engines import Backend
from ot_core.errors import SourceUnavailable, TerminalError
from ot_core.pipeline.frames import typed_frame
from ot_core.pipeline.source_contract import check_table
from ot_core.secrets import redact


@dataclass(frozen=True)
class Window:
    table: str
    strategy: str
    lower: int | None  # None: no lower bound (first extraction or full refresh)
    upper: int
    overlap_end: int | None  # rows below this were in the previous window

    @property
    def template(self) -> str:
        return "extract/incremental.sql" if self.lower is not None else "extract/backfill.sql"


def plan_window(table: str, tcfg: TableConfig, watermark: int | None, upper: int) -> Window | None:
    """The window a cycle at ``upper`` must read, or None when it is already covered."""
    if isinstance(tcfg.cdc, TimestampCDC):
        if watermark is None:
            return Window(table, "timestamp", None, upper, None)
        if upper <= watermark:
            return None
        return Window(table, "timestamp", max(0, watermark - tcfg.cdc.lookback_seconds), upper,
                      watermark)
    if watermark is not None and upper <= watermark:
        return None
    # every re-read row is compared with the mart at landing: unchanged rows land nothing
    return Window(table, "full_refresh", None, upper, None if watermark is None else upper)


def check_source_columns(conn: Connection, backend: Backend, contract: TableContract) -> None:
    """Stop before reading if the source table breaks the contract (names, types, lengths,
    nulls; see ``source_contract``); log a drift the landing can hold."""
    check_table(contract, backend.source_columns(conn, contract.name))


def check_source(cfg: PipelineConfig, src: Database) -> int:
    """Check every source table against the contract before the warehouse is touched, and
    return the source's own clock (epoch seconds): a cycle never reads past it.

    Done once for all tables up front, so a missing column in the last table cannot leave
    the first ones landed: a bad source stops the cycle with nothing written and no
    watermark moved. An unreachable source is retried with backoff, then reported as
    ``SourceUnavailable``; a refused login or missing grant is terminal and is reported
    without a traceback and without the password.
    """

    def attempt() -> int:
        with src.engine.connect() as conn:
            for table in cfg.tables:
                check_source_columns(conn, src.backend, CONTRACTS[table])
            return src.backend.clock(conn)

    try:
        return with_retries(attempt, what=f"reading the source {src.display}",
                     retries=cfg.cycle.source_retries, backoff=cfg.cycle.retry_backoff_seconds,
                     error=SourceUnavailable)
    except sa.exc.DBAPIError as e:
        reason = redact(str(getattr(e, "orig", e)).splitlines()[0])
        raise TerminalError(
            f"the source {src.display} refused the cycle ({reason}); check the user, password "
            "and grants of OT_SOURCE_URL. Nothing was extracted."
        ) from None


def render_extract(renderer: Renderer, contract: TableContract, tcfg: TableConfig,
                   window: Window) -> tuple[str, dict[str, int]]:
    cdc_column = tcfg.cdc.column  # None: a full refresh of the whole table
    sql = renderer.render(
        window.template,
        source=renderer.backend.qualified(None, contract.name),
        columns=contract.column_names,
        key=list(contract.key),
        cdc_column=cdc_column,
    )
    params: dict[str, int] = {"upper": window.upper}
    if window.lower is not None:
        params["lower"] = window.lower
    return sql, params


def read_window(conn: Connection, backend: Backend, contract: TableContract, tcfg: TableConfig,
                window: Window, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Yield typed chunks of at most ``chunk_rows`` rows in extraction order."""
    sql, params = render_extract(Renderer(backend), contract, tcfg, window)
    for chunk in backend.stream_query(conn, sql, params, chunk_rows):
        yield typed_frame(chunk, contract)
