"""``mos.analyze(web).flows`` against ``mostool flows`` on the same trace (issue: ≤ 1.2×), and
the memory of ``cap.events`` per row.

    .venv/bin/python benchmarks/analyze_bench.py [--traces DIR] [--repeat N] [--append]

Both sides are whole processes run alternately (flows, analyze, flows, analyze ...); the ratio
is the median over the pairs of CPU time (user + sys, ``os.wait4``), as ``run.py`` measures.
The events row runs ``analyze(trace).events`` once in a process of its own and reports the
frame's own bytes per row (``memory_usage(deep=True)``) and the process's peak RSS per row.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# analyze() runs MonitorConfig's defaults: 1 MiB buffered per side (UDE filters can ppeek, and
# overlapping copies are compared); `mostool flows` buffers nothing unless asked, so it is
# measured with the same --rcvbuf (row 1) and as it runs by default (row 2, for the record)
FLOWS_CMD = [sys.executable, "-m", "mostool", "flows", "--rcvbuf", "1048576", "-r"]
FLOWS_PLAIN = [sys.executable, "-m", "mostool", "flows", "-r"]
ANALYZE = ("import sys, mostool as mos; f = mos.analyze(sys.argv[1]).flows; "
           "print(len(f), file=sys.stderr)")
EVENTS = ("import resource, sys, mostool as mos; e = mos.analyze(sys.argv[1]).events; "
          "n = len(e); own = int(e.memory_usage(deep=True).sum()); "
          "rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024; "
          "print(n, own, rss)")


def cpu_of(cmd: list[str]) -> tuple[float, float]:
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return usage.ru_utime + usage.ru_stime, time.monotonic() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--traces", default=str(HERE / "traces"))
    ap.add_argument("--trace", default="web.pcap")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--events-trace", default=None,
                    help="capture for the events row (default: the same trace)")
    ap.add_argument("--append", action="store_true", help="append the rows to results.md")
    args = ap.parse_args()
    trace = Path(args.traces) / args.trace
    if not trace.exists():
        raise SystemExit(f"{trace} not found: run benchmarks/run.py once (it makes the traces)")
    ratios, flows_cpu, analyze_cpu, plain_cpu, plain_ratios = [], [], [], [], []
    for _ in range(args.repeat):
        f, _ = cpu_of([*FLOWS_CMD, str(trace)])
        a, _ = cpu_of([sys.executable, "-c", ANALYZE, str(trace)])
        p, _ = cpu_of([*FLOWS_PLAIN, str(trace)])
        flows_cpu.append(f)
        analyze_cpu.append(a)
        plain_cpu.append(p)
        ratios.append(a / f)
        plain_ratios.append(a / p)
    events_trace = Path(args.events_trace) if args.events_trace else trace
    out = subprocess.run([sys.executable, "-c", EVENTS, str(events_trace)], check=True,
                         capture_output=True, text=True).stdout.split()
    rows, own, rss = (int(x) for x in out)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                            capture_output=True, text=True).stdout.strip()
    lines = [
        f"### analyze() - {time.strftime('%Y-%m-%d %H:%M')} at {commit} "
        f"(load {os.getloadavg()[0]:.2f})",
        "",
        "| case | trace | flows CPU s (min) | analyze CPU s (min) | × flows (median) | target |",
        "|---|---|---:|---:|---:|---|",
        f"| analyze(...).flows vs flows --rcvbuf 1048576 (same config) | {trace.name} | "
        f"{min(flows_cpu):.2f} | {min(analyze_cpu):.2f} | {statistics.median(ratios):.2f}× "
        "| ≤ 1.2× |",
        f"| analyze(...).flows vs flows (default: nothing buffered) | {trace.name} | "
        f"{min(plain_cpu):.2f} | {min(analyze_cpu):.2f} | {statistics.median(plain_ratios):.2f}× "
        "| – |",
        "",
        f"`analyze({events_trace.name}).events`: {rows:,} rows; the frame holds "
        f"{own / max(rows, 1):.0f} B/row; the process peaked at {rss / max(rows, 1):.0f} B/row "
        f"of RSS ({rss / 2**20:.0f} MiB, interpreter and mapped capture included).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.append:
        with open(HERE / "results.md", "a", encoding="utf-8") as fh:
            fh.write("\n" + text)


if __name__ == "__main__":
    main()
