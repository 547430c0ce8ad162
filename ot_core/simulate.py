"""A synthetic, reproducible order-tracking source (docs/contracts.md#source-contract).

Every order's whole life is drawn from a random stream seeded by ``(seed, creation day)``,
so the source at any instant is a pure function of the seed: ``simulate(until=t)`` on an
empty database and a chain of shorter advances ending at ``t`` write the same rows. An
advance from ``t0`` to ``t1`` applies exactly the events with times in ``[t0, t1)``:
new orders, status updates (rows updated in place, some twice within one second), and path
events inserted in arrival order (some late, out of order, or sharing a pathTime). A few
orders get one more status update about seven months later, which reactivates them after
the warehouse archived them.

Histories are coherent: each order's path events tell one journey in order (label created,
picked up, hops between facilities, out for delivery, delivered; a few returned), and its
status changes at the pathTime of the event that causes it, so no order is "Label created"
beside departure scans or "Delivered" before its delivery scan. Only the late reactivation is
a status update without a scan.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import sqlalchemy as sa

from ot_core.contract import CONTRACTS, ECS, PATH_LABELS, PATH_STATUS, SPATH, STATUS_LABELS, UTI
from ot_core.db.connect import Database, connect_with_retries, open_database
from ot_core.errors import TerminalError, UsageError, first_line, is_transient
from ot_core.secrets import redact
from ot_core.timeutil import from_epoch, iso, parse_as_of, to_epoch

log = logging.getLogger("ot.simulate")

DAY = 86400
HORIZON_DAYS = 30  # every ordinary event happens within 30 days of the order's creation
REACTIVATION_MIN, REACTIVATION_MAX = 190, 215  # days after creation
STATE_TABLE = "ot_sim_state"
N_PARTNERS = 320
CHANNELS = np.array(["STD", "EXP", "ECO", "PRM", "BULK"])
COUNTRIES = np.array(["US", "GB", "DE", "FR", "ES", "IT", "AU", "CA", "NL", "SE", "JP", "MX"])
CURRENCIES = np.array(["USD", "GBP", "EUR", "EUR", "EUR", "EUR", "AUD", "CAD", "EUR", "SEK", "JPY", "MXN"])
CARRIERS = np.array(["UPS", "DHL", "FEDEX", "USPS", "ROYALMAIL", "YUN", "4PX"])
STATUS_EVENTS = STATUS_LABELS  # a status update's latest_event text is the status label
PATH_CODES = np.array(list(PATH_LABELS))  # CREATED ... DLV, RETURN (contract.PATH_LABELS)
STAGE_STATUS = np.array([PATH_STATUS[c] for c in PATH_CODES])  # the status after each code
RETURNED = 0.03  # share of parcels returned to sender instead of delivered
_CODE = {c: i for i, c in enumerate(PATH_CODES)}
# the hops between pickup and the last mile, repeated as long as a journey needs
HOPS = np.array([_CODE[c] for c in ("DEPART", "TRANSIT", "ARRIVE", "CUSTOMS")])
CITIES = np.array(["Shenzhen", "Hong Kong", "Leipzig", "Chicago", "London", "Paris", "Madrid",
                   "Sydney", "Toronto", "Los Angeles", "Amsterdam", "Tokyo", "Mexico City"])


@dataclass
class Day:
    """One creation day's orders and their complete, deterministic futures."""

    order_id: np.ndarray
    add_time: np.ndarray
    partner_id: np.ndarray
    ecs_cols: dict[str, np.ndarray]
    # status updates (flattened): owner index, time, status
    upd_owner: np.ndarray
    upd_time: np.ndarray
    upd_status: np.ndarray
    # path events (flattened): owner index, pathTime, insert time, code index
    ev_owner: np.ndarray
    ev_path_time: np.ndarray
    ev_add_time: np.ndarray
    ev_code: np.ndarray
    tracking_no: np.ndarray
    carrier: np.ndarray


def partner_weights(n: int = N_PARTNERS) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** 1.1  # skewed: the top partners dominate
    return w / w.sum()


def _day(seed: int, day: int, orders_per_day: int) -> Day:
    rng = np.random.default_rng([seed, day, 0])
    n = int(np.random.default_rng([seed, day, 2]).poisson(orders_per_day)) if orders_per_day else 0
    start = day * DAY
    order_id = np.int64(day) * 1_000_000 + np.arange(n, dtype=np.int64) + 1
    add_time = start + np.sort(rng.integers(0, DAY, n))
    partner_id = 1000 + rng.choice(N_PARTNERS, size=n, p=partner_weights())
    store = partner_id * 10 + rng.integers(0, 5, n)
    ecs = {
        "store_id": np.where(rng.random(n) < 0.05, -1, store),
        "shipping_channel": CHANNELS[rng.integers(0, len(CHANNELS), n)],
        "ci": rng.integers(0, len(COUNTRIES), n),
        "weight_grams": rng.integers(50, 30000, n),
        "declared_cents": rng.integers(100, 500_000, n),
    }
    # path events: ~10 per order, a parcel's journey in order (label, pickup, hops between
    # facilities, out for delivery, delivered; 3% returned instead). Most arrive within
    # minutes, some hours or days late; 2% share the previous event's pathTime.
    m = 4 + rng.poisson(6, n)
    ev_owner = np.repeat(np.arange(n), m)
    egaps = rng.exponential(16 * 3600, ev_owner.size).astype(np.int64) + 1
    efirst = np.cumsum(m) - m
    ecum = np.cumsum(egaps)
    ebase = np.repeat(ecum[efirst] - egaps[efirst], m)
    ev_path_time = np.repeat(add_time, m) + 60 + (ecum - ebase)
    dup = rng.random(ev_owner.size) < 0.02  # two events of one order at the same pathTime
    shifted = np.r_[ev_path_time[:1], ev_path_time[:-1]]
    same_owner = np.r_[False, ev_owner[1:] == ev_owner[:-1]]
    ev_path_time = np.where(dup & same_owner, shifted, ev_path_time)
    r = rng.random(ev_owner.size)
    delay = np.where(r < 0.90, rng.integers(0, 600, ev_owner.size),
                     np.where(r < 0.98, rng.integers(3600, 12 * 3600, ev_owner.size),
                              rng.integers(DAY, 5 * DAY, ev_owner.size)))
    ev_path_time = np.minimum(ev_path_time, add_time[ev_owner] + (HORIZON_DAYS - 6) * DAY)
    ev_add_time = ev_path_time + delay
    ev_code = _journey(np.arange(ev_owner.size) - np.repeat(efirst, m), np.repeat(m, m),
                       np.repeat(rng.random(n) < RETURNED, m))
    # status updates follow the journey: one at the pathTime of every event that moves the
    # parcel to another status, so the status never runs ahead of (or behind) its scans;
    # two events in one second moving it twice make two updates in one second
    ev_status = STAGE_STATUS[ev_code]
    moved = np.ones(ev_status.size, dtype=bool)  # an empty day moves nothing
    moved[1:] = (ev_status[1:] != ev_status[:-1]) | ~same_owner[1:]
    upd_owner = ev_owner[moved]
    upd_time = ev_path_time[moved]
    upd_status = ev_status[moved]
    # ~0.3% of orders are updated again ~7 months later (reactivation after archive)
    late = np.flatnonzero(np.random.default_rng([seed, day, 1]).random(n) < 0.003)
    if late.size:
        late_t = add_time[late] + np.random.default_rng([seed, day, 3]).integers(
            REACTIVATION_MIN * DAY, REACTIVATION_MAX * DAY, late.size)
        upd_owner = np.r_[upd_owner, late]
        upd_time = np.r_[upd_time, late_t]
        upd_status = np.r_[upd_status, np.full(late.size, 50)]
    upd_time = np.minimum(upd_time, add_time[upd_owner] + REACTIVATION_MAX * DAY)
    tracking_no = np.char.add("TN", order_id.astype(str))
    carrier = CARRIERS[rng.integers(0, len(CARRIERS), n)]
    return Day(order_id, add_time, partner_id, ecs, upd_owner, upd_time, upd_status,
               ev_owner, ev_path_time, ev_add_time, ev_code, tracking_no, carrier)


PATH_INFO = np.array([PATH_LABELS[c] for c in PATH_CODES])


def _journey(pos: np.ndarray, m: np.ndarray, returned: np.ndarray) -> np.ndarray:
    """The code index of event ``pos`` (0-based) of a journey of ``m`` events (m >= 4):
    label, pickup, hops, then out for delivery and delivered, or a last hop and returned."""
    code = HOPS[np.maximum(pos - 2, 0) % len(HOPS)]
    code = np.where(pos == 0, _CODE["CREATED"], np.where(pos == 1, _CODE["PICKUP"], code))
    last = pos == m - 1
    code = np.where((pos == m - 2) & ~returned, _CODE["OUTDLV"], code)
    return np.where(last, np.where(returned, _CODE["RETURN"], _CODE["DLV"]), code)

# Row builders are vectorised: whole columns come out of numpy with one ``tolist()`` each
# and are zipped into the tuples the driver's executemany wants (a month at 20K orders a day
# is ~6M rows; a per-row Python loop over numpy scalars costs more than the inserts).


def _ecs_rows(d: Day, sel: np.ndarray) -> list[tuple]:
    e = d.ecs_cols
    ids = d.order_id[sel]
    store = e["store_id"][sel]
    ci = e["ci"][sel]
    cents = e["declared_cents"][sel].tolist()
    return list(zip(
        ids.tolist(), np.char.add("SN", ids.astype(str)).tolist(), d.partner_id[sel].tolist(),
        [None if v < 0 else v for v in store.tolist()], e["shipping_channel"][sel].tolist(),
        COUNTRIES[ci].tolist(), e["weight_grams"][sel].tolist(),
        [f"{c // 100}.{c % 100:02d}" for c in cents], CURRENCIES[ci].tolist(),
        d.add_time[sel].tolist(), strict=True))


def _uti_state(d: Day, owners: np.ndarray, t1: int) -> list[tuple]:
    """Current uni_tracking_info row of each owner as of t1 (latest update before t1)."""
    idx = np.flatnonzero((d.upd_time < t1) & np.isin(d.upd_owner, owners))
    # the last update per owner in array order (times are non-decreasing per owner)
    rev = idx[::-1]
    _, pos = np.unique(d.upd_owner[rev], return_index=True)
    last = np.sort(rev[pos])
    o = d.upd_owner[last]
    status = d.upd_status[last].tolist()
    return list(zip(d.order_id[o].tolist(), d.tracking_no[o].tolist(), d.carrier[o].tolist(),
                    status, [STATUS_EVENTS[s] for s in status], d.upd_time[last].tolist(),
                    strict=True))


def _spath_columns(d: Day, sel: np.ndarray) -> list[np.ndarray]:
    """The insert columns of path events ``sel`` (everything but the auto-assigned id)."""
    owner, code = d.ev_owner[sel], d.ev_code[sel]
    return [d.order_id[owner], d.ev_path_time[sel], PATH_CODES[code], PATH_INFO[code],
            CITIES[(owner + code) % len(CITIES)], d.ev_add_time[sel]]


@dataclass
class SimulationResult:
    start: str
    until: str
    orders: int
    uti_upserts: int
    path_events: int
    seconds: float


@dataclass
class SimulationState:
    """Where a simulated source stands: its seed, rate and the span written so far."""

    seed: int
    orders_per_day: int
    start: int
    until: int


def ensure_source(db: Database, conn: sa.Connection | None = None) -> None:
    md = sa.MetaData()
    for c in CONTRACTS.values():
        db.backend.source_table(c, md)
    sa.Table(STATE_TABLE, md, sa.Column("k", sa.String(32), primary_key=True),
             sa.Column("v", sa.String(64), nullable=False))
    if conn is None:
        md.create_all(db.engine)
    else:
        md.create_all(conn)
        conn.commit()


def _state(conn) -> dict[str, str]:
    return {r[0]: r[1] for r in conn.execute(sa.text(f"SELECT k, v FROM {STATE_TABLE}"))}


def simulation_state(db: Database) -> SimulationState | None:
    """The state ``simulate`` left in ``db`` (None: a source it never wrote)."""
    with _connected(db) as conn:
        if not sa.inspect(conn).has_table(STATE_TABLE):
            return None
        st = _state(conn)
    if not st:
        return None
    return SimulationState(int(st["seed"]), int(st["orders_per_day"]), int(st["start"]),
                           int(st["until"]))


def _connected(db: Database) -> sa.Connection:
    """A first connection to the source, failing as one line that names it: a transient
    failure is retried briefly, a refused login or grant says what to check (no driver
    traceback)."""
    return connect_with_retries(db, retries=2, backoff=0.5)


def simulate(
    until: str | datetime | None = None, *, seed: int = 7, start: str | datetime | None = None,
    orders_per_day: int = 20_000, days: int = 30, source: Database | str | None = None,
    progress: Callable[[int, int], None] | None = None, into_existing: bool = False,
) -> SimulationResult:
    """Write (or advance) the synthetic source up to ``until``. A source that holds orders
    the simulator did not write is someone's data: refused unless ``into_existing``."""
    args = (until, seed, start, orders_per_day, days, progress, into_existing)
    if isinstance(source, Database):
        return _refused_as_one_line(source, *args)
    db = open_database("source", source)
    try:
        return _refused_as_one_line(db, *args)
    finally:
        db.dispose()


def foreign_orders(conn: sa.Connection) -> bool:
    """The source holds orders, and no record that ``simulate`` wrote them."""
    inspect = sa.inspect(conn)
    if not inspect.has_table(ECS.name):
        return False
    if inspect.has_table(STATE_TABLE) and _state(conn):
        return False
    found = conn.execute(sa.select(sa.literal(1)).select_from(sa.table(ECS.name)).limit(1))
    return found.first() is not None


def _refused_as_one_line(db: Database, *args) -> SimulationResult:
    """A statement the source refuses (a missing grant, a read-only user) is one terminal
    line naming the source and what to check, like a cycle's."""
    try:
        return _simulate(db, *args)
    except sa.exc.DBAPIError as e:
        if is_transient(e):
            raise
        raise TerminalError(
            f"the source {db.display} refused the simulation ({redact(first_line(e))}); check "
            "the user, password and grants of OT_SOURCE_URL (it must create and write the "
            "source tables)") from None


def _simulate(db: Database, until, seed: int, start, orders_per_day: int, days: int,
              progress, into_existing: bool) -> SimulationResult:
    import time

    t_start = time.perf_counter()
    t1 = to_epoch(parse_as_of(until))
    with _connected(db) as conn:
        if not into_existing and foreign_orders(conn):
            raise UsageError(
                f"the source {db.display} holds orders that `ot simulate` did not write: it "
                "writes synthetic orders only into a source of its own. Point OT_SOURCE_URL "
                "at an empty database, or pass --into-existing to add them to this one on "
                "purpose. Nothing was written.")
        ensure_source(db, conn)
        st = _state(conn)
    if st:
        if int(st["seed"]) != seed:
            raise UsageError(f"the source was simulated with seed {st['seed']}, not {seed}; "
                             "use the same seed to advance it, or a new source database")
        orders_per_day = int(st["orders_per_day"])
        t0 = int(st["until"])
        origin = int(st["start"])
        if t1 <= t0:
            raise UsageError(f"the source is already simulated up to {iso(from_epoch(t0))}; "
                             "--until must be later")
    else:
        t0 = to_epoch(parse_as_of(start)) if start is not None else t1 - days * DAY
        origin = t0
        if t1 <= t0:
            raise UsageError("--until must be after --start")
    counts = advance(db, seed, orders_per_day, origin, t0, t1, progress=progress)
    with db.engine.begin() as conn:
        conn.execute(sa.text(f"DELETE FROM {STATE_TABLE}"))
        for k, v in {"seed": seed, "orders_per_day": orders_per_day, "start": origin, "until": t1}.items():
            conn.execute(sa.text(f"INSERT INTO {STATE_TABLE} (k, v) VALUES (:k, :v)"), {"k": k, "v": str(v)})
    return SimulationResult(iso(from_epoch(t0)), iso(from_epoch(t1)), *counts,
                            round(time.perf_counter() - t_start, 2))


def advance(db: Database, seed: int, orders_per_day: int, origin: int, t0: int, t1: int,
            progress: Callable[[int, int], None] | None = None) -> tuple[int, int, int]:
    """Apply the events with times in [t0, t1) to the source, a day of creation at a time."""
    first_day = max(origin // DAY, (t0 // DAY) - REACTIVATION_MAX - 1)
    last_day = (t1 - 1) // DAY
    n_orders = n_upd = n_ev = 0
    b = db.backend
    ecs_cols, uti_cols = ECS.column_names, UTI.column_names
    sp_cols = [c for c in SPATH.column_names if c != "id"]
    spath_parts: list[tuple[np.ndarray, np.ndarray, list[np.ndarray]]] = []
    total = last_day - first_day + 1
    with db.engine.begin() as conn:
        b.prepare_bulk_write(conn)
        for step, day in enumerate(range(first_day, last_day + 1)):
            if day * DAY < origin - DAY:
                continue
            recent = day >= (t0 // DAY) - HORIZON_DAYS - 1
            if not recent and not _may_reactivate(seed, day, t0, t1):
                continue
            d = _day(seed, day, orders_per_day)
            valid = d.add_time >= origin
            new = np.flatnonzero(valid & (d.add_time >= t0) & (d.add_time < t1))
            n_orders += b.executemany(conn, None, ECS.name, ecs_cols, _ecs_rows(d, new))
            in_win = valid[d.upd_owner] & (d.upd_time >= t0) & (d.upd_time < t1)
            touched = np.unique(d.upd_owner[in_win])
            if touched.size:
                first_upd = np.full(len(d.order_id), np.iinfo(np.int64).max)
                np.minimum.at(first_upd, d.upd_owner, d.upd_time)
                rows = _uti_state(d, touched, t1)
                exists = {int(d.order_id[o]) for o in touched.tolist() if first_upd[o] < t0}
                ins = [r for r in rows if r[0] not in exists]
                upd = [r for r in rows if r[0] in exists]
                b.executemany(conn, None, UTI.name, uti_cols, ins)
                _update_uti(conn, b, upd)
                n_upd += len(rows)
            ev = np.flatnonzero(valid[d.ev_owner] & (d.ev_add_time >= t0) & (d.ev_add_time < t1))
            spath_parts.append((d.ev_add_time[ev], ev, _spath_columns(d, ev)))
            if progress:
                progress(step + 1, total)
        # path events are inserted in arrival order, so ids follow insert time; ties by the
        # event's index within its day, then by creation day (a stable, seed-only order)
        if spath_parts:
            add = np.concatenate([p[0] for p in spath_parts])
            within = np.concatenate([p[1] for p in spath_parts])
            order = np.lexsort((np.arange(add.size), within, add))
            cols = [np.concatenate([p[2][c] for p in spath_parts])[order]
                    for c in range(len(sp_cols))]
            for i in range(0, add.size, 100_000):
                part = [c[i:i + 100_000].tolist() for c in cols]
                n_ev += b.executemany(conn, None, SPATH.name, sp_cols, list(zip(*part, strict=True)))
    return n_orders, n_upd, n_ev


def _may_reactivate(seed: int, day: int, t0: int, t1: int) -> bool:
    lo, hi = day * DAY + REACTIVATION_MIN * DAY, (day + 1) * DAY + REACTIVATION_MAX * DAY
    return hi >= t0 and lo < t1


def _update_uti(conn, backend, rows: list[tuple]) -> None:
    if not rows:
        return
    q = backend.quote
    cols = [c for c in UTI.column_names if c != "order_id"]
    mark = "?" if backend.dialect.paramstyle == "qmark" else "%s"
    sets = ", ".join(f"{q(c)} = {mark}" for c in cols)
    sql = f"UPDATE {q(UTI.name)} SET {sets} WHERE {q('order_id')} = {mark}"
    cur = conn.connection.driver_connection.cursor()
    try:
        cur.executemany(sql, [r[1:] + (r[0],) for r in rows])
    finally:
        cur.close()
