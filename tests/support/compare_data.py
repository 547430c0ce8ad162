"""ECS rows with awkward values, written to any engine, for the comparison tests."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from ot_core.contract import ECS
from ot_core.db.schema import keyed_table
from ot_core.engines import backend_for

TRICKY = ["a|b", "a~pb", "~N", "x|", "|", "é|ü", "", "plain"]


def ecs_rows(n: int, start: int = 1000) -> list[dict]:
    rows = []
    for i in range(n):
        rows.append({
            "order_id": start + i * 3,  # gaps: segments are key ranges, not row numbers
            "order_sn": TRICKY[i % len(TRICKY)] + f"-{i}",
            "partner_id": i % 17,
            "store_id": None if i % 5 == 0 else i % 101,
            "shipping_channel": None if i % 7 == 0 else ("S|T" if i % 3 == 0 else "STD"),
            "consignee_country": "US" if i % 2 else "DE",
            "weight_grams": None if i % 11 == 0 else 100 + i,
            "declared_value": None if i % 13 == 0 else Decimal(f"{i % 500}.{i % 100:02d}"),
            "currency": "USD",
            "add_time": 1_780_000_000 + i * 60,
        })
    return rows


def write_source(url: str, rows: list[dict]) -> None:
    eng = sa.create_engine(url)
    md = sa.MetaData()
    t = backend_for(eng).source_table(ECS, md)
    with eng.begin() as c:
        md.create_all(c)
        c.execute(sa.insert(t), rows)
    eng.dispose()


def write_warehouse(url: str, schema: str, name: str, rows: list[dict]) -> None:
    from ot_core.db.schema import ddl
    from ot_core.engines import backend_for

    eng = sa.create_engine(url)
    be = backend_for(eng)
    t = keyed_table(ECS, sa.MetaData(), schema, name, "mart", be)
    with eng.begin() as c:
        be.create_schema(c, schema)
        c.exec_driver_sql(ddl(t, be))
        c.execute(sa.insert(t), [dict(r, _raw_id=i + 1, _batch_id=1) for i, r in enumerate(rows)])
    eng.dispose()


def inject(url: str, relation: str, rows: list[dict]) -> dict:
    """Known differences in the copy ``relation``; returns what the report must count."""
    by = {r["order_id"]: r for r in rows}
    keys = sorted(by)
    eng = sa.create_engine(url)
    with eng.begin() as c:
        for k in (keys[5], keys[900], keys[-1]):  # missing
            c.execute(sa.text(f"DELETE FROM {relation} WHERE order_id = :k"), {"k": k})
        extra = dict(rows[1], order_id=keys[-1] + 1, order_sn="new")  # extra, past the end
        extra2 = dict(rows[2], order_id=keys[10] + 1, order_sn="new2")  # extra, in a gap
        cols = ", ".join(extra) + ", _raw_id, _batch_id"
        marks = ", ".join(f":{k}" for k in extra) + ", :_raw_id, :_batch_id"
        for e in (extra, extra2):
            c.execute(sa.text(f"INSERT INTO {relation} ({cols}) VALUES ({marks})"),
                      dict(e, _raw_id=99999, _batch_id=2))
        upd = f"UPDATE {relation} SET {{col}} = :v WHERE order_id = :k"
        c.execute(sa.text(upd.format(col="shipping_channel")), {"v": "EXP", "k": keys[20]})
        c.execute(sa.text(upd.format(col="shipping_channel")), {"v": "EXP", "k": keys[1500]})
        k_null = next(k for k in keys[30:] if by[k]["store_id"] is not None)
        c.execute(sa.text(upd.format(col="store_id")), {"v": None, "k": k_null})  # NULL vs value
        k_dec = next(k for k in keys[40:] if by[k]["declared_value"] is not None)
        c.execute(sa.text(upd.format(col="declared_value")),
                  {"v": by[k_dec]["declared_value"] + Decimal("0.01"), "k": k_dec})
        # the separator moves between two fields: same concatenation without escaping
        k_sep = keys[50]
        sn, ch = by[k_sep]["order_sn"], by[k_sep]["shipping_channel"] or ""
        c.execute(sa.text(f"UPDATE {relation} SET order_sn = :a, shipping_channel = :b "
                          "WHERE order_id = :k"), {"a": sn + "|" + ch[:1], "b": ch[1:], "k": k_sep})
    eng.dispose()
    return {"missing": 3, "extra": 2, "changed": 5,
            "changed_columns": {"shipping_channel": 3, "store_id": 1, "declared_value": 1,
                                "order_sn": 1}}
