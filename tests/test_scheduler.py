"""The scheduler on a controlled clock: cron slots, missed runs coalesced, clean SIGTERM."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ot_core.jobs.catalogue import parse_catalogue
from ot_core.jobs.scheduler import Scheduler, latest_slot, next_slot

CAT = parse_catalogue({"jobs": {
    "cycle": {"notebook": "notebooks/jobs/cycle.ipynb", "schedule": "*/15 * * * *"},
    "daily_monitoring": {"notebook": "notebooks/jobs/daily_monitoring.ipynb", "schedule": "0 3 * * *"},
}})


class Clock:
    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_slots():
    assert latest_slot("*/15 * * * *", at("2026-11-26 06:15:00")) == at("2026-11-26 06:15:00")
    assert latest_slot("*/15 * * * *", at("2026-11-26 06:29:59")) == at("2026-11-26 06:15:00")
    assert next_slot("*/15 * * * *", at("2026-11-26 06:15:00")) == at("2026-11-26 06:30:00")
    assert next_slot("0 3 * * *", at("2026-11-26 03:00:00")) == at("2026-11-27 03:00:00")


def test_runs_each_slot_once_on_a_controlled_clock(tmp_path):
    clock = Clock(at("2026-11-26 02:07:00"))
    launched: list[tuple[str, datetime]] = []

    def launcher(job: str) -> int:
        launched.append((job, clock()))
        clock.now += timedelta(seconds=40)  # a job takes time
        return 0

    s = Scheduler(CAT, launcher=launcher, clock=clock, sleep=clock.sleep,
                  state_path=tmp_path / "state.json", max_sleep=3600)
    s.run(install_signals=False, max_ticks=12)
    cycle_times = [t for j, t in launched if j == "cycle"]
    # the first start catches nothing up; then every quarter hour exactly once
    assert [t.strftime("%H:%M") for t in cycle_times][:5] == ["02:15", "02:30", "02:45", "03:00", "03:15"]
    assert len(cycle_times) == len(set(cycle_times))
    daily = [t for j, t in launched if j == "daily_monitoring"]
    # due at 03:00 together with the cycle: runs once, right after it (catalogue order)
    assert len(daily) == 1 and daily[0] == at("2026-11-26 03:00:40")


def test_missed_slots_after_downtime_run_once(tmp_path):
    state = tmp_path / "state.json"
    clock = Clock(at("2026-11-25 23:50:00"))
    launched: list[str] = []
    s = Scheduler(CAT, launcher=lambda j: launched.append(j) or 0, clock=clock,
                  sleep=clock.sleep, state_path=state)
    s.tick()  # first sight: remembers 23:45 and 2026-11-25 03:00, runs nothing
    assert launched == []
    # the scheduler is down from 23:50 until 05:10 next day: 21 cycle slots and one daily
    clock.now = at("2026-11-26 05:10:00")
    s2 = Scheduler(CAT, launcher=lambda j: launched.append(j) or 0, clock=clock,
                   sleep=clock.sleep, state_path=state)
    assert s2.due(clock()) == ["cycle", "daily_monitoring"]
    s2.tick()
    assert launched == ["cycle", "daily_monitoring"]
    s2.tick()
    assert launched == ["cycle", "daily_monitoring"], "caught up: nothing is due twice"
    assert s2.last["cycle"] == at("2026-11-26 05:00:00")
    clock.now = at("2026-11-26 05:15:00")
    s2.tick()
    assert launched[-1] == "cycle" and len(launched) == 3


def test_sigterm_stops_after_the_running_job(tmp_path):
    clock = Clock(at("2026-11-26 06:14:00"))
    events: list[str] = []

    def launcher(job: str) -> int:
        events.append(f"start {job}")
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the job runs
        events.append(f"end {job}")
        return 0

    s = Scheduler(CAT, launcher=launcher, clock=clock, sleep=clock.sleep,
                  state_path=tmp_path / "state.json", max_sleep=60)
    old = signal.getsignal(signal.SIGTERM)
    try:
        ticks = s.run(install_signals=True, max_ticks=100)
    finally:
        signal.signal(signal.SIGTERM, old)
    assert events == ["start cycle", "end cycle"]
    assert s.stopping and ticks <= 3
    assert (tmp_path / "state.json").exists(), "the finished job's slot is remembered"


def test_ot_schedule_says_what_it_will_do_and_leaves_at_once_on_sigterm(tmp_path):
    """As an operator starts it: one line per job with its next slot, then SIGTERM while no
    job runs ends it within moments (it used to nap up to 30 s first)."""
    import queue
    import subprocess
    import sys
    import threading
    import time

    jobs = tmp_path / "jobs.yml"
    jobs.write_text("jobs:\n  cycle:\n    notebook: cycle.ipynb\n    schedule: '0 0 1 1 *'\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OT_")}
    env.update(OT_JOBS=str(jobs), OT_RUNS_DIR=str(tmp_path / "runs"),
               OT_DATA_DIR=str(tmp_path / "data"))
    proc = subprocess.Popen([sys.executable, "-m", "ot_core", "schedule"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(ln) for ln in proc.stdout], daemon=True)
    reader.start()

    def line() -> str:
        try:
            return lines.get(timeout=30)
        except queue.Empty:
            raise AssertionError("ot schedule printed nothing at start") from None

    try:
        first, second = line(), line()
        time.sleep(1.0)  # well into its first nap
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        reader.join(timeout=10)
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = "".join(lines.queue)
    assert first.startswith(f"ot schedule: 1 jobs from {jobs}, slots remembered in "), first
    assert second.split() == ["cycle", "0", "0", "1", "1", "*", "next",
                              f"{datetime.now(UTC).year + 1}-01-01T00:00:00Z"]
    assert proc.returncode == 0, err
    assert out.strip().endswith("stopped") and "Traceback" not in err


def test_crontab_names_the_catalogue_it_was_generated_from(tmp_path, monkeypatch):
    from ot_core.jobs.catalogue import catalogue_path, load_catalogue
    from ot_core.jobs.scheduler import crontab

    header = crontab(load_catalogue()).splitlines()[0]
    named = header.split(" from ")[1].split(";")[0]
    assert Path(named).is_file() and Path(named) == catalogue_path()
    mine = tmp_path / "my-jobs.yml"
    mine.write_text("jobs:\n  cycle:\n    notebook: cycle.ipynb\n    schedule: '*/15 * * * *'\n")
    monkeypatch.setenv("OT_JOBS", str(mine))
    assert f" from {mine};" in crontab(load_catalogue()).splitlines()[0]


def test_alerts_are_evaluated_between_jobs_every_watch_interval(tmp_path):
    """`ot schedule --notify-every 5m`: `ot notify run` at start and every five minutes while
    jobs run on their own slots; a watcher that fails is logged and the loop goes on."""
    clock = Clock(at("2026-11-26 02:07:00"))
    watched: list[datetime] = []
    launched: list[datetime] = []

    def watcher() -> int:
        watched.append(clock())
        return 75 if len(watched) == 2 else 0  # one failed evaluation changes nothing

    s = Scheduler(CAT, launcher=lambda j: launched.append(clock()) or 0, clock=clock,
                  sleep=clock.sleep, state_path=tmp_path / "state.json", max_sleep=3600,
                  watch_every=300, watcher=watcher)
    s.run(install_signals=False, max_ticks=8)
    assert [t.strftime("%H:%M") for t in watched][:4] == ["02:07", "02:12", "02:17", "02:22"]
    gaps = [(b - a).total_seconds() for a, b in zip(watched, watched[1:], strict=False)]
    assert all(g <= 300 for g in gaps)
    assert [t.strftime("%H:%M") for t in launched][:2] == ["02:15", "02:30"]
