"""Exceptions triage: pick an open exception (nothing is pre-selected), write a note,
Resolve, then Confirm the exact exception named in the question; recently resolved below."""

from __future__ import annotations

import ipywidgets as w
import pandas as pd
from IPython.display import display

from ot_core.errors import UsageError
from ot_core.workbench import charts, explore
from ot_core.workbench.explore import Workbench
from ot_core.workbench.present import Message, hint, plural, table, utc_text
from ot_core.workbench.view import View

LOOKUP_NOTEBOOK = "order_lookup.ipynb"


def describe(row) -> str:
    return f"#{int(row.exception_id)} {row.exception_type} order {_id(row.order_id)}"


def _id(v) -> str:
    return "—" if v is None or pd.isna(v) else str(int(v))


def exceptions_shown(frame: pd.DataFrame, resolved: bool) -> pd.DataFrame:
    out = pd.DataFrame({
        "id": frame["exception_id"].astype("int64").astype(str),
        "type": frame["exception_type"],
        "order_id": [_id(o) for o in frame["order_id"]],
        "table": frame["source_table"],
        "detected (UTC)": [utc_text(v) for v in frame["detected_at"]],
    })
    if resolved:
        out["resolved (UTC)"] = [utc_text(v) for v in frame["resolved_at"]]
        out["by"] = ["" if u is None or pd.isna(u) else str(u)  # the database user
                     for u in frame.get("resolved_by", pd.Series([None] * len(frame)))]
    out["notes"] = ["" if n is None or pd.isna(n) else str(n) for n in frame["notes"]]
    return out


class ExceptionTriage(View):
    """Open exceptions in a list; resolving one takes a note and an explicit confirmation."""

    name = "exceptions"

    def __init__(self, wb: Workbench):
        super().__init__(wb)
        self.select = w.Select(options=[], rows=8, description="open",
                               layout=w.Layout(width="95%"))
        self.details = w.Output()
        self.note = w.Textarea(placeholder="what was done (the database records who)",
                               description="note",
                               layout=w.Layout(width="60%"))
        self.button = w.Button(description="Resolve…", button_style="warning", disabled=True)
        self.question = w.HTML()
        self.confirm = w.Button(description="Confirm", button_style="danger")
        self.cancel = w.Button(description="Cancel")
        self.confirm_box = w.HBox([self.question, self.confirm, self.cancel],
                                  layout=w.Layout(display="none"))
        self.controls = []
        self.frame = pd.DataFrame()  # open exceptions
        self.resolved = pd.DataFrame()
        self.pending: int | None = None
        self.detail = Message("No exception selected.")
        self.button.on_click(lambda _b: self.ask())
        self.confirm.on_click(lambda _b: self.resolve_confirmed())
        self.cancel.on_click(lambda _b: self.drop_pending("Not resolved."))
        self.select.observe(lambda _c: self._picked(), names="value")
        self.reload()

    @property
    def widget(self) -> w.Widget:
        actions = w.VBox([self.select, self.details, self.note,
                          w.HBox([self.button, self.export_button]), self.confirm_box, self.info])
        return w.VBox([actions, self.out], layout=w.Layout(width="100%"))

    def _row(self, exception_id: int | None):
        if exception_id is None or self.frame.empty:
            return None
        hit = self.frame[self.frame["exception_id"].astype("int64") == int(exception_id)]
        return None if hit.empty else next(hit.itertuples())

    def reload(self) -> None:
        if not self.guarded(self._reload):
            self.select.disabled = self.note.disabled = True
            self.button.disabled = True

    def _reload(self) -> None:
        self.frame = explore.open_exceptions(self.wb)
        self.resolved = explore.resolved_exceptions(self.wb)
        with self.select.hold_trait_notifications():
            self.select.options = [(describe(r) + f" ({r.source_table})", int(i))
                                   for r, i in zip(self.frame.itertuples(),
                                                   self.frame["exception_id"], strict=True)]
            self.select.value = None  # never pre-select: the analyst picks what to resolve
        self.frames = {"open": exceptions_shown(self.frame, False),
                       "recently_resolved": exceptions_shown(self.resolved, True)}
        some = len(self.frame) > 0
        self.select.layout.display = "flex" if some else "none"
        self.note.disabled = not some
        self._picked()
        head = Message(f"**{plural(len(self.frame), 'open exception')}**. Pick one above, write "
                       "a note, press Resolve… and confirm." if some else
                       "No open exceptions: nothing to resolve. New ones appear here when a "
                       "cycle or the lifecycle finds a row it cannot place.")
        chart = [charts.exceptions_figure(self.frame)] if len(self.frame) else []
        self.show(head, *chart, table(self.frames["recently_resolved"], title="recently resolved",
                                      empty="nothing resolved yet"))
        self.export_button.disabled = False

    def _picked(self) -> None:
        self.drop_pending(None)
        self.unsay()  # a warning about an earlier pick no longer applies
        row = self._row(self.select.value)
        self.button.disabled = row is None
        self.details.clear_output(wait=True)
        if row is None:
            self.detail = Message("Pick an exception in the list to resolve it."
                                  if len(self.frame) else "")
        else:
            oid = _id(row.order_id)
            self.detail = Message(
                f"**{describe(row)}** in `{row.source_table}` (row key {_id(row.row_key)}), "
                f"detected {utc_text(row.detected_at)} UTC. Order {oid}: " + hint(
                    f"open [order lookup]({LOOKUP_NOTEBOOK}) and enter {oid}.",
                    f"look it up in the order lookup view ({oid})."))
        with self.details:
            display(self.detail)

    def ask(self) -> None:
        """Step one: check the choice and the note, then ask to confirm this exact exception."""
        row = self._row(self.select.value)
        if row is None:
            self.say(Message("Pick an exception in the list first.", "warning"))
            return
        if not self.note.value.strip():
            self.say(Message("Write a note first (what was done), then press Resolve….",
                             "warning"))
            return
        self.pending = int(row.exception_id)
        self.question.value = f"Resolve <b>{describe(row)}</b>?"
        self.confirm_box.layout.display = "flex"
        self.say(Message(f"Confirm to resolve {describe(row)}, or Cancel."))

    def drop_pending(self, why: str | None) -> None:
        self.pending = None
        self.question.value = ""
        self.confirm_box.layout.display = "none"
        if why:
            self.say(Message(why))

    def resolve_confirmed(self) -> None:
        """Step two: resolve the exception named in the question (not whatever is selected now)."""
        if self.pending is None:
            self.say(Message("Nothing to confirm: press Resolve… first.", "warning"))
            return
        row, note = self._row(self.pending), self.note.value.strip()
        what = describe(row) if row is not None else f"#{self.pending}"
        pending = self.pending
        self.drop_pending(None)
        try:
            done = explore.resolve_exception(self.wb, pending, note)
        except UsageError as e:  # resolved meanwhile by someone else
            self.reload()
            self.say(Message(f"{what} was not resolved: {e}.", "warning"))
            return
        self.note.value = ""
        self.reload()
        self.say(Message(f"Resolved {what} at {utc_text(done['resolved_at'])} UTC."))
