"""The source and warehouse contracts (docs/contracts.md), as data.

One description of each table's columns serves every backend: the simulator creates the
source tables from it, the cycle checks a live source against it before reading, and the
warehouse DDL (raw, mart, history) is derived from it with per-backend options.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa


@dataclass(frozen=True)
class Column:
    name: str
    type: sa.types.TypeEngine
    nullable: bool = True
    epoch: bool = False  # unix seconds; INT UNSIGNED at the source, BIGINT in the warehouse


def _epoch(name: str) -> Column:
    return Column(name, sa.BigInteger(), nullable=False, epoch=True)


@dataclass(frozen=True)
class TableContract:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    source_indexes: tuple[str, ...]
    autoincrement_key: bool = False

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def with_nullable(self, *names: str) -> TableContract:
        """This contract with the named columns allowed to be NULL."""
        from dataclasses import replace

        return replace(self, columns=tuple(replace(c, nullable=True) if c.name in names else c
                                           for c in self.columns))


ECS = TableContract(
    name="ecs_order_info",
    columns=(
        Column("order_id", sa.BigInteger(), nullable=False),
        Column("order_sn", sa.String(32), nullable=False),
        Column("partner_id", sa.Integer(), nullable=False),
        Column("store_id", sa.Integer()),
        Column("shipping_channel", sa.String(32)),
        Column("consignee_country", sa.CHAR(2)),
        Column("weight_grams", sa.Integer()),
        Column("declared_value", sa.Numeric(12, 2)),
        Column("currency", sa.CHAR(3)),
        _epoch("add_time"),
    ),
    key=("order_id",),
    source_indexes=("add_time", "partner_id"),
)

UTI = TableContract(
    name="uni_tracking_info",
    columns=(
        Column("order_id", sa.BigInteger(), nullable=False),
        Column("tracking_no", sa.String(40)),
        Column("carrier_code", sa.String(20)),
        Column("status", sa.SmallInteger(), nullable=False),
        Column("latest_event", sa.String(255)),
        _epoch("update_time"),
    ),
    key=("order_id",),
    source_indexes=("update_time",),
)

SPATH = TableContract(
    name="uni_tracking_spath",
    columns=(
        Column("id", sa.BigInteger(), nullable=False),
        Column("order_id", sa.BigInteger(), nullable=False),
        _epoch("pathTime"),
        Column("path_code", sa.String(16)),
        Column("path_info", sa.String(255)),
        Column("path_location", sa.String(64)),
        _epoch("add_time"),
    ),
    key=("id",),
    source_indexes=("order_id", "add_time"),
    autoincrement_key=True,
)

# uni_tracking_info.status: code -> label, the one table every view and the simulator use.
STATUS_LABELS: dict[int, str] = {0: "Label created", 10: "Picked up", 20: "In transit",
                                 25: "Arrived at hub", 30: "Out for delivery", 40: "Delivered",
                                 50: "Returned to sender"}


# What a path event's code means (uni_tracking_spath.path_code), in the words a tracking page
# uses; the status a parcel is in after that event (the simulator's status updates follow it).
PATH_LABELS: dict[str, str] = {
    "CREATED": "Label created", "PICKUP": "Picked up", "DEPART": "Departed facility",
    "ARRIVE": "Arrived at facility", "CUSTOMS": "Customs cleared", "TRANSIT": "In transit",
    "OUTDLV": "Out for delivery", "DLV": "Delivered", "RETURN": "Returned to sender"}
PATH_STATUS: dict[str, int] = {"CREATED": 0, "PICKUP": 10, "DEPART": 20, "ARRIVE": 25,
                               "CUSTOMS": 25, "TRANSIT": 20, "OUTDLV": 30, "DLV": 40,
                               "RETURN": 50}


def path_label(code: str | None) -> str:
    """``Delivered (DLV)``: every path code gets a name, as statuses do; an unknown code
    still reads as itself."""
    if code is None or (isinstance(code, float) and code != code):
        return "no code"
    label = PATH_LABELS.get(str(code))
    return f"{label} ({code})" if label else str(code)


def status_label(code: int | None) -> str:
    """``Delivered (40)``; a code outside the table still reads as a status."""
    if code is None:
        return "no status"
    label = STATUS_LABELS.get(int(code))
    return f"{label} ({int(code)})" if label else f"status {int(code)}"


CONTRACTS: dict[str, TableContract] = {t.name: t for t in (ECS, UTI, SPATH)}

# Columns every raw row carries besides the source columns (docs/contracts.md#raw-tables),
# with their warehouse types; every other module takes them from here.
META_TYPES: dict[str, type[sa.types.TypeEngine]] = {
    "_raw_id": sa.BigInteger, "_batch_id": sa.BigInteger, "_extracted_at": sa.DateTime}
RAW_META = ("_raw_id", "_batch_id", "_extracted_at")
# Columns every mart and history row carries: which extracted version it is.
MART_META = ("_raw_id", "_batch_id")
