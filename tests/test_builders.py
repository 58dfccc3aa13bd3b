"""Tests of the scenario builder itself (tests/builders.py): numbers, checksums, link layers."""

from __future__ import annotations

import struct
from pathlib import Path

import dpkt
import pytest
from builders import (
    CLI,
    SVR,
    Frame,
    Scenario,
    arp_frame,
    inet_checksum,
    ipv4_fragments,
    parse_endpoint,
    retime,
    sack_option,
    tcp_flags,
    tcp_frame,
    udp_frame,
    write_pcap,
)
from hypothesis import given
from hypothesis import strategies as st

# ---- helpers: decode with dpkt, verify checksums independently -----------------------------


def ip_of(frame: Frame) -> dpkt.ip.IP | dpkt.ip6.IP6:
    """The IP packet of a frame, through dpkt's own link-layer decoders."""
    _ts, linktype, data, _wl = frame
    if linktype == 1:
        eth = dpkt.ethernet.Ethernet(data)
        ip = eth.data
    elif linktype == 113:
        ip = dpkt.sll.SLL(data).data
    elif linktype == 276:
        ip = dpkt.sll2.SLL2(data).data
    elif linktype in (101, 228, 229):
        ip = dpkt.ip.IP(data) if data[0] >> 4 == 4 else dpkt.ip6.IP6(data)
    elif linktype in (0, 108):
        ip = dpkt.loopback.Loopback(data).data
    else:
        raise AssertionError(f"linktype {linktype}")
    assert isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6), type(ip)
    return ip


def tcp_of(frame: Frame) -> dpkt.tcp.TCP:
    tcp = ip_of(frame).data
    assert isinstance(tcp, dpkt.tcp.TCP)
    return tcp


def pseudo(ip: dpkt.ip.IP | dpkt.ip6.IP6, proto: int, length: int) -> bytes:
    if isinstance(ip, dpkt.ip.IP):
        return bytes(ip.src) + bytes(ip.dst) + struct.pack("!BBH", 0, proto, length)
    return bytes(ip.src) + bytes(ip.dst) + struct.pack("!IxxxB", length, proto)


def l4_checksum_ok(frame: Frame) -> bool:
    """Verify the TCP/UDP checksum over the raw bytes (the sum including the field is 0)."""
    ip = ip_of(frame)
    raw = bytes(ip.data)
    proto = 6 if isinstance(ip.data, dpkt.tcp.TCP) else 17
    return inet_checksum(pseudo(ip, proto, len(raw)) + raw) == 0


def ip_checksum_ok(frame: Frame) -> bool:
    ip = ip_of(frame)
    return not isinstance(ip, dpkt.ip.IP) or inet_checksum(bytes(ip)[: ip.hl * 4]) == 0


def tcp_opts(tcp: dpkt.tcp.TCP) -> dict[int, bytes]:
    return dict(dpkt.tcp.parse_opts(tcp.opts))


# ---- basic arithmetic -------------------------------------------------------------------


def test_handshake_numbers_flags_and_options() -> None:
    sc = Scenario(client_isn=1000, server_isn=5000)
    frames = sc.handshake()
    assert len(frames) == 3 and sc.frames == frames
    syn, synack, ack = (tcp_of(f) for f in frames)
    assert (syn.flags, syn.seq, syn.ack) == (dpkt.tcp.TH_SYN, 1000, 0)
    assert (synack.flags, synack.seq, synack.ack) == (dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK, 5000, 1001)
    assert (ack.flags, ack.seq, ack.ack) == (dpkt.tcp.TH_ACK, 1001, 5001)
    assert (syn.sport, syn.dport, synack.sport, synack.dport) == (40000, 80, 80, 40000)
    opts = tcp_opts(syn)
    assert struct.unpack("!H", opts[dpkt.tcp.TCP_OPT_MSS]) == (1460,)
    assert opts[dpkt.tcp.TCP_OPT_WSCALE] == b"\x07"
    assert dpkt.tcp.TCP_OPT_SACKOK in opts
    syn_tsval, syn_tsecr = struct.unpack("!II", opts[dpkt.tcp.TCP_OPT_TIMESTAMP])
    assert syn_tsecr == 0
    sa_tsval, sa_tsecr = struct.unpack("!II", tcp_opts(synack)[dpkt.tcp.TCP_OPT_TIMESTAMP])
    assert sa_tsecr == syn_tsval
    ack_opts = tcp_opts(ack)
    assert set(ack_opts) == {dpkt.tcp.TCP_OPT_NOP, dpkt.tcp.TCP_OPT_TIMESTAMP}
    assert struct.unpack("!II", ack_opts[dpkt.tcp.TCP_OPT_TIMESTAMP])[1] == sa_tsval
    assert sc.next_seq(CLI) == 1001 and sc.next_seq(SVR) == 5001


def test_timestamps_step_and_advance() -> None:
    sc = Scenario(t0=100.0, step=0.5)
    sc.handshake()
    sc.advance(10.0)
    sc.send(CLI, b"x")
    assert [f[0] for f in sc.frames] == [100.0, 100.5, 101.0, 111.5]
    assert sc.now == 112.0
    with pytest.raises(ValueError):
        sc.advance(-1)


def test_send_ack_arithmetic() -> None:
    sc = Scenario(client_isn=1000, server_isn=5000)
    sc.handshake()
    (req,) = sc.send(CLI, b"GET / HTTP/1.1\r\n\r\n")  # 18 bytes
    t = tcp_of(req)
    assert (t.seq, t.ack, t.data, t.flags) == (1001, 5001, b"GET / HTTP/1.1\r\n\r\n", 0x18)
    assert sc.next_offset(CLI) == 18 and sc.next_seq(CLI) == 1019
    (resp,) = sc.send(SVR, b"HTTP/1.1 200 OK\r\n")
    t = tcp_of(resp)
    assert (t.seq, t.ack) == (5001, 1019)
    (ack,) = sc.ack(CLI)
    t = tcp_of(ack)
    assert (t.seq, t.ack, t.data, t.flags) == (1019, 5001 + 17, b"", dpkt.tcp.TH_ACK)


def test_seq_offset_hole_retransmission_and_overlap() -> None:
    sc = Scenario(client_isn=1000)
    sc.handshake()
    (hole,) = sc.send(CLI, b"WORLD", seq_offset=5)  # first 5 bytes missing
    assert tcp_of(hole).seq == 1006 and sc.next_offset(CLI) == 10
    assert sc.stream(CLI) == b""  # nothing contiguous yet
    (ack,) = sc.ack(SVR, ack_offset=0)  # duplicate ACK for the hole
    assert tcp_of(ack).ack == 1001
    (fill,) = sc.send(CLI, b"HELLO", seq_offset=0)
    assert tcp_of(fill).seq == 1001 and sc.next_offset(CLI) == 10  # max(next, end)
    sc.send(CLI, b"xxLDxx", seq_offset=7)  # conflicting overlap, then 3 new bytes
    assert sc.next_offset(CLI) == 13
    assert sc.stream(CLI) == b"HELLOWORLDDxx"  # first copy wins
    assert sc.stream(CLI, last=True) == b"HELLOWOxxLDxx"
    (ack,) = sc.ack(SVR)
    assert tcp_of(ack).ack == 1014
    (sack_ack,) = sc.ack(SVR, ack_offset=5, sack=[(7, 13)])
    opts = tcp_opts(tcp_of(sack_ack))
    assert struct.unpack("!II", opts[dpkt.tcp.TCP_OPT_SACK]) == (1008, 1014)
    assert dpkt.tcp.TCP_OPT_TIMESTAMP in opts


def test_segments_split() -> None:
    sc = Scenario()
    sc.handshake()
    data = bytes(range(256)) * 10
    frames = sc.segments(SVR, data, 1000)
    assert [len(tcp_of(f).data) for f in frames] == [1000, 1000, 560]
    assert [tcp_of(f).seq for f in frames] == [5001, 6001, 7001]
    assert sc.stream(SVR) == data


def test_send_without_ack_and_custom_flags() -> None:
    sc = Scenario()
    (f,) = sc.send(CLI, b"zz", ack=False, flags="PAU")
    t = tcp_of(f)
    assert t.flags == dpkt.tcp.TH_PUSH | dpkt.tcp.TH_URG and t.ack == 0
    (f,) = sc.send(CLI, b"", flags="ECP")
    assert tcp_of(f).flags == 0x80 | 0x40 | 0x08 | 0x10
    with pytest.raises(ValueError):
        tcp_flags("SX")


def test_fin_close_and_fin_retransmission() -> None:
    sc = Scenario(client_isn=1000, server_isn=5000)
    sc.handshake()
    sc.send(CLI, b"abc")
    (fin,) = sc.fin(CLI, b"de")
    t = tcp_of(fin)
    assert t.flags == dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH
    assert (t.seq, t.data) == (1004, b"de")
    assert sc.next_seq(CLI) == 1007  # data + FIN
    (again,) = sc.fin(CLI)
    assert tcp_of(again).seq == 1006 and tcp_of(again).data == b""
    (ack,) = sc.ack(SVR)
    assert tcp_of(ack).ack == 1007
    assert sc.stream(CLI) == b"abcde"


def test_close_sequence() -> None:
    for first in (CLI, SVR):
        sc = Scenario(client_isn=1000, server_isn=5000)
        sc.handshake()
        frames = sc.close(first)
        segs = [tcp_of(f) for f in frames]
        flags = [s.flags for s in segs]
        fa = dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK
        assert flags == [fa, dpkt.tcp.TH_ACK, fa, dpkt.tcp.TH_ACK]
        senders = [s.sport for s in segs]
        c, s = 40000, 80
        assert senders == ([c, s, s, c] if first == CLI else [s, c, c, s])
        first_isn, other_isn = (1000, 5000) if first == CLI else (5000, 1000)
        assert segs[0].seq == first_isn + 1 and segs[1].ack == first_isn + 2
        assert segs[2].seq == other_isn + 1 and segs[2].ack == first_isn + 2
        assert segs[3].seq == first_isn + 2 and segs[3].ack == other_isn + 2


def test_rst_variants() -> None:
    sc = Scenario(client_isn=1000, server_isn=5000)
    sc.handshake()
    sc.send(CLI, b"hello")
    (r,) = sc.rst(SVR)
    t = tcp_of(r)
    assert (t.flags, t.seq, t.ack) == (dpkt.tcp.TH_RST | dpkt.tcp.TH_ACK, 5001, 1006)
    (r,) = sc.rst(CLI, ack=False, seq_offset=2)
    t = tcp_of(r)
    assert (t.flags, t.seq, t.ack) == (dpkt.tcp.TH_RST, 1003, 0)


def test_raw_uses_absolute_numbers_and_leaves_state() -> None:
    sc = Scenario(client_isn=1000, server_isn=5000)
    sc.handshake()
    (f,) = sc.raw(SVR, flags="SA", seq=123, ack=456, data=b"junk", options=b"\x01\x01\x01\x01")
    t = tcp_of(f)
    assert (t.seq, t.ack, t.data, t.opts) == (123, 456, b"junk", b"\x01\x01\x01\x01")
    assert sc.next_seq(SVR) == 5001 and sc.stream(SVR) == b""
    (f,) = sc.raw(CLI, flags="A", seq=1, options=b"\x02\x04\x05")  # padded to 4 bytes
    assert tcp_of(f).opts == b"\x02\x04\x05\x00"


def test_syn_with_data_new_isn_and_wraparound() -> None:
    sc = Scenario(client_isn=2**32 - 3, server_isn=2**32 - 1)
    (syn,) = sc.syn(data=b"early")
    assert tcp_of(syn).seq == 2**32 - 3 and tcp_of(syn).data == b"early"
    (sa,) = sc.synack()
    assert tcp_of(sa).ack == (2**32 - 3 + 1 + 5) % 2**32 == 3
    (d,) = sc.send(SVR, b"abc")
    assert tcp_of(d).seq == 0  # isn + 1 wrapped
    assert sc.next_seq(SVR) == 3
    sc2 = Scenario()
    (syn2,) = sc2.syn(isn=77)
    assert tcp_of(syn2).seq == 77 and sc2.isn(CLI) == 77


def test_no_timestamp_mode() -> None:
    sc = Scenario(timestamps=False)
    syn, synack, ack = sc.handshake()
    assert dpkt.tcp.TCP_OPT_TIMESTAMP not in tcp_opts(tcp_of(syn))
    assert dpkt.tcp.TCP_OPT_MSS in tcp_opts(tcp_of(syn))
    assert tcp_of(ack).opts == b""


# ---- checksums, parsing, every frame ------------------------------------------------------


def a_full_conversation(**kwargs: object) -> Scenario:
    sc = Scenario(**kwargs)  # type: ignore[arg-type]
    sc.handshake()
    sc.send(CLI, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    sc.segments(SVR, b"R" * 3000, 1448)
    sc.ack(CLI)
    sc.send(SVR, b"R" * 10, seq_offset=100)  # retransmitted overlap
    sc.send(CLI, b"odd")  # odd length checksum path
    sc.ack(SVR, sack=[(0, 3)])
    sc.close(SVR)
    sc.rst(CLI)
    return sc


LINK_VARIANTS = [
    {"linktype": 1},
    {"linktype": 1, "vlan": 100},
    {"linktype": 1, "vlan": (200, 100)},
    {"linktype": 101},
    {"linktype": 228},
    {"linktype": 113},
    {"linktype": 276},
    {"linktype": 0},
    {"linktype": 108},
    {"linktype": 1, "client": "[2001:db8::1]:40000", "server": "[2001:db8::2]:443"},
    {"linktype": 1, "vlan": 7, "client": "[2001:db8::1]:40000", "server": "[2001:db8::2]:443"},
    {"linktype": 229, "client": "[2001:db8::1]:40000", "server": "[2001:db8::2]:443"},
    {"linktype": 101, "client": "[2001:db8::1]:40000", "server": "[2001:db8::2]:443"},
    {"linktype": 113, "client": "[fe80::1]:5555", "server": "[fe80::2]:22"},
]


@pytest.mark.parametrize("variant", LINK_VARIANTS, ids=lambda v: "-".join(map(str, v.values())))
def test_every_frame_parses_with_valid_checksums(variant: dict[str, object]) -> None:
    sc = a_full_conversation(**variant)
    assert sc.frames
    for frame in sc.frames:
        ts, linktype, data, wire_len = frame
        assert linktype == variant["linktype"] and wire_len == len(data)
        tcp = tcp_of(frame)
        assert l4_checksum_ok(frame) and ip_checksum_ok(frame)
        ip = ip_of(frame)
        if isinstance(ip, dpkt.ip.IP):
            assert ip.len == len(bytes(ip)) and ip.df
        else:
            assert ip.plen == len(bytes(ip.data))
        assert tcp.off * 4 == 20 + len(tcp.opts)
    timestamps = [f[0] for f in sc.frames]
    assert timestamps == sorted(timestamps) and len(set(timestamps)) == len(timestamps)


def test_ethernet_and_vlan_headers() -> None:
    (f,) = Scenario(vlan=100).syn()
    eth = dpkt.ethernet.Ethernet(f[2])
    assert f[2][12:14] == b"\x81\x00" and struct.unpack("!H", f[2][14:16])[0] & 0xFFF == 100
    assert f[2][16:18] == b"\x08\x00"
    assert eth.vlan_tags[0].id == 100
    (f,) = Scenario(vlan=(300, 100)).syn()
    assert f[2][12:14] == b"\x88\xa8" and f[2][16:18] == b"\x81\x00" and f[2][20:22] == b"\x08\x00"
    (f,) = Scenario(client="[::1]:1", server="[::2]:2").syn()
    assert f[2][12:14] == b"\x86\xdd"
    cli, svr = Scenario().handshake()[:2]
    assert cli[2][6:12] == svr[2][0:6] and cli[2][0:6] == svr[2][6:12]  # MACs mirror


def test_sll_packet_types_and_address() -> None:
    sc = Scenario(linktype=113)
    syn, synack, _ = sc.handshake()
    assert struct.unpack("!H", syn[2][:2])[0] == 4  # outgoing from the client
    assert struct.unpack("!H", synack[2][:2])[0] == 0  # to us
    assert struct.unpack("!H", syn[2][14:16])[0] == 0x0800
    sll = dpkt.sll.SLL(syn[2])
    assert sll.hrd == 1 and sll.hlen == 6


def test_null_and_loop_family_byte_order() -> None:
    (f,) = Scenario(linktype=0).syn()
    assert f[2][:4] == struct.pack("<I", 2)
    (f,) = Scenario(linktype=108, client="[::1]:1", server="[::2]:2").syn()
    assert f[2][:4] == struct.pack("!I", 30)


def test_bad_checksum() -> None:
    sc = Scenario()
    sc.handshake()
    (bad,) = sc.send(CLI, b"payload", bad_checksum=True)
    (good,) = sc.send(CLI, b"payload", seq_offset=0)
    assert not l4_checksum_ok(bad) and ip_checksum_ok(bad)
    assert l4_checksum_ok(good)
    assert bytes(tcp_of(bad).data) == b"payload"


@given(st.binary(max_size=64), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_bad_checksum_is_always_bad(data: bytes, seq: int, ack: int) -> None:
    for src, dst in (("1.2.3.4:5", "6.7.8.9:10"), ("[::1]:5", "[::2]:10")):
        good = tcp_frame(src, dst, flags="PA", seq=seq, ack=ack, data=data)
        bad = tcp_frame(src, dst, flags="PA", seq=seq, ack=ack, data=data, bad_checksum=True)
        assert l4_checksum_ok((0.0, 1, good, len(good)))
        assert not l4_checksum_ok((0.0, 1, bad, len(bad)))


def test_snaplen_truncates_but_keeps_wire_len() -> None:
    sc = Scenario()
    sc.handshake()
    (f,) = sc.send(CLI, b"A" * 1000, snaplen=96)
    assert len(f[2]) == 96 and f[3] == 14 + 20 + 32 + 1000
    assert sc.stream(CLI) == b"A" * 1000


def test_eth_padding() -> None:
    sc = Scenario(timestamps=False, eth_pad=True)
    sc.handshake()
    (f,) = sc.ack(CLI)
    assert len(f[2]) == 60 and f[2][54:] == b"\x00" * 6
    ip = dpkt.ethernet.Ethernet(f[2]).data
    assert ip.len == 40


def test_ip_fragments() -> None:
    sc = Scenario()
    sc.handshake()
    frames = sc.send(CLI, b"F" * 100, ip_fragment=48)
    assert len(frames) == 3  # 32 + 100 = 132 bytes of TCP -> 48 + 48 + 36
    offsets, payload = [], b""
    for f in frames:
        ip = dpkt.ethernet.Ethernet(f[2]).data
        assert inet_checksum(bytes(ip)[:20]) == 0 and not ip.df
        offsets.append((ip.offset, ip.mf))
        payload += bytes(ip.data) if not isinstance(ip.data, bytes) else ip.data
    assert offsets == [(0, 1), (6, 1), (12, 0)]  # in 8-byte units
    whole = dpkt.tcp.TCP(payload)
    assert whole.data == b"F" * 100
    assert len(ipv4_fragments(bytes(ip_of(sc.frames[0])), 8)) > 1
    with pytest.raises(ValueError):
        Scenario(client="[::1]:1", server="[::2]:2").send(CLI, b"x", ip_fragment=8)


def test_drop_and_inject() -> None:
    sc = Scenario()
    sc.handshake()
    lost = sc.drop(sc.send(CLI, b"first"))
    sc.send(CLI, b"second")
    late = sc.inject(lost)
    dup = sc.inject(late)
    assert [tcp_of(f).data for f in sc.frames[3:]] == [b"second", b"first", b"first"]
    assert late[0][2] == lost[0][2] == dup[0][2] and late[0][0] > lost[0][0]
    assert sc.frames[-1] is dup[0]
    with pytest.raises(ValueError):
        sc.drop(lost)


# ---- low-level helpers ------------------------------------------------------------------


def test_tcp_frame_helper_ipv4_and_ipv6() -> None:
    f4 = tcp_frame("1.1.1.1:1234", "2.2.2.2:80", flags="S", seq=7)
    assert len(f4) == 14 + 20 + 20
    f6 = tcp_frame("[2001:db8::1]:1234", "[2001:db8::2]:80", flags="SA", seq=7, ack=8, linktype=101)
    ip6 = dpkt.ip6.IP6(f6)
    assert ip6.nxt == 6 and ip6.data.seq == 7 and ip6.data.ack == 8
    assert l4_checksum_ok((0.0, 101, f6, len(f6)))
    with pytest.raises(ValueError):
        tcp_frame("1.1.1.1:1", "[::1]:2", flags="S", seq=0)
    with pytest.raises(ValueError):
        tcp_frame("1.1.1.1:1", "1.1.1.2:2", flags="S", seq=0, linktype=101, vlan=5)


def test_udp_and_arp_frames() -> None:
    for src, dst in (("10.0.0.1:53", "10.0.0.2:5353"), ("[2001:db8::1]:53", "[2001:db8::2]:9")):
        f = udp_frame(src, dst, b"query")
        frame = (0.0, 1, f, len(f))
        udp = ip_of(frame).data
        assert isinstance(udp, dpkt.udp.UDP) and udp.data == b"query"
        assert l4_checksum_ok(frame)
        bad = udp_frame(src, dst, b"query", bad_checksum=True)
        assert not l4_checksum_ok((0.0, 1, bad, len(bad)))
    arp = dpkt.ethernet.Ethernet(arp_frame("10.0.0.1", "10.0.0.2"))
    assert isinstance(arp.data, dpkt.arp.ARP) and arp.data.op == 1 and arp.dst == b"\xff" * 6
    reply = dpkt.ethernet.Ethernet(arp_frame("10.0.0.2", "10.0.0.1", op=2, vlan=9))
    assert reply.data.op == 2 and reply.vlan_tags[0].id == 9


def test_parse_endpoint_and_errors() -> None:
    addr, port = parse_endpoint("[2001:db8::1]:443")
    assert str(addr) == "2001:db8::1" and port == 443
    for bad in ("10.0.0.1", "10.0.0.1:x", "[::1]", "10.0.0.1:70000", "300.0.0.1:1"):
        with pytest.raises(ValueError):
            parse_endpoint(bad)
    with pytest.raises(ValueError):
        Scenario(client="10.0.0.1:1", server="[::1]:2")
    with pytest.raises(ValueError):
        Scenario(linktype=113, vlan=5)
    with pytest.raises(ValueError):
        Scenario(linktype=229)  # IPv4 addresses on raw IPv6
    with pytest.raises(ValueError):
        Scenario(linktype=147)
    with pytest.raises(ValueError):
        sack_option([])


# ---- pcap output --------------------------------------------------------------------------


def read_pcap(path: Path) -> tuple[int, int, list[tuple[float, bytes, int]]]:
    with open(path, "rb") as f:
        reader = dpkt.pcap.Reader(f)
        linktype, snaplen = reader.datalink(), reader.snaplen
        records = []
        for ts, buf in reader:
            records.append((float(ts), bytes(buf), 0))
    with open(path, "rb") as f:  # wire lengths from the record headers
        raw = f.read()
    pos, lens = 24, []
    while pos < len(raw):
        _s, _u, incl, orig = struct.unpack_from("<IIII", raw, pos)
        lens.append(orig)
        pos += 16 + incl
    return linktype, snaplen, [(ts, b, wl) for (ts, b, _), wl in zip(records, lens, strict=True)]


@pytest.mark.parametrize("variant", LINK_VARIANTS[:6], ids=lambda v: str(v["linktype"]))
def test_write_pcap_round_trip(tmp_path: Path, variant: dict[str, object]) -> None:
    sc = a_full_conversation(**variant)
    sc.send(CLI, b"B" * 500, snaplen=80)
    path = tmp_path / "case.pcap"
    sc.write_pcap(path)
    linktype, snaplen, records = read_pcap(path)
    assert linktype == variant["linktype"] and snaplen == 262144
    assert len(records) == len(sc.frames)
    for (ts, data, wire_len), frame in zip(records, sc.frames, strict=True):
        assert abs(ts - frame[0]) < 1e-6 and data == frame[2] and wire_len == frame[3]
    subset = tmp_path / "subset.pcap"
    sc.write_pcap(subset, sc.frames[:3])
    assert len(read_pcap(subset)[2]) == 3


def test_write_pcap_rejects_mixed_linktypes(tmp_path: Path) -> None:
    a = Scenario().syn()
    b = Scenario(linktype=101).syn()
    with pytest.raises(ValueError):
        write_pcap(tmp_path / "x.pcap", a + b)
    write_pcap(tmp_path / "empty.pcap", [], linktype=113)
    assert read_pcap(tmp_path / "empty.pcap")[:2] == (113, 262144)


def test_retime_and_merge_two_scenarios(tmp_path: Path) -> None:
    a = Scenario("10.0.0.1:1000", "10.0.0.2:80", t0=10.0)
    b = Scenario("10.0.0.3:2000", "10.0.0.2:80", t0=10.0005)
    a.handshake()
    b.handshake()
    merged = sorted(a.frames + b.frames)
    assert [tcp_of(f).sport for f in merged[:2]] == [1000, 2000]
    again = retime(reversed(merged), t0=5.0, step=0.25)
    assert [f[0] for f in again[:3]] == [5.0, 5.25, 5.5] and again[0][2] == merged[-1][2]
    write_pcap(tmp_path / "merged.pcap", merged)
    assert len(read_pcap(tmp_path / "merged.pcap")[2]) == 6


def test_checksum_known_value() -> None:
    # RFC 1071 example words 0x0001 0xf203 0xf4f5 0xf6f7 sum to 0xddf2 -> checksum 0x220d
    assert inet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


# ---- the committed synthetic captures --------------------------------------------------------


def test_synthetic_pcaps_are_up_to_date() -> None:
    """sample_pcaps/synthetic/ is what tests/make_synthetic_pcaps.py writes, byte for byte."""
    import make_synthetic_pcaps

    assert make_synthetic_pcaps.stale_files(make_synthetic_pcaps.OUT_DIR) == []
    manifest = (make_synthetic_pcaps.OUT_DIR / "manifest.json").read_text()
    for name in make_synthetic_pcaps.CAPTURES:
        assert f'"{name}.pcap"' in manifest
        linktype, _snaplen, records = read_pcap(make_synthetic_pcaps.OUT_DIR / f"{name}.pcap")
        assert records and all(not data or len(data) <= wl for _ts, data, wl in records)
        times = [ts for ts, _data, _wl in records]
        assert times == sorted(times), name


def test_timestamps_are_exactly_t0_plus_n_steps() -> None:
    sc = Scenario(t0=1_700_000_000.0, step=0.001)
    for _ in range(50):
        sc.send(CLI, b"x")
    assert [f[0] for f in sc.frames] == [1_700_000_000.0 + i * 0.001 for i in range(50)]


def test_who_is_validated() -> None:
    sc = Scenario()
    for bad in (-1, 2):
        with pytest.raises(ValueError):
            sc.send(bad, b"x")
        with pytest.raises(ValueError):
            sc.next_seq(bad)
    assert sc.frames == []
