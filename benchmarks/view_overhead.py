"""What the `mostool watch` view costs: a top-speed replay with and without it (not a test).

Each capture is repeated (timestamps shifted so the copies follow each other) into a temporary
pcap long enough for a few seconds of replay, then replayed at top speed alternately

* without the view: a Monitor with one MONITOR_STREAM listener and a 64 KiB receive buffer -
  what `watch` sets up when no app is given;
* with the view: the same plus ``Watch(interactive=True)`` drawing the full screen, 4 times a
  second, into an in-memory 120x40 terminal.

The best of the alternating runs of each is kept; the ratio is with/without throughput.
Times are the process's CPU time (the machine may be shared), each run after a full garbage
collection (otherwise the previous run's flows are collected during the next one, a cost that
lands on whichever run comes second).

    .venv/bin/python benchmarks/view_overhead.py [PCAP ...] [--seconds 3] [--runs 5]
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402

from mostool.cli.watch import WATCH_RCVBUF  # noqa: E402
from mostool.config import MonitorConfig  # noqa: E402
from mostool.monitor import MONITOR_STREAM, Monitor  # noqa: E402
from mostool.pcapfile import PcapWriter, read_capture  # noqa: E402
from mostool.replay import ReplaySource  # noqa: E402
from mostool.view.watch import Watch  # noqa: E402

NETGEN = Path(__file__).resolve().parents[2] / "shared" / "pcaps" / "netgen"
DEFAULTS = [NETGEN / "bulk_transfer.pcap", NETGEN / "http_many_short.pcap"]


def repeated(pcap: Path, copies: int, out: str) -> int:
    """Write ``copies`` back-to-back copies of ``pcap`` to ``out``; returns the frame count."""
    frames = list(read_capture(pcap))
    span = frames[-1][0] - frames[0][0] + 1.0
    w = PcapWriter(out)
    for k in range(copies):
        shift = k * span
        for ts, linktype, data, wire in frames:
            w.write(ts + shift, linktype, bytes(data), wire)
    w.close()
    return len(frames) * copies


def run_plain(path: str) -> float:
    gc.collect()                     # the previous run's garbage is not this run's cost
    mon = Monitor(MonitorConfig(rcvbuf=WATCH_RCVBUF))
    mon.socket(MONITOR_STREAM)
    t0 = time.process_time()
    mon.run(ReplaySource([path]))
    return time.process_time() - t0


def run_view(path: str) -> tuple[float, int, float]:
    gc.collect()
    mon = Monitor(MonitorConfig(rcvbuf=WATCH_RCVBUF))
    console = Console(file=io.StringIO(), width=120, height=40, force_terminal=True,
                      color_system="truecolor")
    watch = Watch(mon, console, interactive=True)
    t0 = time.process_time()
    watch.run(ReplaySource([path]))
    return time.process_time() - t0, watch.draws, watch.draw_time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pcaps", nargs="*", type=Path, default=DEFAULTS)
    ap.add_argument("--seconds", type=float, default=3.0,
                    help="about how long one replay should take (default 3)")
    ap.add_argument("--runs", type=int, default=5, help="alternating runs of each (default 5)")
    args = ap.parse_args()
    missing = [p for p in args.pcaps if not p.exists()]
    if missing:
        sys.exit(f"view_overhead: missing {', '.join(map(str, missing))}")
    print(f"{'capture':<24}{'packets':>10}{'without pps':>14}{'with pps':>12}{'ratio':>8}"
          f"{'draws':>7}{'draw ms':>9}")
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for pcap in args.pcaps:
            probe = os.path.join(tmp, "probe.pcap")
            n1 = repeated(pcap, 1, probe)
            t1 = min(run_plain(probe) for _ in range(3))
            copies = max(1, int(args.seconds / max(t1, 1e-6)))
            path = os.path.join(tmp, f"{pcap.stem}.pcap")
            n = repeated(pcap, copies, path)
            plain: list[float] = []
            view: list[float] = []
            draws = 0
            draw_time = 0.0
            for _ in range(args.runs):
                plain.append(run_plain(path))
                t, d, dt = run_view(path)
                view.append(t)
                draws, draw_time = d, dt
            without, with_view = n / min(plain), n / min(view)
            ratio = with_view / without
            ratios.append(ratio)
            print(f"{pcap.name:<24}{n:>10,}{without:>14,.0f}{with_view:>12,.0f}{ratio:>8.3f}"
                  f"{draws:>7}{1000 * draw_time / max(draws, 1):>9.1f}")
            del n1
    print(f"throughput with the view / without: {', '.join(f'{r:.3f}' for r in ratios)} "
          f"(cost {', '.join(f'{100 * (1 - r):.1f}%' for r in ratios)})")


if __name__ == "__main__":
    main()
