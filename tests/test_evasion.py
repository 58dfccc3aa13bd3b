"""Bytes the hosts exchanged that a capture's quirks must not lose (issue #17): late data that
fills a hole given up at an ACK, forged RSTs the endpoints ignored, one wild timestamp.

Each rule has a builder scenario (``builders.Scenario``, both endpoints scripted, every event
recorded by ``pair.Pair``) and a regression test on the real capture that showed it
(``../shared/pcaps``, skipped where that tree is missing), with the numbers
docs/tunnels_and_evasion.md section 5 states.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from builders import CLI, SVR, Scenario, write_pcap
from pair import Pair

import mostool as mos

PCAPS = Path(__file__).resolve().parents[2] / "shared" / "pcaps"


def capture(rel: str) -> Path:
    path = PCAPS / rel
    if not path.exists():
        pytest.skip(f"corpus capture {rel} not present")
    return path


def flows_of(path: Path, *args: str) -> list[dict[str, Any]]:
    """``mostool flows`` on a capture, its JSON records."""
    out = subprocess.run([sys.executable, "-m", "mostool", "flows", "-r", str(path), *args],
                         capture_output=True, text=True, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def errors(d: Pair) -> list[tuple[str, int, int]]:
    return [(x["kind"], x["offset"], x["length"]) for _, _, _, _, x in d.of("ON_ERROR")]


# ------------------------------------------------------------------------------------------
# late data fills a given-up hole
# ------------------------------------------------------------------------------------------


def test_ack_before_its_data_still_delivers_the_data() -> None:
    sc = Scenario()
    sc.handshake()
    held = sc.drop(sc.send(CLI, b"0123456789"))
    sc.ack(SVR)                         # the server ACKs 10 bytes the capture has not shown yet
    sc.inject(held)                     # ... and here they are
    sc.close()
    d = Pair()
    d.run(sc.frames)
    rec = d.records[0]
    assert rec["c2s"]["bytes"] == 10
    assert rec["c2s"]["gaps"] == 0 and rec["c2s"]["gap_bytes"] == 0
    # the gap was reported at the ACK (the hole was given up there); the fill says so
    assert ("gap", 0, 10) in errors(d)
    assert ("gap_filled", 0, 10) in errors(d)
    assert ("ON_CONN_NEW_DATA" in [e for _, _, _, e, _ in d.log])


def test_late_bytes_after_later_data_are_dropped_with_their_offset() -> None:
    sc = Scenario()
    sc.handshake()
    held = sc.drop(sc.send(CLI, b"0123456789"))
    sc.ack(SVR)
    sc.send(CLI, b"abcde")              # delivered beyond the hole: it can no longer be filled
    sc.inject(held)
    sc.close()
    d = Pair()
    d.run(sc.frames)
    rec = d.records[0]
    assert rec["c2s"]["bytes"] == 5 and rec["c2s"]["gap_bytes"] == 10
    assert ("late_data", 0, 10) in errors(d)


def test_part_of_a_given_up_hole_fills_and_the_rest_stays_a_gap() -> None:
    sc = Scenario()
    sc.handshake()
    first = sc.drop(sc.send(CLI, b"01234"))
    sc.drop(sc.send(CLI, b"56789"))     # never captured
    sc.ack(SVR)
    sc.inject(first)
    sc.close()
    d = Pair()
    d.run(sc.frames)
    rec = d.records[0]
    assert rec["c2s"]["bytes"] == 5 and rec["c2s"]["gap_bytes"] == 5
    assert ("gap_filled", 0, 5) in errors(d)


def test_mos_compat_drops_late_bytes_as_mos_does() -> None:
    sc = Scenario()
    sc.handshake()
    held = sc.drop(sc.send(CLI, b"0123456789"))
    sc.ack(SVR)
    sc.inject(held)
    d = Pair(mos.MonitorConfig(mos_compat=True))
    d.run(sc.frames)
    assert d.records[0]["c2s"]["bytes"] == 0


def test_ipv6_atomic_frag_capture_gets_its_request() -> None:
    recs = flows_of(capture("zeek/ipv6-http-atomic-frag.pcap"))
    assert [(r["c2s"]["bytes"], r["s2c"]["bytes"], r["c2s"]["gaps"]) for r in recs] == \
        [(15, 88, 0)] * 4


# ------------------------------------------------------------------------------------------
# forged resets (docs/tunnels_and_evasion.md section 5)
# ------------------------------------------------------------------------------------------


def _summary(recs: list[dict[str, Any]]) -> list[tuple[str, int, int]]:
    return [(r["end_reason"], r["c2s"]["bytes"], r["s2c"]["bytes"]) for r in recs]


def _error_kinds(path: Path) -> list[str]:
    out = subprocess.run([sys.executable, "-m", "mostool", "events", "--only", "ON_ERROR",
                          "-r", str(path)], capture_output=True, text=True, check=True).stdout
    return [json.loads(line)["kind"] for line in out.splitlines()]


@pytest.mark.parametrize(("name", "request_bytes"), [("evasion-linux", 338),
                                                      ("evasion-windows", 343)])
def test_a_forged_rst_before_the_syn_ack_does_not_blind_us(name: str,
                                                            request_bytes: int) -> None:
    """The RST/ACK acknowledging ISN+1 arrives before the real SYN/ACK; the client ignored it
    (Linux by its timestamp echo, Windows by policy) and talked: so do we, as evasion-none."""
    path = capture(f"suricata-verify/{name}.pcap")
    assert _summary(flows_of(path)) == [("eof", request_bytes, 79)]
    assert _error_kinds(path) == ["rst_ignored"]
    assert _summary(flows_of(capture("suricata-verify/evasion-none.pcap"))) == \
        [("eof", 338, 79)]


def test_mos_compat_is_still_blinded_as_mos_is() -> None:
    path = capture("suricata-verify/evasion-windows.pcap")
    assert _summary(flows_of(path, "--mos-compat")) == [("rst", 0, 0)]


def test_an_injected_in_window_rst_and_data_after_a_real_one() -> None:
    """tcp-rst-inject: the first RST (not at the receiver's next byte) changes nothing and is
    reported; the real one ends the flow at 25 bytes; the 150 bytes after it are reported as
    data after the reset, not reassembled."""
    path = capture("zeek/tcp-rst-inject.pcap")
    assert _summary(flows_of(path)) == [("rst", 25, 0)]
    assert _error_kinds(path) == ["bad_rst", "data_after_rst"]


def test_urgent11_syn_fin_after_a_reset_is_not_a_second_connection_of_data() -> None:
    path = capture("suricata-verify/urgent11.pcap")
    assert _summary(flows_of(path)) == [("rst", 0, 0), ("rst", 0, 0)]
    assert "data_after_rst" in _error_kinds(path)


def test_a_reset_is_provisional_until_the_grace_passes() -> None:
    """An accepted RST does not end the flow at once: traffic that carries on both sequence
    spaces within rst_grace proves it was ignored; after the grace it ends the flow."""
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"request")
    sc.rst(SVR)                          # a forged reset the hosts ignore ...
    sc.send(SVR, b"reply")               # ... as their traffic shows
    sc.send(CLI, b"more")
    sc.close()
    d = Pair()
    d.run(sc.frames)
    rec = d.records[0]
    assert (rec["end_reason"], rec["c2s"]["bytes"], rec["s2c"]["bytes"]) == ("fin", 11, 5)
    assert [k for k, _, _ in errors(d)] == ["rst_ignored"]
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"request")
    sc.rst(SVR)
    sc.advance(5.0)                      # nothing for longer than the grace
    sc.send(CLI, b"x")
    d = Pair()
    d.run(sc.frames)
    assert d.records[0]["end_reason"] == "rst" and d.records[0]["c2s"]["bytes"] == 7
    d = Pair(mos.MonitorConfig(rst_grace=0))   # as mOS: the reset ends it at once
    sc = Scenario()
    sc.handshake()
    sc.rst(SVR)
    d.run(sc.frames)
    assert d.records[0]["end_reason"] == "rst" and d.records[0]["end"] == sc.frames[-1][0]


# ------------------------------------------------------------------------------------------
# one wild timestamp (mostool/stack/clock.py)
# ------------------------------------------------------------------------------------------


def _wild(frames: list[Any], index: int, jump: float) -> list[Any]:
    ts, linktype, data, wire = frames[index]
    return [*frames[:index], (ts + jump, linktype, data, wire), *frames[index + 1:]]


def _conversation() -> Scenario:
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"GET / HTTP/1.0\r\n\r\n")
    sc.send(SVR, b"HTTP/1.0 200 OK\r\n\r\nhello")
    sc.close()
    return sc


def test_one_wild_timestamp_neither_expires_the_flow_nor_loses_bytes(tmp_path: Path) -> None:
    sc = _conversation()
    frames = _wild(sc.frames, 1, 1e6)    # the SYN/ACK stamped 11.6 days late
    d = Pair()
    d.run(frames)
    rec = d.records[0]
    assert (rec["end_reason"], rec["c2s"]["bytes"], rec["s2c"]["bytes"]) == ("fin", 18, 24)
    assert d.mon.counters["wild_timestamps"] == 1 and d.mon.counters["timeouts"] == 0
    assert [k for k, _, _ in errors(d)] == ["wild_timestamp"]
    # the held frame is handled as packet 2, before packet 3, at the clock it was held at
    assert [p for p, h, _, e, _ in d.log if e == "ON_PKT_IN" and h == "HK_SND"][:3] == [1, 2, 3]
    # the same through the in-place pcap reader
    pcap = tmp_path / "wild.pcap"
    write_pcap(pcap, frames)
    assert _summary(flows_of(pcap)) == [("fin", 18, 24)]


def test_a_real_gap_still_expires_idle_flows() -> None:
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"early")
    sc.advance(1000.0)                   # a quiet spell longer than the idle timeout
    sc.send(CLI, b"late!")
    sc.send(CLI, b"later")
    d = Pair(mos.MonitorConfig(midstream=False))
    d.run(sc.frames)
    assert d.records[0]["end_reason"] == "timeout"
    assert d.records[0]["c2s"]["bytes"] == 5
    assert d.mon.counters["wild_timestamps"] == 0


def test_max_jump_zero_moves_the_clock_at_once() -> None:
    sc = _conversation()
    d = Pair(mos.MonitorConfig(max_jump=0))
    d.run(_wild(sc.frames, 1, 1e6))
    assert d.records[0]["end_reason"] == "timeout"          # the old behaviour, on request


def test_pcapng_example_keeps_its_mysql_session() -> None:
    recs = flows_of(capture("pcapplusplus/pcapng-example.pcapng"))
    assert _summary(recs)[0] == ("fin", 1597, 2720)


# ------------------------------------------------------------------------------------------
# the Ptacek-Newsham family: what each real stack would do, and that we say so
# ------------------------------------------------------------------------------------------


def test_a_rst_outside_the_window_is_ignored_by_the_host_and_by_us() -> None:
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"hello")
    sc.raw(SVR, flags="R", seq=(sc.isn(SVR) + 1 + 100_000_000) & 0xFFFFFFFF)
    sc.send(SVR, b"world")
    sc.close()
    d = Pair()
    d.run(sc.frames)
    rec = d.records[0]
    assert (rec["end_reason"], rec["c2s"]["bytes"], rec["s2c"]["bytes"]) == ("fin", 5, 5)
    assert "bad_rst" in [k for k, _, _ in errors(d)]


def test_a_fin_far_outside_the_window_does_not_close_the_stream() -> None:
    sc = Scenario()
    sc.handshake()
    sc.raw(CLI, flags="FA", seq=(sc.isn(CLI) + 1 + 100_000_000) & 0xFFFFFFFF,
           ack=(sc.isn(SVR) + 1) & 0xFFFFFFFF)
    sc.send(CLI, b"still talking")
    sc.send(SVR, b"ok")
    sc.close()
    d = Pair()
    d.run(sc.frames)
    rec = d.records[0]
    assert (rec["end_reason"], rec["c2s"]["bytes"], rec["s2c"]["bytes"]) == ("fin", 13, 2)
    assert "bad_fin" in [k for k, _, _ in errors(d)]


@pytest.mark.parametrize("overlap", ["first", "last"])
def test_an_injected_copy_that_never_reached_the_host_is_reported(overlap: str) -> None:
    """A segment injected with a TTL that expires before the host (the monitor sees it, the
    host never does) is followed by the real one: the copies differ, which is reported
    (ON_ERROR overlap_conflict); the overlap policy says which copy the stream keeps."""
    sc = Scenario()
    sc.handshake()
    sc.raw(CLI, flags="PA", seq=sc.next_seq(CLI), ack=sc.next_seq(SVR), data=b"EVIL!")
    sc.send(CLI, b"GOOD!")
    sc.send(SVR, b"ok")
    sc.close()
    d = Pair(mos.MonitorConfig(overlap=overlap))
    got: list[bytes] = []
    d.sock.on(mos.ON_CONN_END, callback=lambda f, s, e: got.append(f.peek(mos.SVR)))
    d.run(sc.frames)
    assert "overlap_conflict" in [k for k, _, _ in errors(d)]
    assert d.records[0]["c2s"]["bytes"] == 5
    # delivered bytes stay delivered; what the buffer holds at the end follows the policy
    assert got == [b"EVIL!" if overlap == "first" else b"GOOD!"]
