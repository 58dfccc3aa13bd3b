"""The engine's own counters and event counts, whatever route a frame or an event takes
(issue #11's two counting bugs: decode failures never counted, RAW and buffer-overflow
events never counted)."""

from __future__ import annotations

from builders import CLI, SVR, Scenario, arp_frame, udp_frame

import mostool as mos
from mostool.stack.engine import Engine


def test_decode_failures_are_counted_by_reason() -> None:
    eng = Engine()
    eng.process(1.0, 1, arp_frame("10.0.0.1", "10.0.0.2"), 0)
    eng.process(1.1, 1, udp_frame("10.0.0.1:53", "10.0.0.2:53", b"x"), 0)
    eng.process(1.2, 1, b"\x00" * 20, 20)                       # too short for Ethernet + IP
    eng.process(1.3, 9999, b"\x00" * 60, 60)                    # a link type nobody decodes
    counts = eng.counters
    assert counts["non_tcp"] == 1
    assert counts["non_ip"] + counts["malformed"] == 2           # ARP, and the short frame
    assert counts["unknown_linktype"] == 1
    assert counts["orphans"] == 4


def test_raw_listener_events_are_counted() -> None:
    mon = mos.Monitor()
    raw = mon.socket(mos.MONITOR_RAW)
    seen: list[int] = []
    raw.on(mos.ON_PKT_IN, callback=lambda flow, side, ev: seen.append(1))
    sc = Scenario()
    sc.handshake()
    frames = sc.frames
    mon.run(frames)
    assert len(seen) == len(frames)
    assert mon.engine.event_counts.get("ON_PKT_IN") == len(frames)


def test_buffer_overflow_errors_are_counted() -> None:
    mon = mos.Monitor(mos.MonitorConfig(rcvbuf=150))
    sock = mon.socket(mos.MONITOR_STREAM)
    errors: list[str] = []
    sock.on(mos.ON_ERROR, callback=lambda flow, side, ev: errors.append(ev.kind))
    sc = Scenario()
    sc.handshake()
    for ch in b"ABCDE":                 # nobody reads: the buffer overflows once, at C
        sc.send(CLI, bytes([ch]) * 100)
    sc.send(SVR, b"y" * 10)
    sc.close()
    mon.run(sc.frames)
    overflows = errors.count("buffer_overflow")
    assert overflows >= 1
    assert mon.engine.event_counts.get("ON_ERROR", 0) == len(errors)
