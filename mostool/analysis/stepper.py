"""A stepper for exploring events and UDEs: run a capture packet by packet, or until an event.

``mon.stepper(source)`` drives ``Monitor.steps`` (the same loop as ``Monitor.run``, one packet
at a time), so a run stepped to the end gives the same trace as ``mon.run``. Between two packets
every flow is live: ``ppeek``, ``state``, ``buf_info`` answer as inside a callback.

To know what fired, the stepper subscribes one watcher, at construction, to every built-in event
at every hook and to every UDE the monitor's stream sockets use (as mOS, a socket's flows keep
the registrations they were accepted with, so watching must start before the first packet). A
UDE nobody subscribed to is added for the open flows and the flows to come when ``run_until``
asks for it. The watcher only records; it changes no event and no flow.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mostool.events.types import BUILTIN_EVENTS, ON_CONN_START, EventType, Hook
from mostool.sinks.select import stream_sockets, subscribed_udes

if TYPE_CHECKING:
    from mostool.monitor import Monitor

__all__ = ["Stepper", "Hit"]

Predicate = Callable[[Any, Any, Any], bool]


@dataclass
class Hit:
    """Where ``run_until`` stopped: the event, the flow (live), the side and the packet."""

    flow: Any
    side: Any
    event: Any
    packet: int
    ts: float

    @property
    def name(self) -> str:
        return str(self.event.type.name)

    def _repr_html_(self) -> str:
        flow = self.flow
        head = (f"<b>{html.escape(self.name)}</b> on packet {self.packet} "
                f"(side {html.escape(getattr(self.side, 'name', str(self.side)))})")
        from mostool.analysis.html import flow_html
        body = flow_html(flow)
        return f"<div>{head}<br>{body}</div>"


class Stepper:
    """Packet-by-packet control of one ``Monitor`` over one source."""

    def __init__(self, mon: Monitor, source: Any) -> None:
        self.mon = mon
        self.packet = 0                       # the last packet processed
        self.done = False
        self.hits: list[Hit] = []             # every hit of every run_until, in order
        self._match: Predicate | None = None
        self._hit: Hit | None = None
        self._error: BaseException | None = None
        self._last: Any = None
        self._open: dict[int, Any] = {}
        self._ended: list[dict[str, Any]] = []
        self._watched: set[tuple[EventType, Hook]] = set()
        self._sockets = stream_sockets(mon)
        for sock in self._sockets:
            udes = subscribed_udes(sock)
            for etype in BUILTIN_EVENTS:
                for hook in etype.hooks:
                    self._watch(sock, etype, hook)
            for ude, hook in udes:
                self._watch(sock, ude, hook)
        mon.on_flow_end(self._flow_ended)
        self._steps = mon.steps(source)

    # -- watching ---------------------------------------------------------------------------------

    def _watch(self, sock: Any, etype: EventType, hook: Hook) -> None:
        sock.on(etype, hook, self._seen)
        self._watched.add((etype, hook))

    def _seen(self, flow: Any, side: Any, event: Any) -> None:
        if event is self._last:               # the same raise, seen at another socket
            return
        self._last = event
        etype = event.type
        if etype is ON_CONN_START and flow.id not in self._open:
            self._open[flow.id] = flow
        match = self._match
        if match is None or self._hit is not None or self._error is not None:
            return
        try:
            found = match(flow, side, event)
        except Exception as exc:  # noqa: BLE001 - the user's predicate: raised by run_until
            self._error = exc
            return
        if found:
            self._hit = Hit(flow, side, event, self.mon.packet_number, self.mon.now)

    def _flow_ended(self, conn: Any) -> None:
        record = conn.record()
        self._ended.append(record)
        self._open.pop(record["id"], None)

    def _ensure_watched(self, etype: EventType) -> None:
        hook = etype.default_hook
        if any(e is etype for e, _ in self._watched):
            return
        for sock in self._sockets:
            self._watch(sock, etype, hook)
        for flow in self._open.values():
            if not flow.ended:
                flow.on(etype, hook, self._seen)

    # -- driving ----------------------------------------------------------------------------------

    def _advance(self) -> bool:
        """One packet; False at the end of the source."""
        if self.done:
            return False
        try:
            self.packet = next(self._steps)
            return True
        except StopIteration:
            self.done = True
            return False

    def step(self, n: int = 1) -> int:
        """Process the next ``n`` packets (fewer at the end); the last packet's number."""
        if n < 1:
            raise ValueError(f"step takes a positive number of packets, not {n}")
        for _ in range(n):
            if not self._advance():
                break
        return self.packet

    def run_until(self, target: EventType | str | Predicate, *,
                  max_packets: int | None = None) -> Hit | None:
        """Run until ``target`` fires, then stop after that packet. ``target``: an event
        (built-in or UDE), its name, or ``predicate(flow, side, event) -> bool``. Returns the
        hit, or None when the capture (or ``max_packets``) ends first."""
        self._match = self._matcher(target)
        self._hit = None
        self._error = None
        try:
            taken = 0
            while self._hit is None and self._error is None:
                if max_packets is not None and taken >= max_packets:
                    break
                if not self._advance():
                    break
                taken += 1
        finally:
            self._match = None
        if self._error is not None:
            raise self._error
        if self._hit is not None:
            self.hits.append(self._hit)
        return self._hit

    def run(self) -> dict[str, Any]:
        """To the end of the source; the run's statistics (as ``Monitor.run`` returns)."""
        while self._advance():
            pass
        return self.mon.stats()

    def _matcher(self, target: EventType | str | Predicate) -> Predicate:
        if isinstance(target, EventType):
            self._ensure_watched(target)
            return lambda flow, side, event: event.type is target
        if isinstance(target, str):
            name = target
            return lambda flow, side, event: str(event.type.name) == name
        if callable(target):
            return target
        raise TypeError(f"run_until takes an event, an event name or a predicate, "
                        f"not {target!r}")

    # -- looking ------------------------------------------------------------------------------

    @property
    def flows(self) -> Any:
        """A DataFrame snapshot of every flow so far: ended ones, then open ones as they are."""
        from mostool.analysis.tables import FlowColumns
        cols = FlowColumns()
        for rec in self._ended:
            cols.add_record(rec)
        for flow in self._open.values():
            if not flow.ended:
                cols.add_record(flow.stats())
        return cols.frame()

    def _repr_html_(self) -> str:
        state = "at the end" if self.done else f"after packet {self.packet}"
        return (f"<div><b>mostool stepper</b> {state}: {len(self._ended)} flow(s) ended, "
                f"{sum(not f.ended for f in self._open.values())} open, "
                f"{len(self.hits)} hit(s)</div>")

    def __repr__(self) -> str:
        state = "done" if self.done else f"packet {self.packet}"
        return f"<Stepper {state}, {len(self.hits)} hit(s)>"
