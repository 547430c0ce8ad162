"""Reading a source window as typed Arrow tables, whatever reads it.

Two readers, one result (``batches.typed_table`` checks and types every chunk):

* **connectorx** (the ``fast`` extra), used when importable for a source whose engine
  names its connectorx scheme (SQLite, MySQL/MariaDB): rows are decoded in native code
  straight into Arrow. It takes no bound parameters and cannot stream one statement, so a
  window is read in *keyset pages* (the extract statement's ``ORDER BY`` columns, ``LIMIT
  chunk_rows``, the next page after the last row read) and a first extraction in *key
  ranges* of ``chunk_rows`` keys per partition, read by ``partitions`` threads at once
  (``partition_on``). Either way memory stays bounded by one page or range. The only
  values ever inlined are integers: the window bounds, key range ends and the last row's
  ORDER BY values, each through ``int()``.
* **the DB-API cursor**, always available (``OT_SOURCE_READER=dbapi`` forces it; ``pymysql``
  is accepted for MySQL sources): one statement with bound parameters, fetched
  ``chunk_rows`` at a time from a streaming cursor.

A connectorx page that fails for a reason retrying cannot fix (a value its type mapping
refuses, say text in an integer column of a SQLite file) is read again through the DB-API
cursor, same page: the contract check then names the value instead of connectorx's error.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ot_core.errors import (
    TRANSIENT_HINTS,
    SourceReadError,
    SourceUnavailable,
    first_line,
    is_transient,
)
from ot_core.secrets import redact

if TYPE_CHECKING:
    import pyarrow as pa

    from ot_core.contract import TableContract
    from ot_core.engines import Backend
    from ot_core.pipeline.extract import ExtractQuery

log = logging.getLogger("ot.cycle")
READER_ENV = "OT_SOURCE_READER"
# a source user limited in connections (MySQL 1226 max_user_connections, 1040): connectorx
# cannot open its pool, and waiting does not help
CONNECTION_LIMIT_HINTS = ("max_user_connections", "error 1226", "error 1040")
_REFUSED: set[str] = set()  # sources connectorx could not connect to: this process reads
# them through the DB-API cursor from then on
_SPARE: dict[str, int | None] = {}  # connections each source user may still open (asked once)
# threads reading one first extraction's key ranges (connectorx partition_on)
PARTITIONS = max(1, min(4, os.cpu_count() or 1))
# more key ranges than this (keys far sparser than rows) and a first extraction is read in
# keyset pages instead
MAX_RANGES = 10_000


def connectorx_source(backend: Backend, url: sa.engine.URL) -> str | None:
    """The source's connectorx URL when connectorx is wanted and able to read this source;
    None means the DB-API path."""
    if os.environ.get(READER_ENV, "").strip().lower() in ("dbapi", "pymysql", "sqlite3"):
        return None
    return backend.connectorx_url(url)


def reader_name(backend: Backend, url: sa.engine.URL) -> str:
    """'connectorx' or 'dbapi': which path reads this source (see ``connectorx_source``)."""
    return "dbapi" if connectorx_source(backend, url) is None else "connectorx"


def read_tables(conn: Connection, backend: Backend, query: ExtractQuery, chunk_rows: int, *,
                backfill: bool = False) -> Iterator[pa.Table]:
    """Yield the query's rows as typed tables of at most ``chunk_rows`` rows (key ranges
    of a first extraction: at most ``chunk_rows`` per partition)."""
    url = connectorx_source(backend, conn.engine.url)
    if url is not None and not _room_for_pool(conn, backend, url, PARTITIONS if backfill else 1):
        url = None
    if url is not None:
        reader = _Connectorx(conn, backend, query, url, chunk_rows)
        if backfill and len(query.contract.key) == 1:
            yield from reader.key_ranges(query.contract.key[0])
        else:
            yield from reader.keyset_pages()
    else:
        yield from _dbapi(conn, query.contract, query.sql(), query.params, chunk_rows)


def _room_for_pool(conn: Connection, backend: Backend, url: str, needed: int) -> bool:
    """Whether connectorx may open the ``needed`` connections of its pool. Asked of the source
    before the first read: a user limited to fewer makes connectorx wait out its pool's
    timeout (30 s) before failing, once per process."""
    if url in _REFUSED:
        return False
    if url not in _SPARE:
        _SPARE[url] = backend.spare_connections(conn)
    spare = _SPARE[url]
    if spare is None or spare >= needed:
        return True
    log.warning("the source user may open %d more connection(s), and the fast reader needs %d: "
                "reading through the DB-API cursor instead; set %s=dbapi to skip the check",
                spare, needed, READER_ENV)
    _REFUSED.add(url)
    return False


def _dbapi(conn: Connection, contract: TableContract, sql: str, params: dict[str, Any],
           chunk_rows: int) -> Iterator[pa.Table]:
    from ot_core.pipeline.batches import typed_rows

    result = conn.execution_options(stream_results=True, max_row_buffer=chunk_rows).execute(
        sa.text(sql), params)
    try:
        # through the result, not its cursor: a streaming result has already buffered
        # the first rows
        columns = list(result.keys())
        while rows := result.fetchmany(chunk_rows):
            yield typed_rows(rows, columns, contract)
    finally:
        result.close()


class _Connectorx:
    def __init__(self, conn: Connection, backend: Backend, query: ExtractQuery, url: str,
                 chunk_rows: int):
        self.conn, self.query, self.url = conn, query, url
        self.contract = query.contract
        self.chunk_rows = int(chunk_rows)
        self.password = conn.engine.url.password

    def _fetch(self, text: str, partition: dict[str, Any]) -> pa.Table | None:
        """One page as a typed table, or None when connectorx refused it for a reason
        retrying cannot fix (the caller reads it through the DB-API cursor). Touches no
        SQLAlchemy connection, so it can run on the read-ahead thread."""
        import connectorx as cx

        from ot_core.pipeline.batches import typed_table

        if self.url in _REFUSED:
            return None
        try:
            raw = cx.read_sql(self.url, text, return_type="arrow", **partition)
        except Exception as e:  # noqa: BLE001 - connectorx raises plain RuntimeErrors
            message = str(e)
            if self.password:
                message = message.replace(str(self.password), "***")
            message = redact(message).splitlines()[0] if message.strip() else type(e).__name__
            if any(h in message.lower() for h in CONNECTION_LIMIT_HINTS):
                # the source user may not open connectorx's connections: the one this
                # process already holds reads the rest (retrying would wait for ever)
                _REFUSED.add(self.url)
                log.warning("the source user may not open more connections (%s): reading "
                            "through the DB-API cursor instead; set %s=dbapi to skip the "
                            "attempt", message, READER_ENV)
                return None
            if any(h in message.lower() for h in TRANSIENT_HINTS):
                raise SourceUnavailable(f"reading the source failed: {message}") from None
            return None
        return typed_table(raw, self.contract)

    def _read(self, text: str, **partition: Any) -> pa.Table:
        table = self._fetch(text, partition)
        if table is None:  # the same page through the DB-API cursor names a refused value
            table = _one_page_dbapi(self.conn, self.contract, text)
        return table

    def keyset_pages(self) -> Iterator[pa.Table]:
        page: list[str] = []
        order = self.query.order
        while True:
            table = self._read(self.query.literal(page, limit=self.chunk_rows))
            if table.num_rows:
                yield table
            if table.num_rows < self.chunk_rows:
                return
            page = [self.query.after([int(table.column(n)[-1].as_py()) for n in order])]

    def key_ranges(self, key: str) -> Iterator[pa.Table]:
        """A first extraction: ranges of ``chunk_rows × PARTITIONS`` keys, each read by
        ``PARTITIONS`` threads. Keys are unique, so a range never holds more rows than
        keys; ``_raw_id`` order within a range does not matter (one row per key)."""
        row = self.conn.exec_driver_sql(self.query.key_bounds(key)).first()
        if row is None or row[0] is None:
            return
        lo, hi = int(row[0]), int(row[1])
        span = self.chunk_rows * PARTITIONS
        if (hi - lo) // span > MAX_RANGES:  # sparse keys: most ranges would be empty
            yield from self.keyset_pages()
            return
        options = ({"partition_on": key, "partition_num": PARTITIONS}
                   if PARTITIONS > 1 else {})
        pages = ((self.query.literal([self.query.key_range(key, start, start + span)]),
                  {**options, "partition_range": (start, start + span)} if options else {})
                 for start in range(lo, hi + 1, span))
        for text, table in _read_ahead(self._fetch, pages):
            if table is None:
                table = _one_page_dbapi(self.conn, self.contract, text)
            if table.num_rows:
                yield table


def _read_ahead(fetch: Any, pages: Iterator[tuple[str, dict[str, Any]]]
                ) -> Iterator[tuple[str, Any]]:
    """``fetch`` each page in order, one page ahead on a thread, so the source read of the
    next range overlaps the warehouse load of this one (both release the GIL). At most two
    ranges are in memory; an error is raised where its page would have been yielded."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ot-read") as pool:
        ahead = None
        try:
            for text, options in pages:
                submitted = (text, pool.submit(fetch, text, options))
                if ahead is not None:
                    yield ahead[0], ahead[1].result()
                ahead = submitted
            if ahead is not None:
                yield ahead[0], ahead[1].result()
        finally:
            if ahead is not None:
                ahead[1].cancel()


def _one_page_dbapi(conn: Connection, contract: TableContract, text: str) -> pa.Table:
    import pyarrow as pa

    from ot_core.pipeline.batches import typed_rows

    try:
        result = conn.exec_driver_sql(text)
    except sa.exc.DBAPIError as e:
        reason = redact(first_line(e))
        if is_transient(e):  # the server went away mid-read: retry later, not a bad value
            raise SourceUnavailable(f"reading the source failed: {reason}") from None
        raise SourceReadError(f"reading the source failed: {reason}") from None
    columns = list(result.keys())
    tables = []
    while rows := result.fetchmany(50_000):
        tables.append(typed_rows(rows, columns, contract))
    result.close()
    if not tables:
        return typed_rows([], columns, contract)
    return pa.concat_tables(tables)
