"""Tests for mostool.stack.decode: link types, IPv4/IPv6, fragments, TCP, checksums, fuzzing.

Frames are built with dpkt (IPv4/TCP/Ethernet/SLL) and struct (the other link headers, IPv6
extension headers); the TCP checksum reference is an independent 16-bit word sum.
The corpus tests read /work/shared/pcaps in place and skip when it is absent.
"""

from __future__ import annotations

import ast
import ipaddress
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import dpkt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mostool.stack.decode import (
    ACK,
    CWR,
    ECE,
    FIN,
    FRAGMENT,
    MALFORMED,
    NOT_IP,
    NOT_TCP,
    PSH,
    RST,
    STATUS_NAMES,
    SUPPORTED_LINKTYPES,
    SYN,
    UNKNOWN_LINKTYPE,
    URG,
    Decoder,
    TcpOptions,
    TcpSegment,
    format_addr,
    parse_tcp_options,
    tcp_checksum_ok,
    tcp_wscale,
)
from mostool.stack.tcpfields import tcp_timestamps
from mostool.stack.tunnels import tunnel_key

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PCAPS = SHARED / "pcaps"

SRC4 = bytes([192, 0, 2, 10])
DST4 = bytes([198, 51, 100, 5])
SRC6 = bytes.fromhex("20010db8000000000000000000000010")
DST6 = bytes.fromhex("20010db8000000010000000000000005")
MAC1 = bytes.fromhex("020000000001")
MAC2 = bytes.fromhex("020000000002")


# =========================================================================== builders


def inet_sum(data: bytes) -> int:
    """Reference ones'-complement sum of 16-bit words (RFC 1071), independent of decode.py."""
    if len(data) % 2:
        data += b"\x00"
    s: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def reference_checksum_ok(src: bytes, dst: bytes, segment: bytes) -> bool:
    if len(src) == 4:
        pseudo = src + dst + struct.pack("!BBH", 0, 6, len(segment))
    else:
        pseudo = src + dst + struct.pack("!I3xB", len(segment), 6)
    return inet_sum(pseudo + segment) == 0xFFFF


def tcp(
    payload: bytes = b"",
    *,
    sport: int = 40000,
    dport: int = 80,
    seq: int = 1000,
    ack: int = 2000,
    flags: int = ACK | PSH,
    win: int = 8192,
    urg: int = 0,
    opts: bytes = b"",
) -> dpkt.tcp.TCP:
    assert len(opts) % 4 == 0
    return dpkt.tcp.TCP(
        sport=sport,
        dport=dport,
        seq=seq,
        ack=ack,
        flags=flags,
        win=win,
        urp=urg,
        opts=opts,
        off=5 + len(opts) // 4,
        data=payload,
    )


def tcp_bytes(src: bytes, dst: bytes, t: dpkt.tcp.TCP) -> bytes:
    """The TCP header + payload with a correct checksum for src/dst (v4 or v6)."""
    t.sum = 0
    raw = bytes(t)
    if len(src) == 4:
        pseudo = src + dst + struct.pack("!BBH", 0, 6, len(raw))
    else:
        pseudo = src + dst + struct.pack("!I3xB", len(raw), 6)
    csum = ~inet_sum(pseudo + raw) & 0xFFFF
    return raw[:16] + struct.pack("!H", csum) + raw[18:]


def ipv4(
    t: dpkt.tcp.TCP | None = None,
    *,
    src: bytes = SRC4,
    dst: bytes = DST4,
    opts: bytes = b"",
    ident: int = 0x1234,
    proto: int = 6,
    data: bytes | None = None,
    df: bool = True,
) -> bytes:
    """An IPv4 datagram built by dpkt (header and TCP checksums computed by dpkt)."""
    assert len(opts) % 4 == 0
    body: dpkt.Packet | bytes = t if t is not None else (data if data is not None else b"")
    ip = dpkt.ip.IP(
        src=src,
        dst=dst,
        p=proto,
        id=ident,
        ttl=64,
        opts=opts,
        hl=5 + len(opts) // 4,
        df=int(df),
        data=body,
    )
    ip.len = len(ip)
    return bytes(ip)


def ext_generic(nh: int, body_len: int = 6, fill: int = 0) -> bytes:
    """A hop-by-hop / routing / destination options header of (body_len + 2) bytes."""
    total = 2 + body_len
    assert total % 8 == 0
    # PadN option covering the body, unless a fill byte is given
    body = bytes([fill]) * body_len if fill else bytes([1, body_len - 2]) + bytes(body_len - 2)
    return bytes([nh, total // 8 - 1]) + body


def ext_ah(nh: int) -> bytes:
    # next header, payload len (in 4-byte units minus 2), reserved, SPI, sequence, 4-byte ICV
    return struct.pack("!BBHII", nh, 2, 0, 0x100, 1) + b"\xaa\xbb\xcc\xdd"


def ipv6(
    upper: bytes,
    *,
    upper_nh: int = 6,
    chain: tuple[int, ...] = (),
    src: bytes = SRC6,
    dst: bytes = DST6,
    plen: int | None = None,
) -> bytes:
    """An IPv6 packet: header, the extension headers named in chain (0, 43, 60, 51, ...), upper."""
    exts = b""
    types = list(chain) + [upper_nh]
    for i, kind in enumerate(chain):
        nxt = types[i + 1]
        exts += ext_ah(nxt) if kind == 51 else ext_generic(nxt)
    first = types[0]
    payload = exts + upper
    length = len(payload) if plen is None else plen
    return struct.pack("!IHBB", 0x60000000, length, first, 64) + src + dst + payload


def ipv6_tcp(t: dpkt.tcp.TCP, *, chain: tuple[int, ...] = (), **kw: bytes) -> bytes:
    src = kw.get("src", SRC6)
    dst = kw.get("dst", DST6)
    return ipv6(tcp_bytes(src, dst, t), chain=chain, src=src, dst=dst)


def ipv6_dpkt(t: dpkt.tcp.TCP) -> bytes:
    """A plain IPv6/TCP packet built by dpkt (checksum by dpkt)."""
    pkt = dpkt.ip6.IP6(src=SRC6, dst=DST6, nxt=6, hlim=64, data=t)
    pkt.plen = len(t)
    return bytes(pkt)


def ether(payload: bytes, ethertype: int, tags: tuple[int, ...] = ()) -> bytes:
    """Ethernet; tags are TPIDs of stacked 4-byte VLAN tags.

    Built by hand: dpkt.ethernet.Ethernet re-parses and re-encodes a bytes payload (it
    compresses a PPPoE session's PPP protocol field, and fails on some IPv6 packets).
    """
    out = MAC2 + MAC1
    for i, tpid in enumerate(tags):
        out += struct.pack("!HH", tpid, 100 + i)
    return out + struct.pack("!H", ethertype) + payload


def mpls(ip: bytes, labels: int) -> bytes:
    stack = b"".join(
        struct.pack("!I", (1000 + i) << 12 | (1 << 8 if i == labels - 1 else 0) | 64)
        for i in range(labels)
    )
    return ether(stack + ip, 0x8847)


def nflog(ip: bytes, family: int, order: str = "<") -> bytes:
    hdr = struct.pack("!BBH", family, 0, 7)
    prefix = b"mostool\x00"
    tlv1 = struct.pack(order + "HH", 4 + len(prefix), 10) + prefix
    tlv2 = struct.pack(order + "HH", 4 + len(ip), 9) + ip
    pad = bytes(-len(tlv2) % 4)
    return hdr + tlv1 + tlv2 + pad


# (name, linktype, wrap(ip, version) -> frame, ip_off)
Wrapper = Callable[[bytes, int], bytes]


def _et(v: int) -> int:
    return 0x0800 if v == 4 else 0x86DD


def _ppp_proto(v: int) -> int:
    return 0x0021 if v == 4 else 0x0057


LINKS: list[tuple[str, int, Wrapper, int]] = [
    ("ethernet", 1, lambda ip, v: ether(ip, _et(v)), 14),
    ("vlan", 1, lambda ip, v: ether(ip, _et(v), (0x8100,)), 18),
    ("qinq", 1, lambda ip, v: ether(ip, _et(v), (0x88A8, 0x8100)), 22),
    ("qinqinq", 1, lambda ip, v: ether(ip, _et(v), (0x9100, 0x88A8, 0x8100)), 26),
    (
        "pppoe",
        1,
        lambda ip, v: ether(
            struct.pack("!BBHHH", 0x11, 0, 0x1234, len(ip) + 2, _ppp_proto(v)) + ip, 0x8864
        ),
        22,
    ),
    (
        "vlan-pppoe",
        1,
        lambda ip, v: ether(
            struct.pack("!BBHHH", 0x11, 0, 0x1234, len(ip) + 2, _ppp_proto(v)) + ip,
            0x8864,
            (0x8100,),
        ),
        26,
    ),
    ("mpls1", 1, lambda ip, v: mpls(ip, 1), 18),
    ("mpls3", 1, lambda ip, v: mpls(ip, 3), 26),
    (
        "vntag",
        1,
        lambda ip, v: MAC2 + MAC1 + struct.pack("!HIH", 0x8926, 0x33, _et(v)) + ip,
        20,
    ),
    (
        "pbb",
        1,
        lambda ip, v: MAC2 + MAC1 + struct.pack("!HI", 0x88E7, 0x100) + ether(ip, _et(v)),
        32,
    ),
    ("null-le", 0, lambda ip, v: struct.pack("<I", 2 if v == 4 else 24) + ip, 4),
    ("null-be", 0, lambda ip, v: struct.pack(">I", 2 if v == 4 else 24) + ip, 4),
    ("null-linux6", 0, lambda ip, v: struct.pack("<I", 2 if v == 4 else 10) + ip, 4),
    ("null-freebsd6", 0, lambda ip, v: struct.pack("<I", 2 if v == 4 else 28) + ip, 4),
    ("loop", 108, lambda ip, v: struct.pack(">I", 2 if v == 4 else 24) + ip, 4),
    ("raw12", 12, lambda ip, v: ip, 0),
    ("raw14", 14, lambda ip, v: ip, 0),
    ("raw101", 101, lambda ip, v: ip, 0),
    ("null-darwin6", 0, lambda ip, v: struct.pack("<I", 2 if v == 4 else 30) + ip, 4),
    (
        "sll",
        113,
        lambda ip, v: bytes(
            dpkt.sll.SLL(type=0, hrd=1, hlen=6, hdr=MAC1 + b"\0\0", ethtype=_et(v), data=ip)
        ),
        16,
    ),
    (
        "sll-vlan",
        113,
        lambda ip, v: (
            struct.pack("!HHH8sH", 4, 1, 6, MAC1, 0x8100) + struct.pack("!HH", 7, _et(v)) + ip
        ),
        20,
    ),
    (
        "sll2",
        276,
        lambda ip, v: (
            bytes(
                dpkt.sll2.SLL2(
                    ethtype=_et(v), intindex=3, hrd=1, type=4, hlen=6, hdr=MAC1 + b"\0\0"
                )
            )
            + ip
        ),
        20,
    ),
    ("ppp", 9, lambda ip, v: b"\xff\x03" + struct.pack("!H", _ppp_proto(v)) + ip, 4),
    ("ppp-noaddr", 9, lambda ip, v: struct.pack("!H", _ppp_proto(v)) + ip, 2),
    ("ppp-pfc", 9, lambda ip, v: bytes([_ppp_proto(v)]) + ip, 1),
    ("ppp-chdlc", 9, lambda ip, v: b"\x0f\x00" + struct.pack("!H", _et(v)) + ip, 4),
    ("ppp-hdlc", 50, lambda ip, v: b"\xff\x03" + struct.pack("!H", _ppp_proto(v)) + ip, 4),
    ("ppp-hdlc-chdlc", 50, lambda ip, v: b"\x8f\x00" + struct.pack("!H", _et(v)) + ip, 4),
    (
        "ppp-ether",
        51,
        lambda ip, v: struct.pack("!BBHHH", 0x11, 0, 1, len(ip) + 2, _ppp_proto(v)) + ip,
        8,
    ),
    ("chdlc", 104, lambda ip, v: b"\x0f\x00" + struct.pack("!H", _et(v)) + ip, 4),
    ("nflog-le", 239, lambda ip, v: nflog(ip, 2 if v == 4 else 10, "<"), 20),
    ("nflog-be", 239, lambda ip, v: nflog(ip, 2 if v == 4 else 10, ">"), 20),
]


# =========================================================================== invariants


def check_result(r: TcpSegment | int, dec: Decoder) -> None:
    """What every decode result must satisfy, whatever the input."""
    if isinstance(r, int):
        assert r in STATUS_NAMES
        if r in (MALFORMED, NOT_IP, UNKNOWN_LINKTYPE):
            assert dec.last_error
            assert not dec.last_error.startswith("internal"), dec.last_error
        return
    assert type(r) is TcpSegment
    n = len(r.buf)
    assert r.ip_version in (4, 6)
    alen = 4 if r.ip_version == 4 else 16
    assert len(r.src) == len(r.dst) == alen
    # a segment found inside tunnels: its key ends with the tunnel's (issue #17)
    suffix = tunnel_key(r.tunnel) if r.tunnel is not None else b""
    assert r.tunnel is None or r.tunnel
    assert r.key == r.src + r.dst + struct.pack("!HH", r.sport, r.dport) + suffix
    assert r.src == r.buf[r.ip_off + (12 if alen == 4 else 8) :][:alen]
    assert r.tcp_off >= r.ip_off + (20 if alen == 4 else 40)
    assert r.payload_off == r.tcp_off + 20 + len(r.options)
    assert r.options == r.buf[r.tcp_off + 20 : r.payload_off]
    assert r.payload_off <= n
    assert 0 <= r.payload_len <= r.wire_len
    assert r.payload_off + r.payload_len <= n
    assert 0 <= r.flags <= 0xFF and 0 <= r.window <= 0xFFFF and 0 <= r.urgent <= 0xFFFF
    assert r.buf[r.ip_off] >> 4 == r.ip_version
    if r.tunnel:  # an inner packet: at its offset in the frame or reassembled outer datagram
        assert r.ip_off >= 20
    elif r.linktype == 228:  # raw IPv4, or a reassembled datagram
        assert r.ip_version == 4 and r.ip_off == 0
    elif r.linktype == 229:
        assert r.ip_version == 6 and r.ip_off == 0
    parse_tcp_options(r.options)
    ok = tcp_checksum_ok(r)
    assert ok in (True, False, None)
    if r.payload_len < r.wire_len:
        assert ok is None
    format_addr(r.src, r.sport)
    format_addr(r.dst, r.dport)


def seg_of(r: TcpSegment | int, dec: Decoder | None = None) -> TcpSegment:
    if isinstance(r, int):
        err = dec.last_error if dec is not None else ""
        raise AssertionError(f"expected a segment, got {STATUS_NAMES.get(r, r)}: {err}")
    return r


def decode1(linktype: int, frame: bytes, ts: float = 0.0) -> tuple[TcpSegment | int, Decoder]:
    dec = Decoder()
    r = dec.decode(linktype, frame, ts)
    check_result(r, dec)
    return r, dec


# =========================================================================== basic decode


def test_fast_path_fields() -> None:
    payload = b"GET / HTTP/1.1\r\n\r\n"
    t = tcp(payload, sport=51234, dport=8080, seq=0xFFFFFFF0, ack=7, flags=ACK | PSH, win=29200)
    frame = ether(ipv4(t), 0x0800)
    r, _ = decode1(1, frame)
    s = seg_of(r)
    assert s.key == SRC4 + DST4 + struct.pack("!HH", 51234, 8080)
    assert len(s.key) == 12
    assert (s.src, s.dst, s.sport, s.dport) == (SRC4, DST4, 51234, 8080)
    assert (s.seq, s.ack, s.flags, s.window, s.urgent) == (0xFFFFFFF0, 7, ACK | PSH, 29200, 0)
    assert s.options == b""
    assert s.buf is frame
    assert (s.ip_off, s.tcp_off, s.payload_off) == (14, 34, 54)
    assert s.payload_len == s.wire_len == len(payload)
    assert s.buf[s.payload_off : s.payload_off + s.payload_len] == payload
    assert (s.ip_version, s.linktype) == (4, 1)
    assert tcp_checksum_ok(s) is True


def test_flag_constants() -> None:
    assert (FIN, SYN, RST, PSH, ACK, URG, ECE, CWR) == (1, 2, 4, 8, 16, 32, 64, 128)
    r, _ = decode1(1, ether(ipv4(tcp(flags=0xFF, urg=9)), 0x0800))
    s = seg_of(r)
    assert s.flags == 0xFF and s.urgent == 9


def test_status_codes_distinct() -> None:
    codes = {NOT_IP, NOT_TCP, FRAGMENT, MALFORMED, UNKNOWN_LINKTYPE}
    assert len(codes) == 5
    assert all(type(c) is int for c in codes)
    assert set(STATUS_NAMES) == codes


@pytest.mark.parametrize("version", [4, 6])
@pytest.mark.parametrize(("name", "linktype", "wrap", "ip_off"), LINKS, ids=[x[0] for x in LINKS])
def test_link_types(name: str, linktype: int, wrap: Wrapper, ip_off: int, version: int) -> None:
    payload = b"hello, " + name.encode()
    t = tcp(payload, opts=b"\x02\x04\x05\xb4\x01\x01\x04\x02")
    ip = ipv4(t) if version == 4 else ipv6_dpkt(t)
    frame = wrap(ip, version)
    r, dec = decode1(linktype, frame)
    s = seg_of(r, dec)
    assert s.ip_off == ip_off
    assert s.ip_version == version
    assert s.linktype == linktype
    assert s.buf is frame
    assert s.tcp_off == ip_off + (20 if version == 4 else 40)
    assert s.options == b"\x02\x04\x05\xb4\x01\x01\x04\x02"
    assert s.payload_len == s.wire_len == len(payload)
    assert s.buf[s.payload_off : s.payload_off + s.payload_len] == payload
    assert s.src == (SRC4 if version == 4 else SRC6)
    assert len(s.key) == (12 if version == 4 else 36)
    assert tcp_checksum_ok(s) is True


@pytest.mark.parametrize("linktype", [228, 229])
def test_raw_ipv4_ipv6_linktypes(linktype: int) -> None:
    t = tcp(b"x")
    ip = ipv4(t) if linktype == 228 else ipv6_dpkt(t)
    s = seg_of(decode1(linktype, ip)[0])
    assert (s.ip_off, s.linktype, s.ip_version) == (0, linktype, 4 if linktype == 228 else 6)
    # the wrong version for the link type is malformed, not a crash
    other = ipv6_dpkt(t) if linktype == 228 else ipv4(t)
    r, dec = decode1(linktype, other)
    assert r == MALFORMED and "version" in dec.last_error


@pytest.mark.parametrize("depth", [0, 1, 2, 3])
@pytest.mark.parametrize("tpid", [0x8100, 0x88A8, 0x9100])
@pytest.mark.parametrize("version", [4, 6])
def test_vlan_depths(depth: int, tpid: int, version: int) -> None:
    t = tcp(b"vlan")
    ip = ipv4(t) if version == 4 else ipv6_dpkt(t)
    frame = ether(ip, _et(version), (tpid,) * depth)
    s = seg_of(decode1(1, frame)[0])
    assert s.ip_off == 14 + 4 * depth
    assert s.buf[s.payload_off : s.payload_off + 4] == b"vlan"


def test_vlan_truncated_tag() -> None:
    r, dec = decode1(1, MAC2 + MAC1 + b"\x81\x00\x00")
    assert r == MALFORMED and dec.last_error.startswith("vlan")


def test_null_family_variants_and_unknown() -> None:
    ip = ipv4(tcp())
    for fam in (struct.pack("<I", 2), struct.pack(">I", 2)):
        assert seg_of(decode1(0, fam + ip)[0]).ip_version == 4
        assert seg_of(decode1(108, fam + ip)[0]).ip_version == 4
    r, dec = decode1(0, struct.pack("<I", 7) + ip)
    assert r == NOT_IP and "family 7" in dec.last_error
    assert decode1(0, b"\x02\x00")[0] == MALFORMED


# =========================================================================== not IP / not TCP


@pytest.mark.parametrize(
    ("linktype", "frame", "status"),
    [
        (1, ether(bytes(28), 0x0806), NOT_IP),  # ARP
        (1, ether(bytes(30), 0x88CC), NOT_IP),  # LLDP
        (1, MAC2 + MAC1 + struct.pack("!H", 46) + bytes(46), NOT_IP),  # 802.3 length
        (1, ether(struct.pack("!I", 1 << 8 | 64) + bytes(40), 0x8847), NOT_IP),  # MPLS, PW
        (1, ether(struct.pack("!I", 64), 0x8847), MALFORMED),  # MPLS, no bottom of stack
        (1, ether(struct.pack("!BBHHH", 0x11, 0, 1, 2, 0xC021), 0x8864), NOT_IP),  # PPPoE LCP
        (1, MAC2 + MAC1 + b"\x08", MALFORMED),  # short Ethernet
        (1, b"", MALFORMED),
        (9, b"\xff\x03\xc0\x21\x01\x01\x00\x04", NOT_IP),  # PPP LCP
        (9, b"\xff\x03", MALFORMED),
        (101, bytes([0x50]) + bytes(39), NOT_IP),  # raw, version 5
        (101, b"", MALFORMED),
        (113, bytes(16), NOT_IP),  # SLL, protocol 0
        (113, bytes(10), MALFORMED),
        (276, bytes(12), MALFORMED),
        (239, struct.pack("!BBH", 2, 0, 0), NOT_IP),  # NFLOG without payload TLV
        (104, b"\x0f\x00\x80\x35" + bytes(20), NOT_IP),  # Cisco SLARP
        (227, bytes(16), UNKNOWN_LINKTYPE),  # SocketCAN
        (127, bytes(64), MALFORMED),  # radiotap (stack/linktypes.py): header length 0
        (147, bytes(64), UNKNOWN_LINKTYPE),
        (-1, bytes(64), UNKNOWN_LINKTYPE),
    ],
)
def test_not_ip_and_unknown(linktype: int, frame: bytes, status: int) -> None:
    r, dec = decode1(linktype, frame)
    assert r == status, dec.last_error
    assert dec.last_error


def test_not_tcp() -> None:
    udp = dpkt.udp.UDP(sport=53, dport=53, data=b"dns")
    udp.ulen = len(udp)
    frames = [
        ether(ipv4(proto=17, data=bytes(udp)), 0x0800),
        ether(ipv4(proto=1, data=b"\x08\x00\x00\x00\x00\x00\x00\x00"), 0x0800),
        ether(ipv6(bytes(udp), upper_nh=17), 0x86DD),
        ether(ipv6(bytes(16), upper_nh=58), 0x86DD),  # ICMPv6
        ether(ipv6(bytes(24), upper_nh=50), 0x86DD),  # ESP
        ether(ipv6(b"", upper_nh=59), 0x86DD),  # no next header
        ether(ipv6(bytes(udp), upper_nh=17, chain=(0, 60, 51)), 0x86DD),
        ether(ipv6(bytes(8), upper_nh=135), 0x86DD),  # mobility
    ]
    dec = Decoder()
    for f in frames:
        r = dec.decode(1, f, 0.0)
        assert r == NOT_TCP, dec.last_error
    assert dec.stats()["not_tcp"] == len(frames)


# =========================================================================== IPv4


@pytest.mark.parametrize("opt_words", [1, 2, 5, 10])
def test_ipv4_options(opt_words: int) -> None:
    opts = b"\x01" * (opt_words * 4 - 1) + b"\x00"
    t = tcp(b"payload", opts=b"\x01\x01\x08\x0a" + struct.pack("!II", 5, 6))
    frame = ether(ipv4(t, opts=opts), 0x0800)
    s = seg_of(decode1(1, frame)[0])
    assert s.tcp_off == 14 + 20 + 4 * opt_words
    assert s.payload_len == s.wire_len == 7
    assert parse_tcp_options(s.options).ts_val == 5
    assert tcp_checksum_ok(s) is True


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda ip: bytes([0x44]) + ip[1:], "header length 4 < 5"),
        (lambda ip: bytes([0x40]) + ip[1:], "header length 0 < 5"),
        (lambda ip: bytes([0x55]) + ip[1:], "version 5"),
        (lambda ip: ip[:2] + struct.pack("!H", 12) + ip[4:], "total length 12"),
        (lambda ip: bytes([0x4F]) + ip[1:40], "options truncated"),
        (lambda ip: ip[:19], "header truncated"),
    ],
)
def test_ipv4_malformed(mutate: Callable[[bytes], bytes], needle: str) -> None:
    ip = mutate(ipv4(tcp(b"abc")))
    for lt, frame in ((1, ether(ip, 0x0800)), (228, ip)):
        r, dec = decode1(lt, frame)
        assert r == MALFORMED
        assert needle in dec.last_error


def test_ethernet_padding_is_not_payload() -> None:
    ip = ipv4(tcp(flags=SYN))
    frame = ether(ip, 0x0800)
    assert len(frame) == 54
    padded = frame + b"\xee" * 6  # minimum Ethernet frame
    s = seg_of(decode1(1, padded)[0])
    assert s.payload_len == s.wire_len == 0
    assert tcp_checksum_ok(s) is True
    # a small payload plus padding, and with IP options (general path)
    ip = ipv4(tcp(b"ab"), opts=b"\x01\x01\x01\x00")
    s = seg_of(decode1(1, ether(ip, 0x0800) + bytes(10))[0])
    assert s.payload_len == s.wire_len == 2
    assert tcp_checksum_ok(s) is True
    # IPv6 payload length trims padding too
    ip6 = ipv6_dpkt(tcp(b"z"))
    s = seg_of(decode1(229, ip6 + bytes(7))[0])
    assert s.payload_len == s.wire_len == 1
    assert tcp_checksum_ok(s) is True


@pytest.mark.parametrize("version", [4, 6])
@pytest.mark.parametrize("linktype", [1, 113])
def test_truncated_by_snaplen(version: int, linktype: int) -> None:
    payload = bytes(range(200))
    t = tcp(payload)
    ip = ipv4(t) if version == 4 else ipv6_dpkt(t)
    wrap = LINKS[0][2] if linktype == 1 else next(x[2] for x in LINKS if x[0] == "sll")
    full = wrap(ip, version)
    hdrs = len(full) - len(payload)
    frame = full[: hdrs + 50]
    s = seg_of(decode1(linktype, frame)[0])
    assert s.payload_len == 50
    assert s.wire_len == 200
    assert tcp_checksum_ok(s) is None
    # cut inside the TCP header / options: malformed
    r, dec = decode1(linktype, full[: hdrs - 5])
    assert r == MALFORMED and dec.last_error.startswith("tcp")


def test_tso_total_length_zero() -> None:
    payload = bytes(3000)
    ip = bytearray(ipv4(tcp(payload)))
    ip[2:4] = b"\x00\x00"
    frame = ether(bytes(ip), 0x0800)
    s = seg_of(decode1(1, frame)[0])
    assert s.payload_len == s.wire_len == 3000
    assert tcp_checksum_ok(s) is None


def test_ipv6_payload_length_zero_jumbo() -> None:
    payload = bytes(range(256)) * 4
    t = tcp_bytes(SRC6, DST6, tcp(payload))
    # hop-by-hop header with a jumbo payload option (C2, length 4)
    hbh = struct.pack("!BBBBI", 6, 0, 0xC2, 4, 8 + len(t))
    pkt = struct.pack("!IHBB", 0x60000000, 0, 0, 64) + SRC6 + DST6 + hbh + t
    s = seg_of(decode1(1, ether(pkt, 0x86DD))[0])
    assert s.tcp_off == 14 + 48
    assert s.payload_len == s.wire_len == len(payload)
    assert tcp_checksum_ok(s) is None


# =========================================================================== IPv6 extension headers


@pytest.mark.parametrize(
    "chain",
    [(0,), (43,), (60,), (51,), (0, 43, 60), (0, 60, 43, 51, 60), (60, 51)],
    ids=lambda c: "-".join(map(str, c)),
)
def test_ipv6_extension_headers(chain: tuple[int, ...]) -> None:
    t = tcp(b"ext", sport=443, dport=50000)
    pkt = ipv6_tcp(t, chain=chain)
    s = seg_of(decode1(1, ether(pkt, 0x86DD))[0])
    ext_len = sum(16 if k == 51 else 8 for k in chain)
    assert s.tcp_off == 14 + 40 + ext_len
    assert s.key == SRC6 + DST6 + struct.pack("!HH", 443, 50000)
    assert s.payload_len == s.wire_len == 3
    assert tcp_checksum_ok(s) is True


def test_ipv6_atomic_fragment() -> None:
    t = tcp_bytes(SRC6, DST6, tcp(b"atomic"))
    fh = struct.pack("!BBHI", 6, 0, 0, 0xABCDEF)
    pkt = struct.pack("!IHBB", 0x60000000, 8 + len(t), 44, 64) + SRC6 + DST6 + fh + t
    dec = Decoder()
    s = seg_of(dec.decode(229, pkt, 0.0))
    assert s.tcp_off == 48 and s.payload_len == 6
    assert dec.stats()["frag_pending"] == 0


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda p: p[:30], "ipv6: header truncated"),
        (lambda p: p[:44], "extension header 0 truncated"),
        (lambda p: bytes([0x40]) + p[1:], "ipv6: version 4"),
        (lambda p: p[:41] + b"\x20" + p[42:], "extension header 0 truncated"),
    ],
)
def test_ipv6_malformed(mutate: Callable[[bytes], bytes], needle: str) -> None:
    pkt = mutate(ipv6_tcp(tcp(b"x"), chain=(0,)))
    r, dec = decode1(229, pkt)
    assert r == MALFORMED
    assert needle in dec.last_error


# =========================================================================== TCP header


def test_tcp_data_offset_too_small() -> None:
    raw = bytearray(ipv4(tcp(b"abc")))
    raw[32] = 3 << 4
    for lt, frame in ((228, bytes(raw)), (1, ether(bytes(raw), 0x0800))):
        r, dec = decode1(lt, frame)
        assert r == MALFORMED
        assert dec.last_error == "tcp: data offset 3 < 5"


def test_tcp_options_beyond_captured_and_beyond_ip() -> None:
    ip = ipv4(tcp(b"", opts=b"\x01" * 12))
    r, dec = decode1(1, ether(ip, 0x0800)[:60])  # header says 32 bytes, 26 captured
    # a snaplen cut inside the options still gives a segment (as tshark reads it)
    assert isinstance(r, TcpSegment)
    assert r.options == b"\x01" * 6 and r.payload_len == 0 and r.wire_len == 0
    assert tcp_checksum_ok(r) is None
    raw = bytearray(ip)
    raw[32] = 15 << 4  # 60-byte header inside a 52-byte IP packet
    r, dec = decode1(1, ether(bytes(raw), 0x0800) + bytes(40))
    assert r == MALFORMED and "IP packet" in dec.last_error
    r, dec = decode1(1, ether(ip[:30], 0x0800))
    assert r == MALFORMED and dec.last_error.startswith("tcp")


# =========================================================================== fragments

# IPv4 fragments are built from a whole datagram: the fragment (start, end) ranges index its
# payload (bytes after the IP header); later copies may carry different bytes.


def frag4(datagram: bytes, start: int, end: int, *, data: bytes | None = None) -> bytes:
    ihl = (datagram[0] & 15) * 4
    body = datagram[ihl:] if data is None else data
    hdr = bytearray(datagram[:ihl])
    more = end < len(datagram) - ihl
    struct.pack_into("!H", hdr, 2, ihl + end - start)
    struct.pack_into("!H", hdr, 6, (0x2000 if more else 0) | start // 8)
    struct.pack_into("!H", hdr, 10, 0)
    struct.pack_into("!H", hdr, 10, ~inet_sum(bytes(hdr)) & 0xFFFF)
    return bytes(hdr) + body[start:end]


def frag6(
    packet: bytes,
    start: int,
    end: int,
    *,
    unfrag: int = 40,
    nh_pos: int = 6,
    ident: int = 0x01020304,
    data: bytes | None = None,
) -> bytes:
    head = bytearray(packet[:unfrag])
    body = packet[unfrag:] if data is None else data
    nxt = head[nh_pos]
    head[nh_pos] = 44
    more = end < len(packet) - unfrag
    fh = struct.pack("!BBHI", nxt, 0, start | (1 if more else 0), ident)
    struct.pack_into("!H", head, 4, unfrag - 40 + 8 + end - start)
    return bytes(head) + fh + body[start:end]


def cuts(total: int, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, total)) for s in range(0, total, size)]


PAYLOAD = bytes(range(256)) * 2 + b"tail-of-the-segment"


def datagram4(payload: bytes = PAYLOAD, *, ident: int = 0x1234, opts: bytes = b"") -> bytes:
    return ipv4(tcp(payload, sport=1111, dport=2222), df=False, ident=ident, opts=opts)


@pytest.mark.parametrize("order", ["in-order", "reversed", "middle-first"])
@pytest.mark.parametrize("wrap", ["ethernet", "vlan", "raw"])
def test_ipv4_fragments_reassembled(order: str, wrap: str) -> None:
    dg = datagram4()
    pieces = [frag4(dg, s, e) for s, e in cuts(len(dg) - 20, 96)]
    if order == "reversed":
        pieces.reverse()
    elif order == "middle-first":
        pieces = pieces[2:] + pieces[:2]
    lt = 228 if wrap == "raw" else 1
    tags = (0x8100,) if wrap == "vlan" else ()
    dec = Decoder()
    results = [
        dec.decode(lt, p if lt == 228 else ether(p, 0x0800, tags), float(i))
        for i, p in enumerate(pieces)
    ]
    assert results[:-1] == [FRAGMENT] * (len(pieces) - 1)
    s = seg_of(results[-1], dec)
    check_result(s, dec)
    assert s.buf == dg  # fixed-up header equals the unfragmented one (checksum too)
    assert (s.linktype, s.ip_off, s.tcp_off) == (228, 0, 20)
    assert (s.sport, s.dport) == (1111, 2222)
    assert s.payload_len == s.wire_len == len(PAYLOAD)
    assert s.buf[s.payload_off :] == PAYLOAD
    assert tcp_checksum_ok(s) is True
    st_ = dec.stats()
    assert st_["fragment"] == len(pieces) - 1
    assert st_["tcp"] == 1
    assert st_["frag_reassembled"] == 1
    assert st_["frag_pending"] == 0 and st_["frag_pending_bytes"] == 0


def test_ipv4_fragment_header_fixed_with_options() -> None:
    dg = datagram4(opts=b"\x94\x04\x00\x00")  # router alert, copied into every fragment
    pieces = [frag4(dg, s, e) for s, e in cuts(len(dg) - 24, 64)]
    dec = Decoder()
    for p in pieces[:-1]:
        assert dec.decode(228, p, 0.0) == FRAGMENT
    s = seg_of(dec.decode(228, pieces[-1], 0.0), dec)
    assert s.buf == dg
    assert inet_sum(s.buf[:24]) == 0xFFFF
    assert struct.unpack_from("!H", s.buf, 6)[0] & 0x3FFF == 0


def test_ipv4_fragments_overlapping_first_copy_wins() -> None:
    dg = datagram4()
    body = dg[20:]
    other = bytes(len(body))  # a conflicting copy of every byte
    arrivals = [(0, 64, body), (48, 160, other), (40, 200, body), (160, len(body), other)]
    dec = Decoder()
    model = bytearray(len(body))
    have = [False] * len(body)
    result: TcpSegment | int = FRAGMENT
    for s, e, src in arrivals:
        for i in range(s, e):
            if not have[i]:
                model[i] = src[i]
                have[i] = True
        result = dec.decode(228, frag4(dg, s, e, data=src), 0.0)
    s_ = seg_of(result, dec)
    assert s_.buf[20:] == bytes(model)
    assert s_.buf[20:84] == body[:64]
    assert s_.buf[84:180] == other[64:160]
    assert tcp_checksum_ok(s_) is False  # the conflicting copy broke it


def test_ipv4_duplicate_and_conflicting_last_fragments() -> None:
    dg = datagram4()
    n = len(dg) - 20
    dec = Decoder()
    assert dec.decode(228, frag4(dg, 200, n), 0.0) == FRAGMENT
    assert dec.decode(228, frag4(dg, 200, n), 0.0) == FRAGMENT  # duplicate
    assert dec.decode(228, frag4(dg, 96, 200), 0.0) == FRAGMENT
    s = seg_of(dec.decode(228, frag4(dg, 0, 96), 0.0), dec)
    assert s.buf == dg


def test_ipv4_non_tcp_fragments_not_buffered() -> None:
    udp = bytes(8) + bytes(300)
    dg = ipv4(proto=17, data=udp, df=False)
    dec = Decoder()
    for s, e in cuts(len(udp), 104):
        assert dec.decode(228, frag4(dg, s, e), 0.0) == NOT_TCP
    assert dec.stats()["frag_pending"] == 0


def test_ipv4_fragments_expire() -> None:
    dg = datagram4()
    pieces = [frag4(dg, s, e) for s, e in cuts(len(dg) - 20, 128)]
    dec = Decoder(frag_timeout=30.0)
    assert dec.decode(228, pieces[0], 100.0) == FRAGMENT
    assert dec.decode(228, pieces[1], 120.0) == FRAGMENT
    # 31 s after the first fragment: the old datagram is gone, this one starts anew
    assert dec.decode(228, pieces[2], 131.0) == FRAGMENT
    st_ = dec.stats()
    assert st_["frag_expired"] == 1 and st_["frag_pending"] == 1
    for p in pieces[3:]:
        assert dec.decode(228, p, 132.0) == FRAGMENT  # the first pieces are lost
    assert dec.expire(1000.0) == 1
    st_ = dec.stats()
    assert st_["frag_expired"] == 2
    assert st_["frag_pending"] == 0 and st_["frag_pending_bytes"] == 0
    # within the timeout, completion works
    for i, p in enumerate(pieces):
        r = dec.decode(228, p, 2000.0 + i)
    assert seg_of(r, dec).buf == dg


def test_fragment_table_limits() -> None:
    dec = Decoder(max_frag_datagrams=2)
    dgs = [datagram4(ident=i) for i in (1, 2, 3)]
    for dg in dgs:
        assert dec.decode(228, frag4(dg, 0, 96), 0.0) == FRAGMENT
    st_ = dec.stats()
    assert st_["frag_dropped"] == 1 and st_["frag_pending"] == 2
    # the oldest (ident 1) was dropped: its remaining fragments do not complete it
    rest1 = [frag4(dgs[0], s, e) for s, e in cuts(len(dgs[0]) - 20, 96)[1:]]
    assert all(dec.decode(228, p, 0.0) == FRAGMENT for p in rest1)
    # byte bound
    dec = Decoder(max_frag_bytes=300)
    dg = datagram4()
    assert dec.decode(228, frag4(dg, 0, 96), 0.0) == FRAGMENT
    assert dec.decode(228, frag4(dg, 96, 400), 0.0) == FRAGMENT  # over the bound: dropped
    st_ = dec.stats()
    assert st_["frag_dropped"] == 1
    assert st_["frag_pending_bytes"] <= 300


def test_fragment_beyond_64k_is_malformed() -> None:
    dg = datagram4()
    frag = bytearray(frag4(dg, 0, 96))
    struct.pack_into("!H", frag, 6, 0x2000 | 8190)  # offset 65520 + 96 bytes
    r, dec = decode1(228, bytes(frag))
    assert r == MALFORMED and "65535" in dec.last_error


# IPv6: packet = IPv6 header (+ unfragmentable extension headers) + fragmentable part


def packet6(chain_unfrag: tuple[int, ...] = (), chain_frag: tuple[int, ...] = ()) -> bytes:
    t = tcp_bytes(SRC6, DST6, tcp(PAYLOAD, sport=3333, dport=443))
    return ipv6(t, chain=chain_unfrag + chain_frag)


@pytest.mark.parametrize("order", ["in-order", "reversed", "overlap"])
@pytest.mark.parametrize(
    ("unfrag", "frag"), [((), ()), ((0,), ()), ((0, 43), (60,)), ((), (60, 51))]
)
def test_ipv6_fragments_reassembled(
    order: str, unfrag: tuple[int, ...], frag: tuple[int, ...]
) -> None:
    pkt = packet6(unfrag, frag)
    ulen = 40 + 8 * len(unfrag)
    nh_pos = 6 if not unfrag else 40 + 8 * (len(unfrag) - 1)
    body_len = len(pkt) - ulen
    ranges = cuts(body_len, 80)
    if order == "reversed":
        ranges.reverse()
    elif order == "overlap":
        ranges = [(0, 120), (80, 240), (160, body_len), (40, 200)]
    dec = Decoder()
    results = [
        dec.decode(1, ether(frag6(pkt, s, e, unfrag=ulen, nh_pos=nh_pos), 0x86DD), 5.0)
        for s, e in ranges
    ]
    done = [r for r in results if not isinstance(r, int)]
    assert len(done) == 1
    s = done[0]
    check_result(s, dec)
    assert s.buf == pkt
    assert (s.linktype, s.ip_version, s.ip_off) == (229, 6, 0)
    assert s.payload_len == s.wire_len == len(PAYLOAD)
    assert tcp_checksum_ok(s) is True
    assert dec.stats()["frag_reassembled"] == 1


def test_ipv6_fragments_overlap_first_copy_wins_and_expire() -> None:
    pkt = packet6()
    body = pkt[40:]
    other = b"\xff" * len(body)
    dec = Decoder(frag_timeout=10.0)
    assert dec.decode(229, frag6(pkt, 0, 160), 0.0) == FRAGMENT
    assert dec.decode(229, frag6(pkt, 120, 400, data=other), 1.0) == FRAGMENT
    s = seg_of(dec.decode(229, frag6(pkt, 160, len(body)), 2.0), dec)
    assert s.buf[40:200] == body[:160]
    assert s.buf[200:440] == other[160:400]
    assert s.buf[440:] == body[400:]
    # expiry
    assert dec.decode(229, frag6(pkt, 0, 160, ident=9), 100.0) == FRAGMENT
    assert dec.decode(229, frag6(pkt, 160, len(body), ident=9), 111.0) == FRAGMENT
    assert dec.stats()["frag_expired"] == 1
    assert dec.stats()["frag_pending"] == 1


def test_ipv6_non_tcp_fragment_not_buffered() -> None:
    udp = bytes(8) + bytes(200)
    pkt = ipv6(udp, upper_nh=17)
    dec = Decoder()
    for s, e in cuts(len(udp), 64):
        assert dec.decode(229, frag6(pkt, s, e), 0.0) == NOT_TCP
    assert dec.stats()["frag_pending"] == 0
    # a fragmentable part that starts with destination options is buffered (may be TCP)
    pkt = ipv6(udp, upper_nh=17, chain=(60,))
    pieces = [frag6(pkt, s, e) for s, e in cuts(len(pkt) - 40, 64)]
    results = [dec.decode(229, p, 0.0) for p in pieces]
    assert results[:-1] == [FRAGMENT] * (len(pieces) - 1)
    assert results[-1] == NOT_TCP
    assert dec.stats()["frag_reassembled"] == 1


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    version=st.sampled_from([4, 6]),
    size=st.integers(1, 1500),
)
def test_reassembly_any_order_duplicates_overlaps(
    data: st.DataObject, version: int, size: int
) -> None:
    payload = bytes((i * 7 + 3) & 0xFF for i in range(size))
    whole = (
        ipv4(tcp(payload), df=False) if version == 4 else ipv6(tcp_bytes(SRC6, DST6, tcp(payload)))
    )
    hl = 20 if version == 4 else 40
    n = len(whole) - hl
    # fragments on 8-byte boundaries, possibly overlapping, covering everything
    if n <= 8:
        return  # too short to fragment
    points = data.draw(st.lists(st.integers(1, (n - 1) // 8), min_size=1, max_size=12, unique=True))
    bounds = [0] + sorted(p * 8 for p in points) + [n]
    ranges = [
        (bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1) if bounds[i] < bounds[i + 1]
    ]
    extra = data.draw(
        st.lists(st.tuples(st.integers(0, (n - 1) // 8), st.integers(1, n)), max_size=4)
    )
    ranges += [(s * 8, min(n, s * 8 + ln)) for s, ln in extra]
    ranges = [r for r in ranges if r != (0, n)]  # that one would not be a fragment
    order = data.draw(st.permutations(ranges))
    dec = Decoder()
    results = []
    for s, e in order:
        f = frag4(whole, s, e) if version == 4 else frag6(whole, s, e)
        r = dec.decode(228 if version == 4 else 229, f, 0.0)
        check_result(r, dec)
        results.append(r)
    segs = [r for r in results if not isinstance(r, int)]
    assert len(segs) >= 1
    assert segs[0].buf == whole
    assert segs[0].buf[segs[0].payload_off :] == payload


# =========================================================================== checksums


def test_checksum_valid_invalid_and_odd_lengths() -> None:
    for size in (0, 1, 2, 3, 511, 1459, 1460, 4000, 9001):
        payload = bytes((i * 31 + size) & 0xFF for i in range(size))
        for ip in (ipv4(tcp(payload)), ipv6_dpkt(tcp(payload))):
            lt = 228 if ip[0] >> 4 == 4 else 229
            s = seg_of(decode1(lt, ip)[0])
            assert tcp_checksum_ok(s) is True, size
            bad = bytearray(ip)
            bad[s.tcp_off + 16] ^= 0x01  # checksum field
            assert tcp_checksum_ok(seg_of(decode1(lt, bytes(bad))[0])) is False
            if size:
                bad = bytearray(ip)
                bad[-1] ^= 0x80  # last payload byte (odd lengths: the padded word)
                assert tcp_checksum_ok(seg_of(decode1(lt, bytes(bad))[0])) is False


@settings(max_examples=150, deadline=None)
@given(
    payload=st.binary(max_size=3000),
    csum=st.integers(0, 0xFFFF),
    v6=st.booleans(),
)
def test_checksum_matches_reference(payload: bytes, csum: int, v6: bool) -> None:
    t = tcp(payload)
    ip = bytearray(ipv6_dpkt(t) if v6 else ipv4(t))
    off = 40 if v6 else 20
    struct.pack_into("!H", ip, off + 16, csum)
    s = seg_of(decode1(229 if v6 else 228, bytes(ip))[0])
    src, dst = (SRC6, DST6) if v6 else (SRC4, DST4)
    assert tcp_checksum_ok(s) is reference_checksum_ok(src, dst, bytes(ip[off:]))


def test_checksum_uncheckable() -> None:
    ip = ipv4(tcp(bytes(100)))
    assert tcp_checksum_ok(seg_of(decode1(228, ip[:-1])[0])) is None  # snaplen cut
    tso = bytearray(ip)
    tso[2:4] = b"\0\0"
    assert tcp_checksum_ok(seg_of(decode1(228, bytes(tso))[0])) is None


# =========================================================================== TCP options


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", TcpOptions(None, None, False, (), None, None)),
        (
            b"\x02\x04\x05\xb4\x04\x02\x08\x0a\x00\x00\x00\x01\x00\x00\x00\x00\x01\x03\x03\x07",
            TcpOptions(1460, 7, True, (), 1, 0),
        ),
        (
            b"\x01\x01\x05\x12" + struct.pack("!IIII", 1, 2, 3, 4),
            TcpOptions(None, None, False, ((1, 2), (3, 4)), None, None),
        ),
        (
            b"\x01\x01\x05\x0a" + struct.pack("!II", 0xFFFFFFFF, 5) + b"\x01\x01",
            TcpOptions(None, None, False, ((0xFFFFFFFF, 5),), None, None),
        ),
        (b"\x03\x03\x0e\x00\x02\x04\x05\xb4", TcpOptions(None, 14, False, (), None, None)),  # EOL
        (b"\x02\x04\x05", TcpOptions(None, None, False, (), None, None)),  # cut MSS
        (b"\x02", TcpOptions(None, None, False, (), None, None)),  # no length byte
        (b"\x02\x01\x05\xb4", TcpOptions(None, None, False, (), None, None)),  # length < 2
        (b"\x03\x03\x09\xfe\x02\x05\xb4", TcpOptions(None, 9, False, (), None, None)),  # garbage
        (b"\x02\x03\x05\x03\x03\x02", TcpOptions(None, 2, False, (), None, None)),  # bad MSS len
        (b"\x05\x06\x00\x00\x00\x01", TcpOptions(None, None, False, (), None, None)),  # bad SACK
        (b"\x1e\x04\x00\x00\x02\x04\x01\x00", TcpOptions(256, None, False, (), None, None)),
        (b"\x08\x0a" + struct.pack("!II", 7, 8), TcpOptions(None, None, False, (), 7, 8)),
        (b"\x08\x08" + struct.pack("!IH", 7, 8), TcpOptions(None, None, False, (), None, None)),
        (b"\x01" * 40, TcpOptions(None, None, False, (), None, None)),
    ],
)
def test_parse_tcp_options(raw: bytes, expected: TcpOptions) -> None:
    assert parse_tcp_options(raw) == expected


@given(st.binary(max_size=60))
def test_parse_tcp_options_never_raises(raw: bytes) -> None:
    o = parse_tcp_options(raw)
    assert isinstance(o, TcpOptions)
    assert all(0 <= a <= 0xFFFFFFFF and 0 <= b <= 0xFFFFFFFF for a, b in o.sack_blocks)


_LINUX_SYN = bytes.fromhex("020405b4" "0402" "080a0000000100000000" "01" "030307")


@given(st.one_of(
    st.binary(max_size=60),
    # Linux's SYN layout, with any byte changed (the fixed-place shortcut must not misread)
    st.tuples(st.integers(0, 19), st.integers(0, 255)).map(
        lambda c: _LINUX_SYN[:c[0]] + bytes([c[1]]) + _LINUX_SYN[c[0] + 1:]),
    st.lists(st.sampled_from([b"\x01", b"\x00", b"\x03\x03\x09", b"\x03\x04\x01\x02",
                              b"\x02\x04\x05\xb4", b"\x04\x02", b"\x08\x0a" + bytes(8),
                              b"\x03\x03", b"\x05\x0a" + bytes(8)]),
             max_size=8).map(b"".join),
))
def test_tcp_wscale_is_parse_tcp_options_wscale(raw: bytes) -> None:
    assert tcp_wscale(raw) == parse_tcp_options(raw).wscale
    assert tcp_wscale(_LINUX_SYN) == 7
    parsed = parse_tcp_options(raw)
    assert tcp_timestamps(raw) == (None if parsed.ts_val is None else
                                   (parsed.ts_val, parsed.ts_ecr))
    assert tcp_timestamps(_LINUX_SYN) == (1, 0)
    assert tcp_timestamps(_LINUX_SYN[:8] + bytes(range(251, 255)) + bytes(range(1, 5))
                          + _LINUX_SYN[16:]) == (0xFBFCFDFE, 0x01020304)


@pytest.mark.parametrize("raw", [
    b"", _LINUX_SYN, _LINUX_SYN[:19], _LINUX_SYN + b"\x00", b"\x03\x03\x0e\x00\x02\x04\x05\xb4",
    b"\x03\x03\x09\xfe\x02\x05\xb4", b"\x02\x03\x05\x03\x03\x02", b"\x00\x03\x03\x07",
    bytes.fromhex("020405b40101040201030307"), bytes.fromhex("020405b4" "0402" "080a" + "00" * 8
                                                             + "00" "030307"),
])
def test_tcp_wscale_examples(raw: bytes) -> None:
    assert tcp_wscale(raw) == parse_tcp_options(raw).wscale


# =========================================================================== format_addr


@pytest.mark.parametrize(
    ("addr", "port", "text"),
    [
        ("1.2.3.4", 80, "1.2.3.4:80"),
        ("0.0.0.0", 0, "0.0.0.0:0"),
        ("255.255.255.255", 65535, "255.255.255.255:65535"),
        ("2001:db8::1", 80, "[2001:db8::1]:80"),
        ("::", 0, "[::]:0"),
        ("::1", 443, "[::1]:443"),
        ("2001:DB8:0:0:1:0:0:1", 1, "[2001:db8::1:0:0:1]:1"),  # first of equal runs
        ("2001:db8:0:1:1:1:1:1", 2, "[2001:db8:0:1:1:1:1:1]:2"),  # a single 0 stays
        ("fe80::", 3, "[fe80::]:3"),
        ("2001:0:0:1:0:0:0:1", 4, "[2001:0:0:1::1]:4"),  # the longest run
    ],
)
def test_format_addr(addr: str, port: int, text: str) -> None:
    assert format_addr(ipaddress.ip_address(addr).packed, port) == text


def test_format_addr_mapped_follows_ipaddress() -> None:
    a = ipaddress.IPv6Address("::ffff:192.0.2.1")
    assert format_addr(a.packed, 9) == f"[{a}]:9"
    with pytest.raises(ValueError):
        format_addr(b"\x01\x02", 1)


# =========================================================================== stats


def test_stats_counts() -> None:
    dec = Decoder()
    frames = [
        (1, ether(ipv4(tcp()), 0x0800)),
        (1, ether(ipv4(tcp(), opts=b"\x01\x01\x01\x01"), 0x0800)),
        (1, ether(bytes(28), 0x0806)),
        (1, ether(ipv4(proto=17, data=bytes(8)), 0x0800)),
        (1, b"\x00"),
        (999, b""),
        (228, frag4(datagram4(), 0, 96)),
    ]
    for lt, f in frames:
        dec.decode(lt, f, 0.0)
    s = dec.stats()
    assert s["frames"] == len(frames)
    assert (s["tcp"], s["not_ip"], s["not_tcp"], s["malformed"]) == (2, 1, 1, 1)
    assert (s["unknown_linktype"], s["fragment"], s["frag_pending"]) == (1, 1, 1)
    assert s["frag_pending_bytes"] > 0


def test_decoder_config_validated() -> None:
    for kw in ({"frag_timeout": 0.0}, {"max_frag_datagrams": 0}, {"max_frag_bytes": 0}):
        with pytest.raises(ValueError):
            Decoder(**kw)


def test_decode_module_is_sans_io() -> None:
    """The decoder and the modules split from it import only the standard library's pure
    modules and each other."""
    here = Path(__file__).parents[1] / "mostool" / "stack"    # the sources, also when compiled
    own = {"mostool.stack.decode", "mostool.stack.tcpfields", "mostool.stack.ipfrag",
           "mostool.stack.codes", "mostool.stack.decap", "mostool.stack.tunnels",
           "mostool.stack.linktypes", "mostool.stack", "mostool.stack.csum"}
    imported: set[str] = set()
    for name in ("decode.py", "tcpfields.py", "ipfrag.py", "codes.py", "decap.py", "tunnels.py",
                 "linktypes.py"):
        tree = ast.parse((here / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module if node.module in own else node.module.split(".")[0])
    assert imported <= {"__future__", "struct", "typing", "collections", "ipaddress"} | own, \
        imported


# =========================================================================== fuzzing


def _base_frames() -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    t4 = tcp(b"fuzz-me", opts=b"\x02\x04\x05\xb4\x01\x03\x03\x07")
    for _name, lt, wrap, _off in LINKS:
        out.append((lt, wrap(ipv4(t4, opts=b"\x01\x01\x01\x00"), 4)))
        out.append((lt, wrap(ipv6_tcp(t4, chain=(0, 60)), 6)))
    dg = datagram4(b"x" * 300)
    out.append((1, ether(frag4(dg, 0, 96), 0x0800)))
    out.append((1, ether(frag4(dg, 96, 328), 0x0800)))
    p6 = packet6((0,), (60,))
    out.append((229, frag6(p6, 0, 96, unfrag=48, nh_pos=40)))
    out.append((229, frag6(p6, 96, len(p6) - 48, unfrag=48, nh_pos=40)))
    out.append((228, ipv4(t4)))
    out.append((229, ipv6_dpkt(t4)))
    return out


BASE_FRAMES = _base_frames()
FUZZ_LINKTYPES = sorted(SUPPORTED_LINKTYPES) + [2, 10, 105, 127, 147, 227, 65535]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lt=st.sampled_from(FUZZ_LINKTYPES), data=st.binary(max_size=300))
def test_fuzz_random_bytes(lt: int, data: bytes) -> None:
    dec = Decoder()
    check_result(dec.decode(lt, data, 0.0), dec)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from(BASE_FRAMES),
    mutations=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=6),
    cut=st.integers(0, 2000),
    retype=st.sampled_from([None, 0, 1, 9, 101, 113, 228, 229, 239, 276]),
)
def test_fuzz_mutated_frames(
    base: tuple[int, bytes], mutations: list[tuple[int, int]], cut: int, retype: int | None
) -> None:
    lt, frame = base
    b = bytearray(frame)
    for pos, val in mutations:
        if b:
            b[pos % len(b)] = val
    mutated = bytes(b[: cut if cut < len(b) else len(b)])
    dec = Decoder()
    check_result(dec.decode(lt if retype is None else retype, mutated, 0.0), dec)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from([0, 1]),  # v4 / v6
            st.integers(0, 40),  # offset in 8-byte units
            st.integers(0, 300),  # length
            st.booleans(),  # more fragments
            st.integers(0, 3),  # id
            st.floats(0, 100),  # ts
        ),
        max_size=40,
    )
)
def test_fuzz_fragment_streams(items: list[tuple[int, int, int, bool, int, float]]) -> None:
    dec = Decoder(frag_timeout=20.0, max_frag_datagrams=3, max_frag_bytes=2000)
    for v6, off8, ln, more, ident, ts in items:
        body = bytes((off8 + i) & 0xFF for i in range(ln))
        if v6:
            fh = struct.pack("!BBHI", 6, 0, off8 * 8 | int(more), ident)
            f = struct.pack("!IHBB", 0x60000000, 8 + ln, 44, 64) + SRC6 + DST6 + fh + body
            r = dec.decode(229, f, ts)
        else:
            hdr = struct.pack(
                "!BBHHHBBH4s4s",
                0x45,
                0,
                20 + ln,
                ident,
                (0x2000 if more else 0) | off8,
                64,
                6,
                0,
                SRC4,
                DST4,
            )
            r = dec.decode(228, hdr + body, ts)
        check_result(r, dec)
        s = dec.stats()
        assert 0 <= s["frag_pending"] <= 3
        assert 0 <= s["frag_pending_bytes"] <= 2000 + 600


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    v6=st.booleans(),
    payload=st.binary(max_size=40),
    mutations=st.lists(st.tuples(st.integers(0, 120), st.integers(0, 255)), max_size=4),
    extra=st.integers(-70, 20),
)
def test_fast_paths_agree_with_full_decoder(
    v6: bool, payload: bytes, mutations: list[tuple[int, int]], extra: int
) -> None:
    """The one-unpack fast paths return exactly what the full IPv4/IPv6 decoder returns."""
    t = tcp(payload, opts=b"\x01\x01\x08\x0a" + struct.pack("!II", 1, 2))
    frame = bytearray(ether(ipv6_dpkt(t) if v6 else ipv4(t), 0x86DD if v6 else 0x0800))
    for pos, val in mutations:
        frame[14 + pos % (len(frame) - 14)] = val
    frame = frame[: len(frame) + extra] if extra < 0 else frame + bytes(extra)
    f = bytes(frame)
    fast, slow = Decoder(), Decoder()
    r1 = fast.decode(1, f, 0.0)
    full = slow._ipv6_full if v6 else slow._ipv4_full
    r2 = full(f, 14, 1, 0.0) if len(f) >= 14 else MALFORMED
    assert r1 == r2
    if isinstance(r1, int) and r1 != NOT_TCP:
        assert fast.last_error == slow.last_error or len(f) < 14
    check_result(r1, fast)


# =========================================================================== corpus


def read_frames(path: Path) -> Iterator[tuple[int, bytes, float]]:
    """(linktype, frame, ts) from a pcap or pcapng file; stops quietly where it is damaged."""
    data = path.read_bytes()
    magic = data[:4]
    if magic in (
        b"\xd4\xc3\xb2\xa1",
        b"\xa1\xb2\xc3\xd4",
        b"\x4d\x3c\xb2\xa1",
        b"\xa1\xb2\x3c\x4d",
    ):
        e = "<" if magic[0] in (0xD4, 0x4D) else ">"
        div = 1e9 if magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1e6
        if len(data) < 24:
            return
        lt = struct.unpack_from(e + "I", data, 20)[0] & 0x0FFFFFFF
        off = 24
        while off + 16 <= len(data):
            sec, frac, incl, _orig = struct.unpack_from(e + "IIII", data, off)
            off += 16
            if incl > len(data) - off:
                return
            yield lt, data[off : off + incl], sec + frac / div
            off += incl
    elif magic == b"\x0a\x0d\x0d\x0a":
        off = 0
        e = "<"
        lts: list[int] = []
        while off + 12 <= len(data):
            if data[off : off + 4] == b"\x0a\x0d\x0d\x0a":  # section header: byte order
                e = "<" if data[off + 8 : off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
                lts = []
            btype, blen = struct.unpack_from(e + "II", data, off)
            if blen < 12 or off + blen > len(data):
                return
            body = data[off + 8 : off + blen - 4]
            if btype == 1 and len(body) >= 8:  # interface description
                lts.append(struct.unpack_from(e + "H", body, 0)[0])
            elif btype == 6 and len(body) >= 20:  # enhanced packet
                ifid, hi, lo, cap, _orig = struct.unpack_from(e + "IIIII", body, 0)
                if ifid < len(lts) and cap <= len(body) - 20:
                    yield lts[ifid], body[20 : 20 + cap], ((hi << 32) | lo) / 1e6
            elif btype == 2 and len(body) >= 20:  # obsolete packet block
                ifid, _drops, hi, lo, cap, _orig = struct.unpack_from(e + "HHIIII", body, 0)
                if ifid < len(lts) and cap <= len(body) - 20:
                    yield lts[ifid], body[20 : 20 + cap], ((hi << 32) | lo) / 1e6
            elif btype == 3 and len(body) >= 4 and lts:  # simple packet
                orig = struct.unpack_from(e + "I", body, 0)[0]
                yield lts[0], body[4 : 4 + orig], 0.0
            off += blen


def _corpus_files() -> list[Path]:
    if not PCAPS.is_dir():
        return []
    return sorted(p for p in PCAPS.rglob("*") if p.suffix in (".pcap", ".pcapng", ".cap"))


CORPUS = _corpus_files()
NETGEN = [p for p in CORPUS if p.parent.name == "netgen"]


@pytest.mark.skipif(not CORPUS, reason="shared pcap corpus not present")
@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(PCAPS)))
def test_corpus_smoke(path: Path) -> None:
    dec = Decoder()
    n = 0
    for lt, frame, ts in read_frames(path):
        check_result(dec.decode(lt, frame, ts), dec)
        n += 1
    assert dec.stats()["frames"] == n


@pytest.mark.skipif(not NETGEN, reason="netgen captures not present")
@pytest.mark.parametrize("path", NETGEN, ids=lambda p: p.name)
def test_netgen_checksums_and_dpkt_agree(path: Path) -> None:
    """netgen captures have correct checksums; every field agrees with dpkt's decode."""
    dec = Decoder()
    with path.open("rb") as f:
        reader = dpkt.pcap.Reader(f)
        assert reader.datalink() == 1
        count = 0
        for ts, buf in reader:
            r = dec.decode(1, buf, ts)
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            if not isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6) or not isinstance(
                ip.data, dpkt.tcp.TCP
            ):
                assert isinstance(r, int)
                continue
            s = seg_of(r, dec)
            t = ip.data
            assert (s.src, s.dst) == (ip.src, ip.dst)
            assert (s.sport, s.dport, s.seq, s.ack) == (t.sport, t.dport, t.seq, t.ack)
            assert (s.flags, s.window, s.urgent) == (t.flags & 0xFF, t.win, t.urp)
            assert s.options == bytes(t.opts)
            assert s.buf[s.payload_off : s.payload_off + s.payload_len] == bytes(t.data)
            assert tcp_checksum_ok(s) is True
            count += 1
    assert count > 0


def test_pppoe_length_bounds_the_ip_packet() -> None:
    # an IP length that overstates the PPPoE payload: the extra bytes are not TCP payload
    ip = bytearray(ipv4(tcp(b"")))
    struct.pack_into("!H", ip, 2, len(ip) + 6)          # the IP header claims 6 more bytes
    frame = ether(struct.pack("!BBHHH", 0x11, 0, 0x1234, len(ip) + 2, 0x0021)
                  + bytes(ip) + bytes(6), 0x8864)
    r, _ = decode1(1, frame)
    seg = seg_of(r)
    assert seg.payload_len == 0 and seg.wire_len == 0


def test_offloaded_checksum_is_unverifiable_not_bad() -> None:
    raw = bytearray(ipv4(tcp(b"hello offload")))
    seg = seg_of(decode1(228, bytes(raw))[0])
    assert tcp_checksum_ok(seg) is True
    tcp_len = len(raw) - 20
    pseudo = int.from_bytes(seg.src + seg.dst, "big") + 6 + tcp_len
    partial = pseudo % 0xFFFF or 0xFFFF
    for field in (partial, partial ^ 0xFFFF):
        struct.pack_into("!H", raw, 20 + 16, field)
        assert tcp_checksum_ok(seg_of(decode1(228, bytes(raw))[0])) is None
    struct.pack_into("!H", raw, 20 + 16, partial ^ 0x0101)
    assert tcp_checksum_ok(seg_of(decode1(228, bytes(raw))[0])) is False
