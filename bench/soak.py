"""Soak: many cycles against an advancing source, killed and restarted, then checked whole.

Each step advances the simulated source by ``--step`` (new orders, in-place status updates,
same-second updates, late and out-of-order path events, reactivations ~7 months on) with
``ot simulate --until T`` and runs ``ot cycle --as-of T`` in a child process. A
``--kill-fraction`` of the steps is SIGKILLed: half by a timer at a random moment within a
typical cycle's duration, half at a failpoint (``OT_FAILPOINT``: after a load or a merge,
after the lifecycle's archive or before its trim, of a random table); the same ``as_of`` is
then rerun, which must end where one clean run would. Retention is one month, so archive,
trim and reactivation run throughout. With ``--servers`` the source is a private MariaDB
and the warehouse a private PostgreSQL, each crashed and restarted ``--outages`` times in
the middle of a cycle; a cycle that fails meanwhile is rerun once the server is back.

At the end every table is checked against the source: the conservation invariant (every
extracted key in exactly one of mart or history, with its latest content) and
``ot compare --json``. Prints cycles, kills, outages, keys lost / duplicated / wrong, p50 /
p99 of the unkilled cycles' wall time (child start to exit) and the total; exits 1 if any
key is lost, duplicated or wrong, 2 if a cycle failed for good.

Children are forked from this process after it imported the CLI (``--spawn fork``, the
default: no interpreter start per cycle) and run exactly ``ot``'s command line;
``--spawn exec`` starts ``.venv/bin/ot`` instead.

    .venv/bin/python bench/soak.py --quick                    # 30 cycles, 3 kills
    .venv/bin/python bench/soak.py --cycles 1000              # SQLite -> DuckDB
    .venv/bin/python bench/soak.py --servers --cycles 100     # MariaDB -> PostgreSQL
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from bench.soak_check import TABLES, final_check, first_module  # noqa: E402
from bench.soak_servers import start_servers  # noqa: E402

FAILPOINTS = ("after_load", "after_merge", "lifecycle_after_archive", "lifecycle_before_trim")
EXIT_RETRY = 75


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Run:
    """One child process: what it ran, how it ended, how long it took."""

    args: list[str]
    code: int
    seconds: float
    stdout: str
    stderr: str

    @property
    def killed(self) -> bool:
        return self.code == -signal.SIGKILL

    @property
    def busy(self) -> bool:
        """Another run holds the cycle's lock (exit 75 naming the running one)."""
        return self.code == EXIT_RETRY and "already running" in self.last_line()

    @property
    def transient(self) -> bool:
        """A typed transient failure: exit 75, or exit 1 with 'ot: transient: ...' (the
        CLI's code for it before exit codes followed the error model)."""
        return self.code == EXIT_RETRY or (
            self.code == 1 and self.last_line().startswith("ot: transient:"))

    def last_line(self) -> str:
        """The CLI's error line, or a traceback's last exception (and its SQL)."""
        lines = [x for x in (self.stderr or self.stdout).strip().splitlines() if x.strip()]
        if not lines:
            return f"exit {self.code}"
        if lines[-1].startswith("ot: "):
            return lines[-1][:300]
        exc = [i for i, x in enumerate(lines) if re.match(r"^[\w.]+(Error|Exception)\b", x)]
        if not exc:
            return lines[-1][:300]
        sql = [x for x in lines[exc[-1]:] if x.startswith("[SQL:")]
        return (lines[exc[-1]] + (" " + sql[0] if sql else ""))[:300]


@dataclass
class Figures:
    steps: int = 0
    children: int = 0
    kills_planned: int = 0
    kills: int = 0
    kills_by_timer: int = 0
    kills_by_failpoint: int = 0
    timer_missed: int = 0
    failpoint_not_reached: int = 0
    reruns: int = 0
    lock_busy: int = 0
    transient_failures: int = 0
    other_failures: list[str] = field(default_factory=list)
    kill_log: list[str] = field(default_factory=list)
    outages: list[dict] = field(default_factory=list)
    rows_merged: int = 0
    recovered_batches: int = 0
    rows_archived: int = 0
    rows_trimmed: int = 0
    rows_reactivated: int = 0
    exceptions_opened: int = 0
    cycle_seconds: list[float] = field(default_factory=list)
    backfill_seconds: float = 0.0


class Runner:
    """Runs ``ot ARGS`` as a child (forked or exec'd), optionally killed after a delay."""

    def __init__(self, spawn: str, env: dict[str, str], logs: Path):
        self.spawn, self.env, self.logs = spawn, env, logs
        self.n = 0
        if spawn == "fork":
            importlib.import_module("ot_core.cli")  # what every cycle imports, once
            first_module("ot_core.jobs.lock")
            first_module("ot_core.cycle", "ot_core.pipeline.cycle")

    def run(self, args: list[str], extra_env: dict[str, str] | None = None,
            kill_after: float | None = None, timeout: float = 900.0) -> Run:
        self.n += 1
        out, err = self.logs / f"{self.n:05d}.out", self.logs / f"{self.n:05d}.err"
        env = {**self.env, **(extra_env or {})}
        t0 = time.perf_counter()
        if self.spawn == "fork":
            pid = self._fork(args, env, out, err)
        else:
            with open(out, "wb") as o, open(err, "wb") as e:
                pid = subprocess.Popen([str(ROOT / ".venv/bin/ot"), *args], stdout=o, stderr=e,
                                       env={**os.environ, **env}).pid
        # the timer kills the child while it is still unreaped (its pid cannot be reused);
        # the watchdog ends a child that hangs
        timers = [threading.Timer(kill_after, os.kill, (pid, signal.SIGKILL))] if kill_after else []
        timers.append(threading.Timer(timeout, os.kill, (pid, signal.SIGKILL)))
        for t in timers:
            t.start()
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        seconds = time.perf_counter() - t0
        for t in timers:
            t.cancel()
            t.join()
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        return Run(args, code, seconds, out.read_text(errors="replace"),
                   err.read_text(errors="replace"))

    @staticmethod
    def _fork(args: list[str], env: dict[str, str], out: Path, err: Path) -> int:
        pid = os.fork()
        if pid:
            return pid
        code = 1
        try:  # the child: ot's own command line, its output in the log files
            for fd, path in ((1, out), (2, err)):
                f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(f, fd)
                os.close(f)
            os.environ.update(env)
            from ot_core.cli import main
            main(args=args, prog_name="ot")
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)


class Outage:
    """Crash a server after a delay, keep it down, start it again (a thread)."""

    def __init__(self, server, delay: float, down: float, step: int):
        self.server, self.delay, self.down, self.step = server, delay, down, step
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.record: dict = {}
        self.crashed_at = float("inf")

    def _run(self) -> None:
        time.sleep(self.delay)
        t0 = self.crashed_at = time.perf_counter()
        self.server.crash()
        time.sleep(self.down)
        self.server.start()
        self.record = {"server": self.server.name, "step": self.step,
                       "after_s": round(self.delay, 2),
                       "down_s": round(time.perf_counter() - t0, 2)}


def write_config(path: Path, retention_months: int) -> None:
    """The default pipeline config with a short retention (read where the package keeps it)."""
    cfg_mod = importlib.import_module("ot_core.config")
    data = yaml.safe_load(Path(cfg_mod.DEFAULT_CONFIG).read_text())
    data.setdefault("lifecycle", {})["retention_months"] = retention_months
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def percentile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


def absorb(fig: Figures, run: Run) -> None:
    """Add an unkilled cycle's own figures (``ot cycle --json``) to the totals."""
    try:
        res = json.loads(run.stdout)
    except ValueError:
        return
    for t in res.get("tables", {}).values():
        fig.rows_merged += t.get("rows_merged", 0)
        fig.recovered_batches += t.get("recovered_batches", 0)
    lc = res.get("lifecycle") or {}
    fig.rows_archived += lc.get("rows_archived", 0)
    fig.rows_trimmed += lc.get("rows_trimmed", 0)
    fig.rows_reactivated += lc.get("rows_reactivated", 0)
    fig.exceptions_opened += lc.get("exceptions_opened", 0)


def run_step(runner: Runner, fig: Figures, cfg: Path, as_of: str, rng: random.Random,
             kill: str | None, outages: list[Outage], typical: float) -> None:
    """One as_of: the planned kill (if any), then reruns until one ends cleanly."""
    args = ["cycle", "--as-of", as_of, "--json", "--config", str(cfg)]
    extra: dict[str, str] = {}
    kill_after = None
    if kill == "timer":
        kill_after = rng.uniform(0.1, 0.95) * typical
    elif kill == "failpoint":
        extra["OT_FAILPOINT"] = f"{rng.choice(FAILPOINTS)}:{rng.choice(TABLES)}"
    for o in outages:
        o.thread.start()
    attempts = 0
    first_end = None
    while True:
        run = runner.run(args, extra, kill_after)
        first_end = first_end or time.perf_counter()
        fig.children += 1
        attempts += 1
        planned = kill if attempts == 1 else None
        if planned:
            what = (f"timer {kill_after:.2f} s" if planned == "timer"
                    else f"failpoint {extra['OT_FAILPOINT']}")
            fig.kill_log.append(f"{as_of} {what}: {'killed' if run.killed else 'not killed'}")
            if run.killed:
                fig.kills += 1
                if planned == "timer":
                    fig.kills_by_timer += 1
                else:
                    fig.kills_by_failpoint += 1
            elif planned == "timer":
                fig.timer_missed += 1
            else:
                fig.failpoint_not_reached += 1
        extra, kill_after = {}, None
        if run.code == 0:
            if attempts == 1:
                fig.cycle_seconds.append(run.seconds)
            absorb(fig, run)
            break
        fig.reruns += 1
        outage_now = any(o.thread.is_alive() or o.record for o in outages)
        for o in outages:
            o.thread.join()  # a failed cycle is rerun once its server is back
        if run.killed and not planned and not outage_now:
            fig.other_failures.append(f"{as_of}: killed by the watchdog (hung)")
        elif run.busy:
            fig.lock_busy += 1
            time.sleep(0.5)
        elif run.transient:
            fig.transient_failures += 1
        elif not run.killed:
            fig.other_failures.append(f"{as_of} (attempt {attempts}, outage "
                                      f"{'yes' if outage_now else 'no'}): {run.last_line()}")
            if attempts >= 4:
                raise RuntimeError(f"cycle {as_of} failed {attempts} times: {run.last_line()}")
            time.sleep(1.0)
    for o in outages:
        o.thread.join()
        fig.outages.append({**o.record, "mid_cycle": o.crashed_at < first_end})


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cycles", type=int, default=None,
                   help="steps (default 1000 embedded, 100 with --servers, 30 with --quick)")
    p.add_argument("--servers", action="store_true",
                   help="private MariaDB source and PostgreSQL warehouse, restarted mid-cycle")
    p.add_argument("--quick", action="store_true", help="a small source and 30 cycles (CI)")
    p.add_argument("--kill-fraction", type=float, default=0.10)
    p.add_argument("--outages", type=int, default=3, help="crash/restarts per server (--servers)")
    p.add_argument("--outage-seconds", type=float, default=3.0, help="how long a server stays down")
    p.add_argument("--step-minutes", type=int, default=15, help="simulated time per cycle")
    p.add_argument("--days", type=int, default=None,
                   help="history of the new source (default 215, 40 with --quick)")
    p.add_argument("--orders-per-day", type=int, default=None, help="default 300, 150 with --quick")
    p.add_argument("--start", default="2026-03-02T00:00:00Z", help="the source's first 'until'")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--retention-months", type=int, default=1)
    p.add_argument("--spawn", choices=("fork", "exec"), default="fork")
    p.add_argument("--keep", action="store_true", help="keep the soak's directory")
    p.add_argument("--sabotage", action="store_true",
                   help="lose, duplicate and alter one key each before the final check "
                        "(shows the check finds them; exits 1)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    a.cycles = a.cycles or (30 if a.quick else 100 if a.servers else 1000)
    a.days = a.days or (40 if a.quick else 215)
    a.orders_per_day = a.orders_per_day or (150 if a.quick else 300)
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    wall0 = time.perf_counter()
    base = Path(tempfile.mkdtemp(prefix="ot-soak-"))
    os.chmod(base, 0o755)  # the private servers run as their own users inside it
    (base / "logs").mkdir()
    env = {"OT_DATA_DIR": str(base / "data"), "OT_RUNS_DIR": str(base / "runs")}
    for k in ("OT_SOURCE_URL", "OT_WAREHOUSE_URL", "OT_FAILPOINT", "OT_PAUSEPOINT", "OT_CONFIG"):
        os.environ.pop(k, None)
    servers = ()
    if a.servers:
        maria, pg = servers = start_servers(base)
        env.update(OT_SOURCE_URL=maria.url, OT_WAREHOUSE_URL=pg.url)
    cfg = base / "pipeline.yml"
    write_config(cfg, a.retention_months)
    rng = random.Random(a.seed)
    fig = Figures()
    runner = Runner(a.spawn, env, base / "logs")
    start = datetime.fromisoformat(a.start.replace("Z", "+00:00"))
    step = timedelta(minutes=a.step_minutes)
    failed = None
    try:
        r = runner.run(["simulate", "--until", iso(start), "--days", str(a.days),
                        "--orders-per-day", str(a.orders_per_day), "--seed", str(a.seed)])
        if r.code:
            raise RuntimeError(f"ot simulate failed: {r.last_line()}")
        r = runner.run(["cycle", "--as-of", iso(start), "--json", "--config", str(cfg)])
        if r.code:
            raise RuntimeError(f"the backfill cycle failed: {r.last_line()}")
        fig.backfill_seconds = r.seconds
        absorb(fig, r)
        n_kill = round(a.kill_fraction * a.cycles)
        kills = dict(zip(rng.sample(range(a.cycles), n_kill),
                         ["timer", "failpoint"] * n_kill, strict=False))
        fig.kills_planned = n_kill
        free = [i for i in range(a.cycles) if i not in kills]
        outage_at: dict[int, list] = {}
        for srv in servers:
            for i in rng.sample(free, min(a.outages, len(free))):
                outage_at.setdefault(i, []).append(srv)
        as_of = start
        for i in range(a.cycles):
            as_of = start + (i + 1) * step
            r = runner.run(["simulate", "--until", iso(as_of), "--seed", str(a.seed)])
            if r.code:
                raise RuntimeError(f"ot simulate --until {iso(as_of)} failed: {r.last_line()}")
            typical = percentile(fig.cycle_seconds[-20:], 50) if fig.cycle_seconds else 1.5
            outages = [Outage(s, rng.uniform(0.1, 0.9) * typical, a.outage_seconds, i)
                       for s in outage_at.get(i, [])]
            run_step(runner, fig, cfg, iso(as_of), rng, kills.get(i), outages, typical)
            fig.steps += 1
            if not a.json and (i + 1) % max(1, a.cycles // 10) == 0:
                print(f"  {i + 1}/{a.cycles} cycles, {fig.kills} kills, "
                      f"{len(fig.outages)} outages, {time.perf_counter() - wall0:.0f} s",
                      file=sys.stderr)
        check = final_check(runner, env, cfg, as_of, a.sabotage)
    except Exception as e:  # the soak's own failure: report what ran so far
        failed = f"{type(e).__name__}: {e}"
        check = {}
    finally:
        for s in servers:
            s.destroy()
    return report(a, fig, check, failed, base, time.perf_counter() - wall0)


def report(a, fig: Figures, check: dict, failed: str | None, base: Path, wall: float) -> int:
    cons = check.get("conservation", {})
    lost = sum(v["lost"] for v in cons.values())
    dup = sum(v["duplicated"] for v in cons.values())
    wrong = sum(v["wrong"] + v["not_in_source"] + v["unexcused_old"] for v in cons.values())
    cmp_bad = sum((c.get("missing") or 0) + (c.get("extra") or 0) + (c.get("changed") or 0)
                  for c in check.get("compare", {}).values())
    cmp_err = [t for t, c in check.get("compare", {}).items() if "error" in c]
    bad = bool(lost or dup or wrong or cmp_bad or cmp_err)
    code = 2 if failed else 1 if bad else 0
    out = {
        "mode": "servers (MariaDB -> PostgreSQL)" if a.servers else "embedded (SQLite -> DuckDB)",
        "spawn": a.spawn, "cycles": fig.steps, "cycle_processes": fig.children,
        "step_minutes": a.step_minutes, "source_days": a.days, "orders_per_day": a.orders_per_day,
        "kills_planned": fig.kills_planned, "kills": fig.kills,
        "kills_by_timer": fig.kills_by_timer, "kills_by_failpoint": fig.kills_by_failpoint,
        "timer_missed": fig.timer_missed, "failpoint_not_reached": fig.failpoint_not_reached,
        "reruns": fig.reruns, "lock_busy": fig.lock_busy,
        "transient_failures": fig.transient_failures, "other_failures": fig.other_failures,
        "kill_log": fig.kill_log,
        "outages": fig.outages, "rows_merged": fig.rows_merged,
        "recovered_batches": fig.recovered_batches, "rows_archived": fig.rows_archived,
        "rows_trimmed": fig.rows_trimmed, "rows_reactivated": fig.rows_reactivated,
        "exceptions_opened": fig.exceptions_opened,
        "keys_lost": lost, "keys_duplicated": dup, "keys_wrong": wrong,
        "compare_mismatches": cmp_bad, "check": check,
        "backfill_s": round(fig.backfill_seconds, 2),
        "cycle_p50_s": round(percentile(fig.cycle_seconds, 50), 3),
        "cycle_p99_s": round(percentile(fig.cycle_seconds, 99), 3),
        "wall_s": round(wall, 1), "failed": failed,
        "kept": str(base) if (a.keep or failed or bad) else None,
    }
    if a.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"soak {out['mode']}, spawn {a.spawn}: {fig.steps} cycles of {a.step_minutes} min "
              f"({fig.children} cycle processes), source {a.days} days x {a.orders_per_day} "
              "orders/day, retention 1 month")
        print(f"kills {fig.kills} of {fig.kills_planned} planned ({fig.kills_by_timer} timer, "
              f"{fig.kills_by_failpoint} failpoint; {fig.timer_missed} timers fired after the "
              f"cycle ended, {fig.failpoint_not_reached} failpoints not reached); reruns "
              f"{fig.reruns}, lock busy {fig.lock_busy}, transient failures "
              f"{fig.transient_failures}, other failures {len(fig.other_failures)}")
        fps = [k.split()[2].rstrip(":") for k in fig.kill_log if " failpoint " in k and k.endswith(": killed")]
        if fps:
            print("  failpoints hit: " + ", ".join(sorted(fps)))
        for f in fig.other_failures[:10]:
            print(f"  failure: {f}")
        print(f"outages {len(fig.outages)}: " + ", ".join(
            f"{o['server']} at step {o['step']} (+{o['after_s']} s, down {o['down_s']} s"
            f"{', mid-cycle' if o['mid_cycle'] else ', between cycles'})"
            for o in fig.outages))
        print(f"rows merged {fig.rows_merged:,}, recovered batches {fig.recovered_batches}, "
              f"archived {fig.rows_archived:,}, trimmed {fig.rows_trimmed:,}, reactivated "
              f"{fig.rows_reactivated}, exceptions opened {fig.exceptions_opened}")
        for t, v in cons.items():
            c = check["compare"].get(t, {})
            print(f"  {t}: {v.get('checked', 0):,} keys checked; lost {v['lost']}, duplicated "
                  f"{v['duplicated']}, wrong {v['wrong']}, not in source {v['not_in_source']}, "
                  f"old rows unexcused {v['unexcused_old']}; compare missing {c.get('missing')}, "
                  f"extra {c.get('extra')}, changed {c.get('changed')}"
                  + (f" ({c['error']})" if "error" in c else ""))
        for v in check.get("violations_sample", []):
            print(f"  violation: {v}")
        print(f"keys lost {lost}, duplicated {dup}, wrong {wrong}; compare mismatches {cmp_bad}")
        print(f"cycle wall time p50 {out['cycle_p50_s']:.2f} s, p99 {out['cycle_p99_s']:.2f} s "
              f"({len(fig.cycle_seconds)} unkilled cycles); backfill {out['backfill_s']:.1f} s; "
              f"total {wall:.0f} s")
        if failed:
            print(f"SOAK FAILED: {failed}")
        if out["kept"]:
            print(f"kept: {base}")
    if not out["kept"]:
        shutil.rmtree(base, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
