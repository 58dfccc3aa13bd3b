"""IP fragment reassembly, per datagram, bounded, in packet time.

Theory of operation. Fragments are keyed per datagram (IPv4: src, dst, id, protocol; IPv6: src,
dst, id). Every fragment is placed into one bytearray per datagram with "first copy wins"
semantics for overlaps (``Datagram.add``); the datagram completes when the last fragment has
arrived and no hole remains. The completed datagram gets a fixed-up IP header (length, offset
and flags cleared, IPv4 checksum recomputed; IPv6 next header restored) and is handed back as
bytes for the decoder to decode as raw IP. Incomplete datagrams expire ``frag_timeout`` seconds
of *packet* time after their first fragment (checked whenever a fragment arrives, or with
``expire``). The table is bounded in datagrams and bytes; the oldest datagram is dropped first.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from typing import Final

__all__ = ["Datagram", "FragmentTable"]

_U16: Final = struct.Struct("!H").unpack_from
_PACK16: Final = struct.Struct("!H").pack_into


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


def _ip_header_checksum(header: bytes | bytearray) -> int:
    r = int.from_bytes(header, "big") % 0xFFFF
    return 0xFFFF - r if r else 0


class FragmentTable:
    """Datagrams being reassembled, oldest first; see the module doc."""

    __slots__ = ("_frags", "_frag_bytes", "_frag_timeout", "_max_frag_datagrams",
                 "_max_frag_bytes", "_n_reassembled", "_n_expired", "_n_dropped")

    def __init__(self, frag_timeout: float, max_frag_datagrams: int,
                 max_frag_bytes: int) -> None:
        if frag_timeout <= 0:
            raise ValueError("frag_timeout must be > 0")
        if max_frag_datagrams < 1:
            raise ValueError("max_frag_datagrams must be >= 1")
        if max_frag_bytes < 1:
            raise ValueError("max_frag_bytes must be >= 1")
        self._frag_timeout = float(frag_timeout)
        self._max_frag_datagrams = max_frag_datagrams
        self._max_frag_bytes = max_frag_bytes
        self._frags: OrderedDict[bytes, Datagram] = OrderedDict()
        self._frag_bytes = 0
        self._n_reassembled = 0
        self._n_expired = 0
        self._n_dropped = 0

    def stats(self) -> dict[str, int]:
        return {
            "frag_reassembled": self._n_reassembled,
            "frag_expired": self._n_expired,
            "frag_dropped": self._n_dropped,
            "frag_pending": len(self._frags),
            "frag_pending_bytes": self._frag_bytes,
        }

    def expire(self, now: float) -> int:
        """Drop datagrams whose first fragment is older than ``frag_timeout``; return how many."""
        frags = self._frags
        limit = now - self._frag_timeout
        n = 0
        while frags:
            key = next(iter(frags))
            d = frags[key]
            if d.first_ts >= limit:
                break
            del frags[key]
            self._frag_bytes -= d.size
            n += 1
        self._n_expired += n
        return n

    def _datagram(self, key: bytes, ts: float) -> Datagram:
        """The reassembly state for ``key``, created (and the table bounded) if new."""
        frags = self._frags
        if frags:
            self.expire(ts)
        d = frags.get(key)
        if d is None:
            while len(frags) >= self._max_frag_datagrams:
                self._drop_oldest()
            d = frags[key] = Datagram(ts)
        return d

    def _drop_oldest(self) -> None:
        _, old = self._frags.popitem(last=False)
        self._frag_bytes -= old.size
        self._n_dropped += 1

    def _account(self, key: bytes, d: Datagram) -> bool:
        """Update byte accounting after ``d`` grew; False if ``d`` itself had to be dropped."""
        size = len(d.data) + (len(d.head) if d.head is not None else 0)
        self._frag_bytes += size - d.size
        d.size = size
        frags = self._frags
        while self._frag_bytes > self._max_frag_bytes and frags:
            self._drop_oldest()
        return key in frags

    def _finish(self, key: bytes, d: Datagram) -> None:
        del self._frags[key]
        self._frag_bytes -= d.size
        self._n_reassembled += 1

    def add4(self, buf: bytes, off: int, ihl: int, end: int, frag: int, ts: float
             ) -> bytes | str | None:
        """An IPv4 fragment (header at ``off``, ``ihl`` bytes; the packet ends at ``end``;
        ``frag`` the flags/offset field): the whole datagram once complete, None while held,
        or why it is malformed."""
        n = len(buf)
        start = (frag & 0x1FFF) << 3
        data_off = off + ihl
        if ihl + start + (end - data_off) > 0xFFFF:
            return "ipv4: fragment ends beyond 65535 bytes"
        key = buf[off + 12 : off + 20] + buf[off + 4 : off + 6] + b"\x06"
        d = self._datagram(key, ts)
        if not frag & 0x2000 and d.total < 0:
            d.total = start + end - data_off
        if start == 0 and d.head is None:
            d.head = buf[off:data_off]
        d.add(start, buf[data_off : end if end <= n else n])
        if not self._account(key, d):
            return None
        if not d.complete():
            return None
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
             ts: float) -> bytes | str | None:
        """An IPv6 fragment (header at ``off``, the next-header byte to fix at ``nh_pos``, the
        fragment header at ``fh`` with next header ``fnh`` and offset field ``fo``): the whole
        packet once complete, None while held, or why it is malformed."""
        n = len(buf)
        start = fo & 0xFFF8
        data_off = fh + 8
        if start + (end - data_off) > 0xFFFF:
            return "ipv6: fragment ends beyond 65535 bytes"
        key = buf[off + 8 : off + 40] + buf[fh + 4 : fh + 8]
        d = self._datagram(key, ts)
        if not fo & 1 and d.total < 0:
            d.total = start + end - data_off
        if start == 0 and d.head is None:
            d.head = buf[off:fh]
            d.nh_pos = nh_pos - off
            d.next_header = fnh
        d.add(start, buf[data_off : end if end <= n else n])
        if not self._account(key, d):
            return None
        if not d.complete():
            return None
        self._finish(key, d)
        head = bytearray(d.head or b"")
        plen = len(head) - 40 + d.total
        if plen > 0xFFFF:
            return "ipv6: reassembled packet > 65535 bytes"
        head[d.nh_pos] = d.next_header
        _PACK16(head, 4, plen)
        head += d.data[: d.total]
        return bytes(head)
