"""Memory: a SYN flood (every SYN a new half-open flow) through `mostool flows`.

    .venv/bin/python benchmarks/cases/synflood_run.py TRACE [--max-flows N]

One MONITOR_STREAM listener, no callbacks, flow records into /dev/null; the default
MonitorConfig except ``max_flows``. Prints one JSON object on stdout: flows, evictions, and
the process's memory when the last frame was read (before the end-of-capture flush) and at exit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

from _common import flow_log, proc_status_kb

import mostool as mos

FIELDS = ("VmRSS", "VmHWM", "RssAnon", "RssFile")


class Probe:
    """A source wrapper that reads /proc/self/status after the last frame."""

    def __init__(self, inner: Any, mon: mos.Monitor) -> None:
        self.inner = inner
        self.mon = mon
        self.name = inner.name
        self.warnings = inner.warnings
        self.at_last_frame: dict[str, int] = {}
        self.active_at_last_frame = 0

    def frames(self) -> Iterator[Any]:
        yield from self.inner.frames()
        self._probe()

    def pcap_records(self) -> Any:
        """The inner source's in-place records (what Monitor.run uses for a pcap at top
        speed), probed after their last frame."""
        records = self.inner.pcap_records()
        if records is not None:
            rest = records.rest

            def probed_rest() -> Iterator[Any]:
                yield from rest()
                self._probe()
            records.rest = probed_rest
        return records

    def _probe(self) -> None:
        self.at_last_frame = proc_status_kb(*FIELDS)
        self.active_at_last_frame = self.mon.active_flows

    def stop(self) -> None:
        self.inner.stop()

    def stats(self) -> dict[str, Any]:
        return dict(self.inner.stats())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace")
    ap.add_argument("--max-flows", type=int, default=None)
    args = ap.parse_args()
    config = (mos.MonitorConfig() if args.max_flows is None
              else mos.MonitorConfig(max_flows=args.max_flows))
    mon = mos.Monitor(config)
    mon.socket(mos.MONITOR_STREAM)
    probe = Probe(mos.replay(args.trace), mon)
    with open(os.devnull, "w") as out:
        log = flow_log(out)
        mon.on_flow_end(log.flow_ended)
        st = mon.run(probe)
        log.close()
    print(json.dumps({
        "max_flows": config.max_flows, "flows": st["flows"], "evicted": st["evicted"],
        "active_at_last_frame": probe.active_at_last_frame,
        "kb_at_last_frame": probe.at_last_frame, "kb_at_exit": proc_status_kb(*FIELDS),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
