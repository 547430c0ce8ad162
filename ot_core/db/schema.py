"""Every table the pipeline owns, in one metadata, with a schema version.

Data tables (raw, mart and history, see docs/contracts.md) are built from the contract per
engine; control tables (batches, watermarks, lifecycle marks, job runs and locks, check,
comparison and maintenance results, the schema version) and the exceptions log are
declared once here. ``ensure`` creates what is missing in one pass: no other module
creates a table (history tables excepted: rotation creates those by period).

The version row also records the schema names the data was written under. A config that
names other schemas would start empty marts beside the old ones and leave every row behind,
so ``ensure`` refuses it unless the operator confirms (``--new-schemas``).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateTable

from ot_core.config import PipelineConfig
from ot_core.contract import MART_META, META_TYPES, RAW_META, TableContract
from ot_core.engines import Backend
from ot_core.engines.base import driver
from ot_core.errors import ConfigError, TerminalError
from ot_core.timeutil import utcnow

# 2: columns added to control tables since they were first created (job runs: pid, host)
# 3: CDC columns of raw, mart and history tables may hold NULL (docs/cycle.md#null-cdc-values);
#    comparisons keep their differing keys; batches count the rows a repair deleted
# 4: exceptions record who resolved them (resolved_by: the database user); on PostgreSQL and
#    Redshift the resolve procedure the analyst role may call (docs/roles.md)
#    and the alert state of each notification destination (ot_alerts: what was last told)
#    and job runs record their executed notebook's checksums in a chain (docs/audit.md)
SCHEMA_VERSION = 4
TEXT = 65535  # the widest VARCHAR Redshift allows

EXCEPTIONS_TABLE = "order_tracking_exceptions"
BATCHES_TABLE = "ot_batches"
WATERMARKS_TABLE = "ot_watermarks"
MARKS_TABLE = "ot_lifecycle_marks"
JOB_RUNS_TABLE = "ot_job_runs"
LOCKS_TABLE = "ot_job_locks"
CHECK_RESULTS_TABLE = "ot_check_results"
COMPARE_RESULTS_TABLE = "ot_compare_results"
COMPARE_KEYS_TABLE = "ot_compare_keys"
MAINTENANCE_LOG_TABLE = "ot_maintenance_log"
VERSION_TABLE = "ot_schema_version"
ALERTS_TABLE = "ot_alerts"


def raw_name(table: str) -> str:
    return f"{table}_raw"


def mart_name(table: str) -> str:
    return f"mart_{table}"


def hist_prefix(table: str) -> str:
    return f"hist_{table}_"


@dataclass(frozen=True)
class Names:
    """Schema-qualified, quoted names of one source table's warehouse relations."""

    raw: str
    mart: str
    raw_table: str
    mart_table: str


def names(cfg: PipelineConfig, backend: Backend, table: str) -> Names:
    return Names(
        raw=backend.qualified(cfg.schemas.raw, raw_name(table)),
        mart=backend.qualified(cfg.schemas.mart, mart_name(table)),
        raw_table=raw_name(table),
        mart_table=mart_name(table),
    )


def _data_columns(contract: TableContract) -> list[sa.Column]:
    return [sa.Column(c.name, c.type, nullable=c.nullable) for c in contract.columns]


def raw_table(contract: TableContract, md: sa.MetaData, schema: str, backend: Backend) -> sa.Table:
    return sa.Table(
        raw_name(contract.name), md,
        *_data_columns(contract),
        *[sa.Column(name, META_TYPES[name], nullable=False) for name in RAW_META],
        schema=schema, **backend.table_kwargs("raw", contract),
    )


def keyed_table(
    contract: TableContract, md: sa.MetaData, schema: str, name: str, role: str, backend: Backend
) -> sa.Table:
    """A mart or a history table: the source columns, the version it holds, and its key."""
    cols = _data_columns(contract)
    cols += [sa.Column(name, META_TYPES[name], nullable=False) for name in MART_META]
    args: list = list(cols)
    if backend.declares_primary_keys:
        args.append(sa.PrimaryKeyConstraint(*contract.key, name=f"pk_{name}"[:63]))
    return sa.Table(name, md, *args, schema=schema, **backend.table_kwargs(role, contract))


class Tables:
    """The control tables and the exceptions log of one config on one engine."""

    def __init__(self, cfg: PipelineConfig, backend: Backend):
        md = self.metadata = sa.MetaData()
        ctl, pk = cfg.schemas.control, backend.declares_primary_keys
        self.batches = sa.Table(
            BATCHES_TABLE, md,
            sa.Column("batch_id", sa.BigInteger, primary_key=pk, autoincrement=False,
                      nullable=False),
            sa.Column("table_name", sa.String(64), nullable=False),
            sa.Column("strategy", sa.String(16), nullable=False),
            sa.Column("as_of", sa.BigInteger, nullable=False),
            sa.Column("lower_bound", sa.BigInteger),
            sa.Column("upper_bound", sa.BigInteger, nullable=False),
            sa.Column("raw_id_min", sa.BigInteger),
            sa.Column("raw_id_max", sa.BigInteger),
            sa.Column("rows_extracted", sa.BigInteger, nullable=False),
            sa.Column("rows_loaded", sa.BigInteger, nullable=False),
            sa.Column("rows_merged", sa.BigInteger),
            sa.Column("rows_deleted", sa.BigInteger),  # a repair: keys the source no longer has
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("loaded_at", sa.DateTime, nullable=False),
            sa.Column("merged_at", sa.DateTime),
            schema=ctl,
        )
        self.watermarks = sa.Table(
            WATERMARKS_TABLE, md,
            sa.Column("table_name", sa.String(64), primary_key=pk, nullable=False),
            sa.Column("watermark", sa.BigInteger, nullable=False),
            sa.Column("batch_id", sa.BigInteger),
            sa.Column("updated_at", sa.DateTime, nullable=False),
            schema=ctl,
        )
        # Per table: the highest merged batch whose keys the lifecycle's reactivation has
        # looked at (pipeline/lifecycle.py).
        self.marks = sa.Table(
            MARKS_TABLE, md,
            sa.Column("table_name", sa.String(64), nullable=False),
            sa.Column("batch_id", sa.BigInteger, nullable=False),
            sa.Column("as_of", sa.BigInteger, nullable=False),
            sa.Column("updated_at", sa.DateTime, nullable=False),
            schema=ctl,
        )
        # run_id is max+1: DuckDB has no SERIAL (jobs/records.py)
        self.job_runs = sa.Table(
            JOB_RUNS_TABLE, md,
            sa.Column("run_id", sa.BigInteger, nullable=False),
            sa.Column("job", sa.String(64), nullable=False),
            sa.Column("parameters", sa.String(TEXT)),
            sa.Column("started_at", sa.DateTime, nullable=False),
            sa.Column("ended_at", sa.DateTime),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("notebook_path", sa.String(TEXT)),
            sa.Column("error", sa.String(TEXT)),
            sa.Column("figures", sa.String(TEXT)),
            # the runner's process: a row left 'running' by a killed one is found abandoned
            sa.Column("pid", sa.BigInteger),
            sa.Column("host", sa.String(255)),
            # the audit chain (docs/audit.md): SHA-256 of the record and of its HTML twin, the
            # order records were sealed in, and the previous sealed record's notebook SHA-256
            sa.Column("notebook_sha256", sa.String(64)),
            sa.Column("html_sha256", sa.String(64)),
            sa.Column("seal_seq", sa.BigInteger),
            sa.Column("prev_sha256", sa.String(64)),
            schema=ctl,
        )
        # the job lock of warehouses without advisory locks (Redshift): a row with an expiry
        self.job_locks = sa.Table(
            LOCKS_TABLE, md,
            sa.Column("job", sa.String(64), nullable=False),
            sa.Column("token", sa.String(64), nullable=False),
            sa.Column("holder", sa.String(1000)),
            sa.Column("acquired_at", sa.DateTime, nullable=False),
            sa.Column("expires_at", sa.DateTime, nullable=False),
            schema=ctl,
        )
        self.check_results = sa.Table(
            CHECK_RESULTS_TABLE, md,
            sa.Column("checked_at", sa.DateTime, nullable=False),
            sa.Column("as_of", sa.DateTime, nullable=False),
            sa.Column("check_name", sa.String(64), nullable=False),
            sa.Column("subject", sa.String(128), nullable=False),
            sa.Column("status", sa.String(8), nullable=False),
            sa.Column("row_count", sa.BigInteger, nullable=False),
            sa.Column("detail", sa.String(2000)),
            sa.Column("sample", sa.String(TEXT)),
            schema=ctl,
        )
        self.compare_results = sa.Table(
            COMPARE_RESULTS_TABLE, md,
            sa.Column("run_id", sa.String(32), nullable=False),
            sa.Column("run_at", sa.DateTime, nullable=False),
            sa.Column("table_name", sa.String(64), nullable=False),
            sa.Column("against", sa.String(16), nullable=False),
            sa.Column("month", sa.String(7)),
            sa.Column("scope", sa.String(500), nullable=False),
            *[sa.Column(n, sa.BigInteger, nullable=False) for n in
              ("rows_source", "rows_target", "missing", "extra", "changed", "rows_transferred")],
            sa.Column("mismatch_rate", sa.Float, nullable=False),
            sa.Column("seconds", sa.Float, nullable=False),
            sa.Column("changed_columns", sa.String(2000)),
            sa.Column("sample_keys", sa.String(4000)),
            sa.Column("status", sa.String(16), nullable=False),
            # rows the next cycles read on their own (docs/compare.md#what-a-difference-means)
            sa.Column("pending", sa.BigInteger),
            sa.Column("future", sa.BigInteger),
            sa.Column("keys_kept", sa.BigInteger),  # rows of ot_compare_keys for this run
            schema=ctl,
        )
        # every differing key a comparison found, by kind: what `ot repair --from-compare`
        # re-reads
        self.compare_keys = sa.Table(
            COMPARE_KEYS_TABLE, md,
            sa.Column("run_id", sa.String(32), nullable=False),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("key_value", sa.BigInteger, nullable=False),
            schema=ctl,
        )
        self.maintenance_log = sa.Table(
            MAINTENANCE_LOG_TABLE, md,
            sa.Column("decided_at", sa.DateTime, nullable=False),
            sa.Column("table_name", sa.String(200), nullable=False),
            sa.Column("action", sa.String(1000), nullable=False),
            sa.Column("executed", sa.Boolean, nullable=False),
            sa.Column("method", sa.String(200)),
            sa.Column("reason", sa.String(2000)),
            sa.Column("figures", sa.String(4000)),
            schema=ctl,
        )
        # per notification destination (a hash of its URL: no secret) and alert key: the
        # state it was last told, so a change is sent once and a repeat at most daily
        self.alerts = sa.Table(
            ALERTS_TABLE, md,
            sa.Column("destination", sa.String(64), nullable=False),
            sa.Column("alert_key", sa.String(255), nullable=False),
            sa.Column("state", sa.String(8), nullable=False),  # failing / ok, as last seen
            sa.Column("since", sa.DateTime, nullable=False),
            sa.Column("title", sa.String(1000)),
            sa.Column("sent_state", sa.String(8)),  # what the destination was last told
            sa.Column("sent_at", sa.DateTime),
            sa.Column("attempts", sa.Integer, nullable=False),  # failed sends since the last
            sa.Column("last_error", sa.String(1000)),
            schema=ctl,
        )
        self.schema_version = sa.Table(
            VERSION_TABLE, md,
            sa.Column("version", sa.Integer, nullable=False),
            sa.Column("raw_schema", sa.String(63), nullable=False),
            sa.Column("mart_schema", sa.String(63), nullable=False),
            sa.Column("control_schema", sa.String(63), nullable=False),
            sa.Column("applied_at", sa.DateTime, nullable=False),
            schema=ctl,
        )
        self.exceptions = sa.Table(
            EXCEPTIONS_TABLE, md,
            sa.Column("exception_id", sa.BigInteger, primary_key=pk, autoincrement=False,
                      nullable=False),
            sa.Column("order_id", sa.BigInteger),
            sa.Column("source_table", sa.String(64), nullable=False),
            sa.Column("row_key", sa.BigInteger),
            sa.Column("exception_type", sa.String(64), nullable=False),
            sa.Column("detected_at", sa.DateTime, nullable=False),
            sa.Column("resolved_at", sa.DateTime),
            sa.Column("notes", sa.String(1000)),
            sa.Column("resolved_by", sa.String(128)),  # the database user, not free text
            schema=cfg.schemas.mart,
        )
        self.raw = {t: raw_table(cfg.landed(t), md, cfg.schemas.raw, backend) for t in cfg.tables}
        for t in cfg.tables:  # the marts, in the same metadata (created with the rest)
            keyed_table(cfg.landed(t), md, cfg.schemas.mart, mart_name(t), "mart", backend)

    def all(self) -> list[sa.Table]:
        return list(self.metadata.tables.values())


_TABLES: dict[tuple, Tables] = {}


def tables_for(cfg: PipelineConfig, backend: Backend) -> Tables:
    """``Tables`` for a config and engine, built once per process: they are descriptions
    (names, columns), and a cycle asks for them a dozen times."""
    key = (type(backend), cfg.schemas.raw, cfg.schemas.mart, cfg.schemas.control,
           tuple(cfg.tables))
    if key not in _TABLES:
        _TABLES[key] = Tables(cfg, backend)
    return _TABLES[key]


def ddl(table: sa.Table, backend: Backend) -> str:
    return str(CreateTable(table, if_not_exists=True).compile(dialect=backend.dialect)).strip()


def all_tables(cfg: PipelineConfig, backend: Backend) -> list[sa.Table]:
    return tables_for(cfg, backend).all()


def _recorded_schemas(conn: Connection, cfg: PipelineConfig, backend: Backend,
                      tables: Tables) -> tuple[str, str, str] | None:
    """The schema names the warehouse's data was written under, from a version row in the
    control schema or, after a change of schemas.control, in any other schema."""
    homes = [cfg.schemas.control]
    if VERSION_TABLE not in backend.list_tables(conn, cfg.schemas.control, VERSION_TABLE):
        homes = backend.schemas_with_table(conn, VERSION_TABLE)
    for home in homes:
        v = tables.schema_version
        rel = sa.table(VERSION_TABLE, *(sa.column(c.name) for c in v.columns), schema=home)
        row = conn.execute(sa.select(rel.c.raw_schema, rel.c.mart_schema, rel.c.control_schema)
                           .order_by(rel.c.applied_at.desc()).limit(1)).first()
        if row is not None:
            return (row[0], row[1], row[2])
    return None


def _add_new_columns(conn: Connection, tables: Tables, backend: Backend) -> None:
    """Bring tables made by an older version up to this one: every column declared here
    that a control table lacks is added (nullable; rows written before it hold NULL)."""
    for table in tables.all():
        if table.name.endswith("_raw") or table.name.startswith("mart_"):
            continue  # data tables follow the contract (docs/contracts.md)
        have = {c.lower() for c in backend.list_columns(conn, table.schema, table.name)}
        for col in table.columns:
            if have and col.name.lower() not in have:
                kind = col.type.compile(dialect=backend.dialect)
                conn.exec_driver_sql(f"ALTER TABLE {backend.qualified(table.schema, table.name)} "
                                     f"ADD COLUMN {backend.quote(col.name)} {kind}")


def _allow_null_cdc(conn: Connection, cfg: PipelineConfig, backend: Backend) -> None:
    """Let the CDC column of every raw, mart and history table hold NULL, as tables made now
    do: a source whose CDC column allows NULL has those rows read and landed."""
    hist = backend.list_tables(conn, cfg.schemas.mart, "hist_")
    for table in cfg.tables:
        column = cfg.table(table).cdc.column
        if column is None:
            continue
        targets = [(cfg.schemas.raw, raw_name(table)), (cfg.schemas.mart, mart_name(table))]
        targets += [(cfg.schemas.mart, h) for h in hist if h.startswith(hist_prefix(table))]
        existing = {(s, t) for s in {cfg.schemas.raw, cfg.schemas.mart}
                    for t in backend.list_tables(conn, s)}
        for schema, name in targets:
            if (schema, name) in existing:
                sql = backend.drop_not_null(backend.qualified(schema, name), column)
                if sql:
                    conn.exec_driver_sql(sql)


def _ensure_resolver(conn: Connection, tables: Tables, backend: Backend, *,
                     replace: bool) -> None:
    """The procedure resolving an exception (the analyst's one write), where the engine has
    one: created when missing, replaced on an upgrade; owned by whoever runs this (the
    pipeline), so it may update what the analyst may not."""
    t = tables.exceptions
    schema = str(t.schema)
    if backend.routine_kind is None or (not replace and backend.has_resolver(conn, schema)):
        return
    cur = driver(conn).cursor()  # no parameters: the body's '%' stays as written
    try:
        for statement in backend.resolver_statements(schema, backend.qualified(schema, t.name)):
            cur.execute(statement)
    finally:
        cur.close()


def ensure(conn: Connection, cfg: PipelineConfig, backend: Backend, *,
           new_schemas: bool = False) -> list[str]:
    """Create the schemas and tables that are missing (idempotent); the tables created.

    Refuses (ConfigError) a config whose schema names differ from the ones the warehouse's
    data was written under, unless ``new_schemas`` confirms the move.
    """
    tables = tables_for(cfg, backend)
    wanted = (cfg.schemas.raw, cfg.schemas.mart, cfg.schemas.control)
    recorded = _recorded_schemas(conn, cfg, backend, tables)
    if recorded is not None and recorded != wanted and not new_schemas:
        moved = ", ".join(f"schemas.{k}: {a} → {b}" for k, a, b in
                          zip(("raw", "mart", "control"), recorded, wanted, strict=True) if a != b)
        raise ConfigError(
            f"the config changes {moved}, but the warehouse's data lives under the old names: "
            "a cycle would start empty tables there and leave every row behind. Change the "
            "config back, or move the data yourself and confirm with --new-schemas.")
    for schema in dict.fromkeys(wanted):
        backend.create_schema(conn, schema)
    created: list[str] = []
    existing: dict[str, set[str]] = {}
    for table in tables.all():
        schema = str(table.schema)
        if schema not in existing:  # one catalog read per schema, not per table
            existing[schema] = set(backend.list_tables(conn, schema))
        if table.name in existing[schema]:
            continue
        conn.exec_driver_sql(ddl(table, backend))
        if table.name.endswith("_raw"):
            for extra in backend.raw_indexes(schema, table.name):
                conn.exec_driver_sql(extra)
        if table.name.startswith("mart_"):
            archive_column = cfg.table(table.name.removeprefix("mart_")).archive_column
            for extra in backend.mart_indexes(schema, table.name, archive_column):
                conn.exec_driver_sql(extra)
        existing[schema].add(table.name)
        created.append(f"{schema}.{table.name}")
    v = tables.schema_version
    found = conn.execute(sa.select(sa.func.max(v.c.version))).scalar()
    if found is not None and int(found) > SCHEMA_VERSION:
        raise TerminalError(
            f"the warehouse's tables are at schema version {found}, newer than this ot "
            f"(version {SCHEMA_VERSION}): upgrade ot-workbench before running it here")
    older = int(found) < SCHEMA_VERSION if found is not None else len(created) < len(tables.all())
    if older:  # made by an older version (or before versions were recorded)
        _add_new_columns(conn, tables, backend)
        _allow_null_cdc(conn, cfg, backend)
    _ensure_resolver(conn, tables, backend, replace=older)
    if found is None or older or recorded != wanted:
        conn.execute(sa.delete(v))  # one row: the names the data lives under from now on
        conn.execute(sa.insert(v).values(
            version=SCHEMA_VERSION, raw_schema=wanted[0], mart_schema=wanted[1],
            control_schema=wanted[2], applied_at=utcnow().replace(tzinfo=None, microsecond=0)))
    return created
