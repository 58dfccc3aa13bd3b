"""The output options every reading command shares: --events-out, --flows-out, -w, --flow.

``add_output_options`` adds them to a parser; ``Outputs`` serves them for one run, and
``run_with_outputs`` / ``open_with_outputs`` open the source with them attached.
"""

from __future__ import annotations

import argparse
import os
from typing import IO, Any

from mostool.cli.common import UsageError, open_source, run_source
from mostool.monitor import Monitor
from mostool.sinks.select import FlowSelector

# commands that use --flow themselves, without -w
_FLOW_ON_ITS_OWN = frozenset({"streams"})


def add_output_options(p: argparse.ArgumentParser, *, write: bool = True) -> None:
    """--events-out, --flows-out, --flow and (``write``: unless the command adds its own, as
    ``flows`` and ``events`` do with ``common.add_write_option``) -w."""
    g = p.add_argument_group("outputs")
    g.add_argument("--events-out", metavar="FILE.jsonl",
                   help="write every event (built-ins and UDEs) as JSON lines")
    g.add_argument("--flows-out", metavar="FILE",
                   help="write one record per flow: FILE.csv, FILE.parquet (needs pyarrow) "
                        "or JSON lines")
    if write:
        g.add_argument("-w", "--write", dest="write", metavar="OUT.pcap",
                       help="write the frames that went through (after the BPF; with --flow, "
                            "of those flows) to a pcap; - writes it to standard output (the "
                            "command's own output then goes to standard error)")
    g.add_argument("--flow", metavar="SPEC",
                   help="with -w (and streams): only these flows - ids as `mostool flows` "
                        "numbers them (3,5-7) or endpoints (10.0.0.1:80, [2001:db8::1]:443)")


class Outputs:
    """The ``--events-out``/``--flows-out``/``-w`` outputs of one run.

    Create it once the listeners (and apps) are set up and the source is open, pass the source
    through ``wrap``, and call ``close`` after the run, also when it failed::

        source = open_source(args)
        outs = Outputs(args, mon)
        try:
            run_source(mon, outs.wrap(source), args, err)
        finally:
            outs.close()
    """

    def __init__(self, args: argparse.Namespace, mon: Monitor, *, write_pcap: bool = True
                 ) -> None:
        """``write_pcap=False`` leaves ``-w`` to the caller (a live source that records
        itself); ``--flow`` then needs ``-w`` handled here, so it is refused."""
        self.mon = mon
        self._args = args
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
            if not getattr(args, "write", None) and \
                    getattr(args, "command", None) not in _FLOW_ON_ITS_OWN:
                raise UsageError("--flow chooses the flows whose packets -w writes: add "
                                 "-w OUT.pcap")
        self._events_file: IO[str] | None = None
        self.recorder: Any = None
        self.flows: Any = None
        self.packets: Any = None
        events_out = getattr(args, "events_out", None)
        flows_out = getattr(args, "flows_out", None)
        for path in (events_out, flows_out, self.write_path):
            if path:
                check_writable(path)
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
            note_write_error(self._args, self.packets.writer)
            self.packets = None
        if self.flows is not None:
            self.flows.close()
            self.flows = None
        if self._events_file is not None:
            self._events_file.close()
            self._events_file = None


def note_write_error(args: argparse.Namespace, writer: Any) -> None:
    """A pcap that could not be written (a full disk, a vanished device) makes the run's exit
    status 1 (``args.write_failed``, read by ``cli.main``); the message itself is a warning of
    the run. A closed pipe (``-w - | head``) is no failure: the reader had what it wanted.
    ``writer`` is a ``PcapWriter`` or a ``LiveSource`` (``write_error``)."""
    failed = (getattr(writer, "write_error", None) if hasattr(writer, "write_error") else
              getattr(writer, "error", None) and not getattr(writer, "reader_gone", False))
    if failed:
        args.write_failed = True


def check_writable(path: str) -> None:
    if path == "-":                         # -w -: standard output
        return
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError(f"cannot write {path}: it is a directory")
    if not os.path.isdir(parent):
        raise UsageError(f"cannot write {path}: no directory {parent}")


def run_with_outputs(mon: Monitor, args: argparse.Namespace, err: IO[str]) -> None:
    """Run the source with --events-out/--flows-out/-w attached. A live capture records every
    captured packet itself (-w); a replay writes the packets of the chosen flows (--flow)."""
    live = bool(getattr(args, "interface", None))
    write = getattr(args, "write", None)
    source = open_source(args, write if live else None)
    outs = Outputs(args, mon, write_pcap=not live)
    try:
        run_source(mon, outs.wrap(source), args, err)
    finally:
        outs.close()
        if live:
            note_write_error(args, source)


def open_with_outputs(args: argparse.Namespace, mon: Monitor) -> tuple[Any, Outputs]:
    """The command's source, wrapped by its outputs (opened after the source, so a missing
    capture file leaves no empty output behind)."""
    source = open_source(args)
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
