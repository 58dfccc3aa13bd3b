"""The Flow handle API: peek/ppeek, direction views, buffers and their overflow, socket options,
stop monitoring, per-flow registration and shared subscription sets, misuse errors, callback
failures, checksum modes and midstream pickup."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest
from builders import CLI, SVR, Frame, Scenario

import mostool as mos
from mostool.replay import ReplaySource


def http_scenario(**kw: Any) -> Scenario:
    sc = Scenario(**kw)
    sc.handshake()
    sc.send(CLI, b"GET /index.html HTTP/1.1\r\n\r\n")
    sc.send(SVR, b"HTTP/1.1 200 OK\r\n")
    sc.send(SVR, b"Content-Length: 5\r\n\r\nhello")
    sc.close()
    return sc


def corrupt(frame: Frame) -> Frame:
    """The same Ethernet/IPv4 frame with a wrong TCP checksum."""
    ts, lt, data, wl = frame
    b = bytearray(data)
    b[50] ^= 0x0B
    b[51] ^= 0xAD
    return (ts, lt, bytes(b), wl)


# --------------------------------------------------------------------------------------------
# bytes
# --------------------------------------------------------------------------------------------


def test_peek_advances_a_cursor_per_handle() -> None:
    sc = http_scenario()
    mon = mos.Monitor()
    a, b = mon.socket(), mon.socket()
    reads: dict[str, list[bytes]] = {"a": [], "b": []}

    def read_a(flow: mos.Flow, side: mos.Side, event: Any) -> None:
        if side == mos.SVR:
            reads["a"] += [flow.peek(side, 4), flow.peek(side, 4), flow.peek(side)]
            reads["a"].append(flow.peek(side))          # nothing new: b""
    a.on(mos.ON_CONN_NEW_DATA, callback=read_a)

    def read_b(flow: mos.Flow, side: mos.Side, event: Any) -> None:
        if side == mos.SVR:
            reads["b"].append(flow.peek(side, 9))
    b.on(mos.ON_CONN_NEW_DATA, callback=read_b)

    mon.run(sc.frames)
    assert reads["a"] == [b"GET ", b"/ind", b"ex.html HTTP/1.1\r\n\r\n", b""]
    assert reads["b"] == [b"GET /inde"]                  # its own cursor, from 0


def test_peek_reads_everything_in_order_as_it_arrives() -> None:
    sc = http_scenario()
    mon = mos.Monitor()
    sock = mon.socket()
    got: list[bytes] = []
    sock.on(mos.ON_CONN_NEW_DATA,
            callback=lambda f, s, e: got.append(f.peek(s)) if s == mos.CLI else None)
    mon.run(sc.frames)
    assert got == [b"HTTP/1.1 200 OK\r\n", b"Content-Length: 5\r\n\r\nhello"]


def test_ppeek_is_random_access_from_the_first_byte_after_the_syn() -> None:
    sc = Scenario()
    sc.syn(data=b"SYNDATA")                  # bytes on the SYN are stream offset 0
    sc.synack()
    sc.ack(CLI)
    sc.send(CLI, b"-more")
    mon = mos.Monitor()
    sock = mon.socket()
    seen: list[Any] = []

    def end(flow: mos.Flow, side: mos.Side, event: Any) -> None:
        seen.extend([flow.ppeek(mos.SVR, 0, 100), flow.ppeek(mos.SVR, 3, 4),
                     flow.ppeek(mos.SVR, 12, 100), flow.ppeek(mos.SVR, 50, 10),
                     flow.peek(mos.SVR, 2), flow.ppeek(mos.SVR, 0, 2), flow.peek(mos.SVR, 2)])
        with pytest.raises(mos.MosError) as exc:
            flow.ppeek(mos.SVR, -1, 4)
        assert exc.value.errno == errno.EINVAL
    sock.on(mos.ON_CONN_END, callback=end)

    mon.run(sc.frames)
    assert seen == [b"SYNDATA-more", b"DATA", b"", b"", b"SY", b"SY", b"ND"]


def test_direction_views_name_the_right_sides() -> None:
    sc = http_scenario()
    mon = mos.Monitor()
    sock = mon.socket()
    seen: dict[str, Any] = {}

    def end(flow: mos.Flow, side: mos.Side, event: Any) -> None:
        seen["to_server"] = (flow.to_server.side, flow.to_server.ppeek(0, 100),
                             flow.to_server.bytes_seen, flow.to_server.next_offset)
        seen["to_client"] = (flow.to_client.side, flow.to_client.ppeek(0, 17),
                             flow.to_client.bytes_seen)
        seen["peek"] = flow.to_client.peek(4) + flow.to_client.peek(4)
        seen["cursor"] = flow.buf_info(mos.CLI).last_byte_read
        seen["peername"] = (flow.peername(), flow.peername(mos.CLI), flow.peername(mos.SVR))
    sock.on(mos.ON_CONN_END, callback=end)

    mon.run(sc.frames)
    assert seen["to_server"] == (mos.SVR, b"GET /index.html HTTP/1.1\r\n\r\n", 28, 28)
    assert seen["to_client"] == (mos.CLI, b"HTTP/1.1 200 OK\r\n", 43)
    assert seen["peek"] == b"HTTP/1.1"
    assert seen["cursor"] == 8
    assert seen["peername"] == ((("10.0.0.1", 40000), ("10.0.0.2", 80)), ("10.0.0.1", 40000),
                                ("10.0.0.2", 80))


def test_buf_info_and_frag_info() -> None:
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"0123")
    lost = sc.drop(sc.send(CLI, b"4567"))
    sc.send(CLI, b"89")
    mon = mos.Monitor()
    sock = mon.socket()
    seen: list[Any] = []
    sock.on(mos.ON_PKT_IN, callback=lambda f, s, e: seen.append(
        (f.frag_info(mos.SVR), f.buf_info(mos.SVR))))
    mon.run(sc.frames)
    frags, info = seen[-1]
    assert frags == [(0, 4), (8, 2)]
    assert (info.init_seq, info.head, info.last_byte_read, info.next_byte_expected,
            info.last_byte_received) == (1000, 0, 0, 4, 10)
    assert lost


def test_last_packet() -> None:
    sc = http_scenario()
    mon = mos.Monitor()
    sock = mon.socket()
    pkts: list[mos.PacketInfo] = []
    sock.on(mos.ON_CONN_NEW_DATA, callback=lambda f, s, e: pkts.append(f.last_packet()))
    mon.run(sc.frames)
    first = pkts[0]
    assert (first.src, first.dst, first.direction, first.number) == (
        "10.0.0.1:40000", "10.0.0.2:80", mos.CLI, 4)
    assert first.payload == b"GET /index.html HTTP/1.1\r\n\r\n"
    assert first.flag_names == "PA"
    assert first.seq == 1001
    assert pkts[1].direction == mos.SVR


def test_small_rcvbuf_overflow_raises_bytes_lost_after_on_error() -> None:
    sc = Scenario()
    sc.handshake()
    for ch in b"ABCDE":
        sc.send(CLI, bytes([ch]) * 100)
    sc.close()
    mon = mos.Monitor(mos.MonitorConfig(rcvbuf=150))
    sock = mon.socket()
    log: list[Any] = []

    def error(flow: mos.Flow, side: mos.Side, event: Any) -> None:
        log.append(("error", side.name, event.kind, event.offset, event.length))
    sock.on(mos.ON_ERROR, callback=error)

    def data(flow: mos.Flow, side: mos.Side, event: Any) -> None:
        if event.offset == 300:            # the fourth segment: reading only now
            try:
                flow.peek(side)
            except mos.BytesLost as exc:
                log.append(("lost", exc.lost, exc.offset, exc.errno))
            log.append(("then", flow.peek(side, 5)))
    sock.on(mos.ON_CONN_NEW_DATA, callback=data)

    mon.run(sc.frames)
    assert log == [
        ("error", "SVR", "buffer_overflow", 0, 100),     # once, when it happened
        ("lost", 200, 0, errno.ENODATA),                  # the cursor jumps to the head
        ("then", b"CCCCC"),
        ("error", "SVR", "buffer_overflow", 205, 95),    # unread again when E arrived
    ]


def test_a_gap_is_not_lost_bytes() -> None:
    sc = Scenario()
    sc.handshake()
    sc.drop(sc.send(SVR, b"never captured"))
    sc.send(SVR, b"ABCD")
    sc.ack(CLI)                                  # the client acknowledges past the hole
    sc.send(SVR, b"EFGH")
    mon = mos.Monitor(mos.MonitorConfig(rcvbuf=4))
    sock = mon.socket()
    log: list[Any] = []
    sock.on(mos.ON_ERROR, callback=lambda f, s, e: log.append((e.kind, e.offset, e.length)))

    def data(flow: mos.Flow, side: mos.Side, event: Any) -> None:
        log.append(("peek", flow.peek(side)))
    sock.on(mos.ON_CONN_NEW_DATA, callback=data)
    mon.run(sc.frames)
    assert log == [("gap", 0, 14), ("peek", b"ABCD"), ("peek", b"EFGH")]


def test_rcvbuf_zero_still_tracks_ranges() -> None:
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"hello")
    sc.send(CLI, b"hello", seq_offset=0)
    sc.send(CLI, b" world")
    sc.close()
    mon = mos.Monitor(mos.MonitorConfig(rcvbuf=0))
    sock = mon.socket()
    log: list[Any] = []
    sock.on(mos.ON_REXMIT, callback=lambda f, s, e: log.append(
        ("rexmit", s.name, e.offset, e.length, f.ppeek(s, 0, 5))))
    sock.on(mos.ON_CONN_NEW_DATA, callback=lambda f, s, e: log.append(
        ("data", e.offset, e.length, f.ppeek(s, e.offset, e.length), f.peek(s))))
    records: list[dict[str, Any]] = []
    mon.on_flow_end(lambda conn: records.append(conn.record()))
    mon.run(sc.frames)
    assert log == [("data", 0, 5, b"", b""), ("rexmit", "SVR", 0, 5, b""),
                   ("data", 5, 6, b"", b"")]
    assert records[0]["c2s"]["bytes"] == 11
    assert records[0]["c2s"]["rexmit"] == 1


def test_rcvbuf_per_listener_and_per_flow() -> None:
    sc = http_scenario()
    mon = mos.Monitor()
    sock = mon.socket()
    sock.setsockopt(mos.SOCKOPT_RCVBUF_SVR, 0)
    assert sock.getsockopt(mos.SOCKOPT_RCVBUF_SVR) == 0
    assert sock.getsockopt(mos.SOCKOPT_RCVBUF_CLI) == mon.config.rcvbuf
    sock.setsockopt(mos.SOCKOPT_OVERLAP_CLI, "last")
    assert sock.getsockopt(mos.SOCKOPT_OVERLAP_CLI) == "last"
    assert sock.getsockopt(mos.SOCKOPT_OVERLAP_SVR) == "first"
    seen: list[Any] = []

    def data(flow: mos.Flow, side: mos.Side, event: Any) -> None:
        seen.append((side.name, flow.ppeek(side, event.offset, 4),
                     flow.getsockopt(mos.SOCKOPT_RCVBUF_SVR),
                     flow.getsockopt(mos.SOCKOPT_OVERLAP_CLI)))
        if side == mos.CLI:
            flow.setsockopt(mos.SOCKOPT_RCVBUF_CLI, 0)       # this flow stops buffering
    sock.on(mos.ON_CONN_NEW_DATA, callback=data)

    mon.run(sc.frames)
    assert seen == [("SVR", b"", 0, "last"), ("CLI", b"HTTP", 0, "last"),
                    ("CLI", b"", 0, "last")]


def test_socket_option_errors() -> None:
    sc = http_scenario()
    mon = mos.Monitor()
    sock = mon.socket()
    checks: list[int] = []

    def expect(code: int, call: Any, *args: Any) -> None:
        with pytest.raises(mos.MosError) as exc:
            call(*args)
        assert exc.value.errno == code
        checks.append(code)

    expect(errno.ENOPROTOOPT, sock.setsockopt, "no_such_option", 1)
    expect(errno.ENOPROTOOPT, sock.getsockopt, "no_such_option")
    expect(errno.EINVAL, sock.setsockopt, mos.SOCKOPT_RCVBUF_CLI, -1)
    expect(errno.EINVAL, sock.setsockopt, mos.SOCKOPT_RCVBUF_CLI, "big")
    expect(errno.EINVAL, sock.setsockopt, mos.SOCKOPT_OVERLAP_SVR, "middle")
    expect(errno.EPERM, sock.setsockopt, mos.SOCKOPT_STOP_MON, mos.BOTH)
    expect(errno.ENOPROTOOPT, sock.getsockopt, mos.SOCKOPT_STOP_MON)

    def start(flow: mos.Flow, side: mos.Side, event: Any) -> None:
        expect(errno.ENOPROTOOPT, flow.setsockopt, "no_such_option", 1)
        expect(errno.ENOPROTOOPT, flow.getsockopt, "no_such_option")
        expect(errno.EINVAL, flow.setsockopt, mos.SOCKOPT_RCVBUF_SVR, -5)
        expect(errno.EINVAL, flow.setsockopt, mos.SOCKOPT_OVERLAP_CLI, 3)
        expect(errno.EINVAL, flow.setsockopt, mos.SOCKOPT_STOP_MON, 7)
        expect(errno.EINVAL, flow.peek, mos.BOTH)
        assert flow.getsockopt(mos.SOCKOPT_STOP_MON) == 3      # both sides monitored
    sock.on(mos.ON_CONN_START, mos.HK_SND, callback=start)

    mon.run(sc.frames)
    assert len(checks) == 13


# --------------------------------------------------------------------------------------------
# stop monitoring
# --------------------------------------------------------------------------------------------


def test_stop_monitoring_both_sides_ends_the_flow_and_costs_nothing_after() -> None:
    sc = http_scenario()
    mon = mos.Monitor()
    sock = mon.socket()
    calls: list[tuple[int, str]] = []
    ends: list[tuple[str, str, str]] = []

    def pkt(flow: mos.Flow, side: mos.Side, event: Any) -> None:
        calls.append((mon.engine.packet_number, side.name))
    sock.on(mos.ON_PKT_IN, callback=pkt)

    def data(flow: mos.Flow, side: mos.Side, event: Any) -> None:
        flow.stop_monitoring(mos.BOTH)
    sock.on(mos.ON_CONN_NEW_DATA, callback=data)

    sock.on(mos.ON_CONN_END, callback=lambda f, s, e: ends.append((e.hook.name, s.name,
                                                                     e.reason)))
    records: list[dict[str, Any]] = []
    mon.on_flow_end(lambda conn: records.append(conn.record()))
    counts_at: dict[str, int] = {}      # a snapshot between packet 4 (+3 ms) and 5 (+4 ms)
    mon.settimer(0.0035, lambda _t: counts_at.update(mon.engine.event_counts))
    mon.run(sc.frames)
    assert calls == [(1, "SVR"), (2, "CLI"), (3, "SVR"), (4, "SVR")]
    assert ends == [("HK_RCV", "SVR", "stopped")]
    assert [r["end_reason"] for r in records] == ["stopped"]
    assert records[0]["c2s"]["packets"] == 3       # nothing counted after packet 4
    assert mon.engine.event_counts == counts_at     # no event was raised after it


def test_stop_monitoring_one_side() -> None:
    sc = http_scenario()
    mon = mos.Monitor()
    sock = mon.socket()
    seen: list[tuple[int, str]] = []

    def start(flow: mos.Flow, side: mos.Side, event: Any) -> None:
        flow.stop_monitoring(mos.CLI)
        assert flow.getsockopt(mos.SOCKOPT_STOP_MON) == 2
    sock.on(mos.ON_CONN_START, mos.HK_SND, callback=start)

    sock.on(mos.ON_CONN_NEW_DATA, callback=lambda f, s, e: seen.append((e.offset, s.name)))
    ends: list[str] = []
    sock.on(mos.ON_CONN_END, callback=lambda f, s, e: ends.append(e.reason))
    mon.run(sc.frames)
    assert seen == [(0, "SVR")]                      # the client side's data is not reported
    assert ends == ["fin"]                           # the flow went on to its end


# --------------------------------------------------------------------------------------------
# registration and shared subscription sets
# --------------------------------------------------------------------------------------------


def _two_flows() -> list[Frame]:
    a = Scenario()
    a.handshake()
    a.send(CLI, b"a1")
    a.send(CLI, b"a2")
    a.send(CLI, b"a3")
    b = Scenario("10.0.0.3:1234", "10.0.0.2:80", t0=a.t0 + 0.0005)
    b.handshake()
    b.send(CLI, b"b1")
    b.send(CLI, b"b2")
    b.send(CLI, b"b3")
    return sorted(a.frames + b.frames)


def test_per_flow_on_and_off_from_a_callback() -> None:
    mon = mos.Monitor()
    sock = mon.socket()
    flows: dict[int, mos.Flow] = {}
    log: list[tuple[str, int, bytes]] = []

    def extra(flow: mos.Flow, side: mos.Side, event: Any) -> None:
        log.append(("extra", flow.id, flow.ppeek(side, event.offset, 2)))

    def start(flow: mos.Flow, side: mos.Side, event: Any) -> None:
        flows[flow.id] = flow
    sock.on(mos.ON_CONN_START, mos.HK_SND, callback=start)

    def data(flow: mos.Flow, side: mos.Side, event: Any) -> None:
        chunk = flow.ppeek(side, event.offset, 2)
        log.append(("data", flow.id, chunk))
        if chunk == b"a1":
            flow.on(mos.ON_CONN_NEW_DATA, callback=extra)   # from the next event on
            assert flow.subs is not flows[2].subs
        if chunk == b"a2":
            flow.off(mos.ON_CONN_NEW_DATA, callback=extra)
            assert flow.subs is flows[2].subs            # back to the shared set
    sock.on(mos.ON_CONN_NEW_DATA, callback=data)

    mon.run(_two_flows())
    assert log == [
        ("data", 1, b"a1"), ("data", 2, b"b1"),
        ("data", 1, b"a2"), ("extra", 1, b"a2"), ("data", 2, b"b2"),
        ("data", 1, b"a3"), ("data", 2, b"b3"),
    ]


def test_flows_with_the_same_registrations_share_one_set() -> None:
    mon = mos.Monitor()
    sock = mon.socket()
    handles: list[mos.Flow] = []
    sock.on(mos.ON_CONN_START, mos.HK_SND, lambda f, s, e: handles.append(f))
    sock.on(mos.ON_CONN_END, callback=lambda f, s, e: None)
    mon.run(_two_flows())
    assert len(handles) == 2
    assert handles[0].subs is handles[1].subs is sock.subs
    assert len(sock.subs) == 2
    # registering the same callbacks in another order gives the same interned set
    other = mon.socket()
    other.on(mos.ON_CONN_END, callback=next(
        e[2] for e in sock.subs.entries if e[0] is mos.ON_CONN_END))
    other.on(mos.ON_CONN_START, mos.HK_SND, next(
        e[2] for e in sock.subs.entries if e[0] is mos.ON_CONN_START))
    assert other.subs is sock.subs


def test_listener_registration_after_flows_exist_does_not_reach_them() -> None:
    frames = _two_flows()
    mon = mos.Monitor()
    sock = mon.socket()
    late: list[int] = []
    started: list[int] = []

    def start(flow: mos.Flow, side: mos.Side, event: Any) -> None:
        started.append(flow.id)
        if flow.id == 1:
            sock.on(mos.ON_CONN_NEW_DATA, callback=lambda f, s, e: late.append(f.id))
    sock.on(mos.ON_CONN_START, mos.HK_SND, callback=start)

    mon.run(frames)
    assert started == [1, 2]
    assert late == [2, 2, 2]                # flow 1 kept its old registrations, as mOS


def test_registration_changes_inside_a_callback_apply_from_the_next_raise() -> None:
    mon = mos.Monitor()
    sock = mon.socket()
    calls: list[tuple[str, int]] = []

    def second(flow: mos.Flow, side: mos.Side, event: Any) -> None:
        calls.append(("second", mon.engine.packet_number))

    def first(flow: mos.Flow, side: mos.Side, event: Any) -> None:
        calls.append(("first", mon.engine.packet_number))
        flow.off(mos.ON_PKT_IN, mos.HK_RCV, first)      # this raise still runs "third"
        flow.on(mos.ON_PKT_IN, mos.HK_RCV, second)      # from the next raise on

    def third(flow: mos.Flow, side: mos.Side, event: Any) -> None:
        calls.append(("third", mon.engine.packet_number))
        if mon.engine.packet_number == 2:
            flow.off(mos.ON_PKT_IN, mos.HK_RCV, third)

    sock.on(mos.ON_PKT_IN, mos.HK_RCV, first)
    sock.on(mos.ON_PKT_IN, mos.HK_RCV, third)
    mon.run(http_scenario().frames[:3])
    assert calls == [("first", 1), ("third", 1), ("third", 2), ("second", 2), ("second", 3)]


def test_misuse_after_conn_end_raises_ebadf() -> None:
    sc = http_scenario()
    mon = mos.Monitor()
    sock = mon.socket()
    kept: list[mos.Flow] = []
    sock.on(mos.ON_CONN_END, callback=lambda f, s, e: kept.append(f))
    mon.run(sc.frames)
    flow = kept[0]
    assert flow.ended
    for call, args in ((flow.peek, (mos.SVR,)), (flow.ppeek, (mos.SVR, 0, 4)),
                       (flow.buf_info, (mos.SVR,)), (flow.frag_info, (mos.SVR,)),
                       (flow.last_packet, ()), (flow.setsockopt, (mos.SOCKOPT_RCVBUF_SVR, 0)),
                       (flow.getsockopt, (mos.SOCKOPT_RCVBUF_SVR,)),
                       (flow.on, (mos.ON_CONN_END, None, lambda f, s, e: None)),
                       (flow.off, (mos.ON_CONN_END,)),
                       (flow.stop_monitoring, ())):
        with pytest.raises(mos.MosError) as exc:
            call(*args)
        assert exc.value.errno == errno.EBADF, call
    assert flow.state(mos.CLI) == mos.TcpState.TIME_WAIT      # plain facts stay readable
    assert flow.uctx is None


def test_closed_listener_raises_ebadf() -> None:
    mon = mos.Monitor()
    sock = mon.socket()
    sock.close()
    with pytest.raises(mos.MosError) as exc:
        sock.on(mos.ON_CONN_START, callback=lambda f, s, e: None)
    assert exc.value.errno == errno.EBADF
    with pytest.raises(mos.MosError):
        sock.setsockopt(mos.SOCKOPT_RCVBUF_CLI, 0)


# --------------------------------------------------------------------------------------------
# user code that raises
# --------------------------------------------------------------------------------------------


def test_a_raising_callback_is_counted_and_the_run_goes_on() -> None:
    sc = http_scenario()
    mon = mos.Monitor()
    sock = mon.socket()
    after: list[int] = []

    def boom(flow: mos.Flow, side: mos.Side, event: Any) -> None:
        raise ValueError("bad parser")
    sock.on(mos.ON_CONN_NEW_DATA, callback=boom)

    sock.on(mos.ON_CONN_NEW_DATA, callback=lambda f, s, e: after.append(e.offset))
    stats = mon.run(sc.frames)
    assert len(mon.failures) == 3
    failure = mon.failures[0]
    assert (failure.where, failure.event, failure.flow_id) == ("callback", "ON_CONN_NEW_DATA",
                                                               1)
    assert "ValueError: bad parser" in str(failure)
    assert stats["callback_errors"] == 3
    assert after == [0, 0, 17]              # the other callback still ran every time


def test_strict_mode_raises_callback_error() -> None:
    sc = http_scenario()
    mon = mos.Monitor(mos.MonitorConfig(strict=True))
    sock = mon.socket()

    def boom(flow: mos.Flow, side: mos.Side, event: Any) -> None:
        raise ValueError("bad parser")
    sock.on(mos.ON_CONN_NEW_DATA, callback=boom)

    with pytest.raises(mos.CallbackError) as exc:
        mon.run(sc.frames)
    assert isinstance(exc.value.original, ValueError)
    assert mon.engine.packet_number == 4


# --------------------------------------------------------------------------------------------
# checksums
# --------------------------------------------------------------------------------------------


def _checksum_run(frames: list[Frame], mode: str) -> tuple[mos.Monitor, list[dict[str, Any]],
                                                           list[bytes]]:
    mon = mos.Monitor(mos.MonitorConfig(checksums=mode))  # type: ignore[arg-type]
    sock = mon.socket()
    data: list[bytes] = []
    sock.on(mos.ON_CONN_NEW_DATA, callback=lambda f, s, e: data.append(
        f.ppeek(s, e.offset, e.length)))
    records: list[dict[str, Any]] = []
    mon.on_flow_end(lambda conn: records.append(conn.record()))
    mon.run(frames)
    return mon, records, data


def _bad_then_good() -> list[Frame]:
    sc = Scenario()
    sc.handshake()
    bad = sc.send(CLI, b"EVIL")              # corrupted on the way: a bad checksum
    sc.send(CLI, b"GOOD", seq_offset=0)      # the real retransmission
    sc.close()
    return [corrupt(f) if f is bad[0] else f for f in sc.frames]


@pytest.mark.parametrize(("mode", "dropped", "stream"), [
    ("auto", 1, b"GOOD"), ("on", 1, b"GOOD"), ("off", 0, b"EVIL")])
def test_checksum_modes_with_a_valid_direction(mode: str, dropped: int, stream: bytes) -> None:
    mon, records, data = _checksum_run(_bad_then_good(), mode)
    assert data == [stream]
    assert records[0]["c2s"]["bad_checksums"] == 1          # counted in every mode
    assert mon.engine.counters["bad_checksums"] == 1
    assert mon.engine.counters["dropped_bad_checksum"] == dropped
    assert records[0]["end_reason"] == "fin"


@pytest.mark.parametrize(("mode", "flows", "dropped"), [("auto", 1, 0), ("on", 0, 5),
                                                        ("off", 1, 0)])
def test_checksum_modes_with_offload(mode: str, flows: int, dropped: int) -> None:
    """Every client frame has a bad checksum (offload at the capture host)."""
    sc = http_scenario()
    frames = [corrupt(f) if f[2][26:30] == bytes([10, 0, 0, 1]) else f for f in sc.frames]
    mon, records, data = _checksum_run(frames, mode)
    assert len(records) == flows
    assert mon.engine.counters["bad_checksums"] == 5
    assert mon.engine.counters["dropped_bad_checksum"] == dropped
    if flows:
        assert records[0]["c2s"]["bad_checksums"] == 5
        assert data[0] == b"GET /index.html HTTP/1.1\r\n\r\n"
        assert records[0]["end_reason"] == "fin"
    else:                                    # "on": the bad SYN makes no flow
        assert mon.flows_total == 0
        assert data == []


# --------------------------------------------------------------------------------------------
# midstream
# --------------------------------------------------------------------------------------------


def _midstream_run(frames: Any, midstream: bool) -> tuple[list[str], list[dict[str, Any]]]:
    mon = mos.Monitor(mos.MonitorConfig(midstream=midstream))
    sock = mon.socket()
    events: list[str] = []
    for etype in (mos.ON_ORPHAN, mos.ON_CONN_START, mos.ON_CONN_NEW_DATA, mos.ON_CONN_END):
        sock.on(etype, callback=lambda f, s, e: events.append(e.name))
    records: list[dict[str, Any]] = []
    mon.on_flow_end(lambda conn: records.append(conn.record()))
    mon.run(frames)
    return events, records


def test_midstream_capture_without_pickup_is_orphans_only(samples: Path) -> None:
    events, records = _midstream_run(ReplaySource([samples / "synthetic" / "midstream.pcap"]),
                                     False)
    assert records == []
    assert events and set(events) == {"ON_ORPHAN"}


def test_midstream_pickup(samples: Path) -> None:
    events, records = _midstream_run(ReplaySource([samples / "synthetic" / "midstream.pcap"]),
                                     True)
    assert "ON_ORPHAN" not in events
    assert len(records) == 1
    rec = records[0]
    assert rec["midstream"] is True
    assert rec["server"].endswith(":80")                  # the lower port serves
    assert rec["end_reason"] == "fin"
    assert rec["c2s"]["bytes"] > 0 and rec["s2c"]["bytes"] > 0


def test_midstream_client_is_guessed_by_the_lower_port() -> None:
    sc = Scenario("10.0.0.1:50000", "10.0.0.2:8080")
    sc.handshake()
    sc.send(CLI, b"q1")
    sc.send(SVR, b"resp")                        # the capture starts here: server first
    sc.send(CLI, b"q2")
    _, records = _midstream_run(sc.frames[4:], True)
    rec = records[0]
    assert (rec["client"], rec["server"], rec["midstream"]) == (
        "10.0.0.1:50000", "10.0.0.2:8080", True)
    assert (rec["c2s"]["bytes"], rec["s2c"]["bytes"]) == (2, 4)


def test_midstream_client_is_the_synack_receiver() -> None:
    sc = Scenario("10.0.0.1:80", "10.0.0.2:50000")     # the client has the lower port
    sc.handshake()
    sc.send(CLI, b"q")
    sc.send(SVR, b"resp")
    mon = mos.Monitor(mos.MonitorConfig(midstream=True))
    sock = mon.socket()
    states: list[tuple[str, str]] = []
    sock.on(mos.ON_PKT_IN, callback=lambda f, s, e: states.append(
        (f.state(mos.CLI).name, f.state(mos.SVR).name)))
    records: list[dict[str, Any]] = []
    mon.on_flow_end(lambda conn: records.append(conn.record()))
    mon.run(sc.frames[1:])                       # the SYN was missed
    rec = records[0]
    assert (rec["client"], rec["server"], rec["midstream"]) == (
        "10.0.0.1:80", "10.0.0.2:50000", True)
    assert states[0] == ("ESTABLISHED", "SYN_RCVD")
    assert states[1] == ("ESTABLISHED", "ESTABLISHED")
    assert (rec["c2s"]["bytes"], rec["s2c"]["bytes"]) == (1, 4)


def test_a_bad_checksum_segment_the_receiver_acknowledges_is_kept() -> None:
    """checksums="auto" drops a bad segment in a direction that carried valid checksums; if the
    receiver then acknowledges its bytes and no good copy was captured, the host accepted them
    (a rewrite or the capture path damaged the checksum): they fill the hole, no gap."""
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"hello ")
    sc.send(CLI, b"damaged", bad_checksum=True)
    sc.send(CLI, b" world")
    sc.ack(SVR)
    sc.close()
    mon = mos.Monitor(mos.MonitorConfig(hash_streams=True))
    mon.socket(mos.MONITOR_STREAM)
    recs: list[dict[str, Any]] = []
    mon.on_flow_end(lambda c: recs.append(c.record()))
    mon.run(sc.frames)
    (rec,) = recs
    assert rec["c2s"]["bytes"] == 19 and rec["c2s"]["gaps"] == 0
    assert rec["c2s"]["bad_checksums"] == 1
    assert mon.engine.counters["bad_checksum_acked"] == 1
    # never acknowledged: it stays dropped and its bytes are a gap at the end
    sc2 = Scenario()
    sc2.handshake()
    sc2.send(CLI, b"hello ")
    sc2.send(CLI, b"damaged", bad_checksum=True)
    sc2.send(CLI, b" world")
    mon2 = mos.Monitor(mos.MonitorConfig(hash_streams=True))
    mon2.socket(mos.MONITOR_STREAM)
    recs2: list[dict[str, Any]] = []
    mon2.on_flow_end(lambda c: recs2.append(c.record()))
    mon2.run(sc2.frames)
    assert recs2[0]["c2s"]["bytes"] == 12 and recs2[0]["c2s"]["gap_bytes"] == 7


def test_total_buffered_bytes_stay_within_max_buffered_bytes() -> None:
    """Bytes held by all flows together are bounded: past the limit the flow that grew gives up
    its buffer and its holes (ON_ERROR memory_limit); the streams stay complete where nothing
    was given up, and the engine holds nothing once the flows ended."""
    scs = [Scenario(f"10.0.0.{i}:4000{i}", "10.0.0.99:80") for i in range(1, 5)]
    for sc in scs:
        sc.handshake()
    frames: list[Frame] = []
    for sc in scs:
        frames += sc.frames
    for k in range(20):                       # interleave 20 x 1000 bytes on 4 flows
        for sc in scs:
            frames += sc.send(CLI, bytes([k]) * 1000)
    mon = mos.Monitor(mos.MonitorConfig(rcvbuf=50_000, max_buffered_bytes=30_000))
    sock = mon.socket(mos.MONITOR_STREAM)
    errors: list[str] = []
    sock.on(mos.ON_ERROR, callback=lambda f, side, e: errors.append(e.kind))
    peak = [0]

    def watch(flow: mos.Flow, side: mos.Side, event: mos.Event) -> None:
        peak[0] = max(peak[0], mon.engine.stats()["held_bytes"])
    sock.on(mos.ON_PKT_IN, mos.HK_RCV, watch)
    recs: list[dict[str, Any]] = []
    mon.on_flow_end(lambda c: recs.append(c.record()))
    frames.sort(key=lambda f: f[0])
    mon.run(frames)
    assert "memory_limit" in errors
    assert peak[0] <= 30_000 + 1000
    assert mon.engine.stats()["held_bytes"] == 0
    assert all(r["c2s"]["bytes"] == 20_000 for r in recs)    # in-order bytes all counted
