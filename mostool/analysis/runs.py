"""The passes ``mos.analyze`` makes over a capture: each is one ``Monitor.run`` of a fresh
Monitor (the user's apps set up first, so flow ids and behaviour match a run of those apps)
with collectors attached through public subscriptions only.

* ``flows_pass``   a flow-end hook; nothing subscribed, so the engine's fast path stays on.
* ``events_pass``  a recorder subscribed like `mostool events` (and to the apps' UDEs).
* ``flow_pass``    one flow in detail: per-packet rows, the engine's verdicts (ON_REXMIT,
                   ON_ERROR, ON_CONN_NEW_DATA) and, if asked, both reassembled byte streams;
                   subscribed per flow, on that flow only, and stopped once it has ended.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from mostool.apps import App, load_app
from mostool.config import MonitorConfig
from mostool.events.types import (
    BUILTIN_EVENTS,
    ON_CONN_END,
    ON_CONN_NEW_DATA,
    ON_CONN_START,
    ON_ERROR,
    ON_PKT_IN,
    ON_REXMIT,
    Hook,
    Side,
    TcpState,
)
from mostool.monitor import Monitor
from mostool.sinks.select import stream_sockets, subscribed_udes
from mostool.stack.flow import SOCKOPT_RCVBUF_CLI, SOCKOPT_RCVBUF_SVR

from .tables import EventColumns, FlowColumns

__all__ = ["Runner", "FlowDetail", "AppSpec"]

AppSpec = str | Callable[[Monitor], Any] | Sequence[str | Callable[[Monitor], Any]] | None


def _apps(app: AppSpec) -> list[App]:
    if app is None:
        return []
    items = [app] if isinstance(app, str) or callable(app) else list(app)
    out = []
    for item in items:
        if isinstance(item, str):
            out.append(load_app(item))
        else:
            name = getattr(item, "__name__", "app")
            out.append(App(name, name, item))
    return out


class Runner:
    """Makes monitors (apps set up) and runs them over the capture files."""

    def __init__(self, files: Sequence[str], config: MonitorConfig, app: AppSpec) -> None:
        self.files = list(files)
        self.config = config
        self.app = app
        self.last_stats: dict[str, Any] = {}
        self.warnings: list[str] = []

    def monitor(self, config: MonitorConfig | None = None) -> Monitor:
        mon = Monitor(config or self.config)
        for app in _apps(self.app):
            app.start(mon)
        return mon

    def run(self, mon: Monitor) -> dict[str, Any]:
        from mostool.replay import replay
        stats = mon.run(replay(*self.files))
        self.last_stats = stats
        for w in mon.warnings:
            if w not in self.warnings:
                self.warnings.append(w)
        return stats

    # -- the passes --------------------------------------------------------------------------

    def flows_pass(self) -> FlowColumns:
        mon = self.monitor()
        stream_sockets(mon)                 # a listener that accepts every flow, if no app has
        cols = FlowColumns()
        mon.on_flow_end(cols.add)
        self.run(mon)
        return cols

    def events_pass(self, wanted: Iterable[str] | None,
                    flows: FlowColumns | None = None) -> EventColumns:
        """Every raise of the wanted events (None: all built-ins but ON_PKT_IN, and every UDE
        the apps' listeners use); one row per raise even when several listeners see it."""
        mon = self.monitor()
        listeners = stream_sockets(mon)
        cols = EventColumns()
        add = cols.add
        last: list[Any] = [None]

        def record(flow: Any, side: Side, event: Any) -> None:
            if event is last[0]:
                return
            last[0] = event
            add(mon.packet_number, mon.now, getattr(flow, "id", 0), side, event)

        def record_ude(flow: Any, side: Side, event: Any) -> None:
            add(mon.packet_number, mon.now, getattr(flow, "id", 0), side, event)

        want = None if wanted is None else set(wanted)
        for lst in listeners:
            udes = subscribed_udes(lst)
            for etype in BUILTIN_EVENTS:
                if (etype is ON_PKT_IN) if want is None else (etype.name not in want):
                    continue
                for hook in etype.hooks:
                    lst.on(etype, hook, record)
            for etype, hook in udes:
                if want is None or etype.name in want:
                    lst.on(etype, hook, record_ude)
        if flows is not None:
            mon.on_flow_end(flows.add)
        self.run(mon)
        return cols

    def flow_pass(self, flow_id: int, with_bytes: bool) -> FlowDetail:
        mon = self.monitor()
        detail = FlowDetail(mon, flow_id, with_bytes)
        for lst in stream_sockets(mon):
            lst.on(ON_CONN_START, Hook.HK_SND, detail.started)
        self.run(mon)
        return detail


_C2S, _S2C = 0, 1
_KEEP = 1 << 20


class FlowDetail:
    """What one flow's pass collected: a row per packet, the anomaly events, the bytes.

    A packet's row is opened by ON_PKT_IN at HK_SND (the sender's stack, first for every
    packet) and the events the same packet raises afterwards (ON_REXMIT at HK_RCV, ON_ERROR
    and ON_CONN_NEW_DATA at NULL) are added to it.
    """

    ROW_FIELDS = ("number", "ts", "direction", "seq", "ack", "len", "flags", "window",
                  "rwnd", "new_data", "rexmit", "overlap", "gap", "anomalies")

    def __init__(self, mon: Monitor, flow_id: int, with_bytes: bool) -> None:
        self.mon = mon
        self.flow_id = flow_id
        self.with_bytes = with_bytes
        self.found = False
        self.rows: dict[str, list[Any]] = {f: [] for f in self.ROW_FIELDS}
        self.errors: dict[str, list[Any]] = {f: [] for f in (
            "number", "ts", "direction", "event", "kind", "seq", "offset", "length")}
        self.isn: list[int | None] = [None, None]
        self.wscale: list[int | None] = [None, None]
        self.data = (bytearray(), bytearray())          # c2s, s2c
        self.next_offset = [0, 0]
        self.gaps: tuple[list[dict[str, int]], list[dict[str, int]]] = ([], [])
        self.record: dict[str, Any] | None = None
        self.first_ts: float | None = None
        self._flow: Any = None

    # -- subscriptions -------------------------------------------------------------------------

    def started(self, flow: Any, side: Side, event: Any) -> None:
        if flow.id != self.flow_id or self._flow is not None:
            return
        self.found = True
        self._flow = flow
        flow.on(ON_PKT_IN, Hook.HK_SND, self._packet)
        flow.on(ON_REXMIT, Hook.HK_RCV, self._rexmit)
        flow.on(ON_ERROR, Hook.NULL, self._error)
        flow.on(ON_CONN_NEW_DATA, Hook.NULL, self._new_data)
        flow.on(ON_CONN_END, Hook.HK_SND, self._ended)
        if self.with_bytes:
            flow.setsockopt(SOCKOPT_RCVBUF_CLI, max(_KEEP, self.mon.config.max_ooo_bytes))
            flow.setsockopt(SOCKOPT_RCVBUF_SVR, max(_KEEP, self.mon.config.max_ooo_bytes))
        # ON_CONN_START at HK_SND comes right after the first packet's ON_PKT_IN there, which
        # this handle was not subscribed to yet: that packet's row is opened here
        self._packet(flow, side, event)

    def _packet(self, flow: Any, side: Side, event: Any) -> None:
        try:
            pkt = flow.last_packet()
        except Exception:  # noqa: BLE001 - no packet at hand (a timer's event)
            return
        rows = self.rows
        if rows["number"] and rows["number"][-1] == pkt.number:
            return
        d = _C2S if pkt.direction == Side.CLI else _S2C
        flags = pkt.flags
        if self.isn[d] is None:
            if flags & 0x02:
                self.isn[d] = pkt.seq
            else:
                init = flow.buf_info(Side.SVR if d == _C2S else Side.CLI).init_seq
                self.isn[d] = init if init is not None else (pkt.seq - 1) & 0xFFFFFFFF
        if flags & 0x02:
            self.wscale[d] = pkt.options.wscale if hasattr(pkt.options, "wscale") else None
        isn, other = self.isn[d], self.isn[1 - d]
        rows["number"].append(pkt.number)
        rows["ts"].append(pkt.ts)
        rows["direction"].append(d)
        rows["seq"].append((pkt.seq - isn) & 0xFFFFFFFF if isn is not None else pkt.seq)
        has_ack = bool(flags & 0x10)
        rows["ack"].append(((pkt.ack - other) & 0xFFFFFFFF if other is not None else pkt.ack)
                           if has_ack else 0)
        rows["len"].append(pkt.wire_len)
        rows["flags"].append(pkt.flag_names)
        rows["window"].append(pkt.window)
        ws_mine, ws_theirs = self.wscale[d], self.wscale[1 - d]
        scale = ws_mine if (ws_mine is not None and ws_theirs is not None
                            and not flags & 0x02) else 0
        rows["rwnd"].append(pkt.window << (scale or 0))
        for f in ("new_data", "rexmit", "overlap", "gap"):
            rows[f].append(0)
        rows["anomalies"].append("")

    def _current(self, flow: Any) -> tuple[int, float, int] | None:
        """(row index, ts, direction) of the packet being processed, if it has a row."""
        rows = self.rows
        if not rows["number"]:
            return None
        try:
            number = flow.last_packet().number
        except Exception:  # noqa: BLE001 - a timer's or the end of capture's event
            return None
        i = len(rows["number"]) - 1
        if rows["number"][i] != number:
            return None
        return i, rows["ts"][i], rows["direction"][i]

    def _note(self, flow: Any, side: Side, name: str, kind: str, offset: int,
              length: int) -> int | None:
        cur = self._current(flow)
        # side is the receiving stack: SVR receives client->server bytes
        d = _C2S if side == Side.SVR else _S2C
        isn = self.isn[d]
        e = self.errors
        e["number"].append(self.rows["number"][cur[0]] if cur else None)
        e["ts"].append(cur[1] if cur else self.mon.now)
        e["direction"].append(d)
        e["event"].append(name)
        e["kind"].append(kind)
        e["seq"].append(offset + 1 if isn is not None else offset)
        e["offset"].append(offset)
        e["length"].append(length)
        return cur[0] if cur else None

    def _rexmit(self, flow: Any, side: Side, event: Any) -> None:
        i = self._note(flow, side, "ON_REXMIT", "rexmit", event.offset, event.length)
        if i is not None:
            self.rows["rexmit"][i] += max(event.length, 1)

    def _error(self, flow: Any, side: Side, event: Any) -> None:
        i = self._note(flow, side, "ON_ERROR", event.kind, event.offset, event.length)
        if i is None:
            return
        if event.kind == "overlap_conflict":
            self.rows["overlap"][i] += event.length
        elif event.kind == "gap":
            self.rows["gap"][i] += event.length
        else:
            prev = self.rows["anomalies"][i]
            self.rows["anomalies"][i] = f"{prev},{event.kind}" if prev else event.kind

    def _new_data(self, flow: Any, side: Side, event: Any) -> None:
        cur = self._current(flow)
        if cur is not None:
            self.rows["new_data"][cur[0]] += event.length
        if not self.with_bytes:
            return
        d = _C2S if side == Side.SVR else _S2C
        expected = self.next_offset[d]
        if event.offset > expected:          # bytes the capture missed: a gap in the stream
            self.gaps[d].append({"offset": expected,
                                 "file_offset": len(self.data[d]),
                                 "length": event.offset - expected})
        chunk = flow.ppeek(side, event.offset, event.length)
        self.data[d].extend(chunk)
        self.next_offset[d] = event.offset + event.length
        # keep only the newest chunk buffered (as `mostool streams`): memory stays small
        opt = SOCKOPT_RCVBUF_CLI if side == Side.CLI else SOCKOPT_RCVBUF_SVR
        keep = flow.getsockopt(opt)
        flow.setsockopt(opt, 1)
        flow.setsockopt(opt, keep)

    def _ended(self, flow: Any, side: Side, event: Any) -> None:
        self.record = flow.stats()
        self.mon.stop("flow ended")         # the rest of the capture is not this flow's


def state_names() -> list[str]:
    return [s.name for s in TcpState]
