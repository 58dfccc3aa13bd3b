"""Write a SYN-flood capture: N SYNs from distinct client addresses and ports, none answered.

    .venv/bin/python benchmarks/synflood.py OUT.pcap [--count 1000000]

Every SYN opens a new half-open flow (10.A.B.C:port -> 192.0.2.1:80, one microsecond apart),
as a classic little-endian Ethernet pcap with valid IP and TCP checksums and Linux's SYN options
(MSS, SACK-permitted, timestamps, window scale). 1,000,000 SYNs make a 90 MB file in ~10 s.

``tcp_frame`` is also what ``cases/idle_flows.py`` builds its handshakes with.
"""

from __future__ import annotations

import argparse
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = ["tcp_frame", "pcap_header", "pcap_record", "syn_flood_frames", "write_pcap"]

SYN, ACK = 0x02, 0x10
SYN_OPTIONS = bytes.fromhex("020405b4" "0402" "080a00000000" "00000000" "01" "030307")
SERVER = bytes([192, 0, 2, 1])

_IP = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBBHHH")
_REC = struct.Struct("<IIII")


def _csum(data: bytes) -> int:
    """Internet checksum (ones' complement of the ones' complement sum)."""
    if len(data) & 1:
        data += b"\0"
    s: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def tcp_frame(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int,
              options: bytes = b"", payload: bytes = b"", window: int = 64240) -> bytes:
    """One Ethernet/IPv4/TCP frame with valid checksums."""
    thl = 20 + len(options)
    tcp = _TCP.pack(sport, dport, seq, ack, (thl // 4) << 4, flags, window, 0, 0)
    seg = tcp + options + payload
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(seg))
    c = _csum(pseudo + seg)
    seg = seg[:16] + struct.pack("!H", c) + seg[18:]
    ip = _IP.pack(0x45, 0, 20 + len(seg), 0, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    return b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00" + ip + seg


def pcap_header(snaplen: int = 262144, linktype: int = 1) -> bytes:
    return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype)


def pcap_record(ts_us: int, frame: bytes) -> bytes:
    return _REC.pack(ts_us // 1_000_000, ts_us % 1_000_000, len(frame), len(frame)) + frame


def syn_flood_frames(count: int, start_us: int = 1_700_000_000_000_000) -> Iterator[
        tuple[int, bytes]]:
    """(timestamp in microseconds, frame) for ``count`` SYNs from distinct address/port pairs."""
    for i in range(count):
        host = i // 50_000                       # 50,000 source ports per client address
        src = bytes([10, (host >> 8) & 0xFF, host & 0xFF, 1 + (i % 7)])
        sport = 10_000 + i % 50_000
        seq = (i * 2_654_435_761) & 0xFFFFFFFF
        yield start_us + i, tcp_frame(src, SERVER, sport, 80, seq, 0, SYN, SYN_OPTIONS)


def write_pcap(path: Path, frames: Iterator[tuple[int, bytes]]) -> int:
    n = 0
    tmp = path.with_suffix(path.suffix + ".part")
    with tmp.open("wb") as f:
        f.write(pcap_header())
        batch: list[bytes] = []
        for ts_us, frame in frames:
            batch.append(pcap_record(ts_us, frame))
            n += 1
            if len(batch) >= 10_000:
                f.write(b"".join(batch))
                batch.clear()
        f.write(b"".join(batch))
    tmp.replace(path)
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--count", type=int, default=1_000_000)
    args = ap.parse_args(argv)
    n = write_pcap(args.out, syn_flood_frames(args.count))
    print(f"{args.out}: {n} SYNs, {args.out.stat().st_size} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
