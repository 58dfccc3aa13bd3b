"""A small reference walker for the tunnel and link-type tests: link -> ethertype -> IP, then
one ``decapsulate`` call per tunnel hop exactly as the hook contract in
``mostool.stack.tunnels`` describes, down to the innermost IP packet.

It stands in for the decoder until phase 2 wires the hook into ``mostool.stack.decode``; it is
deliberately plain (no fast paths) so that a mismatch points at the modules under test.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mostool.replay import read_capture
from mostool.stack import linktypes, tunnels
from mostool.stack.tunnels import (
    INNER_ETHERNET,
    INNER_ETHERTYPE,
    INNER_PPP,
    MAX_DEPTH,
    TUNNEL_IP_PROTOCOLS,
    Decap,
    TunnelHop,
)

_V6_EXT = {0, 43, 60}  # hop-by-hop, routing, destination options (fragments: stop)


@dataclass
class Walked:
    """The innermost IP packet of a frame, or why there is none."""

    ip: bytes = b""
    proto: int = -1
    l4: bytes = b""
    hops: list[TunnelHop] = field(default_factory=list)
    refused: str = ""

    @property
    def ports(self) -> tuple[int, int]:
        return struct.unpack_from("!HH", self.l4) if len(self.l4) >= 4 else (-1, -1)


def _ethertype_walk(buf: bytes, et: int, off: int) -> tuple[int, int] | None:
    """Skip VLAN tags and MPLS labels; (ip version, offset) or None."""
    for _ in range(8):
        if et in (0x8100, 0x88A8, 0x9100):
            if off + 4 > len(buf):
                return None
            et = struct.unpack_from("!H", buf, off + 2)[0]
            off += 4
        elif et == 0x8847:
            while off + 4 <= len(buf):
                bottom = buf[off + 2] & 1
                off += 4
                if bottom:
                    break
            if off >= len(buf):
                return None
            return buf[off] >> 4, off
        elif et == 0x0800:
            return 4, off
        elif et == 0x86DD:
            return 6, off
        else:
            return None
    return None


def _ppp(buf: bytes, off: int) -> tuple[int, int] | None:
    if buf[off : off + 2] == b"\xff\x03":
        off += 2
    if off >= len(buf):
        return None
    if buf[off] & 1:  # one-byte protocol field (protocol field compression)
        proto, off = buf[off], off + 1
    else:
        if off + 2 > len(buf):
            return None
        proto, off = struct.unpack_from("!H", buf, off)[0], off + 2
    return {0x21: (4, off), 0x57: (6, off)}.get(proto)


def walk(linktype: int, buf: bytes) -> Walked:
    """Walk one captured frame down to its innermost IP packet."""
    w = Walked()
    start: tuple[int, int] | None
    if linktype == 1:
        if len(buf) < 14:
            w.refused = "ethernet truncated"
            return w
        start = _ethertype_walk(buf, struct.unpack_from("!H", buf, 12)[0], 14)
    elif linktype in (101, 12, 228, 229):
        start = (buf[0] >> 4, 0) if buf else None
    elif linktype in linktypes.EXTRA_LINKTYPES:
        lp = linktypes.link_payload(linktype, buf)
        if isinstance(lp, linktypes.Refusal):
            w.refused = lp.reason
            return w
        if lp.inner == INNER_ETHERNET:
            start = _ethertype_walk(buf, struct.unpack_from("!H", buf, lp.off + 12)[0], lp.off + 14)
        else:
            start = _ethertype_walk(buf, lp.ethertype, lp.off)
    else:
        w.refused = f"linktype {linktype}"
        return w
    bound = len(buf)
    while True:
        if start is None:
            w.refused = w.refused or "no IP"
            return w
        version, off = start
        if version == 4:
            if off + 20 > len(buf):
                w.refused = "ipv4 truncated"
                return w
            ihl = (buf[off] & 15) * 4
            end = off + struct.unpack_from("!H", buf, off + 2)[0]
            proto = buf[off + 9]
            l4 = off + ihl
            src, dst = buf[off + 12 : off + 16], buf[off + 16 : off + 20]
            if struct.unpack_from("!H", buf, off + 6)[0] & 0x3FFF:
                w.refused = "fragment"
                return w
        elif version == 6:
            if off + 40 > len(buf):
                w.refused = "ipv6 truncated"
                return w
            end = off + 40 + struct.unpack_from("!H", buf, off + 4)[0]
            proto = buf[off + 6]
            src, dst = buf[off + 8 : off + 24], buf[off + 24 : off + 40]
            l4 = off + 40
            while proto in _V6_EXT and l4 + 2 <= len(buf):
                proto, l4 = buf[l4], l4 + 8 + buf[l4 + 1] * 8
        else:
            w.refused = f"ip version {version}"
            return w
        end = min(end, bound)
        w.ip, w.proto, w.l4 = buf[off:end], proto, buf[l4:end]
        if proto not in TUNNEL_IP_PROTOCOLS:
            return w
        r = tunnels.decapsulate(buf, l4, end, proto, src, dst)
        if r is None:
            return w
        if not isinstance(r, Decap):
            w.refused = r.reason
            return w
        w.hops.append(r.hop)
        if len(w.hops) > MAX_DEPTH:
            w.refused = "tunnel: nesting deeper than MAX_DEPTH"
            return w
        bound = min(r.end, len(buf))
        if r.inner == INNER_ETHERNET:
            if r.off + 14 > len(buf):
                w.refused = "inner ethernet truncated"
                return w
            start = _ethertype_walk(buf, struct.unpack_from("!H", buf, r.off + 12)[0], r.off + 14)
        elif r.inner == INNER_ETHERTYPE:
            start = _ethertype_walk(buf, r.ethertype, r.off)
        elif r.inner == INNER_PPP:
            start = _ppp(buf, r.off)
        else:
            raise AssertionError(f"unknown inner kind {r.inner}")
        w.ip, w.proto, w.l4 = b"", -1, b""


def tshark_rows(path: Path, fields: list[str]) -> list[list[str]]:
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark not installed")
    cmd = [tshark, "-n", "-r", str(path), "-T", "fields", "-E", "occurrence=l"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def check_against_tshark(path: Path) -> tuple[set[str], int]:
    """Walk every frame; where tshark shows TCP (not inside ICMP), the innermost packet must be
    that TCP segment (ports, raw sequence number, payload length).  Returns kinds, matches."""
    rows = tshark_rows(path, ["frame.protocols", "tcp.srcport", "tcp.dstport", "tcp.seq_raw",
                              "tcp.len"])
    frames = list(read_capture(path))
    assert len(frames) == len(rows)
    kinds: set[str] = set()
    matched = 0
    for (_, linktype, buf, _), row in zip(frames, rows, strict=True):
        w = walk(linktype, buf)
        kinds |= {h.kind for h in w.hops}
        protocols, sport, dport, seq, tlen = row
        if not sport or "icmp" in protocols:
            continue
        if w.refused == "fragment":  # tshark reassembled the outer datagram; the decoder will
            continue
        assert w.proto == 6, (protocols, w.refused, w.hops)
        doff = (w.l4[12] >> 4) * 4
        got = (*w.ports, struct.unpack_from("!I", w.l4, 4)[0], len(w.l4) - doff)
        assert got == (int(sport), int(dport), int(seq), int(tlen)), protocols
        matched += 1
    return kinds, matched
