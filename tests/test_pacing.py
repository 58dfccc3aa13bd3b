"""Replay pacing through the command line: --speed, --realtime, --pps, --mbps, --max-gap.

Pacing happens in the source and never changes a timestamp, so the event trace at any pace is
the trace at top speed, byte for byte. The elapsed-time checks are loose on purpose: the lower
bound is firm (the schedule is absolute, a paced replay cannot finish early), the upper bound
generous (a busy machine may lag); this is not a benchmark.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from mostool.cli import main
from mostool.replay import read_capture

TARGET = 1.0  # seconds a paced replay should take here
SLACK = 0.02  # timer resolution below the schedule
GENEROUS = 20.0  # seconds of lag tolerated above it


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def timed(*argv: str) -> tuple[float, int, str, str]:
    t0 = time.monotonic()
    code, out, err = run_cli(*argv)
    return time.monotonic() - t0, code, out, err


@pytest.fixture
def sample(samples: Path) -> Path:
    return samples / "http_small.pcap"


@pytest.fixture
def top_speed_trace(sample: Path) -> str:
    code, out, err = run_cli("events", "-r", str(sample))
    assert code == 0 and err == ""
    assert out.count("\n") > 100
    return out


def _span(path: Path) -> tuple[float, list[tuple[float, int, bytes, int]]]:
    frames = list(read_capture(path))
    return frames[-1][0] - frames[0][0], frames


def test_recorded_pace_with_a_multiplier(sample: Path, top_speed_trace: str) -> None:
    span, _ = _span(sample)
    assert span > 0.05, "the sample needs some span to pace"
    speed = span / TARGET  # here: slower than recorded, so the replay takes about TARGET s
    elapsed, code, out, err = timed("events", "-r", str(sample), "--speed", f"{speed!r}")
    assert code == 0
    assert out == top_speed_trace
    assert elapsed >= span / speed - SLACK
    assert elapsed < span / speed + GENEROUS
    assert "replay lag behind schedule: max" in err


def test_realtime_is_speed_one(samples: Path) -> None:
    path = samples / "synthetic" / "port_reuse.pcap"  # about one second of recorded time
    span, _ = _span(path)
    assert 0.5 < span < 3
    _, _, top, _ = timed("events", "-r", str(path))
    elapsed, code, out, err = timed("events", "-r", str(path), "--realtime")
    assert code == 0 and out == top
    assert span - SLACK <= elapsed < span + GENEROUS


def test_fixed_packet_rate(sample: Path, top_speed_trace: str) -> None:
    _, frames = _span(sample)
    pps = (len(frames) - 1) / (TARGET / 2)
    elapsed, code, out, _ = timed("events", "-r", str(sample), "--pps", f"{pps!r}")
    assert code == 0 and out == top_speed_trace
    assert (len(frames) - 1) / pps - SLACK <= elapsed < TARGET + GENEROUS


def test_fixed_bit_rate(sample: Path, top_speed_trace: str) -> None:
    _, frames = _span(sample)
    bits = sum(f[3] for f in frames[:-1]) * 8  # each frame waits for the previous one's bits
    mbps = bits / (TARGET / 2) / 1e6
    elapsed, code, out, _ = timed("events", "-r", str(sample), "--mbps", f"{mbps!r}")
    assert code == 0 and out == top_speed_trace
    assert bits / (mbps * 1e6) - SLACK <= elapsed < TARGET + GENEROUS


def test_max_gap_skips_idle_hours_with_the_same_events(samples: Path) -> None:
    path = samples / "synthetic" / "idle_timeout.pcap"  # two hours of silence inside
    span, frames = _span(path)
    assert span > 3600
    _, _, top, _ = timed("events", "-r", str(path), "--idle-timeout", "60")
    elapsed, code, out, err = timed("events", "-r", str(path), "--idle-timeout", "60",
                                    "--realtime", "--max-gap", "0.01")
    assert code == 0 and out == top
    assert '"ON_TIMEOUT"' in out  # the idle timeout fired in packet time, as at top speed
    assert elapsed < len(frames) * 0.01 + GENEROUS  # not two hours


def test_flows_identical_at_any_pace(sample: Path) -> None:
    _, _, top, _ = timed("flows", "-r", str(sample), "--hash")
    for pace in (["--speed", "50"], ["--pps", "5000"], ["--mbps", "100"]):
        _, code, out, err = timed("flows", "-r", str(sample), "--hash", *pace)
        assert code == 0 and out == top, pace
        assert err.count("\n") == 1 and "lag" in err


def test_verbose_reports_lag_and_how_the_run_ended(sample: Path) -> None:
    _, code, _, err = timed("flows", "-r", str(sample), "--speed", "100", "-v")
    assert code == 0
    lines = err.splitlines()
    assert lines[0] == "mostool: reading from http_small.pcap"
    assert any("replay lag behind schedule" in line for line in lines)
    assert lines[-1].endswith("to the end")


def test_top_speed_prints_nothing_extra(sample: Path) -> None:
    code, _, err = run_cli("flows", "-r", str(sample))
    assert code == 0 and err == ""


@pytest.mark.parametrize(("args", "words"), [
    (["--speed", "0"], "--speed must be a positive number"),
    (["--speed", "-2"], "--speed must be a positive number"),
    (["--pps", "nan"], "--pps must be a positive number"),
    (["--mbps", "inf"], "--mbps must be a positive number"),
    (["--speed", "2", "--realtime"], "--realtime or --speed"),
    (["--pps", "10", "--mbps", "1"], "one pace"),
    (["--max-gap", "1"], "--max-gap limits the waits of a paced replay"),
    (["--speed", "2", "--max-gap", "-1"], "--max-gap must be >= 0"),
])
def test_bad_pacing_is_a_one_line_error(sample: Path, args: list[str], words: str) -> None:
    code, out, err = run_cli("flows", "-r", str(sample), *args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and words in err, err
