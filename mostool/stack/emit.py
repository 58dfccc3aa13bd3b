"""The event funnel: every built-in event the engine raises leaves through here, and is counted.

Theory of operation (h11's "all events go through here"). The engine decides *that* an event
happens; the ``Emitter`` builds nothing but delivers it and counts it, through one of two doors:

* ``emit`` delivers one value to the handles of a flow that want it: in registration order for
  a packet the client sent, in reverse for one the server sent (as mOS). It inlines the plain
  callback-list case of ``Dispatcher.dispatch`` (one call layer less per callback, on the path
  of every subscribed packet) and hands a tree with UDEs below to ``Dispatcher.walk``.
* ``deliver`` hands one value to an explicit list of (subscriptions, handle) targets through
  ``Dispatcher.dispatch``: RAW listeners and orphans (with the ``OrphanHandle``), a buffer
  overflow (one handle), ON_CONN_END (the open handles subscribed at that hook).

Each value is counted once when it is raised, whatever number of handles receive it; that count
is ``event_counts``. The composite routes are built on the two doors, in the order the engine's
docstring gives: ``stack`` (ON_PKT_IN, ON_CONN_START, ON_TCP_STATE_CHANGE at one stack's hook),
``errors`` and ``new_data`` (the NULL hook; ``overflow`` comes before the new data),
``fast_events`` (what a fast-path packet raises) and ``end`` (the flow's last event).

The half-stream outbox. ``HalfStream.receive``/``skip_to``/``finish`` leave what they found in
the stream's ``new_runs``, ``conflict_runs`` and ``gap_runs`` (see HalfStream): ``new_data``
and ``errors`` here are the only readers, and each takes and clears the runs it raises events
for, so a run is raised once and never lost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mostool.events.types import (
    BUILTIN_EVENTS,
    CONN_END_BIT,
    CONN_START_BIT,
    ERROR_BIT,
    NEW_DATA_BIT,
    ON_CONN_END,
    ON_ERROR,
    ON_ORPHAN,
    ON_PKT_IN,
    ORPHAN_BIT,
    PKT_IN_BIT,
    STATE_CHANGE_BIT,
    ConnEnd,
    ConnNewData,
    ConnStart,
    ErrorEvent,
    Event,
    Hook,
    Orphan,
    PktIn,
    Side,
    TcpState,
    TcpStateChange,
)
from mostool.stack.connection import PacketInfo, pair_set
from mostool.stack.stream import LATE

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mostool.events.dispatch import Dispatcher, SubscriptionSet
    from mostool.stack.connection import Connection
    from mostool.stack.decode import TcpSegment
    from mostool.stack.engine import Engine, Listener

__all__ = ["Emitter", "OrphanHandle"]

SIDES = (Side.CLI, Side.SVR)
_HK_NULL, _HK_RCV, _HK_SND = Hook.NULL, Hook.HK_RCV, Hook.HK_SND
_ESTABLISHED, _LISTEN = TcpState.ESTABLISHED, TcpState.LISTEN
_N_BUILTIN = 1 + max(e.id for e in BUILTIN_EVENTS)
_EVENT_NAMES = {e.id: e.name for e in BUILTIN_EVENTS}
_PKT_IN_ID, _ERROR_ID = ON_PKT_IN.id, ON_ERROR.id
_ORPHAN_ID, _CONN_END_ID = ON_ORPHAN.id, ON_CONN_END.id


class OrphanHandle:
    """What ORPHAN callbacks and RAW listeners get in place of a flow: the frame at hand."""

    __slots__ = ("engine", "frame", "seg", "uctx")

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.frame: tuple[int, bytes] = (0, b"")
        self.seg: TcpSegment | None = None
        self.uctx: Any = None

    def last_packet(self, side: Side = Side.BOTH) -> PacketInfo | tuple[int, bytes]:
        """The TCP packet (as PacketInfo) or, for non-TCP frames, (linktype, frame bytes)."""
        if self.seg is not None:
            return PacketInfo(self.seg, self.engine.now, self.engine.packet_number,
                              Side.BOTH)
        return self.frame

    @property
    def id(self) -> int:
        return 0


class Emitter:
    """The one funnel of built-in events: delivers through the Dispatcher and counts."""

    __slots__ = ("dispatcher", "mos_compat", "orphan_handle", "counts")

    def __init__(self, dispatcher: Dispatcher, orphan_handle: OrphanHandle,
                 mos_compat: bool) -> None:
        self.dispatcher = dispatcher
        self.orphan_handle = orphan_handle
        self.mos_compat = mos_compat
        self.counts = [0] * _N_BUILTIN      # raised built-in events, by event id

    @property
    def event_counts(self) -> dict[str, int]:
        """How many times each built-in event was raised (those raised at all; a fresh dict)."""
        return {_EVENT_NAMES[i]: n for i, n in enumerate(self.counts) if n}

    # -- the two doors ------------------------------------------------------------------------

    def emit(self, conn: Connection, hook: Hook, side: Side, value: Event, snd: int) -> None:
        """Deliver to the flow's handles: registration order for client-sent packets, reverse
        for server-sent ones."""
        tid = value.TYPE.id
        self.counts[tid] += 1
        sidebit = 3 if side == 2 else 1 << side
        for h in conn.handles if snd == 0 else conn.handles_rev:
            if h.mon & sidebit and not h.closed:
                # Dispatcher.dispatch inlined (a call layer less per callback): the plan holds
                # the built-in's callbacks, or its tree node when UDEs hang below it
                entry = h.subs.plan[hook].get(tid)
                if entry is None:
                    continue
                if isinstance(entry, tuple):
                    for callback in entry:
                        try:
                            callback(h, side, value)
                        except Exception as exc:  # noqa: BLE001 - user code: count, report
                            self.dispatcher.report_failure("callback", h, value, exc)
                else:
                    self.dispatcher.walk(h.subs, hook, entry, h, side, value)

    def deliver(self, targets: Iterable[tuple[SubscriptionSet, Any]], hook: Hook, side: Side,
                value: Event) -> None:
        """Hand one raised value to each (subscriptions, handle) target, in order."""
        self.counts[value.TYPE.id] += 1
        dispatch = self.dispatcher.dispatch
        for subs, handle in targets:
            dispatch(subs, hook, handle, side, value)

    # -- frames without a flow ----------------------------------------------------------------

    def raw(self, listeners: list[Listener], linktype: int, frame: bytes) -> None:
        """ON_PKT_IN to each RAW listener whose raw filter accepts the frame."""
        handle = self.orphan_handle
        for lst in listeners:
            if lst.subs.masks[_HK_NULL] & PKT_IN_BIT and (
                    lst.raw_match is None or lst.raw_match(linktype, frame)):
                handle.frame = (linktype, frame)
                handle.seg = None
                self.deliver(((lst.subs, handle),), _HK_NULL, Side.BOTH, PktIn(_HK_NULL))

    def orphan(self, listeners: list[Listener], reason: str, linktype: int, frame: bytes,
               seg: TcpSegment | None) -> None:
        """ON_ORPHAN to each stream listener whose orphan filter accepts the frame."""
        handle = self.orphan_handle
        for lst in listeners:
            if lst.subs.masks[_HK_NULL] & ORPHAN_BIT and (
                    lst.orphan_match is None or lst.orphan_match(linktype, frame)):
                handle.frame = (linktype, frame)
                handle.seg = seg
                self.deliver(((lst.subs, handle),), _HK_NULL, Side.BOTH,
                             Orphan(_HK_NULL, reason))

    # -- one packet of a flow -----------------------------------------------------------------

    def stack(self, conn: Connection, hook: Hook, side: int, old: TcpState,
              changes: list[tuple[TcpState, TcpState]], fresh: bool, syn: int, snd: int) -> None:
        """One stack's update at its hook: ON_PKT_IN, ON_CONN_START (the stack left LISTEN on
        a SYN, ``syn`` the packet's SYN bit, or the flow was just picked up midstream), one
        ON_TCP_STATE_CHANGE per step."""
        m = conn.masks[hook]
        s = SIDES[side]
        if m & PKT_IN_BIT:
            self.emit(conn, hook, s, PktIn(hook), snd)
        new = changes[-1][1] if changes else old
        if m & CONN_START_BIT and (fresh or old == _LISTEN and new != _LISTEN and syn):
            self.emit(conn, hook, s, ConnStart(hook), snd)
        if m & STATE_CHANGE_BIT:
            for before, after in changes:
                self.emit(conn, hook, s, TcpStateChange(hook, before, after), snd)

    def fast_events(self, conn: Connection, snd: int, off: int, n: int) -> None:
        """What a fast-path packet raises once its ``n`` bytes at ``off`` are in, as the
        general path's tail: ON_PKT_IN at HK_RCV, then (ON_ERROR on a buffer overflow and)
        ON_CONN_NEW_DATA; the masks are read at each step, as callbacks may change them."""
        rcv = 1 - snd
        if conn.masks[_HK_RCV] & PKT_IN_BIT:
            self.emit(conn, _HK_RCV, SIDES[rcv], PktIn(_HK_RCV), snd)
        if n and conn.masks[_HK_NULL] & (NEW_DATA_BIT | ERROR_BIT) and not conn.ended:
            conn.streams[rcv].new_runs = [(off, n)]
            self.new_data(conn, rcv, snd)

    def new_data(self, conn: Connection, side: int, snd: int) -> None:
        """Take the stream's new in-order runs: (a buffer overflow, then) ON_CONN_NEW_DATA."""
        st = conn.streams[side]
        runs = st.new_runs
        st.new_runs = ()
        if st.bufsize and conn.masks[_HK_NULL] & ERROR_BIT:
            self.overflow(conn, side)       # ON_ERROR comes before the new data
        if self.mos_compat and conn.state[side] != _ESTABLISHED:
            return                  # mOS signals new data only while the receiver is ESTABLISHED
        if conn.masks[_HK_NULL] & NEW_DATA_BIT:
            for off, n in runs:
                self.emit(conn, _HK_NULL, SIDES[side], ConnNewData(_HK_NULL, off, n), snd)

    def overflow(self, conn: Connection, side: int) -> None:
        """ON_ERROR "buffer_overflow", once, to each handle whose unread bytes the buffer has
        let go (a cursor behind only gaps just moves up: no byte was lost)."""
        st = conn.streams[side]
        head = st.head
        for h in conn.handles:
            cur = h.cursors[side]
            if cur < head and not h.overflowed[side]:
                if not head - cur - st.skipped(cur, head):
                    h.cursors = pair_set(h.cursors, side, head)   # only gaps behind: no loss
                    continue
                h.overflowed = pair_set(h.overflowed, side, True)
                if h.subs.masks[_HK_NULL] & ERROR_BIT and h.mon & (1 << side):
                    self.deliver(((h.subs, h),), _HK_NULL, SIDES[side],
                                 ErrorEvent(_HK_NULL, "buffer_overflow", cur, head - cur))

    def errors(self, conn: Connection, side: int, snd: int, sflags: int) -> None:
        """Take the stream's conflict and gap runs: ON_ERROR for each, then "late_data"."""
        st = conn.streams[side]
        runs = st.conflict_runs
        gaps = st.gap_runs
        st.conflict_runs = ()
        st.gap_runs = ()
        if not conn.masks[_HK_NULL] & ERROR_BIT:
            return
        for off, n in runs:
            self.emit(conn, _HK_NULL, SIDES[side],
                      ErrorEvent(_HK_NULL, "overlap_conflict", off, n), snd)
        for off, n in gaps:
            self.emit(conn, _HK_NULL, SIDES[side], ErrorEvent(_HK_NULL, "gap", off, n), snd)
        if sflags & LATE:
            self.emit(conn, _HK_NULL, SIDES[side], ErrorEvent(_HK_NULL, "late_data"), snd)

    # -- the end ------------------------------------------------------------------------------

    def end(self, conn: Connection, reason: str, snd: int | None) -> None:
        """ON_CONN_END, the flow's last event, reaches every open handle subscribed to it,
        whatever sides it still monitors: once per flow per subscription."""
        s = 0 if snd is None else snd
        pairs: tuple[tuple[Hook, Side], ...] = ((_HK_SND, SIDES[s]), (_HK_RCV, SIDES[1 - s]))
        if self.mos_compat:
            # mOS destroys each stream on its own and raises CONN_END per side at both hooks,
            # so a handler registered at one hook runs twice (CLI, then SVR)
            pairs = tuple((hook, side) for side in SIDES for hook in (_HK_SND, _HK_RCV))
        for hook, side in pairs:
            handles = [h for h in conn.handles
                       if h.subs.masks[hook] & CONN_END_BIT and not h.closed]
            if handles:
                self.deliver([(h.subs, h) for h in (handles if s == 0 else reversed(handles))],
                             hook, side, ConnEnd(hook, reason))
