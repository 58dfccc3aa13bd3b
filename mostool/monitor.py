"""Monitor (the mOS context), MonitorSocket (a listener) and the run loop.

A Monitor owns one engine. Listeners (``mon.socket(MONITOR_STREAM)``) pick flows by a BPF SYN
filter and register callbacks; each accepted flow gets a Flow handle per listener. ``run``
feeds a source's frames to the engine and ends every open flow when the source ends or is
stopped.
"""

from __future__ import annotations

import errno
import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from mostool.config import MonitorConfig
from mostool.errors import CallbackError, MosError
from mostool.events.dispatch import SubscriptionRegistry
from mostool.events.types import Callback, ConnEnd, Event, EventType, Hook, UserEvent
from mostool.sources import MemorySource, Source, is_live, source_attr
from mostool.stack.engine import RAW, STREAM, Engine, Listener
from mostool.stack.flow import (
    SOCKOPT_RCVBUF_CLI,
    SOCKOPT_RCVBUF_SVR,
    SOCKOPT_STOP_MON,
    Connection,
    Flow,
    checked_sockopt,
    sockopt_side,
)
from mostool.summary import FlowSummary

if TYPE_CHECKING:
    from mostool.replay import PcapRecords

__all__ = ["Monitor", "MonitorSocket", "MONITOR_STREAM", "MONITOR_RAW", "CallbackFailure"]

MONITOR_STREAM = STREAM
MONITOR_RAW = RAW
_MAX_KEPT_FAILURES = 1000
_RECORDS_STEP = 8 << 20     # bytes of capture per process_records call


class CallbackFailure:
    """A user callback, filter or timer that raised (kept for the run's report)."""

    __slots__ = ("where", "flow_id", "client", "server", "event", "error", "ts", "packet")

    def __init__(self, where: str, flow: Any, event: Event | UserEvent, exc: BaseException,
                 ts: float, packet: int) -> None:
        self.where = where
        self.flow_id = getattr(flow, "id", 0)
        self.client = getattr(flow, "client", "")
        self.server = getattr(flow, "server", "")
        self.event = event.name
        self.error = f"{type(exc).__name__}: {exc}"
        self.ts = ts
        self.packet = packet

    def __str__(self) -> str:
        flow = f"flow {self.flow_id} {self.client} > {self.server}" if self.flow_id else "no flow"
        return f"packet {self.packet}: {self.where} for {self.event} on {flow}: {self.error}"


class MonitorSocket(Listener):
    """A monitoring listener: MONITOR_STREAM (one Flow per accepted connection) or MONITOR_RAW
    (every frame its raw filter accepts, as ON_PKT_IN)."""

    def __init__(self, monitor: Monitor, kind: str) -> None:
        super().__init__(kind, monitor.engine.registry)
        self.monitor = monitor
        self.filters: dict[str, str | None] = {"syn": None, "orphan": None, "raw": None}

    def bind_filter(self, syn: str | None = None, orphan: str | None = None,
                    raw: str | None = None) -> None:
        """libpcap BPF filters: ``syn`` picks flows by their first SYN, ``orphan`` picks orphan
        packets, ``raw`` picks frames for a MONITOR_RAW socket. Bad BPF raises MosError(EINVAL)
        with libpcap's message."""
        self._check_open()
        if raw is not None and self.kind != RAW:
            raise MosError(errno.EINVAL, "raw= is for MONITOR_RAW sockets")
        if (syn is not None or orphan is not None) and self.kind != STREAM:
            raise MosError(errno.EINVAL, "syn= and orphan= are for MONITOR_STREAM sockets")
        from mostool.bpf import BpfError, check_mos_flow_rule, compile_filter
        try:
            if self.monitor.config.mos_compat:
                for expression in (syn, orphan):
                    if expression:
                        check_mos_flow_rule(expression)
            if syn is not None:
                f = compile_filter(syn)
                self.syn_match = f.matches if f else None
                self.filters["syn"] = syn or None
            if orphan is not None:
                f = compile_filter(orphan)
                self.orphan_match = f.matches if f else None
                self.filters["orphan"] = orphan or None
            if raw is not None:
                f = compile_filter(raw)
                self.raw_match = f.matches if f else None
                self.filters["raw"] = raw or None
        except BpfError as exc:
            raise MosError(errno.EINVAL, str(exc)) from exc

    def on(self, event: EventType, hook: Hook | None = None,
           callback: Callback | None = None) -> Any:
        """Register ``callback(flow, side, event)`` for every flow this listener accepts from
        now on (as mOS: flows already tracked keep their registrations). Decorator when
        ``callback`` is omitted."""
        def register(cb: Callback) -> Callback:
            self._check_open()
            entry = self.registration(event, hook, cb)
            self.subs = self.registry.with_added(self.subs, [entry])
            return cb
        return register(callback) if callback is not None else register

    def off(self, event: EventType, hook: Hook | None = None,
            callback: Callback | None = None) -> None:
        self._check_open()
        h = event.default_hook if hook is None else hook
        if self.kind == RAW:
            h = Hook.NULL
        self.subs = self.registry.with_removed(self.subs, self.subs.matching(event, h, callback))

    def setsockopt(self, name: str, value: Any) -> None:
        """Options for the flows this listener accepts from now on (values checked as a
        flow's own ``setsockopt`` checks them)."""
        self._check_open()
        if name == SOCKOPT_STOP_MON:
            raise MosError(errno.EPERM, "stop monitoring applies to a flow, not a listener")
        side = checked_sockopt(name, value)
        if name in (SOCKOPT_RCVBUF_CLI, SOCKOPT_RCVBUF_SVR):
            self.rcvbuf[side] = value
        else:
            self.overlap[side] = value

    def getsockopt(self, name: str) -> Any:
        self._check_open()
        cfg = self.monitor.config
        side = sockopt_side(name)
        if name in (SOCKOPT_RCVBUF_CLI, SOCKOPT_RCVBUF_SVR):
            v = self.rcvbuf[side]
            return cfg.rcvbuf if v is None else v
        return self.overlap[side] or cfg.overlap

    def close(self) -> None:
        """Stop accepting flows and drop this listener's callbacks on the flows it holds (the
        flows themselves go on, as mOS)."""
        if self.closed:
            return
        self.closed = True
        engine = self.monitor.engine
        engine.remove_listener(self)
        seen: set[int] = set()
        for conn in engine.table.values():
            if conn.id in seen:
                continue
            seen.add(conn.id)
            for h in conn.handles:
                if h.listener is self:
                    h.subs = self.registry.empty
            conn.refresh_masks()

    def _check_open(self) -> None:
        if self.closed:
            raise MosError(errno.EBADF, "this monitoring socket is closed")


class Monitor:
    """The monitoring context: listeners, timers, and the loop that feeds the engine."""

    def __init__(self, config: MonitorConfig | None = None) -> None:
        self.config = config or MonitorConfig()
        self._flow_end_hooks: list[Callable[[FlowSummary], None]] = []
        self._connection_end_hooks: list[Callable[[Connection], None]] = []
        self.failures: list[CallbackFailure] = []
        self.engine = Engine(self.config, registry=SubscriptionRegistry(),
                             on_flow_end=self._flow_ended, on_callback_error=self._failed)
        self._stopping = False
        self._source: Source | None = None
        self.warnings: list[str] = []
        self.stopped_by: str | None = None

    # -- listeners and timers -----------------------------------------------------------------

    def socket(self, kind: str = MONITOR_STREAM) -> MonitorSocket:
        sock = MonitorSocket(self, kind)
        self.engine.add_listener(sock)
        return sock

    def sockets(self, kind: str | None = None) -> list[MonitorSocket]:
        """The open sockets, in the order they were made (of one ``kind`` if given)."""
        return [x for x in self.engine.listeners
                if isinstance(x, MonitorSocket) and not x.closed and kind in (None, x.kind)]

    def settimer(self, delay: float, callback: Callable[[int], Any]) -> int:
        """Call ``callback(timer_id)`` once after ``delay`` seconds of packet time."""
        return self.engine.settimer(delay, callback)

    def cancel_timer(self, timer_id: int) -> None:
        self.engine.cancel_timer(timer_id)

    @property
    def now(self) -> float:
        """The engine's clock: the current packet's (or timer's) timestamp."""
        return self.engine.now

    def on_flow_end(self, hook: Callable[[FlowSummary], None]) -> None:
        """Call ``hook(summary)`` after every flow's ON_CONN_END, with the ended flow's typed,
        read-only ``mostool.FlowSummary`` (for records, sinks and reports; no subscription)."""
        self._flow_end_hooks.append(hook)

    def on_connection_end(self, hook: Callable[[Connection], None]) -> None:
        """Call ``hook(connection)`` with the engine's record of every ended flow: for views
        that also sample ``active_connections()`` and show ended flows beside live ones. Read
        it, never change it, and do not keep it past the hook unless you show it."""
        self._connection_end_hooks.append(hook)

    # -- running ------------------------------------------------------------------------------

    def run(self, source: Source | Iterable[tuple[Any, ...]], *, count: int | None = None,
            duration: float | None = None, cluster: Any = None,
            keep_open: bool = False) -> dict[str, Any]:
        """Feed every frame of ``source`` to the engine, firing due timers on the source's
        clock, until the source ends (open flows end with reason "eof"; with ``keep_open`` they
        stay open, for another run or ``close()`` to end) or the run is stopped
        (reason "stopped"): by ``stop()`` (from a callback or a signal handler), after
        ``count`` packets, or after ``duration`` seconds (wall time for a live source, packet
        time from the first packet otherwise). Returns the run's statistics.

        An exception that is not an ``Exception`` (a second Ctrl-C's KeyboardInterrupt)
        aborts: the source is closed, but open flows are left as they are.

        ``cluster`` (a Dask ``Client``, an address or ``"local:N"``): run copies of this
        monitor over capture files on the cluster instead (``mostool.dist.run_monitor``).
        """
        if cluster is not None:
            from mostool.dist import run_monitor
            return run_monitor(self, source, cluster)
        if count is not None and (not isinstance(count, int) or count <= 0):
            raise MosError(errno.EINVAL, f"count must be a positive integer, not {count!r}")
        if duration is not None and not (isinstance(duration, int | float)
                                         and math.isfinite(duration) and duration > 0):
            raise MosError(errno.EINVAL, f"duration must be positive seconds, not {duration!r}")
        if not isinstance(source, Source):
            source = MemorySource(source)
        self._source = source
        if self._stopping:  # stop() came before the run (a signal during set-up)
            source.stop()
        else:
            self.stopped_by = None
        engine = self.engine
        process = engine.process
        advance = engine.advance
        attach = source_attr(source, "set_deadline")
        if callable(attach):
            attach(engine.next_deadline)
        live = is_live(source)
        wall_end = time.monotonic() + duration if duration is not None and live else None
        packet_span = duration if duration is not None and not live else None
        packet_end: float | None = None
        left = count if count is not None else -1
        # a classic pcap at top speed is read in place by the engine (records.py), then
        # whatever is left (a damaged record, trailing bytes) by the frame loops below
        records = None
        get_records = getattr(source, "pcap_records", None)  # not through wrappers: a filter
        if duration is None and callable(get_records):
            records = get_records()
        frames: Iterator[tuple[Any, ...]] = iter(()) if records is not None else source.frames()
        engine.stop_requested = False
        aborted = False
        failed = False
        try:
            if records is not None:
                left = self._pump(records, left)
                if not self._stopping and left:
                    frames = records.rest()
            if count is None and duration is None:  # the hot loop: nothing to count
                for ts, linktype, data, wire_len in frames:
                    if linktype < 0:  # TICK: the source's clock moved, no packet
                        advance(ts)
                    else:
                        process(ts, linktype, data, wire_len)
                    if self._stopping:
                        break
            else:
                for ts, linktype, data, wire_len in frames:
                    if linktype < 0:
                        advance(ts)
                    else:
                        if packet_span is not None:
                            if packet_end is None:
                                packet_end = ts + packet_span
                            elif ts > packet_end:
                                advance(packet_end)
                                self.stop("duration")
                                break
                        process(ts, linktype, data, wire_len)
                        left -= 1
                        if not left:
                            self.stop("count")
                    if self._stopping:
                        break
                    if wall_end is not None and time.monotonic() >= wall_end:
                        self.stop("duration")
                        break
        except BaseException as exc:
            aborted = not isinstance(exc, Exception)
            failed = isinstance(exc, CallbackError)
            raise
        finally:
            try:
                self._end_run(frames, source, engine, failed, aborted, keep_open)
            finally:
                if records is not None:     # flows are finished: the buffer can go
                    engine.records.detach(engine.table.values())
                    records.close()
        return self.stats()

    def _end_run(self, frames: Iterator[tuple[Any, ...]], source: Source, engine: Engine,
                 failed: bool, aborted: bool, keep_open: bool = False) -> None:
        """Close the frames and end the flows: reason "stopped" or "eof" (not with
        ``keep_open``); none after an abort (a second Ctrl-C); after a strict-mode failure
        without raising a second one."""
        close = getattr(frames, "close", None)
        if close is not None:
            close()
        self.warnings.extend(getattr(source, "warnings", []))
        stopping, self._stopping = self._stopping, False
        if failed:
            # strict mode stopped on a user error: end the flows without letting a second
            # error replace the first (later failures are recorded, not raised)
            dispatcher = engine.dispatcher
            dispatcher.strict = False
            try:
                engine.finish("stopped")
            finally:
                dispatcher.strict = True
        elif not aborted and (stopping or not keep_open):
            engine.finish("stopped" if stopping else "eof")

    def _pump(self, records: PcapRecords, left: int) -> int:
        """Hand the engine the records in steps (so a stop or the page release behind the
        reader comes between steps); returns the packets still to take (-1: no count)."""
        engine = self.engine
        while not self._stopping and records.off < records.end:
            off = records.off
            stop = min(off + _RECORDS_STEP, records.end)
            reached, n, nbytes, nwire = engine.process_records(
                records.buf, off, stop, records.end, records.layout, left)
            records.advance(reached, n, nbytes, nwire)
            if left > 0:
                left -= n
                if not left:
                    self.stop("count")
                    break
            if reached < stop and not engine.stop_requested:
                break                       # a record the frame reader must report
        return left

    def steps(self, source: Source | Iterable[tuple[Any, ...]]) -> Iterator[int]:
        """``run(source)`` one packet at a time, for the stepper (``mostool.analysis``).

        The same loop as ``run`` reads frame by frame (never the in-place record path, which
        gives the same events): a TICK moves the clock, a packet is processed, and then its
        number is yielded, so the caller looks at the flows between two packets. When the
        source ends or ``stop()`` is called, open flows end ("eof" or "stopped") as in
        ``run``; closing the generator early leaves them open.
        """
        if not isinstance(source, Source):
            source = MemorySource(source)
        self._source = source
        self.stopped_by = None
        engine = self.engine
        attach = source_attr(source, "set_deadline")
        if callable(attach):
            attach(engine.next_deadline)
        frames = source.frames()
        engine.stop_requested = False
        finished = False
        failed = False
        try:
            for ts, linktype, data, wire_len in frames:
                if linktype < 0:
                    engine.advance(ts)
                else:
                    engine.process(ts, linktype, data, wire_len)
                    yield engine.packet_number
                if self._stopping:
                    break
            finished = True
        except CallbackError:
            failed = True
            raise
        finally:
            if finished or failed:
                self._end_run(frames, source, engine, failed, False)
            else:
                close = getattr(frames, "close", None)
                if close is not None:
                    close()

    def stepper(self, source: Source | Iterable[tuple[Any, ...]]) -> Any:
        """A ``mostool.analysis.Stepper`` over ``source``: ``step()``, ``run_until(EVENT)``,
        ``run()``, with the flows live between packets (needs the notebook extra)."""
        from mostool.analysis.stepper import Stepper
        return Stepper(self, source)

    @property
    def packet_number(self) -> int:
        """The number of the packet being processed (the capture's numbering, from 1)."""
        return self.engine.packet_number

    @property
    def callback_errors(self) -> int:
        """How many user callbacks, filters, timers and flow-end hooks raised so far (the first
        ``failures`` are kept with their details)."""
        return self.engine.dispatcher.callback_errors

    @property
    def counters(self) -> dict[str, int]:
        """The engine's packet counters so far (a copy): ``packets``, ``tcp_packets``,
        ``orphans``, ``non_ip``, ``non_tcp``, ``malformed``, ... as ``stats()`` reports them."""
        return dict(self.engine.counters)

    @property
    def event_counts(self) -> dict[str, int]:
        """How many times each event was dispatched so far, by event name (a copy)."""
        return dict(self.engine.event_counts)

    @property
    def active_flows(self) -> int:
        """The number of flows tracked right now."""
        return self.engine.flows.active

    def active_connections(self) -> list[Connection]:
        """The engine's record of every flow tracked now (each once), for views that sample
        many flows per frame without subscribing to events. Read them, never change them."""
        return [c for k, c in self.engine.table.items() if k is c.key_c2s]

    @property
    def flows_total(self) -> int:
        """The number of flows tracked since the monitor was made (ended ones included)."""
        return self.engine.flows.flows_total

    def keep_share(self, index: int, count: int) -> None:
        """Track only share ``index`` (0 to ``count`` - 1) of the TCP flows, as one of
        ``count`` monitors that each read the whole capture (``--workers``): a symmetric hash
        of a flow's endpoints picks its share, so both directions meet. The other shares'
        packets still move the packet clock and the packet count, so packet numbers, timers
        and timeouts are a single run's; frames that are not TCP belong to share 0."""
        if not (isinstance(index, int) and isinstance(count, int) and 0 <= index < count):
            raise MosError(errno.EINVAL, f"share {index!r} of {count!r}: want 0 <= index < "
                                         "count")
        self.engine.shard = (index, count) if count > 1 else None

    def feed(self, ts: float, linktype: int, frame: bytes, wire_len: int = 0, *,
             number: int | None = None) -> None:
        """Hand one frame to the engine (notebooks, tests, a partition of a capture); call
        ``close()`` at the end. ``wire_len``: its length on the wire, when the capture cut it;
        ``number``: its number in the whole capture, when this monitor is shown only some of
        its frames (``packet_number`` then counts as one run over all of them would)."""
        if number is not None:
            self.engine.packet_number = number - 1
        self.engine.process(ts, linktype, frame, wire_len or len(frame))

    def advance(self, ts: float, *, number: int | None = None) -> None:
        """Move packet time to ``ts`` without a frame, firing what falls due before it (at
        ``number``, the packet count a single run would show then, if given)."""
        if number is not None:
            self.engine.packet_number = number
        self.engine.advance(ts)

    def next_deadline(self) -> float | None:
        """When the next timer (user, TIME_WAIT, idle) falls due, in packet time."""
        return self.engine.next_deadline()

    def close(self, *, number: int | None = None) -> None:
        """End every open flow (reason "eof"), as at the end of a capture (of ``number``
        packets, when this monitor was shown only some of them)."""
        if number is not None:
            self.engine.packet_number = number
        self.engine.finish("eof")

    def stop(self, why: str = "stop()") -> None:
        """Stop the run after the current packet (from a callback, another thread or a signal
        handler); open flows end with reason "stopped". ``why`` is kept in ``stopped_by``."""
        if not self._stopping:
            self.stopped_by = why
        self._stopping = True
        self.engine.stop_requested = True
        src = self._source
        if src is not None and hasattr(src, "stop"):
            src.stop()

    def stats(self) -> dict[str, Any]:
        out = self.engine.stats()
        if self._source is not None and hasattr(self._source, "stats"):
            out["source"] = self._source.stats()
        out["warnings"] = list(self.warnings)
        return out

    # -- internals ----------------------------------------------------------------------------

    def _flow_ended(self, conn: Connection) -> None:
        # (called once per flow: the hooks are called here, not through a helper per call)
        for conn_hook in self._connection_end_hooks:
            try:
                conn_hook(conn)
            except Exception as exc:  # noqa: BLE001 - user code: count, report, go on
                self._end_hook_failed(conn, exc)
        if self._flow_end_hooks:
            summary = FlowSummary(conn)             # one per flow, shared by the hooks
            for hook in self._flow_end_hooks:
                try:
                    hook(summary)
                except Exception as exc:  # noqa: BLE001 - user code: count, report, go on
                    self._end_hook_failed(conn, exc)

    def _end_hook_failed(self, conn: Connection, exc: Exception) -> None:
        flow = conn.handles[0] if conn.handles else None
        self.engine.dispatcher.report_failure("flow_end_hook", flow,
                                              ConnEnd(Hook.HK_RCV, conn.end_reason), exc)

    def _failed(self, where: str, flow: Flow | None, event: Event | UserEvent,
                exc: BaseException) -> None:
        if len(self.failures) < _MAX_KEPT_FAILURES:
            self.failures.append(CallbackFailure(where, flow, event, exc, self.engine.now,
                                                 self.engine.packet_number))
