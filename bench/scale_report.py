"""Slopes of bench/scale.py's figures against mart size, extrapolated to full production.

Takes two or more ``bench/scale.py --json`` files of one pair at different scales and, per
figure, fits two models through the smallest and largest scale (mart rows = every mart
and history row, the size the cycle's statements would have to scan):

- linear: ``figure = a + b * rows`` — what a cost that grows with the mart would do;
- power: ``figure = c * rows ** k`` — ``k`` near 0 is flat (cost ∝ batch), near 1 ∝ mart.

Both are extrapolated to the production marts (the rows at scale ``s`` divided by ``s``),
and each figure is set against its limit (a job's catalogue timeout, the cycle's targets).

    .venv/bin/python bench/scale_report.py out_0.01.json out_0.1.json [--pair servers]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def figures(out: dict) -> dict[str, float]:
    """The figures of one pair at one scale, by name."""
    f = {"cycle p50 s": out["cycle_s"]["p50"], "cycle p99 s": out["cycle_s"]["p99"],
         "cycle max s": out["cycle_s"]["max"],
         "backfill process s": out["backfill"]["process_s"],
         "backfill peak RSS MiB": out["backfill"]["peak_rss_mib"],
         "mart bytes": sum(t["bytes"] for t in out["marts_after"].values())}
    for job, res in out["jobs"].items():
        f[f"{job} s"] = res["wall_s"]
    return f


def mart_rows(out: dict) -> int:
    return sum(t["rows"] for t in out["marts_before_cycles"].values())


def limits(out: dict) -> dict[str, float]:
    lim = {f"{job} s": res["timeout_s"] for job, res in out["jobs"].items()}
    lim["cycle p99 s"] = lim["cycle max s"] = 840.0  # the cycle job's own timeout
    return lim


def report(files: list[Path], pair: str) -> str:
    runs = sorted((json.loads(p.read_text()) for p in files), key=lambda r: r["args"]["scale"])
    runs = [r for r in runs if pair in r["pairs"]]
    if len(runs) < 2:
        return f"{pair}: fewer than two scales measured"
    lo, hi = runs[0]["pairs"][pair], runs[-1]["pairs"][pair]
    m_lo, m_hi = mart_rows(lo), mart_rows(hi)
    full = m_hi / hi["scale"]
    f_lo, f_hi, lim = figures(lo), figures(hi), limits(hi)
    lines = [f"{pair} ({hi['pair']}): mart rows {m_lo:,} at {lo['scale']} -> {m_hi:,} at "
             f"{hi['scale']} ({m_hi / m_lo:.1f}x); production marts ~{full:,.0f} rows",
             "| figure | at {} | at {} | ratio | slope per 1M mart rows | power k | full, linear "
             "| full, power | limit | full linear / limit |".format(lo["scale"], hi["scale"]),
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, a in f_lo.items():
        b = f_hi[name]
        slope = (b - a) / (m_hi - m_lo)
        linear = b + slope * (full - m_hi)
        k = math.log(b / a) / math.log(m_hi / m_lo) if a > 0 and b > 0 else float("nan")
        power = b * (full / m_hi) ** k if k == k else float("nan")
        limit = lim.get(name)
        share = f"{linear / limit:.1%}" if limit else ""
        lines.append(f"| {name} | {a:,.2f} | {b:,.2f} | {b / a if a else float('nan'):.2f} | "
                     f"{slope * 1e6:,.4f} | {k:.2f} | {linear:,.1f} | {power:,.1f} | "
                     f"{limit or ''} | {share} |")
    return "\n".join(lines)


def summary(run: dict) -> str:
    """One run's figures as Markdown, per pair."""
    lines = [f"scale {run['args']['scale']}, history ending {run['history_end']}, load "
             f"{run['load_before'][0]:.1f} before and {run['load_after'][0]:.1f} after on "
             f"{run['cores']} cores", ""]
    for out in run["pairs"].values():
        b, c = out["backfill"], out["cycle_s"]
        lines += [f"**{out['pair']}**: source {out['history']['orders']:,} orders, "
                  f"{out['history']['path_events']:,} path events written in "
                  f"{out['history']['seconds']} s; backfill {b['rows']:,} rows in "
                  f"{b['process_s']} s whole process ({b['rows_per_s']:,} rows/s), peak RSS "
                  f"{b['peak_rss_mib']} MiB; {c['n']} cycles, batch per cycle "
                  f"{out['batch_rows']}: p50 {c['p50']} s, p99 {c['p99']} s, max {c['max']} s "
                  f"(min {c['min']} s)", "",
                  "| table | rows after backfill | bytes | rows at the end | bytes |",
                  "|---|---|---|---|---|"]
        for t, v in out["marts_before_cycles"].items():
            e = out["marts_after"][t]
            if v["rows"] or e["rows"]:
                lines.append(f"| {t} | {v['rows']:,} | {v['bytes'] / 2**20:,.1f} MiB | "
                             f"{e['rows']:,} | {e['bytes'] / 2**20:,.1f} MiB |")
        lines += ["", "| job | wall (whole `ot run`) | timeout | share |", "|---|---|---|---|"]
        for job, r in out["jobs"].items():
            lines.append(f"| {job} | {r['wall_s']} s | {r['timeout_s']} s | "
                         f"{r['share_of_timeout']:.2%} |")
        lines += ["", "| compare | source rows | warehouse rows | exit | seconds |",
                  "|---|---|---|---|---|"]
        for t, r in out["compare"].items():
            lines.append(f"| {t} | {r['rows_source']:,} | {r['rows_target']:,} | {r['exit']} | "
                         f"{r['seconds']} |")
        lines += ["", "slowest warehouse statements:", ""]
        lines += [f"- {s['s']} s, {s['job']}: `{s['statement'][:90]}…`"
                  for s in out["slowest_statements"][:8]]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--pair", action="append", help="embedded, servers (default: both)")
    p.add_argument("--summary", action="store_true", help="each file's figures as Markdown")
    args = p.parse_args(argv)
    if args.summary:
        for f in args.files:
            print(summary(json.loads(f.read_text())))
        return 0
    for pair in args.pair or ["servers", "embedded"]:
        print(report(args.files, pair))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
