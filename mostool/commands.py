"""The everyday subcommands: `watch`, `run`, `streams`, and the output options of every command.

``register(subparsers)`` adds the subcommands to `mostool`'s parser, each with
``func=cmd_*`` set as its default, so ``args.func(args, out, err)`` runs one. The shared output
options (``--events-out``, ``--flows-out``, ``-w``, ``--flow``) are added to a parser with
``add_output_options`` and served by ``Outputs``; `flows` and `events` use them too.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from collections import deque
from collections.abc import Iterator
from typing import IO, Any

from mostool.apps import SHIPPED, App, AppError, start_apps
from mostool.cli import (
    UsageError,
    _add_common,
    _check_stop_options,
    _config,
    _run,
    _source,
    _stop_on_signals,
    _warn,
)
from mostool.errors import CallbackError
from mostool.monitor import MONITOR_STREAM, Monitor
from mostool.sinks.select import FlowSelector, stream_sockets
from mostool.view.model import SORT_KEYS

__all__ = ["register", "add_output_options", "Outputs", "cmd_watch", "cmd_run", "cmd_streams"]

_RAW = argparse.RawDescriptionHelpFormatter
# Without an app nobody reads the bytes; a small buffer still lets a retransmission be compared
# with what was received before (overlap conflicts). --rcvbuf 0: faster, no such comparison.
WATCH_RCVBUF = 64 << 10
_SHIPPED = ", ".join(SHIPPED)

EXAMPLES_WATCH = f"""examples:
  mostool watch -r capture.pcap
  mostool watch -r capture.pcap --app http --speed 1
  mostool watch -r a.pcap -r b.pcapng --sort rate tcp port 443
  mostool watch -r capture.pcap --app ./my_app.py:setup --events-out events.jsonl

keys: q quit, s change the sort column, p pause (--hold keeps the last screen until q)
apps: {_SHIPPED}, path/to/app.py[:func] or package.module[:func]
Without a terminal (piped output, CI) the view is replaced by the summary printed at the end.
"""
EXAMPLES_RUN = f"""examples:
  mostool run -r capture.pcap --app midstat
  mostool run -r capture.pcap --app http --app rexmit
  mostool run -r capture.pcap --app ./my_app.py --strict

apps: {_SHIPPED}, path/to/app.py[:func] or package.module[:func]
An app is a function setup(mon) that registers sockets, callbacks and UDEs on the Monitor and
may return a function that prints its report after the run.
"""
EXAMPLES_STREAMS = """examples:
  mostool streams -r capture.pcap -o flows/
  mostool streams -r capture.pcap -o flows/ --flow 3,7 tcp port 80
  mostool streams -r capture.pcap -o flows/ --flow 10.0.0.1:443

Each direction's reassembled bytes go to DIR/SRC.SPORT-DST.DPORT (tcpflow names); bytes the
capture missed are left out and listed, with their offsets, in DIR/index.jsonl.
"""


# -- output options shared by every command -------------------------------------------------------


def add_output_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("outputs")
    g.add_argument("--events-out", metavar="FILE.jsonl",
                   help="write every event (built-ins and UDEs) as JSON lines")
    g.add_argument("--flows-out", metavar="FILE",
                   help="write one record per flow: FILE.csv, FILE.parquet (needs pyarrow) "
                        "or JSON lines")
    if "-w" not in p._option_string_actions:
        g.add_argument("-w", "--write", dest="write", metavar="OUT.pcap",
                       help="write the frames that went through (after the BPF; with --flow, "
                            "of those flows) to a pcap")
    g.add_argument("--flow", metavar="SPEC",
                   help="with -w (and streams): only these flows - ids as `mostool flows` "
                        "numbers them (3,5-7) or endpoints (10.0.0.1:80, [2001:db8::1]:443)")


class Outputs:
    """The ``--events-out``/``--flows-out``/``-w`` outputs of one run.

    Create it once the listeners (and apps) are set up and the source is open, pass the source
    through ``wrap``, and call ``close`` after the run, also when it failed::

        source = _source(args)
        outs = Outputs(args, mon)
        try:
            _run(mon, outs.wrap(source), args, err)
        finally:
            outs.close()
    """

    def __init__(self, args: argparse.Namespace, mon: Monitor, *, write_pcap: bool = True
                 ) -> None:
        """``write_pcap=False`` leaves ``-w`` to the caller (a live source that records
        itself); ``--flow`` then needs ``-w`` handled here, so it is refused."""
        self.mon = mon
        self.write_path: str | None = getattr(args, "write", None) if write_pcap else None
        spec = getattr(args, "flow", None)
        self.select: FlowSelector | None = None
        if spec:
            try:
                self.select = FlowSelector(spec)
            except ValueError as exc:
                raise UsageError(str(exc)) from exc
            if not write_pcap and getattr(args, "write", None):
                raise UsageError("--flow with -w is for replays (-r); a live capture (-i) "
                                 "records every packet")
        self._events_file: IO[str] | None = None
        self.recorder: Any = None
        self.flows: Any = None
        self.packets: Any = None
        events_out = getattr(args, "events_out", None)
        flows_out = getattr(args, "flows_out", None)
        for path in (events_out, flows_out, self.write_path):
            if path:
                _check_writable(path)
        try:
            if flows_out:
                from mostool.sinks.flows_out import FlowsOut
                self.flows = FlowsOut(mon, flows_out)
            if events_out:
                from mostool.sinks.events_out import EventRecorder
                self._events_file = open(events_out, "w", encoding="utf-8")  # noqa: SIM115
                self.recorder = EventRecorder(mon, self._events_file)
                self.recorder.attach()
        except ValueError as exc:
            self.close()
            raise UsageError(str(exc)) from exc
        except OSError as exc:
            self.close()
            raise UsageError(f"cannot write {exc.filename}: {exc.strerror}") from exc

    def wrap(self, source: Any) -> Any:
        if not self.write_path:
            return source
        from mostool.sinks.pcap_out import PacketWriter
        try:
            self.packets = PacketWriter(self.mon, source, self.write_path, self.select)
        except OSError as exc:
            raise UsageError(f"cannot write {exc.filename}: {exc.strerror}") from exc
        return self.packets

    def close(self) -> None:
        if self.packets is not None:
            self.packets.close()
            self.packets = None
        if self.flows is not None:
            self.flows.close()
            self.flows = None
        if self._events_file is not None:
            self._events_file.close()
            self._events_file = None


def _check_writable(path: str) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError(f"cannot write {path}: it is a directory")
    if not os.path.isdir(parent):
        raise UsageError(f"cannot write {path}: no directory {parent}")


# -- registration ---------------------------------------------------------------------------------


def register(sub: Any) -> None:
    """Add `watch`, `run` and `streams` to ``mostool``'s subparsers."""
    watch = sub.add_parser("watch", help="live terminal view of flows and events (like htop)",
                           description="A live view of a replay or capture: progress, rates, "
                                       "the busiest flows, the latest events, counters.",
                           epilog=EXAMPLES_WATCH, formatter_class=_RAW)
    _add_common(watch)
    _add_app_options(watch)
    watch.add_argument("--sort", choices=SORT_KEYS, default="bytes",
                       help="flow table order, busiest first (default bytes; key s cycles)")
    watch.add_argument("--refresh", type=float, default=4.0, metavar="HZ",
                       help="screen updates per second (default 4)")
    watch.add_argument("--all-events", action="store_true",
                       help="observe every event, state changes and data included (exact "
                            "counts, a fuller feed; costs throughput)")
    watch.add_argument("--hold", action="store_true",
                       help="keep the last screen when the replay ends, until q")
    watch.add_argument("--plain", action="store_true",
                       help="no live view: only the summary at the end (automatic when "
                            "the output is no terminal)")
    add_output_options(watch)
    watch.set_defaults(func=cmd_watch)

    run = sub.add_parser("run", help="run monitoring apps over a capture (no view)",
                         description="Load apps (--app) into one Monitor and run it; each "
                                     "app prints its own output and report.",
                         epilog=EXAMPLES_RUN, formatter_class=_RAW)
    _add_common(run)
    _add_app_options(run)
    add_output_options(run)
    run.set_defaults(func=cmd_run)

    streams = sub.add_parser("streams", help="each direction's reassembled bytes to a file",
                             description="Write every flow's two byte streams to files in DIR, "
                                         "as tcpflow does, with an index of flows and gaps.",
                             epilog=EXAMPLES_STREAMS, formatter_class=_RAW)
    _add_common(streams)
    streams.add_argument("-o", "--outdir", required=True, metavar="DIR",
                         help="directory for the stream files and index.jsonl")
    add_output_options(streams)
    streams.set_defaults(func=cmd_streams)


def _add_app_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--app", action="append", metavar="SPEC",
                   help=f"load an app: {_SHIPPED}, path/to/app.py[:func] or "
                        "module[:func] (repeat for several)")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first exception in an app's callback (default: count "
                        "it, report it, go on)")


# -- watch ----------------------------------------------------------------------------------------


def _apps(mon: Monitor, specs: list[str] | None) -> list[App]:
    try:
        return start_apps(mon, specs)
    except AppError as exc:
        raise UsageError(str(exc)) from exc


def _open(args: argparse.Namespace, mon: Monitor) -> tuple[Any, Outputs]:
    """The command's source, wrapped by its outputs (opened after the source, so a missing
    capture file leaves no empty output behind)."""
    source = _source(args)
    try:
        outs = Outputs(args, mon)
        try:
            return outs.wrap(source), outs
        except BaseException:
            outs.close()
            raise
    except BaseException:
        close = getattr(source, "close", None)
        if callable(close):
            close()
        raise


class _Tail(io.TextIOBase):
    """Keeps the last lines written (an app's output while the full-screen view is up)."""

    def __init__(self, limit: int = 2000) -> None:
        self.lines: deque[str] = deque(maxlen=limit)
        self.dropped = 0
        self._partial = ""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        text = self._partial + s
        *lines, self._partial = text.split("\n")
        for line in lines:
            if len(self.lines) == self.lines.maxlen:
                self.dropped += 1
            self.lines.append(line)
        return len(s)

    def replay(self, out: IO[str]) -> None:
        if self.dropped:
            out.write(f"[{self.dropped} earlier line(s) of app output not kept]\n")
        for line in self.lines:
            out.write(line + "\n")
        if self._partial:
            out.write(self._partial + "\n")


@contextlib.contextmanager
def _captured(enabled: bool) -> Iterator[_Tail | None]:
    if not enabled:
        yield None
        return
    tail = _Tail()
    with contextlib.redirect_stdout(tail), contextlib.redirect_stderr(tail):
        yield tail


def cmd_watch(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from rich.console import Console

    from mostool.view.watch import Watch, print_summary, stdin_keys
    if args.refresh <= 0:
        raise UsageError(f"--refresh must be positive, not {args.refresh}")
    extra: dict[str, Any] = {"strict": args.strict}
    if args.rcvbuf is None and not args.app:
        extra["rcvbuf"] = WATCH_RCVBUF
    mon = Monitor(_config(args, **extra))
    apps = _apps(mon, args.app)
    stream_sockets(mon)                      # without an app, the view watches every flow
    interactive = not args.plain and _isatty(out)
    console = Console(file=out) if interactive else Console(
        file=out, width=max(_columns(), 100), force_terminal=False, no_color=True,
        highlight=False)
    watch = Watch(mon, console, interactive=interactive, refresh=args.refresh, sort=args.sort,
                  all_events=args.all_events, hold=args.hold,
                  keys=stdin_keys() if interactive else None)
    count, duration = _check_stop_options(args)
    source, outs = _open(args, mon)
    code = 0
    try:
        with _captured(interactive) as tail, _stdout_to(out, not interactive), \
                _stop_on_signals(mon):
            try:
                watch.run(source, count=count, duration=duration)
            except CallbackError as exc:
                code = _strict_failure(exc, err)
        if tail is not None:
            tail.replay(out)
    finally:
        outs.close()
    with _stdout_to(out):
        _reports(apps, err)
    print_summary(console, watch)
    _warn(mon, err)
    return code


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _columns() -> int:
    try:
        return int(os.environ.get("COLUMNS", "0")) or os.get_terminal_size().columns
    except (OSError, ValueError):
        return 120


def _strict_failure(exc: CallbackError, err: IO[str]) -> int:
    err.write(f"mostool: error: {exc} (stopped: --strict)\n")
    return 1


def _reports(apps: list[App], err: IO[str]) -> None:
    for app in apps:
        try:
            app.report()
        except AppError as exc:
            err.write(f"mostool: error: {exc}\n")


# -- run ------------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    if not args.app:
        raise UsageError("no app: give --app NAME, --app path/to/app.py or --app module:func "
                         f"(shipped: {_SHIPPED})")
    mon = Monitor(_config(args, strict=args.strict))
    apps = _apps(mon, args.app)
    source, outs = _open(args, mon)
    code = 0
    try:
        with _stdout_to(out):
            try:
                _run(mon, source, args, err)
            except CallbackError as exc:
                code = _strict_failure(exc, err)
    finally:
        outs.close()
    with _stdout_to(out):
        _reports(apps, err)
    _warn(mon, err)
    return code


@contextlib.contextmanager
def _stdout_to(out: IO[str], enabled: bool = True) -> Iterator[None]:
    """Apps print(); send that to the command's ``out`` (tests pass a StringIO)."""
    if not enabled or out is sys.stdout:
        yield
        return
    with contextlib.redirect_stdout(out):
        yield


# -- streams --------------------------------------------------------------------------------------


def cmd_streams(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from mostool.sinks.streams import INDEX_NAME, StreamWriter
    if os.path.exists(args.outdir) and not os.path.isdir(args.outdir):
        raise UsageError(f"-o {args.outdir}: not a directory")
    mon = Monitor(_config(args, rcvbuf=0))
    mon.socket(MONITOR_STREAM)
    source, outs = _open(args, mon)
    writer = StreamWriter(mon, args.outdir, select=outs.select)
    try:
        writer.attach()
    except OSError as exc:
        outs.close()
        raise UsageError(f"cannot create {args.outdir}: {exc.strerror}") from exc
    try:
        _run(mon, source, args, err)
    finally:
        outs.close()
        writer.close()
    flows = len({r["flow"] for r in writer.index})
    gaps = sum(len(r["gaps"]) for r in writer.index)
    out.write(f"{writer.files_written} file(s), {writer.bytes_written:,} bytes from {flows} "
              f"flow(s), {gaps} gap(s); index: {os.path.join(args.outdir, INDEX_NAME)}\n")
    for warning in writer.warnings:
        err.write(f"mostool: warning: {warning}\n")
    _warn(mon, err)
    return 0
