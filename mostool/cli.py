"""The `mostool` command line: flows and events over capture files.

Thin shell: argument parsing, sources, sinks and exit codes. Exit status 0 on success (a damaged
capture still gives 0, with a warning on stderr), 2 on unusable input with a one-line message.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from typing import IO, Any

from mostool.config import MonitorConfig
from mostool.errors import MosError
from mostool.events.trace import trace_record
from mostool.events.types import BUILTIN_EVENTS, Event, Side, UserEvent
from mostool.monitor import MONITOR_STREAM, Monitor
from mostool.sinks.flowlog import FlowLog

EXAMPLES_FLOWS = """examples:
  mostool flows -r capture.pcap
  mostool flows -r a.pcap -r b.pcapng --hash --format csv
  mostool flows -r capture.pcap --midstream tcp port 80
"""
EXAMPLES_EVENTS = """examples:
  mostool events -r capture.pcap
  mostool events -r capture.pcap --only ON_CONN_START,ON_CONN_END host 10.0.0.1
"""


class UsageError(Exception):
    """Unusable input or arguments: one line on stderr, exit status 2."""


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-r", "--read", dest="files", action="append", metavar="FILE",
                   help="capture file (pcap or pcapng); repeat to merge several by time")
    p.add_argument("--midstream", action="store_true",
                   help="pick up flows whose handshake was not captured")
    p.add_argument("--idle-timeout", type=float, default=600.0, metavar="SECONDS",
                   help="end a flow after this long without a packet (default 600, 0 = never)")
    p.add_argument("--rcvbuf", type=int, default=None, metavar="BYTES",
                   help="bytes buffered per receiving side for peek (default 1 MiB)")
    p.add_argument("--overlap", choices=("first", "last"), default="first",
                   help="which copy of overlapping bytes wins (default first)")
    p.add_argument("--checksums", choices=("auto", "on", "off"), default="auto",
                   help="drop bad-checksum segments: auto (default), on, off")
    p.add_argument("--time-wait", type=float, default=0.0, metavar="SECONDS",
                   help="how long a closed flow lingers in TIME_WAIT (default 0)")
    p.add_argument("--mos-compat", action="store_true", help="reproduce mOS 0.3's quirks")
    p.add_argument("bpf", nargs="*", metavar="BPF",
                   help="libpcap filter expression applied to every frame, as tcpdump")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mostool",
        description="mOS-style TCP flow monitoring over pcap replay and live capture.",
        epilog="examples:\n  mostool flows -r capture.pcap --hash\n"
               "  mostool events -r capture.pcap --format jsonl",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    flows = sub.add_parser("flows", help="one record per TCP flow",
                           epilog=EXAMPLES_FLOWS,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_common(flows)
    flows.add_argument("--format", choices=("jsonl", "csv", "table"), default="jsonl")
    flows.add_argument("--hash", action="store_true",
                       help="SHA-256 of each direction's reassembled bytes")
    events = sub.add_parser("events", help="every built-in event as one JSON line",
                            epilog=EXAMPLES_EVENTS,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_common(events)
    events.add_argument("--format", choices=("jsonl",), default="jsonl")
    events.add_argument("--only", default=None, metavar="NAMES",
                        help="comma-separated event names to print (default all)")
    return parser


def _config(args: argparse.Namespace, **extra: Any) -> MonitorConfig:
    kwargs: dict[str, Any] = {
        "midstream": args.midstream,
        "idle_timeout": args.idle_timeout if args.idle_timeout and args.idle_timeout > 0
        else None,
        "overlap": args.overlap,
        "checksums": args.checksums,
        "time_wait": args.time_wait,
        "mos_compat": args.mos_compat,
    }
    if args.rcvbuf is not None:
        kwargs["rcvbuf"] = args.rcvbuf
    kwargs.update(extra)
    try:
        return MonitorConfig(**kwargs)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def _source(args: argparse.Namespace) -> Any:
    from mostool.replay import CaptureError, ReplaySource
    if not args.files:
        raise UsageError("no input: give -r FILE")
    try:
        src: Any = ReplaySource(args.files)
    except CaptureError as exc:
        raise UsageError(str(exc)) from exc
    if args.bpf:
        src = _Filtered(src, " ".join(args.bpf))
    return src


class _Filtered:
    """A source whose frames pass a BPF filter first (tcpdump's trailing filter words)."""

    def __init__(self, inner: Any, expression: str) -> None:
        from mostool.bpf import BpfError, BpfFilter
        try:
            self.filter = BpfFilter(expression)
        except BpfError as exc:
            raise UsageError(str(exc)) from exc
        self.inner = inner
        self.name = inner.name
        self.warnings = inner.warnings

    def frames(self) -> Iterator[tuple[float, int, bytes, int]]:
        matches = self.filter.matches
        for frame in self.inner.frames():
            if frame[1] < 0 or matches(frame[1], frame[2]):
                yield frame

    def stop(self) -> None:
        self.inner.stop()

    def stats(self) -> dict[str, Any]:
        return dict(self.inner.stats())


def _warn(mon: Monitor, err: IO[str]) -> None:
    for warning in mon.warnings:
        err.write(f"mostool: warning: {warning}\n")
    if mon.failures:
        err.write(f"mostool: warning: {mon.engine.dispatcher.callback_errors} callback "
                  f"error(s); first: {mon.failures[0]}\n")


def cmd_flows(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    mon = Monitor(_config(args, hash_streams=args.hash, rcvbuf=args.rcvbuf or 0))
    mon.socket(MONITOR_STREAM)
    rows: list[dict[str, Any]] = []
    if args.format == "jsonl":
        log = FlowLog(FlowLog.jsonl_writer(out))
    elif args.format == "csv":
        log = FlowLog(FlowLog.csv_writer(out))
    else:
        log = FlowLog(rows.append)
    mon.on_flow_end(log.flow_ended)
    mon.run(_source(args))
    log.close()
    if args.format == "table":
        _print_table(rows, out)
    _warn(mon, err)
    return 0


def _print_table(rows: list[dict[str, Any]], out: IO[str]) -> None:
    from rich.console import Console
    from rich.table import Table
    table = Table(title=f"{len(rows)} TCP flows")
    for col in ("id", "client", "server", "end", "states", "c2s bytes", "s2c bytes", "gaps",
                "rexmit"):
        table.add_column(col, justify="right" if "bytes" in col or col in ("id", "gaps",
                                                                          "rexmit") else "left")
    for r in rows:
        table.add_row(str(r["id"]), r["client"], r["server"], r["end_reason"],
                      f"{r['client_state']}/{r['server_state']}", str(r["c2s"]["bytes"]),
                      str(r["s2c"]["bytes"]), str(r["c2s"]["gaps"] + r["s2c"]["gaps"]),
                      str(r["c2s"]["rexmit"] + r["s2c"]["rexmit"]))
    Console(file=out, width=160).print(table)


def cmd_events(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    mon = Monitor(_config(args))
    sock = mon.socket(MONITOR_STREAM)
    wanted = None
    if args.only:
        wanted = {n.strip().upper() for n in args.only.split(",") if n.strip()}
        known = {e.name for e in BUILTIN_EVENTS}
        unknown = wanted - known
        if unknown:
            raise UsageError(f"unknown event name(s): {', '.join(sorted(unknown))}")
    engine = mon.engine
    dumps = json.dumps

    def record(flow: Any, side: Side, event: Event | UserEvent) -> None:
        out.write(dumps(trace_record(engine.packet_number, engine.now,
                                     getattr(flow, "id", 0), side, event)) + "\n")

    for etype in BUILTIN_EVENTS:
        if wanted is not None and etype.name not in wanted:
            continue
        for hook in etype.hooks:
            sock.on(etype, hook, record)
    mon.run(_source(args))
    _warn(mon, err)
    return 0


def main(argv: Sequence[str] | None = None, out: IO[str] | None = None,
         err: IO[str] | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(out)
        return 2
    try:
        if args.command == "flows":
            return cmd_flows(args, out, err)
        if args.command == "events":
            return cmd_events(args, out, err)
    except UsageError as exc:
        err.write(f"mostool: error: {exc}\n")
        return 2
    except MosError as exc:
        err.write(f"mostool: error: {exc}\n")
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
    return 2
