"""Statement timer for bench/scale.py, loaded into every child process it starts.

``bench/scale.py`` puts this directory on PYTHONPATH of the ``ot`` processes it runs (and so
of the Jupyter kernels ``ot run`` starts, which inherit the environment). When
``OT_BENCH_STMT_LOG`` names a file, every statement any SQLAlchemy engine executes is timed
with the engine events and appended to it as one tab-separated line: job, backend, seconds,
the statement's first 160 characters. Nothing is recorded without the variable.
"""

from __future__ import annotations

import os
import time

_LOG = os.environ.get("OT_BENCH_STMT_LOG")

if _LOG:
    import sqlalchemy as _sa

    _JOB = os.environ.get("OT_BENCH_JOB", "?")

    @_sa.event.listens_for(_sa.engine.Engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        conn.info.setdefault("_bench_t", []).append(time.perf_counter())

    @_sa.event.listens_for(_sa.engine.Engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        seconds = time.perf_counter() - conn.info["_bench_t"].pop()
        head = " ".join(statement.split())[:160]
        with open(_LOG, "a", encoding="utf-8") as f:  # noqa: PTH123
            f.write(f"{_JOB}\t{conn.engine.url.get_backend_name()}\t{seconds:.4f}\t{head}\n")
