"""What happens to rows after the merge: raw trim (and, per DESIGN.md section 7 step 4, the
half-year archive lifecycle of the marts).

Raw trim deletes, per raw table, whole batches that are merged and older than the table's
window on the as_of clock (24h; 48h for ECS). A batch that is not merged blocks the trim of
every later one, so a row can never leave raw before it reached its mart.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .backends import Backend
from .config import PipelineConfig
from .control import Control
from .sql import Renderer
from .warehouse import names


def trim_raw(conn: Connection, cfg: PipelineConfig, backend: Backend, control: Control,
             table: str, as_of: int) -> int:
    window = cfg.table(table).raw_trim_hours * 3600
    first_kept = control.first_kept_batch(conn, table, as_of - window)
    if first_kept is None:
        return 0
    r = Renderer(backend)
    sql = r.render("raw/trim.sql", raw=names(cfg, backend, table).raw)
    deleted = conn.execute(sa.text(sql), {"first_kept_batch": first_kept}).rowcount
    return max(deleted or 0, 0)
