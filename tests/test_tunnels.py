"""Tests for mostool.stack.tunnels: every tunnel kind with hand-built headers, nesting,
refusals and truncation, random input, the symmetric tunnel key, ``describe``, and real corpus
frames checked against tshark.

Frames are walked with tests/tunnel_walk.py, which calls ``decapsulate`` hop by hop exactly as
the hook contract in the module docstring says the decoder will.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from pathlib import Path

import dpkt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tunnel_frames import (
    V4_A,
    V4_B,
    V6_A,
    V6_B,
    erspan2_header,
    erspan3_header,
    ether,
    geneve,
    gre,
    gtpu,
    inner_ethertype,
    ipv4,
    ipv6,
    l2tp_ppp,
    teredo,
    udp,
    vxlan,
)
from tunnel_walk import check_against_tshark, tshark_rows, walk

from mostool.replay import read_capture
from mostool.stack import decode as decode_mod
from mostool.stack import tunnels
from mostool.stack.tunnels import (
    INNER_ETHERNET,
    INNER_ETHERTYPE,
    INNER_PPP,
    MALFORMED,
    NOT_TCP,
    Decap,
    Refusal,
    TunnelHop,
    decapsulate,
    describe,
    tunnel_key,
)

IN_A = bytes([10, 0, 0, 1])
IN_B = bytes([10, 0, 0, 2])


def tcp_v4(sport: int = 40000, dport: int = 80, payload: bytes = b"GET / HTTP/1.1\r\n\r\n",
           src: bytes = IN_A, dst: bytes = IN_B) -> bytes:
    seg = dpkt.tcp.TCP(sport=sport, dport=dport, seq=1000, ack=1, flags=dpkt.tcp.TH_ACK,
                       data=payload)
    return ipv4(bytes(seg), 6, src, dst)


def tcp_v6(sport: int = 40000, dport: int = 80) -> bytes:
    seg = dpkt.tcp.TCP(sport=sport, dport=dport, seq=7, flags=dpkt.tcp.TH_SYN)
    return ipv6(bytes(seg), 6, bytes.fromhex("fd00" + "00" * 13 + "01"),
                bytes.fromhex("fd00" + "00" * 13 + "02"))


def eth_of(ip: bytes) -> bytes:
    return ether(ip, inner_ethertype(ip))


# Each case: (name, inner IP packet, frame builder(inner) -> Ethernet frame, expected hops as
# (kind, ident) outermost first)
Case = tuple[str, bytes, Callable[[bytes], bytes], list[tuple[str, int]]]

CASES: list[Case] = [
    ("gre-ipv4", tcp_v4(), lambda p: ether(ipv4(gre(p, 0x0800), 47), 0x0800), [("gre", -1)]),
    ("gre-key-seq", tcp_v4(), lambda p: ether(ipv4(gre(p, 0x0800, key=77, seq=5), 47), 0x0800),
     [("gre", 77)]),
    ("gre-csum-key-ipv6", tcp_v6(),
     lambda p: ether(ipv4(gre(p, 0x86DD, key=9, csum=True), 47), 0x0800), [("gre", 9)]),
    ("gre-over-ipv6", tcp_v4(), lambda p: ether(ipv6(gre(p, 0x0800), 47), 0x86DD),
     [("gre", -1)]),
    ("gre-routing-rfc1701", tcp_v4(),
     lambda p: ether(ipv4(struct.pack("!HHHH", 0x4000, 0x0800, 0, 0)
                          + struct.pack("!HBB", 0x0800, 0, 4) + V4_B + b"\0\0\0\0" + p, 47),
                     0x0800), [("gre", -1)]),
    ("gretap", tcp_v4(), lambda p: ether(ipv4(gre(eth_of(p), 0x6558), 47), 0x0800),
     [("gre", -1)]),
    ("nvgre", tcp_v4(), lambda p: ether(ipv4(gre(eth_of(p), 0x6558, key=0x123456 << 8 | 7), 47),
                                        0x0800), [("nvgre", 0x12345607)]),
    ("gretap-key-seq", tcp_v4(),
     lambda p: ether(ipv4(gre(eth_of(p), 0x6558, key=3, seq=1), 47), 0x0800), [("gre", 3)]),
    ("pptp", tcp_v4(),
     lambda p: ether(ipv4(struct.pack("!HHHHI", 0x3001, 0x880B, len(p) + 4, 0x0102, 1)
                          + b"\xff\x03\x00\x21" + p, 47), 0x0800), [("gre", 0x0102)]),
    ("erspan1", tcp_v4(), lambda p: ether(ipv4(gre(eth_of(p), 0x88BE), 47), 0x0800),
     [("erspan1", -1)]),
    ("erspan2", tcp_v4(),
     lambda p: ether(ipv4(gre(erspan2_header(100) + eth_of(p), 0x88BE, seq=1), 47), 0x0800),
     [("erspan2", 100)]),
    ("erspan3", tcp_v4(),
     lambda p: ether(ipv4(gre(erspan3_header(5) + eth_of(p), 0x22EB, seq=1), 47), 0x0800),
     [("erspan3", 5)]),
    ("erspan3-ip-frame-o-flag", tcp_v6(),
     lambda p: ether(ipv4(gre(erspan3_header(6, 2, True) + p, 0x22EB, seq=1), 47), 0x0800),
     [("erspan3", 6)]),
    ("vxlan", tcp_v4(), lambda p: ether(ipv4(udp(vxlan(eth_of(p), 42), 51000, 4789), 17), 0x0800),
     [("vxlan", 42)]),
    ("vxlan-linux-port-ipv6", tcp_v6(),
     lambda p: ether(ipv6(udp(vxlan(eth_of(p), 1), 8472, 51000), 17), 0x86DD), [("vxlan", 1)]),
    ("vxlan-gpe-ipv4", tcp_v4(),
     lambda p: ether(ipv4(udp(struct.pack("!II", 0x0C000001, 9 << 8) + p, 51000, 4790), 17),
                     0x0800), [("vxlan-gpe", 9)]),
    ("geneve-options", tcp_v4(),
     lambda p: ether(ipv4(udp(geneve(eth_of(p), 11, options=b"\x01\x02\x03\x01" + b"x" * 4),
                              51000, 6081), 17), 0x0800), [("geneve", 11)]),
    ("geneve-ipv4-payload", tcp_v4(),
     lambda p: ether(ipv4(udp(geneve(p, 12, ptype=0x0800), 51000, 6081), 17), 0x0800),
     [("geneve", 12)]),
    ("4in4", tcp_v4(), lambda p: ether(ipv4(p, 4), 0x0800), [("ipip", -1)]),
    ("6in4", tcp_v6(), lambda p: ether(ipv4(p, 41), 0x0800), [("ip6", -1)]),
    ("4in6", tcp_v4(), lambda p: ether(ipv6(p, 4), 0x86DD), [("ipip", -1)]),
    ("6in6", tcp_v6(), lambda p: ether(ipv6(p, 41), 0x86DD), [("ip6", -1)]),
    ("gtpu", tcp_v4(), lambda p: ether(ipv4(udp(gtpu(p, 0xABCD), 2152, 2152), 17), 0x0800),
     [("gtpu", 0xABCD)]),
    ("gtpu-ext-header-ipv6", tcp_v6(),
     lambda p: ether(ipv6(udp(gtpu(p, 5, ext=True), 2152, 2152), 17), 0x86DD), [("gtpu", 5)]),
    ("l2tp-ppp", tcp_v4(), lambda p: ether(ipv4(udp(l2tp_ppp(p, 3, 4), 1701, 1701), 17), 0x0800),
     [("l2tp", 3 << 16 | 4)]),
    ("l2tp-ppp-offset-ipv6", tcp_v6(),
     lambda p: ether(ipv4(udp(l2tp_ppp(p, 3, 4, offset_pad=2), 1701, 1701), 17), 0x0800),
     [("l2tp", 3 << 16 | 4)]),
    ("teredo", tcp_v6(), lambda p: ether(ipv4(udp(teredo(p), 3544, 40000), 17), 0x0800),
     [("teredo", -1)]),
    ("teredo-auth", tcp_v6(),
     lambda p: ether(ipv4(udp(teredo(p, auth=True), 40000, 3544), 17), 0x0800),
     [("teredo", -1)]),
    ("teredo-bare", tcp_v6(),
     lambda p: ether(ipv4(udp(teredo(p, origin=False), 40000, 3544), 17), 0x0800),
     [("teredo", -1)]),
    # VXLAN inside ERSPAN inside GRE (the corpus's arkime/gre-erspan-vxlan shape), then 4in4
    ("vxlan-in-erspan-in-gre", tcp_v4(),
     lambda p: ether(ipv4(gre(erspan2_header(1) + ether(ipv4(udp(vxlan(eth_of(p), 8), 5000, 4789),
                                                              17, IN_B, IN_A), 0x0800),
                              0x88BE, seq=3), 47), 0x0800),
     [("erspan2", 1), ("vxlan", 8)]),
    ("gre-in-4in6-in-geneve", tcp_v4(),
     lambda p: ether(ipv4(udp(geneve(ipv6(ipv4(gre(p, 0x0800, key=1), 47), 4), 2,
                                     ptype=0x86DD), 5000, 6081), 17), 0x0800),
     [("geneve", 2), ("ipip", -1), ("gre", 1)]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_every_tunnel_kind_yields_the_inner_packet(case: Case) -> None:
    _, inner, build, hops = case
    w = walk(1, build(inner))
    assert not w.refused
    assert w.ip == inner
    assert [(h.kind, h.ident) for h in w.hops] == hops


def test_status_codes_match_the_decoder() -> None:
    # copied, not imported (the decoder will import these modules): looked up by name here
    from mostool.stack import linktypes

    for module, names in ((tunnels, ("NOT_TCP", "MALFORMED")),
                          (linktypes, ("NOT_IP", "MALFORMED"))):
        for name in names:
            assert getattr(module, name) == getattr(decode_mod, name), (module.__name__, name)


def _l4(frame: bytes) -> tuple[int, int, int, bytes, bytes]:
    """(l4 offset, outer IP end, proto, src, dst) of an Ethernet frame's outer IP header."""
    if frame[12:14] == b"\x08\x00":
        ihl = (frame[14] & 15) * 4
        end = 14 + struct.unpack_from("!H", frame, 16)[0]
        return 14 + ihl, end, frame[23], frame[26:30], frame[30:34]
    end = 14 + 40 + struct.unpack_from("!H", frame, 18)[0]
    return 54, end, frame[20], frame[22:38], frame[38:54]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_a_cut_tunnel_header_is_refused_not_raised(case: Case) -> None:
    _, inner, build, _ = case
    frame = build(inner)
    l4, end, proto, src, dst = _l4(frame)
    full = decapsulate(frame, l4, end, proto, src, dst)
    assert isinstance(full, Decap)
    for cut in range(l4, full.off):
        # a snaplen cut: the IP length still says `end`
        r = decapsulate(frame[:cut], l4, end, proto, src, dst)
        if proto == 17 and cut < l4 + 8:
            assert r is None  # a cut UDP header is the decoder's to judge
            continue
        assert isinstance(r, Refusal), (cut, r)
        assert r.status in (MALFORMED, NOT_TCP)
        # a lying IP length cuts the same way
        r2 = decapsulate(frame, l4, cut, proto, src, dst)
        assert isinstance(r2, Refusal) or r2 is None, (cut, r2)


REFUSED: list[tuple[str, bytes, int, int]] = [
    # (name, IP payload, IP protocol, expected status)
    ("gre-version-2", struct.pack("!HH", 0x0002, 0x0800), 47, MALFORMED),
    ("gre-v1-not-ppp", struct.pack("!HHI", 0x2001, 0x0800, 0), 47, MALFORMED),
    ("pptp-ack-only", struct.pack("!HHII", 0x2081, 0x880B, 0x00000102, 9), 47, NOT_TCP),
    ("erspan2-wrong-version", gre(struct.pack("!II", 2 << 28, 0) + b"\0" * 60, 0x88BE, seq=1),
     47, MALFORMED),
    ("erspan3-wrong-version", gre(struct.pack("!III", 1 << 28, 0, 0) + b"\0" * 60, 0x22EB),
     47, MALFORMED),
    ("erspan3-frame-type-1", gre(erspan3_header(1, 1) + b"\0" * 60, 0x22EB), 47, NOT_TCP),
    ("vxlan-gpe-nsh", udp(struct.pack("!II", 0x0C000004, 0) + b"\0" * 40, 1, 4790), 17, NOT_TCP),
    ("geneve-version-1", udp(struct.pack("!BBHI", 0x40, 0, 0x6558, 0) + b"\0" * 40, 1, 6081),
     17, MALFORMED),
    ("geneve-oam", udp(struct.pack("!BBHI", 0, 0x80, 0x6558, 0) + b"\0" * 40, 1, 6081),
     17, NOT_TCP),
    ("geneve-options-past-end", udp(struct.pack("!BBHI", 0x3F, 0, 0x6558, 0), 1, 6081),
     17, MALFORMED),
    ("gtpu-echo", udp(struct.pack("!BBHI", 0x32, 1, 4, 0) + b"\0" * 4, 2152, 2152), 17, NOT_TCP),
    ("gtpv0", udp(struct.pack("!BBHI", 0x10, 255, 0, 0), 2152, 2152), 17, MALFORMED),
    ("gtpu-ext-len-0", udp(struct.pack("!BBHI", 0x34, 255, 8, 0) + b"\0\0\0\x85\0\0\0\0",
                           2152, 2152), 17, MALFORMED),
    ("gtpu-not-ip", udp(struct.pack("!BBHI", 0x30, 255, 4, 0) + b"\x00" * 4, 2152, 2152),
     17, NOT_TCP),
    ("l2tp-control", udp(struct.pack("!HHHH", 0xC802, 12, 0, 0) + b"\0" * 4, 1701, 1701),
     17, NOT_TCP),
    ("l2tpv3", udp(struct.pack("!HH", 0x0003, 0) + b"\0" * 8, 1701, 1701), 17, NOT_TCP),
    ("l2tp-version-1", udp(struct.pack("!HH", 0x0001, 0) + b"\0" * 8, 1701, 1701), 17, MALFORMED),
    ("l2tp-length-3", udp(struct.pack("!HHHH", 0x4002, 3, 0, 0), 1701, 1701), 17, MALFORMED),
    ("teredo-not-ipv6", udp(b"\x45" + b"\0" * 50, 40000, 3544), 17, NOT_TCP),
    ("teredo-short", udp(b"\x60" + b"\0" * 10, 40000, 3544), 17, NOT_TCP),
]


@pytest.mark.parametrize("case", REFUSED, ids=[c[0] for c in REFUSED])
def test_headers_that_carry_nothing_or_are_bad_are_refused(
    case: tuple[str, bytes, int, int],
) -> None:
    _, payload, proto, status = case
    r = decapsulate(payload, 0, len(payload), proto, V4_A, V4_B)
    assert isinstance(r, Refusal)
    assert r.status == status
    assert r.reason


def test_udp_on_no_tunnel_port_and_other_protocols_are_not_ours() -> None:
    dns = udp(b"\0" * 12, 53000, 53)
    assert decapsulate(dns, 0, len(dns), 17, V4_A, V4_B) is None
    assert decapsulate(b"\0" * 20, 0, 20, 6, V4_A, V4_B) is None
    assert decapsulate(b"\0" * 20, 0, 20, 1, V4_A, V4_B) is None


def test_gtpu_length_and_udp_length_bound_the_inner_packet() -> None:
    inner = tcp_v4()
    payload = udp(gtpu(inner, 1), 2152, 2152) + b"trailer!"
    r = decapsulate(payload, 0, len(payload), 17, V4_A, V4_B)
    assert isinstance(r, Decap)
    assert r.inner == INNER_ETHERTYPE and r.ethertype == 0x0800
    assert payload[r.off : r.end] == inner


def test_inner_kinds() -> None:
    def first(frame: bytes) -> Decap:
        l4, end, proto, src, dst = _l4(frame)
        r = decapsulate(frame, l4, end, proto, src, dst)
        assert isinstance(r, Decap)
        return r

    assert first(CASES[0][2](tcp_v4())).inner == INNER_ETHERTYPE
    assert first(CASES[5][2](tcp_v4())).inner == INNER_ETHERNET
    pptp = next(c for c in CASES if c[0] == "pptp")
    assert first(pptp[2](tcp_v4())).inner == INNER_PPP


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(max_size=120),
    proto=st.sampled_from(sorted(tunnels.TUNNEL_IP_PROTOCOLS)),
    port=st.sampled_from(sorted(tunnels.TUNNEL_UDP_PORTS)),
    end_delta=st.integers(-10, 10),
)
def test_random_bytes_never_raise(data: bytes, proto: int, port: int, end_delta: int) -> None:
    for buf in (data, udp(data, 1234, port) if proto == 17 else data):
        end = max(0, len(buf) + end_delta)
        r = decapsulate(buf, 0, end, proto, V4_A, V4_B)
        assert r is None or isinstance(r, (Decap, Refusal))
        if isinstance(r, Decap):
            assert r.off >= 0 and r.end <= end
            assert r.off <= min(end, len(buf)), r  # the inner packet starts inside
            tunnel_key((r.hop,))
            describe(r.hop)
        elif isinstance(r, Refusal):
            assert r.status in (MALFORMED, NOT_TCP)


def _hop_of(frame: bytes) -> TunnelHop:
    w = walk(1, frame)
    assert not w.refused and w.hops
    return w.hops[0]


def test_tunnel_key_is_the_same_from_both_directions() -> None:
    a2b = tcp_v4(40000, 80, src=IN_A, dst=IN_B)
    b2a = tcp_v4(80, 40000, src=IN_B, dst=IN_A)
    pairs = [
        # VXLAN/Geneve: each VTEP picks its own entropy source port
        (ether(ipv4(udp(vxlan(eth_of(a2b), 5), 51000, 4789), 17, V4_A, V4_B), 0x0800),
         ether(ipv4(udp(vxlan(eth_of(b2a), 5), 62000, 4789), 17, V4_B, V4_A), 0x0800)),
        (ether(ipv4(udp(geneve(eth_of(a2b), 5), 51000, 6081), 17, V4_A, V4_B), 0x0800),
         ether(ipv4(udp(geneve(eth_of(b2a), 5), 33333, 6081), 17, V4_B, V4_A), 0x0800)),
        # GTP-U and L2TP: the ids name the receiver, so they differ per direction
        (ether(ipv4(udp(gtpu(a2b, 0x1111), 2152, 2152), 17, V4_A, V4_B), 0x0800),
         ether(ipv4(udp(gtpu(b2a, 0x2222), 2152, 2152), 17, V4_B, V4_A), 0x0800)),
        (ether(ipv4(udp(l2tp_ppp(a2b, 1, 2), 1701, 1701), 17, V4_A, V4_B), 0x0800),
         ether(ipv4(udp(l2tp_ppp(b2a, 7, 8), 1701, 1701), 17, V4_B, V4_A), 0x0800)),
        # the corpus's VXLAN 4789 -> 4790: the reverse direction runs 4790 -> 4789
        (ether(ipv4(udp(vxlan(eth_of(a2b), 0), 4789, 4790), 17, V4_A, V4_B), 0x0800),
         ether(ipv4(udp(vxlan(eth_of(b2a), 0), 4790, 4789), 17, V4_B, V4_A), 0x0800)),
        (ether(ipv4(gre(a2b, 0x0800, key=9), 47, V4_A, V4_B), 0x0800),
         ether(ipv4(gre(b2a, 0x0800, key=9), 47, V4_B, V4_A), 0x0800)),
        (ether(ipv6(a2b, 4, V6_A, V6_B), 0x86DD), ether(ipv6(b2a, 4, V6_B, V6_A), 0x86DD)),
    ]
    for fwd, rev in pairs:
        h1, h2 = _hop_of(fwd), _hop_of(rev)
        assert h1.kind == h2.kind
        assert tunnel_key((h1,)) == tunnel_key((h2,)), (h1, h2)
    assert tunnel_key(()) == b""


def test_tunnel_key_separates_tunnels() -> None:
    inner = tcp_v4()
    by_vni = {tunnel_key((_hop_of(ether(ipv4(udp(vxlan(eth_of(inner), v), 1, 4789), 17),
                                        0x0800)),)) for v in (1, 2)}
    assert len(by_vni) == 2
    by_gretap_key = {tunnel_key((_hop_of(ether(ipv4(gre(eth_of(inner), 0x6558, key=k), 47),
                                               0x0800)),)) for k in (1, 2)}
    assert len(by_gretap_key) == 2  # NVGRE-shaped keys with VSID 0 stay two tunnels
    by_endpoint = {tunnel_key((_hop_of(ether(ipv4(inner, 4, V4_A, d), 0x0800)),))
                   for d in (V4_B, bytes([192, 0, 2, 3]))}
    assert len(by_endpoint) == 2
    one = _hop_of(ether(ipv4(inner, 4), 0x0800))
    assert tunnel_key((one,)) != tunnel_key((one, one))


def test_describe() -> None:
    vx = _hop_of(ether(ipv4(udp(vxlan(eth_of(tcp_v4()), 42), 51000, 4789), 17), 0x0800))
    assert describe(vx) == {"kind": "vxlan", "src": "192.0.2.1", "dst": "192.0.2.2",
                            "sport": 51000, "dport": 4789, "vni": 42}
    l2 = _hop_of(ether(ipv4(udp(l2tp_ppp(tcp_v4(), 3, 4), 1701, 1701), 17), 0x0800))
    assert describe(l2)["tunnel_id"] == 3 and describe(l2)["session_id"] == 4
    ip6 = _hop_of(ether(ipv6(tcp_v4(), 4), 0x86DD))
    assert describe(ip6) == {"kind": "ipip", "src": "2001:db8::1", "dst": "2001:db8::2"}
    nv = _hop_of(ether(ipv4(gre(eth_of(tcp_v4()), 0x6558, key=0x123456 << 8 | 7), 47), 0x0800))
    assert describe(nv) == {"kind": "nvgre", "src": "192.0.2.1", "dst": "192.0.2.2",
                            "vsid": 0x123456, "flow_id": 7}
    gt = _hop_of(ether(ipv4(udp(gtpu(tcp_v4(), 77), 2152, 2152), 17), 0x0800))
    assert describe(gt)["teid"] == 77
    er = _hop_of(ether(ipv4(gre(erspan2_header(100) + eth_of(tcp_v4()), 0x88BE, seq=1), 47),
                       0x0800))
    assert describe(er) == {"kind": "erspan2", "src": "192.0.2.1", "dst": "192.0.2.2",
                            "session": 100}


# --------------------------------------------------------------------------- real captures

CORPUS = [
    # (file, tunnel kinds walked, minimum TCP frames matched)
    ("arkime/gre-erspan-vxlan.pcap", {"erspan2", "vxlan"}, 7),
    ("zeek/erspan.pcap", {"nvgre"}, 80),
    ("tcpdump/erspan-type-i.pcap", {"erspan1", "gre"}, 0),
    ("tcpdump/gso-ipv4-vxlan-ipv4.pcap", {"vxlan"}, 1),
    ("suricata-verify/gre-sample.pcap", {"gre"}, 22),
    ("suricata-verify/teredo.pcap", {"teredo"}, 29),
    ("ndpi/4in6tunnel.pcap", {"ipip"}, 4),
    ("ndpi/6in4tunnel.pcap", {"ip6"}, 70),
    ("ndpi/tls_change_cipher-gtp.pcap", {"gtpu"}, 14),
    ("arkime/ipv6-gtp6-nsec.pcap", {"gtpu"}, 0),
]


@pytest.mark.parametrize("name,kinds,least", CORPUS, ids=[c[0] for c in CORPUS])
def test_corpus_inner_packets_are_what_tshark_shows(
    shared_pcaps: Path, name: str, kinds: set[str], least: int
) -> None:
    path = shared_pcaps / name
    if not path.exists():
        pytest.skip(f"{name} not in the shared corpus")
    got_kinds, matched = check_against_tshark(path)
    assert got_kinds == kinds
    assert matched >= least


def test_corpus_teredo_inner_ipv6_is_what_tshark_shows(shared_pcaps: Path) -> None:
    path = shared_pcaps / "suricata-verify/teredo.pcap"
    if not path.exists():
        pytest.skip("teredo.pcap not in the shared corpus")
    rows = tshark_rows(path, ["frame.protocols", "ipv6.src", "ipv6.dst"])
    seen = 0
    for (_, linktype, buf, _), row in zip(read_capture(path), rows, strict=True):
        w = walk(linktype, buf)
        assert ("teredo" in row[0]) == bool(w.hops), row
        if not w.hops:
            continue
        assert [h.kind for h in w.hops] == ["teredo"]
        assert str(ipaddress.IPv6Address(w.ip[8:24])) == row[1]
        assert str(ipaddress.IPv6Address(w.ip[24:40])) == row[2]
        seen += 1
    assert seen == 4  # two echo requests and replies, one of them a bubble (no payload)


def test_nesting_to_max_depth() -> None:
    inner = tcp_v4()
    wraps: list[Callable[[bytes], bytes]] = [
        lambda p: ipv4(gre(p, 0x0800, key=1), 47),
        lambda p: ipv4(udp(vxlan(eth_of(p), 3), 1000, 4789), 17),
        lambda p: ipv6(p, 4),
        lambda p: ipv4(udp(gtpu(p, 9), 2152, 2152), 17),
        lambda p: ipv4(gre(erspan2_header(4) + eth_of(p), 0x88BE, seq=1), 47),
        lambda p: ipv4(udp(geneve(p, 5, ptype=0x0800), 1000, 6081), 17),
        lambda p: ipv4(udp(l2tp_ppp(p, 1, 1), 1701, 1701), 17),
        lambda p: ipv4(p, 4),
    ]
    assert len(wraps) == tunnels.MAX_DEPTH
    pkt = inner
    for wrap in wraps:
        pkt = wrap(pkt)
    w = walk(1, eth_of(pkt))
    assert not w.refused and w.ip == inner
    assert [h.kind for h in w.hops] == [
        "ipip", "l2tp", "geneve", "erspan2", "gtpu", "ipip", "vxlan", "gre"]
    w = walk(1, eth_of(ipv4(pkt, 4)))
    assert w.refused == "tunnel: nesting deeper than MAX_DEPTH"
