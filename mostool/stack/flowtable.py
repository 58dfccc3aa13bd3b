"""The flow table: open connections by directional 4-tuple, and 4-tuples that closed recently.

Each open ``Connection`` is in ``table`` twice, under its client-to-server and server-to-client
keys (12 or 36 bytes: addresses and ports as the decoder slices them), so one dict lookup per
packet finds it either way. ``active`` counts open flows and ``flows_total`` every flow made.
With ``midstream``, a 4-tuple that closed by FIN or RST is remembered for a while
(``closed_recently``), so the stray ACKs after a close are not taken for a new flow picked up in
the middle; at most twice ``max_flows`` are remembered, the oldest forgotten first.
``admit`` decides whether a segment no flow has makes a new one (and for which listeners), or
is an orphan and why.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from mostool.stack.codes import LINKTYPE_RAW as _LINKTYPE_RAW

if TYPE_CHECKING:
    from mostool.stack.connection import Connection
    from mostool.stack.decode import TcpSegment
    from mostool.stack.listener import Listener

__all__ = ["FlowTable", "AFTER_CLOSE"]

FIN: Final = 0x01
SYN: Final = 0x02
RST: Final = 0x04
ACK: Final = 0x10

AFTER_CLOSE: Final = 120.0  # seconds a closed 4-tuple's stray ACKs are not a new flow (2 MSL)
_CONN_ID = operator.attrgetter("id")


class FlowTable:
    """Open flows by key; see the module docstring."""

    def __init__(self, max_flows: int, midstream: bool) -> None:
        self.table: dict[bytes, Connection] = {}
        self.active = 0
        self.flows_total = 0
        self._max_flows = max_flows
        self._midstream = midstream
        self._recently_closed: dict[bytes, float] = {}   # midstream: key -> when it closed

    def full(self) -> bool:
        """As many open flows as ``max_flows`` allows: one must be evicted for a new one."""
        return len(self.table) >= 2 * self._max_flows

    def add(self, conn: Connection) -> None:
        table = self.table
        table[conn.key_c2s] = conn
        table[conn.key_s2c] = conn
        self.active += 1
        self.flows_total += 1

    def remove(self, conn: Connection, reason: str, now: float) -> None:
        """``conn`` ended at ``now`` for ``reason``: out of the table (its keys may already
        belong to a newer flow), and remembered when it closed by FIN or RST."""
        table = self.table
        if table.get(key := conn.key_c2s) is conn:
            del table[key]
        if table.get(key := conn.key_s2c) is conn:
            del table[key]
        self.active -= 1
        if self._midstream and reason in ("fin", "rst"):
            recent = self._recently_closed
            recent[conn.key_c2s] = recent[conn.key_s2c] = now
            while len(recent) > 2 * self._max_flows:
                del recent[next(iter(recent))]

    def closed_recently(self, key: bytes, now: float) -> bool:
        """A flow with this key closed by FIN or RST within ``AFTER_CLOSE`` seconds."""
        closed_at = self._recently_closed.get(key)
        return closed_at is not None and now - closed_at <= AFTER_CLOSE

    def open_in_order(self) -> list[Connection]:
        """Each open flow once (a Connection hashes by identity), in order of first packet."""
        return sorted(dict.fromkeys(self.table.values()), key=_CONN_ID)

    def admit(self, seg: TcpSegment, listeners: Sequence[Listener], now: float
              ) -> list[Listener] | str:
        """A segment whose key no open flow has: the stream listeners that take it as a new
        flow (a SYN, or any segment with ``midstream``, that their SYN filter accepts), or the
        orphan reason: ``after_close`` (a stray ACK of a flow that just closed), ``no_flow``,
        ``filtered`` (no SYN filter accepts it) or ``no_listener``. A SYN filter sees a plain
        segment's frame, and a tunnelled one's inner IP packet (raw IP): it names flows by
        the endpoints the user knows them by."""
        flags = seg.flags
        is_syn = flags & SYN and not flags & (ACK | RST)
        if (not is_syn and self._midstream and not seg.wire_len and not flags & SYN
                and self.closed_recently(seg.key, now)):
            return "after_close"
        if not is_syn and not self._midstream:
            return "no_flow"
        if seg.tunnel is None:
            linktype, frame = seg.linktype, seg.buf
        else:   # a tunnelled flow is chosen by its inner endpoints: the inner IP packet
            linktype, frame = _LINKTYPE_RAW, seg.buf[seg.ip_off:seg.payload_off + seg.payload_len]
        takers = [lst for lst in listeners
                  if lst.syn_match is None or lst.syn_match(linktype, frame)]
        if not takers:
            return "filtered" if listeners else "no_listener"
        if flags & RST and not is_syn:
            return "no_flow"
        return takers
