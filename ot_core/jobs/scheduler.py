"""``ot schedule``: run the catalogue in the foreground on its cron expressions.

Policy: each job remembers the last slot it was run for (a small state file under the
runs folder). After downtime a job whose slots were missed runs ONCE, not once per missed
slot. Jobs due at the same tick run one after another in catalogue order, each through the
launcher (by default ``ot run JOB`` in a child process: a crashing notebook cannot take the
scheduler down, and the job's lock still prevents overlap with runs started elsewhere).
SIGTERM/SIGINT stop the loop cleanly after the running job ends; between jobs the loop
naps in short steps, so it leaves within a moment of the signal. What it does (the jobs
and their next slots at start, each job's start and exit) is said on the ``announce``
callback (``ot schedule`` prints it), besides the log.

The clock, the sleep and the launcher are injectable so tests drive it on a controlled clock.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from croniter import croniter

from ot_core.jobs.catalogue import Catalogue, catalogue_path, load_catalogue
from ot_core.resources import runs_dir
from ot_core.timeutil import iso, parse_as_of, utcnow

log = logging.getLogger("ot.scheduler")
Launcher = Callable[[str], int]
NAP = 0.25  # seconds: how long a stop request can go unnoticed between jobs


def subprocess_launcher(job: str) -> int:
    """``ot run JOB`` in its own session: a group SIGTERM leaves it to finish."""
    cmd = [sys.executable, "-m", "ot_core.cli", "run", job]
    return subprocess.run(cmd, start_new_session=True).returncode


def notify_launcher() -> int:
    """``ot notify run`` in its own session, as a job is started."""
    cmd = [sys.executable, "-m", "ot_core.cli", "notify", "run"]
    return subprocess.run(cmd, start_new_session=True, stdout=subprocess.DEVNULL).returncode


def latest_slot(schedule: str, now: datetime) -> datetime:
    """The last slot of ``schedule`` at or before ``now``."""
    return croniter(schedule, now + timedelta(seconds=1)).get_prev(datetime)


def next_slot(schedule: str, after: datetime) -> datetime:
    """The first slot strictly after ``after``."""
    return croniter(schedule, after).get_next(datetime)


class Scheduler:
    def __init__(self, catalogue: Catalogue | None = None, *, launcher: Launcher = subprocess_launcher,
                 clock: Callable[[], datetime] = utcnow, sleep: Callable[[float], None] | None = None,
                 state_path: Path | None = None, max_sleep: float = 30.0,
                 announce: Callable[[str], None] | None = None,
                 watch_every: float | None = None, watcher: Callable[[], int] | None = None):
        self.catalogue = catalogue or load_catalogue()
        self.launcher, self.clock = launcher, clock
        self.sleep = sleep or self._nap
        self.announce = announce or (lambda _text: None)
        self.state_path = state_path or (runs_dir() / ".scheduler-state.json")
        self.max_sleep = max_sleep
        self.stopping = False
        self.running: str | None = None  # the job being run now
        self.last: dict[str, datetime] = self._load_state()
        self.history: list[tuple[str, datetime, int]] = []  # (job, started, exit code)
        # between jobs, every ``watch_every`` seconds: ``ot notify run`` (alerts evaluated
        # even when no job runs for a while, e.g. every cycle skipped or nothing due)
        self.watch_every, self.watcher = watch_every, watcher or notify_launcher
        self.last_watch: datetime | None = None

    # -- state -----------------------------------------------------------------------------
    def _load_state(self) -> dict[str, datetime]:
        try:
            data = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}
        return {k: parse_as_of(v) for k, v in data.items() if k in self.catalogue.jobs}

    def _save_state(self) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: iso(v) for k, v in self.last.items()}, indent=1))
        tmp.replace(self.state_path)

    # -- the loop ----------------------------------------------------------------------------
    def due(self, now: datetime) -> list[str]:
        """Jobs with at least one slot in (last handled slot, now]."""
        out = []
        for name, spec in self.catalogue.jobs.items():
            if name not in self.last:  # first sight: start from now, nothing is "missed"
                self.last[name] = latest_slot(spec.schedule, now)
                continue
            if next_slot(spec.schedule, self.last[name]) <= now:
                out.append(name)
        return out

    def tick(self) -> list[str]:
        """Run every due job once (missed slots coalesced); returns the jobs run."""
        ran = []
        for name in self.due(self.clock()):
            if self.stopping:
                break
            spec = self.catalogue.jobs[name]
            started = self.clock()
            missed = self._missed(spec.schedule, self.last[name], started)
            if missed > 1:
                log.warning("job %s missed %d slots since %s: running it once", name, missed,
                            iso(self.last[name]))
            self.announce(f"{iso(started)} {name}: started")
            self.running = name
            try:
                code = self.launcher(name)
            finally:
                self.running = None
            self.history.append((name, started, code))
            log.info("job %s exited %d", name, code)
            self.announce(f"{iso(self.clock())} {name}: exited {code} after "
                          f"{(self.clock() - started).total_seconds():.0f} s")
            self.last[name] = latest_slot(spec.schedule, started)
            self._save_state()
            ran.append(name)
        self._save_state()
        return ran

    @staticmethod
    def _missed(schedule: str, last: datetime, now: datetime, cap: int = 10_000) -> int:
        it, n = croniter(schedule, last), 0
        while n < cap and it.get_next(datetime) <= now:
            n += 1
        return n

    def seconds_to_next(self) -> float:
        now = self.clock()
        nxt = min(next_slot(s.schedule, self.last.get(n, now)) for n, s in self.catalogue.jobs.items())
        return max(0.0, (nxt - now).total_seconds())

    def seconds_to_watch(self) -> float:
        if not self.watch_every:
            return float("inf")
        if self.last_watch is None:
            return 0.0
        return max(0.0, self.watch_every - (self.clock() - self.last_watch).total_seconds())

    def watch(self) -> bool:
        """Evaluate alerts when ``watch_every`` has passed since the last time (the first
        time at once); a failure is logged, never stops the scheduler."""
        if not self.watch_every or self.stopping or self.seconds_to_watch() > 0:
            return False
        self.last_watch = self.clock()
        code = self.watcher()
        if code != 0:
            log.warning("`ot notify run` exited %d: alerts not evaluated this time", code)
        return True

    def request_stop(self, *_args) -> None:
        if self.stopping:
            return
        self.stopping = True
        if self.running:
            log.warning("stop requested: finishing the running job %s, then exiting", self.running)

    def _nap(self, seconds: float) -> None:
        """Sleep up to ``seconds``, waking early once a stop is requested (a signal does not
        cut ``time.sleep`` short: it resumes after the handler)."""
        end = time.monotonic() + seconds
        while not self.stopping and (left := end - time.monotonic()) > 0:
            time.sleep(min(NAP, left))

    def plan(self) -> list[str]:
        """What the loop will do: the catalogue, where slots are remembered, each job's next
        slot (said once at start)."""
        now = self.clock()
        lines = [f"ot schedule: {len(self.catalogue.jobs)} jobs from {catalogue_path()}, "
                 f"slots remembered in {self.state_path}; SIGTERM or Ctrl-C stops it"]
        for name, spec in self.catalogue.jobs.items():
            last = self.last.get(name)
            due = last is not None and next_slot(spec.schedule, last) <= now
            nxt = "now (a slot was missed)" if due else iso(next_slot(spec.schedule, now))
            lines.append(f"  {name:<18} {spec.schedule:<14} next {nxt}")
        return lines

    def run(self, *, install_signals: bool = True, max_ticks: int | None = None) -> int:
        """Loop until stopped (SIGTERM/SIGINT) or ``max_ticks`` ticks; returns ticks done."""
        if install_signals:
            signal.signal(signal.SIGTERM, self.request_stop)
            signal.signal(signal.SIGINT, self.request_stop)
        for line in self.plan():
            self.announce(line)
        ticks = 0
        while not self.stopping and (max_ticks is None or ticks < max_ticks):
            self.tick()
            self.watch()
            ticks += 1
            if self.stopping:
                break
            self.sleep(max(0.5, min(self.max_sleep, self.seconds_to_next(),
                                    self.seconds_to_watch())))
        self.announce(f"{iso(self.clock())} stopped")
        return ticks


def default_ot() -> str:
    """The ``ot`` executable beside this Python (what a crontab line should call)."""
    return str(Path(sys.executable).with_name("ot"))


def crontab(cat: Catalogue | None = None, *, ot: str | None = None,
            notify: str | None = None) -> str:
    """Crontab lines equivalent to ``ot schedule`` (cron's own overlap guard is the job lock).
    ``notify`` (a cron expression) adds the line that evaluates alerts when no job runs
    (docs/operations.md#cron)."""
    cat = cat or load_catalogue()
    lines = [f"# generated by `ot crontab` from {catalogue_path()}; schedules are UTC",
             "CRON_TZ=UTC"]
    for name, spec in cat.jobs.items():
        lines.append(f"{spec.schedule} {ot or default_ot()} run {name} >> {runs_dir()}/cron.log 2>&1")
    if notify:
        if not croniter.is_valid(notify) or len(notify.split()) != 5:
            from ot_core.errors import UsageError

            raise UsageError(f"--notify {notify!r} is not a 5-field cron expression "
                             "(e.g. '*/5 * * * *')")
        lines.append(f"{notify} {ot or default_ot()} notify run >> {runs_dir()}/notify.log 2>&1")
    return "\n".join(lines) + "\n"
