"""The compiled build's loop over classic-pcap records (and pcapng Enhanced Packet Blocks):
``records.process_records`` read from ``bytes`` blocks.

Theory of operation. ``records.process_records`` walks the capture where it lies (the source's
mmap, or bytes) with ``struct`` unpacking: the fastest form interpreted, but compiled with mypyc
each record still costs a tuple of a dozen Python ints, and an mmap can only be typed ``Any``
(a ``bytes`` annotation refuses it at run time). This module is the same loop written for
mypyc: the capture is copied, a block of ``block_size`` bytes (256 KiB) at a time, into a
``bytes`` object the loop indexes in native code, field by field; a block starts at a record,
and a record that would cross the block's end starts the next block (a record longer than a
block gets a block of its own size), so a multi-GB capture stays mapped and only one block is
ever copied out of it. A ``bytes`` buffer (a capture read in one call) is indexed as it is.
A pcapng layout (``RecordLayout.ifid`` >= 0) reads Enhanced Packet Blocks of that interface
the same way (the frame starts 28 bytes in, the block's own length leads to the next), and
stops at any other block, another interface's or a damaged one: the frame reader reads on.

Everything else is ``records.process_records``'s, condition for condition (its module docstring
lists them; keep the two loops to that list): offsets handed out (``Connection.last_off``, the
returned offset) are the file's, and the general path gets the same frame bytes. Interpreted,
this loop is correct but slower than the struct one, so ``records`` picks it only when compiled
(``RecordRefs.in_blocks``; tests set it on the pure build too, with tiny blocks, so that every
record crosses a block edge: tests/test_records.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from mypy_extensions import i64

from mostool.events.types import Hook, TcpState
from mostool.stack.csum import ipv4_tcp_sum_ok
from mostool.stack.stream import M32
from mostool.stack.tcp import (
    TERMINAL,
    fin_sent,
    quiet_receiver,
    quiet_step,
    quiet_synack,
    syn_sequence,
)
from mostool.stack.tcpfields import offload_verdict

if TYPE_CHECKING:
    from mostool.stack.engine import Engine
    from mostool.stack.records import RecordLayout

__all__ = ["process_record_blocks"]

_ETHERNET: Final = 1
_RECORD_HEADER_LEN: Final = 16
_ESTABLISHED: Final = TcpState.ESTABLISHED
_SYN_SENT: Final = TcpState.SYN_SENT
_HK_RCV: Final = Hook.HK_RCV
_EPB: Final = 6                 # pcapng Enhanced Packet Block
_EPB_HEADER_LEN: Final = 28     # type, length, interface, timestamp, both lengths
_EPB_MIN_LEN: Final = 32        # ... and the trailing length
_MAX_BLOCK: Final = 64 << 20    # a longer pcapng block is corrupt (mostool.pcapng)


def _u16(b: bytes, i: i64) -> int:
    return (b[i] << 8) | b[i + 1]


def _u32(b: bytes, i: i64) -> int:
    return (b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]


def _u32_le(b: bytes, i: i64) -> i64:
    return i64(b[i]) | (i64(b[i + 1]) << 8) | (i64(b[i + 2]) << 16) | (i64(b[i + 3]) << 24)


def _u16_be(b: bytes, i: i64) -> i64:
    return (i64(b[i]) << 8) | i64(b[i + 1])


def _u32_be(b: bytes, i: i64) -> i64:
    return (i64(b[i]) << 24) | (i64(b[i + 1]) << 16) | (i64(b[i + 2]) << 8) | i64(b[i + 3])


def _checksum_verdict(b: bytes, p: i64, tlen: int) -> bool | None:
    """The TCP checksum of the IPv4 packet at ``b[p + 14:]`` (Ethernet frame at ``p``): True
    when it verifies, else ``offload_verdict``'s (None: the sum checksum offload leaves)."""
    # (csum.ipv4_tcp_sum_ok: the sum of the addresses, the segment, the protocol and the
    # segment length; the C function boxes no length and no sum)
    if ipv4_tcp_sum_ok(b, p):
        return True
    rest = tlen - 14            # protocol 6 + segment length
    return offload_verdict(_u16(b, p + 50), int.from_bytes(b[p + 26:p + 34], "big") + rest)


def _mul32(a: i64, c: i64) -> i64:
    """``a * c`` modulo 2**32 for 32-bit ``a`` and ``c``, without leaving 64 bits."""
    return (a * (c & 0xFFFF) + (((a * (c >> 16)) & 0xFFFF) << 16)) & 0xFFFFFFFF


def _shard_hash(addrs: i64, ports: i64) -> i64:
    # records.shard_hash in native integers (records imports this module): its products
    # taken modulo 2**32 give the same low 32 bits, without a big-int product per packet
    return _mul32((_mul32(addrs, 0x9E3779B1) + ports) & 0xFFFFFFFF, 0x85EBCA6B) >> 15


def process_record_blocks(engine: Engine, buf: Any, off: int, stop: int, end: int,
                          layout: RecordLayout, max_records: int, block_size: int
                          ) -> tuple[int, int, int, int]:
    """``records.process_records(engine, buf, off, stop, end, layout, max_records)``, reading
    ``buf`` through ``bytes`` blocks of about ``block_size`` bytes (see the module docstring)."""
    little = layout.header.format[0] == "<"
    units = float(layout.units)
    ng = layout.ifid >= 0           # pcapng Enhanced Packet Blocks of interface ng_ifid
    ng_ifid: i64 = layout.ifid
    ng_units: int = layout.units
    ng_tsoff: int = layout.tsoff
    # the timestamp in 64-bit arithmetic, exact where the units are exact doubles
    ng_native = 0 < ng_units <= 1 << 53 and -(1 << 61) < ng_tsoff < 1 << 61
    units64: i64 = ng_units if ng_native else 1
    tsoff64: i64 = ng_tsoff if ng_native else 0
    units_f = float(units64)
    hlen: i64 = _EPB_HEADER_LEN if ng else _RECORD_HEADER_LEN     # where the frame starts
    least: i64 = _EPB_MIN_LEN if ng else _RECORD_HEADER_LEN
    max_caplen: i64 = layout.max_caplen
    linktype = layout.linktype
    inline = linktype == _ETHERNET and engine.inline_ok()
    shard = engine.shard
    shard_index: i64 = 0 if shard is None else shard[0]
    shards: i64 = 0 if shard is None else shard[1]
    verify = engine.verify_checksums
    table = engine.table
    budget = engine.budget
    number = engine.packet_number
    # the clock and the next deadline change only in process() (timers, new flows, callbacks)
    now = engine.now
    due = engine.next_due
    # a frame further ahead of the clock is the wild clock's to judge (process())
    jump = engine.wild.max_jump
    engine.records.attach(buf, layout)
    blk: bytes
    base: i64               # the file offset of blk[0]
    if isinstance(buf, bytes):
        blk, base = buf, 0
    else:
        blk, base = b"", off
    blen: i64 = len(blk)
    size: i64 = max(block_size, 64)
    pos: i64 = off
    n = nbytes = nwire = inline_count = cut = others = 0
    while pos < stop and n != max_records:
        if pos + least > end:
            break
        q: i64 = pos - base
        if q + least > blen:
            blk = bytes(buf[pos:min(end, pos + size)])
            base, blen, q = pos, len(blk), 0
        sec: i64
        frac: i64
        if ng:
            # an Enhanced Packet Block of the interface, sound; anything else (another block,
            # another interface, damage) is the frame reader's, from here on
            if little:
                btype = _u32_le(blk, q)
                total = _u32_le(blk, q + 4)
                ifid = _u32_le(blk, q + 8)
                sec = _u32_le(blk, q + 12)          # the timestamp's high and low halves
                frac = _u32_le(blk, q + 16)
                incl = _u32_le(blk, q + 20)
                orig = _u32_le(blk, q + 24)
            else:
                btype = _u32_be(blk, q)
                total = _u32_be(blk, q + 4)
                ifid = _u32_be(blk, q + 8)
                sec = _u32_be(blk, q + 12)
                frac = _u32_be(blk, q + 16)
                incl = _u32_be(blk, q + 20)
                orig = _u32_be(blk, q + 24)
            nxt: i64 = pos + total
            if (btype != _EPB or ifid != ng_ifid or total < _EPB_MIN_LEN or total & 3
                    or total > _MAX_BLOCK or nxt > end or incl > total - _EPB_MIN_LEN):
                break
        else:
            if little:
                sec = _u32_le(blk, q)
                frac = _u32_le(blk, q + 4)
                incl = _u32_le(blk, q + 8)
                orig = _u32_le(blk, q + 12)
            else:
                sec = _u32_be(blk, q)
                frac = _u32_be(blk, q + 4)
                incl = _u32_be(blk, q + 8)
                orig = _u32_be(blk, q + 12)
            nxt = pos + _RECORD_HEADER_LEN + incl
            if incl > max_caplen or nxt > end:
                break
        if q + (nxt - pos) > blen:
            blk = bytes(buf[pos:min(end, pos + max(size, nxt - pos))])
            base, blen, q = pos, len(blk), 0
        if ng:
            if (_u32_le(blk, q + total - 4) if little else _u32_be(blk, q + total - 4)) != total:
                break                       # a trailing length that differs: damage
            # as the pcapng frame reader computes it, to the bit
            if ng_native and sec < 0x80000000:
                stamp: i64 = (sec << 32) | frac
                ts = float(stamp // units64 + tsoff64) + float(stamp % units64) / units_f
            else:
                whole, part = divmod((int(sec) << 32) | int(frac), ng_units)
                ts = (whole + ng_tsoff) + part / ng_units
        else:
            ts = float(sec) + float(frac) / units   # as the frame reader computes it
        p: i64 = q + hlen
        n += 1
        nbytes += incl
        nwire += orig
        key: bytes | None = None
        if inline and incl >= 54 and (ts <= now or (due >= ts and ts <= now + jump)):
            # IPv4 without options, TCP, not a fragment, a sane header (as Decoder.decode)
            tlen = _u16(blk, p + 16)
            thl = (blk[p + 46] >> 2) & 0x3C
            wire = tlen - 20 - thl
            if (blk[p + 12] == 0x08 and blk[p + 13] == 0 and blk[p + 14] == 0x45
                    and blk[p + 20] & 0x3F == 0 and blk[p + 21] == 0 and blk[p + 23] == 6
                    and thl >= 20 and wire >= 0 and 34 + thl <= incl):
                # another worker's packet (Engine.shard): it only moves the clock and the
                # packet counts (process() drops the ones it decodes)
                if shards and _shard_hash(_u32_be(blk, p + 26) ^ _u32_be(blk, p + 30),
                                          _u16_be(blk, p + 34) ^ _u16_be(blk, p + 36)
                                          ) % shards != shard_index:
                    if ts > now:
                        engine.now = now = ts
                    number += 1
                    others += 1
                    if orig > incl:
                        cut += 1
                    pos = nxt
                    continue
                key = blk[p + 26:p + 38]
                # ACK without SYN/RST (with FIN: condition 8 only), all captured
                flags = blk[p + 47]
                if flags & 0x16 == 0x10 and 14 + tlen <= incl:
                    conn = table.get(key)
                    if conn is not None:
                        state = conn.state
                        fin = flags & 0x01
                        if (fin or not conn.fast or conn.stopped
                                or state[0] is not _ESTABLISHED
                                or state[1] is not _ESTABLISHED):
                            # not the fast path: a pure ACK or a FIN of the handshake or the
                            # close?
                            masks = conn.masks
                            if (not wire and not conn.stopped and conn.rst_pending is None
                                    and not masks[2]):                # HK_SND
                                snd = 0 if key == conn.key_c2s else 1
                                seq = _u32(blk, p + 38)
                                ack = _u32(blk, p + 42)
                                after = quiet_step(conn, snd, fin != 0, seq, ack)
                                if after is not None:
                                    verdict = _checksum_verdict(blk, p, tlen) if verify else None
                                    if verdict is not False:
                                        if ts > now:
                                            engine.now = now = ts
                                        number += 1
                                        inline_count += 1
                                        if orig > incl:
                                            cut += 1
                                        conn.quiet_packet(snd, flags, seq, _u16(blk, p + 48),
                                                          pos, number, now, verdict)
                                        if fin:
                                            fin_sent(conn, snd, seq)
                                        new_snd, new_rcv = after
                                        old_rcv = state[0] if snd else state[1]
                                        conn.state = ((new_rcv, new_snd) if snd else
                                                      (new_snd, new_rcv))
                                        pos = nxt
                                        user_code = masks[1] != 0
                                        if user_code:
                                            # the receiver's stack at HK_RCV, as the general
                                            # path raises it
                                            changes: list[tuple[TcpState, TcpState]] = []
                                            quiet_receiver(conn, snd, fin != 0, ack, old_rcv,
                                                           changes)
                                            engine.packet_number = number
                                            engine.emitter.stack(conn, _HK_RCV, 1 - snd,
                                                                 old_rcv, changes, False, snd)
                                        budget.account(conn)
                                        state = conn.state
                                        if (state[0] in TERMINAL and state[1] in TERMINAL
                                                and not conn.ended):
                                            # closed: the flow ends, or lingers
                                            # (Engine.closed)
                                            engine.packet_number = number
                                            engine.closed(conn, snd)
                                            user_code = True
                                        if user_code:   # read again what it may change
                                            now = engine.now
                                            due = engine.next_due
                                            inline = engine.inline_ok()
                                            if engine.stop_requested:
                                                break
                                        continue
                            conn = None
                    if conn is not None:
                        snd = 0 if key == conn.key_c2s else 1
                        # conditions 5 and 6 (records' module docstring), read-only
                        st = conn.s0 if snd == 0 else conn.s1  # (Connection.stream)
                        sbase = conn.base_of(snd)
                        take = None
                        if sbase < 0 or not (st.ooo_starts or 0 < (
                                _u32(blk, p + 42) - sbase - st.nxt) & M32 < 0x80000000):
                            if wire:
                                st = conn.s1 if snd == 0 else conn.s0
                                sbase = conn.base_of(1 - snd)
                                if (sbase >= 0 and not st.ooo_starts
                                        and not (_u32(blk, p + 38) - sbase - st.nxt) & M32):
                                    take = st if not st.shared else conn.own_stream(1 - snd)
                                else:
                                    conn = None
                        else:
                            conn = None
                        if conn is not None:
                            # None: not verified ("skip")
                            ok = _checksum_verdict(blk, p, tlen) if verify else None
                            if ok is not False:
                                if ts > now:
                                    engine.now = now = ts
                                number += 1
                                inline_count += 1
                                if orig > incl:
                                    cut += 1
                                win = _u16(blk, p + 48)
                                conn.last_ts = now
                                conn.count(snd, wire, win)
                                zeek = conn.zeek
                                if zeek.pending or not win:    # zeek: fast path
                                    zeek.fast(snd, wire, win)
                                conn.last_seg = None
                                conn.last_off = pos
                                conn.last_number = number
                                if ok:
                                    valid = conn.valid_checksum     # read unboxed, as above
                                    if not (valid[1] if snd else valid[0]):
                                        conn.checksum_valid(snd)
                                start = 0
                                taken = 0
                                if take is not None:
                                    start, taken = take.nxt, wire
                                    if take.keep_bytes:
                                        # (a span into buf when it buffers: no copy)
                                        take.take_span(buf, base + p + 34 + thl, blk,
                                                       p + 34 + thl, wire)
                                    else:   # HalfStream.take without a byte to keep
                                        take.nxt = start + wire
                                        take.delivered += wire
                                pos = nxt
                                if conn.fast_raise:
                                    # user code runs: everything it may look at must be
                                    # current, and everything it may change read again
                                    engine.packet_number = number
                                    # (the Emitter's, called natively: engine.fast_events
                                    # is the same bound method, called as a Python object)
                                    engine.emitter.fast_events(conn, snd, start, taken)
                                    now = engine.now
                                    due = engine.next_due
                                    inline = engine.inline_ok()
                                    if take is not None and take.keep_bytes:
                                        budget.account(conn)
                                    if engine.stop_requested:
                                        break
                                    continue
                                if take is not None and take.keep_bytes:
                                    budget.account(conn)
                                continue
                elif flags & 0x17 == 0x12 and not wire and 14 + tlen <= incl:
                    # 9. the SYN/ACK that answers one SYN (tcp.quiet_synack)
                    conn = table.get(key)
                    if (conn is not None and not conn.stopped and conn.rst_pending is None
                            and not conn.masks[2]):                         # HK_SND
                        snd = 0 if key == conn.key_c2s else 1
                        options = blk[p + 54:p + 34 + thl]
                        if quiet_synack(conn, snd, _u32(blk, p + 42), options):
                            verdict = _checksum_verdict(blk, p, tlen) if verify else None
                            if verdict is not False:
                                if ts > now:
                                    engine.now = now = ts
                                number += 1
                                inline_count += 1
                                if orig > incl:
                                    cut += 1
                                seq = _u32(blk, p + 38)
                                conn.quiet_packet(snd, flags, seq, _u16(blk, p + 48), pos,
                                                  number, now, verdict)
                                syn_sequence(conn, snd, seq, options)
                                state = conn.state      # the receiver: SYN_SENT -> ESTABLISHED
                                conn.state = ((_ESTABLISHED, state[1]) if snd else
                                              (state[0], _ESTABLISHED))
                                pos = nxt
                                user_code = conn.masks[1] != 0
                                if user_code:
                                    engine.packet_number = number
                                    engine.emitter.stack(conn, _HK_RCV, 1 - snd, _SYN_SENT,
                                                         [(_SYN_SENT, _ESTABLISHED)], False, snd)
                                budget.account(conn)
                                if user_code:   # read again what it may change
                                    now = engine.now
                                    due = engine.next_due
                                    inline = engine.inline_ok()
                                    if engine.stop_requested:
                                        break
                                continue
        engine.packet_number = number
        engine.process(ts, linktype, blk[p:p + incl], orig)
        number = engine.packet_number
        if key is not None:
            # a plain frame: its flow remembers where it is rather than its decoded copy
            known = table.get(key)
            if known is not None and known.last_number == number:
                known.last_seg = None
                known.last_off = pos
        now = engine.now
        due = engine.next_due
        pos = nxt
        if engine.stop_requested:
            break
        inline = linktype == _ETHERNET and engine.inline_ok()
    engine.packet_number = number
    engine.count_inline(inline_count, cut, others)
    return pos, n, nbytes, nwire
