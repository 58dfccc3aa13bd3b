"""The engine's own counts: every event it raises is counted in ``event_counts`` whatever route it
leaves by (flow hooks, RAW listeners, orphans, buffer overflow, flow end), and every frame it
cannot track is counted by reason in ``counters``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from builders import CLI, Scenario, arp_frame, udp_frame, write_pcap

import mostool as mos
from mostool.replay import ReplaySource
from mostool.stack.engine import Engine


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
