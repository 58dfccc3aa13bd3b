"""Tests for mostool.stack.linktypes: 802.11 (plain, radiotap, PPI, Prism, AVS), FDDI, IPoIB,
ARCNET (Linux and BSD), LLC/SNAP with hand-built headers; refusals, truncation, random input;
real corpus frames checked against tshark.
"""

from __future__ import annotations

import struct
from pathlib import Path

import dpkt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tunnel_frames import MAC_A, MAC_B, dot11, ipv4, ipv6, ppi, radiotap, snap
from tunnel_walk import check_against_tshark, walk

from mostool.stack import linktypes as lt
from mostool.stack.linktypes import (
    MALFORMED,
    NOT_IP,
    LinkPayload,
    Refusal,
    link_payload,
)
from mostool.stack.tunnels import INNER_ETHERNET, INNER_ETHERTYPE


def tcp_v4() -> bytes:
    seg = dpkt.tcp.TCP(sport=40000, dport=80, seq=1, flags=dpkt.tcp.TH_SYN)
    return ipv4(bytes(seg), 6, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))


def tcp_v6() -> bytes:
    return ipv6(bytes(dpkt.tcp.TCP(sport=40000, dport=443, flags=dpkt.tcp.TH_SYN)), 6)


CASES: list[tuple[str, int, bytes, bytes]] = [
    # (name, link type, frame, the IP packet it carries)
    ("802.11-data", 105, dot11(snap(tcp_v4())), tcp_v4()),
    ("802.11-4addr-qos-ht", 105, dot11(snap(tcp_v6()), subtype=8, four_addr=True, qos=0,
                                       order=True), tcp_v6()),
    ("802.11-802.1h", 105, dot11(snap(tcp_v4(), b"\0\0\xf8")), tcp_v4()),
    ("802.11-amsdu", 105, dot11(MAC_B + MAC_A + b"\0\0" + snap(tcp_v4()), subtype=8, qos=0x80),
     tcp_v4()),
    ("radiotap", 127, radiotap(dot11(snap(tcp_v4()))), tcp_v4()),
    ("radiotap-tsft-flags", 127, radiotap(dot11(snap(tcp_v4())), flags=0x10, tsft=True),
     tcp_v4()),
    ("radiotap-data-pad", 127, radiotap(dot11(snap(tcp_v4()), subtype=8, qos=0, pad=2),
                                        flags=0x20), tcp_v4()),
    ("ppi-80211", 192, ppi(dot11(snap(tcp_v4())), 105), tcp_v4()),
    ("ppi-ethernet", 192, ppi(MAC_B + MAC_A + b"\x86\xdd" + tcp_v6(), 1), tcp_v6()),
    ("prism", 119, struct.pack("<II", 0x41, 144) + b"\0" * 136 + dot11(snap(tcp_v4())), tcp_v4()),
    ("avs", 163, struct.pack("!II", 0x80211001, 64) + b"\0" * 56 + dot11(snap(tcp_v4())),
     tcp_v4()),
    ("fddi", 10, b"\x50" + MAC_B + MAC_A + snap(tcp_v4()), tcp_v4()),
    ("fddi-sync-ipv6", 10, b"\xd0" + MAC_B + MAC_A + snap(tcp_v6()), tcp_v6()),
    ("fddi-llc-ip", 10, b"\x50" + MAC_B + MAC_A + b"\x06\x06\x03" + tcp_v4(), tcp_v4()),
    ("ipoib", 242, b"\x01" * 20 + b"\x02" * 20 + b"\x08\x00\x00\x00" + tcp_v4(), tcp_v4()),
    ("ipoib-ipv6", 242, b"\x01" * 40 + b"\x86\xdd\x00\x00" + tcp_v6(), tcp_v6()),
    ("arcnet-linux", 129, b"\x01\x02\x00\x00\xd4\x00\x00\x01" + tcp_v4(), tcp_v4()),
    ("arcnet-linux-exception", 129,
     b"\x01\x02\x00\x00\xd4\xff\x00\x00\xd4\x00\x00\x01" + tcp_v4(), tcp_v4()),
    ("arcnet-linux-ipv6", 129, b"\x01\x02\x00\x00\xc4\x00\x00\x01" + tcp_v6(), tcp_v6()),
    ("arcnet-linux-rfc1051", 129, b"\x01\x02\x00\x00\xf0" + tcp_v4(), tcp_v4()),
    ("arcnet-bsd", 7, b"\x01\x02\xd4\x00\x00\x01" + tcp_v4(), tcp_v4()),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_every_link_type_yields_the_ip_packet(case: tuple[str, int, bytes, bytes]) -> None:
    _, linktype, frame, ip = case
    assert linktype in lt.EXTRA_LINKTYPES
    w = walk(linktype, frame)
    assert not w.refused
    assert w.ip == ip


def test_ppi_ethernet_is_an_ethernet_header() -> None:
    r = link_payload(192, ppi(MAC_B + MAC_A + b"\x08\x00" + tcp_v4(), 1))
    assert r == LinkPayload(INNER_ETHERNET, 0, len(ppi(b"", 1)))
    r = link_payload(10, b"\x50" + MAC_B + MAC_A + snap(tcp_v4()))
    assert r == LinkPayload(INNER_ETHERTYPE, 0x0800, 21)


REFUSED: list[tuple[str, int, bytes, int]] = [
    ("802.11-beacon", 105, dot11(b"\0" * 40, ftype=0, subtype=8), NOT_IP),
    ("802.11-ack", 105, b"\xd4\x00" + b"\0" * 30, NOT_IP),
    ("802.11-null-data", 105, dot11(b"", subtype=4), NOT_IP),
    ("802.11-qos-null", 105, dot11(b"", subtype=12, qos=0), NOT_IP),
    ("802.11-protected", 105, dot11(b"\0" * 40, flags=0x41), NOT_IP),
    ("802.11-version-1", 105, b"\x09\x01" + b"\0" * 40, MALFORMED),
    ("802.11-short", 105, dot11(b"")[:20], MALFORMED),
    ("802.11-no-snap", 105, dot11(b"\xe0\xe0\x03" + b"\0" * 30), NOT_IP),
    ("802.11-snap-cut", 105, dot11(b"\xaa\xaa\x03\0\0"), MALFORMED),
    ("radiotap-version-1", 127, b"\x01\x00\x08\x00\0\0\0\0" + dot11(snap(tcp_v4())), MALFORMED),
    ("radiotap-length-past-end", 127, b"\x00\x00\xff\x00\0\0\0\0", MALFORMED),
    ("radiotap-short", 127, b"\x00\x00\x08", MALFORMED),
    ("ppi-nested-too-deep", 192, ppi(ppi(ppi(b"\0" * 40, 192), 192), 192), NOT_IP),
    ("ppi-carries-other", 192, ppi(b"\0" * 40, 147), NOT_IP),
    ("ppi-bad-length", 192, struct.pack("<BBHI", 0, 0, 4, 105) + b"\0" * 40, MALFORMED),
    ("fddi-smt", 10, b"\x41" + MAC_B + MAC_A + b"\0" * 30, NOT_IP),
    ("fddi-short", 10, b"\x50" + MAC_B, MALFORMED),
    ("ipoib-short", 242, b"\0" * 43, MALFORMED),
    ("arcnet-arp", 129, b"\x01\x02\x00\x00\xd5\x00\x00\x01" + b"\0" * 28, NOT_IP),
    ("arcnet-cut", 129, b"\x01\x02\x00\x00\xd4\x00", MALFORMED),
    ("arcnet-empty", 7, b"\x01", MALFORMED),
    ("prism-bad-length", 119, struct.pack("<II", 0x41, 4) + b"\0" * 40, MALFORMED),
    ("avs-bad-length", 163, struct.pack("!II", 0x80211001, 4000) + b"\0" * 40, MALFORMED),
    ("not-ours", 1, b"\0" * 60, NOT_IP),
]


@pytest.mark.parametrize("case", REFUSED, ids=[c[0] for c in REFUSED])
def test_frames_without_ip_or_with_bad_headers_are_refused(
    case: tuple[str, int, bytes, int],
) -> None:
    _, linktype, frame, status = case
    r = link_payload(linktype, frame)
    assert isinstance(r, Refusal), r
    assert r.status == status
    assert r.reason


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_every_cut_of_the_link_header_is_refused(case: tuple[str, int, bytes, bytes]) -> None:
    _, linktype, frame, ip = case
    start = len(frame) - len(ip)
    for cut in range(start):
        r = link_payload(linktype, frame[:cut])
        assert isinstance(r, Refusal) and r.status in (NOT_IP, MALFORMED), (cut, r)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=120), linktype=st.sampled_from(sorted(lt.EXTRA_LINKTYPES)))
def test_random_bytes_never_raise(data: bytes, linktype: int) -> None:
    r = link_payload(linktype, data)
    assert isinstance(r, (LinkPayload, Refusal))
    if isinstance(r, LinkPayload):
        assert 0 <= r.off <= len(data)
    else:
        assert r.status in (NOT_IP, MALFORMED)


CORPUS = [
    # (file, TCP frames tshark shows that must match)
    ("arkime/80211-http.pcap", 26),
    ("zeek/radiotap.pcap", 0),
    ("tcpdump/arcnet-http.pcap", 13),
    ("tcpdump/ipoib.pcap", 20),
    ("zeek/fddi-dns-tcp.pcap", 11),
    ("zeek/fddi-llc.pcap", 1333),
]


@pytest.mark.parametrize("name,least", CORPUS, ids=[c[0] for c in CORPUS])
def test_corpus_ip_packets_are_what_tshark_shows(
    shared_pcaps: Path, name: str, least: int
) -> None:
    path = shared_pcaps / name
    if not path.exists():
        pytest.skip(f"{name} not in the shared corpus")
    kinds, matched = check_against_tshark(path)
    assert kinds == set()
    assert matched >= least


def test_corpus_radiotap_udp_frames_decode(shared_pcaps: Path) -> None:
    from mostool.replay import read_capture

    path = shared_pcaps / "zeek/radiotap.pcap"
    if not path.exists():
        pytest.skip("radiotap.pcap not in the shared corpus")
    protos = [walk(linktype, buf).proto for _, linktype, buf, _ in read_capture(path)]
    assert protos == [17, 17, 17]
