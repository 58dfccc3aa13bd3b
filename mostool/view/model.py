"""What the terminal view knows: counters, the event feed and flow rows, gathered cheaply.

Theory of operation. The view must not slow the engine down. By default it subscribes to no
built-in event at all: an engine connection nobody subscribes to takes the engine's fast path
for in-order data, and even a subscription to a rare event (ON_REXMIT) turns that off (measured:
a third of the throughput on a bulk transfer). So it learns by looking: flow starts from the
flow table, flow ends from ``Monitor.on_flow_end`` (no dispatch per flow), states, bytes,
retransmissions, overlap conflicts and gaps from each connection's counters when a frame is
drawn; what changed since the previous frame becomes a sampled line in the feed
("ON_REXMIT x3"). The user's UDEs (whose filters run anyway) are subscribed to, so they are
exact. ``all_events=True`` subscribes to every built-in event instead: exact counts and every
event in the feed, at the engine's full dispatch cost.

``snapshot()`` is called a few times a second by the driver (``watch.py``); it walks the active
flows once and returns plain data (``Snapshot``) that the renderer turns into rich tables.
Nothing here reads the wall clock: the driver passes ``wall`` in.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from mostool.events.types import (
    BUILTIN_EVENTS,
    ON_CONN_END,
    ON_CONN_NEW_DATA,
    ON_CONN_START,
    ON_ERROR,
    ON_ORPHAN,
    ON_PKT_IN,
    ON_REXMIT,
    ON_TCP_STATE_CHANGE,
    ON_TIMEOUT,
    EventType,
    Hook,
    Side,
)
from mostool.monitor import Monitor
from mostool.sinks.select import FirstDelivery, stream_sockets
from mostool.sinks.untracked import Untracked
from mostool.sources import is_live, source_attr

__all__ = ["ViewModel", "Snapshot", "FlowRow", "FeedEntry", "SORT_KEYS", "FEED_KINDS"]

SORT_KEYS = ("bytes", "rate", "packets", "age", "id")
FEED_LEN = 200
RECENT_ENDED = 32
TOP_KEEP = 20

# With all_events: every built-in, each once per occurrence (by default: none, see above).
_ALL: tuple[tuple[EventType, Hook], ...] = (
    (ON_ERROR, Hook.NULL), (ON_REXMIT, Hook.HK_RCV), (ON_TIMEOUT, Hook.NULL),
    (ON_CONN_START, Hook.HK_SND), (ON_TCP_STATE_CHANGE, Hook.HK_SND),
    (ON_TCP_STATE_CHANGE, Hook.HK_RCV), (ON_CONN_END, Hook.HK_RCV),
    (ON_CONN_NEW_DATA, Hook.NULL), (ON_PKT_IN, Hook.HK_SND), (ON_ORPHAN, Hook.NULL),
)
# Counted, but too frequent to be worth a line in the feed or the "last event" column.
_NOISY = frozenset({"ON_PKT_IN", "ON_CONN_NEW_DATA", "ON_ORPHAN"})


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One line of the event feed."""

    seq: int            # arrival order, for a stable sort
    ts: float           # packet time
    flow: int           # flow id (0: none)
    side: str           # CLI, SVR, BOTH or ""
    name: str           # event name (built-in or UDE)
    kind: str           # start, end, state, error, rexmit, timeout, ude, data, failure
    detail: str


@dataclass(frozen=True, slots=True)
class FlowRow:
    """One row of the flow table."""

    id: int
    client: str
    client_state: str
    server: str
    server_state: str
    c2s: int            # reassembled bytes client -> server
    s2c: int
    packets: int
    age: float          # packet-time seconds since the flow's first packet (duration if ended)
    rate: float         # bytes per wall second since the previous frame
    last_event: str
    ended: str          # end reason, "" while active


@dataclass(slots=True)
class Snapshot:
    """Everything one frame of the view shows, as plain values."""

    source: str
    kind: str                          # "replay", "live" or "memory"
    progress: tuple[int, int] | None   # (position, total) bytes of the files read
    capture: dict[str, Any]            # live capture counters (received, dropped ...)
    packets: int
    bytes: int
    pps: float
    bps: float                         # bytes per second (wall)
    active: int
    flows: int
    packet_time: float                 # seconds of packet time since the first frame
    first_ts: float | None
    now: float
    wall: float                        # wall seconds since the run started
    eta: float | None
    rows: list[FlowRow]
    sort: str
    feed: list[FeedEntry]
    events: dict[str, int]
    udes: dict[str, int]
    errors: dict[str, int]             # ON_ERROR by kind
    anomalies: dict[str, int]
    end_reasons: dict[str, int]
    failures: list[str]
    finished: bool = False
    paused: bool = False
    warnings: list[str] = field(default_factory=list)
    waiting: float | None = None       # a paced replay waits this long for its next frame


def _state_name(state: Any) -> str:
    return str(getattr(state, "name", state))


class ViewModel:
    """Collects what the view shows from one Monitor. ``attach`` before ``Monitor.run``."""

    def __init__(self, mon: Monitor, *, all_events: bool = False, sort: str = "bytes",
                 feed: frozenset[str] | set[str] | None = None) -> None:
        if sort not in SORT_KEYS:
            raise ValueError(f"sort must be one of {', '.join(SORT_KEYS)}, not {sort!r}")
        unknown = set(feed or ()) - set(FEED_KINDS)
        if unknown:
            raise ValueError(f"unknown feed kind(s) {', '.join(sorted(unknown))}; choose from "
                             f"{', '.join(FEED_KINDS)}")
        self.mon = mon
        self.all_events = all_events
        self.sort = sort
        self.counts: dict[str, int] = {}          # events the view observed, by name
        self.ude_names: set[str] = set()
        self.errors: dict[str, int] = {}
        # (seq, ts, flow id, side, name, kind, event value or detail text)
        self.feed: deque[tuple[int, float, int, int, str, str, Any]] = (
            _FilteredFeed(frozenset(feed)) if feed is not None else deque(maxlen=FEED_LEN))
        self._states: dict[int, tuple[Any, Any]] = {}   # active flows' states, as last drawn
        self.last_event: dict[int, str] = {}
        self.recent_ended: deque[Any] = deque(maxlen=RECENT_ENDED)
        self.top: list[tuple[int, int, Any]] = []   # min-heap of the busiest ended flows
        self.end_reasons: dict[str, int] = {}
        self.ended_gaps = 0
        self.ended_gap_bytes = 0
        self.ended_conflicts = 0
        self.ended_rexmit = 0
        # per flow with anomalies: (rexmit, conflicts, gaps) per receiving side, as last seen
        self._marks: dict[int, tuple[int, int, int, int, int, int]] = {}
        self.ended_flows = 0
        self._seq = 0
        self._deliveries = FirstDelivery()   # one raise, several handles
        self._announced: set[int] = set()     # flows whose start is in the feed
        self._ended: list[Any] = []             # flows ended since the last drain()
        self._prev_bytes: dict[int, int] = {}
        self._prev_wall = 0.0
        self._prev_packets = 0
        self._prev_bytes_total = 0
        self.untracked: Untracked | None = None
        self._pps = 0.0
        self._bps = 0.0
        self._failures_seen = 0
        self.listeners: list[Any] = []

    # -- wiring ---------------------------------------------------------------------------------

    def attach(self) -> None:
        """Subscribe to the monitor's stream listeners (one is opened when there is none, so
        ``watch`` without an app shows every flow), to their UDEs, and to flow ends."""
        listeners = stream_sockets(self.mon)
        self.listeners = listeners
        self.untracked = Untracked(self.mon)      # what no flow took: said, not dropped
        wanted = _ALL if self.all_events else ()
        for lst in listeners:
            # UDEs with the app's own callbacks go to the feed; UDEs that only lead to them
            # (the inner links of a chain) are counted.
            udes: dict[tuple[EventType, Hook], bool] = {}
            for etype, hook, _cb in list(lst.subs.entries):
                for step in etype.path():
                    if not step.builtin:
                        udes[(step, hook)] = udes.get((step, hook), False) or step is etype
            for etype, hook in wanted:
                lst.on(etype, hook, self._builtin)
            for (etype, hook), leaf in udes.items():
                self.ude_names.add(etype.name)
                self.counts.setdefault(etype.name, 0)
                lst.on(etype, hook, self._ude if leaf else self._ude_count)
        self.mon.on_connection_end(self._ended.append)   # shown beside active_connections()

    # -- per event (keep these lean: they run inside the engine's dispatch) ---------------------

    def _builtin(self, flow: Any, side: Side, event: Any) -> None:
        if not self._deliveries.first(event):     # the same raise via another listener
            return
        name = event.TYPE.name
        counts = self.counts
        counts[name] = counts.get(name, 0) + 1
        if name in _NOISY:
            return
        fid = flow.id
        kind = _KINDS.get(name, "event")
        if kind == "error":
            self.errors[event.kind] = self.errors.get(event.kind, 0) + 1
        elif kind == "start":
            self._announced.add(fid)
        elif kind == "end":
            return                              # reported by drain(), with its reason
        self._seq += 1
        self.feed.append((self._seq, self.mon.now, fid, side, name, kind, event))
        self.last_event[fid] = name

    def _ude(self, flow: Any, side: Side, event: Any) -> None:
        name = event.type.name
        self.counts[name] += 1
        fid = getattr(flow, "id", 0)
        self._seq += 1
        self.feed.append((self._seq, self.mon.now, fid, side, name, "ude", event))
        self.last_event[fid] = name

    def _ude_count(self, flow: Any, side: Side, event: Any) -> None:
        self.counts[event.type.name] += 1

    def drain(self) -> None:
        """Fold the flows that ended since the last call into the counters and the feed.

        Flow ends are only appended to a list by the engine's flow-end hook (a C method, no
        Python frame per flow); this runs between batches of frames."""
        if not self._ended:
            return
        ended = self._ended.copy()              # the hook holds this very list: empty it
        self._ended.clear()
        self.ended_flows += len(ended)
        reasons = self.end_reasons
        announced = self._announced
        last_event = self.last_event
        top = self.top
        feed = self.feed
        skip_feed = len(ended) - FEED_LEN // 2      # older ends would scroll out at once
        gaps = gap_bytes = conflicts = rexmit = 0
        for i, conn in enumerate(ended):
            reason = conn.end_reason
            reasons[reason] = reasons.get(reason, 0) + 1
            s0, s1 = conn.stream(0), conn.stream(1)
            cid = conn.id
            if s0.gaps or s1.gaps:
                gaps += len(s0.gaps) + len(s1.gaps)
                gap_bytes += s0.gap_bytes + s1.gap_bytes
            if s0.conflicts or s1.conflicts:
                conflicts += s0.conflicts + s1.conflicts
            marks = _marks_of(conn)
            if marks is not None:
                rexmit += marks[0] + marks[3]
                self._sample(conn, marks, conn.end_ts, feed=i >= skip_feed)
            self._marks.pop(cid, None)
            if last_event:
                last_event.pop(cid, None)
            if cid in announced:
                announced.discard(cid)
            elif i >= skip_feed:                # started and ended between two frames
                self._seq += 1
                feed.append((self._seq, conn.start, cid, Side.CLI, "ON_CONN_START", "start",
                             ""))
            if i >= skip_feed:
                self._seq += 1
                feed.append((self._seq, conn.end_ts, cid, Side.BOTH, "ON_CONN_END", "end",
                             reason))
            total = s0.delivered + s1.delivered
            if len(top) < TOP_KEEP:
                heapq.heappush(top, (total, -cid, conn))
            elif total > top[0][0]:
                heapq.heapreplace(top, (total, -cid, conn))
        self.ended_gaps += gaps
        self.ended_gap_bytes += gap_bytes
        self.ended_conflicts += conflicts
        self.ended_rexmit += rexmit
        self.recent_ended.extend(ended[-RECENT_ENDED:])

    def _sample(self, conn: Any, marks: tuple[int, int, int, int, int, int], ts: float,
                feed: bool = True) -> None:
        """Feed lines for what a flow's anomaly counters gained since they were last seen."""
        before = self._marks.get(conn.id, _NO_MARKS)
        if marks == before:
            return
        self._marks[conn.id] = marks
        if not feed:
            return
        for side, at in ((Side.CLI, 0), (Side.SVR, 3)):
            rx, cf, gp = (marks[at + k] - before[at + k] for k in range(3))
            for n, name, kind, what in ((rx, "ON_REXMIT", "rexmit", "segment"),
                                        (cf, "ON_ERROR", "error", "overlap_conflict"),
                                        (gp, "ON_ERROR", "error", "gap")):
                if n > 0:
                    self._seq += 1
                    detail = f"x{n}" if kind == "rexmit" else f"{what} x{n}"
                    self.feed.append((self._seq, ts, conn.id, side, name, kind, detail))
                    self.last_event[conn.id] = name

    def _sample_states(self, conn: Any, states: dict[int, tuple[Any, Any]]) -> None:
        """A feed line per side whose state changed since the previous frame (sampled: the
        states in between are not seen)."""
        now = (conn.state[0], conn.state[1])
        states[conn.id] = now
        before = self._states.get(conn.id)
        if before is None or before == now:
            return
        for side in (0, 1):
            if before[side] != now[side]:
                self._seq += 1
                self.feed.append((self._seq, conn.last_ts, conn.id, side,
                                  "ON_TCP_STATE_CHANGE", "state",
                                  f"{_state_name(before[side])}→{_state_name(now[side])}"))
                self.last_event[conn.id] = "ON_TCP_STATE_CHANGE"

    # -- frames ---------------------------------------------------------------------------------

    def _row(self, conn: Any, rate: float) -> FlowRow:
        ended = conn.end_reason if conn.ended else ""
        age = (conn.end_ts if ended else self.mon.now) - conn.start
        if ended:
            last = "ON_CONN_END"
        elif getattr(conn, "stopped", False):
            last = "stopped"
        else:
            last = self.last_event.get(conn.id, "ON_CONN_START")
        return FlowRow(conn.id, conn.client, _state_name(conn.state[0]), conn.server,
                       _state_name(conn.state[1]), conn.stream(1).delivered,
                       conn.stream(0).delivered, conn.packets[0] + conn.packets[1],
                       max(age, 0.0), rate, last, ended)

    def active_connections(self) -> list[Any]:
        return self.mon.active_connections()

    def snapshot(self, wall: float, *, source: Any = None, packets: int = 0, nbytes: int = 0,
                 first_ts: float | None = None, rows: int = 20, feed_rows: int = 50,
                 finished: bool = False,
                 paused: bool = False, waiting: float | None = None) -> Snapshot:
        """One frame's worth of data; ``wall`` is seconds since the run started."""
        mon = self.mon
        self.drain()
        conns = self.active_connections()
        # flows that started since the last frame
        announced = self._announced
        fresh = [c for c in conns if c.id not in announced]
        if fresh:
            fresh.sort(key=lambda c: c.id)
            for c in fresh[-FEED_LEN:]:
                self._seq += 1
                self.feed.append((self._seq, c.start, c.id, Side.CLI, "ON_CONN_START",
                                  "start", ""))
        self._announced = {c.id for c in conns}   # (forgets the flows that ended)
        # rates
        dt = wall - self._prev_wall
        if dt > 0.05 or finished:
            if dt > 0:
                self._pps = (packets - self._prev_packets) / dt
                self._bps = (nbytes - self._prev_bytes_total) / dt
            self._prev_wall, self._prev_packets, self._prev_bytes_total = wall, packets, nbytes
            rate_dt = dt
        else:
            rate_dt = 0.0
        # one pass over the active flows: anomalies, rates, sort keys
        gaps = self.ended_gaps
        gap_bytes = self.ended_gap_bytes
        conflicts = self.ended_conflicts
        rexmit = self.ended_rexmit
        prev = self._prev_bytes
        new_prev: dict[int, int] = {}
        # state changes seen by looking (all_events subscribes to them instead)
        sample_states = not self.all_events
        states: dict[int, tuple[Any, Any]] = {}
        rates: dict[int, float] = {}
        for c in conns:
            s0, s1 = c.stream(0), c.stream(1)
            if s0.gaps or s1.gaps:
                gaps += len(s0.gaps) + len(s1.gaps)
                gap_bytes += s0.gap_bytes + s1.gap_bytes
            conflicts += s0.conflicts + s1.conflicts
            marks = _marks_of(c)
            if marks is not None:
                rexmit += marks[0] + marks[3]
                self._sample(c, marks, c.last_ts)
            if sample_states:
                self._sample_states(c, states)
            total = s0.delivered + s1.delivered
            if rate_dt:
                rates[c.id] = (total - prev.get(c.id, 0)) / rate_dt
                new_prev[c.id] = total
        if rate_dt:
            self._prev_bytes = new_prev
        if sample_states:
            self._states = states
        key = _sort_key(self.sort, rates)
        chosen = heapq.nlargest(rows, conns, key=key)
        table = [self._row(c, rates.get(c.id, 0.0)) for c in chosen]
        if len(table) < rows:
            ended = sorted(self.recent_ended, key=key, reverse=True)
            table.extend(self._row(c, 0.0) for c in ended[:rows - len(table)])
        counters = mon.counters
        events = self._event_counts()
        stats: dict[str, Any] = {}
        kind = "memory"
        progress = None
        eta = None
        name = getattr(source, "name", "") if source is not None else ""
        if source is not None:
            total_bytes = int(source_attr(source, "total_bytes", 0) or 0)
            if is_live(source):
                kind = "live"
                try:
                    stats = dict(source.stats())
                except Exception:  # noqa: BLE001 - a source's statistics are best effort
                    stats = {}
            elif total_bytes:
                kind = "replay"
                pos = int(source_attr(source, "position_bytes", 0) or 0)
                progress = (pos, total_bytes)
                if pos and not finished:
                    frac = pos / total_bytes
                    eta = wall * (1 - frac) / frac if frac > 0 else None
                if waiting is not None:
                    # a paced replay waiting out a recorded gap: at least that long
                    eta = max(eta or 0.0, waiting)
        failures = self.mon.failures
        if len(failures) > self._failures_seen:
            for f in failures[self._failures_seen:self._failures_seen + 16]:
                self._seq += 1
                self.feed.append((self._seq, f.ts, f.flow_id, -1, f.event, "failure",
                                  f"{f.where}: {f.error}"))
            self._failures_seen = len(failures)
        anomalies = {
            "retransmissions": rexmit,
            "bad checksums": counters.get("bad_checksums", 0),
            "gaps": gaps,
            "gap bytes": gap_bytes,
            "overlap conflicts": conflicts,
            "bad RSTs": counters.get("bad_rst", 0),
            "decode errors": max(counters.get("malformed", 0)
                                 + counters.get("unknown_linktype", 0),
                                 self.untracked.undecoded if self.untracked else 0),
            "untracked TCP": self.untracked.packets if self.untracked else 0,
            "orphans": counters.get("orphans", 0),
            "callback errors": mon.callback_errors,
        }
        for key_name, label in (("kernel_drops", "kernel drops"),
                                ("ifdrops", "interface drops")):
            if key_name in stats:
                anomalies[label] = int(stats[key_name])
        udes = {n: self.counts.get(n, 0) for n in sorted(self.ude_names)}
        feed = [_entry(e) for e in sorted(self.feed, key=lambda e: (e[1], e[0]))[-feed_rows:]]
        return Snapshot(
            source=name, kind=kind, progress=progress, capture=stats, packets=packets,
            bytes=nbytes, pps=self._pps, bps=self._bps, active=mon.active_flows,
            flows=mon.flows_total, packet_time=(mon.now - first_ts) if first_ts else 0.0,
            first_ts=first_ts, now=mon.now, wall=wall, eta=eta, rows=table, sort=self.sort,
            feed=feed, events=events, udes=udes, errors=dict(self.errors),
            anomalies=anomalies, end_reasons=dict(self.end_reasons),
            failures=[str(f) for f in failures[:5]], finished=finished, paused=paused,
            waiting=waiting,
            warnings=list(getattr(source, "warnings", []) or []) + list(self.mon.warnings))

    def _event_counts(self) -> dict[str, int]:
        """Built-in event counts: what the view observed, completed by the engine's own
        counts of events the app subscribed to. Flow starts and ends are always exact."""
        mon = self.mon
        out: dict[str, int] = {}
        engine_counts = mon.event_counts
        for etype in BUILTIN_EVENTS:
            name = etype.name
            if name == "ON_CONN_START":
                n = mon.flows_total
            elif name == "ON_CONN_END":
                n = self.ended_flows
            elif name in self.counts:
                n = self.counts[name]
            else:
                n = engine_counts.get(name, 0)
            if n or name in ("ON_CONN_START", "ON_CONN_END"):
                out[name] = n
        return out

    def top_flows(self, n: int = 10) -> list[FlowRow]:
        """The busiest flows of the run (ended ones and those still open), most bytes first."""
        self.drain()
        rows = [self._row(c, 0.0) for _, _, c in self.top]
        rows.extend(self._row(c, 0.0) for c in self.active_connections())
        rows.sort(key=lambda r: (-(r.c2s + r.s2c), r.id))
        return rows[:n]

    def cycle_sort(self) -> str:
        i = SORT_KEYS.index(self.sort)
        self.sort = SORT_KEYS[(i + 1) % len(SORT_KEYS)]
        return self.sort


_KINDS = {
    "ON_CONN_START": "start", "ON_CONN_END": "end", "ON_TCP_STATE_CHANGE": "state",
    "ON_ERROR": "error", "ON_REXMIT": "rexmit", "ON_TIMEOUT": "timeout",
    "ON_CONN_NEW_DATA": "data", "ON_PKT_IN": "data", "ON_ORPHAN": "orphan",
}
_SIDE_NAMES = {0: "CLI", 1: "SVR", 2: "BOTH"}

# what the feed can show (watch --feed): a line's category from its kind and detail
FEED_KINDS = ("start", "end", "state", "rexmit", "gap", "conflict", "error", "timeout", "ude",
              "failure", "data", "orphan")


def feed_category(kind: str, name: str, detail: Any) -> str:
    if kind == "error" and isinstance(detail, str):
        if detail.startswith("gap"):
            return "gap"
        if detail.startswith("overlap_conflict"):
            return "conflict"
    if kind == "end" and detail == "timeout":
        return "timeout"
    if kind == "event":
        return "error"
    return kind


class _FilteredFeed(deque[tuple[int, float, int, int, str, str, Any]]):
    """The feed when --feed chooses what it shows: other lines are not kept."""

    def __init__(self, kinds: frozenset[str]) -> None:
        super().__init__(maxlen=FEED_LEN)
        self.kinds = kinds

    def append(self, entry: tuple[int, float, int, int, str, str, Any]) -> None:
        if feed_category(entry[5], entry[4], entry[6]) in self.kinds:
            super().append(entry)


_NO_MARKS = (0, 0, 0, 0, 0, 0)


def _marks_of(conn: Any) -> tuple[int, int, int, int, int, int] | None:
    """(rexmit, conflicts, gaps) received by CLI, then by SVR; None when all are zero."""
    s0, s1 = conn.stream(0), conn.stream(1)
    ctl = conn.control_rexmit
    r0 = s0.rexmit + ctl[0]
    r1 = s1.rexmit + ctl[1]
    if not (r0 or r1 or s0.conflicts or s1.conflicts or s0.gaps or s1.gaps):
        return None
    return (r0, s0.conflicts, len(s0.gaps), r1, s1.conflicts, len(s1.gaps))


def _entry(e: tuple[int, float, int, int, str, str, Any]) -> FeedEntry:
    seq, ts, fid, side, name, kind, what = e
    if isinstance(what, str):
        detail = f"reason={what}" if kind == "end" else what
    elif kind == "ude":
        detail = _detail(what.base)
    else:
        detail = _detail(what)
    return FeedEntry(seq, ts, fid, _SIDE_NAMES.get(side, ""), name, kind, detail)


def _detail(event: Any) -> str:
    try:
        d = event.details()
    except Exception:  # noqa: BLE001 - a malformed event value must not break the view
        return ""
    if "old" in d and "new" in d:
        return f"{d['old']} -> {d['new']}"
    if "offset" in d and "length" in d:
        head = f"{d['kind']} " if "kind" in d else ""
        return f"{head}{d['length']}B @{d['offset']}"
    return " ".join(f"{k}={v}" for k, v in d.items())


def _sort_key(sort: str, rates: dict[int, float]) -> Any:
    if sort == "rate":
        return lambda c: (rates.get(c.id, 0.0), c.stream(0).delivered + c.stream(1).delivered)
    if sort == "packets":
        return lambda c: c.packets[0] + c.packets[1]
    if sort == "age":
        return lambda c: -c.start
    if sort == "id":
        return lambda c: -c.id
    return lambda c: c.stream(0).delivered + c.stream(1).delivered
