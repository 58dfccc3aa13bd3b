"""mostool.bpf: libpcap filters over frames of every link type the builder makes."""

from __future__ import annotations

import pytest
from builders import CLI, SVR, Frame, Scenario, arp_frame, tcp_frame, udp_frame
from hypothesis import given, settings
from hypothesis import strategies as st

from mostool.bpf import BpfError, BpfFilter, compile_filter

V6 = {"client": "[2001:db8::1]:40000", "server": "[2001:db8::2]:80"}


def conversation(**kwargs: object) -> Scenario:
    sc = Scenario(**kwargs)  # type: ignore[arg-type]
    sc.handshake()
    sc.send(CLI, b"GET / HTTP/1.1\r\n\r\n")
    sc.send(SVR, b"HTTP/1.1 204 No Content\r\n\r\n")
    sc.close()
    return sc


def accepted(bpf: BpfFilter, frames: list[Frame]) -> list[bool]:
    return [bpf.matches(linktype, data) for _ts, linktype, data, _wl in frames]


# ---- matching on each link type ---------------------------------------------------------


@pytest.mark.parametrize(
    "variant",
    [
        {"linktype": 1},
        {"linktype": 1, **V6},
        {"linktype": 101},
        {"linktype": 101, **V6},
        {"linktype": 228},
        {"linktype": 229, **V6},
        {"linktype": 113},
        {"linktype": 113, **V6},
        {"linktype": 276},
        {"linktype": 0},
        {"linktype": 108},
    ],
    ids=lambda v: f"{v['linktype']}-{'v6' if 'client' in v else 'v4'}",
)
def test_port_and_host_filters_on_every_link_type(variant: dict[str, object]) -> None:
    sc = conversation(**variant)
    n = len(sc.frames)
    assert accepted(BpfFilter("tcp port 80"), sc.frames) == [True] * n
    assert accepted(BpfFilter("tcp port 81"), sc.frames) == [False] * n
    assert accepted(BpfFilter("udp"), sc.frames) == [False] * n
    from_client = [i % 2 == 0 for i in range(3)]  # SYN, SYN/ACK, ACK
    assert accepted(BpfFilter("tcp dst port 80"), sc.frames)[:3] == from_client
    flags = BpfFilter("tcp[tcpflags] & tcp-syn != 0" if "client" not in variant else "ip6")
    expected_syn = [True, True] + [False] * (n - 2) if "client" not in variant else [True] * n
    assert accepted(flags, sc.frames) == expected_syn
    host = "2001:db8::1" if "client" in variant else "10.0.0.1"
    assert accepted(BpfFilter(f"src host {host}"), sc.frames)[:3] == from_client
    assert accepted(BpfFilter(f"host {host} and port 40000"), sc.frames) == [True] * n


def test_ethernet_addresses_and_payload_bytes() -> None:
    sc = conversation()
    client_mac = sc.frames[0][2][6:12]
    mac = ":".join(f"{b:02x}" for b in client_mac)
    from_client = [data[6:12] == client_mac for _ts, _lt, data, _wl in sc.frames]
    assert accepted(BpfFilter(f"ether src {mac}"), sc.frames) == from_client
    get = BpfFilter("tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420")  # "GET "
    assert accepted(get, sc.frames) == [i == 3 for i in range(len(sc.frames))]


def test_vlan_tagged_frames() -> None:
    sc = conversation(vlan=100)
    n = len(sc.frames)
    assert accepted(BpfFilter("vlan 100 and tcp port 80"), sc.frames) == [True] * n
    assert accepted(BpfFilter("vlan and tcp"), sc.frames) == [True] * n
    assert accepted(BpfFilter("vlan 200"), sc.frames) == [False] * n
    # without the vlan keyword libpcap looks for IP right after the MAC addresses
    assert accepted(BpfFilter("tcp port 80"), sc.frames) == [False] * n
    v6 = conversation(vlan=7, **V6)
    assert accepted(BpfFilter("vlan 7 and ip6 and tcp port 80"), v6.frames) == [True] * n
    qinq = conversation(vlan=(300, 100))
    assert accepted(BpfFilter("vlan 300 and vlan 100 and tcp"), qinq.frames) == [True] * n


def test_sll_direction() -> None:
    sc = conversation(linktype=113)
    from_client = [data[:2] == b"\x00\x04" for _ts, _lt, data, _wl in sc.frames]
    assert accepted(BpfFilter("outbound"), sc.frames) == from_client
    assert accepted(BpfFilter("inbound"), sc.frames) == [not x for x in from_client]


def test_raw_linktypes_share_one_filter() -> None:
    bpf = BpfFilter("ip and tcp port 80")
    v4_raw = conversation(linktype=101).frames
    v4_228 = conversation(linktype=228).frames
    v6_raw = conversation(linktype=101, **V6).frames
    assert all(accepted(bpf, v4_raw)) and all(accepted(bpf, v4_228))
    assert not any(accepted(bpf, v6_raw))
    assert not bpf.uncompilable_linktypes


def test_non_tcp_frames() -> None:
    udp = udp_frame("10.0.0.1:5353", "10.0.0.2:53", b"q")
    arp = arp_frame("10.0.0.1", "10.0.0.2")
    assert BpfFilter("udp port 53").matches(1, udp)
    assert not BpfFilter("tcp").matches(1, udp)
    assert BpfFilter("arp").matches(1, arp)
    assert not BpfFilter("ip").matches(1, arp)


def test_truncated_and_non_bytes_frames() -> None:
    sc = Scenario()
    sc.handshake()
    (frame,) = sc.send(CLI, b"x" * 1000, snaplen=60)
    data = frame[2]
    bpf = BpfFilter("tcp dst port 80")
    assert bpf.matches(1, data)
    assert bpf.matches(1, bytearray(data)) and bpf.matches(1, memoryview(data))  # type: ignore[arg-type]
    assert not bpf.matches(1, data[:20])  # too short: the program reads past the end -> reject
    assert not bpf.matches(1, b"")


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 65535), st.integers(1, 65535))
def test_dst_port_property(port: int, asked: int) -> None:
    frame = tcp_frame("10.1.1.1:1234", f"10.2.2.2:{port}", flags="S", seq=1)
    assert BpfFilter(f"tcp dst port {asked}").matches(1, frame) == (port == asked)


# ---- link types libpcap cannot compile for ----------------------------------------------


def test_uncompilable_linktype_never_matches_and_is_counted() -> None:
    bpf = BpfFilter("vlan and tcp")
    sll = conversation(linktype=113).frames
    assert accepted(bpf, sll) == [False] * len(sll)
    assert bpf.uncompilable_linktypes == {113}
    assert "VLAN" in (bpf.compile_error(113) or "")
    assert bpf.compile_error(1) is None
    eth = BpfFilter("ether host 02:00:0a:00:00:01")
    assert not eth.matches(228, conversation(linktype=228).frames[0][2])
    assert eth.uncompilable_linktypes == {228}
    assert not eth.matches(147, b"\x00" * 64)  # DLT_USER0: no filtering code in libpcap
    assert eth.uncompilable_linktypes == {228, 147}


def test_expression_that_rejects_everything_on_a_link_type() -> None:
    bpf = BpfFilter("ip6")  # fine on Ethernet, provably empty on raw IPv4
    v4 = conversation(linktype=228).frames
    assert accepted(bpf, v4) == [False] * len(v4)
    assert bpf.uncompilable_linktypes == set()


# ---- construction and errors ------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("tcp and (", "bad filter 'tcp and (': syntax error"),
        ("frobnicate", "bad filter 'frobnicate': syntax error"),
        ("tcp port 99999", "bad filter 'tcp port 99999': illegal port number 99999 > 65535"),
        ("ip and ip6", "bad filter 'ip and ip6': expression rejects all packets"),
        ("tcp and\n(", "bad filter 'tcp and\\n(': syntax error"),
    ],
)
def test_bad_expression_raises_one_line_libpcap_message(expression: str, message: str) -> None:
    with pytest.raises(BpfError) as info:
        BpfFilter(expression)
    assert str(info.value) == message
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_construction_details() -> None:
    bpf = BpfFilter("tcp", snaplen=128)
    assert bpf.expression == "tcp" and bpf.snaplen == 128
    assert repr(bpf) == "BpfFilter('tcp')"
    assert BpfFilter("").matches(1, b"\x00" * 14)  # the empty program accepts everything
    with pytest.raises(ValueError):
        BpfFilter("tcp", snaplen=0)
    with pytest.raises(TypeError):
        BpfFilter(b"tcp")  # type: ignore[arg-type]


def test_compile_filter() -> None:
    assert compile_filter(None) is None
    assert compile_filter("") is None
    assert compile_filter("   ") is None
    bpf = compile_filter("tcp port 80")
    assert isinstance(bpf, BpfFilter) and bpf.expression == "tcp port 80"
    with pytest.raises(BpfError):
        compile_filter("tcp and (")
