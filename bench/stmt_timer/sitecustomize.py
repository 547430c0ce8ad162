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

# With ``OT_BENCH_MEM_LOG`` naming a file as well, each statement's line there also carries
# the process's resident memory when it began and the peak while it ran (sampled every
# 50 ms), and the growth between statements (the Python side: reading, converting) is its
# own line: what finds the step whose memory follows the data's size.
_MEM = os.environ.get("OT_BENCH_MEM_LOG")

if _LOG and _MEM:
    import threading as _threading

    import psutil as _psutil

    _proc = _psutil.Process()
    _peak = [0]
    _last = [_proc.memory_info().rss, time.perf_counter()]

    def _sample() -> None:
        while True:
            _peak[0] = max(_peak[0], _proc.memory_info().rss)
            time.sleep(0.05)

    _threading.Thread(target=_sample, daemon=True, name="ot-bench-mem").start()

    def _mem_line(kind: str, seconds: float, start: int, peak: int, head: str) -> None:
        with open(_MEM, "a", encoding="utf-8") as f:  # noqa: PTH123
            f.write(f"{_JOB}\t{kind}\t{seconds:.2f}\t{start >> 20}\t{peak >> 20}\t{head}\n")

    @_sa.event.listens_for(_sa.engine.Engine, "before_cursor_execute")
    def _mem_before(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        now, rss = time.perf_counter(), _proc.memory_info().rss
        _mem_line("between", now - _last[1], _last[0], max(_peak[0], rss), "")
        _peak[0] = rss
        conn.info.setdefault("_bench_m", []).append((rss, now))

    @_sa.event.listens_for(_sa.engine.Engine, "after_cursor_execute")
    def _mem_after(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        rss0, t0 = conn.info["_bench_m"].pop()
        now, rss = time.perf_counter(), _proc.memory_info().rss
        _mem_line("statement", now - t0, rss0, max(_peak[0], rss), " ".join(statement.split())[:160])
        _peak[0] = rss
        _last[:] = [rss, now]
