"""Warehouse tables built from the contract, per backend (docs/contracts.md#warehouse-contract).

Every name comes from the validated config; DDL is compiled by the warehouse's own
SQLAlchemy dialect (DISTKEY/SORTKEY on Redshift through sqlalchemy-redshift).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateTable

from ot_core.config import PipelineConfig
from ot_core.contract import CONTRACTS, TableContract
from ot_core.engines import Backend

EXCEPTIONS_TABLE = "order_tracking_exceptions"
BATCHES_TABLE = "ot_batches"
WATERMARKS_TABLE = "ot_watermarks"
MARKS_TABLE = "ot_lifecycle_marks"


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


def _data_columns(contract: TableContract, *, nullable_override: bool = False) -> list[sa.Column]:
    return [sa.Column(c.name, c.type, nullable=True if nullable_override else c.nullable)
            for c in contract.columns]


def raw_table(contract: TableContract, md: sa.MetaData, schema: str, backend: Backend) -> sa.Table:
    return sa.Table(
        raw_name(contract.name), md,
        *_data_columns(contract),
        sa.Column("_raw_id", sa.BigInteger, nullable=False),
        sa.Column("_batch_id", sa.BigInteger, nullable=False),
        sa.Column("_extracted_at", sa.DateTime, nullable=False),
        schema=schema, **backend.table_kwargs("raw", contract),
    )


def keyed_table(
    contract: TableContract, md: sa.MetaData, schema: str, name: str, role: str, backend: Backend
) -> sa.Table:
    """A mart or a history table: the source columns, the version it holds, and its key."""
    cols = _data_columns(contract)
    cols += [sa.Column("_raw_id", sa.BigInteger, nullable=False),
             sa.Column("_batch_id", sa.BigInteger, nullable=False)]
    args: list = list(cols)
    if backend.declares_primary_keys:
        args.append(sa.PrimaryKeyConstraint(*contract.key, name=f"pk_{name}"[:63]))
    return sa.Table(name, md, *args, schema=schema, **backend.table_kwargs(role, contract))


def control_tables(md: sa.MetaData, schema: str, backend: Backend) -> dict[str, sa.Table]:
    pk = backend.declares_primary_keys
    batches = sa.Table(
        BATCHES_TABLE, md,
        sa.Column("batch_id", sa.BigInteger, primary_key=pk, autoincrement=False, nullable=False),
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
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("loaded_at", sa.DateTime, nullable=False),
        sa.Column("merged_at", sa.DateTime),
        schema=schema,
    )
    watermarks = sa.Table(
        WATERMARKS_TABLE, md,
        sa.Column("table_name", sa.String(64), primary_key=pk, nullable=False),
        sa.Column("watermark", sa.BigInteger, nullable=False),
        sa.Column("batch_id", sa.BigInteger),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        schema=schema,
    )
    # Per table: the highest merged batch whose keys the lifecycle's reactivation has looked
    # at (lifecycle.py). Created with the others so the cycle asks the catalog once.
    marks = sa.Table(
        MARKS_TABLE, md,
        sa.Column("table_name", sa.String(64), nullable=False),
        sa.Column("batch_id", sa.BigInteger, nullable=False),
        sa.Column("as_of", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        schema=schema,
    )
    return {"batches": batches, "watermarks": watermarks, "marks": marks}


def exceptions_table(md: sa.MetaData, schema: str, backend: Backend) -> sa.Table:
    pk = backend.declares_primary_keys
    return sa.Table(
        EXCEPTIONS_TABLE, md,
        sa.Column("exception_id", sa.BigInteger, primary_key=pk, autoincrement=False, nullable=False),
        sa.Column("order_id", sa.BigInteger),
        sa.Column("source_table", sa.String(64), nullable=False),
        sa.Column("row_key", sa.BigInteger),
        sa.Column("exception_type", sa.String(64), nullable=False),
        sa.Column("detected_at", sa.DateTime, nullable=False),
        sa.Column("resolved_at", sa.DateTime),
        sa.Column("notes", sa.String(1000)),
        schema=schema,
    )


def all_tables(cfg: PipelineConfig, backend: Backend) -> list[sa.Table]:
    md = sa.MetaData()
    out: list[sa.Table] = []
    for name in cfg.tables:
        contract = CONTRACTS[name]
        out.append(raw_table(contract, md, cfg.schemas.raw, backend))
        out.append(keyed_table(contract, md, cfg.schemas.mart, mart_name(name), "mart", backend))
    out.extend(control_tables(md, cfg.schemas.control, backend).values())
    out.append(exceptions_table(md, cfg.schemas.mart, backend))
    return out


def ddl(table: sa.Table, backend: Backend) -> str:
    return str(CreateTable(table, if_not_exists=True).compile(dialect=backend.dialect)).strip()


def ensure_warehouse(conn: Connection, cfg: PipelineConfig, backend: Backend) -> list[str]:
    """Create schemas and tables that are missing (idempotent). Returns the tables created."""
    for schema in (cfg.schemas.raw, cfg.schemas.mart, cfg.schemas.control):
        backend.create_schema(conn, schema)
    created = []
    existing: dict[str, set[str]] = {}
    for table in all_tables(cfg, backend):
        have = existing.setdefault(table.schema, set(backend.list_tables(conn, table.schema)))
        if table.name in have:
            continue
        conn.exec_driver_sql(ddl(table, backend))
        if table.name.endswith("_raw"):
            for extra in backend.raw_indexes(table.schema, table.name):
                conn.exec_driver_sql(extra)
        if table.name.startswith("mart_"):
            archive_column = cfg.table(table.name.removeprefix("mart_")).archive_column
            for extra in backend.mart_indexes(table.schema, table.name, archive_column):
                conn.exec_driver_sql(extra)
        created.append(f"{table.schema}.{table.name}")
    return created
