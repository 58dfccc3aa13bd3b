"""Phase 2 of the plan: one partition runs the full engine over its records.

The partition merges its shards (one per input file) by global packet number, which is the
single run's order. Before each of its own records it replays the capture's clock: while the
engine's next deadline (a timer, an idle timeout, a TIME_WAIT expiry) falls before the record,
it advances the engine to the first tick (a record of any partition where the capture's clock
rose) past that deadline, with the engine's packet number set to that tick's: timers and
timeouts fire at the packet and time where one process fires them. A record older than the
clock (a file whose timestamps go backwards) first moves the clock to where the single run's
clock stands. Each own record is then processed with the engine's packet number set to its
global number, so flows' first packets and every event carry the numbers a single run gives.

A ``Job`` names the Monitor class to run (``monitor_class``: the caller passes it in, so that
``mostool.dist`` never imports the public face, which imports it for ``run(cluster=...)``), says
what to set up on the partition's Monitor and what to bring back: flow records
(``flows``), the `mostool events` trace (``events``), or a user's app with every flow record and
event record (``app``). The records carry partition-local flow ids; ``merge`` renumbers them.
"""

from __future__ import annotations

import heapq
import mmap
import os
import pickle
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mostool.config import MonitorConfig
from mostool.dist.route import SHARD_RECORD
from mostool.errors import DistError

if TYPE_CHECKING:
    from mostool.monitor import Monitor

__all__ = ["Job", "run_partition", "run_job"]


@dataclass
class Job:
    """What every partition runs: ``kind`` is "flows", "events", "streams" or "app"; ``apps``
    specs (path or module name, as ``--app``) or pickled setup functions (bytes);
    ``monitor_class`` the Monitor (class) each partition makes from ``config`` (unless
    ``monitor`` ships a set-up one)."""

    kind: str
    config: MonitorConfig
    monitor_class: type[Monitor] | None = None
    only: set[str] | None = None
    apps: list[str | bytes] = field(default_factory=list)
    trace: bool = True          # "app": record every event (as --events-out)
    printed: bool = False       # "app": keep what the apps print, by packet, and their reports
    monitor: bytes | None = None    # "app": a pickled, set-up Monitor to start from
    outdir: str | None = None       # "streams": where every partition writes its stream files
    # "flows": each flow as (first packet, partition's id, its JSON line) rather than its
    # record, for a JSON-lines output (merge_flow_lines): the workers format and order them
    # (pack_flow_lines), not the parent
    jsonl: bool = False


class _Collector:
    """A file-like sink that keeps each written line with the packet number it came at."""

    def __init__(self, mon: Monitor | None) -> None:
        self.mon = mon
        self.lines: list[tuple[int, float, str]] = []
        self._partial = ""
        self._at: tuple[int, float] = (0, 0.0)

    def write(self, text: str) -> int:
        if not self._partial:
            mon = self.mon
            self._at = (mon.packet_number, mon.now) if mon is not None else (0, 0.0)
        self._partial += text
        if "\n" in self._partial:
            *done, self._partial = self._partial.split("\n")
            packet, now = self._at
            self.lines.extend((packet, now, line) for line in done)
            if self._partial and self.mon is not None:
                self._at = (self.mon.packet_number, self.mon.now)
        return len(text)

    def flush(self) -> None:
        pass


def _setup(job: Job) -> tuple[Any, list[Any], list[Any], Any, list[Any]]:
    """The partition's Monitor, set up for ``job``; what it collects; its apps (for
    "streams", the StreamWriter is the one app)."""
    from mostool.events.trace import trace_record
    from mostool.events.types import BUILTIN_EVENTS
    if job.monitor is not None:
        mon = pickle.loads(job.monitor)
    elif job.monitor_class is not None:
        mon = job.monitor_class(job.config)
    else:
        raise DistError("a Job needs monitor_class (mostool.Monitor) or a pickled monitor")
    flows: list[Any] = []       # records, or (first packet, id, line) with job.jsonl
    events: list[Any] = []
    recorder = None
    apps: list[Any] = []
    if job.kind == "flows":
        mon.socket()
    elif job.kind == "streams":
        from mostool.sinks.streams import StreamWriter
        assert job.outdir is not None
        mon.socket()
        writer = StreamWriter(mon, job.outdir)
        writer.attach()
        apps.append(writer)
    elif job.kind == "events":
        sock = mon.socket()

        def record(flow: Any, side: Any, event: Any) -> None:
            fid = getattr(flow, "id", 0)
            number, now = mon.packet_number, mon.now
            events.append((number, now, fid, trace_record(number, now, fid, side, event)))

        for etype in BUILTIN_EVENTS:
            if job.only is None or etype.name in job.only:
                for hook in etype.hooks:
                    sock.on(etype, hook, record)
    else:
        from mostool.apps import App, load_app
        for spec in job.apps:
            if isinstance(spec, bytes):
                setup = pickle.loads(spec)
                app = App("<function>", getattr(setup, "__name__", "setup"), setup)
            else:
                app = load_app(spec)
            app.start(mon)
            apps.append(app)
        if job.trace:
            from mostool.sinks.events_out import EventRecorder
            recorder = _Collector(mon)
            EventRecorder(mon, recorder).attach()  # type: ignore[arg-type]
    if job.jsonl:
        mon.on_flow_end(lambda flow: flows.append((flow.first_packet, flow.id,
                                                   flow.record_json())))
    else:
        mon.on_flow_end(lambda flow: flows.append(flow.record()))
    return mon, flows, events, recorder, apps


class _Array:
    """A file of int64 or float64 values, mapped (ticks are read by bisection only)."""

    def __init__(self, path: str, code: str) -> None:
        self._map: mmap.mmap | None = None
        size = os.path.getsize(path)
        if size:
            with open(path, "rb") as f:
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            self.values: Sequence[Any] = memoryview(self._map).cast(code)  # type: ignore[call-overload]
        else:
            self.values = []

    def close(self) -> None:
        if self._map is not None:
            values = self.values
            self.values = []
            if isinstance(values, memoryview):
                values.release()
            self._map.close()


def _shard_records(path: str, numbers: Any) -> Iterator[tuple[int, float, int, bytes, int]]:
    """(signed global number, ts, linktype, data, wire length) of one shard, in file order."""
    with open(path, "rb") as f:
        buf = f.read()
    unpack = SHARD_RECORD.unpack_from
    size = SHARD_RECORD.size
    off = 0
    i = 0
    end = len(buf)
    while off < end:
        r, ts, linktype, caplen, wire = unpack(buf, off)
        off += size
        data = buf[off:off + caplen]
        off += caplen
        no = numbers + r + 1 if isinstance(numbers, int) else numbers[i]
        i += 1
        yield no, ts, linktype, data, wire


def run_partition(job: Job, partition: int, scratch: str, pieces: list[int],
                  offsets: list[int] | None, total: int) -> dict[str, Any]:
    """Run ``job`` over partition ``partition``; returns its records and counters."""
    if not os.path.isdir(scratch):
        import socket
        raise DistError(f"worker on {socket.gethostname()} cannot see the scratch directory "
                        f"{scratch} (it must be shared by every worker: --scratch DIR)")

    def feed(mon: Monitor) -> tuple[int, int]:
        return _run(mon, partition, scratch, pieces, offsets, total), total

    return run_job(job, partition, scratch, feed)


def run_job(job: Job, partition: int, scratch: str,
            feed: Callable[[Monitor], tuple[int, int]]) -> dict[str, Any]:
    """Set up ``job``'s Monitor, let ``feed(mon)`` show it the partition's packets (leaving
    its flows open; it returns how many packets were the partition's own and how many the
    capture has), end the capture and gather what the partition brings back."""
    import contextlib
    import io
    printed: _Collector | None = None
    with contextlib.ExitStack() as stack:
        if job.printed:
            printed = _Collector(None)
            stack.enter_context(contextlib.redirect_stdout(printed))
        mon, flows, events, recorder, apps = _setup(job)
        if printed is not None:
            printed.mon = mon
        own, total = feed(mon)
        # what is recorded from here on comes at the end of the capture, after every packet
        # (merged after other partitions' events of the last packet, as one run has them)
        closing = [len(events), len(recorder.lines) if recorder is not None else 0,
                   len(printed.lines) if printed is not None else 0]
        mon.close(number=total)
    streams: dict[str, Any] = {}
    if job.kind == "streams":
        writer = apps[0]
        # the files are in the shared directory; each partition's index goes to its scratch
        # corner and comes back to be merged with a single run's flow ids
        writer.directory = os.path.join(scratch, f"streams-{partition}")
        os.makedirs(writer.directory, exist_ok=True)
        writer.close()
        streams = {"index": writer.index, "files": writer.files_written,
                   "bytes": writer.bytes_written, "warnings": writer.warnings}
    report = io.StringIO()
    if job.printed:
        with contextlib.redirect_stdout(report):
            for app in apps:
                app.report()
    return {"partition": partition, "packets": own, "total": total,
            "flows": pack_flow_lines(flows) if job.jsonl else flows,
            "events": events,
            "closing": closing,
            "lines": recorder.lines if recorder is not None else [],
            "printed": printed.lines if printed is not None else [],
            "report": report.getvalue(), "stats": mon.stats(), "streams": streams,
            "failures": [str(f) for f in mon.failures],
            "callback_errors": mon.callback_errors}


def pack_flow_lines(flows: list[tuple[int, int, str]]) -> tuple[array[int], str]:
    """A partition's flow lines (first packet, partition's id, line), for ``merge_flow_lines``
    to put together cheaply: ordered by first packet (then id), their first packets as an
    array, and the lines, each without its opening id (from the comma after it, with its
    newline: a JSON line holds no other), as one string."""
    flows.sort(key=lambda f: (f[0], f[1]))
    return (array("q", [first for first, _id, _line in flows]),
            "".join([line[line.index(","):] + "\n" for _first, _id, line in flows]))


def _run(mon: Any, partition: int, scratch: str, pieces: list[int],
         offsets: list[int] | None, total: int) -> int:
    """Feed the partition's records to ``mon``'s engine with the capture's ticks; returns how
    many records were its own. The caller closes ``mon`` (the end of the capture)."""
    tick_no_a = _Array(os.path.join(scratch, "ticks.no"), "q")
    tick_ts_a = _Array(os.path.join(scratch, "ticks.ts"), "d")
    tick_no, tick_ts = tick_no_a.values, tick_ts_a.values
    ntick = len(tick_no)
    streams = []
    for k, index in enumerate(pieces):
        base = f"piece-{index}.part-{partition}"
        if offsets is not None:
            numbers: Any = offsets[k]
        else:
            numbers = array("q")
            with open(os.path.join(scratch, base + ".no"), "rb") as f:
                numbers.frombytes(f.read())
        streams.append(_shard_records(os.path.join(scratch, base), numbers))
    advance = mon.advance
    feed = mon.feed
    next_deadline = mon.next_deadline

    def catch_up(before: int) -> None:
        """Fire what falls due at the ticks numbered below ``before``."""
        while True:
            d = next_deadline()
            if d is None:
                return
            i = bisect_right(tick_ts, d)
            if i >= ntick or tick_no[i] >= before:
                return
            advance(tick_ts[i], number=tick_no[i])

    own = 0
    try:
        if ntick:                       # the capture's first packet starts every clock
            advance(tick_ts[0], number=tick_no[0])
        for no, ts, linktype, data, wire in heapq.merge(*streams, key=lambda x: abs(x[0])):
            if no < 0:                  # older than the clock: move it where one run has it
                no = -no
                catch_up(no)
                i = bisect_left(tick_no, no) - 1
                if i >= 0 and tick_ts[i] > mon.now:
                    advance(tick_ts[i], number=tick_no[i])
            else:
                d = next_deadline()
                if d is not None and d < ts:
                    catch_up(no)
            feed(ts, linktype, data, wire, number=no)
            own += 1
        catch_up(total + 1)
        if ntick and tick_ts[ntick - 1] > mon.now:
            advance(tick_ts[ntick - 1], number=tick_no[ntick - 1])
    finally:
        tick_no_a.close()
        tick_ts_a.close()
    return own
