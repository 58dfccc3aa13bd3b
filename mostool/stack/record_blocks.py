"""The compiled build's loop over classic-pcap records: ``records.process_records`` read from
``bytes`` blocks.

Theory of operation. ``records.process_records`` walks the capture where it lies (the source's
mmap, or bytes) with ``struct`` unpacking: the fastest form interpreted, but compiled with mypyc
each record still costs a tuple of a dozen Python ints, and an mmap can only be typed ``Any``
(a ``bytes`` annotation refuses it at run time). This module is the same loop written for
mypyc: the capture is copied, a block of ``block_size`` bytes (256 KiB) at a time, into a
``bytes`` object the loop indexes in native code, field by field; a block starts at a record,
and a record that would cross the block's end starts the next block (a record longer than a
block gets a block of its own size), so a multi-GB capture stays mapped and only one block is
ever copied out of it. A ``bytes`` buffer (a capture read in one call) is indexed as it is.

Everything else is ``records.process_records``'s, condition for condition (its module docstring
lists them; keep the two loops to that list): offsets handed out (``Connection.last_seg``, the
returned offset) are the file's, and the general path gets the same frame bytes. Interpreted,
this loop is correct but slower than the struct one, so ``records`` picks it only when compiled
(``RecordRefs.in_blocks``; tests set it on the pure build too, with tiny blocks, so that every
record crosses a block edge: tests/test_records.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from mypy_extensions import i64

from mostool.events.types import TcpState
from mostool.stack.csum import ones_sum_at
from mostool.stack.stream import M32
from mostool.stack.tcpfields import offload_verdict

if TYPE_CHECKING:
    from mostool.stack.engine import Engine
    from mostool.stack.records import RecordLayout

__all__ = ["process_record_blocks"]

_ETHERNET: Final = 1
_RECORD_HEADER_LEN: Final = 16
_ESTABLISHED: Final = TcpState.ESTABLISHED


def _u16(b: bytes, i: i64) -> int:
    return (b[i] << 8) | b[i + 1]


def _u32(b: bytes, i: i64) -> int:
    return (b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]


def _u32_le(b: bytes, i: i64) -> i64:
    return i64(b[i]) | (i64(b[i + 1]) << 8) | (i64(b[i + 2]) << 16) | (i64(b[i + 3]) << 24)


def _u32_be(b: bytes, i: i64) -> i64:
    return (i64(b[i]) << 24) | (i64(b[i + 1]) << 16) | (i64(b[i + 2]) << 8) | i64(b[i + 3])


def _shard_hash(addrs: int, ports: int) -> int:
    # records.shard_hash (not imported: records imports this module)
    return (((addrs * 0x9E3779B1 + ports) * 0x85EBCA6B) & 0xFFFFFFFF) >> 15


def process_record_blocks(engine: Engine, buf: Any, off: int, stop: int, end: int,
                          layout: RecordLayout, max_records: int, block_size: int
                          ) -> tuple[int, int, int, int]:
    """``records.process_records(engine, buf, off, stop, end, layout, max_records)``, reading
    ``buf`` through ``bytes`` blocks of about ``block_size`` bytes (see the module docstring)."""
    little = layout.header.format[0] == "<"
    units = float(layout.units)
    max_caplen: i64 = layout.max_caplen
    linktype = layout.linktype
    inline = linktype == _ETHERNET and engine.inline_ok()
    shard = engine.shard
    shard_index = 0 if shard is None else shard[0]
    shards = 0 if shard is None else shard[1]
    verify = engine.verify_checksums
    table = engine.table
    budget = engine.budget
    number = engine.packet_number
    # the clock and the next deadline change only in process() (timers, new flows, callbacks)
    now = engine.now
    due = engine.next_due
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
    n = nbytes = nwire = inline_count = cut = 0
    while pos < stop and n != max_records:
        if pos + _RECORD_HEADER_LEN > end:
            break
        q: i64 = pos - base
        if q + _RECORD_HEADER_LEN > blen:
            blk = bytes(buf[pos:min(end, pos + size)])
            base, blen, q = pos, len(blk), 0
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
        nxt: i64 = pos + _RECORD_HEADER_LEN + incl
        if incl > max_caplen or nxt > end:
            break
        if q + _RECORD_HEADER_LEN + incl > blen:
            blk = bytes(buf[pos:min(end, pos + max(size, _RECORD_HEADER_LEN + incl))])
            base, blen, q = pos, len(blk), 0
        p: i64 = q + _RECORD_HEADER_LEN
        n += 1
        nbytes += incl
        nwire += orig
        ts = float(sec) + float(frac) / units   # as the frame reader computes it, to the bit
        key: bytes | None = None
        if inline and incl >= 54 and (ts <= now or due >= ts):
            # IPv4 without options, TCP, not a fragment, a sane header (as Decoder.decode)
            tlen = _u16(blk, p + 16)
            thl = (blk[p + 46] >> 2) & 0x3C
            wire = tlen - 20 - thl
            if (blk[p + 12] == 0x08 and blk[p + 13] == 0 and blk[p + 14] == 0x45
                    and blk[p + 20] & 0x3F == 0 and blk[p + 21] == 0 and blk[p + 23] == 6
                    and thl >= 20 and wire >= 0 and 34 + thl <= incl):
                key = blk[p + 26:p + 38]
                # another worker's packet (Engine.shard): it only moves the clock and the
                # packet count (process() drops the ones it decodes)
                if shards and _shard_hash(_u32(blk, p + 26) ^ _u32(blk, p + 30),
                                          _u16(blk, p + 34) ^ _u16(blk, p + 36)
                                          ) % shards != shard_index:
                    if ts > now:
                        engine.now = now = ts
                    number += 1
                    pos = nxt
                    continue
                # ACK without SYN/FIN/RST, all captured
                if blk[p + 47] & 0x17 == 0x10 and 14 + tlen <= incl:
                    conn = table.get(key)
                    if conn is not None:
                        state = conn.state
                        if (not conn.fast or conn.stopped or state[0] is not _ESTABLISHED
                                or state[1] is not _ESTABLISHED):
                            conn = None
                    if conn is not None:
                        snd = 0 if key == conn.key_c2s else 1
                        # conditions 5 and 6 (records' module docstring), read-only
                        st = conn.streams[snd]
                        sbase = st.base
                        take = None
                        if sbase is None or not (st.ooo_starts or 0 < (
                                _u32(blk, p + 42) - sbase - st.nxt) & M32 < 0x80000000):
                            if wire:
                                st = conn.streams[1 - snd]
                                sbase = st.base
                                if (sbase is not None and not st.ooo_starts
                                        and not (_u32(blk, p + 38) - sbase - st.nxt) & M32):
                                    take = st
                                else:
                                    conn = None
                        else:
                            conn = None
                        if conn is not None:
                            ok: bool | None = None          # not verified ("skip")
                            if verify:
                                ok = True
                                # addresses and segment: their 16-bit words sum the same as
                                # the pseudo-header's addresses plus the segment
                                rest = tlen - 14            # protocol 6 + segment length
                                if ones_sum_at(blk, p + 26, tlen - 12,
                                               (rest & 0xFFFF) + (rest >> 16)) != 0xFFFF:
                                    ok = offload_verdict(
                                        _u16(blk, p + 50),
                                        int.from_bytes(blk[p + 26:p + 34], "big") + rest)
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
                                conn.last_seg = pos
                                conn.last_number = number
                                if ok:
                                    conn.checksum_valid(snd)
                                start = 0
                                taken = 0
                                if take is not None:
                                    start, taken = take.nxt, wire
                                    if take.keep_bytes:
                                        take.take(blk, p + 34 + thl, wire)
                                    else:   # HalfStream.take without a byte to keep
                                        take.nxt = start + wire
                                        take.delivered += wire
                                pos = nxt
                                if conn.fast_raise:
                                    # user code runs: everything it may look at must be
                                    # current, and everything it may change read again
                                    engine.packet_number = number
                                    engine.fast_events(conn, snd, start, taken)
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
        engine.packet_number = number
        engine.process(ts, linktype, blk[p:p + incl], orig)
        number = engine.packet_number
        if key is not None:
            # a plain frame: its flow remembers where it is rather than its decoded copy
            known = table.get(key)
            if known is not None and known.last_number == number:
                known.last_seg = pos
        now = engine.now
        due = engine.next_due
        pos = nxt
        if engine.stop_requested:
            break
        inline = linktype == _ETHERNET and engine.inline_ok()
    engine.packet_number = number
    engine.count_inline(inline_count, cut)
    return pos, n, nbytes, nwire
