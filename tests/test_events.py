"""Built-in events: which hook and side each arrives with, their order within a packet, who gets
them (listener order, orphan and raw filters), how flows end, and the deterministic trace.

What is asserted here is what the top of mostool/events/types.py documents.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from builders import CLI, SVR, Frame, Scenario, arp_frame, udp_frame
from pair import Pair

import mostool as mos
from mostool.cli import main as cli_main


def monitor(config: mos.MonitorConfig | None = None, **filters: str
            ) -> tuple[mos.Monitor, mos.MonitorSocket, Pair]:
    pair = Pair(config, **filters)
    return pair.mon, pair.sock, pair


def run(frames: list[Frame], config: mos.MonitorConfig | None = None, **filters: str
        ) -> tuple[mos.Monitor, Pair]:
    mon, _, rec = monitor(config, **filters)
    mon.run(frames)
    return mon, rec


# --------------------------------------------------------------------------------------------
# hook, side and order per event
# --------------------------------------------------------------------------------------------


def test_pkt_in_at_hk_snd_for_the_sender_and_hk_rcv_for_the_receiver() -> None:
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"ping")
    sc.send(SVR, b"pong")
    _, rec = run(sc.frames)
    pkt_in = [(p, h, s) for p, h, s, e, _ in rec.log if e == "ON_PKT_IN"]
    senders = ["CLI", "SVR", "CLI", "CLI", "SVR"]
    expected = []
    for i, snd in enumerate(senders, 1):
        rcv = "SVR" if snd == "CLI" else "CLI"
        expected += [(i, "HK_SND", snd), (i, "HK_RCV", rcv)]
    assert pkt_in == expected


def test_order_within_the_first_syn() -> None:
    sc = Scenario()
    sc.syn()
    _, rec = run(sc.frames)
    assert rec.at(1) == [
        ("HK_SND", "CLI", "ON_PKT_IN"),
        ("HK_SND", "CLI", "ON_CONN_START"),
        ("HK_SND", "CLI", "ON_TCP_STATE_CHANGE"),
        ("HK_RCV", "SVR", "ON_PKT_IN"),
        ("HK_RCV", "SVR", "ON_CONN_START"),
        ("HK_RCV", "SVR", "ON_TCP_STATE_CHANGE"),
        ("HK_SND", "CLI", "ON_CONN_END"),     # end of capture: eof, HK_SND CLI, HK_RCV SVR
        ("HK_RCV", "SVR", "ON_CONN_END"),
    ]
    # the SND-hook change is the client's, the RCV-hook change the server's
    assert [r[4] for r in rec.of("ON_TCP_STATE_CHANGE")] == [
        {"old": "LISTEN", "new": "SYN_SENT"}, {"old": "LISTEN", "new": "SYN_RCVD"}]
    assert [r[4] for r in rec.of("ON_CONN_END")] == [{"reason": "eof"}] * 2
    # at HK_SND only the sender has moved
    assert rec.states[:3] == [("SYN_SENT", "LISTEN")] * 3
    assert rec.states[3:6] == [("SYN_SENT", "SYN_RCVD")] * 3


def test_order_within_a_packet_with_everything() -> None:
    """A client retransmission that differs from the first copy, extends the stream and carries
    the FIN: REXMIT (HK_RCV, before the receiver's update), then the receiver's PKT_IN and state
    change, then NULL: ERROR, then NEW_DATA."""
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"abcdef")
    c, s = sc.next_seq(CLI), sc.next_seq(SVR)
    sc.raw(CLI, flags="FPA", seq=c - 6, ack=s, data=b"abXdefGHI")   # 6 old (1 differs) + 3 new
    sc.ack(SVR)
    mon, sock, rec = monitor()
    state_at_rexmit: list[str] = []
    sock.on(mos.ON_REXMIT, callback=lambda f, side, e: state_at_rexmit.append(
        f.state(side).name))
    mon.run(sc.frames)
    assert rec.at(5) == [
        ("HK_SND", "CLI", "ON_PKT_IN"),
        ("HK_SND", "CLI", "ON_TCP_STATE_CHANGE"),
        ("HK_RCV", "SVR", "ON_REXMIT"),
        ("HK_RCV", "SVR", "ON_PKT_IN"),
        ("HK_RCV", "SVR", "ON_TCP_STATE_CHANGE"),
        ("NULL", "SVR", "ON_ERROR"),
        ("NULL", "SVR", "ON_CONN_NEW_DATA"),
    ]
    details = {e: d for p, _h, _s, e, d in rec.log if p == 5}
    assert details["ON_REXMIT"] == {"offset": 0, "length": 6}
    assert details["ON_ERROR"] == {"kind": "overlap_conflict", "offset": 2, "length": 1}
    assert details["ON_CONN_NEW_DATA"] == {"offset": 6, "length": 3}
    assert state_at_rexmit == ["ESTABLISHED"]              # before the receiver's update
    assert rec.states[rec.log.index((5, "HK_RCV", "SVR", "ON_PKT_IN", {}))] == (
        "FIN_WAIT_1", "CLOSE_WAIT")


def test_rexmit_only_at_hk_rcv_with_the_receiving_side() -> None:
    sc = Scenario()
    sc.handshake()
    sc.send(SVR, b"hello world")
    sc.send(SVR, b"hello", seq_offset=0)
    _, rec = run(sc.frames)
    assert [(p, h, s, d) for p, h, s, _e, d in rec.of("ON_REXMIT")] == [
        (5, "HK_RCV", "CLI", {"offset": 0, "length": 5})]
    assert mos.ON_REXMIT.hooks == (mos.HK_RCV,)


def test_new_data_at_null_with_the_receiving_side() -> None:
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"12345")
    sc.send(SVR, b"abc")
    sc.send(CLI, b"678")
    _, rec = run(sc.frames)
    assert [(p, h, s, d) for p, h, s, _e, d in rec.of("ON_CONN_NEW_DATA")] == [
        (4, "NULL", "SVR", {"offset": 0, "length": 5}),
        (5, "NULL", "CLI", {"offset": 0, "length": 3}),
        (6, "NULL", "SVR", {"offset": 5, "length": 3}),
    ]


def test_new_data_waits_for_the_hole_and_covers_all_that_became_in_order() -> None:
    sc = Scenario()
    sc.handshake()
    lost = sc.drop(sc.send(CLI, b"AAAA"))
    sc.send(CLI, b"BBBB")
    sc.send(CLI, b"CCCC")
    sc.inject(lost)
    _, rec = run(sc.frames)
    assert [(p, d) for p, _h, _s, _e, d in rec.of("ON_CONN_NEW_DATA")] == [
        (6, {"offset": 0, "length": 12})]


def test_overlap_conflict_error() -> None:
    sc = Scenario()
    sc.handshake()
    lost = sc.drop(sc.send(CLI, b"0123"))
    sc.send(CLI, b"4567")
    sc.send(CLI, b"45X7", seq_offset=4)          # conflicts with bytes waiting out of order
    sc.inject(lost)
    _, rec = run(sc.frames)
    assert [(p, h, s, d) for p, h, s, _e, d in rec.of("ON_ERROR")] == [
        (5, "NULL", "SVR", {"kind": "overlap_conflict", "offset": 6, "length": 1})]
    assert [(p, s) for p, _h, s, _e, _d in rec.of("ON_REXMIT")] == [(5, "SVR")]


def test_gap_and_late_data_errors() -> None:
    sc = Scenario()
    sc.handshake()
    lost = sc.drop(sc.send(SVR, b"lost bytes"))   # never captured
    sc.send(SVR, b"after")
    sc.ack(CLI)                                     # the client has them: a gap now
    sc.inject(lost)                                 # ... and here they come, too late
    sc.drop(sc.send(SVR, b"hole2"))
    sc.send(SVR, b"waiting")                        # still behind a hole at the end
    _, rec = run(sc.frames)
    assert rec.at(5) == [("HK_SND", "CLI", "ON_PKT_IN"), ("HK_RCV", "SVR", "ON_PKT_IN"),
                         ("NULL", "CLI", "ON_ERROR"), ("NULL", "CLI", "ON_CONN_NEW_DATA")]
    assert rec.at(6)[-1] == ("NULL", "CLI", "ON_ERROR")
    assert rec.at(7) == [("HK_SND", "SVR", "ON_PKT_IN"), ("HK_RCV", "CLI", "ON_PKT_IN"),
                         ("NULL", "CLI", "ON_ERROR"), ("NULL", "CLI", "ON_CONN_NEW_DATA"),
                         ("HK_SND", "CLI", "ON_CONN_END"), ("HK_RCV", "SVR", "ON_CONN_END")]
    assert [(p, d) for p, _h, _s, _e, d in rec.of("ON_ERROR")] == [
        (5, {"kind": "gap", "offset": 0, "length": 10}),
        (6, {"kind": "late_data", "offset": 0, "length": 10}),
        (7, {"kind": "gap", "offset": 15, "length": 5}),      # given up at the end
    ]
    assert [d for *_x, d in rec.of("ON_CONN_NEW_DATA")] == [
        {"offset": 10, "length": 5}, {"offset": 20, "length": 7}]


def test_conn_start_for_a_midstream_flow_on_its_first_packet() -> None:
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"late")
    sc.send(SVR, b"pickup")
    frames = sc.frames[3:]
    _, rec = run(frames, mos.MonitorConfig(midstream=True))
    assert rec.at(1) == [("HK_SND", "CLI", "ON_PKT_IN"), ("HK_SND", "CLI", "ON_CONN_START"),
                         ("HK_RCV", "SVR", "ON_PKT_IN"), ("HK_RCV", "SVR", "ON_CONN_START"),
                         ("NULL", "SVR", "ON_CONN_NEW_DATA")]
    assert len(rec.of("ON_CONN_START")) == 2


def test_conn_start_once_per_hook_for_a_flow_picked_up_at_the_synack() -> None:
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"q")
    _, rec = run(sc.frames[1:], mos.MonitorConfig(midstream=True))
    assert rec.at(1) == [
        ("HK_SND", "SVR", "ON_PKT_IN"), ("HK_SND", "SVR", "ON_CONN_START"),
        ("HK_SND", "SVR", "ON_TCP_STATE_CHANGE"),
        ("HK_RCV", "CLI", "ON_PKT_IN"), ("HK_RCV", "CLI", "ON_CONN_START"),
        ("HK_RCV", "CLI", "ON_TCP_STATE_CHANGE"),
    ]
    assert len(rec.of("ON_CONN_START")) == 2


# --------------------------------------------------------------------------------------------
# orphans
# --------------------------------------------------------------------------------------------


def _mixed_frames() -> tuple[list[Frame], Scenario]:
    sc = Scenario()
    t = sc.t0
    extra = [
        (t - 0.3, 1, arp_frame("10.0.0.1", "10.0.0.2")),
        (t - 0.2, 1, udp_frame("10.0.0.1:5353", "10.0.0.53:53", b"query")),
    ]
    sc.handshake()
    sc.send(CLI, b"GET /")
    sc.close()
    stray = Scenario("10.0.0.9:50000", "10.0.0.2:443", t0=sc.now)
    stray.send(CLI, b"no handshake", seq_offset=100)     # non-SYN of no flow
    stray.syn()                                           # a SYN to port 443
    frames = [(ts, lt, data, len(data)) for ts, lt, data in extra] + sc.frames + stray.frames
    return frames, sc


def test_orphans_without_filters() -> None:
    frames, _ = _mixed_frames()
    mon, rec = run(frames)
    orphans = [(p, h, s, d["reason"]) for p, h, s, _e, d in rec.of("ON_ORPHAN")]
    assert orphans == [(1, "NULL", "BOTH", "non_ip"), (2, "NULL", "BOTH", "non_tcp"),
                       (11, "NULL", "BOTH", "no_flow")]
    assert {fid for r, fid in zip(rec.log, rec.flow_ids, strict=True)
            if r[3] == "ON_ORPHAN"} == {0}
    assert mon.engine.counters["orphans"] == 3
    assert mon.flows_total == 2          # the port-443 SYN starts a flow


def test_orphans_with_a_syn_filter() -> None:
    frames, _ = _mixed_frames()
    mon, rec = run(frames, syn="tcp port 80")
    orphans = [(p, d["reason"]) for p, _h, _s, _e, d in rec.of("ON_ORPHAN")]
    assert orphans == [(1, "non_ip"), (2, "non_tcp"), (11, "no_flow"), (12, "filtered")]
    assert mon.flows_total == 1


def test_orphan_filter_selects_orphans() -> None:
    frames, _ = _mixed_frames()
    _, rec = run(frames, syn="tcp port 80", orphan="udp or tcp port 443")
    assert [(p, d["reason"]) for p, _h, _s, _e, d in rec.of("ON_ORPHAN")] == [
        (2, "non_tcp"), (11, "no_flow"), (12, "filtered")]


def test_orphan_handle_gives_the_frame() -> None:
    frames, _ = _mixed_frames()
    mon = mos.Monitor()
    sock = mon.socket()
    seen: list[Any] = []

    def orphan(handle: Any, side: mos.Side, event: Any) -> None:
        pkt = handle.last_packet()
        seen.append((event.reason, type(pkt).__name__,
                     pkt.dst if isinstance(pkt, mos.PacketInfo) else pkt[0]))
    sock.on(mos.ON_ORPHAN, callback=orphan)

    mon.run(frames)
    assert seen == [("non_ip", "tuple", 1), ("non_tcp", "tuple", 1),
                    ("no_flow", "PacketInfo", "10.0.0.2:443")]


# --------------------------------------------------------------------------------------------
# how flows end: CONN_END once per subscription, with its reason
# --------------------------------------------------------------------------------------------


def _ends(rec: Pair) -> list[tuple[str, str, str]]:
    return [(h, s, d["reason"]) for _p, h, s, _e, d in rec.of("ON_CONN_END")]


def test_conn_end_fin_and_rst() -> None:
    sc = Scenario()
    sc.handshake()
    sc.close()
    _, rec = run(sc.frames)
    assert _ends(rec) == [("HK_SND", "CLI", "fin"), ("HK_RCV", "SVR", "fin")]
    sc = Scenario()
    sc.handshake()
    sc.rst(SVR)
    _, rec = run(sc.frames)
    assert _ends(rec) == [("HK_SND", "SVR", "rst"), ("HK_RCV", "CLI", "rst")]


def test_timeout_then_conn_end() -> None:
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"a")
    last = sc.frames[-1][0]
    sc.advance(100.0)
    sc.send(CLI, b"b")                           # after the timeout: no flow any more
    mon, sock, rec = monitor(mos.MonitorConfig(idle_timeout=30.0))
    clock: list[float] = []
    sock.on(mos.ON_TIMEOUT, callback=lambda f, s, e: clock.append(mon.now))
    mon.run(sc.frames)
    tail = [(h, s, e) for _p, h, s, e, _d in rec.log if e in ("ON_TIMEOUT", "ON_CONN_END")]
    assert tail == [("NULL", "BOTH", "ON_TIMEOUT"), ("HK_SND", "CLI", "ON_CONN_END"),
                    ("HK_RCV", "SVR", "ON_CONN_END")]
    assert rec.of("ON_TIMEOUT")[0][4] == {"idle": 30.0}
    assert _ends(rec)[0][2] == "timeout"
    assert clock == [last + 30.0]
    assert [d["reason"] for *_x, d in rec.of("ON_ORPHAN")] == ["no_flow"]
    assert mon.engine.counters["timeouts"] == 1


def test_conn_end_eof() -> None:
    sc = Scenario()
    sc.handshake()
    _, rec = run(sc.frames)
    assert _ends(rec) == [("HK_SND", "CLI", "eof"), ("HK_RCV", "SVR", "eof")]


def test_conn_end_evicted_at_max_flows() -> None:
    frames: list[Frame] = []
    t = 1_700_000_000.0
    for i in range(3):
        sc = Scenario(f"10.0.0.{10 + i}:4000", "10.0.0.2:80", t0=t)
        sc.handshake()
        frames += sc.frames
        t = sc.now
    mon, rec = run(frames, mos.MonitorConfig(max_flows=2))
    ends = [(fid, r[0], r[4]["reason"]) for r, fid in zip(rec.log, rec.flow_ids, strict=True)
            if r[3] == "ON_CONN_END"]
    assert ends == [(1, 7, "evicted"), (1, 7, "evicted"), (2, 9, "eof"), (2, 9, "eof"),
                    (3, 9, "eof"), (3, 9, "eof")]
    assert mon.engine.counters["evicted"] == 1


def test_conn_end_stopped_by_monitor_stop() -> None:
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"x")
    sc.send(CLI, b"y")
    mon, sock, rec = monitor()
    sock.on(mos.ON_CONN_NEW_DATA, callback=lambda f, s, e: mon.stop())
    mon.run(sc.frames)
    assert _ends(rec) == [("HK_SND", "CLI", "stopped"), ("HK_RCV", "SVR", "stopped")]
    assert mon.engine.packet_number == 4         # the run stopped after the current packet


def test_conn_end_stopped_by_stop_monitoring() -> None:
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"x")
    sc.send(CLI, b"y")
    sc.close()
    mon, sock, rec = monitor()
    records: list[dict[str, Any]] = []
    mon.on_flow_end(lambda conn: records.append(conn.record()))
    sock.on(mos.ON_CONN_NEW_DATA, callback=lambda f, s, e: f.stop_monitoring())
    mon.run(sc.frames)
    assert _ends(rec) == [("HK_SND", "CLI", "stopped"), ("HK_RCV", "SVR", "stopped")]
    assert [r[0] for r in rec.of("ON_CONN_END")] == [4, 4]
    flow_events = [r for r, fid in zip(rec.log, rec.flow_ids, strict=True) if fid]
    assert max(r[0] for r in flow_events) == 4   # nothing of the flow after it
    assert [r["end_reason"] for r in records] == ["stopped"]


def test_conn_end_once_per_subscription() -> None:
    sc = Scenario()
    sc.handshake()
    sc.close()
    mon = mos.Monitor()
    sock = mon.socket()
    calls: list[str] = []

    def a(flow: mos.Flow, side: mos.Side, event: Any) -> None:
        calls.append(f"a:{event.hook.name}")

    def b(flow: mos.Flow, side: mos.Side, event: Any) -> None:
        calls.append(f"b:{event.hook.name}")

    sock.on(mos.ON_CONN_END, callback=a)                 # default hook: HK_RCV
    sock.on(mos.ON_CONN_END, mos.HK_SND, b)
    sock.on(mos.ON_CONN_END, callback=a)                 # the same registration again
    mon.run(sc.frames)
    assert sorted(calls) == ["a:HK_RCV", "b:HK_SND"]


# --------------------------------------------------------------------------------------------
# several listeners, raw listeners
# --------------------------------------------------------------------------------------------


def test_two_listeners_chain_order_and_separate_state() -> None:
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"request!")
    sc.send(SVR, b"response")
    mon = mos.Monitor()
    first, second = mon.socket(), mon.socket()
    order: list[tuple[int, str, str]] = []
    contexts: dict[str, Any] = {}

    def make(name: str) -> Any:
        def cb(flow: mos.Flow, side: mos.Side, event: mos.Event) -> None:
            order.append((mon.engine.packet_number, event.hook.name, name))
            if event.type is mos.ON_CONN_START and event.hook == mos.HK_SND:
                flow.uctx = {"owner": name}
            if event.type is mos.ON_CONN_NEW_DATA:
                got = flow.peek(side, 3 if name == "first" else 100)
                contexts.setdefault(name, []).append((flow.uctx["owner"], side.name, got))
        return cb

    for sock, name in ((first, "first"), (second, "second")):
        cb = make(name)
        for hook in (mos.HK_SND, mos.HK_RCV):
            sock.on(mos.ON_PKT_IN, hook, cb)
            sock.on(mos.ON_CONN_START, hook, cb)
        sock.on(mos.ON_CONN_NEW_DATA, callback=cb)
    mon.run(sc.frames)
    by_packet: dict[int, list[str]] = {}
    for p, hook_name, name in order:
        if hook_name == "HK_SND":
            by_packet.setdefault(p, []).append(name)
    assert by_packet[1][:2] == ["first", "second"]          # client SYN: registration order
    assert by_packet[2] == ["second", "first"]              # server SYN/ACK: reverse
    assert by_packet[4] == ["first", "second"]
    assert by_packet[5] == ["second", "first"]
    assert contexts == {
        "first": [("first", "SVR", b"req"), ("first", "CLI", b"res")],
        "second": [("second", "SVR", b"request!"), ("second", "CLI", b"response")],
    }


def test_two_listeners_get_distinct_handles() -> None:
    sc = Scenario()
    sc.handshake()
    mon = mos.Monitor()
    handles: dict[str, mos.Flow] = {}

    def keep(name: str) -> Any:
        return lambda f, s, e: handles.setdefault(name, f)

    for name in ("a", "b"):
        mon.socket().on(mos.ON_CONN_START, callback=keep(name))
    mon.run(sc.frames)
    assert handles["a"] is not handles["b"]
    assert handles["a"].id == handles["b"].id == 1
    assert handles["a"].conn is handles["b"].conn


def test_one_raise_is_one_event_object_for_every_listener() -> None:
    # the sinks tell one raise seen through several listeners by identity (`event is last`)
    sc = Scenario()
    sc.handshake()
    mon = mos.Monitor()
    seen: dict[str, list[mos.Event]] = {"a": [], "b": []}
    for name in ("a", "b"):
        mon.socket().on(mos.ON_PKT_IN, mos.HK_RCV, lambda f, s, e, n=name: seen[n].append(e))
    mon.run(sc.frames)
    assert len(seen["a"]) == 3
    assert all(x is y for x, y in zip(seen["a"], seen["b"], strict=True))
    assert len({id(e) for e in seen["a"]}) == 3        # a new object per raise ...
    assert seen["a"][0] == mos.PktIn(mos.HK_RCV)      # ... equal as values
    assert mon.engine.event_counts == {"ON_PKT_IN": 3}


def test_events_kept_by_a_callback_stay_as_they_were_raised() -> None:
    # the engine hands out a spare ON_PKT_IN / ON_CONN_NEW_DATA value again only while nobody
    # holds the last one (stack/emit.py): what a callback keeps is never reused or renewed
    sc = Scenario()
    sc.handshake()
    for i in range(8):
        sc.send(CLI if i % 3 else SVR, bytes([65 + i]) * (10 + i))
    mon = mos.Monitor()
    kept: list[tuple[mos.Event, tuple[Any, ...]]] = []
    raised: list[tuple[Any, ...]] = []

    def keep_some(flow: Any, side: Any, event: Any) -> None:
        fields = (type(event).__name__, event.hook, *event.details().values())
        raised.append(fields)
        if len(raised) % 2:
            kept.append((event, fields))

    sock = mon.socket()
    sock.on(mos.ON_PKT_IN, mos.HK_RCV, keep_some)
    sock.on(mos.ON_CONN_NEW_DATA, callback=keep_some)
    mon.run(sc.frames)
    assert len(raised) == 3 + 8 + 8
    sent = [0, 0]                           # per sender: the stream offset reached
    expected = []
    for i in range(8):
        who = CLI if i % 3 else SVR
        expected.append(("ConnNewData", mos.Hook.NULL, sent[who], 10 + i))
        sent[who] += 10 + i
    assert [e for e in raised if e[0] == "ConnNewData"] == expected
    assert len({id(e) for e, _ in kept}) == len(kept)
    for event, fields in kept:
        assert (type(event).__name__, event.hook, *event.details().values()) == fields


def test_raw_listener_with_a_raw_filter() -> None:
    frames, _ = _mixed_frames()
    mon = mos.Monitor()
    raw = mon.socket(mos.MONITOR_RAW)
    raw.bind_filter(raw="udp or arp or tcp port 443")
    seen: list[tuple[int, str, str, str]] = []
    raw.on(mos.ON_PKT_IN, callback=lambda f, s, e: seen.append(
        (mon.engine.packet_number, e.hook.name, s.name, e.name)))
    mon.run(frames)
    assert seen == [(p, "NULL", "BOTH", "ON_PKT_IN") for p in (1, 2, 11, 12)]


def test_raw_listener_without_filter_sees_every_frame() -> None:
    frames, _ = _mixed_frames()
    mon = mos.Monitor()
    raw = mon.socket(mos.MONITOR_RAW)
    seen: list[int] = []
    raw.on(mos.ON_PKT_IN, callback=lambda f, s, e: seen.append(mon.engine.packet_number))
    mon.run(frames)
    assert seen == list(range(1, len(frames) + 1))


def test_raw_listener_refuses_other_events() -> None:
    mon = mos.Monitor()
    raw = mon.socket(mos.MONITOR_RAW)
    with pytest.raises(mos.MosError) as exc:
        raw.on(mos.ON_CONN_START, callback=lambda f, s, e: None)
    assert exc.value.errno == 22


def test_events_are_refused_at_hooks_they_do_not_have() -> None:
    mon = mos.Monitor()
    sock = mon.socket()
    for etype, hook in ((mos.ON_CONN_NEW_DATA, mos.HK_RCV), (mos.ON_REXMIT, mos.HK_SND),
                        (mos.ON_CONN_START, mos.NULL), (mos.ON_CONN_END, mos.NULL),
                        (mos.ON_ORPHAN, mos.HK_SND), (mos.ON_TIMEOUT, mos.HK_RCV)):
        with pytest.raises(mos.MosError):
            sock.on(etype, hook, lambda f, s, e: None)


# --------------------------------------------------------------------------------------------
# the deterministic trace (mostool events)
# --------------------------------------------------------------------------------------------

_SAMPLES = Path(__file__).resolve().parents[1] / "sample_pcaps"
SAMPLE_PCAPS = sorted(_SAMPLES.glob("*.pcap")) + sorted(_SAMPLES.glob("synthetic/*.pcap"))


def _events_output(*args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    assert cli_main(["events", *args], out=out, err=err) == 0, err.getvalue()
    return out.getvalue()


# Determinism and the committed golden traces: tests/test_golden_traces.py.


@pytest.mark.skipif(not SAMPLE_PCAPS, reason="sample_pcaps/*.pcap not found")
@pytest.mark.parametrize("pcap", SAMPLE_PCAPS, ids=lambda p: p.name)
def test_events_trace_is_one_json_object_per_line(pcap: Path) -> None:
    lines = _events_output("-r", str(pcap)).splitlines()
    packets = []
    for line in lines:
        obj = json.loads(line)
        assert isinstance(obj, dict)
        assert {"packet", "ts", "flow", "side", "hook", "event"} <= obj.keys()
        assert obj["side"] in ("CLI", "SVR", "BOTH")
        assert obj["hook"] in ("NULL", "HK_SND", "HK_RCV")
        assert obj["event"] in {e.name for e in mos.BUILTIN_EVENTS}
        packets.append(obj["packet"])
    assert packets == sorted(packets)
    starts = [json.loads(x)["flow"] for x in lines if '"ON_CONN_START"' in x]
    ends = [json.loads(x)["flow"] for x in lines if '"ON_CONN_END"' in x]
    assert sorted(starts) == sorted(ends)       # each flow: one START and one END per hook


def test_events_only_filter(samples: Path) -> None:
    lines = _events_output("-r", str(samples / "http_small.pcap"), "--only",
                           "ON_CONN_START,ON_CONN_END").splitlines()
    kinds = {json.loads(x)["event"] for x in lines}
    assert kinds == {"ON_CONN_START", "ON_CONN_END"}
    ends = [json.loads(x) for x in lines if "ON_CONN_END" in x]
    truth = json.loads((samples / "http_small.json").read_text())
    assert len(ends) == 2 * len(truth["connections"])


def _always(flow: object, side: object, event: object) -> bool:
    return True


def test_events_pickle_by_definition() -> None:
    """Dask and multiprocessing ship callbacks that name events: a built-in comes back as the
    same object, a UDE as the interned definition under its base."""
    import pickle
    assert pickle.loads(pickle.dumps(mos.ON_CONN_START)) is mos.ON_CONN_START
    ude = mos.define_event(mos.ON_CONN_NEW_DATA, _always, name="always")
    chained = mos.define_event(ude, _always, arg=3, name="always3")
    assert pickle.loads(pickle.dumps(ude)) is ude
    assert pickle.loads(pickle.dumps(chained)) is chained
