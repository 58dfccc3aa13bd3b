"""The flow table: which Connection a directional 4-tuple key belongs to, and what was closed.

Theory of operation. Each open flow is in ``table`` under both of its directional keys (the
12- or 36-byte address/port slice the decoder gives as ``TcpSegment.key``), so one dict lookup
finds it from either side; the fused record reader looks keys up in the same dict. A flow
leaves the table when it ends (``remove``). With ``midstream`` on, the keys of a flow that
closed by FIN or RST are kept for ``AFTER_CLOSE`` seconds (``closed_recently``), so that the
stray ACKs after a close are orphans and not a new midstream flow; that memory is bounded by
twice the flow limit, oldest first. ``new_streams`` sizes a new flow's two half-streams from the
listeners that accept it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mostool.stack.stream import HalfStream

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mostool.stack.config import MonitorConfig
    from mostool.stack.connection import Connection
    from mostool.stack.engine import Listener

__all__ = ["FlowTable", "AFTER_CLOSE"]

AFTER_CLOSE = 120.0         # seconds a closed 4-tuple's stray ACKs are not a new flow (2 MSL)


class FlowTable:
    """Open flows by directional key, counts of flows, and recently closed keys."""

    __slots__ = ("table", "active", "total", "recently_closed", "_limit")

    def __init__(self, max_flows: int) -> None:
        self.table: dict[bytes, Connection] = {}
        self.active = 0
        self.total = 0
        self.recently_closed: dict[bytes, float] = {}    # midstream: key -> when it closed
        self._limit = 2 * max_flows

    def full(self) -> bool:
        """Whether a new flow must first evict one (``max_flows`` open)."""
        return len(self.table) >= self._limit

    def add(self, conn: Connection) -> None:
        table = self.table
        table[conn.key_c2s] = conn
        table[conn.key_s2c] = conn
        self.active += 1
        self.total += 1

    def remove(self, conn: Connection, closed_at: float | None) -> None:
        """The flow ended; ``closed_at`` (midstream, closed by FIN or RST) keeps its keys."""
        table = self.table
        if table.get(key := conn.key_c2s) is conn:
            del table[key]
        if table.get(key := conn.key_s2c) is conn:
            del table[key]
        self.active -= 1
        if closed_at is not None:
            recent = self.recently_closed
            recent[conn.key_c2s] = recent[conn.key_s2c] = closed_at
            while len(recent) > self._limit:
                del recent[next(iter(recent))]

    def closed_recently(self, key: bytes, now: float) -> bool:
        closed_at = self.recently_closed.get(key)
        return closed_at is not None and now - closed_at <= AFTER_CLOSE

    def open_in_order(self) -> Iterator[Connection]:
        """Every open flow once, by id (order of first packet)."""
        return iter(sorted(dict.fromkeys(self.table.values()), key=_conn_id))


def new_streams(listeners: list[Listener], cfg: MonitorConfig
                ) -> tuple[HalfStream, HalfStream]:
    """A new flow's half-streams: per side the largest buffer any listener asks for, and the
    first overlap policy one sets (else the config's)."""
    sizes = [0, 0]
    overlaps: list[str | None] = [None, None]
    for x in listeners:
        for side in (0, 1):
            size = x.rcvbuf[side]
            size = cfg.rcvbuf if size is None else size
            if size > sizes[side]:
                sizes[side] = size
            if overlaps[side] is None:
                overlaps[side] = x.overlap[side]
    overlaps = [cfg.overlap if o is None else o for o in overlaps]
    # (bufsize, hashing, overlap_last, max_ooo_segments, max_ooo_bytes)
    s0 = HalfStream(sizes[0], cfg.hash_streams, overlaps[0] == "last",
                    cfg.max_ooo_segments, cfg.max_ooo_bytes)
    s1 = HalfStream(sizes[1], cfg.hash_streams, overlaps[1] == "last",
                    cfg.max_ooo_segments, cfg.max_ooo_bytes)
    if cfg.mos_compat:
        s0.rexmit_needs_buffer = s1.rexmit_needs_buffer = True
    return s0, s1


def _conn_id(conn: Connection) -> int:
    return conn.id
