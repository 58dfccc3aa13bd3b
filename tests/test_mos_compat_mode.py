"""MonitorConfig(mos_compat=True) reproduces mOS 0.3's observable quirks (DESIGN.md §3).

Each test shows the quirk and mostool's default side by side.
"""

from __future__ import annotations

from typing import Any

import pytest
from builders import CLI, SVR, Scenario

import mostool as mos


def run(frames: list[Any], *, compat: bool, setup: Any, **config: Any) -> mos.Monitor:
    mon = mos.Monitor(mos.MonitorConfig(mos_compat=compat, **config))
    sock = mon.socket(mos.MONITOR_STREAM)
    setup(sock)
    mon.run(frames)
    return mon


def test_conn_end_runs_once_per_side_at_both_hooks_in_compat_mode() -> None:
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"hi")
    sc.close()
    for compat, expected in ((False, [mos.SVR]), (True, [mos.CLI, mos.SVR])):
        seen: list[mos.Side] = []
        run(sc.frames, compat=compat, setup=lambda s, seen=seen: s.on(
            mos.ON_CONN_END, mos.HK_RCV, lambda f, side, e: seen.append(side)))
        assert seen == expected, compat


def test_new_data_only_while_established_in_compat_mode() -> None:
    sc = Scenario()
    sc.handshake()
    sc.fin(CLI)                               # client half-closes: FIN_WAIT_1/2
    sc.ack(SVR)
    sc.send(SVR, b"late answer")              # data to a client that is in FIN_WAIT_2
    sc.close(first=SVR)
    for compat, expected in ((False, [(mos.CLI, 11)]), (True, [])):
        seen: list[tuple[mos.Side, int]] = []
        run(sc.frames, compat=compat, setup=lambda s, seen=seen: s.on(
            mos.ON_CONN_NEW_DATA, callback=lambda f, side, e: seen.append((side, e.length))))
        assert seen == expected, compat


def test_no_on_timeout_in_compat_mode() -> None:
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"x")
    sc.advance(100.0)
    sc.send(CLI, b"y")                        # after the idle timeout: an orphan
    # (in compat mode the CONN_END handler also runs twice: once per side)
    for compat, expected in ((False, ["ON_TIMEOUT", "timeout"]),
                             (True, ["timeout", "timeout"])):
        seen: list[str] = []

        def setup(s: mos.MonitorSocket, seen: list[str] = seen) -> None:
            s.on(mos.ON_TIMEOUT, callback=lambda f, side, e: seen.append(e.name))
            s.on(mos.ON_CONN_END, callback=lambda f, side, e: seen.append(e.reason))
        run(sc.frames, compat=compat, setup=setup, idle_timeout=30.0)
        assert seen == expected, compat


def test_compat_defaults_are_mos_defaults() -> None:
    ours, theirs = mos.MonitorConfig(), mos.MonitorConfig(mos_compat=True)
    assert (ours.rcvbuf, ours.checksums, ours.idle_timeout) == (1 << 20, "auto", 600.0)
    assert (theirs.rcvbuf, theirs.checksums, theirs.idle_timeout) == (8192, "on", 30.0)
    assert mos.MonitorConfig(mos_compat=True, rcvbuf=4096).rcvbuf == 4096   # explicit wins


def test_rexmit_only_against_buffered_bytes_in_compat_mode() -> None:
    sc = Scenario()
    sc.handshake()
    sc.segments(CLI, bytes(range(256)) * 80, 1000)          # 20480 bytes, > 8 KB
    sc.send(CLI, b"\x00" * 100, seq_offset=0)               # an old retransmission
    sc.send(CLI, b"\xfe\xff", seq_offset=20478)             # retransmits the last bytes
    for compat, expected in ((False, 2), (True, 1)):
        count = [0]

        def setup(s: mos.MonitorSocket, count: list[int] = count) -> None:
            s.on(mos.ON_REXMIT, callback=lambda f, side, e: count.__setitem__(0, count[0] + 1))
        run(sc.frames, compat=compat, setup=setup)
        assert count[0] == expected, compat
    # buffering off: mOS sees no retransmission at all, mostool still does (from ranges)
    for compat, expected in ((False, 2), (True, 0)):
        count = [0]

        def setup0(s: mos.MonitorSocket, count: list[int] = count) -> None:
            s.on(mos.ON_REXMIT, callback=lambda f, side, e: count.__setitem__(0, count[0] + 1))
        run(sc.frames, compat=compat, setup=setup0, rcvbuf=0)
        assert count[0] == expected, compat


def test_bad_checksums_skipped_in_compat_mode() -> None:
    sc = Scenario()
    sc.syn()
    sc.ack(CLI)                                  # the SYN/ACK was not captured
    sc.send(SVR, b"checksum offloaded?", bad_checksum=True)
    sc.close()
    for compat, expected in ((False, 19), (True, 0)):
        got: list[int] = []
        mon = mos.Monitor(mos.MonitorConfig(mos_compat=compat))
        mon.socket(mos.MONITOR_STREAM)
        mon.on_flow_end(lambda c, got=got: got.append(c.record()["s2c"]["bytes"]))
        mon.run(sc.frames)
        assert got == [expected], compat


def test_midstream_pickup_is_refused_in_compat_mode() -> None:
    with pytest.raises(ValueError):
        mos.MonitorConfig(mos_compat=True, midstream=True)
    assert mos.MonitorConfig(midstream=True).midstream


@pytest.mark.parametrize("expression", ["udp port 53", "not tcp", "host 10.0.0.1 and not tcp",
                                        "ip proto 6", "tcp[13] & 2 != 0"])
def test_restricted_flow_filter_grammar_in_compat_mode(expression: str) -> None:
    compat = mos.Monitor(mos.MonitorConfig(mos_compat=True)).socket(mos.MONITOR_STREAM)
    with pytest.raises(mos.MosError) as err:
        compat.bind_filter(syn=expression)
    assert err.value.errno == 22
    mos.Monitor().socket(mos.MONITOR_STREAM).bind_filter(syn=expression)   # default: any BPF


@pytest.mark.parametrize("expression", ["tcp port 80", "src net 10.0.0.0 mask 255.0.0.0",
                                        "dst host 10.0.0.2 and portrange 80-90"])
def test_mos_grammar_accepts_its_keywords(expression: str) -> None:
    sock = mos.Monitor(mos.MonitorConfig(mos_compat=True)).socket(mos.MONITOR_STREAM)
    sock.bind_filter(syn=expression, orphan=expression)
