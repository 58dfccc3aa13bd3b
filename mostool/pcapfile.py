"""Capture files: open and validate, the classic pcap reader (also in place), one pcap writer.

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

The format is detected from the magic number, never from the file name; pcapng files are read
by :mod:`mostool.pcapng`. The file is mapped with ``mmap`` (or read in one call where mapping is
impossible, e.g. a named pipe) and decoded with precompiled ``struct.Struct.unpack_from``; the
classic-pcap loop costs one ``unpack_from`` and one slice per record and creates no object but
the yielded tuple. :class:`PcapRecords` hands a classic file to the engine to walk in place.

``-r -`` (standard input) is spooled to a temporary file by :mod:`mostool.stdio` before it
reaches this module, so it is read like any other file.

Damage is not an exception. A file that is damaged or cut short after a valid header yields
every readable frame, then stops and records exactly one warning naming the file and the byte
offset of the bad record (appended to the caller's ``warnings`` list, or issued as a
:class:`CaptureWarning` when no list is given). Damage is: a record or block running past the end
of the file, a classic record header whose captured length exceeds ``max(snaplen, 262144)``, and
the pcapng damage listed in :mod:`mostool.pcapng`.

:class:`PcapWriter` is the one pcap writer: ``-w`` of a replay (``sinks.pcap_out``) and of a
live capture (``live.LiveSource(write_to=...)``), to a file or to standard output.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import mmap
import os
import stat
import struct
import warnings as _pywarnings
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, cast

from mostool.pcapng import (
    NG_MAGIC,
    check_section_header,
    epb_timestamp,
    first_packet_block,
    pcapng_frames,
)
from mostool.sources import Frame
from mostool.stack.records import RecordLayout, epb_layout, record_layout
from mostool.stdio import STDIO, open_output

if TYPE_CHECKING:
    from mostool.replay import ReplaySource

__all__ = [
    "MAX_SNAPLEN",
    "CaptureError",
    "CaptureWarning",
    "Frame",
    "Capture",
    "PcapRecords",
    "PcapWriter",
    "open_capture",
    "read_capture",
    "records_layout",
]

#: Largest captured length a classic record may claim when the snaplen is smaller (libpcap's
#: MAXIMUM_SNAPLEN); anything bigger is a corrupt record header.
MAX_SNAPLEN = 262144


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
_U32 = {bo: struct.Struct(bo + "I") for bo in "<>"}
_PCAP_HDR_LEN = 24


# --- opening ------------------------------------------------------------------------------------


class Capture:
    """One opened, validated capture file and the generator reading it (``open_capture``)."""

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


def open_capture(path: str | os.PathLike[str], warnings: list[str] | None) -> Capture:
    """Open and validate one capture file (``CaptureError`` if it is none); its reader is
    ``.frames``. Damage found while reading goes to ``warnings`` (see the module docstring)."""
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
        cap.frames = pcapng_frames(cap, lambda what, n: _damage(cap, warnings, what, n))
    else:
        cap.frames = _no_frames(cap)
    return cap


def _validate(name: str, size: int, buf: bytes | mmap.mmap) -> Capture:
    if size == 0:
        return Capture(name, size, buf, "empty")
    magic = buf[:4]
    if magic in _PCAP_MAGICS:
        if size < _PCAP_HDR_LEN:
            raise CaptureError(
                f"{name}: pcap file header is cut short ({size} of {_PCAP_HDR_LEN} bytes)"
            )
        vmaj, vmin = _PCAP_FILE_HDR[_PCAP_MAGICS[magic][0]].unpack_from(buf, 4)[:2]
        if vmaj < 2:
            raise CaptureError(f"{name}: unsupported pcap version {vmaj}.{vmin}")
        return Capture(name, size, buf, "pcap")
    if magic == NG_MAGIC:
        why = check_section_header(size, buf)
        if why is not None:
            raise CaptureError(f"{name}: {why}")
        return Capture(name, size, buf, "pcapng")
    if magic[:2] == b"\x1f\x8b":
        raise CaptureError(f"{name}: gzip-compressed; decompress it first")
    if size < 4:
        raise CaptureError(f"{name}: too short for a capture header ({size} bytes)")
    raise CaptureError(f"{name}: not a pcap or pcapng file (magic 0x{magic.hex()})")


def _damage(cap: Capture, warnings: list[str] | None, what: str, count: int) -> None:
    msg = f"{cap.name}: {what}; read {count} packets"
    if warnings is None:
        _pywarnings.warn(msg, CaptureWarning, stacklevel=3)
    else:
        warnings.append(msg)


# --- readers ------------------------------------------------------------------------------------


def _no_frames(cap: Capture) -> Iterator[Frame]:
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

    def __init__(self, source: ReplaySource, cap: Capture, layout: RecordLayout) -> None:
        # an mmap reads like bytes: that is all the engine does with it
        self.buf = cast(bytes, cap.buf)
        self.off = _PCAP_HDR_LEN
        # pcapng: the reader's state at the first Enhanced Packet Block, where the engine starts
        self._ng = first_packet_block(cap.buf) if layout.ifid >= 0 else None
        if self._ng is not None:
            self.off = self._ng.off
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
        ng = self._ng
        if ng is None:
            cap.frames = _pcap_frames(cap, self._source.warnings, self.off, self.count,
                                      self._released, keep_open=True)
        else:
            # the last block the engine read (its trailing length says where it starts) gives
            # the timestamp a Simple Packet Block would take
            last_ts = ng.last_ts
            if self.off > ng.off:
                prev = self.off - _U32[ng.byteorder].unpack_from(cap.buf, self.off - 4)[0]
                last_ts = epb_timestamp(cap.buf, ng, prev)
            warnings = self._source.warnings
            cap.frames = pcapng_frames(
                cap, lambda what, n: _damage(cap, warnings, what, n),
                ng._replace(off=self.off, frames=self.count, last_ts=last_ts), keep_open=True)
        return self._source._top_speed(cap.frames, [])

    def close(self) -> None:
        """Let the file go (after the engine has finished with its records)."""
        cap = self._cap
        if inspect.isgenerator(cap.frames):
            cap.frames.close()      # rest()'s reader, if any, says where it stopped
        pos = self.off if cap.reading_at is None else cap.reading_at
        cap.reading_at = None
        cap.finish(pos)


def records_layout(cap: Capture) -> RecordLayout | None:
    """How ``Engine.process_records`` reads ``cap`` in place, or None where it cannot: only a
    classic pcap file (not the "modified" format, nor versions before 2.4, whose length fields
    may be swapped)."""
    if cap.kind == "pcapng":
        # the Enhanced Packet Blocks of the interface of the first one, up to any other block
        ng = first_packet_block(cap.buf)
        if ng is None:
            return None
        ifid = _U32[ng.byteorder].unpack_from(cap.buf, ng.off + 8)[0]
        linktype, _snap, units, tsoff = ng.ifaces[ifid]
        return epb_layout(ng.byteorder, units, tsoff, linktype, ifid)
    if cap.kind != "pcap":
        return None
    buf = cap.buf
    bo, units, hlen = _PCAP_MAGICS[bytes(buf[:4])]
    vmaj, vmin, _zone, _sigfigs, snaplen, network = _PCAP_FILE_HDR[bo].unpack_from(buf, 4)
    if hlen != 16 or (vmaj == 2 and vmin <= 3):
        return None
    return record_layout(bo, units, max(snaplen, MAX_SNAPLEN), network & 0x0FFFFFFF)


def _pcap_frames(cap: Capture, warnings: list[str] | None, start: int = 0, count: int = 0,
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


def read_capture(
    path: str | os.PathLike[str], warnings: list[str] | None = None
) -> Iterator[Frame]:
    """Open a pcap or pcapng file and return an iterator of its frames.

    The header is validated now: a file that is not a capture (bad magic, too short, a
    directory, unreadable) raises :class:`CaptureError` before this returns. Damage later in
    the file ends the iteration after the last readable frame and appends one message to
    ``warnings`` (or issues a :class:`CaptureWarning` when ``warnings`` is None).
    """
    return open_capture(path, warnings).frames


# --- writing ------------------------------------------------------------------------------------

_HEADER = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")


class PcapWriter:
    """A classic pcap file (microsecond timestamps, little-endian), one link type.

    ``target`` is a path (created or truncated now: ``OSError`` if impossible), ``-`` for
    standard output (``mostool.stdio``), or an open binary stream; a stream is flushed by
    ``close``, not closed. The file header is written at once when ``linktype`` is given (a
    live capture knows it), else with the first frame. ``write`` takes frames as sources yield
    them (a frame of another link type than the first is counted in ``skipped_linktype``: a
    classic pcap holds one); ``write_raw`` takes libpcap's ``(sec, usec)`` as they are, so a
    live capture written and replayed gives the very same floats. A write error never raises
    mid-run: the first one is kept in ``error`` (one line) and later writes are dropped; the
    owner reports it (``reader_gone`` says it was a closed pipe, which ends a run quietly).
    """

    def __init__(self, target: str | os.PathLike[str] | IO[bytes], linktype: int | None = None,
                 snaplen: int = MAX_SNAPLEN) -> None:
        if isinstance(target, str | os.PathLike) and os.fspath(target) == STDIO:
            target = open_output(STDIO)         # -w -: the process's own standard output
            self.path = "standard output"
            self._f: IO[bytes] | None = target
            self._owned = False
        elif isinstance(target, str | os.PathLike):
            self.path = os.fspath(target)
            self._f = open_output(self.path)     # OSError if it cannot be created
            self._owned = True
        else:
            self.path = str(getattr(target, "name", "stream"))
            self._f = target
            self._owned = False
        self.snaplen = snaplen
        self.linktype: int | None = None
        self.count = 0
        self.skipped_linktype = 0
        self.error: str | None = None
        self.reader_gone = False             # the error was a closed pipe (``-w - | head``)
        if linktype is not None:
            self._header(linktype)

    def _header(self, linktype: int) -> None:
        self.linktype = linktype
        self._put(_HEADER.pack(0xA1B2C3D4, 2, 4, 0, 0, self.snaplen, linktype))

    def _put(self, data: bytes) -> bool:
        f = self._f
        if f is None:
            return False
        try:
            f.write(data)
        except (OSError, ValueError) as exc:  # ValueError: the stream was closed under us
            self._failed(exc)
            return False
        return True

    def _failed(self, exc: Exception) -> None:
        if self.error is None:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            self.error = f"cannot write {self.path}: {reason}"
        self.reader_gone = isinstance(exc, BrokenPipeError)
        f, self._f = self._f, None
        if f is None:
            return
        if self._owned:
            with contextlib.suppress(OSError):
                f.close()
        elif self.reader_gone and self.path == "standard output":
            # the reader went away (``-w - | head``): what Python still flushes at exit goes
            # to /dev/null instead of an "Exception ignored" message
            with contextlib.suppress(OSError, ValueError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, f.fileno())
                os.close(devnull)

    def write(self, ts: float, linktype: int, data: bytes, wire_len: int) -> None:
        if self.linktype is None:
            self._header(linktype)
        elif linktype != self.linktype:
            self.skipped_linktype += 1       # a classic pcap holds one link type
            return
        sec = int(ts)
        usec = int(round((ts - sec) * 1e6))
        if usec >= 1_000_000:
            sec, usec = sec + 1, usec - 1_000_000
        self.write_raw(sec, usec, data, max(wire_len, len(data)))

    def write_raw(self, sec: int, usec: int, data: bytes, wire_len: int) -> None:
        if self._put(_RECORD.pack(sec, usec, len(data), wire_len)) and self._put(data):
            self.count += 1

    def flush(self) -> None:
        if self._f is not None:
            try:
                self._f.flush()
            except (OSError, ValueError) as exc:
                self._failed(exc)

    def close(self) -> None:
        if self.linktype is None:           # no frame: still a valid (empty) capture
            self._header(1)
        self.flush()
        f, self._f = self._f, None
        if f is not None and self._owned:
            try:
                f.close()
            except OSError as exc:
                self._f = None
                if self.error is None:
                    self.error = f"cannot write {self.path}: {exc.strerror or exc}"
