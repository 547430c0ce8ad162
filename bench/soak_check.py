"""The soak's final check: every table against the source, two independent ways.

The conservation invariant from the library (every extracted key in exactly one of mart or
history, with its latest content; no key the source lacks; no old mart row without an open
exception), and ``ot compare --json`` run as a command, per table.
"""

from __future__ import annotations

import importlib
import json
import os
from datetime import datetime
from pathlib import Path

TABLES = ("ecs_order_info", "uni_tracking_info", "uni_tracking_spath")
COMPARE = {"ecs": "ecs_order_info", "uti": "uni_tracking_info", "uts": "uni_tracking_spath"}


def first_module(*names: str):
    """The first importable of ``names``: the package's modules are being regrouped."""
    for n in names:
        try:
            return importlib.import_module(n)
        except ModuleNotFoundError:
            continue
    raise ModuleNotFoundError(f"none of {names}")


def sabotage(wh, mart_schema: str) -> None:
    """Lose, duplicate and alter one key each in the warehouse, so a run can show that the
    final check finds exactly that (expected: lost 1, duplicated 1, wrong 1; exit 1)."""
    import sqlalchemy as sa

    q = f"{mart_schema}."
    with wh.engine.begin() as c:
        c.execute(sa.text(f"DELETE FROM {q}mart_uni_tracking_info WHERE order_id = "
                          f"(SELECT MAX(order_id) FROM {q}mart_uni_tracking_info)"))
        c.execute(sa.text(f"UPDATE {q}mart_ecs_order_info SET weight_grams = weight_grams + 1 "
                          f"WHERE order_id = (SELECT MAX(order_id) FROM {q}mart_ecs_order_info)"))
        hist = c.execute(sa.text(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = :s AND "
            "table_name LIKE 'hist_uni_tracking_spath_%' ORDER BY table_name"),
            {"s": mart_schema}).scalars().first()
        cols = ", ".join(c.execute(sa.text(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = :s AND "
            "table_name = :t ORDER BY ordinal_position"), {"s": mart_schema, "t": hist}).scalars())
        c.execute(sa.text(f"INSERT INTO {q}{hist} ({cols}) SELECT {cols} FROM "
                          f"{q}mart_uni_tracking_spath WHERE id = "
                          f"(SELECT MAX(id) FROM {q}mart_uni_tracking_spath)"))


def final_check(runner, env: dict[str, str], cfg: Path, as_of: datetime,
                spoil: bool = False) -> dict:
    """Conservation (library) and ``ot compare --json`` (CLI), per table."""
    os.environ.update(env)
    config = importlib.import_module("ot_core.config")
    connect = first_module("ot_core.db.connect", "ot_core.connect")
    cons = first_module("ot_core.quality.conservation", "ot_core.conservation")
    pipeline_cfg = config.load_config(str(cfg))
    src, wh = connect.open_database("source"), connect.open_database("warehouse")
    try:
        if spoil:
            sabotage(wh, pipeline_cfg.schemas.mart)
        rep = cons.check_conservation(src, wh, pipeline_cfg, int(as_of.timestamp()))
    finally:
        src.dispose()
        wh.dispose()
    per = {t: {"checked": rep.checked.get(t, 0), "lost": 0, "duplicated": 0, "wrong": 0,
               "not_in_source": 0, "unexcused_old": 0} for t in TABLES}
    for v in rep.violations:
        t = v.split(" ", 1)[0]
        row = per.setdefault(t, {"lost": 0, "duplicated": 0, "wrong": 0, "not_in_source": 0,
                                 "unexcused_old": 0})
        if " is in 0 places" in v:
            row["lost"] += 1
        elif " places: " in v:
            row["duplicated"] += 1
        elif " differs from the source" in v:
            row["wrong"] += 1
        elif "not in the source" in v:
            row["not_in_source"] += 1
        else:
            row["unexcused_old"] += 1
    compares = {}
    for short, table in COMPARE.items():
        run = runner.run(["compare", "--table", short, "--json", "--config", str(cfg)])
        try:
            d = json.loads(run.stdout.strip().splitlines()[-1])
            compares[table] = {k: d.get(k) for k in ("rows_source", "rows_target", "missing",
                                                      "extra", "changed", "rows_transferred")}
        except (ValueError, IndexError):
            compares[table] = {"error": run.last_line()}
    return {"conservation": per, "violations_sample": rep.violations[:10], "compare": compares}
