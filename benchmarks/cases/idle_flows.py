"""Memory: bytes per idle established flow, measured in-process.

    .venv/bin/python benchmarks/cases/idle_flows.py [--flows 100000] [--top 12]

Feeds N complete handshakes (SYN, SYN/ACK, ACK; Linux options; no payload) to a Monitor with one
MONITOR_STREAM listener and no callbacks (default MonitorConfig), then measures what the N open
flows hold: first the anonymous RSS delta and the number of objects the cyclic GC tracks (each
one is visited by every full collection), then, on a fresh Monitor, the tracemalloc delta with
the allocation sites that hold it. Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

from _common import proc_status_kb

import mostool as mos

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from synflood import ACK, SERVER, SYN, SYN_OPTIONS, tcp_frame  # noqa: E402

SYNACK_OPTIONS = bytes.fromhex("020405b4" "0402" "080a00000001" "00000000" "01" "030307")
ACK_OPTIONS = bytes.fromhex("0101" "080a00000002" "00000001")


def handshakes(n: int) -> Iterator[tuple[float, bytes]]:
    ts = 1_700_000_000.0
    for i in range(n):
        host = i // 50_000
        cli = bytes([10, (host >> 8) & 0xFF, host & 0xFF, 1])
        port = 10_000 + i % 50_000
        c_isn = (i * 2_654_435_761) & 0xFFFFFFFF
        s_isn = (i * 40_503 + 12_345) & 0xFFFFFFFF
        yield ts, tcp_frame(cli, SERVER, port, 80, c_isn, 0, SYN, SYN_OPTIONS)
        yield ts + 1e-4, tcp_frame(SERVER, cli, 80, port, s_isn, (c_isn + 1) & 0xFFFFFFFF,
                                   SYN | ACK, SYNACK_OPTIONS)
        yield ts + 2e-4, tcp_frame(cli, SERVER, port, 80, (c_isn + 1) & 0xFFFFFFFF,
                                   (s_isn + 1) & 0xFFFFFFFF, ACK, ACK_OPTIONS)
        ts += 1e-3


def open_flows(n: int) -> mos.Monitor:
    mon = mos.Monitor(mos.MonitorConfig())
    mon.socket(mos.MONITOR_STREAM)
    feed = mon.feed
    for ts, frame in handshakes(n):
        feed(ts, 1, frame)
    return mon


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flows", type=int, default=100_000)
    ap.add_argument("--top", type=int, default=12)
    args = ap.parse_args()
    n = args.flows
    # warm up (imports, interned subscription sets, first-call caches) on a few flows
    warm = open_flows(100)
    warm.close()
    del warm
    gc.collect()

    before = proc_status_kb("RssAnon")["RssAnon"]
    tracked0 = len(gc.get_objects())
    mon = open_flows(n)
    gc.collect()
    after = proc_status_kb("RssAnon")["RssAnon"]
    tracked = len(gc.get_objects()) - tracked0
    active = mon.active_flows
    states = {f"{c.state[0].name}/{c.state[1].name}" for c in mon.engine.table.values()}
    mon.close()
    del mon
    gc.collect()

    tracemalloc.start(1)
    snap0 = tracemalloc.take_snapshot()
    mon = open_flows(n)
    gc.collect()
    snap1 = tracemalloc.take_snapshot()
    del mon
    traced = sum(s.size_diff for s in snap1.compare_to(snap0, "filename"))
    repo = str(Path(__file__).resolve().parents[2])
    sites = []
    for stat in snap1.compare_to(snap0, "lineno")[: args.top]:
        frame = stat.traceback[0]
        where = frame.filename.replace(repo + "/", "")
        cut = where.rfind("/mostool/")
        where = where[cut + 1:] if cut >= 0 else where
        sites.append([f"{where}:{frame.lineno}", round(stat.size_diff / n, 1),
                      round(stat.count_diff / n, 2)])
    tracemalloc.stop()
    print(json.dumps({
        "flows": n, "active": active, "states": sorted(states),
        "rss_anon_bytes_per_flow": round((after - before) * 1024 / n, 1),
        "traced_bytes_per_flow": round(traced / n, 1),
        "gc_tracked_objects_per_flow": round(tracked / n, 1),
        "sites": sites,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
