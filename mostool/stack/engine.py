"""The sans-IO monitoring engine: frames in, flows and events out.

Theory of operation. ``Engine.process(ts, linktype, frame)`` is called once per captured frame,
in capture order; the packet timestamp is the only clock. Before a frame is handled every timer
that falls due before its timestamp fires (idle timeouts, TIME_WAIT expiry, user timers), in
time order, with the clock set to the timer's deadline, so a replay gives the same events at any
pace. The clock starts at the first frame (or tick): a timer set before that counts from it.
``finish`` ends every open flow and drops the timers still pending. Per frame:

1. RAW listeners whose raw filter accepts the frame get ON_PKT_IN.
2. The decoder turns the frame into a TCP segment (or a non-TCP / malformed status: an orphan).
3. The directional 4-tuple key finds the connection. A miss is a new flow when it is a SYN some
   listener's SYN filter accepts (or, with ``midstream``, any segment); else an orphan.
4. The sender's stack is updated (state table, ISN/FIN bookkeeping, and the sender's ACK gives up
   holes in the stream it receives), then HK_SND callbacks run with side = sender.
5. The payload goes into the receiver's half-stream (REXMIT first, at HK_RCV, as mOS), the
   receiver's stack is updated, then HK_RCV callbacks; then NULL-hook ON_ERROR and
   ON_CONN_NEW_DATA.
6. When both stacks are CLOSED/TIME_WAIT the flow ends (after ``time_wait``): remaining
   out-of-order bytes are delivered over their holes, then ON_CONN_END.

Every event leaves by the Emitter (mostool/stack/emit.py), the one funnel, which counts it and
calls the Dispatcher (``emit`` runs a plain callback list from its compiled plan inline), and
only when a subscription mask says some handle of the flow wants that event at that hook.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any, Final

from mostool.events.dispatch import Dispatcher, ErrorSink, SubscriptionRegistry
from mostool.events.types import (
    CONN_END_BIT,
    REXMIT_BIT,
    TIMEOUT_BIT,
    Hook,
    PktIn,
    Rexmit,
    Side,
    TcpState,
    Timeout,
)
from mostool.stack import decode, resets
from mostool.stack.clock import WildClock
from mostool.stack.codes import ACK, FIN, ORPHAN_REASONS, RST, SYN
from mostool.stack.config import MonitorConfig
from mostool.stack.connection import UNCHECKED, Connection, pair_add, pair_set
from mostool.stack.decode import Decoder, TcpSegment, tcp_checksum_ok
from mostool.stack.emit import Emitter
from mostool.stack.flow import Flow
from mostool.stack.flowtable import FlowTable
from mostool.stack.listener import RAW, STREAM, Listener, OrphanHandle, stream_params
from mostool.stack.payload import MemoryBudget, ack_gives_up_holes, receive_payload, set_aside
from mostool.stack.records import RecordBuffer, RecordLayout, RecordRefs, process_records, shard_of
from mostool.stack.stream import CONFLICT, LATE, M32, REXMIT
from mostool.stack.tcp import (
    RST_OK,
    SYN_IN_FLOW,
    TERMINAL,
    fin_acceptable,
    fin_sent,
    opening,
    receiver_step,
    rst_verdict,
    same_connection,
    sender_step,
    syn_bookkeeping,
    ts_echo_rejected,
)
from mostool.stack.timers import IDLE, TIME_WAIT, Timers

__all__ = ["Engine", "Listener", "OrphanHandle", "STREAM", "RAW", "shard_of"]

SIDES = (Side.CLI, Side.SVR)
# Enum members as module globals for the per-packet slow path: a global load instead of a
# class-attribute lookup through the enum metaclass (~60 ns each). The same objects: ``is``
# comparisons and the events' field types do not change.
# (Final: compiled with mypyc, any other module global is a dictionary lookup at every use)
_HK_NULL: Final = Hook.NULL
_HK_RCV: Final = Hook.HK_RCV
_HK_SND: Final = Hook.HK_SND
_ESTABLISHED: Final = TcpState.ESTABLISHED
_CONFLICT_LATE: Final = CONFLICT | LATE


class Engine:
    """Frames in, flows and dispatched events out. No I/O, no wall clock."""

    def __init__(self, config: MonitorConfig | None = None, *,
                 registry: SubscriptionRegistry | None = None,
                 on_flow_end: Callable[[Connection], None] | None = None,
                 on_callback_error: ErrorSink | None = None) -> None:
        self.config = config or MonitorConfig()
        self.registry = registry or SubscriptionRegistry()
        self.on_flow_end = on_flow_end
        self.dispatcher = Dispatcher(strict=self.config.strict,
                                     on_error=on_callback_error or _ignore_error)
        self.decoder = Decoder(frag_timeout=self.config.frag_timeout)
        self.listeners: list[Listener] = []
        self._stream_listeners: list[Listener] = []
        self._raw_listeners: list[Listener] = []
        self.flows = FlowTable(self.config.max_flows, self.config.midstream)
        self.table = self.flows.table       # read per packet (and by process_records)
        self.packet_number = 0
        self.now = 0.0
        self.clock_started = False
        self.next_due = math.inf            # no timer can fall due before this time
        self.counts: dict[str, int] = {
            "orphans": 0, "non_tcp": 0, "non_ip": 0,
            "malformed": 0, "unknown_linktype": 0, "fragments": 0, "bad_checksums": 0,
            "dropped_bad_checksum": 0, "bad_checksum_acked": 0, "evicted": 0, "timeouts": 0,
            "syn_in_flow": 0, "keepalives": 0, "memory_limit": 0,
            "after_close": 0, "snaplen_cut": 0, "wild_timestamps": 0, "other_shares": 0,
            **dict.fromkeys(resets.COUNTERS, 0),
        }
        self.timers = Timers(self.config.idle_timeout)   # user, TIME_WAIT and idle deadlines
        self.wild = WildClock(self.config.max_jump, self.config.idle_timeout)
        self._conn_ids = itertools.count(1)
        self._orphan_handle = OrphanHandle(self)
        cfg = self.config
        # (index, count) when this engine is one of several sharing a capture by flow: it
        # tracks only the TCP packets whose shard_of is its index; non-TCP frames go to shard 0
        self.shard: tuple[int, int] | None = None
        self._check_mode = cfg.checksums
        self.verify_checksums = cfg.checksums != "skip"   # verified and counted, or "skip"
        self._mos_compat = cfg.mos_compat
        self._rst_grace = 0.0 if cfg.mos_compat else cfg.rst_grace   # mOS ends at the RST
        # the one funnel events leave by (mostool/stack/emit.py), called as self.emitter.x(...)
        # (compiled, a native call; a bound method kept as an attribute is a Python call)
        self.emitter = emitter = Emitter(self.dispatcher, mos_compat=cfg.mos_compat)
        self.fast_events = emitter.fast_events     # for records.process_records
        # bytes held by every flow's buffers and runs, under max_buffered_bytes
        self.budget = MemoryBudget(cfg.max_buffered_bytes, emitter, self.counts)
        # the buffer process_records reads, whose record offsets Connection.last_seg may hold
        self.records = RecordRefs()
        self.stop_requested = False         # set by the shell's stop(): process_records returns

    # -- listeners ----------------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        self.listeners.append(listener)
        self._refresh_listeners()

    def remove_listener(self, listener: Listener) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)
        self._refresh_listeners()

    def _refresh_listeners(self) -> None:
        self._stream_listeners = [x for x in self.listeners if x.kind == STREAM and not x.closed]
        self._raw_listeners = [x for x in self.listeners if x.kind == RAW and not x.closed]

    # -- timers -------------------------------------------------------------------------------

    def settimer(self, delay: float, callback: Callable[[int], Any]) -> int:
        """Call ``callback(timer_id)`` once, ``delay`` seconds of packet time from now."""
        timer_id = self.timers.add(self.now, delay, callback)
        self.next_due = min(self.next_due, self.now + delay)
        return timer_id

    def cancel_timer(self, timer_id: int) -> None:
        self.timers.cancel(timer_id)

    def next_deadline(self) -> float | None:
        """When the next timer falls due (for a live source's idle ticking)."""
        return self.timers.next_deadline()

    def _start_clock(self, ts: float) -> None:
        """The first frame or tick: timers set before it count from its timestamp."""
        self.clock_started = True
        if ts > self.now:
            self.timers.shift(ts - self.now)
        self.next_due = -math.inf               # recompute on the next frame

    def advance(self, ts: float) -> None:
        """Move the clock to ``ts`` (no packet), firing what falls due before it."""
        self.wild.settle(self, ts)          # a tick says what a held frame was, as a frame
        if not self.clock_started:
            self._start_clock(ts)
        self._fire_due(ts)
        if ts > self.now:
            self.now = ts

    def _fire_due(self, ts: float) -> None:
        """Fire, in time order and with the clock at each deadline, what falls due before
        ``ts`` (mostool/stack/timers.py orders them)."""
        pop_due = self.timers.pop_due
        while (item := pop_due(ts)) is not None:
            when, kind, target = item
            if when > self.now:
                self.now = when
            if kind == IDLE:
                self._timeout(target)
            elif kind == TIME_WAIT:
                self._end(target, "rst" if target.rst_seen else "fin", resets.sender(target))
            else:
                self._run_timer(kind, target)
        self.next_due = self.timers.due

    def _run_timer(self, timer_id: int, callback: Callable[[int], Any]) -> None:
        try:
            callback(timer_id)
        except Exception as exc:  # noqa: BLE001 - user code: count, report, go on
            self.dispatcher.report_failure("timer", None, PktIn(Hook.NULL), exc)

    # -- the per-frame pipeline ---------------------------------------------------------------

    def process(self, ts: float, linktype: int, frame: bytes, wire_len: int = 0) -> None:
        """Handle one captured frame; ``wire_len`` is its length on the wire (0: not known), and
        a frame captured shorter than that is counted as cut by the snaplen. A frame far ahead
        of the clock waits for the next one (mostool/stack/clock.py)."""
        self.packet_number += 1
        if wire_len > len(frame):
            self.counts["snaplen_cut"] += 1
        wild = self.wild
        if (wild.held is not None or ts > self.now + wild.max_jump) and wild.take(
                self, ts, linktype, frame):
            return
        self.route(ts, linktype, frame)

    def route(self, ts: float, linktype: int, frame: bytes) -> Connection | None:
        """One frame's way through the engine at packet time ``ts``; the flow it went to."""
        if ts > self.now:
            if not self.clock_started:
                self._start_clock(ts)
            if self.next_due < ts:
                self._fire_due(ts)
            self.now = ts
        elif not self.clock_started:
            self._start_clock(ts)
        if self._raw_listeners:
            self.emitter.raw(self._raw_listeners, self._orphan_handle, linktype, frame)
        seg = self.decoder.decode(linktype, frame, ts)
        if isinstance(seg, int):
            if self.shard is None or self.shard[0] == 0:
                self._not_tcp(seg, linktype, frame)
            else:
                self.counts["other_shares"] += 1
            return None
        if self.shard is not None and shard_of(seg.src, seg.sport, seg.dst, seg.dport,
                                               self.shard[1]) != self.shard[0]:
            self.counts["other_shares"] += 1
            return None
        conn = self.table.get(seg.key)
        if (conn is not None and seg.flags & SYN and not seg.flags & ACK
                and (verdict := same_connection(conn, seg, self.now)) is not None):
            if verdict is SYN_IN_FLOW:
                self.counts["syn_in_flow"] += 1
            else:
                self._end(conn, verdict, None)
                conn = None
        if conn is None:
            if self._check_mode == "on" and tcp_checksum_ok(seg) is False:
                self.counts["bad_checksums"] += 1      # dropped before it makes a flow
                self.counts["dropped_bad_checksum"] += 1
                return None
            conn = self._new_flow(seg)
            if conn is None:
                return None
            fresh = conn.midstream              # its first packet raises ON_CONN_START
        else:
            fresh = False
        if conn.stopped:
            conn.last_ts = self.now
            if seg.flags & RST or (seg.flags & FIN and conn.fin_seq[seg.key != conn.key_c2s]
                                   is None):
                self._track_stopped(conn, seg)
            return conn
        if conn.rst_pending is not None and resets.after_reset(self, conn, seg):
            return conn                     # a provisional RST (stack/resets.py)
        self._packet(conn, seg, fresh)
        if conn.last_seg is seg and seg.buf is frame:
            # the flow keeps its frame, not the decoded segment (~470 bytes), for last_packet()
            # to decode again (RecordRefs.segment); not when the segment's bytes are not the
            # frame's (a reassembled datagram, a PPPoE-bounded copy)
            conn.last_seg = frame
            conn.last_linktype = linktype
        return conn

    def process_records(self, buf: RecordBuffer, off: int, stop: int, end: int,
                        layout: RecordLayout, max_records: int = -1) -> tuple[int, int, int, int]:
        """Handle the classic-pcap records of ``buf`` starting in ``[off, stop)``, as
        ``process`` would one by one (see mostool/stack/records.py). Returns (offset reached,
        records, captured bytes, wire bytes)."""
        return process_records(self, buf, off, stop, end, layout, max_records)

    def inline_ok(self) -> bool:
        """Whether process_records may take packets in place (else every one goes to
        ``process``): the clock has started and no RAW listener wants every frame."""
        return self.clock_started and not self._raw_listeners and self.wild.held is None

    def count_inline(self, tcp_packets: int, snaplen_cut: int, other_shares: int = 0) -> None:
        """What process_records handled in place, counted as ``process`` would have."""
        self.decoder.add_tcp(tcp_packets)
        self.counts["snaplen_cut"] += snaplen_cut
        self.counts["other_shares"] += other_shares

    def _not_tcp(self, status: int, linktype: int, frame: bytes) -> None:
        if status == decode.FRAGMENT:
            self.counts["fragments"] += 1
            return
        reason = ORPHAN_REASONS.get(status, "malformed")
        self.counts[reason] += 1
        self._orphan(reason, linktype, frame)

    def _orphan(self, reason: str, linktype: int, frame: bytes,
                seg: TcpSegment | None = None) -> None:
        self.counts["orphans"] += 1
        self.emitter.orphan(self._stream_listeners, self._orphan_handle, reason, linktype, frame,
                            seg)

    def _new_flow(self, seg: TcpSegment) -> Connection | None:
        listeners = self.flows.admit(seg, self._stream_listeners, self.now)
        if isinstance(listeners, str):
            if listeners == "after_close":
                self.counts["after_close"] += 1
            self._orphan(listeners, seg.linktype, seg.buf, seg)
            return None
        if self.flows.full():
            self._evict_one()
        client_is_sender, states = opening(seg)
        now = self.now
        conn = Connection(next(self._conn_ids), seg, client_is_sender, self.packet_number,
                          now, stream_params(listeners, self.config))
        if not self.verify_checksums:
            conn.bad_checksums = UNCHECKED
        if states is not None:
            conn.midstream = True
            conn.state = (states[0], states[1])
        conn.set_handles([Flow(conn, lst, self) for lst in listeners])
        conn.refresh_masks()
        self.flows.add(conn)
        deadline = self.timers.watch_idle(now, conn)
        if deadline < self.next_due:
            self.next_due = deadline
        return conn

    def _evict_one(self) -> None:
        conn = self.timers.least_recent()
        if conn is not None:
            self.counts["evicted"] += 1
            self._end(conn, "evicted", None)

    # -- one packet of a tracked flow ---------------------------------------------------------

    def _packet(self, conn: Connection, seg: TcpSegment, fresh: bool = False) -> None:
        snd = 0 if seg.key == conn.key_c2s else 1
        flags = seg.flags
        wire = seg.wire_len
        conn.last_ts = self.now
        conn.count(snd, wire, seg.window)
        conn.last_seg, conn.last_off = seg, -1
        conn.last_number = self.packet_number
        # verified and counted in every mode but "skip"
        ok = tcp_checksum_ok(seg) if self.verify_checksums else None
        if ok:
            conn.checksum_valid(snd)
        elif ok is False:
            conn.zeek.bad_checksum(snd)                         # zeek: 'C'
            conn.bad_checksums = pair_add(conn.bad_checksums, snd)
            self.counts["bad_checksums"] += 1
            mode = self._check_mode
            if mode == "on" or (mode == "auto" and conn.valid_checksum[snd]):
                conn.dropped = pair_add(conn.dropped, snd)
                self.counts["dropped_bad_checksum"] += 1
                if mode == "auto" and seg.payload_len and not flags & (SYN | RST):
                    set_aside(conn, seg, 1 - snd)
                return
        # The fast path: an ACK with no SYN/FIN/RST on an established flow, acknowledging
        # nothing beyond the in-order point and carrying in-order bytes (if any), changes no
        # state and raises only ON_PKT_IN, ON_CONN_NEW_DATA (and ON_ERROR for a buffer overflow):
        # when no handle wants ON_ERROR or ON_PKT_IN at HK_SND (``conn.fast``), the in-order
        # point and the bytes move, then _fast_events raises what the handles want: exactly what
        # the general path gives. Its conditions are listed in mostool/stack/records.py.
        if flags & 0x17 == 0x10 and conn.fast and not fresh:
            state = conn.state
            if state[0] is _ESTABLISHED and state[1] is _ESTABLISHED:
                st = conn.s0 if snd == 0 else conn.s1          # (Connection.stream)
                base = conn.base_of(snd)
                if base < 0 or not (st.ooo_starts or
                                        0 < (seg.ack - base - st.nxt) & M32 < 0x80000000):
                    if not wire:
                        if conn.zeek.pending or not seg.window:    # zeek: fast path
                            conn.zeek.fast(snd, 0, seg.window)
                        if conn.fast_raise:
                            self.emitter.fast_events(conn, snd, 0, 0)
                        return
                    st = conn.s1 if snd == 0 else conn.s0
                    base = conn.base_of(1 - snd)
                    if (base >= 0 and not st.ooo_starts and seg.payload_len == wire
                            and not (seg.seq - base - st.nxt) & M32):
                        st = conn.own_stream(1 - snd)
                        off = st.nxt
                        if conn.zeek.pending or not seg.window:    # zeek: fast path
                            conn.zeek.fast(snd, wire, seg.window)
                        st.take(seg.buf, seg.payload_off, wire)
                        if conn.fast_raise:
                            self.emitter.fast_events(conn, snd, off, wire)
                        if st.keep_bytes:
                            self.budget.account(conn)
                        return
        rcv = 1 - snd
        if (flags & ACK and conn.syn_ts_first[rcv] >= 0 and not self._mos_compat
                and ts_echo_rejected(conn, seg, rcv)):
            resets.reject_by_ts_echo(self, conn, seg, snd)     # Linux in SYN_SENT: dropped whole
            return
        conn.zeek.packet(snd, flags, seg.seq, wire, seg.window, conn)  # zeek
        if flags & FIN and not (self._mos_compat or fin_acceptable(conn, seg, rcv)):
            seg = resets.refuse_fin(self, conn, seg, snd)      # taken as a plain segment
            flags = seg.flags
        masks = conn.masks
        rst_ok = True
        if flags & RST and not self._mos_compat:
            verdict = rst_verdict(conn, seg, rcv)
            rst_ok = verdict == RST_OK

        # 4. the sender's stack
        old_snd = conn.state[snd]
        new_snd = old_snd
        if rst_ok:
            new_snd = sender_step(conn, seg, snd, old_snd)
            conn.state = pair_set(conn.state, snd, new_snd)
        new_data_snd = ack_gives_up_holes(conn, seg, snd, self.counts) if flags & ACK else False
        if masks[_HK_SND]:
            self.emitter.stack(conn, _HK_SND, snd, old_snd,
                               [(old_snd, new_snd)] if new_snd != old_snd else [], fresh, snd)

        # 5. the receiver's half-stream (own_stream: made as it gets something), then its stack
        sflags = 0
        if rst_ok:
            if flags & SYN and syn_bookkeeping(conn, seg, snd):
                sflags = REXMIT                  # a SYN or SYN/ACK seen before
                conn.own_stream(rcv).rexmit_at(0)
            if seg.wire_len and not flags & RST:
                sflags |= receive_payload(conn, seg, snd, self.counts)
            elif flags & RST and seg.wire_len:
                conn.rst_payload = pair_add(conn.rst_payload, snd, seg.wire_len)
            if flags & FIN:
                fin_seq = (seg.seq + seg.wire_len + (1 if flags & SYN else 0)) & M32
                if conn.fin_seq[snd] is None:
                    fin_sent(conn, snd, fin_seq)
                elif conn.fin_seq[snd] == fin_seq:
                    conn.control_rexmit = pair_add(conn.control_rexmit, rcv)
                    sflags |= REXMIT
                    st = conn.own_stream(rcv)
                    st.rexmit_at(st.fin_off or st.nxt)
        if sflags & REXMIT and masks[_HK_RCV] & REXMIT_BIT:
            st = conn.stream(rcv)
            self.emitter.emit(conn, _HK_RCV, SIDES[rcv],
                              Rexmit(_HK_RCV, st.rexmit_off, st.rexmit_len), snd)
        old_rcv = conn.state[rcv]
        if rst_ok:
            new_rcv, changes = receiver_step(conn, seg, rcv, old_rcv)
            conn.state = pair_set(conn.state, rcv, new_rcv)
        else:
            changes = []
        if flags & RST and rst_ok:
            conn.rst_seen = True
        if masks[_HK_RCV]:
            self.emitter.stack(conn, _HK_RCV, rcv, old_rcv, changes, fresh, snd)
        if not rst_ok:
            resets.refuse(self, conn, seg, snd, verdict)

        # NULL hook: errors, then new in-order data (the receiver's, then the sender's)
        st = conn.s1 if snd == 0 else conn.s0      # (read: Connection.stream(rcv))
        if sflags & _CONFLICT_LATE or st.conflict_runs or st.gap_runs or st.filled_runs:
            self.emitter.errors(conn, rcv, snd, sflags)
        if st.new_runs:
            self.emitter.new_data(conn, rcv, snd)
        if (conn.s0 if snd == 0 else conn.s1).gap_runs:     # holes its ACK gave up
            self.emitter.errors(conn, snd, snd, 0)
        if new_data_snd:
            self.emitter.new_data(conn, snd, snd)

        self.budget.account(conn)

        # 6. the end
        state = conn.state
        if state[0] in TERMINAL and state[1] in TERMINAL and not conn.ended:
            if flags & RST and rst_ok and self._rst_grace:
                resets.hold(self, conn, seg, snd, (old_snd, old_rcv) if snd == 0 else
                            (old_rcv, old_snd))    # provisional (stack/resets.py)
            else:
                self.closed(conn, snd)

    # -- ending flows -------------------------------------------------------------------------

    def closed(self, conn: Connection, snd: int) -> None:
        """Both stacks CLOSED/TIME_WAIT after ``snd``'s packet (no RST held): the flow ends, or
        lingers ``time_wait`` seconds (also called by records.py's in-place readers)."""
        if conn.rst_seen or self.config.time_wait == 0:
            self._end(conn, "rst" if conn.rst_seen else "fin", snd)
        elif conn.tw_deadline is None:
            conn.tw_deadline = self.now + self.config.time_wait
            self.next_due = min(self.next_due, conn.tw_deadline)
            self.timers.add_time_wait(conn.tw_deadline, conn)

    def _timeout(self, conn: Connection) -> None:
        self.counts["timeouts"] += 1
        if conn.masks[Hook.NULL] & TIMEOUT_BIT and not self._mos_compat:   # mOS never raises it
            self.emitter.emit(conn, Hook.NULL, Side.BOTH,
                              Timeout(Hook.NULL, self.now - conn.last_ts), 0)
        self._end(conn, "timeout", None)

    def _end(self, conn: Connection, reason: str, snd: int | None) -> None:
        if conn.ended:
            return
        conn.ended = True
        conn.end_reason = "stopped" if conn.stopped else reason
        conn.end_ts = conn.last_ts
        self.flows.remove(conn, reason, self.now)
        self.budget.release(conn)
        if not conn.stopped:
            for side in (0, 1):
                st = conn.stream(side)
                if st.ooo_starts:               # (a side with no stream has nothing here)
                    st.finish()
                if st.gap_runs or st.conflict_runs:
                    self.emitter.errors(conn, side, snd if snd is not None else 0, 0)
                if st.new_runs:
                    self.emitter.new_data(conn, side, snd if snd is not None else 0)
            for h in conn.handles:
                masks = h.subs.masks
                if (masks[1] | masks[2]) & CONN_END_BIT:    # (HK_RCV, HK_SND)
                    self.emitter.end(conn, reason, snd)
                    break
        for h in conn.handles:
            h.closed = True
        conn.last_seg, conn.last_off = None, -1
        if self.on_flow_end is not None:
            self.on_flow_end(conn)
        # An ended flow keeps its counts and digests, not its bytes; and no reference cycle
        # with its handles, so it is freed without waiting for the garbage collector.
        for st in conn.made_streams():
            st.release()
        conn.handles = conn.handles_rev = ()
        self.timers.flow_ended()

    def monitoring_changed(self, conn: Connection) -> None:
        """A handle stopped monitoring a side; a flow nobody monitors stops being tracked."""
        conn.refresh_masks()
        if all(h.mon == 0 for h in conn.handles) and not conn.stopped:
            for st in conn.made_streams():
                st.finish()
                st.discard_outbox()
            self.emitter.end(conn, "stopped", None)
            conn.stopped = True             # stays in the table (cheap to skip) until it closes

    def _track_stopped(self, conn: Connection, seg: TcpSegment) -> None:
        snd = 0 if seg.key == conn.key_c2s else 1
        if seg.flags & RST:
            conn.rst_seen = True
            self._end(conn, "stopped", snd)
            return
        conn.fin_seq = pair_set(conn.fin_seq, snd, seg.seq)
        if conn.fin_seq[0] is not None and conn.fin_seq[1] is not None:
            self._end(conn, "stopped", snd)

    def finish(self, reason: str = "eof") -> None:
        """The source ended (reason "eof") or was stopped ("stopped"): end every open flow,
        in order of first packet, and drop pending timers. A flow already lingering in
        TIME_WAIT did close: it ends with the reason its TIME_WAIT expiry would have given."""
        self.wild.settle(self, None)
        for conn in self.flows.open_in_order():
            closed = "rst" if conn.rst_seen else "fin"
            self._end(conn, closed if conn.tw_deadline is not None else reason, resets.sender(conn))
        self.timers.clear()                 # what was due after the end never fires

    @property
    def counters(self) -> dict[str, int]:
        """Packet and anomaly counts (a fresh dict)."""
        out = {"packets": self.packet_number, "tcp_packets": self.decoder.stats()["tcp"]}
        out.update(self.counts)
        return out

    @property
    def event_counts(self) -> dict[str, int]:
        """How many times each built-in event was raised (those raised at all; a fresh dict)."""
        return self.emitter.event_counts

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = self.counters
        out["held_bytes"] = self.budget.held
        out["flows"] = self.flows.flows_total
        out["active_flows"] = self.flows.active
        out["decoder"] = self.decoder.stats()
        out["events"] = self.event_counts
        out["callback_errors"] = self.dispatcher.callback_errors
        return out


def _ignore_error(where: str, flow: Any, event: Any, exc: BaseException) -> None:
    return None
