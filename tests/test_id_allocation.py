"""max+1 ids on PostgreSQL: two writers allocating at once take turns (no duplicate id)."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from ot_core.config import load_config
from ot_core.db.connect import open_database
from ot_core.jobs import records
from ot_core.timeutil import utcnow


def test_concurrent_job_run_rows_get_distinct_ids(pg_url):
    cfg = load_config()
    db = open_database("warehouse", pg_url)
    records.start_run(db, cfg, "warmup", {}, utcnow(), "x")  # creates the table
    ids: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def start(i):
        try:
            mine = open_database("warehouse", pg_url)
            barrier.wait()
            ids.append(records.start_run(mine, cfg, f"job{i}", {}, utcnow(), "x"))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(ids) == [2, 3, 4, 5]
    eng = sa.create_engine(pg_url)
    with eng.connect() as c:
        n = c.execute(sa.text("SELECT COUNT(DISTINCT run_id) FROM settlement_ctl.ot_job_runs")).scalar()
    eng.dispose()
    assert n == 5
