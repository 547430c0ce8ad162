"""How fast ``ot simulate`` writes a source: orders, status updates and path events per
second into a fresh SQLite file (the default embedded source).

    .venv/bin/python bench/simulate.py --days 7 --orders-per-day 10000

Prints one line per run and the median; the file is deleted afterwards.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ot_core.simulate import simulate  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--orders-per-day", type=int, default=10_000)
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
    times = []
    for i in range(a.runs):
        with tempfile.TemporaryDirectory() as tmp:
            r = simulate("2026-11-01T00:00:00Z", days=a.days, orders_per_day=a.orders_per_day,
                         source=f"sqlite:///{tmp}/source.sqlite")
        times.append(r.seconds)
        print(f"run {i + 1}: {r.orders:,} orders, {r.uti_upserts:,} status rows, "
              f"{r.path_events:,} path events in {r.seconds:.1f} s "
              f"({r.path_events / r.seconds:,.0f} path events/s)", flush=True)
    print(f"median {statistics.median(times):.1f} s over {a.runs} runs "
          f"({a.days} days × {a.orders_per_day:,} orders/day)")


if __name__ == "__main__":
    main()
