"""Amazon Redshift: production scale. SQL is compiled and parsed for it; no cluster here.

What differs from PostgreSQL: DISTKEY/SORTKEY table options
(docs/contracts.md#redshift-table-options), the
catalog (``pg_tables``), and bulk loads (production loads go through S3 + COPY; the
fallback here is a bound multi-row INSERT). Never build correlated DELETEs with SQLAlchemy
expressions for Redshift: sqlalchemy-redshift drops the correlation, so the statement would
delete every row; every such statement comes from the templates in ``ot_core/sql/``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ot_core.engines import Backend, register

# Distribution and sort keys per table and role. Merges delete by key only
# (docs/legacy-defects.md#12-range-predicate-defeating-the-distribution-key), so
# DISTKEY(order_id) co-locates a batch with the rows it replaces.
SORTKEYS = {
    "ecs_order_info": ("partner_id", "add_time"),
    "uni_tracking_info": ("update_time",),
    "uni_tracking_spath": ("pathTime",),
}


@register
class RedshiftBackend(Backend):
    name = "redshift"
    roles = frozenset({"warehouse"})

    def table_kwargs(self, role: str, contract: Any) -> dict[str, Any]:
        if role in ("mart", "hist"):
            return {
                "redshift_diststyle": "KEY",
                "redshift_distkey": "order_id",
                "redshift_sortkey": SORTKEYS[contract.name],
            }
        if role == "raw":
            return {"redshift_diststyle": "KEY", "redshift_distkey": "order_id",
                    "redshift_sortkey": ("_batch_id", "_raw_id")}
        return {}

    def serialize_ids(self, conn: Connection, schema: str | None, table: str) -> None:
        conn.exec_driver_sql(f"LOCK {self.qualified(schema, table)}")

    def list_tables(self, conn: Connection, schema: str | None, prefix: str = "") -> list[str]:
        rows = conn.execute(
            sa.text(
                "SELECT tablename FROM pg_tables WHERE schemaname = :schema "
                "AND tablename LIKE :pattern ORDER BY tablename"
            ),
            {"schema": schema, "pattern": prefix + "%"},
        )
        return [r[0] for r in rows if r[0].startswith(prefix)]
