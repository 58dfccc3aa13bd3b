"""The public face (mostool/monitor.py): the accessors shells use instead of the engine's
internals, the flow summary on_flow_end hooks get, socket options checked alike for listeners
and flows, and the sinks' once-per-raise helper."""

from __future__ import annotations

import errno
import json
from typing import Any

import pytest
from builders import CLI, SVR, Scenario, arp_frame
from harness import Observed

import mostool as mos
from mostool.monitor import FlowSummary
from mostool.sinks.select import once_per_raise


def _two_flows() -> list[Any]:
    a = Scenario()
    a.handshake()
    a.send(CLI, b"hello")
    b = Scenario("10.0.0.3:40001", "10.0.0.2:80", t0=a.t0 + 0.0005)
    b.handshake()
    b.send(SVR, b"world!")
    b.close()
    return sorted(a.frames + b.frames, key=lambda f: f[0])


def test_accessors_follow_the_run() -> None:
    mon = mos.Monitor()
    stream = mon.socket()
    raw = mon.socket(mos.MONITOR_RAW)
    assert mon.sockets() == [stream, raw]
    assert mon.sockets(mos.MONITOR_STREAM) == [stream]
    seen: list[tuple[int, int, int]] = []
    stream.on(mos.ON_CONN_START, mos.HK_RCV, lambda f, s, e: seen.append(
        (mon.packet_number, mon.active_flows, len(mon.open_flows()))))
    frames = _two_flows()
    for ts, linktype, data, _wire in frames:
        mon.feed(ts, linktype, data)
    assert mon.packet_number == len(frames)
    assert len(seen) == 2
    assert seen[0] == (1, 1, 1)                     # the first SYN: one flow open
    assert seen[1][1:] == (2, 2)
    assert mon.flows_total == 2
    assert mon.active_flows == 1 == len(mon.open_flows())     # the second one closed
    assert mon.open_flows()[0].client == "10.0.0.1:40000"
    assert mon.counters["packets"] == len(frames)
    assert mon.event_counts["ON_CONN_START"] == 2
    assert mon.callback_errors == 0
    raw.close()
    assert mon.sockets() == [stream]


def test_on_flow_end_hands_a_flow_summary() -> None:
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"GET / HTTP/1.0\r\n\r\n")
    sc.send(SVR, b"HTTP/1.0 200 OK\r\n\r\n")
    sc.close()
    mon = mos.Monitor()
    mon.socket()
    got: list[FlowSummary] = []
    mon.on_flow_end(got.append)
    mon.run(sc.frames)
    (summary,) = got
    assert summary.id == 1 and summary.ended and summary.end_reason == "fin"
    assert (summary.client, summary.server) == ("10.0.0.1:40000", "10.0.0.2:80")
    assert summary.client_port == 40000 and summary.server_port == 80
    assert summary.payload_bytes == [18, 19]
    assert summary.start <= summary.end_ts
    record = summary.record()
    assert record["c2s"]["bytes"] == 18 and record["s2c"]["bytes"] == 19
    assert json.loads(summary.record_json()) == record


@pytest.mark.parametrize(("name", "value", "code"), [
    (mos.SOCKOPT_RCVBUF_CLI, -1, errno.EINVAL),
    (mos.SOCKOPT_RCVBUF_SVR, "big", errno.EINVAL),
    (mos.SOCKOPT_OVERLAP_CLI, "middle", errno.EINVAL),
    ("no_such_option", 1, errno.ENOPROTOOPT),
])
def test_socket_options_are_checked_alike_on_listeners_and_flows(name: str, value: Any,
                                                                  code: int) -> None:
    sc = Scenario()
    sc.handshake()
    mon = mos.Monitor()
    sock = mon.socket()
    errors: list[int] = []
    with pytest.raises(mos.MosError) as exc:
        sock.setsockopt(name, value)
    errors.append(exc.value.errno)

    def try_on_flow(flow: mos.Flow, side: mos.Side, event: Any) -> None:
        try:
            flow.setsockopt(name, value)
        except mos.MosError as e:
            errors.append(e.errno)
    sock.on(mos.ON_CONN_START, mos.HK_RCV, try_on_flow)
    mon.run(sc.frames)
    assert errors == [code, code]


def test_stop_monitoring_is_for_flows_not_listeners() -> None:
    mon = mos.Monitor()
    with pytest.raises(mos.MosError) as exc:
        mon.socket().setsockopt(mos.SOCKOPT_STOP_MON, mos.BOTH)
    assert exc.value.errno == errno.EPERM


def test_once_per_raise_runs_a_shared_callback_once_per_raise() -> None:
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"abc")
    mon = mos.Monitor()
    calls: list[str] = []
    shared = once_per_raise(lambda f, s, e: calls.append(e.name))
    for _ in range(3):
        mon.socket().on(mos.ON_CONN_NEW_DATA, callback=shared)
    mon.run(sc.frames)
    assert calls == ["ON_CONN_NEW_DATA"]


def test_release_keeps_the_newest_chunk_only() -> None:
    sc = Scenario()
    sc.handshake()
    for part in (b"a" * 600, b"b" * 600, b"c" * 600):
        sc.send(CLI, part)
    mon = mos.Monitor(mos.MonitorConfig(rcvbuf=1 << 16))
    sock = mon.socket()
    held: list[list[tuple[int, int]]] = []

    def data(flow: mos.Flow, side: mos.Side, event: Any) -> None:
        flow.release(side)
        held.append(flow.frag_info(side))
    sock.on(mos.ON_CONN_NEW_DATA, callback=data)
    mon.run(sc.frames)
    assert held == [[(0, 600)], [(600, 600)], [(1200, 600)]]


def test_share_checks_its_arguments() -> None:
    with pytest.raises(mos.MosError):
        mos.Monitor().share(2, 2)


def test_the_harness_gives_the_joint_state_after_each_frame() -> None:
    sc = Scenario()
    sc.handshake()
    sc.drop(sc.send(CLI, b"lost"))
    sc.send(CLI, b"kept")
    obs = Observed()
    arp = (sc.frames[0][0] - 0.1, 1, arp_frame("10.0.0.1", "10.0.0.2"), 0)
    steps = [obs.step(frame) for frame in [arp, *sc.frames]]
    events, joint = steps[0]
    assert [e[3] for e in events] == ["ON_ORPHAN"] and joint is None
    events, joint = steps[-1]
    assert joint is not None and joint.states == ("ESTABLISHED", "ESTABLISHED")
    assert joint.nxt == (0, 0)                      # the server waits behind the hole ...
    assert joint.held[1] == ((4, 4),)               # ... with "kept" held out of order
    assert ("HK_RCV", "SVR", "ON_REXMIT") not in [(h, s, e) for _p, h, s, e, _d in events]
