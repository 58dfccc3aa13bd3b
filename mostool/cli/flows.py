"""`mostool flows`: one record per TCP flow (JSON lines, CSV or a table)."""

from __future__ import annotations

import argparse
from typing import IO, Any

from mostool.cli.common import (
    add_common_options,
    add_write_option,
    config_from,
    warn,
)
from mostool.cli.distributed import add_dist_options, wants_distributed
from mostool.cli.outputs import add_output_options, run_with_outputs
from mostool.config import MonitorConfig
from mostool.monitor import MONITOR_STREAM, Monitor
from mostool.sinks.flowlog import FlowLog, tunnel_kinds
from mostool.sinks.zeeklog import ZeekConnLog

EXAMPLES_FLOWS = """examples:
  mostool flows -r capture.pcap
  mostool flows -r a.pcap -r b.pcapng --hash --format csv
  mostool flows -r capture.pcap --midstream tcp port 80
  mostool flows -i eth0 -w session.pcap --hash tcp port 443     (Ctrl-C ends it)
  mostool flows -r capture.pcap --speed 2 -c 1000
"""


def register(sub: Any) -> None:
    """Add `flows` to ``mostool``'s subparsers."""
    flows = sub.add_parser("flows", help="one record per TCP flow",
                           epilog=EXAMPLES_FLOWS,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(flows)
    add_write_option(flows)
    flows.add_argument("--format", choices=("jsonl", "csv", "table", "zeek"), default="jsonl",
                       help="jsonl (default), csv, table (for people) or zeek (a Zeek "
                            "conn.log: zeek-cut, zat and other Zeek-log readers take it)")
    flows.add_argument("--hash", action="store_true",
                       help="SHA-256 of each direction's reassembled bytes")
    add_output_options(flows, write=False)   # -w added above, with its own help
    add_dist_options(flows)
    flows.set_defaults(func=cmd_flows)


def cmd_flows(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    config = config_from(args, hash_streams=args.hash, rcvbuf=args.rcvbuf or 0)
    rows: list[dict[str, Any]] = []
    zeek = ZeekConnLog(out) if args.format == "zeek" else None
    if zeek is not None:
        log = FlowLog(zeek.write)
    elif args.format == "jsonl":
        log = FlowLog.jsonl(out)
    elif args.format == "csv":
        log = FlowLog(FlowLog.csv_writer(out))
    else:
        log = FlowLog(rows.append)
    if wants_distributed(args):
        return _flows_in_workers(args, config, log, zeek, rows, out, err)
    mon = Monitor(config)
    mon.socket(MONITOR_STREAM)
    log.watch(mon)
    run_with_outputs(mon, args, err)
    log.close()
    if zeek is not None:
        zeek.close()
    if args.format == "table":
        _print_table(rows, out)
    out.flush()
    warn(mon, err)
    return 0


def _flows_in_workers(args: argparse.Namespace, config: MonitorConfig, log: FlowLog,
                      zeek: ZeekConnLog | None, rows: list[dict[str, Any]], out: IO[str],
                      err: IO[str]) -> int:
    """--workers N / --dask: the capture shared out by flow (mostool.dist)."""
    from mostool.cli.distributed import run_distributed
    from mostool.dist import Job, merge_flow_lines, merge_flows
    lines = args.format == "jsonl"          # formatted by the workers, renumbered here
    run = run_distributed(args, Job("flows", config, Monitor, jsonl=lines), err)
    if lines:
        out.writelines(merge_flow_lines(run["results"]))
    else:
        for record in merge_flows(run["results"]):
            log.write(record)
    if zeek is not None:
        zeek.close()
    if args.format == "table":
        _print_table(rows, out)
    out.flush()
    for warning in run["warnings"]:
        err.write(f"mostool: warning: {warning}\n")
    return 0


def _print_table(rows: list[dict[str, Any]], out: IO[str]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text
    table = Table(title=f"{len(rows)} TCP flows")
    for col in ("id", "client", "server", "start (UTC)", "duration", "end", "states",
                "zeek", "history", "c2s bytes", "s2c bytes", "gaps", "rexmit"):
        table.add_column(col, no_wrap=True, justify="right" if "bytes" in col or col in (
            "id", "gaps", "rexmit", "duration") else "left")
    # how flows were carried: a column only when some flow came through a tunnel
    tunnelled = any("tunnel" in r for r in rows)
    if tunnelled:
        table.add_column("tunnel", no_wrap=True)
    for r in rows:
        # cells as Text: "[fd00::1]:80" is data, not a markup tag
        table.add_row(*(Text(cell) for cell in (
            str(r["id"]), r["client"], r["server"], _time(r["start"]), _duration(r),
            r["end_reason"], f"{r['client_state']}/{r['server_state']}",
            r.get("conn_state", ""), r.get("history", ""), str(r["c2s"]["bytes"]),
            str(r["s2c"]["bytes"]), str(r["c2s"]["gaps"] + r["s2c"]["gaps"]),
            str(r["c2s"]["rexmit"] + r["s2c"]["rexmit"]),
            *((tunnel_kinds(r),) if tunnelled else ()))))
    # a terminal's own width (cells are cut, never wrapped); 160 columns into a file or pipe
    Console(file=out, width=None if _isatty(out) else 160).print(table)


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _time(ts: float) -> str:
    """A packet timestamp as people read it (UTC, to the millisecond)."""
    import datetime
    try:
        when = datetime.datetime.fromtimestamp(ts, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return repr(ts)
    return when.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _duration(record: dict[str, Any]) -> str:
    from mostool.view.render import fmt_duration
    return fmt_duration(max(record["end"] - record["start"], 0.0))
