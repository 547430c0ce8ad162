"""OT_LOG_FORMAT=json (or --log-json): every log event one JSON object a line on stderr, with
the cycle's events and their figures, secrets redacted; the default stays human-readable."""

from __future__ import annotations

import json
import subprocess
import sys

from alert_servers import free_port
from test_alerts import record_run, seed

from ot_core.simulate import simulate

OT = [sys.executable, "-m", "ot_core.cli"]


def run_ot(pair, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*OT, *args], capture_output=True, text=True, timeout=120,
                          env=pair.process_env(**env))


def events(stderr: str) -> list[dict]:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    return [json.loads(ln) for ln in lines]  # every line parses, or this fails


def test_a_cycle_logs_one_json_object_per_event(embedded):
    simulate("2026-03-02", start="2026-03-01", orders_per_day=20, seed=3,
             source=embedded.source_url)
    res = run_ot(embedded, "cycle", "--as-of", "2026-03-01T12:00:00Z", OT_LOG_FORMAT="json")
    assert res.returncode == 0, res.stderr
    got = events(res.stderr)
    kinds = [e.get("event") for e in got if e.get("event")]
    tables = ["ecs_order_info", "uni_tracking_info", "uni_tracking_spath"]
    assert kinds == ["cycle_started", *["table_landed"] * 3, *["table_merged"] * 3,
                     "lifecycle", "cycle_finished"]
    landed = [e for e in got if e.get("event") == "table_landed"]
    merged = [e for e in got if e.get("event") == "table_merged"]
    assert [e["table"] for e in landed] == tables == [e["table"] for e in merged]
    assert [e["batch_id"] for e in landed] == [e["batch_id"] for e in merged]
    assert all(e["rows"] > 0 and e["seconds"] >= 0 for e in landed + merged)
    done = got[-1]
    assert done["event"] == "cycle_finished" and done["rows"] == sum(e["rows"] for e in merged)
    assert set(done["batch_ids"]) == set(tables)
    assert all({"time", "level", "logger", "message"} <= set(e) for e in got)
    assert got[0]["time"].endswith("Z") and got[0]["level"] == "INFO"

    # the default: lines for people, nothing at INFO unless -v
    plain = run_ot(embedded, "cycle", "--as-of", "2026-03-01T12:15:00Z")
    assert plain.returncode == 0 and not plain.stderr.lstrip().startswith("{")
    flag = run_ot(embedded, "--log-json", "cycle", "--as-of", "2026-03-01T12:30:00Z")
    assert flag.returncode == 0 and events(flag.stderr)[-1]["event"] == "cycle_finished"


def test_json_logs_redact_secrets_and_a_bad_format_is_refused(embedded):
    seed(embedded)
    record_run(embedded, "cycle", "failed", "SourceUnavailable: the source is down")
    secret = "Hook-Token-0123456789abcdef"
    down = f"json://ot:{secret}@127.0.0.1:{free_port()}/h"
    res = run_ot(embedded, "--log-json", "notify", "run", OT_NOTIFY=down)
    assert res.returncode == 0, res.stderr
    got = events(res.stderr)
    warned = [e for e in got if e["level"] == "WARNING" and "not delivered" in e["message"]]
    assert warned and secret not in res.stderr and secret not in res.stdout
    bad = run_ot(embedded, "status", OT_LOG_FORMAT="xml")
    assert bad.returncode == 2 and "OT_LOG_FORMAT" in bad.stderr
