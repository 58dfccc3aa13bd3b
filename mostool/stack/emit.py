"""The one funnel every event leaves the engine by, and where it is counted.

Theory of operation. The engine decides *that* an event is raised (its pipeline, in the order of
``mostool/events/types.py``); this module delivers it and counts it, once per raise, in
``Emitter.counts`` (``Engine.event_counts``). Two doors, one count each:

``emit``   an event of a tracked flow to the flow's handles, in registration order for client-sent
           packets and in reverse for server-sent ones. It runs per event on the hot path, so it
           counts and runs ``Dispatcher.dispatch``'s plain-callbacks case inline; ``deliver`` is
           the same door for callers that know the event's plan slot (``dispatch.plan_slot``:
           hook and event id, constants here), which the per-packet steps below use.
``send``   everything else: ON_PKT_IN to RAW listeners, ON_ORPHAN, ON_ERROR "buffer_overflow" to
           the one handle that lost bytes, and ON_CONN_END. One value to a list of (subscriptions,
           handle) targets through ``Dispatcher.dispatch``.

The methods between the two (``stack``, ``new_data``, ``errors``, ``fast_events``, ``end``)
compose the events of one step of the pipeline from what the state machine and the half-streams
left behind (the HalfStream outbox: ``new_runs``, ``gap_runs``, ``conflict_runs``, which they
drain), reading the subscription masks at each step, as callbacks may change them.

Spare values. An event is a new value per raise, but the two a fast-path packet raises
(ON_PKT_IN at HK_RCV, ON_CONN_NEW_DATA) are handed out again, renewed, while nobody else holds
the last one: its reference count is what it was when it was made (``_csum.refcount``, which is
``sys.getrefcount``; at the same place in the code); a callback, a filter, an error report or a
traceback that kept it makes the next raise a new value. Nobody can tell the spare from a new
value (events have no weak references), and a packet saves an allocation and a free. Without
the C helper (the interpreted engine) every raise is a new value.

Compiled with mypyc, this is per-packet code when callbacks are registered: masks and streams
are indexed with literal 0/1/2 (a tuple attribute indexed by a variable or an enum is boxed
first), sides are picked with ``is``, and the module's constants are ``Final``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

from mostool.events.dispatch import PLAN_WIDTH, plan_slot
from mostool.events.types import (
    BUILTIN_EVENTS,
    CONN_END_BIT,
    CONN_START_BIT,
    ERROR_BIT,
    NEW_DATA_BIT,
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
    renew_new_data,
)
from mostool.stack.connection import pair_set
from mostool.stack.decode import TcpSegment

if TYPE_CHECKING:
    from mostool.events.dispatch import Dispatcher, SubscriptionSet
    from mostool.stack.connection import Connection
    from mostool.stack.listener import Listener, OrphanHandle

__all__ = ["Emitter"]

SYN: Final = 0x02
SIDES = (Side.CLI, Side.SVR)
_HK_NULL: Final = Hook.NULL
_HK_RCV: Final = Hook.HK_RCV
_HK_SND: Final = Hook.HK_SND
_CLI: Final = Side.CLI
_SVR: Final = Side.SVR
_BOTH: Final = Side.BOTH
_LISTEN: Final = TcpState.LISTEN
_ESTABLISHED: Final = TcpState.ESTABLISHED
_N_BUILTIN = 1 + max(e.id for e in BUILTIN_EVENTS)
_EVENT_NAMES = {e.id: e.name for e in BUILTIN_EVENTS}
# plan slots (dispatch.plan_slot) of the events raised per packet, as compile-time constants
_W: Final = PLAN_WIDTH
_PKT_IN: Final = 0                      # ON_PKT_IN.id ...
_CONN_START: Final = 2
_NEW_DATA: Final = 4
_ERROR: Final = 5
_STATE_CHANGE: Final = 7
_NEW_DATA_SLOT: Final = 0 * _W + _NEW_DATA      # at NULL
_ERROR_SLOT: Final = 0 * _W + _ERROR
_PKT_IN_RCV_SLOT: Final = 1 * _W + _PKT_IN      # at HK_RCV


def _refcount_function() -> Callable[[object], int] | None:
    """The C helper's reference count (spare values: the module docstring), if it is there."""
    try:
        c_module = importlib.import_module("mostool.stack._csum")
    except ImportError:
        return None
    found: Callable[[object], int] | None = getattr(c_module, "refcount", None)
    return found


def _no_refcount(value: object) -> int:
    return -1


_REFCOUNT: Final = _refcount_function()
_SPARES: Final = _REFCOUNT is not None          # else every raise makes a new value
_refs: Final = _REFCOUNT or _no_refcount


class Emitter:
    """Delivers and counts the engine's events (one per engine; holds its Dispatcher)."""

    def __init__(self, dispatcher: Dispatcher, *, mos_compat: bool) -> None:
        self.dispatcher = dispatcher
        self.counts = [0] * _N_BUILTIN       # raised built-in events, by event id
        self._mos_compat = mos_compat
        # the spare values (module docstring) and their reference counts when made (-1: make
        # one at the first raise, where it is measured)
        self._pkt_in = PktIn(_HK_RCV)
        self._pkt_in_refs = -1
        self._new_data = ConnNewData(_HK_NULL, 0, 0)
        self._new_data_refs = -1
        # what fast_events raises, counted apart (compiled, native ints: ``counts`` holds
        # Python ints, a new one per increment); event_counts adds them in
        self._fast_pkt_in = 0
        self._fast_new_data = 0

    @property
    def event_counts(self) -> dict[str, int]:
        """How many times each built-in event was raised (those raised at all; a fresh dict)."""
        counts = list(self.counts)
        counts[_PKT_IN] += self._fast_pkt_in
        counts[_NEW_DATA] += self._fast_new_data
        return {_EVENT_NAMES[i]: n for i, n in enumerate(counts) if n}

    # -- the two doors ------------------------------------------------------------------------

    def emit(self, conn: Connection, hook: Hook, side: Side, value: Event, snd: int) -> None:
        """Deliver to the flow's handles: registration order for client-sent packets, reverse
        for server-sent ones."""
        self.deliver(conn, plan_slot(hook, value.TYPE.id), side, value, snd)

    def deliver(self, conn: Connection, slot: int, side: Side, value: Event, snd: int
                ) -> None:
        """``emit`` with the plan slot of ``value`` (its hook and event id) known: what the
        per-packet steps call."""
        self.counts[slot & (_W - 1)] += 1
        self._reach(conn, slot, side, value, snd)

    def _reach(self, conn: Connection, slot: int, side: Side, value: Event, snd: int) -> None:
        """``deliver`` without counting (the caller counts)."""
        sidebit = 1 if side is _CLI else 2 if side is _SVR else 3
        for h in conn.handles if snd == 0 else conn.handles_rev:
            if h.mon & sidebit and not h.closed:
                # Dispatcher.dispatch inlined (a call layer less per callback): the plan holds
                # the built-in's callbacks, or its tree node when UDEs hang below it
                entry = h.subs.plan[slot]
                if entry is None:
                    continue
                if isinstance(entry, tuple):
                    for callback in entry:
                        try:
                            callback(h, side, value)
                        except Exception as exc:  # noqa: BLE001 - user code: count, report
                            self.dispatcher.report_failure("callback", h, value, exc)
                else:
                    self.dispatcher.walk(h.subs, slot // _W, entry, h, side, value)

    def send(self, value: Event, side: Side, targets: Iterable[tuple[SubscriptionSet, Any]]
             ) -> None:
        """One raise of ``value`` (at its hook) to each (subscriptions, handle) target."""
        self.counts[value.TYPE.id] += 1
        dispatch = self.dispatcher.dispatch
        hook = value.hook
        for subs, handle in targets:
            dispatch(subs, hook, handle, side, value)

    # -- frames without a flow ----------------------------------------------------------------

    def raw(self, listeners: Sequence[Listener], handle: OrphanHandle, linktype: int,
            frame: bytes) -> None:
        """ON_PKT_IN to each RAW listener whose raw filter accepts the frame (a raise each)."""
        for lst in listeners:
            if lst.subs.masks[_HK_NULL] & PKT_IN_BIT and (
                    lst.raw_match is None or lst.raw_match(linktype, frame)):
                handle.frame = (linktype, frame)
                handle.seg = None
                self.send(PktIn(_HK_NULL), Side.BOTH, ((lst.subs, handle),))

    def orphan(self, listeners: Sequence[Listener], handle: OrphanHandle, reason: str,
               linktype: int, frame: bytes, seg: TcpSegment | None) -> None:
        """ON_ORPHAN to each stream listener whose orphan filter accepts the frame."""
        for lst in listeners:
            if lst.subs.masks[_HK_NULL] & ORPHAN_BIT and (
                    lst.orphan_match is None or lst.orphan_match(linktype, frame)):
                handle.frame = (linktype, frame)
                handle.seg = seg
                self.send(Orphan(_HK_NULL, reason), Side.BOTH, ((lst.subs, handle),))

    # -- one step of a flow -------------------------------------------------------------------

    def stack(self, conn: Connection, hook: Hook, side: int, old: TcpState,
              changes: list[tuple[TcpState, TcpState]], fresh: bool, snd: int) -> None:
        """One stack's update at its hook: ON_PKT_IN, ON_CONN_START (the stack left LISTEN on
        a SYN, or the flow was just picked up midstream), one ON_TCP_STATE_CHANGE per step."""
        masks = conn.masks
        rcv = hook is _HK_RCV
        m = masks[1] if rcv else masks[2]      # (HK_RCV or HK_SND)
        base = _W if rcv else 2 * _W
        s = _CLI if side == 0 else _SVR
        if m & PKT_IN_BIT:
            self.deliver(conn, base + _PKT_IN, s, self._pkt_in_rcv() if rcv else PktIn(hook),
                         snd)
        new = changes[-1][1] if changes else old
        if m & CONN_START_BIT and (fresh or old == _LISTEN and new != _LISTEN
                                   and isinstance(conn.last_seg, TcpSegment)
                                   and conn.last_seg.flags & SYN):
            self.deliver(conn, base + _CONN_START, s, ConnStart(hook), snd)
        if m & STATE_CHANGE_BIT:
            for before, after in changes:
                self.deliver(conn, base + _STATE_CHANGE, s, TcpStateChange(hook, before, after),
                             snd)

    def fast_events(self, conn: Connection, snd: int, off: int, n: int) -> None:
        """What a fast-path packet raises once its ``n`` bytes at ``off`` are in, as the
        general path's tail: ON_PKT_IN at HK_RCV, then (ON_ERROR on a buffer overflow and)
        ON_CONN_NEW_DATA; the masks are read at each step, as callbacks may change them."""
        if conn.masks[1] & PKT_IN_BIT:
            self._fast_pkt_in += 1
            self._reach(conn, _PKT_IN_RCV_SLOT, _SVR if snd == 0 else _CLI, self._pkt_in_rcv(),
                        snd)
        if n and conn.masks[0] & (NEW_DATA_BIT | ERROR_BIT) and not conn.ended:
            self.new_run(conn, 1 - snd, snd, off, n)

    def new_run(self, conn: Connection, side: int, snd: int, off: int, n: int) -> None:
        """``new_data`` for one run, ``n`` bytes at ``off``, that never went to ``new_runs``."""
        if conn.masks[0] & ERROR_BIT and conn.stream(side).bufsize:
            self.overflow(conn, side)           # ON_ERROR comes before the new data
        if self._mos_compat and conn.state[side] is not _ESTABLISHED:
            return                  # mOS signals new data only while the receiver is ESTABLISHED
        if conn.masks[0] & NEW_DATA_BIT:
            self._fast_new_data += 1
            self._reach(conn, _NEW_DATA_SLOT, _CLI if side == 0 else _SVR,
                        self._conn_new_data(off, n), snd)

    def _pkt_in_rcv(self) -> PktIn:
        """PktIn(HK_RCV): the spare, unless someone holds it."""
        value = self._pkt_in
        if not _SPARES or _refs(value) != self._pkt_in_refs:
            value = PktIn(_HK_RCV)
            self._pkt_in = value
            self._pkt_in_refs = _refs(value)
        return value

    def _conn_new_data(self, off: int, n: int) -> ConnNewData:
        """ConnNewData(NULL, off, n): the spare renewed, unless someone holds it."""
        value = self._new_data
        if not _SPARES or _refs(value) != self._new_data_refs:
            value = ConnNewData(_HK_NULL, off, n)
            self._new_data = value
            self._new_data_refs = _refs(value)
        else:
            renew_new_data(value, off, n)
        return value

    def new_data(self, conn: Connection, side: int, snd: int) -> None:
        """Drains ``new_runs``: ON_ERROR for handles whose unread bytes were overwritten, then
        ON_CONN_NEW_DATA per run."""
        st = conn.own_stream(side)              # (it has runs: it exists)
        runs = st.new_runs
        st.new_runs = ()
        if st.bufsize and conn.masks[0] & ERROR_BIT:
            self.overflow(conn, side)           # ON_ERROR comes before the new data
        if self._mos_compat and conn.state[side] is not _ESTABLISHED:
            return                  # mOS signals new data only while the receiver is ESTABLISHED
        if conn.masks[0] & NEW_DATA_BIT:
            s = _CLI if side == 0 else _SVR
            for off, n in runs:
                self.deliver(conn, _NEW_DATA_SLOT, s, self._conn_new_data(off, n), snd)

    def overflow(self, conn: Connection, side: int) -> None:
        """ON_ERROR "buffer_overflow" to each handle whose unread bytes the buffer overwrote
        (the caller checked that the side buffers and some handle wants ON_ERROR)."""
        st = conn.stream(side)
        head = st.head
        for h in conn.handles:
            cur = h.cursors[side]
            if cur < head and not h.overflowed[side]:
                if not head - cur - st.skipped(cur, head):
                    h.cursors = pair_set(h.cursors, side, head)   # only gaps behind: no loss
                    continue
                h.overflowed = pair_set(h.overflowed, side, True)
                if h.subs.masks[0] & ERROR_BIT and h.mon & (1 << side):
                    self.send(ErrorEvent(_HK_NULL, "buffer_overflow", cur, head - cur),
                              _CLI if side == 0 else _SVR, ((h.subs, h),))

    def anomaly(self, conn: Connection, side: int, kind: str, off: int, n: int,
                snd: int) -> None:
        """One ON_ERROR of ``kind`` on the stream ``side`` receives, if a handle wants it."""
        if conn.masks[0] & ERROR_BIT:
            self.deliver(conn, _ERROR_SLOT, _CLI if side == 0 else _SVR,
                         ErrorEvent(_HK_NULL, kind, off, n), snd)

    def errors(self, conn: Connection, side: int, snd: int, sflags: int) -> None:
        """Drains ``conflict_runs``, ``gap_runs``, ``filled_runs`` and ``late_runs``: ON_ERROR
        per overlap conflict, per gap, per filled gap ("gap_filled"), then per run of late
        bytes dropped ("late_data", with their stream offset and length)."""
        st = conn.own_stream(side)              # (it has runs: it exists)
        runs = st.conflict_runs
        gaps = st.gap_runs
        filled = st.filled_runs
        late = st.late_runs
        st.conflict_runs = ()
        st.gap_runs = ()
        st.filled_runs = ()
        st.late_runs = ()
        if not conn.masks[0] & ERROR_BIT:
            return
        s = _CLI if side == 0 else _SVR
        for off, n in runs:
            self.deliver(conn, _ERROR_SLOT, s, ErrorEvent(_HK_NULL, "overlap_conflict", off, n),
                         snd)
        for off, n in gaps:
            self.deliver(conn, _ERROR_SLOT, s, ErrorEvent(_HK_NULL, "gap", off, n), snd)
        for off, n in filled:
            self.deliver(conn, _ERROR_SLOT, s, ErrorEvent(_HK_NULL, "gap_filled", off, n), snd)
        for off, n in late:                 # bytes inside a gap given up earlier: dropped
            self.deliver(conn, _ERROR_SLOT, s, ErrorEvent(_HK_NULL, "late_data", off, n), snd)

    def end(self, conn: Connection, reason: str, snd: int | None) -> None:
        """ON_CONN_END, the flow's last event, reaches every open handle subscribed to it,
        whatever sides it still monitors: once per flow per subscription."""
        s = 0 if snd is None else snd
        pairs: tuple[tuple[Hook, Side], ...] = ((_HK_SND, SIDES[s]), (_HK_RCV, SIDES[1 - s]))
        if self._mos_compat:
            # mOS destroys each stream on its own and raises CONN_END per side at both hooks,
            # so a handler registered at one hook runs twice (CLI, then SVR)
            pairs = tuple((hook, side) for side in SIDES for hook in (_HK_SND, _HK_RCV))
        for hook, side in pairs:
            handles = [h for h in conn.handles
                       if h.subs.masks[hook] & CONN_END_BIT and not h.closed]
            if handles:
                self.send(ConnEnd(hook, reason), side,
                          [(h.subs, h) for h in (handles if s == 0 else reversed(handles))])
