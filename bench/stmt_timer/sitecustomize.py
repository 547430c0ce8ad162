"""Statement timer for bench/scale.py, loaded into every child process it starts.

``bench/scale.py`` puts this directory on PYTHONPATH of the ``ot`` processes it runs (and so
of the Jupyter kernels ``ot run`` starts, which inherit the environment). When
``OT_BENCH_STMT_LOG`` names a file, every statement any SQLAlchemy engine executes is timed
with the engine events and appended to it as one tab-separated line: job, backend, seconds,
the statement's first 160 characters. Nothing is recorded without the variable.

With ``OT_BENCH_EXPLAIN=1`` as well, every PostgreSQL SELECT / INSERT / UPDATE / DELETE that
names a mart is first EXPLAINed (plain EXPLAIN: planned, not run, same parameters and the
same transaction settings) and a plan that reads a mart by sequential scan is logged as a
line whose backend column is ``seqscan`` (what finds a statement whose cost follows the
mart: a diagnostic, it adds a round trip per statement).
"""

from __future__ import annotations

import os
import time

_LOG = os.environ.get("OT_BENCH_STMT_LOG")

if _LOG:
    import sqlalchemy as _sa

    _JOB = os.environ.get("OT_BENCH_JOB", "?")

    _EXPLAIN = os.environ.get("OT_BENCH_EXPLAIN") == "1"
    _VERBS = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")

    def _explain(conn, cursor, statement, parameters) -> None:  # noqa: ANN001
        if (executemany_guard(statement) or conn.engine.url.get_backend_name() != "postgresql"
                or "mart_" not in statement):
            return
        cursor.execute("EXPLAIN " + statement, parameters)
        plan = "\n".join(r[0] for r in cursor.fetchall())
        scans = sorted({ln.split("Seq Scan on ", 1)[1].split()[0] for ln in plan.splitlines()
                        if "Seq Scan on mart_" in ln})
        if scans:
            head = " ".join(statement.split())[:300]
            with open(_LOG, "a", encoding="utf-8") as f:  # noqa: PTH123
                f.write(f"{_JOB}\tseqscan\t0\t{','.join(scans)} <- {head}\n")

    def executemany_guard(statement: str) -> bool:
        return not statement.lstrip().upper().startswith(_VERBS)

    @_sa.event.listens_for(_sa.engine.Engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        if _EXPLAIN and not executemany:
            _explain(conn, cursor, statement, parameters)
        conn.info.setdefault("_bench_t", []).append(time.perf_counter())

    @_sa.event.listens_for(_sa.engine.Engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        seconds = time.perf_counter() - conn.info["_bench_t"].pop()
        head = " ".join(statement.split())[:160]
        with open(_LOG, "a", encoding="utf-8") as f:  # noqa: PTH123
            f.write(f"{_JOB}\t{conn.engine.url.get_backend_name()}\t{seconds:.4f}\t{head}\n")
