"""Pipeline health: recent job runs, freshness with an OK/late verdict, the latest daily
checks, open exceptions and the comparison history, in one refreshable view."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import ipywidgets as w
import pandas as pd
from IPython.display import display

from ot_core.jobs.status import Status, pipeline_status
from ot_core.workbench import charts, explore, run_records
from ot_core.workbench.explore import Workbench
from ot_core.workbench.present import (
    Html,
    Message,
    duration_text,
    hint,
    plural,
    table,
    utc_text,
)
from ot_core.workbench.view import View


def runs_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs table as shown: UTC times, formatted durations, the whole first line of an
    error (wrapped, never cut), the record's file name (opened with **Open record**)."""
    return pd.DataFrame({
        "run": runs["run_id"].astype("int64").astype(str),
        "job": runs["job"],
        "status": runs["status"],
        "started (UTC)": [utc_text(v) for v in runs["started_at"]],
        "duration": [duration_text(s) for s in runs["seconds"]],
        "record": [Path(str(p)).stem if isinstance(p, str) and p else "" for p in runs["notebook_path"]],
        "error": [("" if e is None or pd.isna(e) else str(e).splitlines()[0]) for e in runs["error"]],
    })


def freshness_verdict(fresh: pd.DataFrame, interval_s: int) -> Message:
    limit = f"2 × the {interval_s // 60} min cycle interval"
    if fresh.empty:
        return Message("No watermarks yet: no cycle has run" + hint(
            " (`ot cycle`, or `ot demo`).", "."), "warning")
    late = fresh[fresh["verdict"] == "late"]
    if late.empty:
        worst = duration_text(float(fresh["lag_minutes"].max()) * 60)
        return Message(f"Freshness **OK**: every table is at most {worst} behind now "
                       f"(late means more than {limit}).")
    names = ", ".join(f"{t} ({duration_text(float(m) * 60)} behind)"
                      for t, m in zip(late["table_name"], late["lag_minutes"], strict=True))
    return Message(f"Freshness **late**: {names}; late means more than {limit}. " + hint(
        "Check that the cycle job runs (`ot runs --job cycle`).",
        "Tell whoever runs the pipeline that the cycle job is behind."), "warning")


class PipelineHealth(View):
    """Everything an on-call analyst checks first; Refresh re-reads it all."""

    name = "pipeline_health"

    def __init__(self, wb: Workbench, now: datetime | None = None):
        super().__init__(wb)
        self.now = now
        self.refresh_button = w.Button(description="Refresh", tooltip="read everything again")
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.record = w.Dropdown(options=[], description="record",
                                 layout=w.Layout(width="320px"))
        self.open_button = w.Button(description="Open record", disabled=True,
                                    tooltip="show the executed notebook of the chosen run")
        self.open_button.on_click(lambda _b: self.open_record())
        self.record_out = w.Output(layout=w.Layout(width="100%"))
        self.opened: Html | Message | None = None
        self.controls = [self.refresh_button, self.record, self.open_button]
        self.runs: pd.DataFrame | None = None
        self.fresh = pd.DataFrame()
        self.checks = pd.DataFrame()
        self.status: Status | None = None
        self.refresh()

    @property
    def widget(self) -> w.Widget:
        return w.VBox([super().widget, self.record_out], layout=w.Layout(width="100%"))

    def refresh(self) -> None:
        self.guarded(self._refresh)

    def _records(self, runs: pd.DataFrame | None) -> None:
        """The picker lists the runs that wrote a record, newest first."""
        rows: list[tuple[str, int]] = []
        for r in ([] if runs is None else runs.to_dict("records")):
            if isinstance(r["notebook_path"], str) and r["notebook_path"]:
                rid = int(str(r["run_id"]))
                rows.append((f"run {rid} · {r['job']} · {r['status']} · "
                             f"{utc_text(r['started_at'])}", rid))
        self.record.options = rows
        self.record.value = rows[0][1] if rows else None
        self.open_button.disabled = not rows
        self.open_button.tooltip = ("show the executed notebook of the chosen run" if rows
                                    else "no run has written a record yet")

    def open_record(self) -> Html | Message:
        """Show the chosen run's executed notebook below the view (and offer it as a file)."""
        runs = self.runs
        hit = None if runs is None else runs[runs["run_id"].astype("int64") == self.record.value]
        if hit is None or hit.empty:
            self.opened = Message("Pick a run in **record** first.", "warning")
        else:
            r = next(hit.itertuples())
            self.opened = run_records.record_view(
                r.notebook_path, f"run {int(r.run_id)} of {r.job} ({r.status})")
        self.record_out.clear_output(wait=True)
        with self.record_out:
            display(self.opened)
        return self.opened

    def _refresh(self) -> None:
        wb = self.wb
        items: list = []
        self.frames = {}
        self.runs = explore.job_runs(wb)
        self._records(self.runs)
        if self.runs is None or self.runs.empty:
            items.append(Message("No job runs recorded yet: " + hint(
                "jobs record their runs when started with `ot run JOB` (e.g. `ot run cycle`).",
                "they appear here once the scheduled jobs have run.")))
        else:
            r = self.runs
            failed = int((r["status"] == "failed").sum())
            items.append(Message(f"**Job runs**: the last {plural(len(r), 'run')}, {failed} failed, "
                                 f"{int((r['status'] == 'skipped').sum())} skipped.",
                                 "warning" if failed else "info"))
            items.append(charts.job_runs_figure(r))
            self.frames["job_runs"] = runs_frame(r)
            items.append(table(self.frames["job_runs"], title="recent job runs "
                               "(to read one, choose it under record, then Open record)",
                               status_columns=["status"]))

        interval = explore.cycle_interval(wb)
        self.fresh = explore.freshness(wb, self.now)
        items.append(freshness_verdict(self.fresh, interval))
        if len(self.fresh):
            items.append(charts.freshness_figure(self.fresh, 2 * interval / 60))
            self.frames["freshness"] = pd.DataFrame({
                "table": self.fresh["table_name"],
                "extracted until (UTC)": [utc_text(v) for v in self.fresh["extracted_until"]],
                "behind now": [duration_text(m * 60) for m in self.fresh["lag_minutes"]],
                "verdict": self.fresh["verdict"]})
            items.append(table(self.frames["freshness"], title="freshness",
                               status_columns=["verdict"]))

        self.checks = explore.check_results(wb)
        if self.checks.empty:
            items.append(Message("No daily check results yet: " + hint(
                "run `ot run daily_monitoring`.", "they appear after the daily monitoring job.")))
        else:
            c = self.checks
            bad = int((c["status"] != "ok").sum())
            items.append(Message(f"**Daily checks** of {utc_text(c['checked_at'].iloc[0])} UTC "
                                 f"(as of {utc_text(c['as_of'].iloc[0])}): "
                                 f"{len(c) - bad} ok, {bad} failing.", "warning" if bad else "info"))
            c = c.assign(status=c["status"].astype(str))
            self.frames["daily_checks"] = pd.DataFrame({
                "check": c["check_name"], "subject": c["subject"], "status": c["status"],
                "rows": [f"{int(n):,}" for n in c["row_count"]], "detail": c["detail"]})
            items.append(table(self.frames["daily_checks"], title="latest daily checks",
                               status_columns=["status"]))

        exc = explore.open_exceptions(wb)
        self.frames["open_exceptions"] = pd.DataFrame({
            "id": exc["exception_id"].astype(str), "type": exc["exception_type"],
            "order_id": [("" if pd.isna(o) else str(int(o))) for o in exc["order_id"]],
            "table": exc["source_table"],
            "detected (UTC)": [utc_text(v) for v in exc["detected_at"]]})
        items.append(table(self.frames["open_exceptions"], title="open exceptions",
                           empty="none" + hint(" (resolve them in the exceptions triage "
                                               "notebook)", "")))

        cmp = explore.compare_results(wb)
        if len(cmp) and cmp["month"].notna().any():
            items.append(charts.compare_figure(cmp, wb.config.compare.max_mismatch_rate))
        else:
            items.append(Message("No monthly comparison recorded yet" + hint(
                " (`ot run monthly_compare`).", ": it appears after the monthly comparison job.")))
        items += self._status_items()
        self.show(*items)

    def _status_items(self) -> list:
        """What `ot status` says, from the same library call: its verdict, every job's last
        and next run, and the locks held."""
        try:
            s = self.status = pipeline_status(self.wb.config, self.wb.db, self.now)
        finally:
            self.wb.db.dispose()
        verdict = ("**Status** (as `ot status`): healthy" if s.healthy else
                   "**Status** (as `ot status`): breached — " + "; ".join(s.breaches))
        self.frames["jobs"] = pd.DataFrame({
            "job": [j.job for j in s.jobs],
            "last run": [str(j.last_run_id or "") for j in s.jobs],
            "status": [j.last_status or "never run" for j in s.jobs],
            "next (UTC)": [j.next_at for j in s.jobs],
            "note": [j.stuck or (f"run {j.failing_run_id} {j.failing_status}"
                                 if j.failing_status else "") for j in s.jobs]})
        self.frames["locks"] = pd.DataFrame({
            "job": [lk.job for lk in s.locks], "holder": [lk.holder for lk in s.locks],
            "since (UTC)": [lk.since for lk in s.locks],
            "held": [duration_text(lk.held_seconds) for lk in s.locks]})
        return [Message(verdict, "info" if s.healthy else "warning"),
                table(self.frames["jobs"], title="jobs: last and next run"),
                table(self.frames["locks"], title="locks held", empty="none")]
