"""Golden event traces of every bundled and netgen capture, checked through our own plugin.

`pytest --mos-update` rewrites them after an intended change (the diff then shows what the
change did to every trace); `pytest --mos-prune` removes the goldens of captures that are gone.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mostool.testing.golden import read_golden

TESTS = Path(__file__).resolve().parent
SAMPLES = TESTS.parent / "sample_pcaps"
NETGEN = TESTS.parent.parent / "shared" / "pcaps" / "netgen"
SAMPLE_PCAPS = sorted(SAMPLES.glob("*.pcap")) + sorted(SAMPLES.glob("synthetic/*.pcap"))
NETGEN_PCAPS = sorted(NETGEN.glob("*.pcap"))


@pytest.mark.parametrize("pcap", SAMPLE_PCAPS, ids=lambda p: p.relative_to(SAMPLES).as_posix())
def test_sample_trace(mos_golden, pcap: Path) -> None:
    mos_golden.check(pcap)


@pytest.mark.parametrize("pcap", NETGEN_PCAPS or [None],
                         ids=lambda p: p.name if p else "absent")
def test_netgen_trace(mos_golden, pcap: Path | None) -> None:
    if pcap is None:
        pytest.skip(f"netgen captures not found at {NETGEN} (../shared is not beside the "
                    "checkout)")
    mos_golden.check(pcap)


def test_http_app_trace(mos_golden) -> None:
    """An app's UDE in the trace: the shipped http app's requests, and how flows end."""
    mos_golden.check(SAMPLES / "http_small.pcap", app="http",
                     events=["http_request", "ON_CONN_START", "ON_CONN_END"])
    # the truth file: 3 connections closed by FIN, one refused, one reset; the app's socket
    # sees ON_CONN_END at both hooks
    truth = json.loads((SAMPLES / "http_small.json").read_text())
    fins = sum(c["outcome"] == "fin" for c in truth["connections"])
    mos_golden.expect(SAMPLES / "http_small.pcap", app="http", event="ON_CONN_END",
                      count=2 * fins, where={"reason": "fin"})
    mos_golden.expect(SAMPLES / "http_small.pcap", app="http", event="http_request",
                      min_count=fins, where={"side": "SVR", "length__gt": 0})


def _trace_in_new_process(pcap: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "mostool", "golden", "trace", str(pcap)],
                          capture_output=True, text=True, check=True, timeout=120)
    return done.stdout


@pytest.mark.parametrize("pcap", SAMPLE_PCAPS[:3], ids=lambda p: p.name)
def test_trace_is_the_same_in_two_processes_and_equals_the_golden(pcap: Path) -> None:
    first = _trace_in_new_process(pcap)
    second = _trace_in_new_process(pcap)
    assert first == second
    golden = TESTS / "golden" / "test_golden_traces" / f"test_sample_trace[{pcap.name}].jsonl"
    header, lines = read_golden(golden)
    assert first.splitlines()[1:] == lines
    assert header["sha256"] == json.loads(first.splitlines()[0])["sha256"]
