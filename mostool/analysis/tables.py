"""Column builders: flow records and event-trace rows collected column by column into typed
pandas DataFrames (never a list of dicts, never ``None``: an empty result is an empty frame
with the same columns and dtypes).

Flow records come from ``FlowSummary.record()`` (what `mostool flows` prints) through a
``Monitor.on_flow_end`` hook; event rows from a callback subscribed like `mostool events`
subscribes. Timestamps stay the engine's float seconds in ``ts`` (the trace's value, exact)
and become ``datetime64[ns, UTC]`` in ``time``/``start``/``end`` at microsecond precision,
which is what a float epoch timestamp holds.
"""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np
import pandas as pd

from mostool.events.types import (
    ConnEnd,
    ConnNewData,
    ErrorEvent,
    Hook,
    Orphan,
    Rexmit,
    Side,
    TcpState,
    TcpStateChange,
    Timeout,
    UserEvent,
)
from mostool.sinks.flowlog import CSV_COLUMNS, tunnel_kinds

__all__ = ["FlowColumns", "EventColumns", "to_datetime", "FLOW_COLUMNS", "EVENT_COLUMNS"]

FLOW_COLUMNS: tuple[str, ...] = tuple(CSV_COLUMNS)
_DIRECTION_INTS = ("packets", "payload_bytes", "bytes", "gaps", "gap_bytes", "rexmit",
                   "overlap_conflicts")
_STATES = [s.name for s in TcpState]
_SIDES = [s.name for s in Side]
_HOOKS = [h.name for h in Hook]
EVENT_COLUMNS: tuple[str, ...] = (
    "packet", "time", "ts", "flow", "side", "hook", "event", "ude", "base",
    "offset", "length", "kind", "reason", "old", "new", "idle")


def to_datetime(ts: Any) -> pd.Series | pd.DatetimeIndex:
    """Float epoch seconds -> datetime64[ns, UTC], rounded to the microsecond."""
    us = np.round(np.asarray(ts, dtype=np.float64) * 1e6).astype(np.int64)
    return pd.to_datetime(us * 1000, unit="ns", utc=True)


class FlowColumns:
    """Flow records, one list per column, as flows end (``add`` is an on_flow_end hook)."""

    def __init__(self) -> None:
        self.cols: dict[str, list[Any]] = {c: [] for c in FLOW_COLUMNS}
        self._appenders = [(c, self.cols[c].append) for c in FLOW_COLUMNS]

    def add(self, conn: Any) -> None:
        self.add_record(conn.record())

    def add_record(self, rec: dict[str, Any]) -> None:
        c2s, s2c = rec["c2s"], rec["s2c"]
        for name, append in self._appenders:
            if name.startswith("c2s_"):
                append(c2s[name[4:]])
            elif name.startswith("s2c_"):
                append(s2c[name[4:]])
            elif name == "tunnel":
                append(tunnel_kinds(rec))
            else:
                append(rec[name])

    def __len__(self) -> int:
        return len(self.cols["id"])

    def frame(self) -> pd.DataFrame:
        """The flows in id order (the order of each flow's first packet), id as the index."""
        cols = self.cols
        ids = np.asarray(cols["id"], dtype=np.int64)
        order = np.argsort(ids, kind="stable")
        out: dict[str, Any] = {}
        for name in FLOW_COLUMNS:
            if name == "id":
                continue
            values = cols[name]
            if name in ("start", "end"):
                arr: Any = to_datetime(np.asarray(values, dtype=np.float64)[order])
            elif name in ("client", "server", "tunnel"):
                arr = pd.array(np.asarray(values, dtype=object)[order], dtype="string")
            elif name in ("client_state", "server_state"):
                arr = pd.Categorical(np.asarray(values, dtype=object)[order],
                                     categories=_STATES)
            elif name == "end_reason":
                arr = pd.Categorical(np.asarray(values, dtype=object)[order])
            elif name == "midstream":
                arr = np.asarray(values, dtype=bool)[order]
            elif name == "first_packet" or name[4:] in _DIRECTION_INTS:
                arr = np.asarray(values, dtype=np.int64)[order]
            elif name.endswith("bad_checksums"):     # null when checksums were not verified
                arr = pd.array(np.asarray(values, dtype=object)[order], dtype="Int64")
            else:                                    # sha256: text or null
                arr = np.asarray(values, dtype=object)[order]
            out[name] = arr
        index = pd.Index(ids[order], name="id", dtype=np.int64)
        return pd.DataFrame(out, index=index)


class _Codes:
    """Names -> small integer codes, for categorical columns."""

    def __init__(self, names: list[str] | None = None) -> None:
        self.names: list[str] = list(names or [])
        self.codes: dict[str, int] = {n: i for i, n in enumerate(self.names)}

    def code(self, name: str) -> int:
        c = self.codes.get(name)
        if c is None:
            c = self.codes[name] = len(self.names)
            self.names.append(name)
        return c

    def categorical(self, codes: array[int]) -> pd.Categorical:
        return pd.Categorical.from_codes(np.frombuffer(codes, dtype=np.int32)
                                         if len(codes) else np.empty(0, np.int32),
                                         categories=self.names)


_NONE = -1


class EventColumns:
    """Event-trace rows in typed arrays: what ``record(packet, ts, flow, side, event)`` got.

    Each row holds the trace's fields (``mostool.events.trace.trace_record``): packet, ts,
    flow, side, hook, event name, and what the event carries; a UDE row also has ``ude`` set
    and the built-in event under it in ``base`` (for built-ins ``base`` is the event itself).
    """

    def __init__(self) -> None:
        self.packet = array("q")
        self.ts = array("d")
        self.flow = array("q")
        self.side = array("i")
        self.hook = array("i")
        self.event = array("i")
        self.ude = array("b")
        self.base = array("i")
        self.offset = array("q")
        self.length = array("q")
        self.kind = array("i")
        self.reason = array("i")
        self.old = array("i")
        self.new = array("i")
        self.idle = array("d")
        self.event_names = _Codes()
        self.kinds = _Codes()
        self.reasons = _Codes()

    def __len__(self) -> int:
        return len(self.packet)

    def add(self, packet: int, ts: float, flow: int, side: int, event: Any) -> None:
        base: Any
        if type(event) is UserEvent:
            base = event.base
            self.ude.append(1)
        else:
            base = event
            self.ude.append(0)
        self.packet.append(packet)
        self.ts.append(ts)
        self.flow.append(flow)
        self.side.append(int(side))
        self.hook.append(int(base.hook))
        self.event.append(self.event_names.code(event.type.name))
        self.base.append(self.event_names.code(base.type.name))
        offset = length = kind = reason = old = new = _NONE
        idle = float("nan")
        cls = type(base)
        if cls is ConnNewData or cls is Rexmit:
            offset, length = base.offset, base.length
        elif cls is ErrorEvent:
            kind = self.kinds.code(base.kind)
            offset, length = base.offset, base.length
        elif cls is TcpStateChange:
            old, new = int(base.old), int(base.new)
        elif cls is ConnEnd or cls is Orphan:
            reason = self.reasons.code(base.reason)
        elif cls is Timeout:
            idle = round(base.idle, 6)
        self.offset.append(offset)
        self.length.append(length)
        self.kind.append(kind)
        self.reason.append(reason)
        self.old.append(old)
        self.new.append(new)
        self.idle.append(idle)

    def frame(self) -> pd.DataFrame:
        def ints(a: array[int]) -> np.ndarray:
            return np.frombuffer(a, dtype=np.int64) if len(a) else np.empty(0, np.int64)

        def nullable(a: array[int]) -> pd.arrays.IntegerArray:
            v = ints(a)
            return pd.arrays.IntegerArray(v.copy(), v == _NONE)

        def codes(a: array[int]) -> np.ndarray:
            return np.frombuffer(a, dtype=np.int32) if len(a) else np.empty(0, np.int32)

        ts = np.frombuffer(self.ts, dtype=np.float64) if len(self.ts) else np.empty(0)
        idle = np.frombuffer(self.idle, dtype=np.float64) if len(self.idle) else np.empty(0)

        def state_codes(a: array[int]) -> pd.Categorical:
            return pd.Categorical.from_codes(codes(a), categories=_STATES)

        cols: dict[str, Any] = {
            "packet": ints(self.packet).copy(),
            "time": to_datetime(ts),
            "ts": ts.copy(),
            "flow": ints(self.flow).copy(),
            "side": pd.Categorical.from_codes(codes(self.side), categories=_SIDES),
            "hook": pd.Categorical.from_codes(codes(self.hook), categories=_HOOKS),
            "event": self.event_names.categorical(self.event),
            "ude": (np.frombuffer(self.ude, dtype=np.int8) if len(self.ude)
                    else np.empty(0, np.int8)).astype(bool),
            "base": self.event_names.categorical(self.base),
            "offset": nullable(self.offset),
            "length": nullable(self.length),
            "kind": self.kinds.categorical(self.kind),
            "reason": self.reasons.categorical(self.reason),
            "old": state_codes(self.old),
            "new": state_codes(self.new),
            "idle": pd.arrays.FloatingArray(idle.copy(), np.isnan(idle)),
        }
        return pd.DataFrame(cols, columns=list(EVENT_COLUMNS))
