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
from builders import CLI, SVR, Scenario
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
