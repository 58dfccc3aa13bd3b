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
for a zero window, ``bad_checksum`` for a segment with a bad checksum; the flow record asks
``fields`` (and ``Connection.record_json`` ``conn_state``/``history``).

Where our view differs from Zeek's: the originator is our client (Zeek's is the first packet's
sender unless a SYN says otherwise); ``T`` is payload ending at or before the highest
sequence already seen in that direction (Zeek's ``DidRxmit``), measured against our reassembly's
in-order point for packets the fast path took; ``G`` is written when our reassembly gives up a
hole, before the next packet's letters (or at the end); ``orig_bytes``/``resp_bytes`` are
the sequence space our reassembly covered (delivered plus missed bytes), where Zeek takes the
highest sequence number seen; a bad-checksum segment our engine keeps (``--checksums
off``) also adds its other letters, where Zeek drops it.
"""

from __future__ import annotations

import re
from collections.abc import Sized
from typing import Any, Final, Protocol

__all__ = ["ZeekRecorder", "conn_state", "INACTIVE", "SYN_SENT", "SYN_ACK_SENT", "PARTIAL",
           "ESTABLISHED", "CLOSED", "RESET", "STATE_NAMES"]

# Zeek's TCP endpoint states (EndpointState). Constants are Final: compiled with mypyc, any
# other module global is a dictionary lookup at every use
INACTIVE: Final = 0
SYN_SENT: Final = 1
SYN_ACK_SENT: Final = 2
PARTIAL: Final = 3
ESTABLISHED: Final = 4
CLOSED: Final = 5
RESET: Final = 6
STATE_NAMES: Final = ("INACTIVE", "SYN_SENT", "SYN_ACK_SENT", "PARTIAL", "ESTABLISHED",
                      "CLOSED", "RESET")

_FIN: Final = 0x01
_SYN: Final = 0x02
_RST: Final = 0x04
_ACK: Final = 0x10
_M32: Final = 0xFFFFFFFF
# letters written once per direction: their bit in ZeekRecorder._once[side]
_ONCE_BITS: Final = {"A": 1, "D": 2, "I": 4, "Q": 8, "S": 16, "H": 16, "F": 32, "R": 64}
_BOTH_AD: Final = (1 | 2) | (1 | 2) << 8       # A and D from both sides
_CONTROL: Final = _SYN | _FIN | _RST
_SCALED: Final = "CGTW"
_RSTOS0: Final = re.compile(r"\^?S[^HAFGIQ]*R.*")
# One string per history seen ("ShADadFf" repeats across most flows), so that flows share it:
# bounded, for a capture whose histories are all different
_HISTORIES: Final[dict[str, str]] = {}
_MAX_HISTORIES: Final = 4096


class Stream(Protocol):
    """What the recorder reads of a half-stream (stack/stream.py's HalfStream)."""

    delivered: int
    gap_bytes: int
    nxt: int

    @property
    def gaps(self) -> Sized: ...


class Sides(Protocol):
    """What the recorder reads of a connection's half-streams (stack/connection.py; ``s0``,
    ``s1``: what each side's stack receives)."""

    @property
    def s0(self) -> Stream: ...

    @property
    def s1(self) -> Stream: ...

    def stream(self, side: int) -> Stream: ...

    def base_of(self, side: int) -> int: ...     # -1: none yet

    def offset(self, side: int, seq: int) -> int: ...


class ZeekRare:
    """What a recorder needs only once a flow sends a FIN or an RST, or meets a scaled letter
    (C, G, T, W): made on the first such write; until then every recorder shares one read-only
    default (``_NO_RARE``), which keeps an idle flow's recorder small."""

    __slots__ = ("fin0", "fin1", "rst0", "rst1", "scaled", "g0", "g1")

    def __init__(self) -> None:
        # the last sequence number of F and R, per side (Zeek's hist_last_*; -1: none yet)
        self.fin0 = -1
        self.fin1 = -1
        self.rst0 = -1
        self.rst1 = -1
        self.scaled: dict[tuple[str, int], list[int]] | None = None   # [count, threshold]
        self.g0 = 0                     # content gaps written, per sending side
        self.g1 = 0


_NO_RARE: Final = ZeekRare()        # shared by every recorder that has needed none: never written


class ZeekRecorder:
    """One connection's Zeek history and endpoint states (side 0: originator = our client).

    Small and quick on purpose (one per tracked flow, a million in a SYN flood): both
    endpoint states packed in one small int (3 bits each), per-side values in plain slots,
    the scaled letters' counters created on first use."""

    __slots__ = ("history", "_s", "pending", "_once", "_syn0", "_syn1", "_rare", "_end0",
                 "_end1")

    def __init__(self) -> None:
        self.history = ""
        # the endpoints' states: side 0 in bits 0-2, side 1 in 3-5; their previous states
        # likewise in bits 6-8 and 9-11 (one int: a word less per flow)
        self._s = 0
        # True while a fast-path packet (a pure ACK or in-order data, no SYN/FIN/RST) could
        # still add a letter or change a state
        self.pending = True
        self._once = 0               # letters written once: bits, side 1 shifted by 8
        # the last sequence number of S/H, per side (Zeek's hist_last_*; F's and R's are
        # ZeekRare's) (-1: none yet; an int, not None, so that a compiled recorder holds it
        # unboxed)
        self._syn0 = -1
        self._syn1 = -1
        self._rare = _NO_RARE           # F and R sequence numbers, scaled letters, gaps written
        self._end0: int | None = None    # highest stream offset sent + 1, per side
        self._end1: int | None = None

    def _own_rare(self) -> ZeekRare:
        rare = self._rare
        if rare is _NO_RARE:
            rare = self._rare = ZeekRare()
        return rare

    @property
    def state(self) -> tuple[int, int]:
        return self._s & 7, (self._s >> 3) & 7

    @property
    def prev(self) -> tuple[int, int]:
        return (self._s >> 6) & 7, (self._s >> 9) & 7

    # -- letters ------------------------------------------------------------------------------

    def _add(self, side: int, code: str) -> None:
        history = self.history + (code if side == 0 else code.lower())
        shared = _HISTORIES.get(history)
        if shared is None and len(_HISTORIES) < _MAX_HISTORIES:
            shared = _HISTORIES[history] = history
        self.history = history if shared is None else shared

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
        # the last one's slot, read and written by name (no getattr: slow on a native class)
        rare = self._rare
        if code == "F":
            last = rare.fin1 if side else rare.fin0
        elif code == "R":
            last = rare.rst1 if side else rare.rst0
        else:                           # S and H share theirs
            last = self._syn1 if side else self._syn0
        if self._once_letter(side, code) and last != seq:
            self._add(side, code)
        if last == seq:
            return
        if code == "F":
            if side:
                self._own_rare().fin1 = seq
            else:
                self._own_rare().fin0 = seq
        elif code == "R":
            if side:
                self._own_rare().rst1 = seq
            else:
                self._own_rare().rst0 = seq
        elif side:
            self._syn1 = seq
        else:
            self._syn0 = seq

    def _scaled_letter(self, side: int, code: str) -> None:
        rare = self._own_rare()
        scaled = rare.scaled
        if scaled is None:
            scaled = rare.scaled = {}
        entry = scaled.get((code, side))
        if entry is None:
            entry = scaled[(code, side)] = [0, 1]
        entry[0] += 1
        if entry[0] == entry[1]:
            self._add(side, code)
            entry[1] = 10 if entry[1] == 1 else entry[1] * 10

    def _control_letters(self, side: int, flags: int, seq: int, length: int) -> None:
        """The letters of a packet with SYN, FIN or RST."""
        if (flags & _SYN != 0) + (flags & _FIN != 0) + (flags & _RST != 0) > 1:
            self._once_letter(side, "I" if flags & _FIN and flags & _RST else "Q")
            return
        if flags & _SYN:
            self._repeat(side, "H" if flags & _ACK else "S", seq)
        elif flags & _FIN:
            self._repeat(side, "F", (seq + length) & _M32)
        else:
            self._repeat(side, "R", seq)

    # -- the engine's calls -------------------------------------------------------------------

    def gaps(self, c2s_gaps: int, s2c_gaps: int) -> None:
        """Content gaps our reassembly gave up so far, per sending direction: a ``G`` for the
        sender of each new one (scaled)."""
        rare = self._rare
        g0, g1 = rare.g0, rare.g1
        if c2s_gaps <= g0 and s2c_gaps <= g1:
            return                      # (the commonest case: no write, no ZeekRare made)
        for _ in range(c2s_gaps - g0):
            self._scaled_letter(0, "G")
        for _ in range(s2c_gaps - g1):
            self._scaled_letter(1, "G")
        rare = self._own_rare()
        rare.g0, rare.g1 = max(g0, c2s_gaps), max(g1, s2c_gaps)

    def bad_checksum(self, side: int) -> None:
        self._scaled_letter(side, "C")

    def packet(self, side: int, flags: int, seq: int, length: int, window: int,
               conn: Sides) -> None:
        """A packet ``side`` sent, before the engine processes it: ``seq``, ``length`` bytes of
        payload, the ``window`` field; ``conn.stream(s)`` is what side ``s``'s stack receives."""
        if not self._once and side == 0 and flags & 0x17 == _SYN and not self._s & 63:
            # the opening SYN (the commonest first packet; all of a SYN flood): as below
            self._once = _ONCE_BITS["S"]
            self.history = "S"
            self._syn0 = seq
            self._s = SYN_SENT
            return
        s2c, c2s = conn.s0, conn.s1
        rare = self._rare
        if len(c2s.gaps) != rare.g0 or len(s2c.gaps) != rare.g1:
            self.gaps(len(c2s.gaps), len(s2c.gaps))
        control = flags & _CONTROL
        if not (control or length or self.pending) and window:
            return                  # a plain ACK once A/D are written: nothing to record
        if control:
            self._control_letters(side, flags, seq, length)
        elif length:
            if not self._once & (2 << 8 * side):
                self._once_letter(side, "D")
        elif flags & _ACK and not self._once & (1 << 8 * side):
            self._once_letter(side, "A")
        if length and not flags & (_RST | _SYN):
            rcv = 1 - side
            if conn.base_of(rcv) >= 0:
                self._sent(side, conn.offset(rcv, seq) + length, conn.stream(rcv).nxt)
        if not window:
            self._window(side, flags)
        if control or not (self._s >> (3 * side)) & 7:      # else no state can change
            self._update_state(side, flags, length)
        if self.pending:
            self._settle()

    def _sent(self, side: int, end: int, in_order: int) -> None:
        """Payload ending at stream offset ``end``: a retransmission (T) when it ends at or
        before the highest offset already seen in that direction (Zeek's DidRxmit)."""
        last = self._end1 if side else self._end0
        high = in_order if last is None or in_order > last else last
        if end <= high:
            self._scaled_letter(side, "T")
        if last is None or end > last:
            if side:
                self._end1 = end
            else:
                self._end0 = end

    def fast(self, side: int, length: int, window: int) -> None:
        """A fast-path packet: a pure ACK or in-order data of an established flow."""
        if not self._once & ((2 if length else 1) << 8 * side):
            self._once_letter(side, "D" if length else "A")
        if not window:
            self._window(side, _ACK)
        if not (self._s >> (3 * side)) & 7:
            self._update_state(side, _ACK, length)
        if self.pending:
            self._settle()

    def _window(self, side: int, flags: int) -> None:
        """A zero window (W, scaled), unless on a SYN or RST, after a RST or the peer's FIN."""
        state = self.state
        if (not flags & (_RST | _SYN) and state[1 - side] != CLOSED
                and state[side] != RESET):
            self._scaled_letter(side, "W")

    def _settle(self) -> None:
        s = self._s
        self.pending = not (self._once & _BOTH_AD == _BOTH_AD and s & 7 and (s >> 3) & 7)

    # -- Zeek's endpoint state machine --------------------------------------------------------

    def _set(self, side: int, state: int) -> None:
        shift = 3 * side
        mask = 7 << shift
        s = self._s
        now = s & 63
        prev = ((s >> 6) & ~mask) | (now & mask)
        self._s = (now & ~mask) | (state << shift) | (prev << 6)

    def _update_state(self, side: int, flags: int, length: int) -> None:
        me, other = self.state if side == 0 else self.state[::-1]
        peer = 1 - side
        syn, fin, rst, ack = flags & _SYN, flags & _FIN, flags & _RST, flags & _ACK
        if me == INACTIVE:
            if syn:
                if side == 0:
                    self._set(side, SYN_ACK_SENT if ack else SYN_SENT)
                else:
                    if other == SYN_SENT or (not ack and other == SYN_ACK_SENT):
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
            if syn and me == PARTIAL and other == INACTIVE and not ack:
                self._set(side, SYN_SENT)
            if fin and not rst:
                self._set(side, CLOSED)
                if other == RESET and self.prev[peer] == CLOSED:
                    self._set(peer, CLOSED)     # a FIN then a RST: a normal end after all
            if rst:
                self._set(side, RESET)
        elif me == CLOSED and rst and other != CLOSED:
            self._set(side, RESET)

    def conn_state(self, orig_size: int, resp_size: int) -> str:
        return conn_state(self._s & 7, (self._s >> 3) & 7, orig_size, resp_size, self.history)

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
