"""Connections (the engine's per-flow state) and Flow handles (what callbacks receive).

A ``Connection`` is one TCP flow as the engine tracks it: two emulated stacks and the two
half-streams they receive. A ``Flow`` is one listener's handle on a connection (mOS's
MONITOR_STREAM_ACTIVE socket): its own user context, its own peek cursors, its own
subscription set and monitored sides. Two listeners on one flow share the bytes, not cursors.
"""

from __future__ import annotations

import errno
import json
from json.encoder import encode_basestring_ascii
from typing import TYPE_CHECKING, Any, TypeVar

from mostool.errors import BytesLost, MosError
from mostool.events.dispatch import Registration, SubscriptionSet
from mostool.events.types import (
    ERROR_BIT,
    NEW_DATA_BIT,
    PKT_IN_BIT,
    Callback,
    EventType,
    Hook,
    Side,
    TcpState,
)
from mostool.stack.decode import TcpOptions, TcpSegment, format_addr, parse_tcp_options
from mostool.stack.stream import HalfStream
from mostool.stack.zeek import ZeekRecorder

if TYPE_CHECKING:
    from mostool.stack.engine import Engine, Listener

__all__ = ["Connection", "Flow", "PacketInfo", "StreamView", "BufInfo",
           "SOCKOPT_RCVBUF_CLI", "SOCKOPT_RCVBUF_SVR", "SOCKOPT_OVERLAP_CLI",
           "SOCKOPT_OVERLAP_SVR", "SOCKOPT_STOP_MON", "pair_set", "pair_add"]

SOCKOPT_RCVBUF_CLI = "rcvbuf_cli"
SOCKOPT_RCVBUF_SVR = "rcvbuf_svr"
SOCKOPT_OVERLAP_CLI = "overlap_cli"
SOCKOPT_OVERLAP_SVR = "overlap_svr"
SOCKOPT_STOP_MON = "stop_monitoring"

_TCP_FLAG_NAMES = "FSRPAUEC"
_CLI, _SVR = Side.CLI, Side.SVR

_T = TypeVar("_T")
# Per-side values that change seldom or never (ISNs, FIN sequence numbers, anomaly counts, peek
# cursors) are immutable pairs, shared until a writer replaces its flow's pair (pair_set,
# pair_add): readers index them as before, and a flow holds no list of its own for each (a
# tuple of ints also leaves the cyclic GC's tracking). No writer is on the engine's fast path.
_NONE2: tuple[None, None] = (None, None)
_ZERO2 = (0, 0)
# bad_checksums of a flow whose checksums are not verified (checksums="skip"): reported as null
UNCHECKED = (-1, -1)
_FALSE2 = (False, False)
_NO_MASKS = (0, 0, 0)
_LISTEN = TcpState.LISTEN
_STATE_NAMES = {s: s.name for s in TcpState}     # without the enum's per-access name lookup
_INF = float("inf")


def pair_set(pair: tuple[_T, _T], side: int, value: _T) -> tuple[_T, _T]:
    """``pair`` with ``pair[side]`` replaced by ``value``."""
    return (value, pair[1]) if side == 0 else (pair[0], value)


def pair_add(pair: tuple[int, int], side: int, n: int = 1) -> tuple[int, int]:
    """``pair`` with ``n`` added to ``pair[side]``."""
    return (pair[0] + n, pair[1]) if side == 0 else (pair[0], pair[1] + n)


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


class Connection:
    """Engine state of one TCP flow."""

    __slots__ = (
        "id", "key_c2s", "key_s2c", "client_addr", "server_addr", "client_port", "server_port",
        "ip_version", "state", "isn", "fin_seq", "wscale", "window", "streams", "packets",
        "payload_bytes", "bad_checksums", "valid_checksum", "dropped", "first_packet", "start",
        "last_ts", "end_ts", "end_reason", "rst_seen", "midstream", "handles", "masks", "ended",
        "last_seg", "last_number", "fast", "fast_raise", "control_rexmit", "alt_isn", "keepalives",
        "tw_deadline", "stopped", "bad_rst", "late", "rst_payload", "set_aside", "held",
        "bad_fin", "handles_rev", "zeek",
    )

    def __init__(self, conn_id: int, seg: TcpSegment, client_is_sender: bool, number: int,
                 ts: float, streams: tuple[HalfStream, HalfStream]) -> None:
        self.id = conn_id
        k = seg.key
        n = len(seg.src)
        reverse = k[n:2 * n] + k[:n] + k[2 * n + 2:2 * n + 4] + k[2 * n:2 * n + 2]
        if client_is_sender:
            self.key_c2s, self.key_s2c = k, reverse
            self.client_addr, self.client_port = seg.src, seg.sport
            self.server_addr, self.server_port = seg.dst, seg.dport
        else:
            self.key_c2s, self.key_s2c = reverse, k
            self.client_addr, self.client_port = seg.dst, seg.dport
            self.server_addr, self.server_port = seg.src, seg.sport
        self.ip_version = seg.ip_version
        self.state = [_LISTEN, _LISTEN]       # indexed by Side
        # the tuples below are replaced, not changed: see pair_set
        self.isn: tuple[int | None, int | None] = _NONE2     # each side's ISN (as sender)
        self.fin_seq: tuple[int | None, int | None] = _NONE2  # seq of each side's FIN
        self.wscale: tuple[int, int] = _ZERO2
        self.window = [65535, 65535]
        self.streams = streams            # streams[side] = bytes that side's stack received
        self.packets = [0, 0]             # indexed by the sender's side
        self.payload_bytes = [0, 0]
        self.bad_checksums: tuple[int, int] = _ZERO2
        self.valid_checksum = [False, False]
        self.dropped: tuple[int, int] = _ZERO2
        self.control_rexmit: tuple[int, int] = _ZERO2  # SYN/FIN rexmits, by receiving side
        self.keepalives: tuple[int, int] = _ZERO2
        self.bad_rst = 0
        self.bad_fin = 0
        self.late: tuple[int, int] = _ZERO2
        self.rst_payload: tuple[int, int] = _ZERO2
        self.alt_isn: tuple[int, ...] = ()
        self.first_packet = number
        self.start = ts
        self.last_ts = ts
        self.end_ts = ts
        self.end_reason = ""
        self.rst_seen = False
        self.midstream = False
        self.handles: list[Flow] = []
        # handles in reverse, for server-sent packets
        self.handles_rev: list[Flow] = self.handles
        self.masks: tuple[int, int, int] = _NO_MASKS   # union of the handles' masks, per hook
        self.ended = False
        self.stopped = False
        # the packet being (or last) processed; an int is its record offset in the buffer
        # Engine.process_records read it from (decoded on demand: Engine.record_segment)
        self.last_seg: TcpSegment | int | None = None
        self.last_number = 0
        self.fast = True                  # the fast path may take its packets (refresh_masks)
        self.fast_raise = False           # ... and has events to raise for them
        self.held = 0                     # bytes its buffers and out-of-order runs hold
        # bad-checksum segments dropped, per receiving side: (seq, bytes or None, length)
        self.set_aside: tuple[list[tuple[int, bytes | None, int]],
                              list[tuple[int, bytes | None, int]]] | None = None
        self.tw_deadline: float | None = None
        self.zeek = ZeekRecorder()        # Zeek's history and endpoint states (stack/zeek.py)

    @property
    def client(self) -> str:
        return format_addr(self.client_addr, self.client_port)

    @property
    def server(self) -> str:
        return format_addr(self.server_addr, self.server_port)

    def refresh_masks(self) -> None:
        m0 = m1 = m2 = 0
        for h in self.handles:
            if h.mon:
                hm = h.subs.masks
                m0 |= hm[0]
                m1 |= hm[1]
                m2 |= hm[2]
        self.masks = (m0, m1, m2) if m0 | m1 | m2 else _NO_MASKS
        # the engine's fast path takes the flow's plain in-order packets unless a handle wants
        # ON_ERROR or ON_PKT_IN at HK_SND (or NULL); it raises ON_PKT_IN at HK_RCV and
        # ON_CONN_NEW_DATA itself, after the bytes are in, as the general path would
        # (Engine._fast_events)
        self.fast = not (m0 | m1 | m2) & ERROR_BIT and not (m0 | m2) & PKT_IN_BIT
        self.fast_raise = bool(m1 & PKT_IN_BIT or m0 & NEW_DATA_BIT)

    def direction_record(self, sender: int) -> dict[str, Any]:
        st = self.streams[1 - sender]
        return {
            "packets": self.packets[sender],
            "payload_bytes": self.payload_bytes[sender],
            "bytes": st.delivered,
            "sha256": st.digest(),
            "gaps": len(st.gaps),
            "gap_bytes": st.gap_bytes,
            "rexmit": st.rexmit + self.control_rexmit[1 - sender],
            "overlap_conflicts": st.conflicts,
            "bad_checksums": bad if (bad := self.bad_checksums[sender]) >= 0 else None,
        }

    def record(self) -> dict[str, Any]:
        """The flow's summary, as `mostool flows` prints it."""
        return {
            "id": self.id,
            "client": self.client,
            "server": self.server,
            "first_packet": self.first_packet,
            "start": self.start,
            "end": self.end_ts,
            "end_reason": self.end_reason,
            "client_state": _STATE_NAMES[self.state[0]],
            "server_state": _STATE_NAMES[self.state[1]],
            "midstream": self.midstream,
            **self.zeek_fields(),
            "c2s": self.direction_record(0),
            "s2c": self.direction_record(1),
        }

    def zeek_fields(self) -> dict[str, Any]:
        """What Zeek's conn.log says of this connection (stack/zeek.py)."""
        s2c, c2s = self.streams
        return self.zeek.fields(self.end_ts - self.start, c2s, s2c)

    def record_json(self) -> str:
        """``json.dumps(self.record())``, formatted directly (a third of the cost): the same
        bytes, as every value is an int, a finite float, an ASCII address, a state name, a hex
        digest or null; anything else (a timestamp that is not a finite float) goes through
        json.dumps."""
        start, end, mid = self.start, self.end_ts, self.midstream
        if not (type(start) is float and type(end) is float and type(mid) is bool
                and -_INF < start < _INF and -_INF < end < _INF):
            return json.dumps(self.record())
        state = self.state
        s2c, c2s = self.streams         # c2s bytes are received by the server's stack
        zk = self.zeek
        zk.gaps(len(c2s.gaps), len(s2c.gaps))
        orig = c2s.delivered + c2s.gap_bytes
        resp = s2c.delivered + s2c.gap_bytes
        h0, h1 = c2s.hasher, s2c.hasher
        d0 = "null" if h0 is None else '"' + h0.hexdigest() + '"'
        d1 = "null" if h1 is None else '"' + h1.hexdigest() + '"'
        packets, payload = self.packets, self.payload_bytes
        rexmit = self.control_rexmit
        bad0, bad1 = self.bad_checksums
        # json.dumps writes a finite float as float.__repr__ (!r), an int as str (as {}), and
        # a hex digest as is between quotes
        return (f'{{"id": {self.id}, '
                f'"client": "{format_addr(self.client_addr, self.client_port)}", '
                f'"server": "{format_addr(self.server_addr, self.server_port)}", '
                f'"first_packet": {self.first_packet}, "start": {start!r}, "end": {end!r}, '
                f'"end_reason": {encode_basestring_ascii(self.end_reason)}, '
                f'"client_state": "{_STATE_NAMES[state[0]]}", '
                f'"server_state": "{_STATE_NAMES[state[1]]}", '
                f'"midstream": {"true" if mid else "false"}, '
                f'"duration": {end - start!r}, "orig_bytes": {orig}, "resp_bytes": {resp}, '
                f'"missed_bytes": {c2s.gap_bytes + s2c.gap_bytes}, '
                f'"conn_state": "{zk.conn_state(orig, resp)}", "history": "{zk.history}", '
                f'"c2s": {{"packets": {packets[0]}, "payload_bytes": {payload[0]}, '
                f'"bytes": {c2s.delivered}, '
                f'"sha256": {d0}, '
                f'"gaps": {len(c2s.gaps)}, "gap_bytes": {c2s.gap_bytes}, '
                f'"rexmit": {c2s.rexmit + rexmit[1]}, "overlap_conflicts": {c2s.conflicts}, '
                f'"bad_checksums": {bad0 if bad0 >= 0 else "null"}}}, '
                f'"s2c": {{"packets": {packets[1]}, "payload_bytes": {payload[1]}, '
                f'"bytes": {s2c.delivered}, '
                f'"sha256": {d1}, '
                f'"gaps": {len(s2c.gaps)}, "gap_bytes": {s2c.gap_bytes}, '
                f'"rexmit": {s2c.rexmit + rexmit[0]}, "overlap_conflicts": {s2c.conflicts}, '
                f'"bad_checksums": {bad1 if bad1 >= 0 else "null"}}}}}')


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
        return self._flow._conn_for_read().streams[self._side].nxt

    @property
    def bytes_seen(self) -> int:
        return self._flow._conn_for_read().streams[self._side].delivered

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
        st = conn.streams[s]
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
        return conn.streams[self._side(side)].read(offset, n)

    def buf_info(self, side: Side) -> BufInfo:
        conn = self._conn_for_read()
        s = self._side(side)
        st = conn.streams[s]
        last = max([st.nxt] + [a + b for a, b in st.fragments()])
        return BufInfo(conn.isn[1 - s], st.head, self.cursors[s], st.nxt, last)

    def frag_info(self, side: Side) -> list[tuple[int, int]]:
        """Received byte ranges still held: (offset, length) of the buffer and of each run
        waiting behind a hole (mOS ``MOS_FRAGINFO_*BUF``)."""
        conn = self._conn_for_read()
        return conn.streams[self._side(side)].fragments()

    def last_packet(self, side: Side = Side.BOTH) -> PacketInfo:
        """The packet being processed (mOS ``mtcp_getlastpkt``)."""
        conn = self._conn_for_read()
        if side != Side.BOTH:
            self._side(side)
        seg = self.engine.record_segment(conn)
        if seg is None:
            raise MosError(errno.ENODATA, "no packet is being processed for this flow")
        return PacketInfo(seg, conn.last_ts, conn.last_number,
                          Side.CLI if seg.key == conn.key_c2s else Side.SVR)

    # -- options ------------------------------------------------------------------------------

    def setsockopt(self, name: str, value: Any) -> None:
        conn = self._conn_for_read()
        if name in (SOCKOPT_RCVBUF_CLI, SOCKOPT_RCVBUF_SVR):
            if not isinstance(value, int) or value < 0:
                raise MosError(errno.EINVAL, f"{name} takes a size >= 0, not {value!r}")
            st = conn.streams[0 if name == SOCKOPT_RCVBUF_CLI else 1]
            st.bufsize = value
            if value == 0:
                st.drop_buffer()
                st.keep_bytes = st.hasher is not None
            else:
                st.keep_bytes = True
                if st.chunks:
                    st._trim()
        elif name in (SOCKOPT_OVERLAP_CLI, SOCKOPT_OVERLAP_SVR):
            if value not in ("first", "last"):
                raise MosError(errno.EINVAL, f"{name} takes 'first' or 'last', not {value!r}")
            conn.streams[0 if name == SOCKOPT_OVERLAP_CLI else 1].overlap_last = value == "last"
        elif name == SOCKOPT_STOP_MON:
            side = Side(value) if isinstance(value, int) and 0 <= value <= 2 else None
            if side is None:
                raise MosError(errno.EINVAL, f"{name} takes CLI, SVR or BOTH, not {value!r}")
            self.mon &= ~(3 if side == Side.BOTH else 1 << side)
            self.engine.monitoring_changed(conn)
        else:
            raise MosError(errno.ENOPROTOOPT, f"unknown socket option {name!r}")

    def getsockopt(self, name: str) -> Any:
        conn = self._conn_for_read()
        if name in (SOCKOPT_RCVBUF_CLI, SOCKOPT_RCVBUF_SVR):
            return conn.streams[0 if name == SOCKOPT_RCVBUF_CLI else 1].bufsize
        if name in (SOCKOPT_OVERLAP_CLI, SOCKOPT_OVERLAP_SVR):
            st = conn.streams[0 if name == SOCKOPT_OVERLAP_CLI else 1]
            return "last" if st.overlap_last else "first"
        if name == SOCKOPT_STOP_MON:
            return self.mon
        raise MosError(errno.ENOPROTOOPT, f"unknown socket option {name!r}")

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
        entries = self._matching(event, hook, callback)
        self.subs = self.engine.registry.with_removed(self.subs, entries)
        self.conn.refresh_masks()

    def _matching(self, event: EventType, hook: Hook | None,
                  callback: Callback | None) -> list[Registration]:
        hook_ = event.default_hook if hook is None else hook
        return [e for e in self.subs.entries
                if e[0] is event and e[1] == hook_ and (callback is None or e[2] == callback)]

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
