"""What alerts and ``ot status`` cost: the evaluation every ``ot run`` adds after its job
(nothing changed, and a change delivered to a webhook on loopback), ``ot status`` as a
whole process, and importing Apprise in a fresh process. Seeds a small embedded demo
(SQLite → DuckDB) in a temporary OT_DATA_DIR. Prints medians; asserts nothing.

    .venv/bin/python bench/alerts.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PY = sys.executable


def webhook() -> tuple[ThreadingHTTPServer, list]:
    posts: list = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, posts


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    runs = ap.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(OT_DATA_DIR=tmp, OT_RUNS_DIR=f"{tmp}/runs", OT_MAX_LAG="30d")
        from ot_core.jobs import records
        from ot_core.jobs.alerts import evaluate
        from ot_core.pipeline.cycle import run_cycle
        from ot_core.simulate import simulate
        from ot_core.timeutil import utcnow

        simulate("2026-03-03", start="2026-03-01", orders_per_day=200, seed=3)
        run_cycle("2026-03-02T12:00:00Z")
        server, posts = webhook()
        os.environ["OT_NOTIFY"] = f"json://127.0.0.1:{server.server_address[1]}/hook"
        from ot_core.config import load_config
        from ot_core.db.connect import open_database

        cfg = load_config()
        same, changed = [], []
        for n in range(runs):
            db = open_database("warehouse")
            now = utcnow()
            status = "failed" if n % 2 == 0 else "succeeded"  # a change on every run
            run_id = records.start_run(db, cfg, "cycle", {}, now, None)
            records.finish_run(db, cfg, run_id, status=status, ended=now + timedelta(seconds=1),
                               notebook_path="x", error="Boom: bench" if n % 2 == 0 else None,
                               figures=None)
            db.dispose()
            changed.append(timed(lambda: evaluate()))
            same.append(timed(lambda: evaluate()))
        status_proc = [timed(lambda: subprocess.run([PY, "-m", "ot_core.cli", "status"],
                                                    capture_output=True)) for _ in range(runs)]
        imports = [timed(lambda: subprocess.run([PY, "-c", "import apprise"]))
                   for _ in range(runs)]
        server.shutdown()
    print(f"runs: {runs}; webhook posts received: {len(posts)}")
    print(f"evaluate, a change delivered:   median {statistics.median(changed) * 1000:7.1f} ms")
    print(f"evaluate, nothing changed:      median {statistics.median(same) * 1000:7.1f} ms")
    print(f"`ot status` as a process:       median {statistics.median(status_proc) * 1000:7.1f} ms")
    print(f"python -c 'import apprise':     median {statistics.median(imports) * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
