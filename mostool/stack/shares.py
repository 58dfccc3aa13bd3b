"""Record blocks as one worker of a ``--workers`` run reads them: other shares' payloads left out.

Theory of operation. With ``Engine.shard`` set, a worker tracks only the TCP flows of its share
but still walks every record of the capture (``record_blocks``): another share's plain
IPv4/TCP record only moves its clock and packet count, and the loop reads nothing of it past
the TCP header's data offset (frame byte 46). Copying such a record whole into the loop's
``bytes`` block (a memmove of the whole file per worker) was the largest cost a worker paid
for the records that are not its own. ``share_block`` makes the block the loop would make,
``bytes(buf[start:stop])`` from a record's start, except that past the first ``KEPT`` bytes of
the frame, the record of another share is zeros; everything else (the record headers, the
other records, a damaged or cut record and whatever follows it) is copied as it is.

Which records it leaves out is decided from their bytes alone, with the in-place loop's own
tests: a whole classic-pcap record (captured length at most ``max_caplen`` and inside the
block) of at least ``KEPT`` captured bytes, Ethernet + IPv4 without options, TCP, not a
fragment, a sane TCP header within the captured bytes (``records``' condition 2 without the
whole-packet test), whose ``records.shard_hash`` modulo ``count`` is not ``index``. The loop
takes exactly those records for another share's; when it does not skip one (a timer falls due
before it, the clock is not started, the wild clock must judge it) it hands
``Engine.process`` the frame read from the capture itself, never from such a block.

``share_block`` is ``_csum.share_block`` (C, in the compiled build) or ``share_block_py``,
which gives the same bytes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Final, Literal

__all__ = ["KEPT", "share_block", "share_block_py", "SHARE_BLOCK_VARIANT"]

KEPT: Final = 54        # the frame bytes of a left-out record that are kept (the smallest
                        # plain IPv4/TCP frame: Ethernet, IPv4 and TCP headers)
_RECORD_HEADER_LEN: Final = 16


def _foreign(buf: Any, p: int, incl: int, index: int, count: int) -> bool:
    """The frame at ``buf[p:p + incl]`` is plain IPv4/TCP of a share other than ``index``."""
    if not (incl >= KEPT and buf[p + 12] == 0x08 and buf[p + 13] == 0 and buf[p + 14] == 0x45
            and buf[p + 20] & 0x3F == 0 and buf[p + 21] == 0 and buf[p + 23] == 6):
        return False
    tlen = (buf[p + 16] << 8) | buf[p + 17]
    thl = (buf[p + 46] >> 2) & 0x3C
    if thl < 20 or tlen < 20 + thl or 34 + thl > incl:
        return False
    addrs = int.from_bytes(buf[p + 26:p + 30], "big") ^ int.from_bytes(buf[p + 30:p + 34], "big")
    ports = ((buf[p + 34] << 8) | buf[p + 35]) ^ ((buf[p + 36] << 8) | buf[p + 37])
    # records.shard_hash (not imported: records imports record_blocks, which imports this)
    mixed: int = (((addrs * 0x9E3779B1 + ports) * 0x85EBCA6B) & 0xFFFFFFFF) >> 15
    return mixed % count != index


def share_block_py(buf: Any, start: int, stop: int, little: bool, max_caplen: int,
                   index: int, count: int) -> bytes:
    """``bytes(buf[start:stop])``, classic-pcap records from ``start``, with the frame of every
    plain IPv4/TCP record of a share other than ``index`` (of ``count``) zeroed past its first
    ``KEPT`` bytes (see the module docstring)."""
    if count < 1 or not 0 <= index < count:
        raise ValueError("share_block: want 0 <= index < count")
    if start < 0 or stop < start or stop > len(buf):
        raise IndexError("share_block: range outside buf")
    order: Literal["little", "big"] = "little" if little else "big"
    out = bytearray(buf[start:stop])
    size = stop - start
    r = 0
    while r + _RECORD_HEADER_LEN <= size:
        incl = int.from_bytes(out[r + 8:r + 12], order)
        nxt = r + _RECORD_HEADER_LEN + incl
        if incl > max_caplen or nxt > size:
            break
        if _foreign(out, r + _RECORD_HEADER_LEN, incl, index, count):
            cut = r + _RECORD_HEADER_LEN + KEPT
            out[cut:nxt] = bytes(nxt - cut)
        r = nxt
    return bytes(out)


def _pick() -> tuple[str, Callable[..., bytes]]:
    try:
        c_module = importlib.import_module("mostool.stack._csum")
    except ImportError:
        return "pure", share_block_py
    fn: Callable[..., bytes] = c_module.share_block
    return "C", fn


_PICKED: Final = _pick()
SHARE_BLOCK_VARIANT: Final[str] = _PICKED[0]
# share_block(buf, start, stop, little, max_caplen, index, count) -> bytes
share_block: Final[Callable[..., bytes]] = _PICKED[1]
