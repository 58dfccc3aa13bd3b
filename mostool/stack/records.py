"""Classic-pcap records read in place: the engine's fused fast path.

Theory of operation. ``Engine.process`` costs a frame copy, a decoded 19-field segment and a few
calls per packet before any TCP work, yet most packets of a long capture need none of it: they
are in-order data or pure ACKs of an established flow nobody subscribed to, and all they change
is the flow's counters and its in-order point (``Engine._packet``'s fast path). Here the records
of a classic pcap buffer are walked in place (the source owns the file and its mapping; this
module only reads bytes) with two ``unpack_from`` per record (record header; Ethernet, IPv4 and
TCP fields), the flow is found by the 12-byte address/port slice, and a packet that meets every
condition of that fast path is handled on the spot. The conditions are all checked before
anything changes, so a packet that fails one is handed whole to ``Engine.process`` and goes
through the general pipeline: the result is the same flows, events and counters as calling
``process`` per frame (tests/test_records.py compares both on the bundled, netgen and corpus
captures).

The in-place path takes a record only when all of these hold; ``Engine._packet``'s fast path
checks the same conditions 4-7 on a decoded segment (the two copies are one list, here):

1. the engine may take packets itself (``Engine.inline_ok``: its clock has started and no RAW
   listener must see every frame), and the capture is Ethernet;
2. no timer can fall due: the record is not later than ``engine.timers.due`` (or not later
   than the clock);
3. Ethernet + IPv4 without options, TCP, not a fragment, a sane data offset, the whole IP
   datagram captured;
4. flags ACK without SYN, FIN or RST;
5. the flow is tracked, not stopped, both stacks ESTABLISHED, and ``conn.fast`` (no handle
   wants ON_ERROR or ON_PKT_IN at HK_SND) and, on the in-place path, not a new flow;
6. the ACK acknowledges nothing beyond the receiver-side in-order point, and that side has no
   out-of-order run waiting;
7. the payload, if any, starts exactly at the other side's in-order point, which has no
   out-of-order run waiting (and, decoded, is all captured);
8. the checksum verifies, or is a sending host's offload pseudo-header sum, or is not checked
   (``checksums="skip"``).

What such a packet changes is the flow's counters and its in-order point (and bytes); the events
it can raise are ON_PKT_IN at HK_RCV and ON_CONN_NEW_DATA (ON_ERROR on a buffer overflow), which
``Engine.fast_events`` raises when ``conn.fast_raise``. This module reads only public members of
the engine: ``inline_ok``, ``verify_checksums``, ``timers.due``, ``table``, ``shard``, ``now``,
``packet_number``, ``stop_requested``, ``attach_records``, ``fast_events``, ``account``,
``process`` and ``decoder.add_tcp``.

A flow's last packet taken here is remembered as its record offset (``Connection.last_seg``
holds an int) and decoded again only if someone asks (``Engine.record_segment``, through the
``AttachedRecords`` the engine keeps); ``Engine.detach_records`` forgets those offsets before the
source lets the buffer go.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, NamedTuple, TypeAlias

from mostool.events.types import TcpState
from mostool.stack.decode import Decoder, TcpSegment
from mostool.stack.stream import M32
from mostool.stack.tcpfields import mod_ffff, offload_partial

if TYPE_CHECKING:
    from mostool.stack.connection import Connection
    from mostool.stack.engine import Engine

# bytes, or the source's mmap of the capture, which reads the same way (indexing, slicing,
# unpack_from); the engine imports nothing to do with files
RecordBuffer: TypeAlias = bytes

__all__ = ["RecordBuffer", "RecordLayout", "record_layout", "read_records", "shard_hash",
           "shard_of", "AttachedRecords", "InPlaceRecords"]

ETHERNET = 1
RECORD_HEADER_LEN = 16
# From the start of an Ethernet frame: EtherType + IPv4 version/IHL + TOS (one int), total
# length, flags/fragment offset + TTL + protocol (one int), then past the checksum: addresses,
# ports, seq, ack, data offset, flags, window.
_FRAME = struct.Struct("!12xIH2xI2xIIHHIIBBH")
_ESTABLISHED = TcpState.ESTABLISHED


class RecordLayout(NamedTuple):
    """How the records of one classic pcap file are laid out."""

    header: struct.Struct                   # sec, frac, captured length, wire length
    units: int                              # timestamp fractions per second
    max_caplen: int                         # a larger captured length is a corrupt header
    linktype: int


def record_layout(byteorder: str, units: int, max_caplen: int, linktype: int) -> RecordLayout:
    """``byteorder`` is "<" or ">" (the file's), ``units`` 10**6 or 10**9."""
    return RecordLayout(struct.Struct(byteorder + "IIII"), units, max_caplen, linktype)


class AttachedRecords:
    """The record buffer a run reads in place, for the flows whose last packet is an offset
    into it; decodes such a packet again with a decoder of its own (not the engine's, whose
    counters count each packet once)."""

    __slots__ = ("buf", "layout", "_decoder")

    def __init__(self, buf: RecordBuffer, layout: RecordLayout) -> None:
        self.buf = buf
        self.layout = layout
        self._decoder: Decoder | None = None

    def segment_at(self, off: int, ts: float) -> TcpSegment | None:
        """The TCP segment of the record at ``off``; None if the buffer is gone or it is not
        one."""
        buf, layout = self.buf, self.layout
        try:
            incl = layout.header.unpack_from(buf, off)[2]
            frame = buf[off + RECORD_HEADER_LEN:off + RECORD_HEADER_LEN + incl]
        except (ValueError, struct.error):  # the source has let the buffer go
            return None
        if self._decoder is None:
            self._decoder = Decoder()
        out = self._decoder.decode(layout.linktype, frame, ts)
        return None if isinstance(out, int) else out


class InPlaceRecords:
    """The engine's side of in-place reading (the Engine inherits it): hand it a buffer of
    records, and resolve a flow's last packet when it is a record offset."""

    records: AttachedRecords | None
    table: dict[bytes, Connection]

    def process_records(self, buf: RecordBuffer, off: int, stop: int, end: int,
                        layout: RecordLayout, max_records: int = -1
                        ) -> tuple[int, int, int, int]:
        """Handle the classic-pcap records of ``buf`` starting in ``[off, stop)``, as
        ``process`` would one by one (``read_records``). Returns (offset reached, records,
        captured bytes, wire bytes)."""
        return read_records(self, buf, off, stop, end, layout, max_records)  # type: ignore[arg-type]

    def attach_records(self, buf: RecordBuffer, layout: RecordLayout) -> None:
        """read_records reads ``buf``: flows may remember their last packet as an offset
        into it (``Connection.last_seg``)."""
        records = self.records
        if records is None or records.buf is not buf or records.layout != layout:
            self.records = AttachedRecords(buf, layout)

    def record_segment(self, conn: Connection) -> TcpSegment | None:
        """The flow's last packet (``Connection.last_seg`` resolved: decoded again when it is a
        record offset); None when there is none or its buffer is gone."""
        seg = conn.last_seg
        if not isinstance(seg, int):
            return seg
        records = self.records
        return None if records is None else records.segment_at(seg, conn.last_ts)

    def detach_records(self) -> None:
        """The source lets go of the record buffer (once the flows are finished): flows still
        open (an aborted run) forget packets they refer to by offset."""
        if self.records is None:
            return
        for conn in self.table.values():
            if isinstance(conn.last_seg, int):
                conn.last_seg = None
        self.records = None


def read_records(engine: Engine, buf: RecordBuffer, off: int, stop: int, end: int,
                    layout: RecordLayout, max_records: int = -1) -> tuple[int, int, int, int]:
    """Handle the whole records of ``buf`` that start in ``[off, stop)`` and end by ``end``.

    Stops early at a record that is cut short or whose header is corrupt (the caller's reader
    reports it), after ``max_records`` records, or when ``engine.stop_requested`` is set by a
    callback. Returns (offset after the last record handled, records, captured bytes, wire
    bytes).
    """
    header = layout.header.unpack_from
    frame = _FRAME.unpack_from
    units = layout.units
    max_caplen = layout.max_caplen
    linktype = layout.linktype
    inline = linktype == ETHERNET and engine.inline_ok()
    shard_index, shards = engine.shard or (0, 0)
    verify = engine.verify_checksums
    table_get = engine.table.get
    process = engine.process
    number = engine.packet_number
    # the clock and the next deadline change only in process() (timers, new flows, callbacks)
    now = engine.now
    due = engine.timers.due
    engine.attach_records(buf, layout)
    n = nbytes = nwire = inline_count = 0
    while off < stop and n != max_records:
        if off + RECORD_HEADER_LEN > end:
            break
        sec, frac, incl, orig = header(buf, off)
        p = off + RECORD_HEADER_LEN
        nxt = p + incl
        if incl > max_caplen or nxt > end:
            break
        n += 1
        nbytes += incl
        nwire += orig
        ts = sec + frac / units             # as the frame reader computes it, to the last bit
        key = None
        if inline and incl >= 54 and (ts <= now or due >= ts):
            eth, tlen, fp, src, dst, sport, dport, seq, ack, offset, flags, win = frame(buf, p)
            thl = (offset >> 2) & 0x3C
            wire = tlen - 20 - thl
            # IPv4 without options, TCP, not a fragment, a sane header (as Decoder.decode)
            if (eth >> 8 == 0x080045 and fp & 0x3FFF00FF == 6 and thl >= 20 and wire >= 0
                    and 34 + thl <= incl):
                key = buf[p + 26:p + 38]
                # another worker's packet (Engine.shard; the hash of shard_of): it only moves
                # the clock and the packet count (process() drops the ones it decodes)
                if shards and shard_hash(src ^ dst, sport ^ dport) % shards != shard_index:
                    if ts > now:
                        engine.now = now = ts
                    number += 1
                    off = nxt
                    continue
            # ACK without SYN/FIN/RST, all captured
            if key is not None and flags & 0x17 == 0x10 and 14 + tlen <= incl:
                conn = table_get(key)
                if conn is not None:
                    state0, state1 = conn.state
                    if (not conn.fast or conn.stopped
                            or state0 is not _ESTABLISHED or state1 is not _ESTABLISHED):
                        conn = None
                if conn is not None:
                    snd = 0 if key == conn.key_c2s else 1
                    # the conditions of Engine._packet's fast path, read-only
                    st = conn.streams[snd]
                    base = st.base
                    take = None
                    if base is None or not (st.ooo_starts or
                                            0 < (ack - base - st.nxt) & M32 < 0x80000000):
                        if wire:
                            st = conn.streams[1 - snd]
                            base = st.base
                            if (base is not None and not st.ooo_starts
                                    and not (seq - base - st.nxt) & M32):
                                take = st
                            else:
                                conn = None
                    else:
                        conn = None
                    if conn is not None:
                        ok: bool | None = None          # not verified ("skip")
                        if verify:
                            ok = True
                            # addresses and segment in one integer: their 16-bit words sum the
                            # same as the pseudo-header's addresses plus the segment
                            seglen = tlen - 20
                            x = int.from_bytes(buf[p + 26:p + 34 + seglen], "big")
                            if seglen & 1:
                                x <<= 8
                            if (mod_ffff(x) + 6 + seglen) % 0xFFFF:
                                ok = offload_partial(
                                    (buf[p + 50] << 8) | buf[p + 51],
                                    int.from_bytes(buf[p + 26:p + 34], "big") + 6 + seglen)
                        if ok is not False:
                            if ts > now:
                                engine.now = now = ts
                            number += 1
                            inline_count += 1
                            conn.last_ts = now
                            conn.packets[snd] += 1
                            conn.payload_bytes[snd] += wire
                            conn.window[snd] = win
                            conn.last_seg = off
                            conn.last_number = number
                            if ok:
                                conn.valid_checksum[snd] = True
                            start = size = 0
                            if take is not None:
                                start, size = take.nxt, wire
                                if take.keep_bytes:
                                    take.take(buf, p + 34 + thl, wire)
                                else:   # HalfStream.take without a byte to keep, inlined
                                    take.nxt = start + wire
                                    take.delivered += wire
                            if conn.fast_raise:
                                # user code runs: everything it may look at must be current,
                                # and everything it may change read again
                                engine.packet_number = number
                                engine.fast_events(conn, snd, start, size)
                                now = engine.now
                                due = engine.timers.due
                                inline = engine.inline_ok()
                                if take is not None and take.keep_bytes:
                                    engine.account(conn)
                                off = nxt
                                if engine.stop_requested:
                                    break
                                continue
                            if take is not None and take.keep_bytes:
                                engine.account(conn)
                            off = nxt
                            continue
        engine.packet_number = number
        process(ts, linktype, buf[p:nxt])
        number = engine.packet_number
        if key is not None:
            # a plain frame: its flow remembers where it is rather than its decoded copy
            conn = table_get(key)
            if conn is not None and conn.last_number == number:
                conn.last_seg = off
        now = engine.now
        due = engine.timers.due
        off = nxt
        if engine.stop_requested:
            break
        inline = linktype == ETHERNET and engine.inline_ok()
    engine.packet_number = number
    engine.decoder.add_tcp(inline_count)
    return off, n, nbytes, nwire


def shard_of(src: bytes, sport: int, dst: bytes, dport: int, count: int) -> int:
    """Which of ``count`` shards a packet belongs to: a symmetric hash of both endpoints (as
    mOS's symmetric RSS), so both directions of a flow meet in one shard."""
    addrs = int.from_bytes(src, "big") ^ int.from_bytes(dst, "big")
    while addrs >> 32:                  # IPv6: fold to 32 bits
        addrs = (addrs >> 32) ^ (addrs & 0xFFFFFFFF)
    return shard_hash(addrs, sport ^ dport) % count


def shard_hash(addrs: int, ports: int) -> int:
    """The mixing step of ``shard_of``, from the XOR of the two (32-bit) addresses and
    of the two ports: symmetric, so both directions of a flow meet in one shard."""
    return (((addrs * 0x9E3779B1 + ports) * 0x85EBCA6B) & 0xFFFFFFFF) >> 15
