"""What every `mostool` command shares: options, the source, the run, stop and warning lines.

No command module is imported here, so every ``mostool.cli.<command>`` module can import this
one. Exit status 0 on success (a damaged capture still gives 0, with a warning on stderr), 1 when
the ``-w`` pcap could not be written (a warning says why), 2 on unusable input with a one-line
message (``UsageError``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import stat
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import IO, Any

from mostool.apps import SHIPPED, App, AppError, start_apps
from mostool.config import MonitorConfig
from mostool.errors import CallbackError
from mostool.monitor import Monitor
from mostool.sinks.untracked import Untracked, linktype_name
from mostool.sources import FilteredSource, is_live, source_attr
from mostool.text import printable

SHIPPED_APPS = ", ".join(SHIPPED)


class UsageError(Exception):
    """Unusable input or arguments: one line on stderr, exit status 2."""


def add_common_options(p: argparse.ArgumentParser) -> None:
    add_source_options(p)
    p.add_argument("--midstream", action="store_true",
                   help="pick up flows whose handshake was not captured")
    p.add_argument("--idle-timeout", type=float, default=600.0, metavar="SECONDS",
                   help="end a flow after this long without a packet (default 600, 0 = never)")
    p.add_argument("--rcvbuf", type=int, default=None, metavar="BYTES",
                   help="bytes buffered per receiving side for peek (default 1 MiB)")
    p.add_argument("--overlap", choices=("first", "last"), default="first",
                   help="which copy of overlapping bytes wins (default first)")
    p.add_argument("--checksums", choices=("auto", "on", "off", "skip"), default="auto",
                   help="drop bad-checksum segments: auto (default), on, off; skip: do not "
                        "verify (fastest; bad_checksums null)")
    p.add_argument("--max-flows", type=int, default=None, metavar="N",
                   help="flows tracked at once; past it the longest-idle flow is evicted "
                        "(default 1000000; ~2.5 KB each)")
    p.add_argument("--time-wait", type=float, default=0.0, metavar="SECONDS",
                   help="how long a closed flow lingers in TIME_WAIT (default 0)")
    p.add_argument("--mos-compat", action="store_true", help="reproduce mOS 0.3's quirks")
    p.add_argument("bpf", nargs="*", metavar="BPF",
                   help="libpcap filter expression applied to every frame, as tcpdump: to the "
                        "outer frame, so traffic inside tunnels is chosen by its tunnel "
                        "('udp port 4789', 'proto gre', 'ip proto 4', 'geneve and tcp port 80')")


def add_source_options(p: argparse.ArgumentParser) -> None:
    """Where the frames come from and when the run stops (every command that reads frames)."""
    src = p.add_argument_group("input (one of -r or -i)")
    src.add_argument("-r", "--read", dest="files", action="append", metavar="FILE",
                     help="capture file (pcap or pcapng; - reads standard input); repeat to "
                          "merge several by time")
    src.add_argument("-i", "--interface", dest="interface", metavar="IFACE",
                     help="capture live on this interface (`mostool interfaces` lists them)")
    stop = p.add_argument_group("stopping (Ctrl-C or SIGTERM also stops cleanly)")
    stop.add_argument("-c", "--count", dest="count", type=int, metavar="COUNT",
                      help="stop after COUNT packets (after the filter)")
    stop.add_argument("--duration", type=float, metavar="SECONDS",
                      help="stop after SECONDS: wall time for -i, capture time for -r")
    pace = p.add_argument_group("replay pacing (-r; default: as fast as possible)")
    pace.add_argument("--speed", type=float, metavar="X",
                      help="recorded timing, X times faster (0.5 = half speed)")
    pace.add_argument("--realtime", action="store_true", help="recorded timing (--speed 1)")
    pace.add_argument("--pps", type=float, metavar="N", help="N packets per second")
    pace.add_argument("--mbps", type=float, metavar="N",
                      help="N megabits per second (by wire length)")
    pace.add_argument("--max-gap", dest="max_gap", type=float, metavar="SECONDS",
                      help="never wait longer than SECONDS between two packets")
    cap = p.add_argument_group("live capture (-i)")
    cap.add_argument("-s", "--snaplen", type=int, default=None, metavar="SNAPLEN",
                     help="bytes kept of each packet (default 262144: all)")
    cap.add_argument("--no-promisc", dest="promisc", action="store_false",
                     help="do not put the interface in promiscuous mode")
    cap.add_argument("--buffer-size", dest="buffer_size", type=int, metavar="BYTES",
                     help="kernel capture buffer size (default libpcap's, 2 MiB)")
    cap.add_argument("--immediate", action=argparse.BooleanOptionalAction, default=True,
                     help="hand over each packet as it arrives (default) or a buffer at a time")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print what is read and a summary of the run on stderr")
    p.add_argument("-n", dest="no_resolve", action="store_true",
                   help="no name resolution (accepted as in tcpdump; mostool never resolves "
                        "addresses or ports)")


def add_write_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("-w", "--write", dest="write", metavar="OUT.pcap",
                   help="write packets to a pcap while monitoring: with -i every captured "
                        "packet (to replay later), with -r the packets of the --flow selection "
                        "(default all); - writes the pcap to standard output, and the "
                        "command's own output then goes to standard error")


def config_from(args: argparse.Namespace, **extra: Any) -> MonitorConfig:
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
    if args.max_flows is not None:
        kwargs["max_flows"] = args.max_flows
    kwargs.update(extra)
    try:
        return MonitorConfig(**kwargs)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def open_source(args: argparse.Namespace, write: str | None = None) -> Any:
    """The source the options ask for: a replay of -r FILE... (paced, BPF-filtered in user
    space) or a live capture on -i IFACE (BPF in the kernel; ``write`` records it)."""
    files: list[str] = getattr(args, "files", None) or []
    iface = getattr(args, "interface", None)
    if files and iface:
        raise UsageError("give either -r FILE or -i IFACE, not both")
    if not files and not iface:
        raise UsageError("no input: give -r FILE or -i IFACE")
    bpf = " ".join(args.bpf) if getattr(args, "bpf", None) else None
    pacing = pacing_of(args)
    if iface:
        if pacing or getattr(args, "max_gap", None) is not None:
            raise UsageError("--speed, --realtime, --pps, --mbps and --max-gap pace a replay "
                             "(-r), not a live capture")
        return live_source(args, iface, bpf, write)
    from mostool.replay import CaptureError, ReplaySource
    for path in files:
        refuse_empty(path)
    if getattr(args, "max_gap", None) is not None and not pacing:
        raise UsageError("--max-gap limits the waits of a paced replay: add --speed, "
                         "--realtime, --pps or --mbps")
    try:
        src: Any = ReplaySource(files, speed=pacing.get("speed"), pps=pacing.get("pps"),
                                mbps=pacing.get("mbps"), max_gap=getattr(args, "max_gap", None))
    except CaptureError as exc:
        raise UsageError(str(exc)) from exc
    except ValueError as exc:
        raise UsageError(str(exc).replace("max_gap", "--max-gap")) from exc
    if bpf:
        src = BpfFiltered(src, bpf)
    return src


def pcap_on_stdout(args: argparse.Namespace) -> bool:
    """``-w -``: the pcap takes standard output (tcpdump's habit), so the command's own output
    moves to standard error. Refused where that cannot work: ``watch`` draws on standard output,
    another output named ``-`` would share it, and a terminal would show raw capture bytes."""
    if getattr(args, "write", None) != "-":
        return False
    if getattr(args, "command", None) == "watch":
        raise UsageError("watch draws on standard output: -w - cannot share it; give -w FILE")
    for opt, value in (("--events-out", getattr(args, "events_out", None)),
                       ("--flows-out", getattr(args, "flows_out", None))):
        if value == "-":
            raise UsageError(f"-w - and {opt} - cannot both write standard output")
    stdout = sys.__stdout__
    if stdout is None:
        raise UsageError("-w -: there is no standard output")
    if stdout.isatty():
        raise UsageError("-w -: standard output is a terminal; redirect it (> out.pcap) or "
                         "pipe it (| tcpdump -r -)")
    return True


def refuse_empty(path: str) -> None:
    """A zero-byte capture file is unusable input (tcpdump: "truncated dump file"), exit 2."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return                      # the reader says why it cannot open it
    if stat.S_ISREG(st.st_mode) and st.st_size == 0:
        raise UsageError(f"{printable(path)}: empty file (0 bytes), no capture header: a "
                         "truncated dump file?")


def pacing_of(args: argparse.Namespace) -> dict[str, float]:
    speed = getattr(args, "speed", None)
    if getattr(args, "realtime", False):
        if speed is not None:
            raise UsageError("give --realtime or --speed, not both")
        speed = 1.0
    given = {k: v for k, v in (("speed", speed), ("pps", getattr(args, "pps", None)),
                               ("mbps", getattr(args, "mbps", None))) if v is not None}
    if len(given) > 1:
        raise UsageError("give one pace: --speed/--realtime, --pps or --mbps")
    for key, value in given.items():
        if not value > 0 or value == float("inf"):
            raise UsageError(f"--{key} must be a positive number, not {value}")
    return given


def live_source(args: argparse.Namespace, iface: str, bpf: str | None,
                 write: str | None) -> Any:
    from mostool.live import DEFAULT_SNAPLEN, LiveError, LiveSource
    snaplen = getattr(args, "snaplen", None)
    buffer_size = getattr(args, "buffer_size", None)
    if snaplen is not None and snaplen <= 0:
        raise UsageError(f"-s must be a positive number of bytes, not {snaplen}")
    if buffer_size is not None and buffer_size <= 0:
        raise UsageError(f"--buffer-size must be a positive number of bytes, not {buffer_size}")
    try:
        return LiveSource(iface, bpf, snaplen=snaplen or DEFAULT_SNAPLEN,
                          promisc=getattr(args, "promisc", True), buffer_size=buffer_size,
                          immediate=getattr(args, "immediate", True), write_to=write)
    except LiveError as exc:
        raise UsageError(str(exc)) from exc


class BpfFiltered(FilteredSource):
    """A source whose frames pass a BPF filter first; a bad expression is a UsageError."""

    def __init__(self, inner: Any, expression: str) -> None:
        from mostool.bpf import BpfError
        try:
            super().__init__(inner, expression)
        except BpfError as exc:
            raise UsageError(str(exc)) from exc


def stop_options(args: argparse.Namespace) -> tuple[int | None, float | None]:
    count = getattr(args, "count", None)
    duration = getattr(args, "duration", None)
    if count is not None and count <= 0:
        raise UsageError(f"-c must be a positive number of packets, not {count}")
    if duration is not None and not (0 < duration < float("inf")):
        raise UsageError(f"--duration must be a positive number of seconds, not {duration}")
    return count, duration


@contextlib.contextmanager
def stop_on_signals(mon: Monitor) -> Iterator[None]:
    """SIGINT/SIGTERM stop the run cleanly (open flows end, outputs are completed); a second
    one aborts (KeyboardInterrupt). The previous handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    hits = 0

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal hits
        hits += 1
        if hits > 1:
            raise KeyboardInterrupt
        mon.stop(f"signal {signal.Signals(signum).name}")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


def run_source(mon: Monitor, source: Any, args: argparse.Namespace,
               err: IO[str]) -> dict[str, Any]:
    """``mon.run(source)`` with the command's stopping options, the signal handlers, and the
    start and end lines on stderr (live capture, paced replay, --verbose)."""
    count, duration = stop_options(args)
    verbose = getattr(args, "verbose", False)
    untracked = Untracked(mon)
    with stop_on_signals(mon):
        if is_live(source):
            snaplen = source_attr(source, "snaplen")
            err.write(f"mostool: listening on {printable(source.name)}, link-type "
                      f"{linktype_name(source_attr(source, 'linktype'))}, snapshot length "
                      f"{snaplen} bytes\n")
            err.flush()
        elif verbose:
            err.write(f"mostool: reading from {printable(source.name)}\n")
            err.flush()
        stats = mon.run(source, count=count, duration=duration)
    summary(mon, source, stats, verbose, err, untracked)
    return stats




def summary(mon: Monitor, source: Any, stats: dict[str, Any], verbose: bool,
            err: IO[str], untracked: Untracked | None = None) -> None:
    src = stats.get("source", {})
    if is_live(source):
        err.write(f"mostool: {src.get('packets', 0)} packets captured on "
                  f"{printable(source.name)}, "
                  f"{src.get('received', 0)} received by filter, "
                  f"{src.get('kernel_drops', 0)} dropped by kernel, "
                  f"{src.get('ifdrops', 0)} dropped by interface\n")
    elif source_attr(source, "paced", False):
        err.write(f"mostool: replay lag behind schedule: max {src.get('lag_max', 0.0):.3f} s, "
                  f"at the end {src.get('lag_last', 0.0):.3f} s\n")
    if verbose:
        why = mon.stopped_by
        ended = (f"stopped by {why}" if why else
                 "read up to damage in the capture (see the warning)" if mon.warnings and
                 not is_live(source) else "to the end")
        left = (f", {untracked.packets} TCP packets untracked" if untracked is not None
                and untracked.packets and not untracked.midstream else "")
        err.write(f"mostool: {stats.get('packets', 0)} packets, {stats.get('flows', 0)} flows"
                  f"{left}, {ended}\n")
    if untracked is not None:
        untracked_lines(untracked, err)


def untracked_lines(untracked: Untracked, err: IO[str]) -> None:
    """What the run left out, one line each: never dropped in silence."""
    for line in untracked.lines():
        err.write(f"mostool: {line}\n")


def warn(mon: Monitor, err: IO[str]) -> None:
    for warning in mon.warnings:
        err.write(f"mostool: warning: {printable(warning)}\n")
    if mon.failures:
        err.write(f"mostool: warning: {mon.callback_errors} callback "
                  f"error(s); first: {printable(str(mon.failures[0]))}\n")


# -- apps (watch and run) -------------------------------------------------------------------------


def add_app_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--app", action="append", metavar="SPEC",
                   help=f"load an app: {SHIPPED_APPS}, path/to/app.py[:func] or "
                        "module[:func] (repeat for several)")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first exception in an app's callback (default: count "
                        "it, report it, go on)")


def start_apps_or_fail(mon: Monitor, specs: list[str] | None) -> list[App]:
    try:
        return start_apps(mon, specs)
    except AppError as exc:
        raise UsageError(str(exc)) from exc


def strict_failure(exc: CallbackError, err: IO[str]) -> int:
    err.write(f"mostool: error: {exc} (stopped: --strict)\n")
    return 1


def print_reports(apps: list[App], err: IO[str]) -> None:
    for app in apps:
        try:
            app.report()
        except AppError as exc:
            err.write(f"mostool: error: {exc}\n")


@contextlib.contextmanager
def stdout_to(out: IO[str], enabled: bool = True) -> Iterator[None]:
    """Apps print(); send that to the command's ``out`` (tests pass a StringIO)."""
    if not enabled or out is sys.stdout:
        yield
        return
    with contextlib.redirect_stdout(out):
        yield
