"""duckdb-engine's SQLAlchemy dialect, minus two in-memory databases per process.

duckdb-engine opens a throwaway in-memory DuckDB when a dialect is built (to list DuckDB's
reserved keywords) and another at the first connect (to list DuckDB's settings, so it can
tell settings from extension options): about 0.1 s of every short ``ot`` process, start-up
and teardown together (``bench/imports.py`` and bench/README.md). This subclass changes
only those two places: the reserved keywords are read from the warehouse's own connection
when SQLAlchemy first initializes the dialect, and the URL's options go to
``duckdb.connect`` as configuration. An option DuckDB does not know as a setting (an
extension's) falls back to duckdb-engine's own connect, which sets it after connecting.
Everything else — the compiler, types, cursor wrapper, transactions — is duckdb-engine's.
"""

from __future__ import annotations

from typing import Any

import duckdb
import duckdb_engine
from sqlalchemy.dialects.postgresql.base import PGIdentifierPreparer

_KEYWORDS_SQL = "SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category = 'reserved'"
# DuckDB's reserved words that PostgreSQL does not reserve (DuckDB 1.3 to 2.0), so what is
# compiled before the first connection is quoted right too; the connection adds any other
DUCKDB_ONLY_RESERVED = frozenset({
    "describe", "lambda", "lateral", "pivot", "pivot_longer", "pivot_wider", "qualify", "show",
    "summarize", "unpivot"})


class _Preparer(duckdb_engine.DuckDBIdentifierPreparer):
    def __init__(self, dialect: Any, **kwargs: Any) -> None:
        PGIdentifierPreparer.__init__(self, dialect, **kwargs)  # no in-memory database
        # an instance copy: duckdb-engine adds DuckDB's words to PostgreSQL's shared set
        self.reserved_words = set(self.reserved_words) | DUCKDB_ONLY_RESERVED


class OTDuckDBDialect(duckdb_engine.Dialect):
    preparer = _Preparer
    supports_statement_cache = False  # as duckdb-engine's (a subclass must say so itself)

    def initialize(self, connection: Any) -> None:
        super().initialize(connection)
        prep = self.identifier_preparer
        words = set(connection.exec_driver_sql(_KEYWORDS_SQL).scalars().all())
        if not words <= prep.reserved_words:
            prep.reserved_words.update(words)
            # the preparer caches its answer per name: forget answers given before
            getattr(prep, "_strings", {}).clear()

    def connect(self, *cargs: Any, **cparams: Any) -> Any:
        given = dict(cparams.get("config", {}))
        given.update(cparams.get("url_config", {}))
        rest = set(cparams) - {"config", "url_config", "database", "read_only"}
        if cargs or rest:
            return super().connect(*cargs, **cparams)  # duckdb-engine's own arguments
        options = dict(given)
        if duckdb_engine.supports_user_agent:
            # the user agent duckdb-engine sets: DuckDB refuses a second connection to a file
            # with another configuration, and a notebook may hold both kinds in one process
            agent = (f"duckdb_engine/{duckdb_engine.__version__}"
                     f"(sqlalchemy/{duckdb_engine.sqlalchemy_version})")
            if "custom_user_agent" in options:
                agent = f"{agent} {options['custom_user_agent']}"
            options["custom_user_agent"] = agent
        try:
            conn = duckdb.connect(cparams.get("database", ":memory:"),
                                  read_only=cparams.get("read_only", False), config=options)
        except (duckdb.InvalidInputException, duckdb.ConnectionException):
            if not given:
                raise
            # an extension's option among them (refused as a setting, or making this
            # connection's configuration differ from the one already open on the file):
            # duckdb-engine's connect sets those after connecting, or raises DuckDB's error
            return super().connect(*cargs, **cparams)
        return duckdb_engine.ConnectionWrapper(conn)
