"""Stage a batch and merge it into its mart: dedupe, drop what lost, delete + insert by key.

All statements touch the batch's rows and the mart rows with the same keys — the cost is
proportional to the batch, not the mart. Runs in the caller's transaction, together with
flipping the batch to 'merged', so a crash leaves the batch either merged or not at all.
"""

from __future__ import annotations

import sqlalchemy as sa

from ot_core.config import PipelineConfig
from ot_core.contract import CONTRACTS, MART_META
from ot_core.db.schema import names
from ot_core.db.sql import Renderer
from ot_core.engines import Backend
from ot_core.pipeline.context import CycleContext

STEPS = ("merge/stage.sql", "merge/drop_superseded.sql", "merge/delete_replaced.sql",
         "merge/insert.sql", "merge/drop_stage.sql")


def render_merge(cfg: PipelineConfig, backend: Backend, table: str) -> dict[str, str]:
    """Every statement of a merge, rendered for ``backend`` (also used by the Redshift tests)."""
    contract = CONTRACTS[table]
    nm = names(cfg, backend, table)
    r = Renderer(backend)
    ctx = dict(
        raw=nm.raw, mart=nm.mart, mart_table_q=r.q(nm.mart_table), stage=f"ot_stage_{table}",
        columns=contract.column_names, meta=list(MART_META), key=list(contract.key),
        version_column=cfg.table(table).version_column,
    )
    return {step: r.render(step, **ctx) for step in STEPS}


def merge_batch(ctx: CycleContext, table: str, batch_id: int) -> int:
    """Merge batch ``batch_id`` of ``table`` into its mart, in the caller's transaction; the
    rows inserted."""
    conn, backend = ctx.conn, ctx.backend
    stmts = render_merge(ctx.cfg, backend, table)
    params = {"batch_id": batch_id}
    staged = conn.execute(sa.text(stmts["merge/stage.sql"]), params).rowcount
    backend.after_stage(conn, f"ot_stage_{table}", -1 if staged is None else staged)
    # Drop the staged rows that lost first: the delete then matches on the key alone, which
    # lets PostgreSQL/Redshift use the mart's key index (a version test across the join would
    # force a scan of the whole mart).
    conn.execute(sa.text(stmts["merge/drop_superseded.sql"]))
    # the mart is judged empty (or not) before the delete, which could empty it for this
    # transaction alone
    with backend.filling(conn, ctx.names(table).mart, -1 if staged is None else staged):
        conn.execute(sa.text(stmts["merge/delete_replaced.sql"]))
        merged = conn.execute(sa.text(stmts["merge/insert.sql"])).rowcount
    conn.execute(sa.text(stmts["merge/drop_stage.sql"]))
    ctx.control.mark_merged(conn, batch_id, max(merged or 0, 0), ctx.now())
    return max(merged or 0, 0)
