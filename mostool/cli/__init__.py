"""The `mostool` command line: one module per command over one shared module.

``build_parser`` asks each command module (``flows``, ``events``, ``interfaces``, ``watch``,
``run``, ``streams``) to ``register`` its subparser, which sets ``func=cmd_*``; ``main`` parses,
runs ``args.func(args, out, err)`` and turns errors into exit codes. ``common`` holds what the
commands share (options, the source, the run, warnings) and ``outputs`` the output options
(--events-out, --flows-out, -w, --flow); neither imports a command module.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import os
import sys
from collections.abc import Iterator, Sequence
from typing import IO

from mostool.cli import events, flows, golden, interfaces, run, streams, watch
from mostool.cli.common import UsageError, pcap_on_stdout
from mostool.errors import MosError
from mostool.text import printable

__all__ = ["UsageError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mostool",
        description="mOS-style TCP flow monitoring over pcap replay and live capture.",
        epilog="examples:\n  mostool flows -r capture.pcap --hash\n"
               "  mostool watch -r capture.pcap --app http\n"
               "  mostool streams -r capture.pcap -o out/\n"
               "  mostool events -r capture.pcap --format jsonl",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="store_true",
                        help="print mostool's version (and how it was built) and exit")
    parser.add_argument("-D", "--list-interfaces", dest="list_interfaces",
                        action="store_true",
                        help="list the interfaces -i can capture on (as tcpdump -D; "
                             "`mostool interfaces`)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in (flows, events, interfaces, watch, run, streams, golden):
        command.register(sub)
    parser.set_defaults(subparsers=sub.choices)
    return parser


def version_text() -> str:
    """``mostool <version> (compiled with mypyc)`` or ``(pure Python[: why])``."""
    import mostool
    return mostool.version_text() + "\n"


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse; an option a subcommand does not know is reported with that subcommand's usage
    (argparse would print the top-level one)."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        sub = (getattr(args, "subparsers", None) or {}).get(getattr(args, "command", None))
        (sub or parser).error(f"unrecognized arguments: {' '.join(extra)}")
    return args


# Young-generation size while a command runs. A tracked flow is ~13 GC-tracked objects, none in
# a reference cycle (an ended flow is freed by refcounting), so collecting them is wasted work:
# with Python's default of 700, 1 M open flows (a SYN flood) cost ~20 full collections, a
# quarter of the run; with 50,000, two (measured: 49 -> 40 s CPU; no change on web.pcap).
_GC_YOUNG = 50_000


@contextlib.contextmanager
def _gc_for_flows() -> Iterator[None]:
    """Collect the young generation less often while a command runs (then as before)."""
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], _GC_YOUNG), old[1], old[2])
    try:
        yield
    finally:
        gc.set_threshold(*old)


class OutputClosed(BaseException):
    """The reader of our output went away (``mostool events ... | head -1``). Not an
    ``Exception``: it goes through the callbacks' error counting and ends the run at once,
    quietly, as tcpdump does."""


class _PipeGuard(io.TextIOBase):
    """Standard output that turns a closed pipe into ``OutputClosed`` (and sends whatever
    Python still flushes at exit to /dev/null, so no "Exception ignored" follows)."""

    def __init__(self, inner: IO[str]) -> None:
        self.inner = inner

    def _closed(self) -> OutputClosed:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.inner.fileno())
            os.close(devnull)
        return OutputClosed()

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        try:
            return self.inner.write(s)
        except BrokenPipeError:
            raise self._closed() from None

    def flush(self) -> None:
        try:
            self.inner.flush()
        except BrokenPipeError:
            raise self._closed() from None

    def isatty(self) -> bool:
        return self.inner.isatty()

    def fileno(self) -> int:
        return self.inner.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.inner, "encoding", None) or "utf-8"


def main(argv: Sequence[str] | None = None, out: IO[str] | None = None,
         err: IO[str] | None = None) -> int:
    with _gc_for_flows():
        if out is not None and out is not sys.stdout:
            return _main(argv, out, err)
        guard = _PipeGuard(sys.stdout)
        try:
            with contextlib.redirect_stdout(guard):
                return _main(argv, guard, err)  # type: ignore[arg-type]
        except OutputClosed:
            return 0


def _main(argv: Sequence[str] | None, out: IO[str] | None, err: IO[str] | None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    parser = build_parser()
    args = _parse(parser, argv)
    if args.version:
        out.write(version_text())
        return 0
    if args.list_interfaces and args.command is None:
        args = _parse(parser, ["interfaces"])
    if args.command is None:
        parser.print_help(out)
        return 2
    try:
        files = getattr(args, "files", None)
        if files and "-" in files:          # -r -: standard input, read as a file
            if files.count("-") > 1:
                raise UsageError("-r - (standard input) can be given once")
            from mostool.stdio import spool_stdin
            args.files = [spool_stdin() if f == "-" else f for f in files]
        if pcap_on_stdout(args):
            # -w -: the pcap owns standard output; the report, and anything printed, go to
            # standard error
            with contextlib.redirect_stdout(err):
                status = int(args.func(args, err, err))
        else:
            status = int(args.func(args, out, err))
        if status == 0 and getattr(args, "write_failed", False):
            return 1                        # the pcap (-w) could not be written: see warning
        return status
    except UsageError as exc:
        err.write(f"mostool: error: {printable(str(exc))}\n")
        return 2
    except MosError as exc:
        err.write(f"mostool: error: {printable(str(exc))}\n")
        return 2
    except BrokenPipeError:
        return 0
    except OutputClosed:
        return 0
    except KeyboardInterrupt:
        return 130
