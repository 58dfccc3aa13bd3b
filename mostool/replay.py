"""Capture-file source: a pcap/pcapng reader and the replay source.

Theory of operation
===================

``read_capture(path)`` opens one file, validates its header *eagerly* (a file that is not a
capture raises :class:`CaptureError` before the first frame) and returns a generator of frames,
each a plain tuple ``(ts, linktype, data, wire_len)``:

- ``ts`` float seconds, computed as ``seconds + fraction / units`` (plus ``if_tsoffset`` for
  pcapng), the same formula for every format, so the same timestamp gives the same float;
- ``linktype`` the LINKTYPE_* number (classic pcap: the header field ``& 0x0FFFFFFF``, the upper
  bits carry FCS information);
- ``data`` the captured bytes (a ``bytes`` object, the only copy made);
- ``wire_len`` the original length on the wire, as recorded.

The format is detected from the magic number, never from the file name. The file is mapped with
``mmap`` (or read in one call where mapping is impossible, e.g. a pipe) and decoded with
precompiled ``struct.Struct.unpack_from``; the classic-pcap loop costs one ``unpack_from`` and
one slice per record and creates no object but the yielded tuple.

Damage is not an exception. A file that is damaged or cut short after a valid header yields
every readable frame, then stops and records exactly one warning naming the file and the byte
offset of the bad record (appended to the caller's ``warnings`` list, or issued as a
:class:`CaptureWarning` when no list is given). Damage is: a record or block running past the end
of the file, a classic record header whose captured length exceeds ``max(snaplen, 262144)``, a
pcapng block whose length is impossible or whose trailing length differs, a packet block that
names an undefined interface, a later pcapng section with an unsupported version.

pcapng: every Section Header Block may switch byte order and starts a new interface table.
Interface Description Blocks give link type, snaplen, ``if_tsresol`` (decimal or binary
resolution) and ``if_tsoffset``. Enhanced, Simple (interface 0, no timestamp: it takes the
previous packet's timestamp, 0.0 if none) and obsolete Packet Blocks are packets; every other
block (name resolution, statistics, decryption secrets, custom, unknown) is skipped.

:class:`ReplaySource` is the source the engine runs: several files are merged by timestamp
(stable: ties keep file order, and frames of one file are never reordered, even where its
timestamps go backwards), optionally paced. Pacing never changes a timestamp; it only decides
when a frame is handed out, against an absolute schedule from the first frame so that sleeping
errors do not accumulate, and it records how far behind that schedule delivery fell.
"""

from __future__ import annotations

import heapq
import inspect
import math
import mmap
import os
import stat
import struct
import time
import warnings as _pywarnings
from collections.abc import Callable, Iterator, Sequence
from operator import itemgetter
from typing import Any, cast

from mostool._callable import make_callable
from mostool.stack.records import RecordLayout, record_layout

__all__ = [
    "CaptureError",
    "CaptureWarning",
    "Frame",
    "ReplaySource",
    "read_capture",
    "replay",
]

Frame = tuple[float, int, bytes, int]
"""``(ts seconds, linktype, captured bytes, wire length)``."""

#: Largest captured length a classic record may claim when the snaplen is smaller (libpcap's
#: MAXIMUM_SNAPLEN); anything bigger is a corrupt record header.
MAX_SNAPLEN = 262144
#: A pcapng block longer than this is called corrupt rather than cut short.
_MAX_BLOCK = 64 * 1024 * 1024
#: Longest single sleep while pacing, so that ``stop()`` from another thread or a signal
#: handler takes effect promptly even inside a long recorded gap.
_SLEEP_SLICE = 0.25


class CaptureError(Exception):
    """A file that cannot be read as a capture at all (raised at open, before any frame)."""


class CaptureWarning(UserWarning):
    """Damage found while reading, issued when the caller passed no ``warnings`` list."""


# --- classic pcap -------------------------------------------------------------------------------

# magic bytes -> (byte order, fraction units per second, record header length)
_PCAP_MAGICS: dict[bytes, tuple[str, int, int]] = {
    b"\xd4\xc3\xb2\xa1": ("<", 1_000_000, 16),
    b"\xa1\xb2\xc3\xd4": (">", 1_000_000, 16),
    b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000, 16),
    b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000, 16),
    # Alexey Kuznetzov's "modified" pcap: 8 more bytes per record header (ifindex, protocol...).
    b"\x34\xcd\xb2\xa1": ("<", 1_000_000, 24),
    b"\xa1\xb2\xcd\x34": (">", 1_000_000, 24),
}
_PCAP_FILE_HDR = {bo: struct.Struct(bo + "HHiIII") for bo in "<>"}  # after the magic
_PCAP_REC_HDR = {bo: struct.Struct(bo + "IIII") for bo in "<>"}  # sec, frac, caplen, len
_PCAP_HDR_LEN = 24

# --- pcapng -------------------------------------------------------------------------------------

_NG_MAGIC = b"\x0a\x0d\x0d\x0a"
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


# --- opening ------------------------------------------------------------------------------------


class _Capture:
    """One opened, validated capture file and the generator reading it."""

    __slots__ = ("name", "size", "buf", "kind", "frames", "_final_pos", "reading_at")

    def __init__(self, name: str, size: int, buf: bytes | mmap.mmap, kind: str) -> None:
        self.name = name
        self.size = size
        self.buf = buf
        self.kind = kind  # "pcap", "pcapng" or "empty"
        self.frames: Iterator[Frame] = iter(())
        self._final_pos: int | None = None
        self.reading_at: int | None = None  # set while PcapRecords reads it in place

    def position(self) -> int:
        """Bytes of the file consumed so far (for a progress display)."""
        if self._final_pos is not None:
            return self._final_pos
        if self.reading_at is not None:
            return self.reading_at
        # The reading loop keeps its offset in a local; reading it from the suspended generator
        # (a documented introspection API) costs nothing per record.
        local = inspect.getgeneratorlocals(self.frames) if inspect.isgenerator(self.frames) else {}
        off = local.get("off", 0)
        return off if isinstance(off, int) else 0

    def finish(self, pos: int) -> None:
        self._final_pos = pos
        buf = self.buf
        self.buf = b""
        if isinstance(buf, mmap.mmap):
            buf.close()

    def close(self) -> None:
        gen = self.frames
        if inspect.isgenerator(gen):
            gen.close()
        if self._final_pos is None:
            self.finish(0)


def _load(path: str, name: str) -> tuple[int, bytes | mmap.mmap]:
    """Map (or read) the whole file; OS errors become CaptureError."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if stat.S_ISREG(st.st_mode):
                if st.st_size == 0:
                    return 0, b""
                try:
                    return st.st_size, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                except (OSError, ValueError):
                    pass
            data = f.read()
            return len(data), data
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise CaptureError(f"{name}: cannot read file ({reason})") from None
    except ValueError as e:  # e.g. an embedded NUL in the path
        raise CaptureError(f"{name}: cannot read file ({e})") from None


def _open(path: str | os.PathLike[str], warnings: list[str] | None) -> _Capture:
    path = os.fspath(path)
    # messages are one line: a name with control characters (newline, NUL) is shown escaped
    name = path if path.isprintable() else repr(path)
    size, buf = _load(path, name)
    try:
        cap = _validate(name, size, buf)
    except CaptureError:
        if isinstance(buf, mmap.mmap):
            buf.close()
        raise
    if cap.kind == "pcap":
        cap.frames = _pcap_frames(cap, warnings)
    elif cap.kind == "pcapng":
        cap.frames = _pcapng_frames(cap, warnings)
    else:
        cap.frames = _no_frames(cap)
    return cap


def _validate(name: str, size: int, buf: bytes | mmap.mmap) -> _Capture:
    if size == 0:
        return _Capture(name, size, buf, "empty")
    magic = buf[:4]
    if magic in _PCAP_MAGICS:
        if size < _PCAP_HDR_LEN:
            raise CaptureError(
                f"{name}: pcap file header is cut short ({size} of {_PCAP_HDR_LEN} bytes)"
            )
        vmaj, vmin = _PCAP_FILE_HDR[_PCAP_MAGICS[magic][0]].unpack_from(buf, 4)[:2]
        if vmaj < 2:
            raise CaptureError(f"{name}: unsupported pcap version {vmaj}.{vmin}")
        return _Capture(name, size, buf, "pcap")
    if magic == _NG_MAGIC:
        if size < _SHB_MIN:
            raise CaptureError(
                f"{name}: pcapng section header is cut short ({size} of {_SHB_MIN} bytes)"
            )
        s = _NG.get(buf[8:12])
        if s is None:
            raise CaptureError(f"{name}: pcapng section header has a bad byte-order magic")
        (blen,) = s.u32.unpack_from(buf, 4)
        major, minor = s.shb.unpack_from(buf, 12)
        if major != 1:
            raise CaptureError(f"{name}: unsupported pcapng version {major}.{minor}")
        if blen < _SHB_MIN or blen % 4:
            raise CaptureError(f"{name}: pcapng section header has a bad length ({blen})")
        if blen > size:
            raise CaptureError(
                f"{name}: pcapng section header is cut short ({size} of {blen} bytes)"
            )
        return _Capture(name, size, buf, "pcapng")
    if magic[:2] == b"\x1f\x8b":
        raise CaptureError(f"{name}: gzip-compressed; decompress it first")
    if size < 4:
        raise CaptureError(f"{name}: too short for a capture header ({size} bytes)")
    raise CaptureError(f"{name}: not a pcap or pcapng file (magic 0x{magic.hex()})")


def _damage(cap: _Capture, warnings: list[str] | None, what: str, count: int) -> None:
    msg = f"{cap.name}: {what}; read {count} packets"
    if warnings is None:
        _pywarnings.warn(msg, CaptureWarning, stacklevel=3)
    else:
        warnings.append(msg)


# --- readers ------------------------------------------------------------------------------------


def _no_frames(cap: _Capture) -> Iterator[Frame]:
    cap.finish(0)
    yield from ()


_RELEASE_STEP = 32 << 20


def _can_release(buf: bytes | mmap.mmap) -> bool:
    return isinstance(buf, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED")


def _release_behind(buf: bytes | mmap.mmap, released: int, off: int) -> int:
    """Hand the mapped pages from ``released`` up to the page of ``off`` back to the kernel
    (they are file-backed: reading them again just faults); returns the new release point."""
    upto = off - off % mmap.PAGESIZE
    buf.madvise(mmap.MADV_DONTNEED, released, upto - released)  # type: ignore[union-attr]
    return upto


class PcapRecords:
    """A classic pcap file handed to ``Engine.process_records`` in place (ReplaySource at top
    speed over one file; see ``ReplaySource.pcap_records``).

    The consumer walks ``buf`` from ``off`` and reports each step with ``advance``; ``rest()``
    then reads what is left frame by frame (the record that stopped the engine, with its damage
    warning, and trailing bytes); ``close()`` at the very end, once the engine is finished.
    """

    def __init__(self, source: ReplaySource, cap: _Capture, layout: RecordLayout) -> None:
        # an mmap reads like bytes: that is all the engine does with it
        self.buf = cast(bytes, cap.buf)
        self.off = _PCAP_HDR_LEN
        self.end = len(cap.buf)
        self.layout = layout
        self.count = 0
        self._source = source
        self._cap = cap
        self._released = 0
        self._next_release = _RELEASE_STEP if _can_release(cap.buf) else math.inf
        cap.reading_at = self.off

    def advance(self, off: int, records: int, nbytes: int, nwire: int) -> None:
        """The records up to byte ``off`` were consumed."""
        self.off = off
        self.count += records
        src = self._source
        src._packets += records
        src._bytes += nbytes
        src._wire_bytes += nwire
        self._cap.reading_at = off
        if off >= self._next_release:
            self._released = _release_behind(self._cap.buf, self._released, off)
            self._next_release = off + _RELEASE_STEP

    def rest(self) -> Iterator[Frame]:
        """The frames from ``off`` on, read by the frame reader (the file stays mapped until
        ``close``: flows may still refer to records by offset)."""
        cap = self._cap
        cap.frames = _pcap_frames(cap, self._source.warnings, self.off, self.count,
                                  self._released, keep_open=True)
        return self._source._top_speed(cap.frames, [])

    def close(self) -> None:
        """Let the file go (after the engine has finished with its records)."""
        cap = self._cap
        pos = self.off if cap.reading_at is None else cap.reading_at
        cap.reading_at = None
        cap.finish(pos)


def _pcap_frames(cap: _Capture, warnings: list[str] | None, start: int = 0, count: int = 0,
                 released: int = 0, keep_open: bool = False) -> Iterator[Frame]:
    """The frames of a classic pcap file; from byte ``start`` (a record header) when resuming
    after ``count`` frames, with the pages before ``released`` already handed back; with
    ``keep_open`` the file stays mapped at the end (its owner finishes it)."""
    buf = cap.buf
    end = len(buf)
    bo, units, hlen = _PCAP_MAGICS[bytes(buf[:4])]
    vmaj, vmin, _zone, _sigfigs, snaplen, network = _PCAP_FILE_HDR[bo].unpack_from(buf, 4)
    linktype = network & 0x0FFFFFFF
    limit = max(snaplen, MAX_SNAPLEN)
    scale = float(units)
    # libpcap before format 2.3 wrote the two lengths the other way round; in 2.3 files either
    # order occurs (libpcap and Wireshark read them the same way).
    swap = vmaj == 2 and vmin <= 3
    always_swap = vmaj == 2 and vmin < 3
    unpack = _PCAP_REC_HDR[bo].unpack_from
    off = start or _PCAP_HDR_LEN
    n = count
    # Pages already read are handed back to the kernel as the reader moves on, so a multi-GB
    # capture does not stay resident (they are file-backed: reading them again just faults).
    release = _can_release(buf)
    next_release = released + _RELEASE_STEP if release else math.inf
    try:
        last = end - hlen
        while off <= last:
            if off >= next_release:
                released = _release_behind(buf, released, off)
                next_release = off + _RELEASE_STEP
            sec, frac, incl, orig = unpack(buf, off)
            if swap and (always_swap or incl > orig):
                incl, orig = orig, incl
            start = off + hlen
            stop = start + incl
            if incl > limit or stop > end:
                if incl > limit:
                    what = (
                        f"corrupt record header at byte offset {off} (captured length {incl}"
                        f" > maximum {limit})"
                    )
                else:
                    what = (
                        f"record at byte offset {off} is cut short (needs {hlen + incl} bytes,"
                        f" {end - off} left)"
                    )
                _damage(cap, warnings, what, n)
                return
            off = stop
            n += 1
            yield (sec + frac / scale, linktype, buf[start:stop], orig)
        if off < end:
            what = (
                f"record header at byte offset {off} is cut short (needs {hlen} bytes,"
                f" {end - off} left)"
            )
            _damage(cap, warnings, what, n)
    finally:
        if keep_open:
            cap.reading_at = off
        else:
            cap.finish(off)


def _pcapng_frames(cap: _Capture, warnings: list[str] | None) -> Iterator[Frame]:
    buf = cap.buf
    end = len(buf)
    s = _NG[bytes(buf[8:12])]
    # per interface: (linktype, snaplen or 0, units per second, offset seconds)
    ifaces: list[tuple[int, int, int, int]] = []
    off = 0
    n = 0
    last_ts = 0.0
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
            _damage(cap, warnings, what, n)
    finally:
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


# --- public API ---------------------------------------------------------------------------------


def read_capture(
    path: str | os.PathLike[str], warnings: list[str] | None = None
) -> Iterator[Frame]:
    """Open a pcap or pcapng file and return an iterator of its frames.

    The header is validated now: a file that is not a capture (bad magic, too short, a
    directory, unreadable) raises :class:`CaptureError` before this returns. Damage later in
    the file ends the iteration after the last readable frame and appends one message to
    ``warnings`` (or issues a :class:`CaptureWarning` when ``warnings`` is None).
    """
    return _open(path, warnings).frames


def _check_rate(name: str, value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number, not {value!r}")


class ReplaySource:
    """Frames from one or more capture files, merged by timestamp and optionally paced.

    Every file is opened (and its header validated) here; the first unusable one raises
    :class:`CaptureError`. Pacing: by default frames come at top speed; ``speed=k`` replays the
    recorded timing k times faster; ``pps`` and ``mbps`` send at a fixed packet or bit rate (by
    wire length); ``max_gap`` caps any single wait. At most one of speed, pps, mbps.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
        *,
        speed: float | None = None,
        pps: float | None = None,
        mbps: float | None = None,
        max_gap: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(paths, str | os.PathLike):
            paths = [paths]
        self._paths: list[str] = [os.fspath(p) for p in paths]
        if not self._paths:
            raise ValueError("ReplaySource needs at least one capture file")
        for key, value in (("speed", speed), ("pps", pps), ("mbps", mbps)):
            _check_rate(key, value)
        if sum(v is not None for v in (speed, pps, mbps)) > 1:
            raise ValueError("give at most one of speed, pps, mbps")
        if max_gap is not None and not max_gap >= 0:  # also refuses NaN
            raise ValueError(f"max_gap must be >= 0, not {max_gap!r}")
        self._speed = speed
        self._pps = pps
        self._mbps = mbps
        self._max_gap = max_gap
        self._sleep = sleep
        self._clock = clock
        # a paced replay waiting for its next frame: until this clock() time (None otherwise)
        self.wait_until: float | None = None
        self.warnings: list[str] = []
        self._caps = self._open_all()
        self._started = False
        self._stopped = False
        self._packets = 0
        self._bytes = 0
        self._wire_bytes = 0
        self._lag_max = 0.0
        self._lag_last = 0.0
        names = [os.path.basename(p) or p for p in self._paths]
        self.name: str = (
            ", ".join(names) if len(names) <= 3 else f"{names[0]} (+{len(names) - 1} more)"
        )
        self.total_bytes: int = sum(c.size for c in self._caps)

    def _open_all(self) -> list[_Capture]:
        caps: list[_Capture] = []
        try:
            for p in self._paths:
                caps.append(_open(p, self.warnings))
        except BaseException:
            for c in caps:
                c.close()
            raise
        return caps

    @property
    def paced(self) -> bool:
        return self._speed is not None or self._pps is not None or self._mbps is not None

    @property
    def position_bytes(self) -> int:
        """Bytes of the files read so far (compare with ``total_bytes``)."""
        return sum(c.position() for c in self._caps)

    def stop(self) -> None:
        """End ``frames()`` at the next frame (safe from a callback or a signal handler)."""
        self._stopped = True

    def close(self) -> None:
        """Release the files (``frames()`` ends)."""
        for c in self._caps:
            c.close()

    def stats(self) -> dict[str, float | int]:
        return {
            "packets": self._packets,
            "bytes": self._bytes,
            "wire_bytes": self._wire_bytes,
            "files": len(self._caps),
            "lag_max": self._lag_max,
            "lag_last": self._lag_last,
            "position_bytes": self.position_bytes,
            "total_bytes": self.total_bytes,
            "warnings": len(self.warnings),
        }

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def pcap_records(self) -> PcapRecords | None:
        """The capture for ``Engine.process_records`` to read in place, instead of
        ``frames()``: only at top speed, for one classic pcap file (not the "modified" format,
        nor versions before 2.4, whose length fields may be swapped), on the first read."""
        if self.paced or len(self._caps) != 1 or self._started or self._stopped:
            return None
        cap = self._caps[0]
        buf = cap.buf
        if cap.kind != "pcap":
            return None
        bo, units, hlen = _PCAP_MAGICS[bytes(buf[:4])]
        vmaj, vmin, _zone, _sigfigs, snaplen, network = _PCAP_FILE_HDR[bo].unpack_from(buf, 4)
        if hlen != 16 or (vmaj == 2 and vmin <= 3):
            return None
        self._started = True
        return PcapRecords(self, cap, record_layout(bo, units, max(snaplen, MAX_SNAPLEN),
                                                    network & 0x0FFFFFFF))

    def set_waiter(self, sleep: Callable[[float], None]) -> None:
        """Call ``sleep(seconds)`` for the pacing waits (``mostool watch`` keeps its view
        live and its keys read while a paced replay waits for a frame due later)."""
        self._sleep = sleep

    def frames(self) -> Iterator[Frame]:
        """The frames of all files in timestamp order (stable), paced as configured.

        A second call reads the files again from the start (counters and warnings reset).
        """
        if self._started:
            self.close()
            self.warnings.clear()
            self._caps = self._open_all()
            self._stopped = False
            self._packets = self._bytes = self._wire_bytes = 0
            self._lag_max = self._lag_last = 0.0
        self._started = True
        caps = self._caps
        src: Iterator[Frame]
        if len(caps) == 1:
            src = caps[0].frames
        else:
            src = heapq.merge(*(c.frames for c in caps), key=itemgetter(0))
        return self._paced_frames(src, caps) if self.paced else self._top_speed(src, caps)

    def _top_speed(self, src: Iterator[Frame], caps: list[_Capture]) -> Iterator[Frame]:
        try:
            if self._stopped:
                return
            for frame in src:
                self._packets += 1
                self._bytes += len(frame[2])
                self._wire_bytes += frame[3]
                yield frame
                if self._stopped:
                    return
        finally:
            for c in caps:
                c.close()

    def _paced_frames(self, src: Iterator[Frame], caps: list[_Capture]) -> Iterator[Frame]:
        clock, sleep = self._clock, self._sleep
        speed, pps, mbps, max_gap = self._speed, self._pps, self._mbps, self._max_gap
        cap_gap = math.inf if max_gap is None else max_gap
        start = 0.0  # clock() at the first frame
        due = 0.0  # seconds after start the current frame is due
        base_due = 0.0  # speed mode: due time of base_ts (rebased whenever a gap is capped)
        base_ts = hi_ts = 0.0  # speed mode: timestamps, hi_ts the highest seen so far
        prev_wire = 0
        first = True
        try:
            for frame in src:
                if self._stopped:
                    return
                ts = frame[0]
                if first:
                    first = False
                    start = clock()
                    base_ts = hi_ts = ts
                elif speed is not None:
                    # Follow the highest timestamp seen: a timestamp going backwards is sent at
                    # once and does not make later frames wait for the same interval again.
                    if ts > hi_ts:
                        if (ts - hi_ts) / speed > cap_gap:
                            base_due += (hi_ts - base_ts) / speed + cap_gap
                            base_ts = ts
                        hi_ts = ts
                        due = base_due + (hi_ts - base_ts) / speed
                elif pps is not None:
                    due += min(1.0 / pps, cap_gap)
                elif mbps is not None:
                    due += min(prev_wire * 8 / (mbps * 1e6), cap_gap)
                target = start + due
                now = clock()
                if now < target:
                    self.wait_until = target
                while now < target:
                    if self._stopped:
                        return
                    sleep(min(target - now, _SLEEP_SLICE))
                    sleep = self._sleep          # set_waiter may change it during a wait
                    now = clock()
                self.wait_until = None
                lag = now - target
                self._lag_last = lag
                if lag > self._lag_max:
                    self._lag_max = lag
                prev_wire = frame[3]
                self._packets += 1
                self._bytes += len(frame[2])
                self._wire_bytes += prev_wire
                yield frame
                if self._stopped:
                    return
        finally:
            for c in caps:
                c.close()


def replay(*paths: str | os.PathLike[str], **pacing: Any) -> ReplaySource:
    """``ReplaySource(paths, **pacing)``: e.g. ``replay("a.pcap", "b.pcapng", speed=2)``."""
    return ReplaySource(list(paths), **pacing)


make_callable(__name__, replay)
