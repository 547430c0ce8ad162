"""Half-year arithmetic (UTC) and what rotation decides to create."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from support.lifecycle import Source, T, config

from ot_core.pipeline.cycle import run_cycle
from ot_core.pipeline.periods import Period, cutoff, period_of, periods_between, rotate

EPOCHS = st.integers(T("1990-01-01"), T("2100-01-01"))


@settings(max_examples=200, deadline=None)
@given(EPOCHS)
def test_every_second_belongs_to_exactly_its_half_year(e):
    p = period_of(e)
    assert p.start <= e < p.end
    assert period_of(p.start) == p and period_of(p.end - 1) == p and period_of(p.end) == p.next()
    assert p.name == f"{p.year}_h{p.half}" and p.table("ecs_order_info").endswith(p.name)


@settings(max_examples=100, deadline=None)
@given(EPOCHS, st.integers(0, 5 * 365 * 86400))
def test_periods_between_are_contiguous(first, span):
    ps = periods_between(first, first + span)
    assert ps[0] == period_of(first) and ps[-1] == period_of(first + span)
    assert all(a.end == b.start for a, b in zip(ps, ps[1:], strict=False))


def test_named_boundaries():
    assert (Period(2025, 2).start, Period(2025, 2).end) == (T("2025-07-01"), T("2026-01-01"))
    assert period_of(T("2025-12-31T23:59:59Z")) == Period(2025, 2)
    assert periods_between(T("2026-01-01"), T("2025-12-31")) == []


def test_cutoff_is_calendar_months():
    assert cutoff(T("2026-08-31T10:30:00Z"), 6) == T("2026-02-28T10:30:00Z")
    assert cutoff(T("2026-07-01"), 6) == T("2026-01-01")
    assert cutoff(T("2026-03-15"), 12) == T("2025-03-15")


def test_rotation_covers_the_oldest_mart_row_and_is_idempotent(embedded):
    src = Source(embedded.source_url)
    src.order(1, T("2026-05-01"))
    src.event(1, T("2024-08-01"), T("2026-05-01T00:01:00"))  # a very late path event
    run_cycle("2026-05-02", config=config(False), source=embedded.source_url,
              warehouse=embedded.warehouse_url)
    res = rotate("2026-05-02", config=config(), warehouse=embedded.warehouse_url)
    names = {n.split(".")[1] for n in res.created}
    assert {"hist_uni_tracking_spath_2024_h2", "hist_uni_tracking_spath_2025_h1"} <= names
    assert "hist_ecs_order_info_2024_h2" not in names  # only what that mart's data needs
    assert "hist_ecs_order_info_2025_h2" in names  # the cutoff's period (2025-11-02)
    again = rotate("2026-05-02", config=config(), warehouse=embedded.warehouse_url)
    assert again.created == [] and again.existing == len(res.created)
