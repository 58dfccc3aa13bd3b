"""Phase 1 of the plan: route every record to a partition, then number them globally.

``route_piece`` reads one input file once (through ``ReplaySource``, so pcap and pcapng, damage
warnings and timestamps are exactly a single run's), drops what the BPF filter refuses, and
appends each record to the shard of its partition: ``piece-F.part-P`` in the scratch directory.
The partition is a symmetric, deterministic hash of the IP address pair (``route_key``): both
directions of a flow and every IP fragment of its datagrams (which carry no ports) meet, and no
salted ``hash()`` is involved. Frames without an IP header go to partition 0. Next to the
shards it writes the file's timestamps (``piece-F.ts``) and partitions (``piece-F.parts``).

``build_timeline`` then does what the single process's merge of several files does: it
numbers every record globally (the merge is stable: ties keep file order, a file is never
reordered) and writes the capture's clock ticks, the records where the running maximum
timestamp rises (``ticks.ts``, ``ticks.no``), which every partition replays to fire timers and
idle timeouts exactly as one process would. Rotated files (each in time order, one after the
other) take a fast path: the numbers are an offset per file and nothing is merged. Otherwise
the merge runs record by record and each shard gets its numbers (``piece-F.part-P.no``; a
negative number marks a record older than the clock, which the partition handles by moving its
clock first).

Every file is written under a temporary name and renamed, so a task that Dask runs again after
losing a worker leaves exactly what one run leaves.
"""

from __future__ import annotations

import heapq
import os
import struct
from array import array
from itertools import count, repeat
from typing import Any

from mostool.errors import DistError
from mostool.stack.records import shard_hash

__all__ = ["route_key", "route_piece", "build_timeline", "SHARD_RECORD", "DistError"]

#: per record in a shard: index in its file, ts, linktype, captured length, wire length
SHARD_RECORD = struct.Struct("<QdIII")
# the common frame, Ethernet + IPv4: EtherType, version/IHL, flags/offset, protocol,
# addresses, and the first 4 bytes after a 20-byte IP header (the ports of TCP/UDP)
_ETH_IP4 = struct.Struct("!12xHB5xHxB2xIIHH")
_ETHER_VLAN = (0x8100, 0x88A8, 0x9100)


def _fold(addr: bytes) -> int:
    x = int.from_bytes(addr, "big")
    while x >> 32:
        x = (x >> 32) ^ (x & 0xFFFFFFFF)
    return x


_PORTED = (6, 17, 132)          # TCP, UDP, SCTP: ports follow the IP header
_V6_EXT = (0, 43, 60)           # hop-by-hop, routing, destination options


def _ip_route(ip: bytes, off: int) -> tuple[int, int, tuple[Any, ...] | None] | None:
    """(folded address pair, XOR of the ports or 0, fragment id or None) of an IP packet.
    A fragment's ports are known only in its first fragment (offset 0); the fragment id
    (addresses, IP id, protocol) lets the router send every fragment after that first one."""
    n = len(ip)
    if n < off + 20:
        return None
    version = ip[off] >> 4
    if version == 4:
        src, dst = ip[off + 12:off + 16], ip[off + 16:off + 20]
        pair = _fold(src) ^ _fold(dst)
        ihl = (ip[off] & 0x0F) * 4
        proto = ip[off + 9]
        frag = int.from_bytes(ip[off + 6:off + 8], "big")
        fid = None
        if frag & 0x3FFF:                       # more fragments, or an offset
            fid = (src, dst, ip[off + 4:off + 6], proto)
            if frag & 0x1FFF:                   # not the first: no ports here
                return pair, -1, fid
        l4 = off + ihl
    elif version == 6 and n >= off + 40:
        src, dst = ip[off + 8:off + 24], ip[off + 24:off + 40]
        pair = _fold(src) ^ _fold(dst)
        proto = ip[off + 6]
        l4 = off + 40
        fid = None
        while proto in _V6_EXT and n >= l4 + 8:
            proto, l4 = ip[l4], l4 + 8 + ip[l4 + 1] * 8
        if proto == 44 and n >= l4 + 8:         # the fragment header
            fid = (src, dst, ip[l4 + 4:l4 + 8], 44)
            frag = int.from_bytes(ip[l4 + 2:l4 + 4], "big")
            proto, l4 = ip[l4], l4 + 8
            if frag & 0xFFF8:
                return pair, -1, fid
    else:
        return None
    if proto in _PORTED and n >= l4 + 4:
        return pair, int.from_bytes(ip[l4:l4 + 2], "big") ^ int.from_bytes(ip[l4 + 2:l4 + 4],
                                                                            "big"), fid
    return pair, 0, fid


def _ip_offset(linktype: int, data: bytes) -> int | None:
    """Where the IP header starts in a frame of ``linktype``, or None (not IP, unknown)."""
    if linktype == 1:                                   # Ethernet (VLAN tags skipped)
        off, etype = 12, int.from_bytes(data[12:14], "big")
        while etype in _ETHER_VLAN and len(data) >= off + 6:
            off += 4
            etype = int.from_bytes(data[off:off + 2], "big")
        return off + 2 if etype in (0x0800, 0x86DD) else None
    if linktype in (12, 14, 101, 228, 229):             # raw IP
        return 0
    if linktype in (0, 108):                            # BSD loopback: 4-byte family
        return 4
    if linktype == 113:                                 # Linux cooked v1
        return 16 if int.from_bytes(data[14:16], "big") in (0x0800, 0x86DD) else None
    if linktype == 276:                                 # Linux cooked v2
        return 20 if int.from_bytes(data[0:2], "big") in (0x0800, 0x86DD) else None
    return None


def route_key(linktype: int, data: bytes) -> int | None:
    """The symmetric hash of a frame's addresses and ports (the engine's ``shard_of``): None
    for a frame without IP; -1 for an IP fragment after the first (``route_piece`` sends it
    where its datagram's first fragment went)."""
    off = _ip_offset(linktype, data)
    if off is None:
        return None
    route = _ip_route(data, off)
    if route is None:
        return None
    pair, ports, _fid = route
    return -1 if ports < 0 else shard_hash(pair, ports)


def _replace(path: str, data: list[bytes] | array[Any]) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        if isinstance(data, list):
            f.writelines(data)
        else:
            data.tofile(f)
    os.replace(tmp, path)


def route_piece(index: int, path: str, partitions: int, scratch: str, bpf: str | None,
                file: int = 0, start: int | None = None, stop: int | None = None,
                last: bool = True) -> dict[str, Any]:
    """Read ``path`` (or its records starting in [start, stop)) once and write the shards;
    returns the piece's summary."""
    import socket

    from mostool.pcapfile import CaptureError, read_capture
    host = socket.gethostname()
    warnings: list[str] = []
    state: dict[str, Any] = {"damaged": False}
    try:
        if start is not None and stop is not None:
            from mostool.dist.pieces import range_frames
            if not os.access(path, os.R_OK):
                raise CaptureError(f"{path}: cannot read file")
            frames: Any = range_frames(path, start, stop, last, warnings, state)
        else:
            frames = read_capture(path, warnings)
    except CaptureError as exc:
        raise DistError(f"worker on {host} cannot read the input: {exc}") from None
    if not os.path.isdir(scratch):
        raise DistError(f"worker on {host} cannot see the scratch directory {scratch} "
                        "(it must be shared by every worker: --scratch DIR)")
    matches = None
    if bpf:
        from mostool.bpf import BpfFilter
        matches = BpfFilter(bpf).matches
    pack = SHARD_RECORD.pack
    outs: list[list[tuple[int, bytes, bytes]]] = [[] for _ in range(partitions)]
    first_of: dict[tuple[Any, ...], int] = {}      # fragment id -> its first fragment's part
    waiting: dict[tuple[Any, ...], tuple[int, list[tuple[int, bytes, bytes]]]] = {}
    late = False
    counts = [0] * partitions
    stamps = array("d")
    parts = array("H")
    ticks_no = array("q")       # index in the file (from 1) where the file's clock rises
    ticks_ts = array("d")
    high = -float("inf")
    monotone = True
    r = 0
    eth_ip4 = _ETH_IP4.unpack_from
    for ts, linktype, data, wire in frames:
        if matches is not None and not matches(linktype, data):
            continue
        if linktype == 1 and len(data) >= 38:
            etype, vhl, frag, proto, src, dst, sport, dport = eth_ip4(data)
            if etype == 0x0800 and vhl == 0x45 and not frag & 0x3FFF and proto in _PORTED:
                p = shard_hash(src ^ dst, sport ^ dport) % partitions
                outs[p].append((r, pack(r, ts, linktype, len(data), wire), data))
                counts[p] += 1
                stamps.append(ts)
                parts.append(p)
                r += 1
                if ts > high:
                    high = ts
                    ticks_no.append(r)
                    ticks_ts.append(ts)
                elif ts < high:
                    monotone = False
                continue
        off = _ip_offset(linktype, data)
        route = None if off is None else _ip_route(data, off)
        record = (r, pack(r, ts, linktype, len(data), wire), data)
        if route is None:
            p = 0
        else:
            pair, ports, fid = route
            if ports < 0:                       # a later fragment: where its first went
                assert fid is not None
                p = first_of.get(fid, -1)
            else:
                p = shard_hash(pair, ports) % partitions
                if fid is not None:
                    first_of[fid] = p
                    for early in waiting.pop(fid, (0, []))[1]:
                        outs[p].append(early)
                        counts[p] += 1
                        parts[early[0]] = p
                        late = True
            if p < 0:                           # its first fragment has not come yet
                assert fid is not None
                waiting.setdefault(fid, (pair, []))[1].append(record)
                stamps.append(ts)
                parts.append(0)
                r += 1
                if ts > high:
                    high = ts
                    ticks_no.append(r)
                    ticks_ts.append(ts)
                elif ts < high:
                    monotone = False
                continue
        outs[p].append(record)
        counts[p] += 1
        stamps.append(ts)
        parts.append(p)
        r += 1
        if ts > high:
            high = ts
            ticks_no.append(r)
            ticks_ts.append(ts)
        elif ts < high:
            monotone = False
    for pair, held in waiting.values():        # no first fragment: by the address pair
        p = shard_hash(pair, 0) % partitions
        for rec in held:
            outs[p].append(rec)
            counts[p] += 1
            parts[rec[0]] = p
        late = True
    for p in range(partitions):
        if late:
            outs[p].sort(key=lambda rec: rec[0])
        _replace(os.path.join(scratch, f"piece-{index}.part-{p}"),
                 [b for rec in outs[p] for b in rec[1:]])
    _replace(os.path.join(scratch, f"piece-{index}.ts"), stamps)
    _replace(os.path.join(scratch, f"piece-{index}.parts"), parts)
    _replace(os.path.join(scratch, f"piece-{index}.ticks_no"), ticks_no)
    _replace(os.path.join(scratch, f"piece-{index}.ticks_ts"), ticks_ts)
    return {"index": index, "packets": r, "counts": counts, "monotone": monotone,
            "first": stamps[0] if r else None, "last": stamps[-1] if r else None,
            "warnings": warnings, "host": host, "file": file,
            "damaged": state["damaged"]}


def _load(path: str, code: str) -> array[Any]:
    a = array(code)
    with open(path, "rb") as f:
        a.frombytes(f.read())
    return a


def _disjoint_in_order(pieces: list[dict[str, Any]]) -> bool:
    """Whether the merge of these files is just their concatenation in index order."""
    prev = None
    for p in pieces:
        if not p["monotone"]:
            return False
        if not p["packets"]:
            continue
        if prev is not None and not prev["last"] <= p["first"]:
            return False
        prev = p
    return True


def build_timeline(pieces: list[dict[str, Any]], partitions: int, scratch: str
                   ) -> dict[str, Any]:
    """Number the records globally and write the ticks; returns how partitions find numbers:
    ``{"offsets": [...]}`` (fast path) or ``{"offsets": None}`` (per-shard number files)."""
    pieces = sorted(pieces, key=lambda p: p["index"])
    kept = []
    damaged: set[int] = set()
    for p in pieces:            # a whole-file read stops at damage: so do the later ranges
        if p["file"] not in damaged:
            kept.append(p)
        if p["damaged"]:
            damaged.add(p["file"])
    pieces = kept
    used = [p["index"] for p in pieces]
    total = sum(p["packets"] for p in pieces)
    tick_no = array("q")
    tick_ts = array("d")
    if _disjoint_in_order(pieces):
        offsets = []
        base = 0
        high = -float("inf")
        for p in pieces:
            offsets.append(base)
            nos = _load(os.path.join(scratch, f"piece-{p['index']}.ticks_no"), "q")
            tss = _load(os.path.join(scratch, f"piece-{p['index']}.ticks_ts"), "d")
            skip = 0
            while skip < len(tss) and tss[skip] <= high:
                skip += 1
            tick_no.extend(n + base for n in nos[skip:])
            tick_ts.extend(tss[skip:])
            if len(tss):
                high = max(high, tss[-1])
            base += p["packets"]
        _replace(os.path.join(scratch, "ticks.no"), tick_no)
        _replace(os.path.join(scratch, "ticks.ts"), tick_ts)
        return {"offsets": offsets, "packets": total, "pieces": used}
    # the general case: heapq.merge of (ts, file, index) orders exactly as ReplaySource's
    # heapq.merge keyed on ts (ties by file order; a file is never reordered)
    # one stream per file, its ranges one after the other
    files = sorted({p["file"] for p in pieces})
    stamps = [array("d") for _ in files]
    parts = [array("H") for _ in files]
    owner: list[list[int]] = [[] for _ in files]       # per file record: its piece's position
    for pos, p in enumerate(pieces):
        f = files.index(p["file"])
        stamps[f].extend(_load(os.path.join(scratch, f"piece-{p['index']}.ts"), "d"))
        parts[f].extend(_load(os.path.join(scratch, f"piece-{p['index']}.parts"), "H"))
        owner[f].extend(repeat(pos, p["packets"]))
    numbers: list[list[array[Any]]] = [[array("q") for _ in range(partitions)] for _ in pieces]
    high = -float("inf")
    merged = heapq.merge(*(zip(s, repeat(f), count()) for f, s in enumerate(stamps)))
    for n, (ts, f, r) in enumerate(merged, 1):
        out = numbers[owner[f][r]][parts[f][r]]
        if ts > high:
            high = ts
            tick_no.append(n)
            tick_ts.append(ts)
            out.append(n)
        else:
            out.append(n if ts == high else -n)
    for pos, p in enumerate(pieces):
        for part in range(partitions):
            _replace(os.path.join(scratch, f"piece-{p['index']}.part-{part}.no"),
                     numbers[pos][part])
    _replace(os.path.join(scratch, "ticks.no"), tick_no)
    _replace(os.path.join(scratch, "ticks.ts"), tick_ts)
    return {"offsets": None, "packets": total, "pieces": used}
