"""The source interface and the one run loop: ticks, stopping (callback, count, duration,
signals), wrappers, and the command line's stopping options leaving complete output."""

from __future__ import annotations

import io
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from builders import CLI, Scenario

from mostool.cli import main
from mostool.cli.common import stop_on_signals
from mostool.config import MonitorConfig
from mostool.errors import MosError
from mostool.events.types import ON_CONN_END, ON_CONN_NEW_DATA
from mostool.monitor import MONITOR_STREAM, Monitor
from mostool.replay import ReplaySource
from mostool.sources import (
    TICK,
    FilteredSource,
    MemorySource,
    Source,
    is_live,
    source_attr,
    tick,
)

REPO = Path(__file__).resolve().parents[1]


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def conversation(t0: float = 1000.0, port: int = 40000, close: bool = True) -> Scenario:
    sc = Scenario(client=f"10.0.0.1:{port}", t0=t0)
    sc.handshake()
    sc.send(CLI, b"hello")
    if close:
        sc.close()
    return sc


def ends(mon: Monitor) -> list[tuple[int, str]]:
    got: list[tuple[int, str]] = []
    mon.on_flow_end(lambda conn: got.append((conn.id, conn.end_reason)))
    return got


# --- the protocol and the small sources -----------------------------------------------------------


def test_sources_implement_the_protocol(samples: Path) -> None:
    mem = MemorySource([])
    assert isinstance(mem, Source)
    assert isinstance(ReplaySource([samples / "http_small.pcap"]), Source)
    assert isinstance(FilteredSource(mem, "tcp"), Source)
    assert tick(5.0) == (5.0, TICK, b"", 0) and TICK < 0


def test_memory_source_counts_packets_not_ticks_and_restarts() -> None:
    frames = [(1.0, 1, b"ab"), tick(2.0), (3.0, 1, b"cde", 60)]
    src = MemorySource(frames)
    assert list(src.frames()) == [(1.0, 1, b"ab", 2), (2.0, TICK, b"", 0), (3.0, 1, b"cde", 60)]
    assert src.stats()["packets"] == 2 and src.stats()["bytes"] == 5
    it = src.frames()
    next(it)
    src.stop()
    assert list(it) == []
    assert len(list(src.frames())) == 3  # a second run starts again


def test_source_attr_looks_through_wrappers() -> None:
    class Live:
        live = True
        name = "live"
        warnings: list[str] = []

        def frames(self) -> Iterator[Any]:
            return iter(())

        def stop(self) -> None: ...

        def stats(self) -> dict[str, Any]:
            return {}

    inner = Live()
    outer = FilteredSource(FilteredSource(inner, "tcp"), "port 80")
    assert is_live(outer) and source_attr(outer, "live") is True
    assert not is_live(MemorySource([])) and source_attr(outer, "nothing", 7) == 7


def test_filtered_source_passes_ticks() -> None:
    sc = conversation()
    udp = (sc.frames[0][0], 1, b"\xff" * 60, 60)
    src = FilteredSource(MemorySource([*sc.frames[:2], tick(1001.0), udp]), "tcp")
    got = list(src.frames())
    assert got == [*sc.frames[:2], tick(1001.0)]
    assert src.stats()["filtered_in"] == 2


# --- Monitor.run: ticks, stops ------------------------------------------------------------------


def test_ticks_move_the_clock_and_fire_idle_timeouts() -> None:
    sc = conversation(close=False)
    mon = Monitor(MonitorConfig(idle_timeout=10.0))
    mon.socket(MONITOR_STREAM)
    got = ends(mon)
    mon.run(MemorySource([*sc.frames, tick(1005.0)]))
    assert got == [(1, "eof")]
    mon = Monitor(MonitorConfig(idle_timeout=10.0))
    mon.socket(MONITOR_STREAM)
    got = ends(mon)
    mon.run(MemorySource([*sc.frames, tick(1011.0), tick(1012.0)]))
    assert got == [(1, "timeout")]
    assert mon.now == 1012.0


def test_timers_fire_on_ticks_in_packet_time() -> None:
    mon = Monitor()
    fired: list[float] = []
    mon.run(MemorySource([tick(100.0)]))
    mon.settimer(2.0, lambda _t: fired.append(mon.now))
    mon.run(MemorySource([tick(101.0), tick(102.5), tick(103.0)]))
    assert fired == [102.0]


def test_stop_from_a_callback_ends_open_flows_as_stopped() -> None:
    a, b = conversation(port=40001), conversation(t0=1000.0005, port=40002, close=False)
    frames = sorted(a.frames + b.frames, key=lambda f: f[0])
    mon = Monitor()
    sock = mon.socket(MONITOR_STREAM)
    got = ends(mon)

    @sock.on(ON_CONN_NEW_DATA)
    def data(flow: Any, side: Any, event: Any) -> None:
        if flow.id == 2:
            mon.stop()

    stats = mon.run(MemorySource(frames))
    assert got == [(1, "stopped"), (2, "stopped")]
    assert mon.stopped_by == "stop()"
    assert stats["packets"] < len(frames)


def test_end_of_capture_is_eof() -> None:
    mon = Monitor()
    mon.socket(MONITOR_STREAM)
    got = ends(mon)
    mon.run(MemorySource(conversation(close=False).frames))
    assert got == [(1, "eof")] and mon.stopped_by is None


def test_count_stops_after_that_many_packets() -> None:
    sc = conversation()
    frames = [sc.frames[0], tick(1000.0005), *sc.frames[1:]]
    mon = Monitor()
    mon.socket(MONITOR_STREAM)
    got = ends(mon)
    stats = mon.run(MemorySource(frames), count=4)  # ticks are not packets
    assert stats["packets"] == 4 and got == [(1, "stopped")] and mon.stopped_by == "count"
    mon = Monitor()
    mon.socket(MONITOR_STREAM)
    got = ends(mon)
    mon.run(MemorySource(sc.frames), count=len(sc.frames) + 5)
    assert got == [(1, "fin")] and mon.stopped_by is None


def test_duration_is_packet_time_for_a_replay() -> None:
    sc = conversation()  # frames 1 ms apart from 1000.0
    mon = Monitor()
    mon.socket(MONITOR_STREAM)
    fired: list[float] = []
    mon.settimer(0.0025, lambda _t: fired.append(mon.now))  # from the first packet: inside
    stats = mon.run(MemorySource(sc.frames), duration=0.003)
    assert stats["packets"] == 4  # 1000.000 .. 1000.003
    assert mon.stopped_by == "duration"
    assert fired == [1000.0025]


def test_stop_before_the_run_is_honoured() -> None:
    mon = Monitor()
    mon.socket(MONITOR_STREAM)
    mon.stop("early")
    stats = mon.run(MemorySource(conversation().frames))
    assert stats["packets"] == 0 and mon.stopped_by == "early"
    stats = mon.run(MemorySource(conversation(t0=2000.0).frames))  # the next run is normal
    assert mon.stopped_by is None and stats["packets"] == len(conversation().frames)


@pytest.mark.parametrize(("kw", "value"), [("count", 0), ("count", -1), ("duration", 0.0),
                                           ("duration", float("nan"))])
def test_bad_stop_options(kw: str, value: Any) -> None:
    with pytest.raises(MosError):
        Monitor().run(MemorySource([]), **{kw: value})


def test_second_interrupt_aborts_without_ending_flows() -> None:
    closed: list[bool] = []

    class Src(MemorySource):
        def frames(self) -> Iterator[Any]:
            inner = super().frames()

            def gen() -> Iterator[Any]:
                try:
                    yield from inner
                finally:
                    closed.append(True)
            return gen()

    mon = Monitor()
    sock = mon.socket(MONITOR_STREAM)
    got = ends(mon)
    ended: list[Any] = []
    sock.on(ON_CONN_END, callback=lambda f, s, e: ended.append(e))

    @sock.on(ON_CONN_NEW_DATA)
    def data(flow: Any, side: Any, event: Any) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        mon.run(Src(conversation().frames))
    assert closed == [True] and got == [] and ended == []


def test_signal_handlers_stop_then_abort_and_are_restored() -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers need the main thread")
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    mon = Monitor()
    with pytest.raises(KeyboardInterrupt), stop_on_signals(mon):
        signal.raise_signal(signal.SIGTERM)
        assert mon.stopped_by == "signal SIGTERM"
        signal.raise_signal(signal.SIGINT)
        time.sleep(1)  # the handler raises before this ends
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


# --- the command line's stops leave complete output -----------------------------------------------


def _records(out: str) -> list[dict[str, Any]]:
    assert out.endswith("\n") or out == ""
    return [json.loads(line) for line in out.splitlines()]


def _check_complete(full: list[dict[str, Any]], part: list[dict[str, Any]]) -> None:
    """Every flow that started before the stop has its record, in order; a record differs
    from the full run's only by having been stopped."""
    assert [r["id"] for r in part] == list(range(1, len(part) + 1))
    for mine, whole in zip(part, full, strict=False):
        assert mine["client"] == whole["client"] and mine["start"] == whole["start"]
        if mine["end_reason"] != whole["end_reason"]:
            assert mine["end_reason"] == "stopped"


def test_cli_count(samples: Path) -> None:
    sample = str(samples / "http_small.pcap")
    code, out, _ = run_cli("flows", "-r", sample, "--hash")
    full = _records(out)
    code, out, err = run_cli("flows", "-r", sample, "--hash", "-c", "20")
    assert code == 0 and err == ""
    part = _records(out)
    assert len(part) == sum(1 for r in full if r["first_packet"] <= 20)
    assert any(r["end_reason"] == "stopped" for r in part)
    _check_complete(full, part)
    code, out, _ = run_cli("events", "-r", sample, "-c", "20")
    events = _records(out)
    assert code == 0 and max(e["packet"] for e in events) == 20
    assert any(e.get("reason") == "stopped" for e in events if e["event"] == "ON_CONN_END")


def test_cli_duration_is_capture_time_for_a_replay(samples: Path) -> None:
    sample = str(samples / "http_small.pcap")
    code, out, _ = run_cli("flows", "-r", sample)
    full = _records(out)
    t0 = min(r["start"] for r in full)
    code, out, err = run_cli("flows", "-r", sample, "--duration", "0.02", "-v")
    assert code == 0
    part = _records(out)
    assert "stopped by duration" in err
    assert [r["id"] for r in part] == [r["id"] for r in full if r["start"] <= t0 + 0.02]
    _check_complete(full, part)


@pytest.mark.parametrize("opt", [["-c", "0"], ["-c", "-3"], ["--duration", "-1"],
                                 ["--duration", "0"]])
def test_cli_bad_stop_options(samples: Path, opt: list[str]) -> None:
    code, out, err = run_cli("flows", "-r", str(samples / "http_small.pcap"), *opt)
    assert code == 2 and out == "" and err.count("\n") == 1


def _start(*args: str) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    proc = subprocess.Popen([sys.executable, "-m", "mostool", *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stderr is not None

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    return proc, lines


def _wait_for(lines: queue.Queue[str], text: str, proc: subprocess.Popen[str]) -> list[str]:
    seen: list[str] = []
    end = time.monotonic() + 60
    while time.monotonic() < end:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            assert proc.poll() is None, "".join(seen)
            continue
        seen.append(line)
        if text in line:
            return seen
    proc.kill()
    pytest.fail(f"never saw {text!r}: {''.join(seen)}")


def _drain(lines: queue.Queue[str]) -> str:
    out = []
    while True:
        try:
            out.append(lines.get(timeout=1))
        except queue.Empty:
            return "".join(out)


@pytest.mark.parametrize(("sig", "command"), [(signal.SIGINT, "flows"),
                                              (signal.SIGTERM, "events")])
def test_signal_stops_a_paced_replay_with_complete_output(samples: Path, sig: int,
                                                          command: str) -> None:
    sample = str(samples / "http_small.pcap")
    full = _records(run_cli(command, "-r", sample, "--hash" if command == "flows" else "-v")[1])
    args = [command, "-r", sample, "--pps", "20", "-v"]  # 119 packets: about 6 s
    if command == "flows":
        args.append("--hash")
    proc, lines = _start(*args)
    try:
        _wait_for(lines, "reading from", proc)  # the handlers are in place
        time.sleep(0.7)
        os.kill(proc.pid, sig)
        assert proc.stdout is not None
        out = proc.stdout.read()
        code = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    err = _drain(lines)
    assert code == 0, err
    assert f"stopped by signal {signal.Signals(sig).name}" in err
    assert "Traceback" not in err
    part = _records(out)
    assert part, "some output before the stop"
    if command == "flows":
        _check_complete(full, part)
        assert any(r["end_reason"] == "stopped" for r in part)
    else:
        assert len(part) < len(full)
        assert part[-1]["event"] == "ON_CONN_END" and part[-1]["reason"] == "stopped"
