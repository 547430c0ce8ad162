"""Data for bench/cycle.py: marts generated inside the warehouse, deltas written to a source.

The marts are filled with ``INSERT ... SELECT`` over the engine's own row generator, so a
10M-row mart costs the engine's insert speed, not Python's. Values are bound parameters;
the only per-engine piece is the generator's name (``range`` vs ``generate_series``).
Every key is a pure function of the plan, so deltas can update existing orders and new
keys never collide with seeded ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from ot_core.config import PipelineConfig
from ot_core.contract import CONTRACTS
from ot_core.db.connect import Database
from ot_core.db.schema import names
from ot_core.engines import backend_for

PART_RAW_OFFSET = 10**12  # _raw_id of the second seeded half: never equal to a delta's
NEW_ORDER_BASE = 5_000_000_000  # keys of orders created by the deltas
NEW_EVENT_BASE = 50_000_000_000  # ids of path events created by the deltas

# Inclusive integer ranges, bound as :<name>_lo / :<name>_hi.
_GENERATOR = {
    "duckdb": "range(CAST(:{n}_lo AS BIGINT), CAST(:{n}_hi AS BIGINT) + 1)",
    "postgresql": "generate_series(CAST(:{n}_lo AS BIGINT), CAST(:{n}_hi AS BIGINT))",
}


@dataclass
class SeedPlan:
    orders: int  # per part
    events_per_order: int
    t0: int  # seeded rows end before this epoch
    span: int  # and start this many seconds before it
    parts: int = 1  # 2 once the mart is doubled

    @property
    def step(self) -> int:
        return max(1, self.span // self.orders)

    def max_raw_id(self, table: str) -> int:
        per_order = self.events_per_order if table == "uni_tracking_spath" else 1
        top = self.orders * self.parts * per_order
        return top + (PART_RAW_OFFSET if self.parts > 1 else 0)


def _cols(wh: Database, table: str) -> str:
    """A mart's column list, quoted for the warehouse."""
    cols = CONTRACTS[table].column_names + ["_raw_id", "_batch_id"]
    return ", ".join(wh.backend.quote(c) for c in cols)


def _targets(wh: Database, cfg: PipelineConfig) -> tuple[dict[str, str], dict[str, int]]:
    """Per table: the qualified mart, and the seed batch id its rows carry (_record_seed)."""
    mart = {t: names(cfg, wh.backend, t).mart for t in cfg.tables}
    return mart, {t: i for i, t in enumerate(cfg.tables, start=1)}


def _execute(wh: Database, statements: list[str], params: dict) -> None:
    with wh.engine.begin() as conn:
        for sql in statements:
            conn.execute(sa.text(sql), params)


def seed_marts(wh: Database, cfg: PipelineConfig, plan: SeedPlan, part: int) -> None:
    """Generate part ``part`` (0 or 1) of every mart: ``plan.orders`` orders and their rows."""
    gen = _GENERATOR[wh.backend.name]
    mart, batch = _targets(wh, cfg)
    first = part * plan.orders + 1
    params = {"o_lo": first, "o_hi": first + plan.orders - 1, "k_lo": 0,
              "k_hi": plan.events_per_order - 1, "first": first, "step": plan.step,
              "t_start": plan.t0 - plan.span + part * (plan.step // 2), "t0": plan.t0,
              "e": plan.events_per_order, "off": PART_RAW_OFFSET * part}
    add = "(CAST(:t_start AS BIGINT) + (o.i - :first) * :step)"
    rows = f"{gen.format(n='o')} AS o(i)"

    statements = [
        (f"INSERT INTO {mart['ecs_order_info']} ({_cols(wh, 'ecs_order_info')}) "
         f"SELECT o.i, 'SN' || CAST(o.i AS VARCHAR(20)), 1000 + o.i % 320, "
         f"(1000 + o.i % 320) * 10 + o.i % 5, 'CH' || CAST(o.i % 5 AS VARCHAR(2)), "
         f"'C' || CAST(o.i % 9 AS VARCHAR(2)), 100 + o.i % 4900, "
         f"CAST((o.i % 100000) * 0.01 AS DECIMAL(12, 2)), 'USD', {add}, o.i + :off, "
         f"{batch['ecs_order_info']} FROM {rows}"),
        (f"INSERT INTO {mart['uni_tracking_info']} ({_cols(wh, 'uni_tracking_info')}) "
         f"SELECT o.i, 'TN' || CAST(o.i AS VARCHAR(20)), 'UPS', 40, 'Delivered', "
         f"LEAST({add} + 86400, CAST(:t0 AS BIGINT) - 1), o.i + :off, "
         f"{batch['uni_tracking_info']} FROM {rows}"),
        (f"INSERT INTO {mart['uni_tracking_spath']} ({_cols(wh, 'uni_tracking_spath')}) "
         f"SELECT (o.i - 1) * :e + e.k + 1, o.i, "
         f"LEAST({add} + e.k * 3600, CAST(:t0 AS BIGINT) - 2), "
         f"'P' || CAST(e.k AS VARCHAR(4)), 'Event ' || CAST(e.k AS VARCHAR(4)), "
         f"'City' || CAST(o.i % 13 AS VARCHAR(4)), "
         f"LEAST({add} + e.k * 3600 + 60, CAST(:t0 AS BIGINT) - 1), "
         f"(o.i - 1) * :e + e.k + 1 + :off, {batch['uni_tracking_spath']} "
         f"FROM {rows} CROSS JOIN {gen.format(n='k')} AS e(k)"),
    ]
    _execute(wh, statements, params)


def write_delta(src: Database, plan: SeedPlan, window: int, lo: int, hi: int, *,
                new_orders: int, updates: int, events: int) -> None:
    """One cycle's worth of source changes, all stamped inside [lo, hi).

    ``new_orders`` orders (with their first tracking row), ``updates`` tracking rows in all
    (the new orders' plus updates of recent seeded orders) and ``events`` path events.
    """
    md = sa.MetaData()
    t = {c.name: src.backend.source_table(c, md) for c in CONTRACTS.values()}
    width = hi - lo
    n = plan.orders  # updates touch the first part's most recent orders
    ecs, uti, spath = [], [], []
    for j in range(new_orders):
        oid = NEW_ORDER_BASE + window * new_orders + j
        at = lo + j * width // new_orders
        ecs.append({"order_id": oid, "order_sn": f"D{oid}", "partner_id": 1000 + oid % 320,
                    "store_id": (1000 + oid % 320) * 10, "shipping_channel": "STD",
                    "consignee_country": "US", "weight_grams": 500 + j % 700,
                    "declared_value": Decimal(j % 10000).scaleb(-2), "currency": "USD",
                    "add_time": at})
        uti.append({"order_id": oid, "tracking_no": f"TN{oid}", "carrier_code": "UPS",
                    "status": 0, "latest_event": "Label created", "update_time": min(at + 1, hi - 1)})
    existing = max(0, updates - new_orders)
    for j in range(existing):
        oid = (n - 1 - (window * existing + j)) % n + 1
        uti.append({"order_id": oid, "tracking_no": f"TN{oid}", "carrier_code": "UPS",
                    "status": 20 + window % 3, "latest_event": "In transit",
                    "update_time": lo + j * width // existing})
    for j in range(events):
        at = lo + j * width // events
        spath.append({"id": NEW_EVENT_BASE + window * events + j,
                      "order_id": (n - 1 - j % 50_000) % n + 1, "pathTime": at - 30,
                      "path_code": "TRANSIT", "path_info": "Departed facility",
                      "path_location": "Leipzig", "add_time": at})
    with src.engine.begin() as conn:
        ids = [r["order_id"] for r in uti]
        for k in range(0, len(ids), 5000):
            conn.execute(sa.delete(t["uni_tracking_info"])
                         .where(t["uni_tracking_info"].c.order_id.in_(ids[k:k + 5000])))
        for table, rows in (("ecs_order_info", ecs), ("uni_tracking_info", uti),
                            ("uni_tracking_spath", spath)):
            if rows:
                conn.execute(t[table].insert(), rows)


def seed_mysql_source(url: str, orders: int, events_per_order: int, t0: int, span: int) -> int:
    """Fill a MariaDB source with the contract's tables (docs/contracts.md#source-contract)
    through its Sequence engine."""
    eng = sa.create_engine(url)
    md = sa.MetaData()
    for c in CONTRACTS.values():
        backend_for(eng).source_table(c, md)
    step = max(1, span // orders)
    add = "(:t_start + (o.seq - 1) * :step)"
    chunk = 100_000
    # The Sequence engine's table names carry their bounds: integers computed here, int()'d.
    kseq = f"seq_0_to_{int(events_per_order) - 1}"
    with eng.begin() as conn:
        md.create_all(conn)
        for lo in range(1, orders + 1, chunk):
            hi = min(orders, lo + chunk - 1)
            oseq = f"seq_{int(lo)}_to_{int(hi)}"
            p = {"t_start": t0 - span, "step": step, "t0": t0, "e": events_per_order}
            conn.execute(sa.text(
                "INSERT INTO ecs_order_info SELECT o.seq, CONCAT('SN', o.seq), 1000 + o.seq % 320, "
                "(1000 + o.seq % 320) * 10 + o.seq % 5, CONCAT('CH', o.seq % 5), "
                f"CONCAT('C', o.seq % 9), 100 + o.seq % 4900, (o.seq % 100000) * 0.01, 'USD', {add} "
                f"FROM {oseq} o"), p)
            conn.execute(sa.text(
                "INSERT INTO uni_tracking_info SELECT o.seq, CONCAT('TN', o.seq), 'UPS', 40, "
                f"'Delivered', LEAST({add} + 86400, :t0 - 1) FROM {oseq} o"), p)
            conn.execute(sa.text(
                "INSERT INTO uni_tracking_spath SELECT (o.seq - 1) * :e + e.seq + 1, o.seq, "
                f"LEAST({add} + e.seq * 3600, :t0 - 2), CONCAT('P', e.seq), "
                f"CONCAT('Event ', e.seq), CONCAT('City', o.seq % 13), "
                f"LEAST({add} + e.seq * 3600 + 60, :t0 - 1) FROM {oseq} o CROSS JOIN {kseq} e"), p)
    eng.dispose()
    return orders * (2 + events_per_order)


# Keys of the rows seeded to cross the cutoff: below every seeded key, as auto-increment keys
# of the oldest rows would be (the lifecycle's probes are bounded by key ranges, so a bench
# whose oldest rows had the newest keys would measure a key layout production never has).
BAND_ORDER_BASE = -3_000_000_000
BAND_EVENT_BASE = -30_000_000_000
BAND_RAW_OFFSET = 5 * PART_RAW_OFFSET


def seed_crossing_band(wh: Database, cfg: PipelineConfig, start: int, first: int, count: int,
                       orders_per_window: int, events_per_window: int,
                       key_offset: int = 0) -> None:
    """Rows that cross the cutoff during the timed lifecycle cycles, at the deltas' rate.

    The uniform seed puts about N / 17,500 orders in each 15-minute window; the deltas add
    2,000 orders and 20,000 path events per window. A steady state moves out what comes in,
    so the windows that the timed lifecycle cycles archive (window ``first``, ``first + 2``,
    ... ``count`` of them, counted from ``start``, the cutoff at the seed's end; cycles with
    the lifecycle off run in between) get the deltas' rate of orders (tracking row one second
    later) and path events: each of those cycles archives one window at that rate.
    A second band for the same warehouse needs its own ``key_offset`` (added to the keys).
    """
    gen = _GENERATOR[wh.backend.name]
    mart, batch = _targets(wh, cfg)
    orders, events = count * orders_per_window, count * events_per_window
    params = {"o_lo": 0, "o_hi": orders - 1, "e_lo": 0, "e_hi": events - 1,
              "base": BAND_ORDER_BASE + key_offset, "ebase": BAND_EVENT_BASE + 100 * key_offset,
              "off": BAND_RAW_OFFSET,
              "start": start + first * 900, "po": orders_per_window, "pe": events_per_window,
              "per": max(1, events_per_window // orders_per_window)}

    def at(i: str, per: str) -> str:
        # window first + 2k for the k-th group of `per` rows, spread evenly inside it
        return (f"(CAST(:start AS BIGINT) + 1800 * (({i} - {i} % :{per}) / :{per}) "
                f"+ ({i} % :{per}) * 899 / :{per})")

    add = at("o.i", "po")
    statements = [
        (f"INSERT INTO {mart['ecs_order_info']} ({_cols(wh, 'ecs_order_info')}) "
         f"SELECT :base + o.i, 'SB' || CAST(o.i AS VARCHAR(20)), 1000 + o.i % 320, "
         f"(1000 + o.i % 320) * 10, 'STD', 'US', 500, CAST(12.5 AS DECIMAL(12, 2)), 'USD', "
         f"{add}, :base + o.i + :off, {batch['ecs_order_info']} "
         f"FROM {gen.format(n='o')} AS o(i)"),
        (f"INSERT INTO {mart['uni_tracking_info']} ({_cols(wh, 'uni_tracking_info')}) "
         f"SELECT :base + o.i, 'TB' || CAST(o.i AS VARCHAR(20)), 'UPS', 40, 'Delivered', "
         f"{add}, :base + o.i + :off, {batch['uni_tracking_info']} "
         f"FROM {gen.format(n='o')} AS o(i)"),
        (f"INSERT INTO {mart['uni_tracking_spath']} ({_cols(wh, 'uni_tracking_spath')}) "
         f"SELECT :ebase + e.i, :base + (e.i - e.i % :per) / :per, {at('e.i', 'pe')}, 'DLV', "
         f"'Delivered', 'Leipzig', {at('e.i', 'pe')}, :ebase + e.i + :off, "
         f"{batch['uni_tracking_spath']} FROM {gen.format(n='e')} AS e(i)"),
    ]
    _execute(wh, statements, params)
