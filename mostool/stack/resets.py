"""Segments a receiver refuses, and what follows an RST: the route's RST (and bad-FIN) steps.

Theory of operation. ``tcp.rst_verdict`` and ``tcp.ts_echo_rejected`` decide, this module acts
on their answers (the engine calls it on its general path; mOS-compatible mode never does, as
mOS takes every RST):

* A segment a SYN_SENT Linux would reject by its timestamp echo (``reject_by_ts_echo``) is
  dropped whole: counted ``ts_echo_rejected``, and an RST among them is ON_ERROR "rst_ignored".
  Its ack is remembered: the endpoint's RST reply (seq = that ack) is not an abort.
* A FIN far outside what the receiver expects (``tcp.fin_acceptable``: before the stream's
  first byte, or past its window) ends nothing (``refuse_fin``): counted, ON_ERROR "bad_fin",
  and the segment is taken without its FIN.
* An RST the receiver would not take (``refuse``): "bad_rst" (out of the window, or not
  acknowledging the SYN), "rst_in_window" (RFC 5961's challenge ACK) or a reply, counted
  ``rst_reply``: the segment changes nothing.
* An accepted RST is provisional (``hold``): both stacks are CLOSED, the flow stays in the
  table for ``rst_grace`` seconds of packet time (the TIME_WAIT timer), and every packet of
  the flow goes to ``after_reset`` first. One that proves the connection alive
  (``tcp.proves_alive``: its RST's sender continuing both sequence spaces) restores the two
  states the RST found, raises ON_ERROR "rst_ignored" (offset: where the RST landed in its
  receiver's stream) and goes on as if the RST had not been seen. Another RST from the same
  sender confirms the reset: the flow ends "rst" at once. Anything else is not part of the
  stream: bytes are ON_ERROR "data_after_rst" (offset, length), counted; nothing is lost
  silently. When the grace period passes, the flow ends "rst" as it always did.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from mostool.events.types import TcpState
from mostool.stack.connection import pair_add
from mostool.stack.tcp import RST_BAD, RST_IN_WINDOW, RST_REPLY, proves_alive

if TYPE_CHECKING:
    from mostool.stack.connection import Connection
    from mostool.stack.decode import TcpSegment
    from mostool.stack.engine import Engine

__all__ = ["reject_by_ts_echo", "refuse", "refuse_fin", "hold", "after_reset", "sender",
           "COUNTERS"]

FIN: Final = 0x01
RST: Final = 0x04
ACK: Final = 0x10
# the engine's counters this module keeps
COUNTERS = ("bad_fin", "bad_rst", "rst_in_window", "rst_reply", "rst_ignored", "ts_echo_rejected",
            "data_after_rst")


def refuse_fin(engine: Engine, conn: Connection, seg: TcpSegment, snd: int) -> TcpSegment:
    """A FIN its receiver does not take: ``seg`` without it."""
    conn.bad_fin += 1
    engine.counts["bad_fin"] += 1
    engine.emitter.anomaly(conn, 1 - snd, "bad_fin", 0, 0, snd)
    return seg._replace(flags=seg.flags & ~FIN)


def reject_by_ts_echo(engine: Engine, conn: Connection, seg: TcpSegment, snd: int) -> None:
    """``seg`` fails the SYN_SENT receiver's timestamp-echo check: dropped whole."""
    rcv = 1 - snd
    engine.counts["ts_echo_rejected"] += 1
    conn.rejected_ack = (rcv, seg.ack)
    if seg.flags & RST:
        engine.counts["rst_ignored"] += 1
        engine.emitter.anomaly(conn, rcv, "rst_ignored", 0, 0, snd)


def refuse(engine: Engine, conn: Connection, seg: TcpSegment, snd: int, verdict: int) -> None:
    """An RST its receiver does not take (``tcp.rst_verdict`` said ``verdict``)."""
    rcv = 1 - snd
    if verdict == RST_REPLY:
        engine.counts["rst_reply"] += 1
        return
    if verdict == RST_BAD:
        conn.bad_rst += 1
        engine.counts["bad_rst"] += 1
        if conn.state[rcv] == TcpState.SYN_SENT and seg.flags & ACK:
            conn.rejected_ack = (rcv, seg.ack)
        engine.emitter.anomaly(conn, rcv, "bad_rst", 0, 0, snd)
    elif verdict == RST_IN_WINDOW:
        engine.counts["rst_in_window"] += 1
        engine.emitter.anomaly(conn, rcv, "rst_in_window", conn.offset(rcv, seg.seq), 0, snd)


def hold(engine: Engine, conn: Connection, seg: TcpSegment, snd: int,
         before: tuple[TcpState, TcpState]) -> None:
    """An accepted RST closed both stacks: the flow lingers, provisionally reset."""
    conn.rst_pending = (engine.packet_number, snd, before[0], before[1],
                        conn.offset(1 - snd, seg.seq))
    deadline = conn.tw_deadline = engine.now + engine.config.rst_grace
    if deadline < engine.next_due:
        engine.next_due = deadline
    engine.timers.add_time_wait(deadline, conn)


def sender(conn: Connection) -> int | None:
    """The side whose provisional RST ends the flow now (None: no RST pending): ON_CONN_END
    says so, as it would have at the RST."""
    return None if conn.rst_pending is None else conn.rst_pending[1]


def after_reset(engine: Engine, conn: Connection, seg: TcpSegment) -> bool:
    """A packet of a provisionally reset flow. False: it proved the flow alive, which resumed,
    and the packet takes its ordinary way; True: handled here."""
    pending = conn.rst_pending
    assert pending is not None
    snd = 0 if seg.key == conn.key_c2s else 1
    if proves_alive(conn, seg, snd):
        _number, sender, s0, s1, off = pending
        conn.state = (s0, s1)
        conn.rst_pending = None
        conn.rst_seen = False
        conn.tw_deadline = None             # its timer is dropped when it falls due
        engine.counts["rst_ignored"] += 1
        engine.emitter.anomaly(conn, 1 - sender, "rst_ignored", off, 0, snd)
        return False
    conn.packets = pair_add(conn.packets, snd)
    conn.payload_bytes = pair_add(conn.payload_bytes, snd, seg.wire_len)
    if seg.flags & RST:
        if snd == pending[1]:
            engine._end(conn, "rst", snd)    # its sender resets again: confirmed
        return True
    if seg.wire_len:
        engine.counts["data_after_rst"] += 1
        off = conn.offset(1 - snd, seg.seq)         # (0 while it has no base)
        # offsets are never negative: data from the SYN's own sequence number on starts at 0
        engine.emitter.anomaly(conn, 1 - snd, "data_after_rst", max(off, 0), seg.wire_len, snd)
    return True
