"""The route phase's pieces: whole files, or byte ranges of one large classic pcap.

A classic pcap has no index, so ``split_points`` finds record boundaries near evenly spaced
offsets by a record-boundary scan: from each guess it looks for the first offset where a chain
of records parses plausibly (lengths within the snap length, fractions below a second, the
seconds close to the file's first record and to each other) up to the chain's length or the
end of the file. The route task of a range walks its records from its start and must land
exactly on the next range's start; if it does not, the scan was wrong and the run stops with
a clear error (never a silent difference). ``range_frames`` reads one range as the replay
reader reads the whole file (the same timestamp formula, so the same floats).
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Iterator
from typing import Any

from mostool.errors import DistError

__all__ = ["split_points", "range_frames", "plan_pieces"]

_MAGICS = {b"\xd4\xc3\xb2\xa1": ("<", 1_000_000), b"\xa1\xb2\xc3\xd4": (">", 1_000_000),
           b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000), b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000)}
_MAX_SNAPLEN = 262144
_CHAIN = 8
_SCAN = 1 << 20                 # bytes searched after a guess
_MIN_PIECE = 16 << 20           # a range smaller than this is not worth a task


def _header(buf: Any) -> tuple[struct.Struct, int, int, int] | None:
    """(record header struct, units, captured length limit, linktype) of a splittable classic
    pcap (not the modified format, not a version whose length fields may be swapped)."""
    if len(buf) < 24 or bytes(buf[:4]) not in _MAGICS:
        return None
    bo, units = _MAGICS[bytes(buf[:4])]
    vmaj, vmin, _zone, _sig, snaplen, network = struct.unpack_from(bo + "HHiIII", buf, 4)
    if vmaj != 2 or vmin < 4:
        return None
    return struct.Struct(bo + "IIII"), units, max(snaplen, _MAX_SNAPLEN), network & 0x0FFFFFFF


def _chain_ok(buf: Any, off: int, hdr: struct.Struct, units: int, limit: int,
              sec0: int) -> bool:
    end = len(buf)
    prev = sec0
    for _ in range(_CHAIN):
        if off == end:
            return True
        if off + 16 > end:
            return False
        sec, frac, incl, orig = hdr.unpack_from(buf, off)
        if (incl > limit or incl > orig or orig > limit or frac >= units
                or abs(sec - prev) > 3600 or off + 16 + incl > end):
            return False
        prev = sec
        off += 16 + incl
    return True


def split_points(path: str, pieces: int) -> list[int] | None:
    """Byte offsets of record boundaries cutting ``path`` into about ``pieces`` ranges
    (the first is 24, the last the file's size), or None when it is not split."""
    if pieces < 2:
        return None
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < 2 * _MIN_PIECE:
                return None
            buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None
    try:
        head = _header(buf)
        if head is None or size < 40:
            return None
        hdr, units, limit, _linktype = head
        sec0 = hdr.unpack_from(buf, 24)[0]
        pieces = min(pieces, size // _MIN_PIECE)
        points = [24]
        for k in range(1, pieces):
            guess = size * k // pieces
            for off in range(guess, min(guess + _SCAN, size - 16)):
                if _chain_ok(buf, off, hdr, units, limit, sec0):
                    if off > points[-1]:
                        points.append(off)
                    break
        points.append(size)
        return points if len(points) > 2 else None
    finally:
        buf.close()


def range_frames(path: str, start: int, stop: int, last: bool, warnings: list[str],
                 state: dict[str, Any]) -> Iterator[tuple[float, int, bytes, int]]:
    """The frames of the records starting in [start, stop) of a classic pcap. A middle range
    must end exactly at ``stop``; damage (a corrupt or cut-short record) ends the range with
    one warning and ``state["damaged"]`` set, as it ends a whole-file read."""
    with open(path, "rb") as f:
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        head = _header(buf)
        if head is None:
            raise DistError(f"{path}: no longer a classic pcap that can be split")
        hdr, units, limit, linktype = head
        unpack = hdr.unpack_from
        end = len(buf)
        off = start
        n = 0
        while off < stop:
            if off + 16 > end:
                warnings.append(f"{path}: record header at byte offset {off} is cut short")
                state["damaged"] = True
                return
            sec, frac, incl, orig = unpack(buf, off)
            p = off + 16
            if incl > limit or p + incl > end:
                warnings.append(f"{path}: corrupt or cut-short record at byte offset {off}")
                state["damaged"] = True
                return
            n += 1
            yield sec + frac / units, linktype, buf[p:p + incl], orig
            off = p + incl
        if off != stop and not last:
            raise DistError(f"{path}: the record-boundary scan went wrong (the range from "
                            f"{start} ends at {off}, not {stop}); run it unsplit")
    finally:
        buf.close()


def plan_pieces(paths: list[str], partitions: int) -> list[tuple[int, str, int | None,
                                                                 int | None, bool]]:
    """(file number, path, start, stop, last range of the file) for every route task: whole
    files, and for fewer files than twice the partitions, classic pcaps cut into ranges."""
    per_file = -(-2 * partitions // len(paths)) if paths else 1
    out: list[tuple[int, str, int | None, int | None, bool]] = []
    for f, path in enumerate(paths):
        points = split_points(path, per_file) if per_file > 1 else None
        if points is None:
            out.append((f, path, None, None, True))
            continue
        for k in range(len(points) - 1):
            out.append((f, path, points[k], points[k + 1], k == len(points) - 2))
    return out
