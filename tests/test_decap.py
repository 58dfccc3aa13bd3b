"""The decoder's tunnel hook (mostool/stack/decap.py, issue #17 phase 2): every tunnel kind of
tests/test_tunnels.py decoded by ``Decoder`` to its inner TCP segment, with the hops and the
tunnel key on the flow key; nesting limits; outer and inner IP fragments; plain traffic
untouched; and the engine keeping one flow per tunnel with both directions in it.
"""

from __future__ import annotations

import struct
from pathlib import Path

import dpkt
import pytest
from test_tunnels import CASES, Case, eth_of, tcp_v4
from tunnel_frames import V4_A, V4_B, ether, gre, ipv4, udp, vxlan

from mostool.config import MonitorConfig
from mostool.monitor import MONITOR_STREAM, Monitor
from mostool.replay import read_capture
from mostool.stack import tunnels
from mostool.stack.codes import FRAGMENT, MALFORMED, NOT_TCP
from mostool.stack.connection import Connection
from mostool.stack.decode import Decoder, TcpSegment
from mostool.stack.stream_spec import stream_spec
from mostool.stack.tunnels import tunnel_key

TUNNELS = Path(__file__).resolve().parent.parent / "sample_pcaps" / "tunnels"


def _decode(frame: bytes, dec: Decoder | None = None) -> TcpSegment | int:
    return (dec or Decoder()).decode(1, frame, 0.0)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_every_tunnel_kind_decodes_to_the_inner_segment(case: Case) -> None:
    _, inner, build, hops = case
    dec = Decoder()
    seg = dec.decode(1, build(inner), 0.0)
    assert isinstance(seg, TcpSegment), dec.last_error
    assert seg.tunnel is not None
    assert [(h.kind, h.ident) for h in seg.tunnel][-len(hops):] == hops
    # the inner packet, at its offset in the frame (no copy)
    assert seg.buf[seg.ip_off:seg.ip_off + len(inner)] == inner
    assert seg.wire_len == seg.payload_len
    assert seg.key == seg.src + seg.dst + struct.pack("!HH", seg.sport, seg.dport) \
        + tunnel_key(seg.tunnel)
    assert dec.stats()["tcp"] == 1


def test_plain_traffic_has_no_tunnel_and_udp_elsewhere_is_not_tcp() -> None:
    seg = _decode(eth_of(tcp_v4()))
    assert isinstance(seg, TcpSegment) and seg.tunnel is None and len(seg.key) == 12
    dec = Decoder()
    assert _decode(ether(ipv4(udp(b"x" * 20, 5353, 53), 17), 0x0800), dec) == NOT_TCP
    assert dec.last_error == "ipv4: protocol 17"
    # a refusal from the tunnel module: a GTP-U echo request carries nothing
    echo = struct.pack("!BBHI", 0x30, 1, 0, 0)
    assert _decode(ether(ipv4(udp(echo, 2152, 2152), 17), 0x0800), dec) == NOT_TCP
    assert dec.last_error.startswith("gtpu: message type 1")
    # the hop list is per frame: the next plain frame carries none
    seg = _decode(eth_of(tcp_v4()), dec)
    assert isinstance(seg, TcpSegment) and seg.tunnel is None


def test_nesting_deeper_than_max_depth_is_malformed() -> None:
    pkt = tcp_v4()
    for _ in range(tunnels.MAX_DEPTH):
        pkt = ipv4(pkt, 4)
    seg = _decode(eth_of(pkt))
    assert isinstance(seg, TcpSegment) and seg.tunnel is not None
    assert len(seg.tunnel) == tunnels.MAX_DEPTH
    dec = Decoder()
    assert _decode(eth_of(ipv4(pkt, 4)), dec) == MALFORMED
    assert dec.last_error == "tunnel: nesting deeper than MAX_DEPTH"
    seg = _decode(eth_of(tcp_v4()), dec)
    assert isinstance(seg, TcpSegment) and seg.tunnel is None


def _fragments(payload: bytes, proto: int, ident: int, src: bytes, dst: bytes,
               cut: int) -> list[bytes]:
    """An IPv4 datagram in two fragments, the first carrying ``cut`` (a multiple of 8) bytes."""
    out = []
    for off, part, more in ((0, payload[:cut], True), (cut, payload[cut:], False)):
        # dpkt writes offset as given: in 8-byte units
        ip = dpkt.ip.IP(src=src, dst=dst, p=proto, ttl=64, id=ident, data=part, offset=off >> 3,
                        mf=int(more))
        out.append(bytes(ip))
    return out


def test_outer_gre_fragments_are_reassembled_then_decapsulated() -> None:
    inner = tcp_v4(payload=b"y" * 300)
    first, second = _fragments(gre(inner, 0x0800, key=5), 47, 77, V4_A, V4_B, 160)
    dec = Decoder()
    assert _decode(ether(first, 0x0800), dec) == FRAGMENT
    seg = _decode(ether(second, 0x0800), dec)
    assert isinstance(seg, TcpSegment), dec.last_error
    assert seg.tunnel is not None and [h.kind for h in seg.tunnel] == ["gre"]
    assert seg.buf[seg.payload_off:seg.payload_off + seg.payload_len] == b"y" * 300


def test_inner_fragments_of_two_tunnels_never_merge() -> None:
    inner = bytes(dpkt.tcp.TCP(sport=1, dport=2, seq=3, flags=dpkt.tcp.TH_ACK, data=b"z" * 64))
    a = bytes([10, 0, 0, 1])
    b = bytes([10, 0, 0, 2])
    first, second = _fragments(inner, 6, 9, a, b, 40)

    def in_vni(ip: bytes, vni: int) -> bytes:
        return ether(ipv4(udp(vxlan(eth_of(ip), vni), 50000, 4789), 17), 0x0800)

    dec = Decoder()
    assert _decode(in_vni(first, 1), dec) == FRAGMENT
    assert _decode(in_vni(second, 2), dec) == FRAGMENT  # same inner id and addresses, other VNI
    seg = _decode(in_vni(second, 1), dec)
    assert isinstance(seg, TcpSegment), dec.last_error
    assert seg.tunnel is not None and seg.tunnel[0].ident == 1
    assert seg.buf[seg.payload_off:] == b"z" * 64
    assert dec.stats()["frag_pending"] == 1  # VNI 2's half still waits


def test_reverse_key_keeps_the_tunnel_suffix() -> None:
    fwd = eth_of(ipv4(udp(vxlan(eth_of(tcp_v4()), 7), 50000, 4789), 17))
    back_ip = tcp_v4(sport=80, dport=40000, src=bytes([10, 0, 0, 2]), dst=bytes([10, 0, 0, 1]))
    # the other direction: outer addresses swapped, its own UDP source port
    back = eth_of(ipv4(udp(vxlan(eth_of(back_ip), 7), 61000, 4789), 17, V4_B, V4_A))
    s1, s2 = _decode(fwd), _decode(back)
    assert isinstance(s1, TcpSegment) and isinstance(s2, TcpSegment)
    conn = Connection(1, s1, True, 1, 0.0, stream_spec(4096, 4096, False, False, False, 16, 65536,
                                                       False))
    assert conn.key_c2s == s1.key and conn.key_s2c == s2.key
    assert conn.tunnel == s1.tunnel
    assert conn.record()["tunnel"] == [tunnels.describe(h) for h in s1.tunnel or ()]


def test_one_connection_in_two_tunnels_is_two_flows_in_the_engine() -> None:
    """Handshake and data of one connection in GRE keys 1 and 2: two flows, equal bytes."""
    def pkt(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int,
            data: bytes = b"") -> bytes:
        return ipv4(bytes(dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags,
                                       data=data)), 6, src, dst)

    a, b = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    syn, ack_, psh = dpkt.tcp.TH_SYN, dpkt.tcp.TH_ACK, dpkt.tcp.TH_PUSH | dpkt.tcp.TH_ACK
    conv = [
        (True, pkt(a, b, 1000, 80, 0, 0, syn)),
        (False, pkt(b, a, 80, 1000, 500, 1, syn | ack_)),
        (True, pkt(a, b, 1000, 80, 1, 501, ack_)),
        (True, pkt(a, b, 1000, 80, 1, 501, psh, b"hello")),
        (False, pkt(b, a, 80, 1000, 501, 6, psh, b"world!")),
    ]
    frames = []
    for from_a, ip in conv:
        for key in (1, 2):
            outer = ipv4(gre(ip, 0x0800, key=key), 47, *((V4_A, V4_B) if from_a else (V4_B, V4_A)))
            frames.append(ether(outer, 0x0800))
    mon = Monitor(MonitorConfig(hash_streams=True))
    mon.socket(MONITOR_STREAM)
    records: list[dict[str, object]] = []
    mon.on_flow_end(lambda conn: records.append(conn.record()))
    for i, frame in enumerate(frames):
        mon.feed(i / 1000, 1, frame)
    mon.close()
    assert len(records) == 2
    assert [r["tunnel"][0]["key"] for r in records] == [1, 2]  # type: ignore[index]
    for r in records:
        assert r["c2s"]["bytes"] == 5 and r["s2c"]["bytes"] == 6  # type: ignore[index]
        assert r["c2s"]["rexmit"] == 0 and r["s2c"]["rexmit"] == 0  # type: ignore[index]


def test_frame_bpf_sees_the_outer_frame_and_syn_filters_the_inner_packet() -> None:
    """Section 4 of docs/tunnels_and_evasion.md: a frame filter means what tcpdump means (the
    outer frame); a SYN filter picks tunnelled flows by their inner endpoints."""
    from mostool.bpf import BpfFilter
    vx = TUNNELS / "vxlan.pcap"
    frames = [(lt, buf) for _, lt, buf, _ in read_capture(vx)]
    assert not any(BpfFilter("tcp port 80").matches(lt, buf) for lt, buf in frames)
    assert all(BpfFilter("udp port 4789").matches(lt, buf) for lt, buf in frames)
    for syn, flows in (("tcp port 80", 1), ("host 10.77.0.2", 1), ("udp port 4789", 0),
                       ("tcp port 81", 0)):
        mon = Monitor(MonitorConfig(hash_streams=True))
        mon.socket(MONITOR_STREAM).bind_filter(syn=syn)
        records: list[dict[str, object]] = []
        mon.on_flow_end(lambda conn, out=records: out.append(conn.record()))
        for ts, lt, buf, _ in read_capture(vx):
            mon.feed(ts, lt, buf)
        mon.close()
        assert len(records) == flows, syn
        if flows:
            assert records[0]["c2s"]["bytes"] == 2138  # type: ignore[index]
