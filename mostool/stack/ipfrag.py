"""IP fragment reassembly (IPv4: src, dst, id, protocol; IPv6: src, dst, id).

Every fragment of a datagram is placed into one bytearray (the first copy of a byte wins, as
most hosts do; ``Datagram.ranges`` tracks what arrived), and the datagram is complete once the
last fragment has arrived and no hole remains: it then gets a fresh header (IPv4: length, flags
and checksum rewritten; IPv6: payload length and the fragment header's next header) and the
decoder decodes it as a frame of its own. The table is bounded: datagrams expire
``timeout`` seconds after their first fragment (checked whenever a fragment arrives, or
``expire(now)``), and the oldest are dropped beyond ``max_datagrams`` or ``max_bytes``.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from typing import Final

from mostool.stack.codes import FRAGMENT

__all__ = ["Datagram", "FragmentTable", "FRAGMENT"]

_U16: Final = struct.Struct("!H").unpack_from
_PACK16: Final = struct.Struct("!H").pack_into


def _ip_header_checksum(header: bytes | bytearray) -> int:
    r = int.from_bytes(header, "big") % 0xFFFF
    return 0xFFFF - r if r else 0


class Datagram:
    """An IP datagram being reassembled from fragments."""

    __slots__ = ("first_ts", "head", "nh_pos", "next_header", "total", "data", "ranges", "size")

    def __init__(self, first_ts: float) -> None:
        self.first_ts = first_ts
        # IPv4: the first fragment's header; IPv6: its unfragmentable part
        self.head: bytes | None = None
        self.nh_pos = 0  # IPv6: offset in head of the next-header byte to fix
        self.next_header = 0  # IPv6: the fragment header's next header
        self.total = -1  # length of the fragmentable data, once the last fragment arrived
        self.data = bytearray()
        self.ranges: list[tuple[int, int]] = []  # sorted, disjoint, non-adjacent
        self.size = 0  # bytes held

    def add(self, start: int, chunk: bytes) -> None:
        """Place ``chunk`` at ``start``; bytes already received are kept (first copy wins)."""
        end = start + len(chunk)
        if 0 <= self.total < end:
            end = self.total
        if end <= start:
            return
        data = self.data
        if len(data) < end:
            data.extend(bytes(end - len(data)))
        pos = start
        for s, e in self.ranges:
            if e <= pos:
                continue
            if s >= end:
                break
            if s > pos:
                data[pos:s] = chunk[pos - start : s - start]
            pos = e
            if pos >= end:
                break
        if pos < end:
            data[pos:end] = chunk[pos - start : end - start]
        # merge [start, end) into the range list
        merged: list[tuple[int, int]] = []
        ns, ne = start, end
        placed = False
        for s, e in self.ranges:
            if e < ns:
                merged.append((s, e))
            elif s > ne:
                if not placed:
                    merged.append((ns, ne))
                    placed = True
                merged.append((s, e))
            else:
                ns = min(ns, s)
                ne = max(ne, e)
        if not placed:
            merged.append((ns, ne))
        self.ranges = merged

    def complete(self) -> bool:
        r = self.ranges
        return (
            self.total >= 0
            and self.head is not None
            and (self.total == 0 or (len(r) > 0 and r[0][0] == 0 and r[0][1] >= self.total))
        )


class FragmentTable:
    """The datagrams being reassembled, oldest first, and the table's counters."""

    __slots__ = ("timeout", "max_datagrams", "max_bytes", "frags", "bytes", "reassembled",
                 "expired", "dropped")

    def __init__(self, timeout: float, max_datagrams: int, max_bytes: int) -> None:
        self.timeout = timeout
        self.max_datagrams = max_datagrams
        self.max_bytes = max_bytes
        self.frags: OrderedDict[bytes, Datagram] = OrderedDict()
        self.bytes = 0
        self.reassembled = 0
        self.expired = 0
        self.dropped = 0

    def expire(self, now: float) -> int:
        """Drop datagrams whose first fragment is older than ``frag_timeout``; return how many."""
        frags = self.frags
        limit = now - self.timeout
        n = 0
        while frags:
            key = next(iter(frags))
            d = frags[key]
            if d.first_ts >= limit:
                break
            del frags[key]
            self.bytes -= d.size
            n += 1
        self.expired += n
        return n

    def _datagram(self, key: bytes, ts: float) -> Datagram:
        """The reassembly state for ``key``, created (and the table bounded) if new."""
        frags = self.frags
        if frags:
            self.expire(ts)
        d = frags.get(key)
        if d is None:
            while len(frags) >= self.max_datagrams:
                self._drop_oldest()
            d = frags[key] = Datagram(ts)
        return d

    def _drop_oldest(self) -> None:
        _, old = self.frags.popitem(last=False)
        self.bytes -= old.size
        self.dropped += 1

    def _account(self, key: bytes, d: Datagram) -> bool:
        """Update byte accounting after ``d`` grew; False if ``d`` itself had to be dropped."""
        size = len(d.data) + (len(d.head) if d.head is not None else 0)
        self.bytes += size - d.size
        d.size = size
        frags = self.frags
        while self.bytes > self.max_bytes and frags:
            self._drop_oldest()
        return key in frags

    def _finish(self, key: bytes, d: Datagram) -> None:
        del self.frags[key]
        self.bytes -= d.size
        self.reassembled += 1

    def add4(self, buf: bytes, off: int, ihl: int, end: int, frag: int, ts: float,
             scope: bytes = b"") -> bytes | int | str:
        """An IPv4 fragment (header at ``off``): the reassembled datagram once complete,
        else FRAGMENT, or why it is malformed (a str). ``scope`` (the tunnel it came
        through) is part of the datagram's identity."""
        n = len(buf)
        start = (frag & 0x1FFF) << 3
        data_off = off + ihl
        if ihl + start + (end - data_off) > 0xFFFF:
            return "ipv4: fragment ends beyond 65535 bytes"
        key = buf[off + 12 : off + 20] + buf[off + 4 : off + 6] + buf[off + 9 : off + 10] + scope
        d = self._datagram(key, ts)
        if not frag & 0x2000 and d.total < 0:
            d.total = start + end - data_off
        if start == 0 and d.head is None:
            d.head = buf[off:data_off]
        d.add(start, buf[data_off : end if end <= n else n])
        if not self._account(key, d):
            return FRAGMENT
        if not d.complete():
            return FRAGMENT
        self._finish(key, d)
        head = bytearray(d.head or b"")
        total = len(head) + d.total
        if total > 0xFFFF:
            return "ipv4: reassembled datagram > 65535 bytes"
        _PACK16(head, 2, total)
        _PACK16(head, 6, _U16(head, 6)[0] & 0xC000)  # clear MF and the offset
        _PACK16(head, 10, 0)
        _PACK16(head, 10, _ip_header_checksum(head))
        head += d.data[: d.total]
        return bytes(head)

    def add6(self, buf: bytes, off: int, nh_pos: int, fh: int, fnh: int, fo: int, end: int,
             ts: float, scope: bytes = b"") -> bytes | int | str:
        """An IPv6 fragment (header at ``off``, fragment header at ``fh``): as ``add4``."""
        n = len(buf)
        start = fo & 0xFFF8
        data_off = fh + 8
        if start + (end - data_off) > 0xFFFF:
            return "ipv6: fragment ends beyond 65535 bytes"
        key = buf[off + 8 : off + 40] + buf[fh + 4 : fh + 8] + scope
        d = self._datagram(key, ts)
        if not fo & 1 and d.total < 0:
            d.total = start + end - data_off
        if start == 0 and d.head is None:
            d.head = buf[off:fh]
            d.nh_pos = nh_pos - off
            d.next_header = fnh
        d.add(start, buf[data_off : end if end <= n else n])
        if not self._account(key, d):
            return FRAGMENT
        if not d.complete():
            return FRAGMENT
        self._finish(key, d)
        head = bytearray(d.head or b"")
        plen = len(head) - 40 + d.total
        if plen > 0xFFFF:
            return "ipv6: reassembled packet > 65535 bytes"
        head[d.nh_pos] = d.next_header
        _PACK16(head, 4, plen)
        head += d.data[: d.total]
        return bytes(head)
