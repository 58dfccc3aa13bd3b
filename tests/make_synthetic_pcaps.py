"""Regenerate sample_pcaps/synthetic/: edge-case captures scripted with tests/builders.py.

    .venv/bin/python tests/make_synthetic_pcaps.py            # rewrite the directory
    .venv/bin/python tests/make_synthetic_pcaps.py --check    # exit 1 if a file would change

Output is deterministic (fixed addresses, ISNs and timestamps). Besides the pcaps it writes
``manifest.json``: for every capture, its description, link type, packet count and, per
connection, the bytes each side sent as a reassembler should deliver them (length, SHA-256 and,
for short text, the text itself) with the first copy winning where copies overlap (``first``)
and with the last copy winning (``last``); the two differ only in ``overlap_conflict``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from builders import CLI, SVR, Frame, Scenario, arp_frame, udp_frame, write_pcap

OUT_DIR = Path(__file__).resolve().parent.parent / "sample_pcaps" / "synthetic"
T0 = 1_700_000_000.0
# a DNS query for example.com, type A
DNS_QUERY = bytes.fromhex("123401000001000000000000076578616d706c6503636f6d0000010001")


@dataclass
class Capture:
    description: str
    frames: list[Frame]
    connections: list[Scenario] = field(default_factory=list)


def _http_exchange(sc: Scenario, path: str = "/", body: bytes = b"hello\n") -> None:
    sc.send(CLI, f"GET {path} HTTP/1.1\r\nHost: example\r\n\r\n".encode())
    sc.ack(SVR)
    sc.send(SVR, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    sc.ack(CLI)


def overlap_conflict() -> Capture:
    sc = Scenario(t0=T0)
    sc.handshake()
    sc.send(CLI, b"GET /index")  # offsets 0-10
    sc.drop(sc.send(CLI, b".html HTTP/1.1\r\n"))  # 10-26, lost before the capture point
    sc.send(CLI, b"Host: a\r\n\r\n")  # 26-37
    sc.ack(SVR, ack_offset=10, sack=[(26, 37)])
    sc.send(CLI, b".html HTTP/1.1\r\n", seq_offset=10)  # retransmission fills the hole
    sc.send(CLI, b"/evil.sh HTTP/1.1\r\nHost", seq_offset=4)  # 4-27 again, different bytes
    sc.ack(SVR)
    sc.send(SVR, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    sc.ack(CLI)
    sc.close(CLI)
    return Capture(
        "a hole filled by a retransmission, then a retransmission overlapping bytes 4-27 of "
        "the client stream with different content (first-wins vs last-wins differ)",
        sc.frames,
        [sc],
    )


def midstream() -> Capture:
    sc = Scenario("10.0.0.1:40001", "10.0.0.2:80", t0=T0, client_isn=77_000, server_isn=99_000)
    sc.send(CLI, b"GET /late HTTP/1.1\r\n\r\n", seq_offset=500)  # no handshake captured
    sc.send(SVR, b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate", seq_offset=900)
    sc.ack(CLI)
    sc.close(SVR)
    return Capture(
        "a connection picked up in the middle: no SYN, data from stream offsets 500 (client) "
        "and 900 (server), then an orderly close started by the server",
        sc.frames,
        [sc],
    )


def reorder_dup() -> Capture:
    sc = Scenario(t0=T0)
    sc.handshake()
    sc.send(CLI, b"GET /reorder HTTP/1.1\r\n\r\n")
    parts = [b"HTTP/1.1 200 OK\r\n", b"Content-Length: 12\r\n\r\n", b"hello ", b"world!"]
    held = sc.drop(sc.send(SVR, parts[0]))
    second = sc.send(SVR, parts[1])
    sc.ack(CLI, ack_offset=0, sack=[(len(parts[0]), len(parts[0]) + len(parts[1]))])
    sc.inject(held)  # arrives late: reordering
    sc.inject(second)  # and a duplicate
    sc.ack(CLI)
    held = sc.drop(sc.send(SVR, parts[2]))
    sc.send(SVR, parts[3])
    sc.inject(held)
    sc.ack(CLI)
    sc.close(CLI)
    return Capture(
        "server segments arriving out of order and duplicated (SACK in the client's ACK)",
        sc.frames,
        [sc],
    )


def rst_abort() -> Capture:
    sc = Scenario(t0=T0)
    sc.handshake()
    sc.send(CLI, b"POST /upload HTTP/1.1\r\nContent-Length: 100000\r\n\r\n")
    sc.segments(CLI, b"U" * 4000, 1448)
    sc.ack(SVR)
    sc.rst(SVR)
    return Capture(
        "an upload aborted by the server with RST/ACK after 4000 body bytes", sc.frames, [sc]
    )


def refused() -> Capture:
    sc = Scenario("10.0.0.1:40002", "10.0.0.2:7000", t0=T0)
    sc.syn()
    sc.rst(SVR)
    return Capture("a refused connection: SYN answered by RST/ACK", sc.frames, [sc])


def bad_checksum() -> Capture:
    sc = Scenario(t0=T0)
    sc.handshake()
    sc.send(CLI, b"GET /x HTTP/1.1\r\n\r\n", bad_checksum=True)  # the server drops it
    sc.advance(0.2)
    sc.send(CLI, b"GET /x HTTP/1.1\r\n\r\n", seq_offset=0)  # retransmission, good checksum
    sc.ack(SVR)
    sc.send(SVR, b"HTTP/1.1 204 No Content\r\n\r\n")
    sc.ack(CLI)
    sc.close(CLI)
    return Capture(
        "a request with a bad TCP checksum, retransmitted 200 ms later with a good one",
        sc.frames,
        [sc],
    )


def idle_timeout() -> Capture:
    sc = Scenario(t0=T0)
    sc.handshake()
    _http_exchange(sc, "/before")
    sc.advance(7200.0)
    _http_exchange(sc, "/after")
    sc.close(CLI)
    return Capture(
        "one keep-alive connection idle for two hours between two requests", sc.frames, [sc]
    )


def wraparound() -> Capture:
    sc = Scenario(t0=T0, client_isn=2**32 - 10, server_isn=2**32 - 2)
    sc.handshake()
    sc.segments(CLI, b"0123456789abcdefghij", 7)
    sc.ack(SVR)
    sc.send(SVR, b"sequence numbers wrapped")
    sc.ack(CLI)
    sc.close(SVR)
    return Capture(
        "both ISNs just below 2**32: the sequence numbers wrap inside the data", sc.frames, [sc]
    )


def port_reuse() -> Capture:
    sc = Scenario(t0=T0)
    sc.handshake()
    _http_exchange(sc, "/first")
    sc.close(CLI)
    first = sc.frames[:]
    again = Scenario(t0=sc.now + 1.0, client_isn=900_000, server_isn=700_000)
    again.handshake()
    _http_exchange(again, "/second")
    again.close(SVR)
    return Capture(
        "two connections on the same 4-tuple one second apart (new ISNs)",
        first + again.frames,
        [sc, again],
    )


def ip_fragments() -> Capture:
    sc = Scenario(t0=T0)
    sc.handshake()
    sc.send(CLI, b"POST /f HTTP/1.1\r\nContent-Length: 600\r\n\r\n" + b"F" * 600, ip_fragment=256)
    sc.ack(SVR)
    sc.send(SVR, b"HTTP/1.1 204 No Content\r\n\r\n")
    sc.ack(CLI)
    sc.close(CLI)
    return Capture("a client segment split into three IPv4 fragments", sc.frames, [sc])


def simultaneous_close() -> Capture:
    sc = Scenario(t0=T0)
    sc.handshake()
    _http_exchange(sc)
    c, s = sc.next_seq(CLI), sc.next_seq(SVR)
    # each FIN leaves before the other arrives, so neither acknowledges the other's FIN
    sc.raw(CLI, flags="FA", seq=c, ack=s)
    sc.raw(SVR, flags="FA", seq=s, ack=c)
    sc.raw(SVR, flags="A", seq=s + 1, ack=c + 1)
    sc.raw(CLI, flags="A", seq=c + 1, ack=s + 1)
    return Capture("FINs crossing on the wire (simultaneous close)", sc.frames, [sc])


def orphans_mixed() -> Capture:
    sc = Scenario(t0=T0 + 0.002)
    sc.handshake()
    _http_exchange(sc)
    sc.close(CLI)
    extra = [
        arp_frame("10.0.0.1", "10.0.0.2"),
        arp_frame("10.0.0.2", "10.0.0.1", op=2),
        udp_frame("10.0.0.1:5353", "10.0.0.53:53", DNS_QUERY),
    ]
    frames: list[Frame] = [(T0 + i * 0.0005, 1, data, len(data)) for i, data in enumerate(extra)]
    stray = Scenario("10.0.0.9:50000", "10.0.0.2:443", t0=sc.now, client_isn=123_456)
    stray.send(CLI, b"\x17\x03\x03\x00\x05hello", seq_offset=4000)  # no flow: an orphan
    stray.ack(CLI)
    return Capture(
        "ARP request/reply and a UDP datagram before an HTTP exchange, then two TCP segments "
        "of a flow with no handshake",
        sorted(frames + sc.frames + stray.frames),
        [sc, stray],
    )


def ipv6_sll() -> Capture:
    sc = Scenario("[2001:db8::1]:40000", "[2001:db8::2]:80", t0=T0, linktype=113)
    sc.handshake()
    _http_exchange(sc, "/v6", b"ipv6 over linux cooked capture\n")
    sc.close(SVR)
    return Capture("IPv6 HTTP exchange in Linux SLL (cooked) framing", sc.frames, [sc])


def qinq_vlan() -> Capture:
    sc = Scenario(t0=T0, vlan=(300, 100))
    sc.handshake()
    _http_exchange(sc, "/qinq")
    sc.close(CLI)
    return Capture(
        "an HTTP exchange double-tagged (outer 802.1ad VID 300, inner 100)", sc.frames, [sc]
    )


def raw_ip() -> Capture:
    sc = Scenario(t0=T0, linktype=101)
    sc.handshake()
    _http_exchange(sc, "/raw")
    sc.close(CLI)
    return Capture("an HTTP exchange in raw IPv4 framing (link type 101)", sc.frames, [sc])


CAPTURES: dict[str, Callable[[], Capture]] = {
    "overlap_conflict": overlap_conflict,
    "midstream": midstream,
    "reorder_dup": reorder_dup,
    "rst_abort": rst_abort,
    "refused": refused,
    "bad_checksum": bad_checksum,
    "idle_timeout": idle_timeout,
    "wraparound": wraparound,
    "port_reuse": port_reuse,
    "ip_fragments": ip_fragments,
    "simultaneous_close": simultaneous_close,
    "orphans_mixed": orphans_mixed,
    "ipv6_sll": ipv6_sll,
    "qinq_vlan": qinq_vlan,
    "raw_ip": raw_ip,
}


def _describe(data: bytes, offset: int) -> dict[str, object]:
    out: dict[str, object] = {
        "offset": offset,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    if len(data) <= 200 and all(32 <= b < 127 or b in (9, 10, 13) for b in data):
        out["text"] = data.decode("ascii")
    return out


def _manifest_entry(name: str, cap: Capture) -> dict[str, object]:
    conns = []
    for sc in cap.connections:
        conn: dict[str, object] = {"client": sc.client, "server": sc.server}
        for who, label in ((CLI, "c2s"), (SVR, "s2c")):
            ranges = sc.sent_ranges(who)
            start = ranges[0][0] if ranges else 0
            first, last = sc.stream(who, start=start), sc.stream(who, start=start, last=True)
            conn[label] = {
                "ranges": [list(r) for r in ranges],
                "first": _describe(first, start),
                "last": _describe(last, start),
            }
        conns.append(conn)
    linktypes = sorted({f[1] for f in cap.frames})
    return {
        "file": f"{name}.pcap",
        "description": cap.description,
        "linktype": linktypes[0],
        "packets": len(cap.frames),
        "connections": conns,
    }


def generate(out_dir: Path) -> list[Path]:
    """Write every capture and manifest.json into ``out_dir``; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written, manifest = [], {}
    for name, make in CAPTURES.items():
        cap = make()
        path = out_dir / f"{name}.pcap"
        write_pcap(path, cap.frames)
        written.append(path)
        manifest[name] = _manifest_entry(name, cap)
    mpath = out_dir / "manifest.json"
    mpath.write_text(json.dumps(manifest, indent=2) + "\n")
    written.append(mpath)
    return written


def stale_files(out_dir: Path) -> list[str]:
    """Names of files in ``out_dir`` that differ from (or are missing versus) a fresh build."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        return [
            p.name
            for p in fresh
            if not (out_dir / p.name).is_file() or (out_dir / p.name).read_bytes() != p.read_bytes()
        ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=OUT_DIR, help=f"default: {OUT_DIR}")
    parser.add_argument("--check", action="store_true", help="only report files that would change")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(args.out)
        for name in stale:
            print(f"out of date: {name}")
        return 1 if stale else 0
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
