"""ipywidgets front ends for the analyst notebooks, thin over ``explore.py``.

Each widget keeps what it last computed (``frames``, ``figure``, ``message``) besides
drawing it into its ``Output``, so the behaviour "set a widget's value → the output
changes" is testable in a plain Python process, without a browser or a kernel.
"""

from __future__ import annotations

from datetime import date, timedelta

import ipywidgets as w
import pandas as pd
from IPython.display import display

from ot_core.errors import UsageError
from ot_core.workbench import explore
from ot_core.workbench.explore import Workbench


def _draw(out: w.Output, *items) -> None:
    out.clear_output(wait=True)
    with out:
        for item in items:
            display(item)


class PartnerDashboard:
    """Partner picker + date range → orders per day, status mix, latency percentiles."""

    def __init__(self, wb: Workbench):
        self.wb = wb
        ids = explore.partners(wb)
        span = explore.order_dates(wb) or (date.today() - timedelta(days=30), date.today())
        self.partner = w.Dropdown(options=ids, value=ids[0] if ids else None, description="partner")
        self.start = w.DatePicker(value=span[0], description="from")
        self.end = w.DatePicker(value=span[1], description="to")
        self.out = w.Output()
        self.frames: dict[str, pd.DataFrame] = {}
        self.figure = None
        self.message = ""
        for ctl in (self.partner, self.start, self.end):
            ctl.observe(self._changed, names="value")
        self.refresh()

    @property
    def widget(self) -> w.Widget:
        return w.VBox([w.HBox([self.partner, self.start, self.end]), self.out])

    def _changed(self, _change) -> None:
        self.refresh()

    def refresh(self) -> None:
        if self.partner.value is None or self.start.value is None or self.end.value is None:
            self.frames, self.figure = {}, None
            self.message = "no orders in the warehouse yet" if self.partner.value is None \
                else "pick a date range"
            _draw(self.out, self.message)
            return
        if self.end.value < self.start.value:
            self.frames, self.figure, self.message = {}, None, "the range ends before it starts"
            _draw(self.out, self.message)
            return
        self.frames = explore.partner_summary(self.wb, self.partner.value, self.start.value,
                                              self.end.value)
        total = int(self.frames["per_day"]["orders"].sum())
        self.message = (f"partner {self.partner.value}: {total:,} orders "
                        f"{self.start.value} → {self.end.value}")
        self.figure = explore.dashboard_figure(self.frames, self.message)
        _draw(self.out, self.message, self.figure, self.frames["latency"])


class ExceptionTriage:
    """Open exceptions in a list; pick one, write a note, resolve it."""

    def __init__(self, wb: Workbench):
        self.wb = wb
        self.select = w.Select(options=[], rows=10, description="open", layout={"width": "90%"})
        self.note = w.Textarea(placeholder="what was done, by whom", description="note")
        self.button = w.Button(description="Resolve", button_style="warning")
        self.status = w.Label()
        self.out = w.Output()
        self.frame = pd.DataFrame()
        self.button.on_click(self._resolve)
        self.reload()

    @property
    def widget(self) -> w.Widget:
        return w.VBox([self.select, self.note, w.HBox([self.button, self.status]), self.out])

    def reload(self) -> None:
        self.frame = explore.open_exceptions(self.wb)
        self.select.options = [
            (f"#{r.exception_id} {r.exception_type} order {r.order_id} ({r.source_table})",
             int(r.exception_id)) for r in self.frame.itertuples()]
        _draw(self.out, self.frame if len(self.frame) else "no open exceptions")

    def _resolve(self, _button=None) -> None:
        if self.select.value is None:
            self.status.value = "pick an exception first"
            return
        try:
            explore.resolve_exception(self.wb, self.select.value, self.note.value)
        except UsageError as e:  # empty note, or resolved meanwhile by someone else
            self.status.value = str(e)
            self.reload()
            return
        self.status.value = f"resolved #{self.select.value}"
        self.note.value = ""
        self.reload()


class OrderLookup:
    """A text box for an order_id or order_sn → ECS info, status, timeline chart."""

    def __init__(self, wb: Workbench, initial: str = ""):
        self.wb = wb
        self.query = w.Text(value=initial, description="order", placeholder="order_id or order_sn")
        self.out = w.Output()
        self.view: explore.OrderView | None = None
        self.query.observe(lambda _c: self.refresh(), names="value")
        self.refresh()

    @property
    def widget(self) -> w.Widget:
        return w.VBox([self.query, self.out])

    def refresh(self) -> None:
        text = self.query.value.strip()
        if not text:
            self.view = None
            _draw(self.out, "type an order_id or order_sn")
            return
        if text.isdigit():
            self.view = explore.order_lookup(self.wb, order_id=int(text))
        else:
            self.view = explore.order_lookup(self.wb, order_sn=text)
        if not self.view.found:
            _draw(self.out, f"no order {text!r} in the mart or any history table")
            return
        _draw(self.out, self.view.ecs, self.view.status, explore.timeline_figure(self.view),
              self.view.timeline)
