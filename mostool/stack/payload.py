"""A tracked segment's bytes on the general path: into the receiver's half-stream, and what the
sender's ACK says about the stream it receives.

``receive_payload`` puts a segment's captured bytes in (a keep-alive probe is counted, not
data; bytes the snaplen cut are a gap). ``ack_gives_up_holes``: an ACK past holes the capture
missed makes them gaps, and bytes set aside for a bad checksum (``set_aside``) that the ACK
covers are taken back first (``take_back``), as the host evidently accepted them. The events
these leave in the half-streams' outbox are raised by the engine through the Emitter.
``MemoryBudget`` keeps the bytes all flows hold under ``max_buffered_bytes``: the flow that
crosses it gives up its buffer and holes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from mostool.events.types import TcpState
from mostool.stack.connection import Connection, pair_add
from mostool.stack.decode import TcpSegment
from mostool.stack.stream import LATE, M32, NEW

if TYPE_CHECKING:
    from mostool.stack.emit import Emitter

SYN: Final = 0x02
FIN: Final = 0x01
_HANDSHAKE: Final = frozenset({TcpState.LISTEN, TcpState.SYN_SENT, TcpState.SYN_RCVD})
_MAX_SET_ASIDE: Final = 64  # bad-checksum segments kept per side in case they get acknowledged


def receive_payload(conn: Connection, seg: TcpSegment, snd: int, counts: dict[str, int]
                    ) -> int:
    """The segment's bytes into the receiver's half-stream; returns HalfStream.receive's flags
    (keep-alive probes and snaplen-cut tails are handled here)."""
    seq = seg.seq
    if seg.flags & SYN:
        seq = (seq + 1) & M32
    rcv = 1 - snd
    if conn.base_of(rcv) < 0:
        conn.set_base(rcv, seq)
    off = conn.offset(rcv, seq)
    wire = seg.wire_len
    if wire <= 1 and off == conn.stream(rcv).nxt - 1 and not seg.flags & (SYN | FIN):
        conn.keepalives = pair_add(conn.keepalives, snd)   # a probe: not data, not a rexmit
        counts["keepalives"] += 1
        return 0
    st = conn.own_stream(rcv)
    n = seg.payload_len
    flags = 0
    if n:
        data = seg.buf[seg.payload_off:seg.payload_off + n] if st.keep_bytes else None
        flags = st.receive(off, data, n)
    if wire > n and st.nxt == off + n:
        st.skip_to(off + wire)               # the snaplen cut the rest: a gap
        flags |= NEW if st.new_runs else 0
    if flags & LATE:
        conn.late = pair_add(conn.late, 1 - snd)
    return flags

def ack_gives_up_holes(conn: Connection, seg: TcpSegment, snd: int, counts: dict[str, int]
                       ) -> bool:
    """The sender acknowledges bytes it received: holes below that the capture missed are
    gaps now."""
    base = conn.base_of(snd)
    if base < 0:
        return False
    st = conn.s0 if snd == 0 else conn.s1       # (read: Connection.stream)
    if not st.ooo_starts and not (0 < (seg.ack - base - st.nxt) & M32 < 0x80000000
                                  and (st.fin_off is None or st.fin_off > st.nxt)):
        # with nothing waiting, an ACK gives up a hole only if it acknowledges more than
        # the in-order point, below the FIN (most acknowledge it exactly, or the FIN)
        return False
    if not st.ooo_starts and st.nxt == conn.offset(snd, seg.ack):
        return False
    peer_isn = conn.isn[1 - snd]
    if conn.state[snd] in _HANDSHAKE and peer_isn >= 0 and \
            seg.ack != (peer_isn + 1) & M32:
        return False        # not acceptable during the handshake (RFC 793): a stray ACK
    target = conn.offset(snd, seg.ack)
    if st.fin_off is not None and target > st.fin_off:
        target = st.fin_off
    if target <= st.nxt or target - st.nxt > 0x40000000:
        return False
    if conn.alt_isn and st.delivered == 0:
        return False
    if conn.set_aside is not None and conn.set_aside[snd]:
        take_back(conn, snd, target, counts)
    st = conn.own_stream(snd)
    st.skip_to(target)
    return bool(st.new_runs)

def set_aside(conn: Connection, seg: TcpSegment, rcv: int) -> None:
    """Keep a segment dropped for its checksum: if the receiver acknowledges its bytes and
    no good copy was captured, the host accepted them after all (the corruption happened
    on the way to the capture, or in a rewrite of it), and they fill the hole."""
    if conn.set_aside is None:
        conn.set_aside = ([], [])
    kept = conn.set_aside[rcv]
    st = conn.stream(rcv)
    data = seg.buf[seg.payload_off:seg.payload_off + seg.payload_len] if st.keep_bytes \
        else None
    kept.append((seg.seq, data, seg.payload_len))
    if len(kept) > _MAX_SET_ASIDE:
        del kept[0]

def take_back(conn: Connection, side: int, target: int, counts: dict[str, int]) -> None:
    """Set-aside bytes below ``target``, which the receiver acknowledged, fill their hole."""
    assert conn.set_aside is not None
    st = conn.own_stream(side)
    kept = conn.set_aside[side]
    left = []
    for seq, data, n in kept:
        off = conn.offset(side, seq)
        if off < target and off + n > st.nxt:
            st.receive(off, data, n)
            counts["bad_checksum_acked"] += 1
        elif off >= target:
            left.append((seq, data, n))
    conn.set_aside[side][:] = left



class MemoryBudget:
    """The bytes held by every flow's buffers (and kept out-of-order runs), against a limit."""

    def __init__(self, limit: int, emitter: Emitter, counts: dict[str, int]) -> None:
        self.held = 0
        self._limit = limit
        self._emitter = emitter
        self._counts = counts

    def account(self, conn: Connection) -> None:
        """``conn``'s streams changed: keep the total; past the limit, this flow gives up."""
        s0, s1 = conn.s0, conn.s1           # (read: Connection.stream)
        held = s0.buffered + s1.buffered
        if s0.keep_bytes:
            held += s0.ooo_bytes
        if s1.keep_bytes:
            held += s1.ooo_bytes
        self.held += held - conn.held
        conn.held = held
        if self.held > self._limit and held:
            self._shed(conn)

    def release(self, conn: Connection) -> None:
        """``conn`` ended: what it held is free."""
        self.held -= conn.held
        conn.held = 0

    def _shed(self, conn: Connection) -> None:
        """Over the limit: drop this flow's buffered bytes and give up its holes."""
        self._counts["memory_limit"] += 1
        emitter = self._emitter
        for side in (0, 1):
            st = conn.stream(side)
            if not (st.buffered or st.ooo_starts):
                continue                        # (an empty side may have no stream of its own)
            st.drop_buffer()
            st.finish()
            emitter.anomaly(conn, side, "memory_limit", st.nxt, 0, 0)
            if st.gap_runs or st.conflict_runs:
                emitter.errors(conn, side, 0, 0)
            if st.new_runs:
                emitter.new_data(conn, side, 0)
        self.release(conn)


