"""`mostool watch`: the live terminal view of a replay or capture (mostool.view)."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
from collections import deque
from collections.abc import Iterator
from typing import IO, Any

from mostool.cli.common import (
    SHIPPED_APPS,
    UsageError,
    add_app_options,
    add_common_options,
    config_from,
    print_reports,
    start_apps_or_fail,
    stdout_to,
    stop_on_signals,
    stop_options,
    strict_failure,
    untracked_lines,
    warn,
)
from mostool.cli.outputs import add_output_options, open_with_outputs
from mostool.errors import CallbackError
from mostool.monitor import Monitor
from mostool.sinks.select import stream_sockets
from mostool.view.model import FEED_KINDS, SORT_KEYS

_RAW = argparse.RawDescriptionHelpFormatter
# Without an app nobody reads the bytes; a small buffer still lets a retransmission be compared
# with what was received before (overlap conflicts). --rcvbuf 0: faster, no such comparison.
WATCH_RCVBUF = 64 << 10

EXAMPLES_WATCH = f"""examples:
  mostool watch -r capture.pcap
  mostool watch -r capture.pcap --app http --speed 1 --hold
  mostool watch -i eth0 --feed state,rexmit,gap,error tcp port 443
  mostool watch -r a.pcap -r b.pcapng --sort rate tcp port 443
  mostool watch -r capture.pcap --app ./my_app.py:setup --events-out events.jsonl

keys: q quit, s change the sort column, p pause (--hold keeps the last screen until q)
apps: {SHIPPED_APPS}, path/to/app.py[:func] or package.module[:func]
Without a terminal (piped output, CI) the view is replaced by the summary printed at the end.
"""


def register(sub: Any) -> None:
    """Add `watch` to ``mostool``'s subparsers."""
    watch = sub.add_parser("watch", help="live terminal view of flows and events (like htop)",
                           description="A live view of a replay or capture: progress, rates, "
                                       "the busiest flows, the latest events, counters.",
                           epilog=EXAMPLES_WATCH, formatter_class=_RAW)
    add_common_options(watch)
    add_app_options(watch)
    watch.add_argument("--sort", choices=SORT_KEYS, default="bytes",
                       help="flow table order, busiest first (default bytes; key s cycles)")
    watch.add_argument("--refresh", type=float, default=4.0, metavar="HZ",
                       help="screen updates per second (default 4)")
    watch.add_argument("--all-events", action="store_true",
                       help="observe every event, state changes and data included (exact "
                            "counts, a fuller feed; costs throughput)")
    watch.add_argument("--feed", metavar="KINDS", default=None,
                       help="what the event feed shows, comma-separated from "
                            f"{','.join(FEED_KINDS)} (default: all it sees - flow starts and "
                            "ends, state changes, retransmissions, gaps, overlap conflicts, "
                            "errors, timeouts, the apps' UDEs; sampled unless --all-events)")
    watch.add_argument("--hold", action="store_true",
                       help="keep the last screen when the replay ends, until q")
    watch.add_argument("--plain", action="store_true",
                       help="no live view: only the summary at the end (automatic when "
                            "the output is no terminal)")
    add_output_options(watch)
    watch.set_defaults(func=cmd_watch)


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
    mon = Monitor(config_from(args, **extra))
    apps = start_apps_or_fail(mon, args.app)
    stream_sockets(mon)                      # without an app, the view watches every flow
    interactive = not args.plain and _isatty(out)
    console = Console(file=out) if interactive else Console(
        file=out, width=max(_columns(), 100), force_terminal=False, no_color=True,
        highlight=False)
    feed = None
    if args.feed is not None:
        feed = {k.strip().lower() for k in args.feed.split(",") if k.strip()}
        unknown = feed - set(FEED_KINDS)
        if unknown:
            raise UsageError(f"--feed: unknown kind(s) {', '.join(sorted(unknown))}; choose "
                             f"from {','.join(FEED_KINDS)}")
    watch = Watch(mon, console, interactive=interactive, refresh=args.refresh, sort=args.sort,
                  all_events=args.all_events, hold=args.hold,
                  keys=stdin_keys() if interactive else None, feed=feed)
    count, duration = stop_options(args)
    source, outs = open_with_outputs(args, mon)
    code = 0
    try:
        with _captured(interactive) as tail, stdout_to(out, not interactive), \
                stop_on_signals(mon):
            try:
                watch.run(source, count=count, duration=duration)
            except CallbackError as exc:
                code = strict_failure(exc, err)
        if tail is not None:
            tail.replay(out)
    finally:
        outs.close()
    with stdout_to(out):
        print_reports(apps, err)
    print_summary(console, watch)
    if watch.model.untracked is not None:
        untracked_lines(watch.model.untracked, err)
    warn(mon, err)
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
