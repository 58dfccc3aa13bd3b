"""``--events-out FILE.jsonl``: every dispatched event as one trace line (DESIGN.md §5).

The recorder subscribes to every built-in event at every hook it can fire at, and to the UDEs
the monitor's listeners already use, on every stream listener; each raise is written once even
when several listeners see it. Records are ``mostool.events.trace.trace_record`` dicts, so the
file is the same trace `mostool events` prints, plus the UDEs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from mostool.events.trace import trace_record
from mostool.events.types import BUILTIN_EVENTS, Side
from mostool.sinks.select import FirstDelivery, stream_sockets, subscribed_udes

if TYPE_CHECKING:
    from mostool.monitor import Monitor

__all__ = ["EventRecorder"]


class EventRecorder:
    """Writes the monitor's events to ``out`` as JSON lines. ``attach()`` before the run.

    With ``sink``, each record goes to ``sink(record, flow)`` instead (the golden-trace
    recorder keeps records and reads the flow's state at that moment); ``out`` may be None.
    """

    def __init__(self, mon: Monitor, out: IO[str] | None, *, only: set[str] | None = None,
                 sink: Callable[[dict[str, Any], Any], None] | None = None) -> None:
        self.mon = mon
        self.out = out
        self.only = only
        self.sink = sink
        self.count = 0
        self._deliveries = FirstDelivery()   # one raise, several handles

    def attach(self) -> None:
        listeners = stream_sockets(self.mon)
        for lst in listeners:
            udes = subscribed_udes(lst)
            for etype in BUILTIN_EVENTS:
                if self.only is not None and etype.name not in self.only:
                    continue
                for hook in etype.hooks:
                    lst.on(etype, hook, self._record)
            for etype, hook in udes:
                if self.only is None or etype.name in self.only:
                    lst.on(etype, hook, self._record_ude)

    def _record(self, flow: Any, side: Side, event: Any) -> None:
        if not self._deliveries.first(event):     # the same raise via another listener
            return
        self._write(flow, side, event)

    def _record_ude(self, flow: Any, side: Side, event: Any) -> None:
        self._write(flow, side, event)

    def _write(self, flow: Any, side: Side, event: Any) -> None:
        mon = self.mon
        rec = trace_record(mon.packet_number, mon.now, getattr(flow, "id", 0), side, event)
        if not event.type.builtin:
            rec["ude"] = True
            rec["base"] = event.base.name
        if self.sink is not None:
            self.sink(rec, flow)
        elif self.out is not None:
            self.out.write(json.dumps(rec) + "\n")
        self.count += 1
