"""Connections: one TCP flow as the engine tracks it.

A ``Connection`` holds two emulated stacks (states, ISNs, FIN sequence numbers, anomaly counts)
and the half-streams they receive (each made when its side first has something to keep: see
``stream``, ``own_stream`` and stack/stream_spec.py; the start sequences are the connection's,
``base``), the flow's handles (``mostool.stack.flow.Flow``, one per listener) and the union of
their subscription masks, and its Zeek conn.log bookkeeping. Per-side values that seldom change
are immutable pairs (``pair_set``, ``pair_add``). ``record()`` and ``record_json()`` are the
flow's summary (``mostool flows``); the JSON is written by hand, as
``json.dumps`` would, because it runs once per flow on every capture.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii
from typing import TYPE_CHECKING, Any, Final, TypeVar

from mypy_extensions import i64

from mostool.events.types import ERROR_BIT, NEW_DATA_BIT, PKT_IN_BIT, TcpState
from mostool.stack.connection_extra import ConnRare
from mostool.stack.decode import TcpSegment, format_addr
from mostool.stack.stream import HalfStream, seq_offset
from mostool.stack.stream_spec import StreamSpec
from mostool.stack.tunnels import describe
from mostool.stack.zeek import ZeekRecorder

if TYPE_CHECKING:
    from mostool.stack.flow import Flow

__all__ = ["Connection", "UNCHECKED", "pair_set", "pair_add"]

_T = TypeVar("_T")
# Per-side values that change seldom or never (ISNs, FIN sequence numbers, anomaly counts, peek
# cursors) are immutable pairs, shared until a writer replaces its flow's pair (pair_set,
# pair_add): readers index them as before, and a flow holds no list of its own for each (a
# tuple of ints also leaves the cyclic GC's tracking). No writer is on the engine's fast path.
_NONE2: Final[tuple[None, None]] = (None, None)
# ints, not optional ints: a compiled flow holds them unboxed, in place (-1: none)
_NO_ISN2: Final = (-1, -1)
_ZERO2: Final = (0, 0)
# bad_checksums of a flow whose checksums are not verified (checksums="skip"): reported as null
UNCHECKED: Final = (-1, -1)
_FALSE2: Final = (False, False)
_NO_MASKS: Final = (0, 0, 0)
_LISTEN: Final = TcpState.LISTEN
_LISTEN2: Final = (_LISTEN, _LISTEN)
_WINDOW2: Final = (65535, 65535)
_NO_TS2: Final = (-1, -1)
_STATE_NAMES: Final = {s: s.name for s in TcpState}     # without the enum's per-access name lookup
_INF: Final = float("inf")


def pair_set(pair: tuple[_T, _T], side: int, value: _T) -> tuple[_T, _T]:
    """``pair`` with ``pair[side]`` replaced by ``value``."""
    return (value, pair[1]) if side == 0 else (pair[0], value)


def pair_add(pair: tuple[int, int], side: int, n: int = 1) -> tuple[int, int]:
    """``pair`` with ``n`` added to ``pair[side]``."""
    return (pair[0] + n, pair[1]) if side == 0 else (pair[0], pair[1] + n)


class Connection(ConnRare):
    """Engine state of one TCP flow. What few flows need is ConnRare's (connection_extra.py):
    ``fin_seq`` (seq of each side's FIN), ``bad_checksums`` (per sender; UNCHECKED when
    checksums are not verified), ``dropped`` (bad-checksum segments dropped, per sender),
    ``control_rexmit`` (SYN/FIN retransmissions, by receiving side), ``keepalives``, ``late``,
    ``rst_payload``, ``bad_rst``, ``bad_fin``, ``alt_isn``, ``set_aside`` (bad-checksum segments
    dropped, per receiving side: (seq, bytes or None, length)), ``rejected_ack`` ((side, ack)
    of the last segment a SYN_SENT side rejected: its RST reply has seq = ack), ``tunnel`` (the
    hops its first packet came through, or None), ``tw_deadline`` (when a flow in TIME_WAIT
    ends) and ``rst_pending`` (an accepted RST not yet confirmed: its packet number, its
    sender, the two states before it, its offset in its receiver's stream; the flow lingers
    for a grace period, stack/resets.py)."""

    __slots__ = (
        "id", "key_c2s", "key_s2c", "client_port", "server_port", "last_linktype",
        "ip_version", "state", "isn", "wscale", "window", "base", "spec", "s0", "s1",
        "packets",
        "payload_bytes", "valid_checksum", "first_packet", "start",
        "last_ts", "end_ts", "end_reason", "rst_seen", "midstream", "handles", "masks", "ended",
        "last_seg", "last_off", "last_number", "fast", "fast_raise", "stopped", "held",
        "handles_rev", "zeek", "syn_ts_first", "syn_ts_latest", "idle_since",
    )

    def __init__(self, conn_id: int, seg: TcpSegment, client_is_sender: bool, number: int,
                 ts: float, spec: StreamSpec) -> None:
        super().__init__()
        self.id = conn_id
        k = seg.key
        n = len(seg.src)
        # a tunnelled flow's key ends with its tunnel's key, the same both ways
        reverse = k[n:2 * n] + k[:n] + k[2 * n + 2:2 * n + 4] + k[2 * n:2 * n + 2] + k[2 * n + 4:]
        self.tunnel = seg.tunnel          # the hops its first packet came through, or None
        # (the addresses are read from key_c2s when asked: client_addr, server_addr)
        if client_is_sender:
            self.key_c2s, self.key_s2c = k, reverse
            self.client_port, self.server_port = seg.sport, seg.dport
        else:
            self.key_c2s, self.key_s2c = reverse, k
            self.client_port, self.server_port = seg.dport, seg.sport
        self.ip_version = seg.ip_version
        self.state: tuple[TcpState, TcpState] = _LISTEN2     # indexed by Side
        # the tuples below are replaced, not changed: see pair_set
        self.isn: tuple[int, int] = _NO_ISN2     # each side's ISN (as sender); -1: none yet
        self.wscale: tuple[int, int] = _ZERO2
        self.window: tuple[int, int] = _WINDOW2
        # What each side's stack receives: s0, s1 (stream(side)) are its own HalfStream, made
        # when the side first has something to keep (own_stream; an idle side never does), and
        # until then the spec's shared empty stream, which only readers may see; base[side] is
        # the sequence number of that stream's offset 0 (-1: none yet), kept here so that a
        # side needs no stream of its own to map sequence numbers (offset)
        self.base: tuple[int, int] = _NO_ISN2
        self.spec = spec                  # how its streams are made (stack/stream_spec.py)
        self.s0 = spec.empty0
        self.s1 = spec.empty1
        self.packets: tuple[int, int] = _ZERO2          # indexed by the sender's side
        self.payload_bytes: tuple[int, int] = _ZERO2
        self.first_packet = number
        self.start = ts
        self.last_ts = ts
        self.end_ts = ts
        self.idle_since = ts              # last_ts when put on the idle heap (stack/timers.py)
        self.end_reason = ""
        # (a tuple: a single listener's one handle costs a third of a list's bytes)
        self.handles: tuple[Flow, ...] = ()
        # handles in reverse, for server-sent packets
        self.handles_rev: tuple[Flow, ...] = self.handles
        self.masks: tuple[int, int, int] = _NO_MASKS   # union of the handles' masks, per hook
        # the packet being (or last) processed: bytes its frame (of link type last_linktype)
        # once it has been processed (Engine.route), or, with last_seg None, last_off >= 0 its
        # record offset in the buffer Engine.process_records read it from (a native int: an
        # object field would box it per packet); both decoded on demand (RecordRefs.segment),
        # so that an idle flow does not keep a decoded segment
        self.last_seg: TcpSegment | bytes | None = None
        self.last_off: i64 = -1
        self.last_linktype = 0
        self.last_number = 0
        self.held = 0                     # bytes its buffers and out-of-order runs hold
        # each side's SYN timestamps (first TSval, latest TSval; -1: its SYNs carried none),
        # for tcp.ts_echo_rejected: ints, not tuples, so that a compiled flow holds them in place
        self.syn_ts_first: tuple[int, int] = _NO_TS2
        self.syn_ts_latest: tuple[int, int] = _NO_TS2
        # (tunnel, tw_deadline and rst_pending are ConnRare's: None for most flows)
        self.zeek = ZeekRecorder()        # Zeek's history and endpoint states (stack/zeek.py)
        # the flags together: a compiled Connection packs them in one word
        self.rst_seen = False
        self.midstream = False
        self.ended = False
        self.stopped = False
        self.fast = True                  # the fast path may take its packets (refresh_masks)
        self.fast_raise = False           # ... and has events to raise for them
        self.valid_checksum: tuple[bool, bool] = _FALSE2

    def __lt__(self, other: Connection) -> bool:
        """Order on the idle heap (stack/timers.py): by ``idle_since``, then by id."""
        a, b = self.idle_since, other.idle_since
        return a < b or (a == b and self.id < other.id)

    def __hash__(self) -> int:
        # by identity, as before __lt__ (a compiled class with a comparison loses its hash)
        return object.__hash__(self)

    def stream(self, side: int) -> HalfStream:
        """What side ``side``'s stack received, to read: its stream, or when it has none the
        spec's shared empty one, which answers as a stream before its first byte. Never write
        to what this returns (own_stream)."""
        return self.s0 if side == 0 else self.s1

    def own_stream(self, side: int) -> HalfStream:
        """Side ``side``'s stream, to write to: made on first use."""
        st = self.s0 if side == 0 else self.s1
        if st.shared:
            st = self.spec.make(side)
            if side == 0:
                self.s0 = st
            else:
                self.s1 = st
        return st

    def made_streams(self) -> list[HalfStream]:
        """The streams made so far (none, one or both sides')."""
        return [st for st in (self.s0, self.s1) if not st.shared]

    def base_of(self, side: int) -> int:
        """``base[side]`` (compiled, without boxing the pair)."""
        return self.base[0] if side == 0 else self.base[1]

    def set_base(self, side: int, seq: int) -> None:
        self.base = (seq, self.base[1]) if side == 0 else (self.base[0], seq)

    def offset(self, side: int, seq: int) -> int:
        """The offset of ``seq`` in what side ``side`` receives, unwrapped to the 2**31 window
        around its in-order point (0 while it has no base)."""
        if side == 0:
            return seq_offset(seq, self.base[0], self.s0.nxt)
        return seq_offset(seq, self.base[1], self.s1.nxt)

    @property
    def client_addr(self) -> bytes:
        """The client's address (4 or 16 bytes), the start of ``key_c2s``."""
        return self.key_c2s[:4 if self.ip_version == 4 else 16]

    @property
    def server_addr(self) -> bytes:
        n = 4 if self.ip_version == 4 else 16
        return self.key_c2s[n:2 * n]

    @property
    def client(self) -> str:
        return format_addr(self.client_addr, self.client_port)

    @property
    def server(self) -> str:
        return format_addr(self.server_addr, self.server_port)

    def count(self, snd: int, wire: int, window: int) -> None:
        """A packet ``snd`` sent with ``wire`` payload bytes and this window field: counted."""
        # pairs written per packet: a compiled flow holds them unboxed, in place (no list)
        p, b = self.packets, self.payload_bytes
        if snd:
            self.packets = (p[0], p[1] + 1)
            self.payload_bytes = (b[0], b[1] + wire)
            self.window = (self.window[0], window)
        else:
            self.packets = (p[0] + 1, p[1])
            self.payload_bytes = (b[0] + wire, b[1])
            self.window = (window, self.window[1])

    def quiet_packet(self, snd: int, flags: int, seq: int, window: int, off: int, number: int,
                     now: float, verdict: bool | None) -> None:
        """A packet without payload the in-place readers took (records.py, conditions 8 and
        9) at record offset ``off``: counted, remembered, its checksum ``verdict`` noted and
        its flags written into the Zeek history, as the general path's ``_packet`` does."""
        self.last_ts = now
        self.count(snd, 0, window)
        self.last_seg = None
        self.last_off = off
        self.last_number = number
        if verdict:
            self.checksum_valid(snd)
        self.zeek.packet(snd, flags, seq, 0, window, self)

    def checksum_valid(self, snd: int) -> None:
        """A packet ``snd`` sent had a valid checksum."""
        if not self.valid_checksum[snd]:
            self.valid_checksum = pair_set(self.valid_checksum, snd, True)

    def set_handles(self, handles: list[Flow]) -> None:
        """The flow's handles, one per listener, in registration order."""
        self.handles = (handles[0],) if len(handles) == 1 else tuple(handles)
        self.handles_rev = self.handles[::-1] if len(handles) > 1 else self.handles

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
        st = self.stream(1 - sender)
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

    def tunnel_record(self) -> list[dict[str, object]]:
        """How the flow was carried: its first packet's tunnel hops, outermost first
        (``tunnels.describe``); [] for a plain flow."""
        return [describe(hop) for hop in self.tunnel] if self.tunnel else []

    def record(self) -> dict[str, Any]:
        """The flow's summary, as `mostool flows` prints it; ``"tunnel"`` (last) only for a
        flow that came through tunnels, so plain flows' records are as they always were."""
        rec = {
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
        if self.tunnel:
            rec["tunnel"] = self.tunnel_record()
        return rec

    def zeek_fields(self) -> dict[str, Any]:
        """What Zeek's conn.log says of this connection (stack/zeek.py)."""
        s2c, c2s = self.stream(0), self.stream(1)
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
        s2c, c2s = self.stream(0), self.stream(1)   # c2s bytes: received by the server's stack
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
        # json.dumps writes a finite float as float.__repr__, an int as str (as {}), and a hex
        # digest as is between quotes; repr() rather than !r, which turns the whole f-string
        # into a str.format call when compiled with mypyc
        text = (f'{{"id": {self.id}, '
                f'"client": "{format_addr(self.client_addr, self.client_port)}", '
                f'"server": "{format_addr(self.server_addr, self.server_port)}", '
                f'"first_packet": {self.first_packet}, "start": {repr(start)}, "end": {repr(end)}, '
                f'"end_reason": {encode_basestring_ascii(self.end_reason)}, '
                f'"client_state": "{_STATE_NAMES[state[0]]}", '
                f'"server_state": "{_STATE_NAMES[state[1]]}", '
                f'"midstream": {"true" if mid else "false"}, '
                f'"duration": {repr(end - start)}, "orig_bytes": {orig}, "resp_bytes": {resp}, '
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
        if self.tunnel:
            return text[:-1] + ', "tunnel": ' + json.dumps(self.tunnel_record()) + "}"
        return text
