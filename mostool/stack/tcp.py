"""The emulated TCP endpoint state machine, as a table.

Theory of operation. Each flow carries two emulated stacks, the client's and the server's (mOS's
dual-stack model). A captured segment is an *output* of its sender's stack and an *input* of its
receiver's stack, so one segment becomes one or more symbolic inputs for each:

    sender side   SND_SYN, SND_SYNACK, SND_FIN, SND_RST, SND_ACK (any other segment)
    receiver side RCV_SYN, RCV_SYNACK, RCV_ACK_SYN (acknowledges our SYN), RCV_ACK_FIN
                  (acknowledges our FIN), RCV_FIN, RCV_RST

A receiver may get several inputs from one segment (an ACK of its SYN and a FIN), applied in
that order. ``TRANSITIONS[(state, input)]`` is the next state; a pair not in the table leaves the
state as it is (a retransmission, or an input that does not apply): the tables are total and
never raise. Captures lose packets, so the table also accepts what a lossy capture implies: an
ACK from a client still in SYN_SENT means the SYN/ACK was missed; a FIN from a stack still in
SYN_RCVD means the handshake's last ACK was.

Everything that decides a state change lives here (as h11's rule 1): the table, the derivation of
each side's inputs from a segment (``sender_step``, ``receiver_step``), the ISN and window-scale
bookkeeping of SYNs (``syn_bookkeeping``, ``settle_isn``), whether a FIN or an RST is acceptable
to its receiver (``fin_acceptable``, ``rst_acceptable``) and whether a SYN on a tracked 4-tuple
opens a new connection (``same_connection``). The engine calls them on its general path (the fast
path is for segments that change no state) and emits the events; these functions raise none.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING, Final

from mostool.events.types import TcpState
from mostool.stack.connection import pair_add, pair_set
from mostool.stack.decode import tcp_wscale
from mostool.stack.stream import M32
from mostool.stack.tcpfields import tcp_timestamps

if TYPE_CHECKING:
    from mostool.stack.connection import Connection
    from mostool.stack.decode import TcpSegment

__all__ = ["TcpInput", "TRANSITIONS", "TcpState", "TERMINAL", "step", "sender_input",
           "sender_step", "receiver_inputs", "receiver_step", "syn_bookkeeping", "settle_isn",
           "fin_acceptable", "rst_acceptable", "rst_verdict", "RST_OK", "RST_BAD",
           "RST_IN_WINDOW", "RST_REPLY", "ts_echo_rejected", "proves_alive", "same_connection",
           "SYN_IN_FLOW", "opening", "quiet_step", "quiet_receiver", "fin_sent", "quiet_synack",
           "syn_sequence", "echo_rejected"]

# (Final: compiled with mypyc, any other module global is a dictionary lookup at every use)
S: Final = TcpState


class TcpInput(IntEnum):
    SND_SYN = 0
    SND_SYNACK = 1
    SND_FIN = 2
    SND_RST = 3
    SND_ACK = 4
    RCV_SYN = 5
    RCV_SYNACK = 6
    RCV_ACK_SYN = 7
    RCV_ACK_FIN = 8
    RCV_FIN = 9
    RCV_RST = 10


I: Final = TcpInput

_OPEN: Final = (S.SYN_SENT, S.SYN_RCVD, S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSE_WAIT,
         S.CLOSING, S.LAST_ACK, S.TIME_WAIT, S.LISTEN)

TRANSITIONS: Final[dict[tuple[TcpState, TcpInput], TcpState]] = {
    # what the endpoint sends
    (S.CLOSED, I.SND_SYN): S.SYN_SENT,
    (S.LISTEN, I.SND_SYN): S.SYN_SENT,
    (S.LISTEN, I.SND_SYNACK): S.SYN_RCVD,         # picked up at the SYN/ACK (SYN missed)
    (S.CLOSED, I.SND_SYNACK): S.SYN_RCVD,
    (S.SYN_SENT, I.SND_SYNACK): S.SYN_RCVD,       # simultaneous open
    (S.SYN_SENT, I.SND_ACK): S.ESTABLISHED,       # it got a SYN/ACK the capture missed
    (S.SYN_SENT, I.SND_FIN): S.FIN_WAIT_1,
    (S.SYN_RCVD, I.SND_FIN): S.FIN_WAIT_1,
    (S.ESTABLISHED, I.SND_FIN): S.FIN_WAIT_1,
    (S.CLOSE_WAIT, I.SND_FIN): S.LAST_ACK,
    # what the endpoint receives
    (S.LISTEN, I.RCV_SYN): S.SYN_RCVD,
    (S.CLOSED, I.RCV_SYN): S.SYN_RCVD,
    (S.SYN_SENT, I.RCV_SYN): S.SYN_RCVD,          # simultaneous open
    (S.SYN_SENT, I.RCV_SYNACK): S.ESTABLISHED,
    (S.SYN_SENT, I.RCV_ACK_SYN): S.ESTABLISHED,   # an ACK standing in for a missed SYN/ACK
    (S.SYN_RCVD, I.RCV_ACK_SYN): S.ESTABLISHED,
    (S.SYN_RCVD, I.RCV_SYNACK): S.ESTABLISHED,    # simultaneous open completes
    (S.SYN_RCVD, I.RCV_FIN): S.CLOSE_WAIT,
    (S.ESTABLISHED, I.RCV_FIN): S.CLOSE_WAIT,
    (S.FIN_WAIT_1, I.RCV_ACK_FIN): S.FIN_WAIT_2,
    (S.FIN_WAIT_1, I.RCV_FIN): S.CLOSING,
    (S.FIN_WAIT_2, I.RCV_FIN): S.TIME_WAIT,
    (S.CLOSING, I.RCV_ACK_FIN): S.TIME_WAIT,
    (S.LAST_ACK, I.RCV_ACK_FIN): S.CLOSED,
}
for _state in _OPEN:
    TRANSITIONS[(_state, I.SND_RST)] = S.CLOSED
    TRANSITIONS[(_state, I.RCV_RST)] = S.CLOSED

# A flow is over when both stacks are in one of these.
TERMINAL: Final = frozenset({S.CLOSED, S.TIME_WAIT})


def step(state: TcpState, event: TcpInput) -> TcpState:
    """The state after ``event``; unchanged when the table has no entry."""
    return TRANSITIONS.get((state, event), state)


SYN: Final = 0x02
ACK: Final = 0x10
FIN: Final = 0x01
RST: Final = 0x04
# Enum members as module globals for the per-packet general path: a global load instead of a
# class-attribute lookup through the enum metaclass. The same objects.
_SYN_SENT: Final = S.SYN_SENT
_SYN_RCVD: Final = S.SYN_RCVD
_LISTEN: Final = S.LISTEN
_ESTABLISHED: Final = S.ESTABLISHED
_SND_ACK: Final = I.SND_ACK
_SND_FIN: Final = I.SND_FIN
_SND_RST: Final = I.SND_RST
_SND_SYN: Final = I.SND_SYN
_SND_SYNACK: Final = I.SND_SYNACK
_RCV_ACK_SYN: Final = I.RCV_ACK_SYN
_RCV_ACK_FIN: Final = I.RCV_ACK_FIN
_RCV_FIN: Final = I.RCV_FIN
# what receiver_inputs returns, prebuilt (constant tuples, joined: no list per packet)
_IN_RST: Final = (I.RCV_RST,)
_IN_SYN: Final = (I.RCV_SYN,)
_IN_SYNACK: Final = (I.RCV_SYNACK,)
_IN_ACK_SYN: Final = (I.RCV_ACK_SYN,)
_IN_ACK_FIN: Final = (I.RCV_ACK_FIN,)
_IN_FIN: Final = (I.RCV_FIN,)
_NO_CHANGE: Final[list[tuple[TcpState, TcpState]]] = []      # never appended to

# same_connection's verdict for a SYN that retries on a live flow (counted by the engine)
SYN_IN_FLOW: Final = "syn_in_flow"


def sender_input(flags: int) -> TcpInput:
    """The single sender-side input a segment with these TCP flags is (flags with none of
    SYN/FIN/RST/ACK are no input: ``sender_step`` leaves the state alone)."""
    if flags & RST:
        return _SND_RST
    if flags & SYN:
        return _SND_SYNACK if flags & ACK else _SND_SYN
    if flags & FIN:
        return _SND_FIN
    return _SND_ACK


def sender_step(conn: Connection, seg: TcpSegment, snd: int, old: TcpState) -> TcpState:
    """The sender's state after sending ``seg``. What a lossy capture implies is applied on the
    way: a FIN/ACK from SYN_SENT first takes the ACK step (the SYN/ACK it answers was missed),
    and a plain ACK from SYN_SENT whose SYN/ACK was not captured gives the peer's ISN."""
    flags = seg.flags
    if not flags & 0x17:                    # none of SYN/FIN/RST/ACK: no input
        return old
    inp = sender_input(flags)
    if old == _SYN_SENT and flags & ACK:
        if inp is _SND_FIN:
            old = TRANSITIONS.get((old, _SND_ACK), old)
        elif inp is _SND_ACK and conn.isn[1 - snd] < 0 and seg.ack:
            # the SYN/ACK was not captured: its ISN is what this ACK acknowledges, minus 1
            if conn.base_of(snd) < 0:           # what snd receives starts there
                conn.set_base(snd, seg.ack)
            conn.isn = pair_set(conn.isn, 1 - snd, (seg.ack - 1) & M32)
    return TRANSITIONS.get((old, inp), old)


def receiver_inputs(conn: Connection, seg: TcpSegment, rcv: int,
                    state: TcpState) -> tuple[TcpInput, ...]:
    """The receiver-side inputs ``seg`` is for side ``rcv``, in the order they apply (an ACK of
    its SYN or FIN, then a FIN). Settles which ISN counts when the SYN was sent with several."""
    flags = seg.flags
    if flags & RST:
        return _IN_RST
    if flags & SYN:
        return _IN_SYNACK if flags & ACK else _IN_SYN
    inputs: tuple[TcpInput, ...] = ()
    if flags & ACK:
        my_isn = conn.isn[rcv]
        if (state is _SYN_RCVD or state is _SYN_SENT) and (
                my_isn < 0 or ((seg.ack - my_isn - 1) & M32) < 0x80000000):
            inputs = _IN_ACK_SYN
            if conn.alt_isn:
                settle_isn(conn, seg, rcv)
        fin = conn.fin_seq[rcv]
        if fin is not None and ((seg.ack - fin - 1) & M32) < 0x80000000:
            inputs += _IN_ACK_FIN
    if flags & FIN:
        inputs += _IN_FIN
    return inputs


def receiver_step(conn: Connection, seg: TcpSegment, rcv: int, old: TcpState
                  ) -> tuple[TcpState, list[tuple[TcpState, TcpState]]]:
    """The receiver's state after ``seg`` and each (before, after) step that changed it."""
    inputs = receiver_inputs(conn, seg, rcv, old)
    if not inputs:
        return old, _NO_CHANGE
    new = old
    changes: list[tuple[TcpState, TcpState]] = []
    for inp in inputs:
        nxt_state = TRANSITIONS.get((new, inp), new)
        if nxt_state != new:
            changes.append((new, nxt_state))
            new = nxt_state
    return new, changes


def quiet_step(conn: Connection, snd: int, fin: bool, seq: int, ack: int
               ) -> tuple[TcpState, TcpState] | None:
    """A segment side ``snd`` sent with ACK set, none of SYN/RST and no payload: a pure ACK, or
    with ``fin`` a FIN. (sender's state, receiver's state) after it when all the general path
    would do is that (and the Zeek history, the counters, and for a FIN ``fin_sent``): the
    handshake's third ACK, a FIN at the receiver's in-order point, the ACK of a FIN, the last
    ACK that closes the flow (both states then CLOSED or TIME_WAIT: the caller lets
    ``Engine.closed`` end it, as step 6 of the general path does). None when it may do more:
    an endpoint in SYN_SENT (a missed SYN/ACK, a timestamp echo to check), several ISNs to
    settle, an ACK that may give up holes, events waiting in the outboxes, a FIN sent before
    or not at the in-order point, a flow both sides already closed (lingering in TIME_WAIT).
    Read-only; the caller checks the rest (records.py's in-place readers: a tracked flow, not
    stopped, no provisional RST, no handle wanting HK_SND events; HK_RCV's are raised with
    ``quiet_receiver``'s steps)."""
    state = conn.state                  # (pairs indexed by constants: native, no boxing)
    old_snd, old_rcv = (state[1], state[0]) if snd else (state[0], state[1])
    if old_snd is _SYN_SENT or old_rcv is _SYN_SENT or conn.alt_isn:
        return None
    if old_snd in TERMINAL and old_rcv in TERMINAL:
        return None
    if not _streams_quiet(conn, snd, ack):
        return None
    theirs = conn.s1 if snd == 0 else conn.s0
    fins = conn.fin_seq
    new_snd: TcpState = old_snd
    if fin:
        # its first FIN, where the receiver's bytes end (so fin_acceptable holds)
        their_base = conn.base_of(1 - snd)
        if ((fins[1] if snd else fins[0]) is not None
                or (their_base >= 0 and (seq - their_base - theirs.nxt) & M32)):
            return None
        new_snd = TRANSITIONS.get((old_snd, _SND_FIN), old_snd)
    return new_snd, quiet_receiver(conn, snd, fin, ack, old_rcv, None)


def _streams_quiet(conn: Connection, snd: int, ack: int) -> bool:
    """For ``quiet_step`` and ``quiet_synack``: the streams need nothing of the general path,
    i.e. ``ack`` gives up no hole of what ``snd`` receives (``ack_gives_up_holes``' quick no)
    and neither stream's outbox holds events to raise."""
    mine = conn.s0 if snd == 0 else conn.s1
    if mine.gap_runs:
        return False
    base = conn.base_of(snd)
    if base >= 0:
        if mine.ooo_starts:
            return False
        nxt = mine.nxt
        fin_off = mine.fin_off
        if 0 < (ack - base - nxt) & M32 < 0x80000000 and (fin_off is None or fin_off > nxt):
            return False
    theirs = conn.s1 if snd == 0 else conn.s0
    return not (theirs.new_runs or theirs.gap_runs or theirs.conflict_runs
                or theirs.filled_runs)


def quiet_receiver(conn: Connection, snd: int, fin: bool, ack: int, old_rcv: TcpState,
                   changes: list[tuple[TcpState, TcpState]] | None) -> TcpState:
    """``receiver_step`` for a segment ``quiet_step`` takes (no data, no SYN/RST): the
    receiver's state after it, from ``old_rcv``; each (before, after) step that changed it is
    appended to ``changes`` when given (the ON_TCP_STATE_CHANGE events the general path
    raises at HK_RCV). Read-only."""
    new = old_rcv
    if old_rcv is _SYN_RCVD:
        isns = conn.isn
        my_isn = isns[0] if snd else isns[1]
        if my_isn < 0 or ((ack - my_isn - 1) & M32) < 0x80000000:
            new = _quiet_input(new, _RCV_ACK_SYN, changes)
    fins = conn.fin_seq
    their_fin = fins[0] if snd else fins[1]
    if their_fin is not None and ((ack - their_fin - 1) & M32) < 0x80000000:
        new = _quiet_input(new, _RCV_ACK_FIN, changes)
    if fin:
        new = _quiet_input(new, _RCV_FIN, changes)
    return new


def _quiet_input(state: TcpState, inp: TcpInput, changes: list[tuple[TcpState, TcpState]] | None
                 ) -> TcpState:
    after = TRANSITIONS.get((state, inp), state)
    if changes is not None and after != state:
        changes.append((state, after))
    return after


def quiet_synack(conn: Connection, snd: int, ack: int, options: bytes) -> bool:
    """A SYN/ACK side ``snd`` sent, no FIN/RST, no payload: True when all the general path
    would do is the bookkeeping (``syn_sequence``, the Zeek history, the counters) and the
    receiver's step from SYN_SENT to ESTABLISHED, i.e. the handshake's answer to one SYN:
    ``snd`` in SYN_RCVD with no ISN yet (not a retransmission, not a second attempt), its
    peer in SYN_SENT, an ACK that gives up no hole, no events waiting in the outboxes, and a
    timestamp echo a Linux SYN_SENT accepts (``ts_echo_rejected``). Read-only; the caller
    checks the rest as for ``quiet_step``."""
    state = conn.state
    old_snd, old_rcv = (state[1], state[0]) if snd else (state[0], state[1])
    isns = conn.isn
    if (old_snd is not _SYN_RCVD or old_rcv is not _SYN_SENT or conn.alt_isn
            or (isns[1] if snd else isns[0]) >= 0):
        return False
    # (an echo a Linux SYN_SENT rejects: the general path drops the segment)
    return _streams_quiet(conn, snd, ack) and not echo_rejected(conn, 1 - snd, options)


def fin_sent(conn: Connection, snd: int, fin_seq: int) -> None:
    """Side ``snd``'s first FIN, at sequence number ``fin_seq``: where its byte stream ends."""
    conn.fin_seq = pair_set(conn.fin_seq, snd, fin_seq)
    rcv = 1 - snd
    if conn.base_of(rcv) >= 0:
        conn.own_stream(rcv).fin_off = conn.offset(rcv, fin_seq)


def syn_bookkeeping(conn: Connection, seg: TcpSegment, snd: int) -> bool:
    """ISN and option bookkeeping of a SYN or SYN/ACK; True for a retransmission."""
    options = seg.options
    if options and not seg.flags & ACK:
        stamps = tcp_timestamps(options)
        if stamps is not None:          # what a SYN_SENT Linux accepts echoed (ts_echo_rejected)
            tsval = stamps[0]
            if conn.syn_ts_first[snd] < 0:
                conn.syn_ts_first = pair_set(conn.syn_ts_first, snd, tsval)
            conn.syn_ts_latest = pair_set(conn.syn_ts_latest, snd, tsval)
    return syn_sequence(conn, snd, seg.seq, options)


def syn_sequence(conn: Connection, snd: int, seq: int, options: bytes) -> bool:
    """``syn_bookkeeping`` after the SYN's timestamps: the window scale, and ``seq`` as side
    ``snd``'s ISN (the start of what its peer receives); True for a retransmission."""
    if options:
        wscale = tcp_wscale(options)
        if wscale is not None:
            conn.wscale = pair_set(conn.wscale, snd, wscale if wscale < 14 else 14)
    rcv = 1 - snd
    st = conn.stream(rcv)
    isn = conn.isn[snd]
    if isn < 0:
        conn.isn = pair_set(conn.isn, snd, seq)
        if conn.base_of(rcv) < 0 or (st.delivered == 0 and not st.ooo_starts):
            conn.set_base(rcv, (seq + 1) & M32)
    elif isn == seq:
        conn.control_rexmit = pair_add(conn.control_rexmit, 1 - snd)
        return True
    elif st.delivered == 0 and not st.ooo_starts:
        # a new ISN before any data: a fresh attempt (or a second SYN/ACK); keep both and
        # let the peer's ACK decide which one counts
        conn.alt_isn += (isn,)
        conn.isn = pair_set(conn.isn, snd, seq)
        conn.set_base(rcv, (seq + 1) & M32)
    return False


def settle_isn(conn: Connection, seg: TcpSegment, rcv: int) -> None:
    """Of several ISNs this side used, the one its peer acknowledges counts."""
    if not conn.alt_isn:
        return
    wanted = (seg.ack - 1) & M32
    if wanted in conn.alt_isn and conn.isn[rcv] != wanted:
        st = conn.stream(1 - rcv)
        if st.delivered == 0 and not st.ooo_starts:
            old_isn = conn.isn[rcv]
            conn.alt_isn += (old_isn if old_isn >= 0 else 0,)
            conn.isn = pair_set(conn.isn, rcv, wanted)
            conn.set_base(1 - rcv, seg.ack)
    conn.alt_isn = ()


def fin_acceptable(conn: Connection, seg: TcpSegment, rcv: int) -> bool:
    """A FIN must land at or after the receiver's first byte and within its window of the
    in-order point (the caller skips the check in mOS-compatible mode, as mOS does)."""
    if conn.base_of(rcv) < 0:
        return True
    off = conn.offset(rcv, (seg.seq + seg.wire_len + (1 if seg.flags & SYN else 0)) & M32)
    window = conn.window[rcv] << conn.wscale[rcv]
    if window < 65535:
        window = 65535
    return off >= 0 and -window <= off - conn.stream(rcv).nxt <= window


# rst_verdict's answers
RST_OK: Final = 0           # the receiver would reset (provisionally: see proves_alive)
RST_BAD: Final = 1          # out of the window, or not acknowledging our SYN: ignored ("bad_rst")
RST_IN_WINDOW: Final = 2    # RFC 5961 3.2: in the window, not at RCV.NXT: a challenge ACK, no reset
RST_REPLY: Final = 3        # a SYN_SENT endpoint answering a segment it rejected: not an abort


def rst_verdict(conn: Connection, seg: TcpSegment, rcv: int) -> int:
    """What the receiver of an RST does with it, as RFC 9293 3.10.7.3 and RFC 5961 3.2 say
    (Linux and Windows both follow them; the caller skips this in mOS-compatible mode, as mOS
    accepts every RST).

    In SYN_SENT an RST counts only with ACK set and ack = ISN + 1. In the synchronized states
    it counts only at RCV.NXT exactly (the in-order point, one past a FIN received, or the end
    of bytes waiting out of order, which the host may have received where the capture did
    not); elsewhere in the window it draws a challenge ACK and changes nothing. An RST from a
    SYN_SENT endpoint whose seq is the ack of the segment it just rejected is its reply."""
    rejected = conn.rejected_ack
    if rejected is not None and rejected[0] == 1 - rcv and seg.seq == rejected[1]:
        return RST_REPLY
    state = conn.state[rcv]
    if state == _SYN_SENT:
        isn = conn.isn[rcv]
        if isn < 0 or (seg.flags & ACK and seg.ack == (isn + 1) & M32):
            return RST_OK
        return RST_BAD
    if conn.base_of(rcv) < 0:
        return RST_OK
    st = conn.stream(rcv)
    off = conn.offset(rcv, seg.seq)
    nxt = st.nxt
    fin = st.fin_off
    if off == nxt or (fin is not None and nxt >= fin and off == fin + 1):
        return RST_OK
    if st.ooo_starts and off == st._run_end(st.ooo_starts[-1]):
        return RST_OK
    window = max(conn.window[rcv] << conn.wscale[rcv], 65535)
    return RST_IN_WINDOW if -window <= off - nxt <= window else RST_BAD


def ts_echo_rejected(conn: Connection, seg: TcpSegment, rcv: int) -> bool:
    """Linux in SYN_SENT (RFC 7323's PAWS in spirit, ``PAWSACTIVEREJECTED``): when its SYN
    carried a timestamp, an ACK whose timestamp echo is not one its SYNs sent is not
    acceptable: dropped (RST or not), answered with an RST whose seq is the segment's ack."""
    if not seg.flags & ACK or conn.state[rcv] != _SYN_SENT:
        return False
    return echo_rejected(conn, rcv, seg.options)


def echo_rejected(conn: Connection, rcv: int, options: bytes) -> bool:
    """``ts_echo_rejected`` for an ACK with these TCP options to ``rcv``, in SYN_SENT: whether
    it echoes a timestamp none of ``rcv``'s SYNs sent."""
    first = conn.syn_ts_first[rcv]
    if first < 0 or not options:
        return False
    stamps = tcp_timestamps(options)
    ecr = 0 if stamps is None else stamps[1]
    if not ecr:
        return False
    return ((ecr - first) & M32) > ((conn.syn_ts_latest[rcv] - first) & M32)


def proves_alive(conn: Connection, seg: TcpSegment, snd: int) -> bool:
    """While an accepted RST is provisional (``conn.rst_pending``): whether ``seg`` shows the
    connection went on, so the RST was not honoured. Only its sender can show it (its peer's
    segments may have crossed the RST), by a segment other than an RST that continues both
    sequence spaces: its ack within what the peer sent, and its seq near what the peer
    expects (or a SYN/ACK, which starts its sequence space)."""
    pending = conn.rst_pending
    flags = seg.flags
    if pending is None or pending[1] != snd or flags & RST or not flags & ACK:
        return False
    rcv = 1 - snd
    # what snd received: its ack must lie in there
    if conn.isn[rcv] >= 0 and conn.base_of(snd) >= 0:
        off = conn.offset(snd, seg.ack)
        if not 0 <= off <= conn.stream(snd).nxt + 1:
            return False
    if flags & SYN:
        return True
    if conn.isn[snd] < 0 or conn.base_of(rcv) < 0:
        return False                    # a sequence space nobody has seen start
    window = max(conn.window[rcv] << conn.wscale[rcv], 65535)
    return -window <= conn.offset(rcv, seg.seq) - conn.stream(rcv).nxt <= window


def rst_acceptable(conn: Connection, seg: TcpSegment, rcv: int) -> bool:
    """RFC 5961-ish, loosely: an RST must land near what the receiver expects (the caller
    skips the check in mOS-compatible mode, as mOS does)."""
    state = conn.state[rcv]
    if state == _SYN_SENT:
        isn = conn.isn[rcv]
        return not seg.flags & ACK or isn < 0 or seg.ack == (isn + 1) & M32
    if conn.base_of(rcv) < 0:
        return True
    d = conn.offset(rcv, seg.seq) - conn.stream(rcv).nxt
    window = max(conn.window[rcv] << conn.wscale[rcv], 65535)
    return -window <= d <= window


def same_connection(conn: Connection, seg: TcpSegment, now: float) -> str | None:
    """A SYN (not SYN/ACK) on a tracked 4-tuple: None when it is a retransmission or a retry
    of the same connection, ``SYN_IN_FLOW`` when it is an unexplained SYN inside a live flow
    (still the same flow, counted), else the reason the tracked flow ends ("rst", "fin",
    "stopped") because the SYN opens a new connection."""
    from_client = seg.key == conn.key_c2s
    if from_client and (conn.isn[0] == seg.seq or conn.isn[0] < 0):
        return None
    state = conn.state
    closing = (conn.fin_seq[0] is not None or conn.fin_seq[1] is not None
               or (state[0] in TERMINAL and state[1] in TERMINAL))
    if from_client and not closing and state[0] == _SYN_SENT and \
            conn.stream(0).delivered == 0:
        return None                         # a new attempt before any answer: same flow
    if closing or now - conn.last_ts >= 1.0:
        return "rst" if conn.rst_seen else "fin" if closing else "stopped"
    return SYN_IN_FLOW



def opening(seg: TcpSegment) -> tuple[bool, list[TcpState] | None]:
    """A flow's first segment: whether its sender is the client, and the two stacks' states
    when it is not a SYN (None: both start as a fresh SYN leaves them). A SYN/ACK's sender is
    the server; a flow picked up in the middle guesses that the lower port serves."""
    flags = seg.flags
    if flags & SYN and not flags & (ACK | RST):
        return True, None
    if flags & SYN:
        return False, [_SYN_SENT, _LISTEN]
    client_is_sender = seg.dport < seg.sport or (seg.dport == seg.sport and seg.src > seg.dst)
    return client_is_sender, [_ESTABLISHED, _ESTABLISHED]
