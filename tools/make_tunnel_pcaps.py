"""Make sample_pcaps/tunnels/: one real TCP connection from sample_pcaps/http_small.pcap
wrapped in every tunnel kind and link type mostool.stack.tunnels / linktypes decode.

    python tools/make_tunnel_pcaps.py            # (re)write sample_pcaps/tunnels/
    python tools/make_tunnel_pcaps.py --check    # compare with the files on disk

The inner frames are the recorded ones, byte for byte (the 6in4, 6in6 and Teredo files carry
them translated to IPv6: same TCP segments and payload, IPv6 addresses, TCP checksum redone).
Client-to-server frames travel from outer endpoint A to B, server-to-client ones from B to A,
with what differs per direction in real deployments: VXLAN/Geneve entropy source ports, GTP-U
TEIDs and L2TP ids naming the receiver, GRE sequence numbers per direction.  ERSPAN mirrors
both directions from one switch to one collector.

expected.json gives per file the link type, frame count and the inner flows as
``mostool flows --hash`` reports them on the un-encapsulated original (client, server, bytes
and SHA-256 each way), plus the tunnel descriptors (``mostool.stack.tunnels.describe`` of each
hop, outermost first, as seen on the flow's first packet) phase 2 must put in flow records.
Output is deterministic: the test suite regenerates it and compares.
"""

from __future__ import annotations

import argparse
import io
import json
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dpkt

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from tunnel_frames import (  # noqa: E402
    MAC_A,
    MAC_B,
    dot11,
    erspan2_header,
    erspan3_header,
    ether,
    geneve,
    gre,
    gtpu,
    ipv4,
    ipv6,
    l2tp_ppp,
    ppi,
    radiotap,
    snap,
    teredo,
    udp,
    vxlan,
)

SOURCE = REPO / "sample_pcaps" / "http_small.pcap"
OUT = REPO / "sample_pcaps" / "tunnels"
CLIENT_PORT = 50723  # http_small's first connection: 10.77.1.1:50723 -> 10.77.0.2:80

OUTER_V4 = (bytes([198, 51, 100, 1]), bytes([198, 51, 100, 2]))
OUTER_V6 = (bytes.fromhex("20010db8aaaa00000000000000000001"),
            bytes.fromhex("20010db8bbbb00000000000000000002"))
V4_VTEP_A, V4_VTEP_B = bytes([172, 16, 0, 1]), bytes([172, 16, 0, 2])
V4_MIRROR = (bytes([203, 0, 113, 1]), bytes([203, 0, 113, 2]))
INNER_V6_PREFIX = bytes.fromhex("fd00007700000000")
TEREDO_V6_PREFIX = bytes.fromhex("20010000c6336401")  # 2001:0:<server 198.51.100.1>


@dataclass
class Original:
    ts: float
    eth: bytes  # the recorded Ethernet frame
    ip: bytes  # its IP packet (IPv4 as recorded)
    c2s: bool


def read_connection() -> list[Original]:
    out: list[Original] = []
    with SOURCE.open("rb") as f:
        for ts, frame in dpkt.pcap.Reader(f):
            eth = dpkt.ethernet.Ethernet(frame)
            ip = eth.data
            if not isinstance(ip, dpkt.ip.IP) or not isinstance(ip.data, dpkt.tcp.TCP):
                continue
            if CLIENT_PORT not in (ip.data.sport, ip.data.dport):
                continue
            raw = frame[14 : 14 + ip.len]
            out.append(Original(float(ts), frame[: 14 + ip.len], raw, ip.data.sport == CLIENT_PORT))
    return out


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def to_ipv6(ip4: bytes, prefix: bytes) -> bytes:
    """The same TCP segment over IPv6: addresses prefix + IPv4 address, checksum redone."""
    ihl = (ip4[0] & 15) * 4
    seg = bytearray(ip4[ihl:])
    src = prefix + b"\0\0\0\0" + ip4[12:16]
    dst = prefix + b"\0\0\0\0" + ip4[16:20]
    seg[16:18] = b"\0\0"
    pseudo = src + dst + struct.pack("!IxxxB", len(seg), 6)
    seg[16:18] = struct.pack("!H", _checksum(pseudo + bytes(seg)))
    return ipv6(bytes(seg), 6, src, dst)


def eth_for(ip: bytes) -> bytes:
    return ether(ip, 0x0800 if ip[0] >> 4 == 4 else 0x86DD)


Wrap = Callable[[Original, int], bytes]  # (original, index within its direction) -> frame


def _ends(o: Original, pair: tuple[bytes, bytes]) -> tuple[bytes, bytes]:
    return pair if o.c2s else (pair[1], pair[0])


def _v4(o: Original, payload: bytes, proto: int) -> bytes:
    src, dst = _ends(o, OUTER_V4)
    return ipv4(payload, proto, src, dst)


def _v6(o: Original, payload: bytes, proto: int) -> bytes:
    src, dst = _ends(o, OUTER_V6)
    return ipv6(payload, proto, src, dst)


def _mirror(payload: bytes) -> bytes:
    """ERSPAN: the switch (A) sends every mirrored frame to the collector (B)."""
    return ipv4(payload, 47, *OUTER_V4)


def _entropy(o: Original) -> int:
    return 49200 if o.c2s else 61000


def _ieee80211(o: Original) -> bytes:
    # a station (client) to its AP: ToDS; the AP back: FromDS
    return dot11(snap(o.ip), flags=0x01 if o.c2s else 0x02)


def _vxlan_in_erspan_in_gre(o: Original, i: int) -> bytes:
    """Three hops: plain GRE (key 7) carrying IPv4 carrying ERSPAN II (a mirror from
    203.0.113.1 to .2) carrying a VTEP's VXLAN frame (VNI 77) carrying the recorded frame."""
    vtep = ipv4(udp(vxlan(o.eth, 77), _entropy(o), 4789), 17, *_ends(o, (V4_VTEP_A, V4_VTEP_B)))
    mirrored = ipv4(gre(erspan2_header(9) + eth_for(vtep), 0x88BE, seq=i), 47, *V4_MIRROR)
    return eth_for(_v4(o, gre(mirrored, 0x0800, key=7), 47))


ETHERNET_WRAPS: dict[str, Wrap] = {
    "gre_key_seq": lambda o, i: eth_for(_v4(o, gre(o.ip, 0x0800, key=0x1234, seq=i), 47)),
    "erspan1": lambda o, i: eth_for(_mirror(gre(o.eth, 0x88BE))),
    "erspan2": lambda o, i: eth_for(_mirror(gre(erspan2_header(42) + o.eth, 0x88BE, seq=i))),
    "erspan3": lambda o, i: eth_for(_mirror(gre(erspan3_header(43) + o.eth, 0x22EB, seq=i))),
    "vxlan": lambda o, i: eth_for(_v4(o, udp(vxlan(o.eth, 5000), _entropy(o), 4789), 17)),
    "geneve": lambda o, i: eth_for(
        _v4(o, udp(geneve(o.eth, 6000, options=b"\x01\x02\x03\x01abcd"), _entropy(o), 6081), 17)
    ),
    "ipip_4in4": lambda o, i: eth_for(_v4(o, o.ip, 4)),
    "ipip_4in6": lambda o, i: eth_for(_v6(o, o.ip, 4)),
    "ip6_6in4": lambda o, i: eth_for(_v4(o, to_ipv6(o.ip, INNER_V6_PREFIX), 41)),
    "ip6_6in6": lambda o, i: eth_for(_v6(o, to_ipv6(o.ip, INNER_V6_PREFIX), 41)),
    "gtpu": lambda o, i: eth_for(
        _v4(o, udp(gtpu(o.ip, 0x1001 if o.c2s else 0x2002, ext=True), 2152, 2152), 17)
    ),
    "l2tp_ppp": lambda o, i: eth_for(
        _v4(o, udp(l2tp_ppp(o.ip, *((7, 8) if o.c2s else (3, 4))), 1701, 1701), 17)
    ),
    "teredo": lambda o, i: eth_for(
        _v4(o, udp(teredo(to_ipv6(o.ip, TEREDO_V6_PREFIX), origin=not o.c2s),
                   40000 if o.c2s else 3544, 3544 if o.c2s else 40000), 17)
    ),
    "vxlan_in_erspan_in_gre": lambda o, i: _vxlan_in_erspan_in_gre(o, i),
}

LINK_WRAPS: dict[str, tuple[int, Wrap]] = {
    "radiotap_80211": (127, lambda o, i: radiotap(_ieee80211(o), flags=0x00, tsft=True)),
    "ppi_80211": (192, lambda o, i: ppi(_ieee80211(o), 105)),
    "fddi": (10, lambda o, i: (b"\x50" + (MAC_B + MAC_A if o.c2s else MAC_A + MAC_B)
                               + snap(o.ip))),
    "ipoib": (242, lambda o, i: ((b"\x00\xff\xff\xff" + b"\x11" * 16) if o.c2s
                                 else (b"\x00\xff\xff\xfe" + b"\x22" * 16))
              + b"\0" * 20 + b"\x08\x00\x00\x00" + o.ip),
}


@dataclass
class Built:
    linktype: int
    frames: list[tuple[float, bytes]]
    originals: list[bytes]
    """The un-encapsulated Ethernet frame of each frame, in order."""
    copies: int = 1
    """How many tunnels carry the connection (each is one inner flow)."""
    first_of_copy: tuple[int, ...] = (0,)
    """Index of each copy's first frame (its tunnel descriptors)."""


def _wrap_all(
    conn: list[Original], wrap: Wrap, inner6: bytes | None = None
) -> tuple[list[tuple[float, bytes]], list[bytes]]:
    counters = {True: 0, False: 0}
    frames, originals = [], []
    for o in conn:
        frames.append((o.ts, wrap(o, counters[o.c2s])))
        counters[o.c2s] += 1
        originals.append(o.eth if inner6 is None else eth_for(to_ipv6(o.ip, inner6)))
    return frames, originals


def _inner6(name: str) -> bytes | None:
    if name == "teredo":
        return TEREDO_V6_PREFIX
    return INNER_V6_PREFIX if name.startswith("ip6_") else None


def build_all() -> dict[str, Built]:
    conn = read_connection()
    out: dict[str, Built] = {}
    for name, wrap in ETHERNET_WRAPS.items():
        frames, originals = _wrap_all(conn, wrap, _inner6(name))
        out[name] = Built(1, frames, originals)
    # two VXLAN tunnels (VNI 100 and 200) carrying the same connection, 1 ms apart, interleaved
    a, oa = _wrap_all(conn, lambda o, i: eth_for(
        _v4(o, udp(vxlan(o.eth, 100), _entropy(o), 4789), 17)))
    b, ob = _wrap_all(conn, lambda o, i: eth_for(
        _v4(o, udp(vxlan(o.eth, 200), _entropy(o) + 1, 4789), 17)))
    merged = sorted([(ts, f, orig, 0) for (ts, f), orig in zip(a, oa, strict=True)]
                    + [(ts + 0.001, f, orig, 1) for (ts, f), orig in zip(b, ob, strict=True)],
                    key=lambda x: (x[0], x[3]))
    firsts = tuple(next(i for i, m in enumerate(merged) if m[3] == k) for k in (0, 1))
    out["vxlan_two_vni"] = Built(1, [(m[0], m[1]) for m in merged], [m[2] for m in merged], 2,
                                 firsts)
    for name, (linktype, wrap) in LINK_WRAPS.items():
        frames, originals = _wrap_all(conn, wrap)
        out[name] = Built(linktype, frames, originals)
    return out


def pcap_bytes(linktype: int, frames: list[tuple[float, bytes]]) -> bytes:
    buf = io.BytesIO()
    w = dpkt.pcap.Writer(buf, snaplen=65535, linktype=linktype, nano=False)
    for ts, frame in frames:
        w.writepkt(frame, ts=ts)
    return buf.getvalue()


def inner_flows(originals: list[bytes], timestamps: list[float]) -> list[dict[str, object]]:
    """``mostool flows --hash`` on the un-encapsulated original frames."""
    key = (tuple(originals), tuple(timestamps))
    if key not in _FLOWS_CACHE:
        _FLOWS_CACHE[key] = _run_flows(originals, timestamps)
    return [dict(f) for f in _FLOWS_CACHE[key]]


_FLOWS_CACHE: dict[tuple[tuple[bytes, ...], tuple[float, ...]], list[dict[str, object]]] = {}


def _run_flows(originals: list[bytes], timestamps: list[float]) -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "original.pcap"
        path.write_bytes(pcap_bytes(1, list(zip(timestamps, originals, strict=True))))
        out = subprocess.run(
            [sys.executable, "-m", "mostool", "flows", "-r", str(path), "--hash"],
            capture_output=True, text=True, check=True,
        ).stdout
    flows = []
    for line in out.splitlines():
        rec = json.loads(line)
        flows.append({
            "client": rec["client"],
            "server": rec["server"],
            "c2s": {"bytes": rec["c2s"]["bytes"], "sha256": rec["c2s"]["sha256"]},
            "s2c": {"bytes": rec["s2c"]["bytes"], "sha256": rec["s2c"]["sha256"]},
        })
    return flows


def tunnel_descriptors(linktype: int, frame: bytes) -> list[dict[str, object]]:
    from tunnel_walk import walk

    from mostool.stack.tunnels import describe

    return [describe(h) for h in walk(linktype, frame).hops]


def expected(built: dict[str, Built]) -> dict[str, object]:
    files: dict[str, object] = {}
    for name, b in built.items():
        # the connection un-encapsulated (with two copies, the second is a duplicate of each
        # frame 1 ms later, which mostool counts as retransmissions: hash the copy alone)
        seen: set[bytes] = set()
        originals, times = [], []
        for (ts, _), orig in zip(b.frames, b.originals, strict=True):
            if orig not in seen:
                seen.add(orig)
                originals.append(orig)
                times.append(ts)
        (flow,) = inner_flows(originals, times)
        flows = [dict(flow, tunnel=tunnel_descriptors(b.linktype, b.frames[k][1]))
                 for k in b.first_of_copy]
        files[f"{name}.pcap"] = {"linktype": b.linktype, "frames": len(b.frames), "flows": flows}
    return {
        "format": "mostool-tunnel-samples/1",
        "source": "sample_pcaps/http_small.pcap, connection 10.77.1.1:50723 -> 10.77.0.2:80",
        "generator": "tools/make_tunnel_pcaps.py",
        "files": files,
    }


def render(built: dict[str, Built]) -> dict[str, bytes]:
    out = {f"{name}.pcap": pcap_bytes(b.linktype, b.frames) for name, b in built.items()}
    out["expected.json"] = (json.dumps(expected(built), indent=1) + "\n").encode()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--check", action="store_true", help="compare with the files on disk")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    files = render(build_all())
    if args.check:
        bad = [n for n, data in files.items()
               if not (args.out / n).exists() or (args.out / n).read_bytes() != data]
        for n in bad:
            print(f"differs: {n}", file=sys.stderr)
        return 1 if bad else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for n, data in files.items():
        (args.out / n).write_bytes(data)
    print(f"wrote {len(files)} files to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
