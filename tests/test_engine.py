"""The engine (mostool/stack/engine.py): its counters, the one funnel every event passes, and
its entry points. Event order and per-event semantics are in test_events.py; the TCP table in
test_tcp_states.py; timers in test_timers.py."""

from __future__ import annotations

import inspect
from typing import Any

from builders import CLI, Scenario, arp_frame, udp_frame

import mostool as mos
from mostool.stack.engine import Engine


def test_non_tcp_frames_move_the_engine_counters() -> None:
    sc = Scenario()
    sc.handshake()
    t = sc.frames[0][0]
    frames: list[Any] = [(t - 0.2, 1, arp_frame("10.0.0.1", "10.0.0.2")),
              (t - 0.1, 1, udp_frame("10.0.0.1:5353", "10.0.0.53:53", b"query")), *sc.frames]
    mon = mos.Monitor()
    mon.socket()
    mon.run(frames)
    counters = mon.engine.counters
    assert counters["non_ip"] == 1
    assert counters["non_tcp"] == 1
    assert counters["orphans"] == 2
    assert counters["malformed"] == counters["unknown_linktype"] == 0


def test_a_malformed_frame_and_an_unknown_linktype_are_counted() -> None:
    sc = Scenario()
    sc.handshake()
    ts, linktype, frame, _wire = sc.frames[0]
    engine = Engine()
    engine.process(ts, linktype, frame[:30])            # cut inside the IPv4 header
    engine.process(ts, 9999, frame)
    assert engine.counters["malformed"] == 1
    assert engine.counters["unknown_linktype"] == 1
    assert engine.counters["orphans"] == 2


def test_raw_listener_events_are_counted() -> None:
    sc = Scenario()
    sc.handshake()
    mon = mos.Monitor()
    raw = mon.socket(mos.MONITOR_RAW)
    seen: list[Any] = []
    raw.on(mos.ON_PKT_IN, callback=lambda f, s, e: seen.append(e))
    mon.run(sc.frames)
    assert len(seen) == 3
    assert mon.engine.event_counts == {"ON_PKT_IN": 3}


def test_buffer_overflow_errors_are_counted() -> None:
    sc = Scenario()
    sc.handshake()
    for ch in b"ABC":
        sc.send(CLI, bytes([ch]) * 100)
    mon = mos.Monitor(mos.MonitorConfig(rcvbuf=150))
    sock = mon.socket()
    errors: list[Any] = []
    sock.on(mos.ON_ERROR, callback=lambda f, s, e: errors.append(e))
    mon.run(sc.frames)
    assert [e.kind for e in errors] == ["buffer_overflow"]
    assert mon.engine.event_counts.get("ON_ERROR") == 1


def test_every_delivered_event_is_counted_once_per_raise() -> None:
    # a callback on every built-in event at every hook: what event_counts says was raised is
    # what the callbacks saw, event by event (one raise reaches one listener here)
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"x" * 300)
    sc.close()
    frames: list[Any] = [(sc.frames[0][0] - 0.1, 1, arp_frame("10.0.0.1", "10.0.0.2")), *sc.frames]
    mon = mos.Monitor(mos.MonitorConfig(rcvbuf=100))
    sock = mon.socket()
    raw = mon.socket(mos.MONITOR_RAW)
    seen: dict[str, int] = {}

    def count(_flow: Any, _side: mos.Side, event: mos.Event) -> None:
        seen[event.name] = seen.get(event.name, 0) + 1
    for etype in mos.BUILTIN_EVENTS:
        for hook in etype.hooks:
            sock.on(etype, hook, count)
    raw.on(mos.ON_PKT_IN, callback=count)
    mon.run(frames)
    assert mon.engine.event_counts == seen


def test_process_takes_no_unused_argument() -> None:
    # the frame's bytes and the IP total length say what a snaplen cut: no wire length
    assert list(inspect.signature(Engine.process).parameters) == [
        "self", "ts", "linktype", "frame"]
