"""The engine (mostool/stack/engine.py) and the parts it calls in order: its own counts (every
event it raises is counted in ``event_counts`` whatever route it leaves by, every frame it cannot
track by reason in ``counters``), flow admission (``FlowTable.admit``, ``tcp.opening``), the byte
budget (``payload.MemoryBudget``), the record buffer flows refer to (``records.RecordRefs``) and
the clock (timers fire in packet time, in order, before the frame that passes them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from builders import CLI, SVR, Scenario, arp_frame, tcp_frame, udp_frame, write_pcap

import mostool as mos
from mostool.events.dispatch import SubscriptionRegistry
from mostool.replay import ReplaySource
from mostool.stack.decode import Decoder, TcpSegment
from mostool.stack.engine import Engine
from mostool.stack.flowtable import FlowTable
from mostool.stack.listener import STREAM, Listener
from mostool.stack.tcp import opening


def test_frames_the_engine_cannot_track_are_counted_by_reason() -> None:
    eng = Engine()
    eng.process(1.0, 1, arp_frame("10.0.0.1", "10.0.0.2"))
    eng.process(1.1, 1, udp_frame("10.0.0.1:5353", "10.0.0.53:53", b"query"))
    eng.process(1.2, 1, udp_frame("10.0.0.1:5353", "10.0.0.53:53", b"query")[:20])
    eng.process(1.3, 9999, b"\x00" * 40)
    counters = eng.counters
    assert (counters["non_ip"], counters["non_tcp"], counters["malformed"],
            counters["unknown_linktype"]) == (1, 1, 1, 1)
    assert counters["orphans"] == 4
    decoded = eng.decoder.stats()
    assert (decoded["not_ip"], decoded["not_tcp"]) == (1, 1)


def test_events_to_raw_listeners_are_counted() -> None:
    mon = mos.Monitor()
    raw = mon.socket(mos.MONITOR_RAW)
    seen: list[int] = []
    raw.on(mos.ON_PKT_IN, callback=lambda f, s, e: seen.append(1))
    mon.run([(1.0, 1, arp_frame("10.0.0.1", "10.0.0.2"), 60)])
    assert seen == [1]
    assert mon.engine.event_counts == {"ON_PKT_IN": 1}


def test_buffer_overflow_errors_are_counted() -> None:
    sc = Scenario()
    sc.handshake()
    for ch in b"ABCDE":
        sc.send(CLI, bytes([ch]) * 100)
    sc.close()
    mon = mos.Monitor(mos.MonitorConfig(rcvbuf=150))
    sock = mon.socket()
    kinds: list[str] = []
    sock.on(mos.ON_ERROR, callback=lambda f, s, e: kinds.append(e.kind))
    mon.run(sc.frames)
    assert kinds == ["buffer_overflow"]
    assert mon.engine.event_counts["ON_ERROR"] == 1


def test_every_delivered_event_is_counted_once_per_raise() -> None:
    """Counting at the funnel agrees with what one callback on every event sees (a single
    handle: one delivery per raise)."""
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"GET / HTTP/1.0\r\n\r\n")
    sc.close()
    frames = [(sc.t0 - 0.1, 1, arp_frame("10.0.0.1", "10.0.0.2"), 60)] + sc.frames
    mon = mos.Monitor()
    sock = mon.socket()
    got: dict[str, int] = {}

    def count(flow: Any, side: mos.Side, event: mos.Event) -> None:
        got[event.name] = got.get(event.name, 0) + 1
    for etype in mos.BUILTIN_EVENTS:
        for hook in etype.hooks:
            sock.on(etype, hook, count)
    mon.run(frames)
    assert mon.engine.event_counts == got


def test_wire_length_beyond_the_capture_is_counted(tmp_path: Path) -> None:
    """``process(..., wire_len)``: a frame captured shorter than it was on the wire is cut by
    the snaplen, counted the same by the frame pipeline and by the in-place record reader."""
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"x" * 400, snaplen=100)
    sc.send(CLI, b"y" * 400)
    sc.close()
    eng = Engine()
    for ts, lt, data, wire_len in sc.frames:
        eng.process(ts, lt, data, wire_len)
    assert eng.counters["snaplen_cut"] == 1
    pcap = tmp_path / "cut.pcap"
    write_pcap(pcap, sc.frames)
    for source in (ReplaySource(pcap), list(sc.frames)):
        mon = mos.Monitor()
        mon.socket()
        assert mon.run(source)["snaplen_cut"] == 1


# -- admission: a segment no flow has ----------------------------------------------------------


def _segment(flags: str, src: str = "10.0.0.1:40000", dst: str = "10.0.0.2:80") -> TcpSegment:
    seg = Decoder().decode(1, tcp_frame(src, dst, flags=flags, seq=1, ack=0), 1.0)
    assert isinstance(seg, TcpSegment)
    return seg


def _listener(syn: Any = None) -> Listener:
    lst = Listener(STREAM, SubscriptionRegistry())
    lst.syn_match = syn
    return lst


def test_admit_names_the_listeners_or_the_orphan_reason() -> None:
    table = FlowTable(max_flows=10, midstream=False)
    everyone, nobody = _listener(), _listener(lambda lt, frame: False)
    assert table.admit(_segment("S"), [everyone, nobody], 1.0) == [everyone]
    assert table.admit(_segment("S"), [nobody], 1.0) == "filtered"
    assert table.admit(_segment("S"), [], 1.0) == "no_listener"
    assert table.admit(_segment("A"), [everyone], 1.0) == "no_flow"     # no midstream pickup
    midstream = FlowTable(max_flows=10, midstream=True)
    assert midstream.admit(_segment("A"), [everyone], 1.0) == [everyone]
    assert midstream.admit(_segment("R"), [everyone], 1.0) == "no_flow"


def test_opening_states_of_a_flow_by_its_first_segment() -> None:
    assert opening(_segment("S")) == (True, None)                       # a handshake to follow
    assert opening(_segment("SA", "10.0.0.2:80", "10.0.0.1:40000")) == (
        False, [mos.TcpState.SYN_SENT, mos.TcpState.LISTEN])            # its sender serves
    client_is_sender, states = opening(_segment("A"))                   # the lower port serves
    assert client_is_sender and states == [mos.TcpState.ESTABLISHED] * 2
    assert opening(_segment("A", "10.0.0.2:80", "10.0.0.1:40000"))[0] is False


def test_a_stray_ack_after_a_close_is_an_orphan_with_midstream() -> None:
    sc = Scenario()
    sc.handshake()
    sc.close()
    last = sc.frames[-1]
    frames = sc.frames + [(last[0] + 1.0, last[1], last[2], last[3])]   # the last ACK again
    mon = mos.Monitor(mos.MonitorConfig(midstream=True, time_wait=0.5))
    sock = mon.socket()
    orphans: list[str] = []
    sock.on(mos.ON_ORPHAN, callback=lambda f, s, e: orphans.append(e.reason))
    stats = mon.run(frames)
    assert orphans == ["after_close"]
    assert stats["after_close"] == 1 and stats["flows"] == 1


# -- the byte budget ---------------------------------------------------------------------------


def test_the_flow_that_crosses_the_byte_budget_gives_up_its_buffer() -> None:
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"a" * 300)
    sc.send(SVR, b"b" * 300)
    sc.close()
    mon = mos.Monitor(mos.MonitorConfig(max_buffered_bytes=400))
    sock = mon.socket()
    kinds: list[tuple[str, str]] = []
    sock.on(mos.ON_ERROR, callback=lambda f, s, e: kinds.append((s.name, e.kind)))
    stats = mon.run(sc.frames)
    assert ("CLI", "memory_limit") in kinds          # the server's reply crossed the limit
    assert stats["memory_limit"] == 1
    assert stats["held_bytes"] == 0                  # every flow ended: nothing held
    assert mon.engine.budget.held == 0


# -- the record buffer flows refer to ----------------------------------------------------------


def test_a_last_packet_read_in_place_is_decoded_again_when_asked(tmp_path: Path) -> None:
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"x" * 100)
    sc.send(CLI, b"y" * 100)
    pcap = tmp_path / "open.pcap"
    write_pcap(pcap, sc.frames)
    mon = mos.Monitor()
    sock = mon.socket()
    seen: list[tuple[bool, int, bytes]] = []

    def ended(flow: mos.Flow, side: mos.Side, event: mos.Event) -> None:
        by_offset = flow.conn.last_seg is None and flow.conn.last_off >= 0
        pkt = flow.last_packet()
        seen.append((by_offset, pkt.seq, pkt.payload))

    sock.on(mos.ON_CONN_END, callback=ended)
    mon.run(ReplaySource(pcap))
    # the flow's last packet was taken in place (a record offset), decoded again when asked
    assert seen == [(True, (sc.isn(CLI) + 101) & 0xFFFFFFFF, b"y" * 100)]


# -- the clock ---------------------------------------------------------------------------------


def test_timers_fire_in_packet_time_before_the_frame_that_passes_them() -> None:
    sc = Scenario(step=1.0)
    sc.handshake()
    eng = Engine()
    fired: list[tuple[str, float, int]] = []
    eng.settimer(2.5, lambda tid: fired.append(("late", eng.now, eng.packet_number)))
    eng.settimer(0.5, lambda tid: fired.append(("early", eng.now, eng.packet_number)))
    for ts, lt, data, wire in sc.frames:
        eng.process(ts, lt, data, wire)
    t0 = sc.frames[0][0]
    # timers count from the first frame and fire with the clock at their deadline, before the
    # frame that passes it is handled (its number is already counted) or at advance()
    assert fired == [("early", t0 + 0.5, 2)]
    eng.advance(t0 + 3.0)
    assert fired[1:] == [("late", t0 + 2.5, 3)]
    assert eng.now == t0 + 3.0
