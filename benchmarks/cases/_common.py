"""What the case drivers share: `mostool flows` rebuilt on the Python API, and memory probes."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from typing import Any

import mostool as mos

__all__ = ["case_args", "run_flows", "flow_log", "proc_status_kb"]


def case_args(doc: str) -> tuple[str, mos.MonitorConfig]:
    """The command line of a case driver: ``TRACE [--rcvbuf BYTES] [--checksums MODE]``; the
    trace and the MonitorConfig (the API's defaults unless given)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("trace")
    ap.add_argument("--rcvbuf", type=int, default=None)
    ap.add_argument("--checksums", default="auto", choices=("auto", "on", "off", "skip"))
    args = ap.parse_args()
    config = mos.MonitorConfig(checksums=args.checksums)
    if args.rcvbuf is not None:
        config = config.replace(rcvbuf=args.rcvbuf)
    return args.trace, config


def run_flows(trace: str, config: mos.MonitorConfig,
              setup: Callable[[mos.MonitorSocket], None] | None = None) -> mos.Monitor:
    """What ``mostool flows -r TRACE`` does (one stream listener, one JSON line per flow, here
    into /dev/null), with ``config`` and whatever ``setup`` registers on the listener."""
    mon = mos.Monitor(config)
    sock = mon.socket(mos.MONITOR_STREAM)
    if setup is not None:
        setup(sock)
    with open(os.devnull, "w") as out:
        log = flow_log(out)
        mon.on_flow_end(log.flow_ended)
        mon.run(mos.replay(trace))
        log.close()
    return mon


def flow_log(out: Any) -> Any:
    """The CLI's flow log writing JSON lines to ``out`` (a plain writer if it moved)."""
    try:
        from mostool.sinks.flowlog import FlowLog
    except ImportError:
        class Plain:
            def flow_ended(self, conn: Any) -> None:
                out.write(json.dumps(conn.record()) + "\n")

            def close(self) -> None:
                pass
        return Plain()
    jsonl = getattr(FlowLog, "jsonl", None)      # formats each line straight from the flow
    return jsonl(out) if jsonl is not None else FlowLog(FlowLog.jsonl_writer(out))


def proc_status_kb(*fields: str) -> dict[str, int]:
    """Fields of /proc/self/status in kB (VmRSS, VmHWM, RssAnon, RssFile ...); 0 if absent."""
    out = dict.fromkeys(fields, 0)
    try:
        with open("/proc/self/status") as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name in out:
                    out[name] = int(rest.split()[0])
    except OSError:
        pass
    return out
