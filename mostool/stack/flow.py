"""Flow handles (what callbacks receive) on the engine's connections (mostool/stack/connection.py).

A ``Flow`` is one listener's handle on a connection (mOS's
MONITOR_STREAM_ACTIVE socket): its own user context, its own peek cursors, its own
subscription set and monitored sides. Two listeners on one flow share the bytes, not cursors.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any, Final

from mostool.errors import BytesLost, MosError
from mostool.events.dispatch import SubscriptionSet
from mostool.events.types import (
    Callback,
    EventType,
    Hook,
    Side,
    TcpState,
)
from mostool.stack.connection import UNCHECKED, Connection, pair_add, pair_set
from mostool.stack.decode import TcpOptions, TcpSegment, format_addr, parse_tcp_options

if TYPE_CHECKING:
    from mostool.stack.engine import Engine, Listener

__all__ = ["Connection", "Flow", "PacketInfo", "StreamView", "BufInfo",
           "SOCKOPT_RCVBUF_CLI", "SOCKOPT_RCVBUF_SVR", "SOCKOPT_OVERLAP_CLI",
           "SOCKOPT_OVERLAP_SVR", "SOCKOPT_STOP_MON", "checked_sockopt", "sockopt_side",
           "pair_set", "pair_add", "UNCHECKED"]

SOCKOPT_RCVBUF_CLI = "rcvbuf_cli"
SOCKOPT_RCVBUF_SVR = "rcvbuf_svr"
SOCKOPT_OVERLAP_CLI = "overlap_cli"
SOCKOPT_OVERLAP_SVR = "overlap_svr"
SOCKOPT_STOP_MON = "stop_monitoring"

_TCP_FLAG_NAMES = "FSRPAUEC"
_CLI: Final = Side.CLI
_SVR: Final = Side.SVR
_ZERO2 = (0, 0)
_FALSE2 = (False, False)

def checked_sockopt(name: str, value: Any) -> int:
    """Check a socket option's value, for a listener or a flow: the side index (0 CLI, 1 SVR)
    a rcvbuf or overlap option applies to, or for stop_monitoring the sides to stop (bit 0 CLI,
    bit 1 SVR). MosError EINVAL for a bad value, ENOPROTOOPT for an unknown name."""
    if name in (SOCKOPT_RCVBUF_CLI, SOCKOPT_RCVBUF_SVR):
        if not isinstance(value, int) or value < 0:
            raise MosError(errno.EINVAL, f"{name} takes a size >= 0, not {value!r}")
        return 0 if name == SOCKOPT_RCVBUF_CLI else 1
    if name in (SOCKOPT_OVERLAP_CLI, SOCKOPT_OVERLAP_SVR):
        if value not in ("first", "last"):
            raise MosError(errno.EINVAL, f"{name} takes 'first' or 'last', not {value!r}")
        return 0 if name == SOCKOPT_OVERLAP_CLI else 1
    if name == SOCKOPT_STOP_MON:
        if not (isinstance(value, int) and 0 <= value <= 2):
            raise MosError(errno.EINVAL, f"{name} takes CLI, SVR or BOTH, not {value!r}")
        return 3 if Side(value) == Side.BOTH else 1 << value
    raise MosError(errno.ENOPROTOOPT, f"unknown socket option {name!r}")


def sockopt_side(name: str) -> int:
    """The side index (0 CLI, 1 SVR) a readable rcvbuf or overlap option is about."""
    if name in (SOCKOPT_RCVBUF_CLI, SOCKOPT_OVERLAP_CLI):
        return 0
    if name in (SOCKOPT_RCVBUF_SVR, SOCKOPT_OVERLAP_SVR):
        return 1
    raise MosError(errno.ENOPROTOOPT, f"unknown socket option {name!r}")


class PacketInfo:
    """The packet that triggered the current callback (mOS ``mtcp_getlastpkt``), decoded lazily."""

    __slots__ = ("seg", "ts", "number", "direction")

    def __init__(self, seg: TcpSegment, ts: float, number: int, direction: Side) -> None:
        self.seg = seg
        self.ts = ts
        self.number = number          # 1-based position in the capture
        self.direction = direction    # the sender's side

    @property
    def src(self) -> str:
        return format_addr(self.seg.src, self.seg.sport)

    @property
    def dst(self) -> str:
        return format_addr(self.seg.dst, self.seg.dport)

    @property
    def seq(self) -> int:
        return self.seg.seq

    @property
    def ack(self) -> int:
        return self.seg.ack

    @property
    def flags(self) -> int:
        return self.seg.flags

    @property
    def flag_names(self) -> str:
        return "".join(c for i, c in enumerate(_TCP_FLAG_NAMES) if self.seg.flags >> i & 1)

    @property
    def window(self) -> int:
        return self.seg.window

    @property
    def payload(self) -> bytes:
        s = self.seg
        return bytes(s.buf[s.payload_off:s.payload_off + s.payload_len])

    @property
    def wire_len(self) -> int:
        """Payload length on the wire (the IP header's); ``len(payload)`` may be less."""
        return self.seg.wire_len

    @property
    def ip_header(self) -> bytes:
        return bytes(self.seg.buf[self.seg.ip_off:self.seg.tcp_off])

    @property
    def tcp_header(self) -> bytes:
        return bytes(self.seg.buf[self.seg.tcp_off:self.seg.payload_off])

    @property
    def frame(self) -> bytes:
        return bytes(self.seg.buf)

    @property
    def options(self) -> TcpOptions:
        return parse_tcp_options(self.seg.options)

    def __repr__(self) -> str:
        return (f"<packet #{self.number} {self.src} > {self.dst} [{self.flag_names}] "
                f"seq={self.seq} ack={self.ack} len={self.wire_len}>")


class BufInfo:
    """A side's buffer (mOS ``tcp_buf_info``), in stream offsets."""

    __slots__ = ("init_seq", "head", "last_byte_read", "next_byte_expected",
                 "last_byte_received")

    def __init__(self, init_seq: int | None, head: int, last_read: int, nxt: int,
                 last_received: int) -> None:
        self.init_seq = init_seq
        self.head = head
        self.last_byte_read = last_read
        self.next_byte_expected = nxt
        self.last_byte_received = last_received

    def __repr__(self) -> str:
        return (f"BufInfo(init_seq={self.init_seq}, head={self.head}, "
                f"last_byte_read={self.last_byte_read}, "
                f"next_byte_expected={self.next_byte_expected}, "
                f"last_byte_received={self.last_byte_received})")


class StreamView:
    """One direction's bytes seen through a flow handle, named by direction, not by side."""

    __slots__ = ("_flow", "_side")

    def __init__(self, flow: Flow, side: Side) -> None:
        self._flow = flow
        self._side = side

    @property
    def side(self) -> Side:
        """The receiving side that holds these bytes (SVR for client->server bytes)."""
        return self._side

    def peek(self, n: int | None = None) -> bytes:
        return self._flow.peek(self._side, n)

    def ppeek(self, offset: int, n: int) -> bytes:
        return self._flow.ppeek(self._side, offset, n)

    @property
    def next_offset(self) -> int:
        """The in-order point: bytes below it have been delivered or skipped."""
        return self._flow._conn_for_read().stream(self._side).nxt

    @property
    def bytes_seen(self) -> int:
        return self._flow._conn_for_read().stream(self._side).delivered

    def buf_info(self) -> BufInfo:
        return self._flow.buf_info(self._side)


class Flow:
    """A listener's handle on one TCP flow; the first argument of every flow callback."""

    __slots__ = ("conn", "listener", "engine", "uctx", "cursors", "subs", "mon", "closed",
                 "overflowed", "__weakref__")

    def __init__(self, conn: Connection, listener: Listener, engine: Engine) -> None:
        self.conn = conn
        self.listener = listener
        self.engine = engine
        self.uctx: Any = None                   # the user's per-flow context
        self.cursors: tuple[int, int] = _ZERO2  # this handle's peek offsets, per side
        self.subs: SubscriptionSet = listener.subs
        self.mon = 3                            # monitored sides: bit 0 CLI, bit 1 SVR
        self.closed = False
        self.overflowed: tuple[bool, bool] = _FALSE2

    # -- identity -----------------------------------------------------------------------------

    @property
    def id(self) -> int:
        return self.conn.id

    @property
    def client(self) -> str:
        return self.conn.client

    @property
    def server(self) -> str:
        return self.conn.server

    def peername(self, side: Side = Side.BOTH) -> tuple[str, int] | tuple[tuple[str, int], ...]:
        """The (address, port) of a side's endpoint; with BOTH, (client, server)."""
        conn = self.conn
        cli = (format_addr(conn.client_addr, 0).rsplit(":", 1)[0].strip("[]"), conn.client_port)
        svr = (format_addr(conn.server_addr, 0).rsplit(":", 1)[0].strip("[]"), conn.server_port)
        if side == Side.BOTH:
            return (cli, svr)
        return cli if self._side(side) == Side.CLI else svr

    @property
    def to_server(self) -> StreamView:
        """Client->server bytes (held by the server's stack, side SVR)."""
        return StreamView(self, Side.SVR)

    @property
    def to_client(self) -> StreamView:
        """Server->client bytes (held by the client's stack, side CLI)."""
        return StreamView(self, Side.CLI)

    @property
    def ended(self) -> bool:
        return self.conn.ended

    @property
    def midstream(self) -> bool:
        return self.conn.midstream

    @property
    def last_ts(self) -> float:
        """Capture time (seconds) of the flow's latest packet: mOS's ``MOS_TIMESTAMP``."""
        return self.conn.last_ts

    @property
    def tunnel(self) -> list[dict[str, object]]:
        """How the flow was carried: the tunnel hops its first packet came through, outermost
        first, as the flow record's ``"tunnel"`` (``tunnels.describe``); [] for a plain flow."""
        return self.conn.tunnel_record()

    def state(self, side: Side) -> TcpState:
        return self.conn.state[self._side(side)]

    def stats(self) -> dict[str, Any]:
        return self.conn.record()

    # -- bytes --------------------------------------------------------------------------------

    def peek(self, side: Side, n: int | None = None) -> bytes:
        """Read up to ``n`` in-order bytes (all available if None) from this handle's cursor on
        ``side`` and advance the cursor. Stops at a gap. Raises BytesLost if unread bytes were
        pushed out of the buffer (the cursor then jumps to the oldest byte still held)."""
        conn = self._conn_for_read()
        s = self._side(side)
        st = conn.stream(s)
        cur = self.cursors[s]
        head = st.head
        if self.overflowed[s]:
            self.overflowed = pair_set(self.overflowed, s, False)
        if cur < head:
            self.cursors = pair_set(self.cursors, s, head)
            lost = head - cur - st.skipped(cur, head)       # gaps were never there to lose
            if lost and st.bufsize and st.chunks:
                raise BytesLost(lost, cur)
            cur = head
        if cur < st.nxt and st.gaps:
            # a skipped gap behind the cursor: jump over it
            for g_off, g_len in st.gaps:
                if g_off <= cur < g_off + g_len:
                    cur = g_off + g_len
        want = st.nxt - cur if n is None else min(n, st.nxt - cur)
        data = st.read(cur, want) if want > 0 else b""
        self.cursors = pair_set(self.cursors, s, cur + len(data))
        return data

    def ppeek(self, side: Side, offset: int, n: int) -> bytes:
        """Read up to ``n`` bytes at stream ``offset`` (0 = first byte after the SYN) without
        moving any cursor; b"" when no buffered or waiting bytes are there."""
        # (a filter's per-chunk call: no method call unless the handle is closed)
        conn = self.conn if not self.closed else self._conn_for_read()
        if offset < 0 or n < 0:
            raise MosError(errno.EINVAL, "offset and length must be >= 0")
        # (the sides the engine passes pick a stream without boxing the pair, compiled)
        st = (conn.stream(0) if side is _CLI else conn.stream(1) if side is _SVR
              else conn.stream(self._side(side)))
        return st.read(offset, n)

    def buf_info(self, side: Side) -> BufInfo:
        conn = self._conn_for_read()
        s = self._side(side)
        st = conn.stream(s)
        last = max([st.nxt] + [a + b for a, b in st.fragments()])
        isn = conn.isn[1 - s]
        return BufInfo(isn if isn >= 0 else None, st.head, self.cursors[s], st.nxt, last)

    def frag_info(self, side: Side) -> list[tuple[int, int]]:
        """Received byte ranges still held: (offset, length) of the buffer and of each run
        waiting behind a hole (mOS ``MOS_FRAGINFO_*BUF``)."""
        conn = self._conn_for_read()
        return conn.stream(self._side(side)).fragments()

    def last_packet(self, side: Side = Side.BOTH) -> PacketInfo:
        """The packet being processed (mOS ``mtcp_getlastpkt``)."""
        conn = self._conn_for_read()
        if side != Side.BOTH:
            self._side(side)
        seg = self.engine.records.segment(conn)
        if seg is None:
            raise MosError(errno.ENODATA, "no packet is being processed for this flow")
        return PacketInfo(seg, conn.last_ts, conn.last_number,
                          Side.CLI if seg.key == conn.key_c2s else Side.SVR)

    # -- options ------------------------------------------------------------------------------

    def setsockopt(self, name: str, value: Any) -> None:
        conn = self._conn_for_read()
        side = checked_sockopt(name, value)
        if name == SOCKOPT_STOP_MON:
            self.mon &= ~side
            self.engine.monitoring_changed(conn)
        elif name in (SOCKOPT_RCVBUF_CLI, SOCKOPT_RCVBUF_SVR):
            st = conn.own_stream(side)
            st.bufsize = value
            if value == 0:
                st.drop_buffer()
                st.keep_bytes = st.hasher is not None
            else:
                st.keep_bytes = True
                if st.chunks:
                    st._trim()
        else:
            conn.own_stream(side).overlap_last = value == "last"

    def getsockopt(self, name: str) -> Any:
        conn = self._conn_for_read()
        if name == SOCKOPT_STOP_MON:
            return self.mon
        st = conn.stream(sockopt_side(name))
        if name in (SOCKOPT_RCVBUF_CLI, SOCKOPT_RCVBUF_SVR):
            return st.bufsize
        return "last" if st.overlap_last else "first"

    def stop_monitoring(self, side: Side = Side.BOTH) -> None:
        """Stop this handle's callbacks for a side; a flow no handle monitors stops being
        tracked (ON_CONN_END reason "stopped")."""
        self.setsockopt(SOCKOPT_STOP_MON, side)

    # -- per-flow registration ----------------------------------------------------------------

    def on(self, event: EventType, hook: Hook | None = None,
           callback: Callback | None = None) -> Any:
        """Register a callback for this flow only (decorator when ``callback`` is omitted)."""
        def register(cb: Callback) -> Callback:
            self._check_open()
            entry = self.listener.registration(event, hook, cb)
            self.subs = self.engine.registry.with_added(self.subs, [entry])
            self.conn.refresh_masks()
            return cb
        return register(callback) if callback is not None else register

    def off(self, event: EventType, hook: Hook | None = None,
            callback: Callback | None = None) -> None:
        """Remove this flow's registration(s) of ``event`` at ``hook`` (all if no callback)."""
        self._check_open()
        entries = self.subs.matching(event, event.default_hook if hook is None else hook,
                                     callback)
        self.subs = self.engine.registry.with_removed(self.subs, entries)
        self.conn.refresh_masks()

    def raise_event(self, child: EventType) -> None:
        """Raise a floating event from inside a UDE filter (mOS ``mtcp_raise_event``)."""
        self.engine.dispatcher.raise_event(child)

    # -- misuse checks ------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.closed:
            raise MosError(errno.EBADF, f"flow {self.conn.id} handle is closed")

    def _conn_for_read(self) -> Connection:
        if self.closed:
            raise MosError(errno.EBADF, f"flow {self.conn.id} handle is closed")
        return self.conn

    @staticmethod
    def _side(side: Side | int) -> Side:
        if side is _CLI or side is _SVR:    # what the engine passes: no enum lookup per call
            return side
        if side not in (0, 1):
            raise MosError(errno.EINVAL, f"side must be CLI or SVR here, not {side!r}")
        return Side(side)

    def __repr__(self) -> str:
        c = self.conn
        return (f"<Flow {c.id} {c.client} > {c.server} {c.state[0].name}/{c.state[1].name}"
                f"{' ended' if c.ended else ''}>")
