"""The synthetic source: reproducible, step-independent, and as awkward as production.

Same seed, same rows; one long advance equals several short ones (on SQLite and on MariaDB);
same-second status updates, path events out of pathTime order, skewed partners.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import uuid
from decimal import Decimal

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from ot_core.contract import CONTRACTS
from ot_core.errors import UsageError
from ot_core.simulate import DAY, _day, simulate

START, UNTIL = "2026-01-01T00:00:00Z", "2026-08-01T00:00:00Z"
STEPS = ["2026-01-03T07:31:12Z", "2026-01-03T07:31:13Z",
         "2026-07-20T12:00:00Z", UNTIL]


def _norm(v):
    if isinstance(v, (float, Decimal)):
        return Decimal(str(v)).quantize(Decimal("0.01"))
    return v


def contents(url: str) -> dict[str, list[tuple]]:
    eng = sa.create_engine(url)
    out = {}
    try:
        with eng.connect() as conn:
            for name, c in CONTRACTS.items():
                cols = ", ".join(eng.dialect.identifier_preparer.quote(x) for x in c.column_names)
                key = ", ".join(c.key)
                out[name] = [tuple(_norm(v) for v in r) for r in
                             conn.execute(sa.text(f"SELECT {cols} FROM {name} ORDER BY {key}"))]
    finally:
        eng.dispose()
    return out


def test_same_seed_same_source_and_another_seed_differs(tmp_path):
    urls = [f"sqlite:///{tmp_path}/{n}.sqlite" for n in ("a", "b", "c")]
    for url, seed in zip(urls, (4, 4, 5), strict=True):
        simulate("2026-03-04T06:00:00Z", start="2026-03-01", orders_per_day=150, seed=seed,
                 source=url)
    a, b, c = (contents(u) for u in urls)
    assert all(a[t] for t in a)
    assert a == b
    assert a["ecs_order_info"] != c["ecs_order_info"]


def test_one_advance_equals_several(pair, tmp_path):
    one = f"sqlite:///{tmp_path}/one.sqlite"
    simulate(UNTIL, start=START, orders_per_day=20, seed=7, source=one)
    simulate(STEPS[0], start=START, orders_per_day=20, seed=7, source=pair.source_url)
    for step in STEPS[1:]:
        simulate(step, seed=7, source=pair.source_url)
    whole, stepped = contents(one), contents(pair.source_url)
    assert {t: len(r) for t, r in whole.items()} == {t: len(r) for t, r in stepped.items()}
    assert whole == stepped  # path event ids included: they follow insert time
    # the span is long enough that some orders were reactivated ~7 months after creation
    created = {r[0]: r[-1] for r in whole["ecs_order_info"]}
    assert any(r[-1] - created[r[0]] > 180 * DAY for r in whole["uni_tracking_info"])


def test_advance_must_move_forward_with_the_same_seed(tmp_path):
    url = f"sqlite:///{tmp_path}/s.sqlite"
    simulate("2026-03-02", start="2026-03-01", orders_per_day=10, seed=1, source=url)
    with pytest.raises(UsageError, match="already simulated up to"):
        simulate("2026-03-01T12:00:00Z", seed=1, source=url)
    with pytest.raises(UsageError, match="seed 1"):
        simulate("2026-03-03", seed=2, source=url)


def test_two_status_updates_in_one_second():
    """Somewhere an order is updated twice within one second, to a different status: the
    tie the warehouse breaks by ``_raw_id``."""
    d = _day(7, 20_000, 2_000)
    same = (d.upd_owner[1:] == d.upd_owner[:-1]) & (d.upd_time[1:] == d.upd_time[:-1])
    changed = same & (d.upd_status[1:] != d.upd_status[:-1])
    assert changed.any()


def test_path_events_arrive_out_of_order(tmp_path):
    url = f"sqlite:///{tmp_path}/s.sqlite"
    simulate("2026-03-06", start="2026-03-01", orders_per_day=100, seed=3, source=url)
    eng = sa.create_engine(url)
    with eng.connect() as conn:
        late = conn.execute(sa.text(
            "SELECT COUNT(*) FROM uni_tracking_spath a JOIN uni_tracking_spath b "
            "ON a.order_id = b.order_id AND a.id < b.id AND a.pathTime > b.pathTime")).scalar()
        days_late = conn.execute(sa.text(
            "SELECT COUNT(*) FROM uni_tracking_spath WHERE add_time - pathTime > 86400")).scalar()
        ids_follow_arrival = conn.execute(sa.text(
            "SELECT COUNT(*) FROM uni_tracking_spath a JOIN uni_tracking_spath b "
            "ON b.id = a.id + 1 AND b.add_time < a.add_time")).scalar()
    eng.dispose()
    assert late > 0 and days_late > 0
    assert ids_follow_arrival == 0


def test_partners_are_skewed_at_production_shape(tmp_path):
    url = f"sqlite:///{tmp_path}/s.sqlite"
    res = simulate("2026-03-02", start="2026-03-01", orders_per_day=20_000, seed=7, source=url)
    eng = sa.create_engine(url)
    with eng.connect() as conn:
        counts = np.array(sorted((r[0] for r in conn.execute(sa.text(
            "SELECT COUNT(*) FROM ecs_order_info GROUP BY partner_id"))), reverse=True))
    eng.dispose()
    print(f"\n1 day at 20K orders/day: {res.orders} orders, {counts.size} partners, "
          f"top 10% hold {counts[: counts.size // 10].sum() / counts.sum():.0%}, {res.seconds} s")
    assert 19_000 < res.orders < 21_000
    assert counts.size >= 300
    assert counts[: counts.size // 10].sum() > 0.4 * counts.sum()


def _simulate_cli(url: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OT_")}
    env["OT_SOURCE_URL"] = url
    return subprocess.run([sys.executable, "-m", "ot_core", "simulate", "--days", "1",
                           "--orders-per-day", "5"], env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.servers
def test_a_refused_login_is_one_line_naming_the_source(mysql_url):
    """As under `ot run`: no driver exception, the URL masked, what to check."""
    res = _simulate_cli(make_url(mysql_url).set(password="not-the-password")
                        .render_as_string(hide_password=False))
    assert res.returncode == 3, res.stderr
    line = res.stderr.strip()
    assert "\n" not in line and "Traceback" not in line and "not-the-password" not in line
    assert line.startswith("ot: error: cannot connect to the source mysql+pymysql://")
    assert ":***@" in line and "1045" in line and "check OT_SOURCE_URL" in line


@pytest.mark.servers
def test_a_missing_grant_is_one_line_naming_the_source(mysql_url):
    url = make_url(mysql_url)
    user, password = f"ot_ro_{uuid.uuid4().hex[:8]}", secrets.token_hex(8)
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE USER '{user}'@'%%' IDENTIFIED BY '{password}'")
        conn.exec_driver_sql(f"GRANT SELECT ON `{url.database}`.* TO '{user}'@'%%'")
    try:
        res = _simulate_cli(url.set(username=user, password=password)
                            .render_as_string(hide_password=False))
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP USER '{user}'@'%%'")
        admin.dispose()
    assert res.returncode == 3, res.stderr
    line = res.stderr.strip()
    assert "\n" not in line and "Traceback" not in line and password not in line
    assert line.startswith("ot: error: the source mysql+pymysql://")
    assert "refused the simulation" in line and "CREATE command denied" in line


def test_a_source_it_did_not_write_is_refused_unless_told(pair):
    """Orders already in the source and no record of the simulator: someone's data."""
    import sqlalchemy as sa
    from click.testing import CliRunner

    from ot_core.cli import main
    from ot_core.db.connect import open_database

    src = open_database("source", pair.source_url)
    md = sa.MetaData()
    from ot_core.contract import CONTRACTS

    tables = [src.backend.source_table(c, md) for c in CONTRACTS.values()]
    with src.engine.begin() as c:
        md.create_all(c)
        c.execute(sa.insert(tables[0]), [dict(
            order_id=1, order_sn="REAL-1", partner_id=7, store_id=None, shipping_channel=None,
            consignee_country="DE", weight_grams=10, declared_value=1, currency="EUR",
            add_time=1_770_000_000)])
    src.dispose()
    res = CliRunner().invoke(main, ["simulate", "--days", "2", "--orders-per-day", "5"],
                             env=pair.env())
    assert res.exit_code == 2, res.output
    assert "did not write" in res.stderr and "--into-existing" in res.stderr
    eng = sa.create_engine(pair.source_url)
    with eng.connect() as c:
        assert c.exec_driver_sql("SELECT COUNT(*) FROM ecs_order_info").scalar() == 1
        assert "ot_sim_state" not in sa.inspect(c).get_table_names()
    eng.dispose()
    res = CliRunner().invoke(main, ["simulate", "--days", "2", "--orders-per-day", "5",
                                    "--into-existing"], env=pair.env())
    assert res.exit_code == 0, res.output


# -- coherent histories -------------------------------------------------------------------------
def _histories(d):
    """Per order: its path events as (pathTime, code) in pathTime order and its status
    updates as (time, status), the late reactivation left out (a status-only update)."""
    from ot_core.simulate import PATH_CODES, REACTIVATION_MIN

    out = {}
    for i in range(len(d.order_id)):
        ev = np.flatnonzero(d.ev_owner == i)
        up = np.flatnonzero((d.upd_owner == i)
                            & (d.upd_time < d.add_time[i] + REACTIVATION_MIN * DAY))
        out[i] = ([(int(d.ev_path_time[e]), str(PATH_CODES[d.ev_code[e]])) for e in ev],
                  [(int(d.upd_time[u]), int(d.upd_status[u])) for u in up])
    return out


@pytest.mark.parametrize("seed,day", [(7, 20_000), (3, 20_100), (11, 20_250)])
def test_status_and_path_events_tell_one_story(seed, day):
    """At every instant an order's status is the status its latest scan (by pathTime) puts
    it in: never "Label created" beside departure scans, never "Delivered" before the
    delivery scan; journeys run label → pickup → hops → out for delivery → delivered (or
    returned), and the adversarial shapes stay (late arrivals, same-second updates)."""
    from ot_core.contract import PATH_STATUS

    d = _day(seed, day, 400)
    assert len(d.order_id) > 300
    for i, (events, updates) in _histories(d).items():
        times = [t for t, _ in events]
        codes = [c for _, c in events]
        assert times == sorted(times)
        assert codes[:2] == ["CREATED", "PICKUP"] and codes[-1] in ("DLV", "RETURN")
        assert codes.count("DLV") + codes.count("RETURN") == 1
        if codes[-1] == "DLV":
            assert codes[-2] == "OUTDLV"
        assert updates and updates[0][0] >= int(d.add_time[i])
        # the status after each instant an event or update happens
        for t in sorted({t for t, _ in events} | {t for t, _ in updates}):
            seen = [c for (pt, c) in events if pt <= t]
            current = [s for (ut, s) in updates if ut <= t]
            if seen:
                assert current and current[-1] == PATH_STATUS[seen[-1]], (i, t, seen, current)
            else:
                assert not current
        final = updates[-1][1]
        assert final == PATH_STATUS[codes[-1]]
        if final == 40:
            dlv = next(t for t, c in events if c == "DLV")
            assert next(t for t, s in updates if s == 40) == dlv
    # the awkward cases the pipeline must handle are still made
    late = d.ev_add_time - d.ev_path_time
    assert (late > DAY).any()
    same = (d.upd_owner[1:] == d.upd_owner[:-1]) & (d.upd_time[1:] == d.upd_time[:-1])
    assert same.any()


def test_a_day_without_orders_is_empty():
    d = _day(7, 20_000, 0)
    assert d.order_id.size == d.upd_owner.size == d.ev_owner.size == 0


def test_reactivations_are_still_made():
    from ot_core.simulate import REACTIVATION_MIN

    d = _day(7, 20_000, 2_000)
    assert (d.upd_time >= d.add_time[d.upd_owner] + REACTIVATION_MIN * DAY).any()
