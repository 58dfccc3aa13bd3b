"""Event trace records: one JSON-ready dict per dispatched event (DESIGN.md §5).

The same capture and configuration give the identical trace, so traces are what golden tests
compare and what two configurations are diffed by.
"""

from __future__ import annotations

from typing import Any

from mostool.events.types import Event, Side, UserEvent

__all__ = ["trace_record"]


def trace_record(packet: int, ts: float, flow_id: int, side: Side,
                 event: Event | UserEvent) -> dict[str, Any]:
    record: dict[str, Any] = {
        "packet": packet,
        "ts": ts,
        "flow": flow_id,
        "side": Side(side).name,
        "hook": event.hook.name,
        "event": event.name,
    }
    record.update(event.details())
    return record
