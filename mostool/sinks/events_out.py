"""``--events-out FILE.jsonl``: every dispatched event as one trace line (DESIGN.md §5).

The recorder subscribes to every built-in event at every hook it can fire at, and to the UDEs
the monitor's listeners already use, on every stream listener; each raise is written once even
when several listeners see it. Records are ``mostool.events.trace.trace_record`` dicts, so the
file is the same trace `mostool events` prints, plus the UDEs.
"""

from __future__ import annotations

import json
from typing import IO, Any

from mostool.events.trace import trace_record
from mostool.events.types import BUILTIN_EVENTS, EventType, Hook, Side
from mostool.monitor import Monitor
from mostool.sinks.select import once_per_raise, stream_sockets

__all__ = ["EventRecorder"]


class EventRecorder:
    """Writes the monitor's events to ``out`` as JSON lines. ``attach()`` before the run."""

    def __init__(self, mon: Monitor, out: IO[str], *, only: set[str] | None = None) -> None:
        self.mon = mon
        self.out = out
        self.only = only
        self.count = 0

    def attach(self) -> None:
        listeners = stream_sockets(self.mon)
        record = once_per_raise(self._write)    # each raise once, whoever else sees it
        for lst in listeners:
            udes: list[tuple[EventType, Hook]] = []
            for etype, hook, _cb in list(lst.subs.entries):
                for step in etype.path():
                    if not step.builtin and (step, hook) not in udes:
                        udes.append((step, hook))
            for etype in BUILTIN_EVENTS:
                if self.only is not None and etype.name not in self.only:
                    continue
                for hook in etype.hooks:
                    lst.on(etype, hook, record)
            for etype, hook in udes:
                if self.only is None or etype.name in self.only:
                    lst.on(etype, hook, self._record_ude)

    def _record_ude(self, flow: Any, side: Side, event: Any) -> None:
        self._write(flow, side, event)

    def _write(self, flow: Any, side: Side, event: Any) -> None:
        mon = self.mon
        rec = trace_record(mon.packet_number, mon.now, getattr(flow, "id", 0), side, event)
        if not event.type.builtin:
            rec["ude"] = True
            rec["base"] = event.base.name
        self.out.write(json.dumps(rec) + "\n")
        self.count += 1
