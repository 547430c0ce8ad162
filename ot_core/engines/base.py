"""The engine base: what every engine entry answers, with defaults that follow
ANSI/PostgreSQL. An engine module subclasses :class:`Backend` and overrides only what truly
differs: capabilities (class attributes the rest of the code asks instead of comparing
dialect names), catalog queries, DDL options, bulk load, the clock, and its strategies
(``strategies.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ot_core.engines.strategies import (
    BatchLoad,
    ChecksumDialect,
    JobLock,
    Limits,
    LoadSite,
    LockSite,
    Maintainer,
    MaintenanceSite,
    SourceColumn,
)
from ot_core.errors import ConfigError, TransientError

if TYPE_CHECKING:
    import pyarrow as pa

    from ot_core.contract import TableContract


def driver(conn: Connection) -> Any:
    """The DBAPI driver's own connection under ``conn``, for what SQLAlchemy does not wrap
    (executemany, COPY, DuckDB's register)."""
    raw = conn.connection.driver_connection
    if raw is None:  # only once the pool has invalidated it after a disconnect
        raise TransientError("the database connection was lost; run the command again")
    return raw


class Backend:
    """Defaults follow ANSI/PostgreSQL; subclasses override only what truly differs."""

    name: ClassVar[str] = "base"
    roles: ClassVar[frozenset[str]] = frozenset()
    # Whether marts/history get a declared PRIMARY KEY (DuckDB's ART index makes delete+insert
    # of the same key in one transaction fail, so there uniqueness is the merge's job and the
    # DUPLICATE_KEYS check's).
    declares_primary_keys: ClassVar[bool] = True
    has_schemas: ClassVar[bool] = True
    # the database is a file the URL names (created on first use; a source is never created)
    embedded_file: ClassVar[bool] = False
    # one writing process per database at a time: connections are released as soon as a
    # block ends (no pool), and a job-run row a busy file refuses waits in a spool file
    single_writer: ClassVar[bool] = False
    # the pip extra that brings the driver (named when the driver is missing)
    extra: ClassVar[str | None] = None
    # text columns can hold the NUL character (PostgreSQL's and Redshift's cannot: the
    # landing strips it there, with a warning naming table, column and keys)
    holds_nul_in_text: ClassVar[bool] = True
    # strategies: each engine module names its own classes
    checksum_class: ClassVar[type[ChecksumDialect]] = ChecksumDialect
    lock_class: ClassVar[type[JobLock] | None] = None
    maintainer_class: ClassVar[type[Maintainer] | None] = None
    # how a landing puts its batches into the raw tables (Redshift: S3 + COPY)
    batch_load_class: ClassVar[type[BatchLoad]] = BatchLoad

    def __init__(self, dialect: sa.engine.Dialect):
        self.dialect = dialect

    # -- identifiers -----------------------------------------------------------------
    def quote(self, ident: str) -> str:
        return self.dialect.identifier_preparer.quote_identifier(ident)

    def qualified(self, schema: str | None, table: str) -> str:
        if schema and self.has_schemas:
            return f"{self.quote(schema)}.{self.quote(table)}"
        return self.quote(table)

    # -- DDL options -----------------------------------------------------------------
    def table_kwargs(self, role: str, contract: Any) -> dict[str, Any]:
        """Extra ``sa.Table`` kwargs by role ('raw', 'mart', 'hist', 'control')."""
        return {}

    def create_schema(self, conn: Connection, schema: str) -> None:
        # Look first: PostgreSQL checks CREATE on the database even for IF NOT EXISTS, and a
        # pipeline user that owns no schemas must still run when they already exist.
        exists = conn.execute(
            sa.text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :s"),
            {"s": schema}).first()
        if exists is None:
            conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {self.quote(schema)}")

    def serialize_ids(self, conn: Connection, schema: str | None, table: str) -> None:
        """Ids are max+1 (DuckDB has no SERIAL): make concurrent writers of ``table`` take
        turns until commit. DuckDB admits one writer anyway; servers override."""

    def prepare_bulk_write(self, conn: Connection) -> None:
        """Tune one connection for a large bulk write (the simulator's). Default: nothing."""

    def raw_indexes(self, schema: str, table: str) -> list[str]:
        """Secondary indexes on a raw table (so a batch is found without a scan)."""
        return []

    def plan_for_batch(self, conn: Connection, rows: int) -> None:
        """The rest of this transaction joins a batch of ``rows`` rows to a mart by key:
        a backend whose planner may scan the whole mart for it says otherwise here."""

    def after_bulk_change(self, conn: Connection, target: str, rows: int) -> None:
        """``rows`` rows were just landed in or trimmed from ``target`` (qualified): a backend
        whose planner needs fresh statistics to keep reading it by index refreshes them."""

    def plan_lifecycle(self, conn: Connection) -> None:
        """The rest of this transaction runs lifecycle statements: short ones that select
        the rows crossing the cutoff by index or zone map and probe history by key."""

    def after_stage(self, conn: Connection, temp_table: str, rows: int) -> None:
        """Hook after a staging temp table of ``rows`` rows is filled, in the merge's
        transaction (PostgreSQL analyzes it and plans the merge as key lookups)."""

    @contextmanager
    def first_load(self, conn: Connection) -> Iterator[None]:
        """Around a cycle's landing, merges and lifecycle when some table is read for the
        first time (a backfill of the whole source in one process). Default: nothing."""
        yield

    @contextmanager
    def filling(self, conn: Connection, target: str, rows: int) -> Iterator[None]:
        """Around inserting ``rows`` staged rows into the table ``target`` (qualified), in
        the caller's transaction. A backend may build the table's indexes once, after the
        insert, when the table is empty and the rows many. Default: indexes as rows come."""
        yield

    def drop_not_null(self, qualified: str, column: str) -> str | None:
        """The statement letting ``column`` of a table hold NULL (None: the engine cannot
        change it in place; the table keeps NOT NULL)."""
        return f"ALTER TABLE {qualified} ALTER COLUMN {self.quote(column)} DROP NOT NULL"

    def mart_indexes(self, schema: str, table: str, archive_column: str) -> list[str]:
        """Secondary indexes on a mart so the lifecycle's cost follows the rows crossing the
        cutoff (archive column) and the rows merged since it last ran (_batch_id)."""
        return []

    def is_permission_denied(self, exc: BaseException) -> bool:
        """Whether a database error means a missing grant (SQLSTATE 42501)."""
        orig = getattr(exc, "orig", exc)
        code = getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)
        return code == "42501" or "permission denied" in str(orig).lower()

    def refused_write(self, exc: BaseException) -> bool:
        """Whether a database error is a write refused to a read-only session (SQLSTATE
        25006, DuckDB's read-only mode) or to a role without the grant."""
        orig = getattr(exc, "orig", exc)
        code = getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)
        return (code == "25006" or "read-only" in str(orig).lower()
                or self.is_permission_denied(exc) or "must be owner" in str(orig).lower())

    # -- catalog: our own queries, not SQLAlchemy reflection (unreliable on duckdb-engine) --
    def list_tables(self, conn: Connection, schema: str | None, prefix: str = "") -> list[str]:
        rows = conn.execute(
            sa.text(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = :schema AND table_name LIKE :pattern ORDER BY table_name"
            ),
            {"schema": schema, "pattern": _like_prefix(prefix)},
        )
        return [r[0] for r in rows if r[0].startswith(prefix)]

    def schemas_with_table(self, conn: Connection, table: str) -> list[str]:
        """Every schema holding a table of that name (where a control schema moved from)."""
        rows = conn.execute(sa.text(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = :t "
            "ORDER BY table_schema"), {"t": table})
        return [r[0] for r in rows]

    def source_columns(self, conn: Connection, table: str) -> list[SourceColumn]:
        """The source table's columns as the catalog declares them (a source engine
        overrides this; see ``pipeline/source_contract.py``)."""
        raise ConfigError(f"a {self.name} database cannot be the source")

    def list_columns(self, conn: Connection, schema: str | None, table: str) -> list[str]:
        rows = conn.execute(
            sa.text(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = :schema AND table_name = :table ORDER BY ordinal_position"
            ),
            {"schema": schema, "table": table},
        )
        return [r[0] for r in rows]

    # -- data movement -----------------------------------------------------------------
    def connectorx_url(self, url: sa.engine.URL) -> str | None:
        """The source's URL as connectorx spells it, or None where it cannot read it."""
        return None

    def spare_connections(self, conn: Connection) -> int | None:
        """How many more connections this user may open, or None where no limit is known:
        connectorx opens a pool of its own, and one it may not open waits out its timeout."""
        return None

    def load_arrow(self, conn: Connection, schema: str | None, table: str,
                   data: pa.Table) -> int:
        """Append a typed Arrow table (columns named as the target's), in the caller's
        transaction. Default: an INSERT with bound parameters through the driver's
        executemany, exact Python values (``to_pylist``); fast engines override."""
        if data.num_rows == 0:
            return 0
        rows = list(zip(*(c.to_pylist() for c in data.columns), strict=True))
        return self.executemany(conn, schema, table, data.column_names, rows)

    def executemany(self, conn: Connection, schema: str | None, table: str,
                    columns: Sequence[str], rows: list[tuple]) -> int:
        """INSERT plain tuples through the driver's executemany (values stay bound)."""
        if not rows:
            return 0
        mark = {"qmark": "?", "numeric": ":1", "named": ":p", "format": "%s",
                "pyformat": "%s"}[self.dialect.paramstyle]
        cols = ", ".join(self.quote(c) for c in columns)
        marks = ", ".join([mark] * len(columns))
        sql = f"INSERT INTO {self.qualified(schema, table)} ({cols}) VALUES ({marks})"
        cur = driver(conn).cursor()
        try:
            cur.executemany(sql, rows)
        finally:
            cur.close()
        return len(rows)

    @classmethod
    def engine_kwargs(cls) -> dict[str, Any]:
        return {}

    @classmethod
    def read_only(cls, url: sa.engine.URL) -> tuple[sa.engine.URL, dict[str, Any]]:
        """The URL and engine kwargs of a session that cannot write (the analyst's
        workbench). Default: the URL as given, the database's grants decide."""
        return url, {}

    # -- the analyst's one write: resolving an exception -----------------------------------
    # "PROCEDURE": the engine resolves through a SECURITY DEFINER procedure the pipeline owns
    # and grants to the analyst (who may update nothing else); None: a plain UPDATE of the
    # resolution columns (DuckDB: no roles, the file's permissions decide)
    routine_kind: ClassVar[str | None] = None
    resolver_name: ClassVar[str] = "ot_resolve_exception"
    resolver_args: ClassVar[str] = "BIGINT, VARCHAR"

    def resolver(self, schema: str) -> str:
        """The resolve procedure's qualified name with its argument types (for GRANT)."""
        return f"{self.qualified(schema, self.resolver_name)}({self.resolver_args})"

    def resolver_body(self, table: str) -> str:
        """The procedure's plpgsql body updating ``table`` (qualified): an engine with a
        ``routine_kind`` overrides this."""
        raise NotImplementedError

    routine_options: ClassVar[str] = ""

    def resolver_statements(self, schema: str, table: str) -> list[str]:
        """The DDL (re)creating the resolve procedure in ``schema`` over the exceptions
        ``table`` (qualified), run by the pipeline, so the pipeline owns it; EXECUTE is
        revoked from PUBLIC and granted to the analyst role (``ot roles --sql``)."""
        if self.routine_kind is None:
            return []
        name = self.qualified(schema, self.resolver_name)
        return [f"CREATE OR REPLACE PROCEDURE {name}(p_id BIGINT, p_note VARCHAR(1000)) AS $$\n"
                f"{self.resolver_body(table)}\n$$ LANGUAGE plpgsql SECURITY DEFINER"
                f"{self.routine_options}",
                f"REVOKE EXECUTE ON PROCEDURE {self.resolver(schema)} FROM PUBLIC"]

    def has_resolver(self, conn: Connection, schema: str) -> bool:
        """Whether the resolve procedure exists in ``schema``."""
        return conn.execute(sa.text(
            "SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = :s AND p.proname = :p"),
            {"s": schema, "p": self.resolver_name}).first() is not None

    def database_user(self, conn: Connection) -> str:
        """Who the database says this session is (recorded as who resolved an exception)."""
        return str(conn.execute(sa.text("SELECT SESSION_USER")).scalar_one())

    # -- how the engine spells roles and grants (``ot roles --sql``, docs/roles.md) -----------
    has_roles: ClassVar[bool] = False
    # the pipeline logs in as itself (it owns what it creates); the others are group roles
    # granted to people
    role_login_sql: ClassVar[str] = "CREATE ROLE {name} LOGIN"
    role_group_sql: ClassVar[str] = "CREATE ROLE {name} NOLOGIN"
    role_grantee: ClassVar[str] = "{name}"
    role_member_sql: ClassVar[str] = "GRANT {role} TO {user}"
    role_creator: ClassVar[str] = "FOR ROLE {name}"  # ALTER DEFAULT PRIVILEGES FOR ...
    # database privileges: what the pipeline needs (staging temp tables), what readers need
    role_database_writer: ClassVar[str | None] = "CONNECT, TEMPORARY"
    role_database_reader: ClassVar[str | None] = "CONNECT"
    role_login_note: ClassVar[str] = "set its password with ALTER ROLE {name} PASSWORD '…'"
    # further grants the pipeline's jobs need on this engine (with why, as a comment)
    role_pipeline_extra: ClassVar[tuple[str, ...]] = ()

    # -- the source tables (what the simulator and the tests create) -------------------------
    def epoch_type(self) -> sa.types.TypeEngine:
        """Epoch seconds as the source declares them (INT UNSIGNED on MySQL)."""
        return sa.BigInteger()

    def serial_key_type(self) -> sa.types.TypeEngine:
        """An auto-assigned integer key (SQLite assigns only INTEGER PRIMARY KEY)."""
        return sa.BigInteger()

    def source_table(self, contract: TableContract, metadata: sa.MetaData) -> sa.Table:
        """The OLTP table as the source contract declares it, in this engine's types."""
        cols = []
        for c in contract.columns:
            typ = self.epoch_type() if c.epoch else c.type
            if contract.autoincrement_key and c.name in contract.key:
                cols.append(sa.Column(c.name, self.serial_key_type(), primary_key=True,
                                      autoincrement=True))
                continue
            cols.append(sa.Column(c.name, typ, nullable=c.nullable,
                                  primary_key=c.name in contract.key, autoincrement=False))
        table = sa.Table(contract.name, metadata, *cols)
        for col in contract.source_indexes:
            sa.Index(f"ix_{contract.name}_{col}", table.c[col])
        return table

    @classmethod
    def engine_url(cls, url: sa.engine.URL) -> sa.engine.URL:
        """The URL the engine is built from (a backend may pick its own SQLAlchemy driver
        for the dialect); messages keep showing the URL as given."""
        return url

    # -- strategies ------------------------------------------------------------------------
    def checksum(self) -> ChecksumDialect:
        """How this engine spells the row checksums of ``ot compare``."""
        return self.checksum_class(self)

    def job_lock(self, site: LockSite, job: str, timeout_seconds: int) -> JobLock:
        if self.lock_class is None:
            raise ConfigError(f"a {self.name} database holds no job locks; it cannot be the "
                              "warehouse")
        return self.lock_class(site, self, job, timeout_seconds)

    def batch_load(self, site: LoadSite) -> BatchLoad:
        """The bulk load of one landing transaction on this engine."""
        return self.batch_load_class(self, site)

    def maintainer(self, site: MaintenanceSite, limits: Limits) -> Maintainer:
        if self.maintainer_class is None:
            raise ConfigError(f"there is no maintenance for a {self.name} database")
        return self.maintainer_class(site, self, limits)

    # The database's own clock in epoch seconds: a cycle never runs ahead of its source.
    clock_sql: ClassVar[str] = "SELECT CAST(EXTRACT(EPOCH FROM CURRENT_TIMESTAMP) AS BIGINT)"

    def clock(self, conn: Connection) -> int:
        return int(conn.execute(sa.text(self.clock_sql)).scalar_one())


def _like_prefix(prefix: str) -> str:
    # '_' is a LIKE wildcard; the startswith() filter afterwards makes the match exact.
    return prefix + "%"


