"""The pcapng reader (``mostool.pcapfile`` opens the file and dispatches here by magic number).

Theory of operation
===================

Every Section Header Block may switch byte order and starts a new interface table. Interface
Description Blocks give link type, snaplen, ``if_tsresol`` (decimal or binary resolution) and
``if_tsoffset``. Enhanced, Simple (interface 0, no timestamp: it takes the previous packet's
timestamp, 0.0 if none) and obsolete Packet Blocks are packets; every other block (name
resolution, statistics, decryption secrets, custom, unknown) is skipped. A timestamp is
``(seconds + if_tsoffset) + fraction / units``, the classic reader's formula.

Damage (a block whose length is impossible or whose trailing length differs, a packet block that
names an undefined interface, a later section with an unsupported version, a file cut short)
ends the frames after the last readable one with exactly one ``damage`` call naming the byte
offset. This module imports nothing of the file opening; it reads any mapped buffer.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Callable, Iterator
from typing import NamedTuple, Protocol

from mostool.sources import Frame

__all__ = ["NG_MAGIC", "MappedCapture", "NgState", "check_section_header", "epb_timestamp",
           "first_packet_block", "pcapng_frames"]

#: A pcapng block longer than this is called corrupt rather than cut short.
_MAX_BLOCK = 64 * 1024 * 1024

# --- pcapng -------------------------------------------------------------------------------------

NG_MAGIC = b"\x0a\x0d\x0d\x0a"
_BOM_LE = b"\x4d\x3c\x2b\x1a"
_BOM_BE = b"\x1a\x2b\x3c\x4d"
_SHB = 0x0A0D0D0A
_IDB = 0x00000001
_OPB = 0x00000002
_SPB = 0x00000003
_EPB = 0x00000006
_OPT_IF_TSRESOL = 9
_OPT_IF_TSOFFSET = 14
_SHB_MIN = 28


class _NgStructs:
    """The precompiled structs of one pcapng byte order."""

    __slots__ = ("u32", "block", "shb", "idb", "epb", "opb", "opt", "i64")

    def __init__(self, bo: str) -> None:
        self.u32 = struct.Struct(bo + "I")
        self.block = struct.Struct(bo + "II")  # type, total length
        self.shb = struct.Struct(bo + "HH")  # major, minor (after the byte-order magic)
        self.idb = struct.Struct(bo + "HHI")  # linktype, reserved, snaplen
        self.epb = struct.Struct(bo + "IIIII")  # interface, ts high, ts low, caplen, origlen
        self.opb = struct.Struct(bo + "HHIIII")  # interface, drops, ts high, ts low, cap, orig
        self.opt = struct.Struct(bo + "HH")  # option code, option length
        self.i64 = struct.Struct(bo + "q")


_NG = {_BOM_LE: _NgStructs("<"), _BOM_BE: _NgStructs(">")}


class MappedCapture(Protocol):
    """What the reader needs of an opened file: its bytes, and where to report the end."""

    @property
    def buf(self) -> bytes | mmap.mmap: ...

    reading_at: int | None

    def finish(self, pos: int) -> None: ...


def check_section_header(size: int, buf: bytes | mmap.mmap) -> str | None:
    """Why a file starting with the pcapng magic cannot be read (None: it can)."""
    if size < _SHB_MIN:
        return f"pcapng section header is cut short ({size} of {_SHB_MIN} bytes)"
    s = _NG.get(buf[8:12])
    if s is None:
        return "pcapng section header has a bad byte-order magic"
    (blen,) = s.u32.unpack_from(buf, 4)
    major, minor = s.shb.unpack_from(buf, 12)
    if major != 1:
        return f"unsupported pcapng version {major}.{minor}"
    if blen < _SHB_MIN or blen % 4:
        return f"pcapng section header has a bad length ({blen})"
    if blen > size:
        return f"pcapng section header is cut short ({size} of {blen} bytes)"
    return None


class NgState(NamedTuple):
    """Where the pcapng reader is: the offset of the next block, the section's byte order
    (``"<"`` or ``">"``) and interfaces (linktype, snaplen or 0, units per second, offset
    seconds), the frames read and the last packet's timestamp (a Simple Packet Block's)."""

    off: int
    byteorder: str
    ifaces: list[tuple[int, int, int, int]]
    frames: int
    last_ts: float


def first_packet_block(buf: bytes | mmap.mmap) -> NgState | None:
    """The reader's state at the first packet block of a pcapng file when that block is a
    sound Enhanced Packet Block of a defined interface (``off`` is that block's: the engine may
    read the EPBs from there in place); None when it is another block or anything before it is
    damaged (the frame reader reads, and reports, everything then)."""
    end = len(buf)
    s = _NG.get(bytes(buf[8:12]))
    ifaces: list[tuple[int, int, int, int]] = []
    off = 0
    while s is not None and off + 12 <= end:
        btype, blen = s.block.unpack_from(buf, off)
        if btype == _SHB:
            if off + _SHB_MIN > end:
                return None
            s = _NG.get(bytes(buf[off + 8:off + 12]))
            if s is None:
                return None
            (blen,) = s.u32.unpack_from(buf, off + 4)
            if s.shb.unpack_from(buf, off + 12)[0] != 1 or blen < _SHB_MIN:
                return None
            ifaces = []
        if blen < 12 or blen % 4 or blen > _MAX_BLOCK or blen > end - off:
            return None
        nxt = off + blen
        if s.u32.unpack_from(buf, nxt - 4)[0] != blen:
            return None
        if btype == _EPB:
            if blen < 32 or s.u32.unpack_from(buf, off + 8)[0] >= len(ifaces):
                return None
            return NgState(off, "<" if s is _NG[_BOM_LE] else ">", ifaces, 0, 0.0)
        if btype in (_OPB, _SPB):
            return None
        if btype == _IDB:
            if blen < 20:
                return None
            ifaces.append(_parse_idb(s, buf, off, nxt))
        off = nxt
    return None


def epb_timestamp(buf: bytes | mmap.mmap, state: NgState, off: int) -> float:
    """The timestamp of the Enhanced Packet Block at ``off`` (of ``state``'s section), as the
    frame reader computes it."""
    s = _NG[_BOM_LE if state.byteorder == "<" else _BOM_BE]
    ifid, hi, lo, _incl, _orig = s.epb.unpack_from(buf, off + 8)
    _linktype, _snap, units, tsoff = state.ifaces[ifid]
    sec, frac = divmod(hi << 32 | lo, units)
    ts: float = (sec + tsoff) + frac / units
    return ts


def pcapng_frames(cap: MappedCapture, damage: Callable[[str, int], None],
                  resume: NgState | None = None, keep_open: bool = False) -> Iterator[Frame]:
    """The frames of a pcapng file whose first section header ``check_section_header``
    accepted; damage ends the iteration with one ``damage(what, frames read)`` call. From
    ``resume`` on when given; with ``keep_open`` the file stays mapped at the end (its owner
    finishes it)."""
    buf = cap.buf
    end = len(buf)
    s = _NG[bytes(buf[8:12])]
    # per interface: (linktype, snaplen or 0, units per second, offset seconds)
    ifaces: list[tuple[int, int, int, int]] = []
    off = 0
    n = 0
    last_ts = 0.0
    if resume is not None:
        s = _NG[_BOM_LE if resume.byteorder == "<" else _BOM_BE]
        ifaces = list(resume.ifaces)
        off, n, last_ts = resume.off, resume.frames, resume.last_ts
    what = ""
    try:
        while off < end:
            left = end - off
            if left < 12:
                what = (
                    f"block header at byte offset {off} is cut short (needs 12 bytes, {left} left)"
                )
                break
            btype, blen = s.block.unpack_from(buf, off)
            if btype == _SHB:
                ns = _NG.get(buf[off + 8 : off + 12]) if left >= _SHB_MIN else None
                if ns is None:
                    if left < _SHB_MIN:
                        what = (
                            f"section header at byte offset {off} is cut short"
                            f" (needs {_SHB_MIN} bytes, {left} left)"
                        )
                    else:
                        what = f"corrupt section header at byte offset {off} (bad byte-order magic)"
                    break
                s = ns
                (blen,) = s.u32.unpack_from(buf, off + 4)
                major, minor = s.shb.unpack_from(buf, off + 12)
                if major != 1:
                    what = (
                        f"section at byte offset {off} has unsupported pcapng version"
                        f" {major}.{minor}"
                    )
                    break
                if blen < _SHB_MIN:
                    what = f"corrupt section header at byte offset {off} (length {blen})"
                    break
                ifaces = []
            if blen < 12 or blen % 4 or blen > _MAX_BLOCK:
                what = (
                    f"corrupt block header at byte offset {off} (type 0x{btype:x}, length {blen})"
                )
                break
            if blen > left:
                what = f"block at byte offset {off} is cut short (needs {blen} bytes, {left} left)"
                break
            nxt = off + blen
            (trailer,) = s.u32.unpack_from(buf, nxt - 4)
            if trailer != blen:
                what = (
                    f"corrupt block at byte offset {off} (length {blen}, trailing length {trailer})"
                )
                break
            if btype in (_EPB, _OPB):
                if blen < 32:
                    what = f"corrupt packet block at byte offset {off} (length {blen})"
                    break
                if btype == _EPB:
                    ifid, hi, lo, incl, orig = s.epb.unpack_from(buf, off + 8)
                else:
                    ifid, _drops, hi, lo, incl, orig = s.opb.unpack_from(buf, off + 8)
                start = off + 28
                if ifid >= len(ifaces):
                    what = (
                        f"packet block at byte offset {off} names interface {ifid}, but the"
                        f" section defines {len(ifaces)}"
                    )
                    break
                if incl > nxt - 4 - start:
                    what = (
                        f"corrupt packet block at byte offset {off} (captured length {incl}"
                        f" > block room {nxt - 4 - start})"
                    )
                    break
                linktype, _snap, units, tsoff = ifaces[ifid]
                sec, frac = divmod(hi << 32 | lo, units)
                last_ts = (sec + tsoff) + frac / units
                n += 1
                off = nxt
                yield (last_ts, linktype, buf[start : start + incl], orig)
                continue
            if btype == _SPB:
                if blen < 16:
                    what = f"corrupt packet block at byte offset {off} (length {blen})"
                    break
                if not ifaces:
                    what = f"simple packet block at byte offset {off} but no interface defined"
                    break
                linktype, snap, _units, _tsoff = ifaces[0]
                (orig,) = s.u32.unpack_from(buf, off + 8)
                incl = min(orig, blen - 16)
                if snap:
                    incl = min(incl, snap)
                start = off + 12
                n += 1
                off = nxt
                yield (last_ts, linktype, buf[start : start + incl], orig)
                continue
            if btype == _IDB:
                if blen < 20:
                    what = f"corrupt interface block at byte offset {off} (length {blen})"
                    break
                ifaces.append(_parse_idb(s, buf, off, nxt))
            off = nxt
        if what:
            damage(what, n)
    finally:
        if keep_open:
            cap.reading_at = off
        else:
            cap.finish(off)


def _parse_idb(
    s: _NgStructs, buf: bytes | mmap.mmap, off: int, nxt: int
) -> tuple[int, int, int, int]:
    linktype, _reserved, snaplen = s.idb.unpack_from(buf, off + 8)
    units = 1_000_000
    tsoff = 0
    p = off + 16
    q = nxt - 4
    while p + 4 <= q:
        code, olen = s.opt.unpack_from(buf, p)
        if code == 0:
            break
        v = p + 4
        if v + olen > q:
            break  # malformed options: keep what was read
        if code == _OPT_IF_TSRESOL and olen >= 1:
            r = buf[v]
            units = 1 << (r & 0x7F) if r & 0x80 else 10**r
        elif code == _OPT_IF_TSOFFSET and olen >= 8:
            (tsoff,) = s.i64.unpack_from(buf, v)
        p = v + ((olen + 3) & ~3)
    return linktype, snaplen, units, tsoff

