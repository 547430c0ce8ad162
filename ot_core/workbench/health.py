"""Pipeline health: recent job runs, freshness with an OK/late verdict, the latest daily
checks, open exceptions and the comparison history, in one refreshable view."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import ipywidgets as w
import pandas as pd

from ot_core.jobs.status import Status, pipeline_status
from ot_core.workbench import charts, explore
from ot_core.workbench.explore import Workbench
from ot_core.workbench.present import Message, duration_text, link, table, utc_text
from ot_core.workbench.view import View


def _notebook_link(path, base: Path) -> str:
    """The executed notebook as a link JupyterLab can open (relative to the notebook's folder)."""
    if path is None or pd.isna(path) or not str(path):
        return ""
    p = Path(str(path))
    try:
        href = os.path.relpath(p, base)
    except ValueError:
        href = p.as_uri() if p.is_absolute() else str(p)
    return link(href, p.name, str(p))


def runs_frame(runs: pd.DataFrame, base: Path) -> pd.DataFrame:
    """The runs table as shown: UTC times, formatted durations, the first line of an error."""
    return pd.DataFrame({
        "run": runs["run_id"].astype("int64").astype(str),
        "job": runs["job"],
        "status": runs["status"],
        "started (UTC)": [utc_text(v) for v in runs["started_at"]],
        "duration": [duration_text(s) for s in runs["seconds"]],
        "notebook": [_notebook_link(p, base) for p in runs["notebook_path"]],
        "error": [("" if e is None or pd.isna(e) else str(e).splitlines()[0][:120])
                  for e in runs["error"]],
    })


def freshness_verdict(fresh: pd.DataFrame, interval_s: int) -> Message:
    limit = f"2 × the {interval_s // 60} min cycle interval"
    if fresh.empty:
        return Message("No watermarks yet: no cycle has run (`ot cycle`, or `ot demo`).", "warning")
    late = fresh[fresh["verdict"] == "late"]
    if late.empty:
        worst = duration_text(float(fresh["lag_minutes"].max()) * 60)
        return Message(f"Freshness **OK**: every table is at most {worst} behind now "
                       f"(late means more than {limit}).")
    names = ", ".join(f"{t} ({duration_text(float(m) * 60)} behind)"
                      for t, m in zip(late["table_name"], late["lag_minutes"], strict=True))
    return Message(f"Freshness **late**: {names}; late means more than {limit}. "
                   "Check that the cycle job runs (`ot runs --job cycle`).", "warning")


class PipelineHealth(View):
    """Everything an on-call analyst checks first; Refresh re-reads it all."""

    name = "pipeline_health"

    def __init__(self, wb: Workbench, now: datetime | None = None,
                 export_dir: Path | str | None = None):
        super().__init__(wb, export_dir)
        self.now = now
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.controls = [self.refresh_button]
        self.runs: pd.DataFrame | None = None
        self.fresh = pd.DataFrame()
        self.checks = pd.DataFrame()
        self.status: Status | None = None
        self.refresh()

    def refresh(self) -> None:
        self.guarded(self._refresh)

    def _refresh(self) -> None:
        wb = self.wb
        base = self.export_dir or Path.cwd()
        items: list = []
        self.frames = {}
        self.runs = explore.job_runs(wb)
        if self.runs is None or self.runs.empty:
            items.append(Message("No job runs recorded yet: jobs record their runs when started "
                                 "with `ot run JOB` (e.g. `ot run cycle`)."))
        else:
            r = self.runs
            failed = int((r["status"] == "failed").sum())
            items.append(Message(f"**Job runs**: the last {len(r)}, {failed} failed, "
                                 f"{int((r['status'] == 'skipped').sum())} skipped.",
                                 "warning" if failed else "info"))
            items.append(charts.job_runs_figure(r))
            shown = runs_frame(r, base)
            self.frames["job_runs"] = shown.assign(
                notebook=[str(p) if isinstance(p, str) else "" for p in r["notebook_path"]])
            items.append(table(shown, title="recent job runs", html_columns=["notebook"]))

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
            items.append(table(self.frames["freshness"], title="freshness"))

        self.checks = explore.check_results(wb)
        if self.checks.empty:
            items.append(Message("No daily check results yet: run `ot run daily_monitoring`."))
        else:
            c = self.checks
            bad = int((c["status"] != "ok").sum())
            items.append(Message(f"**Daily checks** of {utc_text(c['checked_at'].iloc[0])} UTC "
                                 f"(as of {utc_text(c['as_of'].iloc[0])}): "
                                 f"{len(c) - bad} ok, {bad} failing.", "warning" if bad else "info"))
            self.frames["daily_checks"] = pd.DataFrame({
                "check": c["check_name"], "subject": c["subject"], "status": c["status"],
                "rows": [f"{int(n):,}" for n in c["row_count"]], "detail": c["detail"]})
            items.append(table(self.frames["daily_checks"], title="latest daily checks"))

        exc = explore.open_exceptions(wb)
        self.frames["open_exceptions"] = pd.DataFrame({
            "id": exc["exception_id"].astype(str), "type": exc["exception_type"],
            "order_id": [("" if pd.isna(o) else str(int(o))) for o in exc["order_id"]],
            "table": exc["source_table"],
            "detected (UTC)": [utc_text(v) for v in exc["detected_at"]]})
        items.append(table(self.frames["open_exceptions"], title="open exceptions",
                           empty="none (resolve them in exceptions_triage.ipynb)"))

        cmp = explore.compare_results(wb)
        if len(cmp) and cmp["month"].notna().any():
            items.append(charts.compare_figure(cmp, wb.config.compare.max_mismatch_rate))
        else:
            items.append(Message("No monthly comparison recorded yet (`ot run monthly_compare`)."))
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
