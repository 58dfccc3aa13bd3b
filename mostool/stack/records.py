"""Classic-pcap records (and pcapng Enhanced Packet Blocks) read in place: the engine's fused
fast path.

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

The conditions of the in-place path. A record is handled here when all hold; both this module
and ``Engine._packet``'s fast path implement 3-6 (this list is the one to keep them to):

1. the engine may take records in place (``Engine.inline_ok``: the clock has started, no RAW
   listener), the link type is Ethernet, no timer falls due before the record
   (``Engine.next_due``), and it is not further ahead of the clock than the wild clock allows
   (``engine.wild.max_jump``: such a frame is held by ``process``, mostool/stack/clock.py);
2. Ethernet + IPv4 without options, TCP, not a fragment, a sane TCP header, and the whole IP
   packet captured (what the decoder's Ethernet/IPv4 fast path reads);
3. ACK set, none of SYN/FIN/RST;
4. a tracked flow (of this shard), not stopped, ``conn.fast`` (no handle wants ON_ERROR or
   ON_PKT_IN at HK_SND), both stacks ESTABLISHED (the engine's copy: and not the flow's first
   packet);
5. the ACK acknowledges nothing beyond the in-order point of the stream its sender receives,
   which holds no out-of-order segment (or has no base yet);
6. payload, if any, starts exactly at the receiver's in-order point, which has a base and no
   out-of-order segment;
7. the checksum verifies, or is the pseudo-header sum checksum offload leaves
   (``tcpfields.offload_verdict``), or checksums are skipped.

8. A record of 1-2 with ACK set and neither SYN nor RST that fails 3 (a FIN) or 4 only
   because of a stack's state or ``conn.fast`` is still handled here when it carries no
   payload, its flow is not stopped, has no provisional RST and no handle wanting events at
   HK_SND, ``tcp.quiet_step`` finds that the general path would change only the stacks'
   states (the handshake's third ACK, a side's first FIN at the receiver's in-order point,
   the ACK of a FIN, the last ACK that closes the flow; not a packet of a flow both sides had
   already closed), and 7 holds: its counters, the Zeek history (``ZeekRecorder.packet``, as
   the general path calls it), the FIN's sequence number (``tcp.fin_sent``) and the states
   change in place; when a handle wants events at HK_RCV, the receiver's stack raises them
   as the general path does (``Emitter.stack``: ON_PKT_IN, ON_TCP_STATE_CHANGE per step of
   ``tcp.quiet_receiver``; such a packet raises no ON_REXMIT and no ON_CONN_START); when both
   stacks are then CLOSED or TIME_WAIT, ``Engine.closed`` ends the flow (or lets it linger)
   as the general path's step 6 does; after user code ran (events, flow-end hooks) the loop
   reads the clock, the deadline and ``inline_ok()`` again (they may set timers or stop).
   ``Engine._packet`` has no such shortcut: its general path gives the same.
9. A record of 1-2 with SYN and ACK set, neither FIN nor RST, no payload, of a tracked flow
   that is not stopped, has no provisional RST and no handle wanting events at HK_SND, is
   handled here when ``tcp.quiet_synack`` finds it the handshake's answer to one SYN (the
   sender in SYN_RCVD without an ISN yet, the receiver in SYN_SENT, a timestamp echo that
   receiver accepts, nothing waiting in the outboxes) and 7 holds: its counters, the Zeek
   history, the sender's ISN and window scale (``tcp.syn_sequence``, as ``syn_bookkeeping``)
   and the receiver's step to ESTABLISHED change in place, and the receiver's stack raises
   its HK_RCV events as for 8.

A pcapng file is read the same way from its first packet block when that is an Enhanced Packet
Block (``epb_layout``: that interface's byte order, resolution, offset and link type): block
after block while they are sound EPBs of that interface; any other block ends the call, and the
source's frame reader reads on from there (as it does after a damaged classic record).

Compiled with mypyc, ``process_records`` hands the work to
``record_blocks.process_record_blocks``: the same loop reading the records out of ``bytes``
blocks copied from the buffer (256 KiB at a time; native code indexes bytes, not an mmap);
``RecordRefs.in_blocks`` says which loop runs.

The engine members read here are public: ``inline_ok()``, ``verify_checksums``, ``next_due``,
``now``, ``wild.max_jump``, ``packet_number``, ``table``, ``shard``, ``stop_requested``,
``records.attach()``, ``fast_events()``, ``budget.account()``, ``count_inline()`` and
``process()``.

A flow's last packet taken here is remembered as its record offset (``Connection.last_off``,
with ``last_seg`` None) and decoded again only if someone asks (``Flow.last_packet``:
``RecordRefs.segment``); ``RecordRefs.detach`` makes open flows forget those offsets before the
source lets the buffer go.
"""

from __future__ import annotations

import importlib.machinery
import struct
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final, NamedTuple, TypeAlias

from mostool.events.types import Hook, TcpState
from mostool.stack.csum import ones_sum_at
from mostool.stack.decode import Decoder, TcpSegment
from mostool.stack.record_blocks import process_record_blocks
from mostool.stack.stream import M32
from mostool.stack.tcp import (
    TERMINAL,
    fin_sent,
    quiet_receiver,
    quiet_step,
    quiet_synack,
    syn_sequence,
)
from mostool.stack.tcpfields import IN_PLACE_SUM, mod_ffff, offload_verdict

if TYPE_CHECKING:
    from mostool.stack.connection import Connection
    from mostool.stack.engine import Engine

# bytes, or the source's mmap of the capture, which reads the same way (indexing, slicing,
# unpack_from); the engine imports nothing to do with files. Any, not bytes: compiled with mypyc
# a bytes annotation is checked at run time and refuses the mmap
RecordBuffer: TypeAlias = Any

__all__ = ["RecordBuffer", "RecordLayout", "record_layout", "epb_layout", "process_records",
           "shard_hash", "decode_record", "shard_of"]

ETHERNET: Final = 1
RECORD_HEADER_LEN: Final = 16
EPB: Final = 6                  # pcapng Enhanced Packet Block
EPB_HEADER_LEN: Final = 28      # type, length, interface, timestamp, both lengths
EPB_MIN_LEN: Final = 32         # ... and the trailing length
MAX_BLOCK: Final = 64 << 20     # a longer pcapng block is corrupt (mostool.pcapng)
_U32_LE: Final = struct.Struct("<I").unpack_from
_U32_BE: Final = struct.Struct(">I").unpack_from
# From the start of an Ethernet frame: EtherType + IPv4 version/IHL + TOS (one int), total
# length, flags/fragment offset + TTL + protocol (one int), then past the checksum: addresses,
# ports, seq, ack, data offset, flags, window.
_FRAME: Final = struct.Struct("!12xIH2xI2xIIHHIIBBH")
_ESTABLISHED: Final = TcpState.ESTABLISHED
_SYN_SENT: Final = TcpState.SYN_SENT
_HK_RCV: Final = Hook.HK_RCV
# compiled with mypyc, the records are read through bytes blocks (record_blocks.py) in native
# code; interpreted, the struct loop below is the faster
COMPILED: Final = __file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))
# 256 KiB: a block is still in the L2 cache when the loop and the checksum read it
BLOCK_SIZE: Final = 256 << 10


class RecordLayout(NamedTuple):
    """How the records of one classic pcap file, or the Enhanced Packet Blocks of one
    interface of a pcapng section (``ifid`` >= 0), are laid out."""

    header: struct.Struct                   # sec, frac, captured length, wire length; pcapng:
                                            # type, length, interface, ts high, ts low, both
    units: int                              # timestamp fractions per second
    max_caplen: int                         # a larger captured length is a corrupt header
    linktype: int
    ifid: int = -1                          # pcapng: the interface whose EPBs are taken
    tsoff: int = 0                          # pcapng: its if_tsoffset (seconds)


def record_layout(byteorder: str, units: int, max_caplen: int, linktype: int) -> RecordLayout:
    """``byteorder`` is "<" or ">" (the file's), ``units`` 10**6 or 10**9."""
    return RecordLayout(struct.Struct(byteorder + "IIII"), units, max_caplen, linktype)


def epb_layout(byteorder: str, units: int, tsoff: int, linktype: int, ifid: int
               ) -> RecordLayout:
    """The Enhanced Packet Blocks of interface ``ifid`` of a pcapng section in ``byteorder``,
    whose timestamps count ``units`` per second from ``tsoff`` seconds: they are read in place
    as a classic pcap's records are (``record_blocks``), up to the first other block."""
    return RecordLayout(struct.Struct(byteorder + "IIIIIII"), units, 0, linktype, ifid, tsoff)


def process_records(engine: Engine, buf: RecordBuffer, off: int, stop: int, end: int,
                    layout: RecordLayout, max_records: int = -1) -> tuple[int, int, int, int]:
    """Handle the whole records of ``buf`` that start in ``[off, stop)`` and end by ``end``.

    Stops early at a record that is cut short or whose header is corrupt (the caller's reader
    reports it), after ``max_records`` records, or when ``engine.stop_requested`` is set by a
    callback. Returns (offset after the last record handled, records, captured bytes, wire
    bytes).
    """
    refs = engine.records
    if refs.in_blocks:
        return process_record_blocks(engine, buf, off, stop, end, layout, max_records,
                                     refs.block_size)
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
    account = engine.budget.account
    number = engine.packet_number
    # the clock and the next deadline change only in process() (timers, new flows, callbacks)
    now = engine.now
    due = engine.next_due
    # a frame further ahead of the clock is the wild clock's to judge (process())
    jump = engine.wild.max_jump
    engine.records.attach(buf, layout)
    n = nbytes = nwire = inline_count = cut = others = 0
    ng_ifid, ng_tsoff = layout.ifid, layout.tsoff   # pcapng Enhanced Packet Blocks (ifid >= 0)
    u32 = _U32_LE if layout.header.format[0] == "<" else _U32_BE
    while off < stop and n != max_records:
        if ng_ifid >= 0:
            # an Enhanced Packet Block of the interface, sound; anything else (another block,
            # another interface, damage) is the frame reader's, from here on
            if off + EPB_MIN_LEN > end:
                break
            btype, total, ifid, hi, lo, incl, orig = header(buf, off)
            nxt = off + total
            if (btype != EPB or ifid != ng_ifid or total < EPB_MIN_LEN or total & 3
                    or total > MAX_BLOCK or nxt > end or incl > total - EPB_MIN_LEN
                    or u32(buf, nxt - 4)[0] != total):
                break
            p = off + EPB_HEADER_LEN
            sec, frac = divmod(hi << 32 | lo, units)
            ts = (sec + ng_tsoff) + frac / units    # as the pcapng frame reader computes it
        else:
            if off + RECORD_HEADER_LEN > end:
                break
            sec, frac, incl, orig = header(buf, off)
            p = off + RECORD_HEADER_LEN
            nxt = p + incl
            if incl > max_caplen or nxt > end:
                break
            ts = sec + frac / units         # as the frame reader computes it, to the last bit
        n += 1
        nbytes += incl
        nwire += orig
        key = None
        if inline and incl >= 54 and (ts <= now or (due >= ts and ts <= now + jump)):
            eth, tlen, fp, src, dst, sport, dport, seq, ack, offset, flags, win = frame(buf, p)
            thl = (offset >> 2) & 0x3C
            wire = tlen - 20 - thl
            # IPv4 without options, TCP, not a fragment, a sane header (as Decoder.decode)
            if (eth >> 8 == 0x080045 and fp & 0x3FFF00FF == 6 and thl >= 20 and wire >= 0
                    and 34 + thl <= incl):
                # another worker's packet (Engine.shard; the hash of shard_of): it only moves
                # the clock and the packet count (process() drops the ones it decodes)
                if shards and shard_hash(src ^ dst, sport ^ dport) % shards != shard_index:
                    if ts > now:
                        engine.now = now = ts
                    number += 1
                    others += 1
                    if orig > incl:
                        cut += 1
                    off = nxt
                    continue
                key = buf[p + 26:p + 38]
            # ACK without SYN/RST (with FIN: 8. only), all captured
            if key is not None and flags & 0x16 == 0x10 and 14 + tlen <= incl:
                conn = table_get(key)
                if conn is not None:
                    state = conn.state
                    fin = flags & 0x01
                    if (fin or not conn.fast or conn.stopped
                            or state[0] is not _ESTABLISHED or state[1] is not _ESTABLISHED):
                        # not the fast path: a pure ACK or a FIN of the handshake or the
                        # close? (8.)
                        masks = conn.masks
                        if (not wire and not conn.stopped and conn.rst_pending is None
                                and not masks[2]):                  # HK_SND
                            snd = 0 if key == conn.key_c2s else 1
                            after = quiet_step(conn, snd, fin != 0, seq, ack)
                            if after is not None:
                                verdict = segment_verdict(buf, p, tlen) if verify else None
                                if verdict is not False:
                                    if ts > now:
                                        engine.now = now = ts
                                    number += 1
                                    inline_count += 1
                                    if orig > incl:
                                        cut += 1
                                    conn.quiet_packet(snd, flags, seq, win, off, number, now,
                                                      verdict)
                                    if fin:
                                        fin_sent(conn, snd, seq)
                                    new_snd, new_rcv = after
                                    old_rcv = state[0] if snd else state[1]
                                    conn.state = ((new_rcv, new_snd) if snd else
                                                  (new_snd, new_rcv))
                                    off = nxt
                                    user_code = masks[1] != 0
                                    if user_code:
                                        # the receiver's stack at HK_RCV, as the general path
                                        # raises it (see fast_events below)
                                        changes: list[tuple[TcpState, TcpState]] = []
                                        quiet_receiver(conn, snd, fin != 0, ack, old_rcv,
                                                       changes)
                                        engine.packet_number = number
                                        engine.emitter.stack(conn, _HK_RCV, 1 - snd, old_rcv,
                                                             changes, False, snd)
                                    account(conn)
                                    state = conn.state
                                    if (state[0] in TERMINAL and state[1] in TERMINAL
                                            and not conn.ended):
                                        # closed: the flow ends, or lingers (Engine.closed)
                                        engine.packet_number = number
                                        engine.closed(conn, snd)
                                        user_code = True
                                    if user_code:       # read again what it may change
                                        now = engine.now
                                        due = engine.next_due
                                        inline = engine.inline_ok()
                                        if engine.stop_requested:
                                            break
                                    continue
                        conn = None
                if conn is not None:
                    snd = 0 if key == conn.key_c2s else 1
                    # conditions 5 and 6 (see the module docstring), read-only
                    st = conn.s0 if snd == 0 else conn.s1      # (Connection.stream)
                    base = conn.base[snd]
                    take = None
                    if base < 0 or not (st.ooo_starts or
                                            0 < (ack - base - st.nxt) & M32 < 0x80000000):
                        if wire:
                            st = conn.s1 if snd == 0 else conn.s0
                            base = conn.base[1 - snd]
                            if (base >= 0 and not st.ooo_starts
                                    and not (seq - base - st.nxt) & M32):
                                take = st if not st.shared else conn.own_stream(1 - snd)
                            else:
                                conn = None
                    else:
                        conn = None
                    if conn is not None:
                        # None: not verified ("skip")
                        ok = segment_verdict(buf, p, tlen) if verify else None
                        if ok is not False:
                            if ts > now:
                                engine.now = now = ts
                            number += 1
                            inline_count += 1
                            if orig > incl:
                                cut += 1
                            conn.last_ts = now
                            conn.count(snd, wire, win)
                            if conn.zeek.pending or not win:    # zeek: fast path
                                conn.zeek.fast(snd, wire, win)
                            conn.last_seg = None
                            conn.last_off = off
                            conn.last_number = number
                            if ok:
                                conn.checksum_valid(snd)
                            start = size = 0
                            if take is not None:
                                start, size = take.nxt, wire
                                if take.keep_bytes:     # (a span when it buffers)
                                    take.take_span(buf, p + 34 + thl, buf, p + 34 + thl, wire)
                                else:   # HalfStream.take without a byte to keep, inlined
                                    take.nxt = start + wire
                                    take.delivered += wire
                            if conn.fast_raise:
                                # user code runs: everything it may look at must be current,
                                # and everything it may change read again
                                engine.packet_number = number
                                engine.fast_events(conn, snd, start, size)
                                now = engine.now
                                due = engine.next_due
                                inline = engine.inline_ok()
                                if take is not None and take.keep_bytes:
                                    account(conn)
                                off = nxt
                                if engine.stop_requested:
                                    break
                                continue
                            if take is not None and take.keep_bytes:
                                account(conn)
                            off = nxt
                            continue
            elif key is not None and flags & 0x17 == 0x12 and not wire and 14 + tlen <= incl:
                # 9. the SYN/ACK that answers one SYN (tcp.quiet_synack)
                conn = table_get(key)
                if (conn is not None and not conn.stopped and conn.rst_pending is None
                        and not conn.masks[2]):                             # HK_SND
                    snd = 0 if key == conn.key_c2s else 1
                    options = buf[p + 54:p + 34 + thl]
                    if quiet_synack(conn, snd, ack, options):
                        verdict = segment_verdict(buf, p, tlen) if verify else None
                        if verdict is not False:
                            if ts > now:
                                engine.now = now = ts
                            number += 1
                            inline_count += 1
                            if orig > incl:
                                cut += 1
                            conn.quiet_packet(snd, flags, seq, win, off, number, now, verdict)
                            syn_sequence(conn, snd, seq, options)
                            state = conn.state      # the receiver: SYN_SENT -> ESTABLISHED
                            conn.state = ((_ESTABLISHED, state[1]) if snd else
                                          (state[0], _ESTABLISHED))
                            off = nxt
                            user_code = conn.masks[1] != 0
                            if user_code:
                                engine.packet_number = number
                                engine.emitter.stack(conn, _HK_RCV, 1 - snd, _SYN_SENT,
                                                     [(_SYN_SENT, _ESTABLISHED)], False, snd)
                            account(conn)
                            if user_code:       # read again what it may change
                                now = engine.now
                                due = engine.next_due
                                inline = engine.inline_ok()
                                if engine.stop_requested:
                                    break
                            continue
        engine.packet_number = number
        process(ts, linktype, buf[p:p + incl], orig)
        number = engine.packet_number
        if key is not None:
            # a plain frame: its flow remembers where it is rather than its decoded copy
            conn = table_get(key)
            if conn is not None and conn.last_number == number:
                conn.last_seg = None
                conn.last_off = off
        now = engine.now
        due = engine.next_due
        off = nxt
        if engine.stop_requested:
            break
        inline = linktype == ETHERNET and engine.inline_ok()
    engine.packet_number = number
    engine.count_inline(inline_count, cut, others)
    return off, n, nbytes, nwire


def segment_verdict(buf: RecordBuffer, p: int, tlen: int) -> bool | None:
    """The TCP checksum of the IPv4 packet of the Ethernet frame at ``buf[p:]`` (as the loop
    above verifies it): True when it verifies, else ``offload_verdict``'s (None: the sum
    checksum offload leaves). The addresses and the segment are summed in one piece: their
    16-bit words sum the same as the pseudo-header's addresses plus the segment."""
    seglen = tlen - 20
    if IN_PLACE_SUM:
        rest = 6 + seglen
        if ones_sum_at(buf, p + 26, 8 + seglen, (rest & 0xFFFF) + (rest >> 16)) == 0xFFFF:
            return True
    else:
        x = int.from_bytes(buf[p + 26:p + 34 + seglen], "big")
        if seglen & 1:
            x <<= 8
        if not (mod_ffff(x) + 6 + seglen) % 0xFFFF:
            return True
    return offload_verdict((buf[p + 50] << 8) | buf[p + 51],
                           int.from_bytes(buf[p + 26:p + 34], "big") + 6 + seglen)


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


class RecordRefs:
    """The record buffer process_records reads (one per engine): flows' ``last_seg`` may be
    record offsets into it until the source lets it go."""

    def __init__(self) -> None:
        self._buf: RecordBuffer | None = None
        self._layout: RecordLayout | None = None
        # which loop process_records runs: record_blocks' (compiled) or the struct one; tests
        # run the block loop interpreted too, with blocks smaller than a record
        self.in_blocks: bool = COMPILED
        self.block_size: int = BLOCK_SIZE

    def attach(self, buf: RecordBuffer, layout: RecordLayout) -> None:
        """process_records reads ``buf``: flows' ``last_seg`` may be record offsets into it."""
        self._buf = buf
        self._layout = layout

    def segment(self, conn: Connection) -> TcpSegment | None:
        """``conn.last_seg`` decoded, when process_records left it as a record offset or
        Engine.route as its frame."""
        seg = conn.last_seg
        if isinstance(seg, TcpSegment):
            return seg
        if seg is not None:                 # the frame
            out = _SCRATCH_DECODER.decode(conn.last_linktype, seg, conn.last_ts)
            return None if isinstance(out, int) else out
        buf, layout, off = self._buf, self._layout, conn.last_off
        if buf is None or layout is None or off < 0:
            return None
        return decode_record(buf, layout, off, conn.last_ts)

    def detach(self, open_flows: Iterable[Connection]) -> None:
        """The source lets go of the buffer (once the flows are finished): flows still open
        (an aborted run, ``keep_open``) forget packets they refer to by offset, and copy the
        bytes their buffers hold as spans into it (``HalfStream.take_span``)."""
        if self._buf is None:
            return
        for conn in open_flows:
            conn.last_off = -1
            for st in conn.made_streams():
                st.own_bytes()          # buffered spans into the buffer: copied out
        self._buf = self._layout = None


_SCRATCH_DECODER = Decoder()     # decodes remembered records again: its counters are not ours


def decode_record(buf: RecordBuffer, layout: RecordLayout, off: int, ts: float
                  ) -> TcpSegment | None:
    """The TCP segment of the record at ``off`` decoded again (``RecordRefs.segment``);
    None when the source has let the buffer go or it is not one."""
    try:
        if layout.ifid < 0:
            incl = layout.header.unpack_from(buf, off)[2]
            frame = buf[off + 16:off + 16 + incl]
        else:                           # an Enhanced Packet Block
            incl = layout.header.unpack_from(buf, off)[5]
            frame = buf[off + 28:off + 28 + incl]
    except (ValueError, struct.error):  # the source has let the buffer go
        return None
    out = _SCRATCH_DECODER.decode(layout.linktype, frame, ts)
    return None if isinstance(out, int) else out
