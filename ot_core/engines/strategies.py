"""The strategies an engine supplies, as base classes: job lock, maintenance, checksum
spelling, and the vocabulary a source engine describes its columns in.

They live here, beside the engines, because every engine module subclasses them; the layers
above (``jobs``, ``quality``, ``pipeline``) use them through the engine's entry. What a
strategy needs from those layers (a retried connection, the control tables, a rendered
template) is handed over in a small *site* object, so the engines import nothing above
themselves (docs/contracts.md#engines).
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from ot_core.timeutil import iso, utcnow

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from ot_core.config import RedshiftConfig
    from ot_core.contract import Column
    from ot_core.engines.base import Backend


# -- job locks ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LockSite:
    """What a job lock works with, handed over by the warehouse handle."""

    engine: Engine
    url: URL
    connect: Callable[[], Connection]  # transient failures retried
    locks_table: sa.Table  # <control>.ot_job_locks (the lock row of engines without locks)
    render: Callable[..., str]  # a step template of sql/, rendered for this engine
    ensure: Callable[[Connection], object]  # create the missing control tables


class JobLock:
    """acquire() → bool without waiting; describe the holder; release() idempotent."""

    def __init__(self, site: LockSite, backend: Backend, job: str, timeout_seconds: int):
        self.site, self.backend = site, backend
        self.job, self.timeout_seconds = job, timeout_seconds

    @staticmethod
    def this_process() -> str:
        """How a holder names itself until the runner says more (its run id)."""
        return f"pid {os.getpid()} on {socket.gethostname()}, started {iso(utcnow())}"

    def acquire(self) -> bool:
        raise NotImplementedError

    def set_holder(self, description: str) -> None:
        """Say who holds the lock (the run id), so a skipped run can name it."""

    def holder(self) -> str:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError


# -- maintenance -------------------------------------------------------------------------------
@dataclass
class Limits:
    unsorted_pct: float = 10.0  # Redshift: VACUUM SORT ONLY above this % unsorted
    dead_ratio: float = 0.10  # PostgreSQL: VACUUM (ANALYZE) above this dead/(live+dead)
    min_dead_tuples: int = 1000  # ... and at least this many dead tuples


@dataclass
class Decision:
    table: str
    action: str  # the statement to run, or "skip"
    method: str  # where the numbers came from
    reason: str
    figures: dict = field(default_factory=dict)
    executed: bool = False


@dataclass
class Plan:
    method: str  # how it decided, in a sentence (the notebook prints it)
    decisions: list[Decision]

    def frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([{**{k: v for k, v in asdict(d).items() if k != "figures"},
                              **d.figures} for d in self.decisions])


@dataclass(frozen=True)
class MaintenanceSite:
    """What maintenance works with: the engine, the schemas, the marts, and the pipeline's
    own count of rows merged into a mart since a time (for engines that must estimate)."""

    engine: Engine
    mart_schema: str
    raw_schema: str
    control_schema: str
    marts: tuple[str, ...]
    rows_merged_since: Callable[[Connection, str, datetime | None], int]


class Maintainer:
    """How one engine measures and maintains; each engine module defines its own subclass."""

    def __init__(self, site: MaintenanceSite, backend: Backend, limits: Limits):
        self.site, self.backend, self.limits = site, backend, limits

    def plan(self, conn: Connection, last_vacuum: dict[str, datetime]) -> Plan:
        raise NotImplementedError

    def run(self, decision: Decision) -> None:
        """Run one statement outside any transaction (VACUUM refuses to run inside one)."""
        with self.site.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(decision.action)


# -- bulk load of a landing ---------------------------------------------------------------------
@dataclass(frozen=True)
class LoadSite:
    """What a landing's bulk load works with, handed over by the cycle."""

    render: Callable[..., str]  # a step template of sql/, rendered for this engine
    redshift: RedshiftConfig  # the S3 staging settings, environment applied


class BatchLoad:
    """How one landing transaction puts each table's batch into its raw table.

    ``add`` takes the batch's chunks as they are read, ``finish`` completes a table's batch
    inside the landing transaction, ``release`` runs once that transaction has ended
    (committed or not) and drops whatever was staged outside the database, and ``sweep``
    removes what an interrupted landing left there. The default appends each chunk directly
    (``Backend.load_arrow``) and stages nothing.
    """

    def __init__(self, backend: Backend, site: LoadSite):
        self.backend, self.site = backend, site

    def add(self, conn: Connection, schema: str | None, table: str, data: pa.Table) -> None:
        self.backend.load_arrow(conn, schema, table, data)

    def finish(self, conn: Connection, schema: str | None, table: str) -> None:
        """Every chunk of ``table``'s batch was added: complete its load (the caller's
        transaction)."""

    def release(self) -> None:
        """The landing transaction ended: drop what was staged for it."""

    def sweep(self) -> int:
        """Remove what an interrupted landing staged; how many objects were removed."""
        return 0


# -- checksum spelling -------------------------------------------------------------------------
# The canonical text of a row (see ``ot_core/quality/checksum.py`` for why it is built so).
SEPARATOR = "|"
ESCAPE = "~"
NULL_MARK = "~N"
HASH_BITS = 28


def hash28_text(text: str | None) -> int | None:
    """The first 28 bits of the MD5 of ``text``: what every engine's spelling computes."""
    if text is None:
        return None
    return int(hashlib.md5(text.encode("utf-8")).hexdigest()[:7], 16)


class ChecksumDialect:
    """The ANSI/PostgreSQL spelling; an engine's subclass overrides what it spells differently."""

    text_type: ClassVar[str] = "VARCHAR"
    int_type: ClassVar[str] = "BIGINT"
    # the engine hashes through a Python function, row by row (compare reads it as Arrow
    # and hashes in DuckDB instead: ``quality/compare/arrow.py``)
    hashes_in_python: ClassVar[bool] = False
    # written before the scope's column references, so the planner reads key ranges by the
    # primary key rather than the scope column's index ('+' on SQLite)
    scope_ref_prefix: ClassVar[str] = ""
    # the NUL character as this engine spells it, where its text can hold one (None: it
    # cannot, as PostgreSQL): the canonical text leaves NUL out, as the landing does
    nul: ClassVar[str | None] = None

    def __init__(self, backend: Backend):
        self.backend = backend

    def prepare(self, conn: Connection) -> None:
        """Make the hash function available on ``conn`` (only SQLite needs it)."""

    def as_text(self, expr: str) -> str:
        return f"CAST({expr} AS {self.text_type})"

    def as_int(self, expr: str) -> str:
        return f"CAST({expr} AS {self.int_type})"

    def concat(self, parts: Sequence[str]) -> str:
        return "(" + " || ".join(parts) + ")"

    def hash28(self, text: str) -> str:
        # seven hex digits are 28 bits: bit(28) → INTEGER is the unsigned value, no padding
        return f"CAST(('x' || SUBSTR(MD5({text}), 1, 7))::bit(28) AS INTEGER)"

    def intdiv(self, a: str, b: str) -> str:
        return f"(({a}) / {b})"

    def field(self, column: Column, ref: str) -> str:
        """The canonical text of one column, NULL included."""
        typ = column.type
        if isinstance(typ, sa.Integer):
            value = self.as_text(self.as_int(ref))
        elif isinstance(typ, sa.Numeric):
            scale = typ.scale or 0
            value = self.as_text(self.as_int(f"ROUND({ref} * {10 ** scale})"))
        else:
            text = self.as_text(ref)
            if self.nul:
                text = f"REPLACE({text}, {self.nul}, '')"
            value = (f"REPLACE(REPLACE({text}, '{ESCAPE}', '{ESCAPE}{ESCAPE}'), "
                     f"'{SEPARATOR}', '{ESCAPE}p')")
        return f"COALESCE({value}, '{NULL_MARK}')"

    def row_text(self, columns: Sequence[Column], alias: str = "t") -> str:
        parts: list[str] = []
        for i, c in enumerate(columns):
            if i:
                parts.append(f"'{SEPARATOR}'")
            parts.append(self.field(c, f"{alias}.{self.backend.quote(c.name)}"))
        return self.concat(parts)

    def row_hash(self, columns: Sequence[Column], alias: str = "t") -> str:
        return self.hash28(self.row_text(columns, alias))


# -- the source's columns ----------------------------------------------------------------------
@dataclass(frozen=True)
class SourceColumn:
    """One column as the source's catalog describes it, in a common vocabulary (judged
    against the contract by ``pipeline/source_contract.py``)."""

    name: str
    kind: str  # "integer", "decimal", "string", "float", "other"
    declared: str  # the type as the catalog spells it, for messages
    bits: int | None = None  # integers: 16, 32, 64 (unsigned counted as one more bit)
    precision: int | None = None
    scale: int | None = None
    length: int | None = None  # strings: the declared maximum, None when unbounded
    nullable: bool = True
