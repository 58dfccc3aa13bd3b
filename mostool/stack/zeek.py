"""Zeek's view of a TCP connection: ``history`` letters, endpoint states and ``conn_state``.

Analysts read connections through Zeek's ``conn.log``. Its ``history`` and ``conn_state`` come
from Zeek's own per-endpoint state machine, not from a TCP stack's states, so this module runs
that machine beside our two emulated stacks, packet by packet, as Zeek defines it
(``TCPSessionAdapter``: ``update_history``, ``UpdateStateMachine``; ``conn_state`` in
``base/protocols/conn/main.zeek``):

* Each packet adds at most a few letters, upper case from the originator (our client), lower
  case from the responder. ``A`` (pure ACK), ``D`` (data), ``I`` (FIN+RST) and ``Q`` (other
  multi-flag packets) are written once per direction; ``S``, ``H``, ``F``, ``R`` again only
  when the sequence number differs from that letter's last one; ``C`` (bad checksum), ``G``
  (content gap), ``T`` (retransmitted payload) and ``W`` (zero window) at the 1st, 10th, 100th
  ... occurrence.
* Each endpoint moves through INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED,
  RESET on the packets it sends (and a SYN/ACK establishes its peer); ``conn_state`` reads the
  two states at the end (table below).

The engine owns one ``ZeekRecorder`` per connection and calls it from a few marked lines:
``packet`` on the general path (before the packet changes the stacks), ``fast`` from the
in-place fast paths only while ``pending`` (a letter or a state could still change there) or
for a zero window, ``bad_checksum`` for a segment with a bad checksum, ``gaps`` when the record
is built. Where our view differs from Zeek's: the originator is our client (Zeek's is the first
packet's sender unless a SYN says otherwise); ``T`` is payload ending at or before the highest
sequence already seen in that direction (Zeek's ``DidRxmit``), measured against our reassembly's
in-order point for packets the fast path took; ``G`` is written when our reassembly gives up a
hole, before the next packet's letters; a bad-checksum segment our engine keeps (``--checksums
off``) also adds its other letters, where Zeek drops it.
"""

from __future__ import annotations

import re
from collections.abc import Sized
from typing import Any, Protocol

__all__ = ["ZeekRecorder", "conn_state", "INACTIVE", "SYN_SENT", "SYN_ACK_SENT", "PARTIAL",
           "ESTABLISHED", "CLOSED", "RESET", "STATE_NAMES"]

# Zeek's TCP endpoint states (EndpointState)
INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = range(7)
STATE_NAMES = ("INACTIVE", "SYN_SENT", "SYN_ACK_SENT", "PARTIAL", "ESTABLISHED", "CLOSED",
               "RESET")

_FIN, _SYN, _RST, _ACK = 0x01, 0x02, 0x04, 0x10
_M32 = 0xFFFFFFFF
# letters written once per direction: their bit in ZeekRecorder._once[side]
_ONCE_BITS = {"A": 1, "D": 2, "I": 4, "Q": 8, "S": 16, "H": 16, "F": 32, "R": 64}
_BOTH_AD = (1 | 2) | (1 | 2) << 8       # A and D from both sides
_INACTIVE2 = (0, 0)
_LAST_SLOT = {"S": "_last_syn", "H": "_last_syn", "F": "_last_fin", "R": "_last_rst"}
_ZERO2 = (0, 0)
_NONE2: tuple[None, None] = (None, None)
_SCALED = "CGTW"
_RSTOS0 = re.compile(r"\^?S[^HAFGIQ]*R.*")


class Stream(Protocol):
    """What ``fields`` reads of a half-stream (stack/stream.py's HalfStream)."""

    delivered: int
    gap_bytes: int

    @property
    def gaps(self) -> Sized: ...


class ZeekRecorder:
    """One connection's Zeek history and endpoint states (side 0: originator = our client).

    Small on purpose (one per tracked flow, a million in a SYN flood): immutable pairs shared
    until a value changes, the rarely used counters created on first use."""

    __slots__ = ("history", "state", "prev", "pending", "_once", "_last_syn", "_last_fin",
                 "_last_rst", "_scaled", "_last_end", "_gaps")

    def __init__(self) -> None:
        self.history = ""
        self.state: tuple[int, int] = _INACTIVE2
        self.prev: tuple[int, int] = _INACTIVE2
        # True while a fast-path packet (a pure ACK or in-order data, no SYN/FIN/RST) could
        # still add a letter or change a state
        self.pending = True
        self._once = 0                       # letters written once: bits, side 1 shifted by 8
        # last sequence number of S/H, F and R, per side
        self._last_syn: tuple[int | None, int | None] = _NONE2
        self._last_fin: tuple[int | None, int | None] = _NONE2
        self._last_rst: tuple[int | None, int | None] = _NONE2
        # scaled letters' [count, next threshold]
        self._scaled: dict[tuple[str, int], list[int]] | None = None
        self._last_end: tuple[int | None, int | None] = _NONE2  # highest stream offset + 1
        self._gaps: tuple[int, int] = _ZERO2

    # -- letters ------------------------------------------------------------------------------

    def _add(self, side: int, code: str) -> None:
        self.history += code if side == 0 else code.lower()

    def _once_letter(self, side: int, code: str) -> bool:
        """Zeek's CheckHistory: write ``code`` the first time; True if it was seen before."""
        bit = _ONCE_BITS[code] << (8 * side)
        if self._once & bit:
            return True
        self._once |= bit
        self._add(side, code)
        return False

    def _repeat(self, side: int, code: str, seq: int) -> None:
        """S, H, F, R: again when the sequence number differs from that letter's last one."""
        slot = _LAST_SLOT[code]
        last: tuple[int | None, int | None] = getattr(self, slot)
        if self._once_letter(side, code) and last[side] != seq:
            self._add(side, code)
        if last[side] != seq:
            setattr(self, slot, (seq, last[1]) if side == 0 else (last[0], seq))

    def _scaled_letter(self, side: int, code: str) -> None:
        scaled = self._scaled
        if scaled is None:
            scaled = self._scaled = {}
        entry = scaled.get((code, side))
        if entry is None:
            entry = scaled[(code, side)] = [0, 1]
        entry[0] += 1
        if entry[0] == entry[1]:
            self._add(side, code)
            entry[1] = 10 if entry[1] == 1 else entry[1] * 10

    def _flag_letters(self, side: int, flags: int, seq: int, length: int) -> None:
        bits = (flags & _SYN != 0) + (flags & _FIN != 0) + (flags & _RST != 0)
        if bits > 1:
            self._once_letter(side, "I" if flags & _FIN and flags & _RST else "Q")
        elif bits == 1:
            if flags & _SYN:
                self._repeat(side, "H" if flags & _ACK else "S", seq)
            if flags & _FIN:
                self._repeat(side, "F", (seq + length) & _M32)
            if flags & _RST:
                self._repeat(side, "R", seq)
        elif length:
            self._once_letter(side, "D")
        elif flags & _ACK:
            self._once_letter(side, "A")

    # -- the engine's calls -------------------------------------------------------------------

    def gaps(self, c2s_gaps: int, s2c_gaps: int) -> None:
        """Content gaps our reassembly gave up so far, per sending direction: a ``G`` for the
        sender of each new one (scaled)."""
        seen = self._gaps
        if seen == (c2s_gaps, s2c_gaps):
            return
        for side, total in ((0, c2s_gaps), (1, s2c_gaps)):
            for _ in range(total - seen[side]):
                self._scaled_letter(side, "G")
        self._gaps = (c2s_gaps, s2c_gaps)

    def bad_checksum(self, side: int) -> None:
        self._scaled_letter(side, "C")

    def packet(self, side: int, flags: int, seq: int, length: int, window: int,
               start: int | None, in_order: int, c2s_gaps: int, s2c_gaps: int) -> None:
        """A packet ``side`` sent, before the engine processes it: ``seq``, ``length`` bytes of
        payload, the ``window`` field; ``start`` is the stream offset of ``seq`` in that
        direction (None before the direction's first sequence number is known) and
        ``in_order`` how far that stream has been received in order."""
        if c2s_gaps != self._gaps[0] or s2c_gaps != self._gaps[1]:
            self.gaps(c2s_gaps, s2c_gaps)
        self._flag_letters(side, flags, seq, length)
        if length and not flags & _RST and start is not None:
            end = start + length
            last = self._last_end[side]
            high = in_order if last is None else max(last, in_order)
            if end <= high and not flags & _SYN:
                self._scaled_letter(side, "T")
            if last is None or end > last:
                self._last_end = (end, self._last_end[1]) if side == 0 else (
                    self._last_end[0], end)
        self._window(side, flags, window)
        self._update_state(side, flags, length)
        self._settle()

    def fast(self, side: int, length: int, window: int) -> None:
        """A fast-path packet: a pure ACK or in-order data of an established flow."""
        self._flag_letters(side, _ACK, 0, length)
        self._window(side, _ACK, window)
        if self.state[side] == INACTIVE:
            self._update_state(side, _ACK, length)
        self._settle()

    def _window(self, side: int, flags: int, window: int) -> None:
        if (not window and not flags & _RST and self.state[1 - side] != CLOSED
                and self.state[side] != RESET and not flags & _SYN):
            self._scaled_letter(side, "W")

    def _settle(self) -> None:
        self.pending = not (self._once & _BOTH_AD == _BOTH_AD and INACTIVE not in self.state)

    # -- Zeek's endpoint state machine --------------------------------------------------------

    def _set(self, side: int, state: int) -> None:
        old = self.state
        self.prev = (old[0], self.prev[1]) if side == 0 else (self.prev[0], old[1])
        self.state = (state, old[1]) if side == 0 else (old[0], state)

    def _update_state(self, side: int, flags: int, length: int) -> None:
        me = self.state[side]
        peer = 1 - side
        syn, fin, rst, ack = flags & _SYN, flags & _FIN, flags & _RST, flags & _ACK
        if me == INACTIVE:
            if syn:
                if side == 0:
                    self._set(side, SYN_ACK_SENT if ack else SYN_SENT)
                else:
                    if self.state[peer] == SYN_SENT or (
                            not ack and self.state[peer] == SYN_ACK_SENT):
                        self._set(peer, ESTABLISHED)
                    self._set(side, ESTABLISHED)
            if fin:
                self._set(side, CLOSED)
            if rst:
                self._set(side, RESET)
            if self.state[side] == INACTIVE:
                if side == 1 and not length and self.state[0] == SYN_SENT:
                    pass            # an ACK of the SYN before the SYN/ACK: not partial
                elif ack and self.state[peer] == ESTABLISHED:
                    self._set(side, ESTABLISHED)
                else:
                    self._set(side, PARTIAL)
        elif me in (SYN_SENT, SYN_ACK_SENT):
            if fin:
                self._set(side, CLOSED)
            if rst:
                self._set(side, RESET)
        elif me in (ESTABLISHED, PARTIAL):
            if syn and me == PARTIAL and self.state[peer] == INACTIVE and not ack:
                self._set(side, SYN_SENT)
            if fin and not rst:
                self._set(side, CLOSED)
                if self.state[peer] == RESET and self.prev[peer] == CLOSED:
                    self._set(peer, CLOSED)     # a FIN then a RST: a normal end after all
            if rst:
                self._set(side, RESET)
        elif me == CLOSED and rst and self.state[peer] != CLOSED:
            self._set(side, RESET)

    def conn_state(self, orig_size: int, resp_size: int) -> str:
        return conn_state(self.state[0], self.state[1], orig_size, resp_size, self.history)

    def fields(self, duration: float, c2s: Stream, s2c: Stream) -> dict[str, Any]:
        """The conn.log fields of the connection whose client->server and server->client
        streams are ``c2s`` and ``s2c``: ``duration``, ``orig_bytes``/``resp_bytes`` (the
        sequence space covered: reassembled plus missed bytes), ``missed_bytes``,
        ``conn_state``, ``history``."""
        self.gaps(len(c2s.gaps), len(s2c.gaps))
        orig = c2s.delivered + c2s.gap_bytes
        resp = s2c.delivered + s2c.gap_bytes
        return {
            "duration": duration,
            "orig_bytes": orig,
            "resp_bytes": resp,
            "missed_bytes": c2s.gap_bytes + s2c.gap_bytes,
            "conn_state": self.conn_state(orig, resp),
            "history": self.history,
        }


def conn_state(orig: int, resp: int, orig_size: int, resp_size: int, history: str) -> str:
    """Zeek's ``conn_state`` of a TCP connection from its endpoints' final states."""
    o_inactive = orig in (INACTIVE, PARTIAL)
    r_inactive = resp in (INACTIVE, PARTIAL)
    if resp == RESET:
        if orig in (SYN_SENT, SYN_ACK_SENT) or (
                orig == RESET and orig_size == 0 and resp_size == 0):
            return "REJ"
        return "RSTRH" if o_inactive else "RSTR"
    if orig == RESET:
        if r_inactive:
            return "RSTOS0" if _RSTOS0.fullmatch(history) else "OTH"
        return "RSTO"
    if resp == CLOSED and orig == CLOSED:
        return "SF"
    if orig == CLOSED:
        return "SH" if r_inactive else "S2"
    if resp == CLOSED:
        return "SHR" if o_inactive else "S3"
    if orig == SYN_SENT and resp == INACTIVE:
        return "S0"
    if orig == ESTABLISHED and resp == ESTABLISHED:
        return "S1"
    return "OTH"
