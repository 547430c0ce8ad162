"""Raw SQL from a notebook cell, on the workbench's read-only session.

An analyst who types a query (or pastes one) gets its rows; a statement that would write
is refused by the database (a READ ONLY session, and the analyst role's grants beneath it:
docs/roles.md) and that refusal reads as one line, not a driver traceback."""

from __future__ import annotations

from typing import Any

import pandas as pd
import sqlalchemy as sa

from ot_core.errors import UsageError, first_line
from ot_core.secrets import redact
from ot_core.workbench.explore import Workbench


def query(wb: Workbench, sql: str, **params: Any) -> pd.DataFrame:
    """The rows of one statement, values bound from ``params`` (``:name`` in ``sql``)."""
    try:
        with wb.db.engine.connect() as conn:
            res = conn.execute(sa.text(sql).bindparams(**params))
            return pd.DataFrame(res.all() if res.returns_rows else [],
                                columns=list(res.keys()) if res.returns_rows else [])
    except sa.exc.DBAPIError as e:
        if not wb.db.backend.refused_write(e):
            raise
        raise UsageError(
            f"the workbench is read-only: the warehouse refused this statement "
            f"({redact(first_line(e))}); loading, merging and repairing are the pipeline's "
            "(ot cycle, ot repair), resolving an exception is the triage's") from None
    finally:
        wb.db.dispose()
