"""ipywidgets front ends for the analyst notebooks, thin over ``explore.py``.

``OrderLookup`` and ``PartnerDashboard`` live here; ``PipelineHealth`` and
``ExceptionTriage`` in their own modules, re-exported here so a notebook imports one place.
"""

from __future__ import annotations

from datetime import date, timedelta

import ipywidgets as w
import pandas as pd

from ot_core.contract import path_label, status_label
from ot_core.workbench import charts, explore
from ot_core.workbench.explore import Workbench
from ot_core.workbench.health import PipelineHealth
from ot_core.workbench.present import Message, count_text, hours_text, plural, table, utc_text
from ot_core.workbench.triage import ExceptionTriage
from ot_core.workbench.view import View

__all__ = ["ExceptionTriage", "OrderLookup", "PartnerDashboard", "PipelineHealth"]


# -- order lookup -----------------------------------------------------------------------------
def order_frames(view: explore.OrderView) -> dict[str, pd.DataFrame]:
    """What the lookup shows: readable UTC times instead of epochs, status names, ids as text."""
    e = view.ecs
    fields = []
    if len(e):
        r = e.iloc[0]
        fields = [("order_id", str(int(r["order_id"]))), ("order_sn", str(r["order_sn"])),
                  ("partner_id", str(int(r["partner_id"]))),
                  ("store_id", "" if pd.isna(r["store_id"]) else str(int(r["store_id"]))),
                  ("created (UTC)", utc_text(r["add_time_at"])),
                  ("shipping channel", r["shipping_channel"]),
                  ("destination", r["consignee_country"]),
                  ("weight (g)", "" if pd.isna(r["weight_grams"]) else f"{int(r['weight_grams']):,}"),
                  ("declared value", f"{r['declared_value']} {r['currency'] or ''}".strip()),
                  ("found in", r["found_in"])]
    s = view.status
    status = pd.DataFrame({
        "status": [status_label(v) for v in s["status"]] if len(s) else [],
        "latest event": s["latest_event"] if len(s) else [],
        "updated (UTC)": [utc_text(v) for v in s["update_time_at"]] if len(s) else [],
        "carrier": s["carrier_code"] if len(s) else [],
        "tracking no": s["tracking_no"] if len(s) else [],
        "found in": s["found_in"] if len(s) else [],
    })
    t = view.timeline
    events = pd.DataFrame({
        "event time (UTC)": [utc_text(v) for v in t["pathTime_at"]] if len(t) else [],
        "event": [path_label(c) for c in t["path_code"]] if len(t) else [],
        "what": t["path_info"] if len(t) else [],
        "where": t["path_location"] if len(t) else [],
        "recorded (UTC)": [utc_text(v) for v in t["add_time_at"]] if len(t) else [],
        "found in": t["found_in"] if len(t) else [],
    })
    return {"order": pd.DataFrame(fields, columns=["field", "value"]), "status": status,
            "events": events}


class OrderLookup(View):
    """A box for an order_id or order_sn (looked up on Enter or the button, never per
    keystroke) → ECS details, current status, path-event chart and table."""

    name = "order"

    def __init__(self, wb: Workbench, order_id: int | None = None, order_sn: str | None = None):
        super().__init__(wb)
        self.query = w.Text(description="order", placeholder="order_id or order_sn, then Enter",
                            continuous_update=False, layout=w.Layout(width="340px"))
        self.button = w.Button(description="Look up", button_style="primary")
        self.controls = [self.query, self.button]
        self.view: explore.OrderView | None = None
        self.lookups = 0
        found: list[int | None] = []
        ready = True
        if wb.ok and order_id is None and not order_sn:
            ready = self.guarded(lambda: found.append(explore.sample_order_id(wb)))
            order_id = found[0] if found else None
        self.query.value = str(order_id) if order_id is not None else (order_sn or "")
        self.query.observe(lambda _c: self.refresh(), names="value")  # Enter or leaving the box
        self.button.on_click(lambda _b: self.refresh())
        if ready:  # else the line saying why is already shown
            self.refresh()

    def export_prefix(self) -> str:
        return f"order_{self.view.order_id}" if self.view and self.view.order_id else "order"

    def refresh(self) -> None:
        self.guarded(self._refresh)

    def _refresh(self) -> None:
        text = self.query.value.strip()
        self.view, self.frames = None, {}
        if not text:
            self.show(Message("Type an order_id or order_sn and press Enter."))
            return
        self.lookups += 1
        self.view = (explore.order_lookup(self.wb, order_id=int(text)) if text.isdigit()
                     else explore.order_lookup(self.wb, order_sn=text))
        if not self.view.found:
            self.show(Message(f"No order `{text}` in the mart or any history table.", "warning"))
            return
        self.frames = order_frames(self.view)
        v = self.view
        now = status_label(v.status["status"].iloc[0]) if len(v.status) else "no tracking status yet"
        sn = f" · order_sn `{v.ecs['order_sn'].iloc[0]}`" if len(v.ecs) else ""
        head = Message(f"**Order {v.order_id}**{sn} · {plural(len(v.timeline), 'path event')}"
                       f" · now: **{now}**")
        self.show(head, table(self.frames["order"], title="order"),
                  table(self.frames["status"], title="current status", empty="no tracking status"),
                  charts.timeline_figure(v),
                  table(self.frames["events"], title="path events", empty="no path events"))


# -- partner dashboard ------------------------------------------------------------------------
class PartnerDashboard(View):
    """Partner picker (a searchable box: type part of an id, the matching partners are listed
    with their order counts) + date range → orders per day, current status mix, delivery
    latency percentiles with the number of orders behind each."""

    name = "partner"

    def __init__(self, wb: Workbench):
        super().__init__(wb)
        self.partner = w.Combobox(description="partner", placeholder="type a partner id",
                                  ensure_option=True, layout=w.Layout(width="300px"))
        narrow = {"description_width": "initial"}
        self.start = w.DatePicker(description="from", style=narrow, layout=w.Layout(width="200px"))
        self.end = w.DatePicker(description="to", style=narrow, layout=w.Layout(width="190px"))
        self.controls = [self.partner, self.start, self.end]
        self.choices = pd.DataFrame(columns=["partner_id", "orders"])
        self.ids: dict[str, int] = {}  # option text -> partner id
        self.partner_id: int | None = None
        self.summary: dict[str, pd.DataFrame] = {}
        if self.guarded(self._load):
            self.partner.observe(lambda _c: self._picked(), names="value")
            for ctl in (self.start, self.end):
                ctl.observe(lambda _c: self.refresh(), names="value")
            self.refresh()

    def _load(self) -> None:
        self.choices = explore.partner_choices(self.wb)
        span = explore.order_dates(self.wb) or (date.today() - timedelta(days=30), date.today())
        self.start.value, self.end.value = span
        self.ids = {f"{int(p)} · {plural(n, 'order')}": int(p)
                    for p, n in zip(self.choices["partner_id"], self.choices["orders"], strict=True)}
        self.partner.options = list(self.ids)
        if self.ids:
            self.partner_id = next(iter(self.ids.values()))
            self.partner.value = next(iter(self.ids))

    def option(self, partner_id: int) -> str:
        """The picker's text for one partner (what choosing it in the list enters)."""
        return next(k for k, v in self.ids.items() if v == int(partner_id))

    def _picked(self) -> None:
        text = self.partner.value.strip()
        pid = self.ids.get(text)
        if pid is None and text.isdigit() and int(text) in self.ids.values():
            pid = int(text)  # a bare id typed in full
        if pid is None:
            if text:
                self.say(Message(f"No partner `{text}`: pick one from the list (type part "
                                 "of its id to narrow it).", "warning"))
            return
        self.say("")
        self.partner_id = pid
        self.refresh()

    def export_prefix(self) -> str:
        return f"partner_{self.partner_id}"

    def refresh(self) -> None:
        self.guarded(self._refresh)

    def _refresh(self) -> None:
        pid, start, end = self.partner_id, self.start.value, self.end.value
        self.frames, self.summary = {}, {}
        if pid is None:
            self.show(Message("No orders in the warehouse yet." if self.choices.empty
                              else "Pick a partner."))
            return
        if start is None or end is None:
            self.show(Message("Pick a date range."))
            return
        if end < start:
            self.show(Message(f"The range ends ({end}) before it starts ({start}).", "warning"))
            return
        s = explore.partner_summary(self.wb, pid, start, end)
        self.summary = s
        d = s["per_day"]
        total = int(d["orders"].sum())
        partial = " Hatched bars are partial days (the warehouse does not hold the whole day)." \
            if d["partial"].any() else ""
        delivered = int(s["delivered"]["delivered"].iloc[0])
        head = Message(f"**Partner {pid}**: {plural(total, 'order')} created {start} → {end} "
                       f"(UTC days), {delivered:,} delivered. Latency counts delivered orders "
                       f"only (created → delivered).{partial}")
        lat = s["latency"]
        self.frames = {
            "orders_per_day": pd.DataFrame({
                "day (UTC)": [str(x) for x in d["day"]],
                "orders": [count_text(n) for n in d["orders"]],
                "complete": [f"partial: {c}" if c else "yes" for c in d["coverage"]]}),
            "status_mix": pd.DataFrame({
                "status": [status_label(x) for x in s["status_mix"]["status"]],
                "orders": [count_text(n) for n in s["status_mix"]["orders"]]}),
            "latency_hours": pd.DataFrame({
                "percentile": lat["percentile"],
                "hours (created → delivered)": [hours_text(h) for h in lat["hours"]],
                "delivered orders": [count_text(n) for n in lat["delivered orders"]],
                "orders at or under": [count_text(n) for n in lat["orders at or under"]]}),
        }
        few = [Message(f"Only {plural(delivered, 'delivered order')}: the percentiles are "
                       "rough.", "warning")] if 0 < delivered < 20 else []
        self.show(head, *few, charts.dashboard_figure(s, start=start, end=end),
                  table(self.frames["status_mix"], title="current status"),
                  table(self.frames["latency_hours"], title="delivery latency"),
                  table(self.frames["orders_per_day"], title="orders per day"))
