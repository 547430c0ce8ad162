"""Alerts without noise: what is wrong now (read by ``status.pipeline_status``), compared with
what each destination was last told (``<control>.ot_alerts``).

- a problem that starts, and its return to ok, is sent once (all changes of one evaluation
  in one message);
- a problem still failing is repeated at most once per ``alerts.digest_every`` (a day), all
  of them in one digest;
- a message that cannot be delivered is logged and its row left as it was, so the next
  evaluation sends it again; it never raises into the job that triggered it.

Evaluations run after every ``ot run`` (the runner calls :func:`after_job`) and on
``ot notify run`` (cron, Airflow, a container's health loop: docs/operations.md).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa

from ot_core.config import PipelineConfig, resolve_config
from ot_core.db.warehouse import Warehouse, using
from ot_core.jobs import notify
from ot_core.jobs.status import Status, _dur, pipeline_status
from ot_core.secrets import redact
from ot_core.timeutil import parse_duration, utcnow

log = logging.getLogger("ot.alerts")
FAILING, OK = "failing", "ok"
LOCK = "ot_alerts"  # the lock one evaluation holds (a name no job of the catalogue has)


@dataclass(frozen=True)
class Problem:
    key: str
    title: str  # one line: what is wrong
    body: str  # the figures and what to do next


def problems(s: Status) -> dict[str, Problem]:
    """Every problem in ``s``, by a key that stays the same while the problem lasts."""
    out: dict[str, Problem] = {}

    def add(key: str, title: str, body: str) -> None:
        out[key] = Problem(key, title, body)

    for c in s.checks_failing:
        keys = [_sample_key(row) for row in c.sample[:5]]
        add(f"check:{c.check}:{c.subject}", f"check {c.check} failing on {c.subject}: "
            f"{c.count} row{'' if c.count == 1 else 's'}",
            f"{c.detail}\nsample: {', '.join(k for k in keys if k) or '(none kept)'}\n"
            f"Next: see every row with `ot run daily_monitoring` (its notebook lists them) or "
            f"`ot status --json`; the check is explained in docs/operations.md#checks.")
    for t in s.tables:
        if t.late:
            since = (f"last cycle {t.last_cycle_at} ({_dur(t.since_cycle_seconds)} ago)"
                     if t.last_cycle_at else "never cycled")
            add(f"freshness:{t.table}", f"table {t.table} is stale: {since}",
                f"No successful cycle for longer than the limit {_dur(s.max_lag_seconds)} "
                f"(OT_MAX_LAG). Data is {_dur(t.behind_seconds)} behind now.\n"
                "Next: `ot runs --job cycle` for the last runs and their errors; `ot status` "
                "for locks held; start the scheduler if it is down (`ot schedule`).")
    for j in s.jobs:
        if j.failing_status:
            add(f"job:{j.job}", f"job {j.job} {j.failing_status} (run {j.failing_run_id})",
                f"{j.failing_error or 'no error recorded'}\n"
                f"Next: `ot runs --job {j.job}` shows the run and its executed notebook; "
                f"fix what the error names, then `ot run {j.job}`. A run that succeeds "
                "clears this alert.")
        if j.stuck:
            add(f"lock:{j.job}", f"job {j.job} skipped: its lock is held past its timeout",
                f"{j.stuck}.\nNext: `ot status` shows who holds it; if that process is "
                "gone or hung, stop it; `ot runs` then marks its run abandoned.")
    for e in s.exceptions:
        if e.older_than_limit:
            add(f"exceptions:{e.type}", f"{e.older_than_limit} {e.type} exceptions open "
                f"longer than {_dur(s.exception_max_age_seconds)}",
                f"{e.open} open in all, the oldest since {e.oldest_detected_at}.\n"
                "Next: `ot exceptions list` and the exceptions_triage notebook; resolve each "
                "with `ot exceptions resolve ID --note ...`.")
    return out


def _sample_key(row: dict) -> str:
    for k in ("order_id", "id", "table", "key_value"):
        if k in row and row[k] is not None:
            return f"{k}={row[k]}"
    return ", ".join(f"{k}={v}" for k, v in list(row.items())[:2])


@dataclass
class Sent:
    destination: str  # shown form
    title: str
    kind: str  # change / digest
    error: str | None = None


@dataclass
class Evaluation:
    at: str
    destinations: int = 0
    problems: list[str] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)

    @property
    def undelivered(self) -> list[Sent]:
        return [s for s in self.sent if s.error]


def _change_message(started: list[Problem], resolved: list[tuple[str, str]],
                    ) -> tuple[str, str]:
    parts = []
    if started:
        parts.append(f"{len(started)} new problem{'s' if len(started) > 1 else ''}")
    if resolved:
        parts.append(f"{len(resolved)} back to ok")
    first = started[0].title if started else f"ok again: {resolved[0][1]}"
    title = f"ot: {first}" if len(started) + len(resolved) == 1 else \
        f"ot: {', '.join(parts)} — {first}"
    body = [f"FAILING: {p.title}\n{p.body}\n" for p in started]
    body += [f"OK AGAIN: {title_} (was failing)\n" for _key, title_ in resolved]
    return title, "\n".join(body)


def _digest_message(still: list[tuple[Problem, datetime]], now: datetime) -> tuple[str, str]:
    title = f"ot daily digest: {len(still)} problem{'s' if len(still) > 1 else ''} still failing"
    body = [f"STILL FAILING since {since:%Y-%m-%d %H:%M} UTC "
            f"({_dur((now - since).total_seconds())}): {p.title}\n{p.body}\n"
            for p, since in still]
    return title, "\n".join(body)


def evaluate(config: PipelineConfig | str | None = None,
             warehouse: Warehouse | str | None = None, now: datetime | None = None, *,
             retries: int | None = None) -> Evaluation:
    """Compare what is wrong now with what each destination was told; send the changes
    and the due digest; record what was delivered. Nothing configured: nothing read. No
    connection is held while sending (a slow destination must not keep an embedded
    warehouse file from the next cycle)."""
    cfg = resolve_config(config)
    dests = notify.destinations(cfg)
    now = (now or utcnow()).replace(microsecond=0)
    naive = now.replace(tzinfo=None)
    result = Evaluation(now.strftime("%Y-%m-%dT%H:%M:%SZ"), len(dests))
    if not dests:
        return result
    digest_every = timedelta(seconds=parse_duration(cfg.alerts.digest_every))
    with using(cfg, warehouse) as wh, wh.hold(LOCK, 300, f"alert evaluation, pid {os.getpid()}",
                                               retries=retries):
        # one evaluation at a time: two jobs ending together must not both send a change
        status = pipeline_status(cfg, wh, now, retries=retries)
        found = problems(status)
        result.problems = sorted(found)
        t = wh.tables.alerts
        with wh.connect() as conn, conn.begin():
            wh.ensure(conn)
            rows = {(r.destination, r.alert_key): r for r in conn.execute(
                sa.select(t).where(t.c.destination.in_([d.id for d in dests])))}
        plans = [_Plan.of(d, {k: r for (dest, k), r in rows.items() if dest == d.id}, found,
                          naive, digest_every) for d in dests]
        for plan in plans:
            plan.send(cfg.alerts.send_timeout_seconds, naive, result)
        with wh.connect() as conn, conn.begin():
            for plan in plans:
                plan.record(conn, t, naive)
    return result


@dataclass
class _Plan:
    """What one destination is to be told now, and after sending, how it went."""

    dest: notify.Destination
    mine: dict
    started: list[Problem]
    resolved: list[tuple[str, str]]
    gone_untold: list[str]
    due: list[tuple[Problem, datetime]]
    change_err: str | None = None
    digest_err: str | None = None

    @classmethod
    def of(cls, d: notify.Destination, mine: dict, found: dict[str, Problem], now: datetime,
           digest_every: timedelta) -> _Plan:
        return cls(
            d, mine,
            started=[p for k, p in found.items() if k not in mine
                     or mine[k].sent_state != FAILING],
            resolved=[(k, r.title) for k, r in mine.items() if k not in found
                      and r.sent_state == FAILING],
            gone_untold=[k for k, r in mine.items() if k not in found
                         and r.sent_state != FAILING],
            due=[(p, mine[k].since) for k, p in found.items() if k in mine
                 and mine[k].sent_state == FAILING and mine[k].sent_at <= now - digest_every])

    def send(self, timeout: int, now: datetime, result: Evaluation) -> None:
        d = self.dest
        if self.started or self.resolved:
            title, body = _change_message(self.started, self.resolved)
            self.change_err = notify.send(d, title, body, timeout=timeout)
            result.sent.append(Sent(d.shown, title, "change", self.change_err))
            if self.change_err is None:
                log.info("alert sent to destination %d: %s", d.position, title)
        if self.due:
            title, body = _digest_message(self.due, now)
            self.digest_err = notify.send(d, title, body, timeout=timeout)
            result.sent.append(Sent(d.shown, title, "digest", self.digest_err))
            if self.digest_err is None:
                log.info("digest sent to destination %d: %s", d.position, title)

    def record(self, conn, t: sa.Table, now: datetime) -> None:
        """The outcome in ot_alerts: delivered states remembered, failures counted (and so
        sent again by the next evaluation)."""
        where, err, mine = (t.c.destination == self.dest.id), self.change_err, self.mine
        for p in self.started:
            conn.execute(sa.delete(t).where(where, t.c.alert_key == p.key))
            old = mine.get(p.key)
            conn.execute(sa.insert(t).values(
                destination=self.dest.id, alert_key=p.key, state=FAILING,
                since=old.since if old is not None else now, title=redact(p.title)[:1000],
                sent_state=FAILING if err is None else (old.sent_state if old else None),
                sent_at=now if err is None else (old.sent_at if old else None),
                attempts=0 if err is None else (old.attempts if old else 0) + 1,
                last_error=None if err is None else err[:1000]))
        for key, _title in self.resolved:
            if err is None:
                conn.execute(sa.delete(t).where(where, t.c.alert_key == key))
            else:
                conn.execute(sa.update(t).where(where, t.c.alert_key == key).values(
                    state=OK, attempts=t.c.attempts + 1, last_error=err[:1000]))
        for key in self.gone_untold:
            conn.execute(sa.delete(t).where(where, t.c.alert_key == key))
        for p, _since in self.due:
            values = ({"sent_at": now, "attempts": 0, "last_error": None}
                      if self.digest_err is None else
                      {"attempts": t.c.attempts + 1, "last_error": self.digest_err[:1000]})
            conn.execute(sa.update(t).where(where, t.c.alert_key == p.key).values(**values))


def after_job(job: str, config: PipelineConfig | str | None = None) -> None:
    """The runner's call once a run has ended (its lock released): evaluate and send. Any
    failure (warehouse busy, a destination down, a bad setting) is logged and left for the
    next evaluation: an alert never fails or holds up the job."""
    try:
        cfg = resolve_config(config)
        if not notify.configured_urls(cfg)[0]:
            return
        outcome = evaluate(cfg, retries=0)
        for s in outcome.undelivered:
            log.warning("after job %s: alert %r to %s not delivered (retried at the next "
                        "evaluation): %s", job, s.title, s.destination, s.error)
    except Exception as e:  # noqa: BLE001 - alerts must never fail the job
        log.warning("after job %s: alerts not evaluated (retried after the next run): %s",
                    job, redact(f"{type(e).__name__}: {e}".splitlines()[0]))
