"""What ``Monitor.on_flow_end`` hooks receive: a typed, read-only summary of a flow that ended.

A ``FlowSummary`` is made once per ended flow (only when some hook is registered) and reads the
engine's record of the flow when asked: the engine has already let go of the flow's bytes, and
what is read here (counts, gaps, digests, states) does not change any more. ``record()`` is the
flow's line in ``mostool flows`` (a dict) and ``record_json()`` the same line as JSON; the typed
properties say the same things one by one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mostool.events.types import TcpState

if TYPE_CHECKING:
    from mostool.stack.connection import Connection

__all__ = ["FlowSummary", "DirectionSummary"]


class DirectionSummary:
    """One direction of an ended flow: what its sender sent and its receiver's stream got."""

    __slots__ = ("_conn", "_sender")

    def __init__(self, conn: Connection, sender: int) -> None:
        self._conn = conn
        self._sender = sender

    @property
    def packets(self) -> int:
        """Packets the sender sent (as tracked)."""
        return int(self._conn.packets[self._sender])

    @property
    def payload_bytes(self) -> int:
        """Payload bytes the sender's packets carried, retransmissions included."""
        return int(self._conn.payload_bytes[self._sender])

    @property
    def bytes(self) -> int:
        """Bytes delivered in order to the receiving side's stream (gaps excluded)."""
        return int(self._conn.stream(1 - self._sender).delivered)

    @property
    def gaps(self) -> list[tuple[int, int]]:
        """The holes the stream was delivered over: (stream offset, length) each."""
        return [(int(off), int(n)) for off, n in self._conn.stream(1 - self._sender).gaps]

    @property
    def gap_bytes(self) -> int:
        return int(self._conn.stream(1 - self._sender).gap_bytes)

    @property
    def sha256(self) -> str | None:
        """Hex SHA-256 of the delivered bytes, when digests are on (``flows --hash``)."""
        digest = self._conn.stream(1 - self._sender).digest()
        return None if digest is None else str(digest)

    def record(self) -> dict[str, Any]:
        """This direction's part of the flow record (``c2s`` / ``s2c``)."""
        return self._conn.direction_record(self._sender)

    def __repr__(self) -> str:
        return f"<DirectionSummary packets={self.packets} bytes={self.bytes} gaps={len(self.gaps)}>"


class FlowSummary:
    """A flow that ended, as ``Monitor.on_flow_end`` hooks receive it."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    @property
    def id(self) -> int:
        """The flow's number, as ``mostool flows`` and the Flow handles number it."""
        return int(self._conn.id)

    @property
    def client(self) -> str:
        """``address:port`` of the side that opened the flow (IPv6 in brackets)."""
        return str(self._conn.client)

    @property
    def server(self) -> str:
        return str(self._conn.server)

    @property
    def first_packet(self) -> int:
        """The number of the flow's first packet in the capture (from 1)."""
        return int(self._conn.first_packet)

    @property
    def start(self) -> float:
        """Capture time of the flow's first packet."""
        return float(self._conn.start)

    @property
    def end(self) -> float:
        """Capture time of the flow's last packet."""
        return float(self._conn.end_ts)

    @property
    def end_reason(self) -> str:
        """Why it ended: fin, rst, timeout, evicted, stopped, eof, ... (see ON_CONN_END)."""
        return str(self._conn.end_reason)

    @property
    def client_state(self) -> TcpState:
        return TcpState(self._conn.state[0])

    @property
    def server_state(self) -> TcpState:
        return TcpState(self._conn.state[1])

    @property
    def midstream(self) -> bool:
        """Picked up without its handshake (``MonitorConfig(midstream=True)``)."""
        return bool(self._conn.midstream)

    @property
    def c2s(self) -> DirectionSummary:
        """Client to server: the client's packets, the server's received stream."""
        return DirectionSummary(self._conn, 0)

    @property
    def s2c(self) -> DirectionSummary:
        return DirectionSummary(self._conn, 1)

    @property
    def packets(self) -> int:
        """Packets of both directions."""
        return int(self._conn.packets[0] + self._conn.packets[1])

    def record(self) -> dict[str, Any]:
        """The flow's record, as ``mostool flows`` writes it (a fresh dict)."""
        return self._conn.record()

    def record_json(self) -> str:
        """``json.dumps(self.record())``, byte for byte, made faster."""
        return self._conn.record_json()

    def __repr__(self) -> str:
        return (f"<FlowSummary {self.id} {self.client} -> {self.server} "
                f"{self.end_reason}>")
