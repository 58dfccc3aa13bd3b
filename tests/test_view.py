"""The watch view: what it collects, what it draws, and the real thing in a terminal (tmux)."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from builders import CLI, SVR, Scenario
from cmd_helpers import SAMPLES, run, runner_script
from rich.console import Console

import mostool as mos
from mostool.apps import start_apps
from mostool.cli.watch import WATCH_RCVBUF
from mostool.replay import ReplaySource
from mostool.sources import MemorySource
from mostool.view import Sampler, Watch
from mostool.view.render import render_screen, render_summary

HTTP_SMALL = SAMPLES / "http_small.pcap"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def flow_records(pcap: Path) -> list[dict[str, Any]]:
    from mostool.cli import main
    out = io.StringIO()
    assert main(["flows", "-r", str(pcap)], out=out, err=io.StringIO()) == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]


def watched(pcap: Path, apps: list[str] | None = None, **kw: Any) -> Watch:
    mon = mos.Monitor(mos.MonitorConfig(rcvbuf=WATCH_RCVBUF) if not apps else None)
    start_apps(mon, apps)
    console = Console(file=io.StringIO(), width=130, height=42, record=True)
    w = Watch(mon, console, interactive=False, **kw)
    w.run(ReplaySource([str(pcap)]))
    return w


def screen_text(w: Watch, width: int = 130, height: int = 42) -> str:
    snap = w.final
    assert snap is not None
    console = Console(file=io.StringIO(), width=width, height=height, record=True)
    console.print(render_screen(snap, width, height))
    return console.export_text()


# -- the model -----------------------------------------------------------------------------------


def test_snapshot_counts_the_sample_capture() -> None:
    w = watched(HTTP_SMALL)
    snap = w.final
    assert snap is not None and snap.finished
    assert snap.packets == 119 and snap.bytes == 71946      # netgen's capture truth
    assert snap.flows == 5 and snap.active == 0
    assert snap.events["ON_CONN_START"] == 5 and snap.events["ON_CONN_END"] == 5
    assert snap.end_reasons == {"fin": 3, "rst": 2}
    assert snap.progress is not None and snap.progress[0] == snap.progress[1]
    assert abs(snap.packet_time - 0.10148) < 1e-3
    records = {r["id"]: r for r in flow_records(HTTP_SMALL)}
    # every flow is a row (ended, as the capture is over), busiest first
    assert [r.id for r in snap.rows] == sorted(
        records, key=lambda i: -(records[i]["c2s"]["bytes"] + records[i]["s2c"]["bytes"]))
    for row in snap.rows:
        rec = records[row.id]
        assert (row.client, row.server, row.ended) == (rec["client"], rec["server"],
                                                       rec["end_reason"])
        assert (row.c2s, row.s2c) == (rec["c2s"]["bytes"], rec["s2c"]["bytes"])
        assert row.packets == rec["c2s"]["packets"] + rec["s2c"]["packets"]
    # the feed: each flow's start and end, in packet time order
    starts = [e.flow for e in snap.feed if e.name == "ON_CONN_START"]
    ends = [(e.flow, e.detail) for e in snap.feed if e.name == "ON_CONN_END"]
    assert sorted(starts) == [1, 2, 3, 4, 5]
    assert sorted(ends) == [(1, "reason=fin"), (2, "reason=fin"), (3, "reason=fin"),
                            (4, "reason=rst"), (5, "reason=rst")]
    assert [e.ts for e in snap.feed] == sorted(e.ts for e in snap.feed)


def test_the_apps_udes_are_counted_by_name() -> None:
    w = watched(HTTP_SMALL, ["http"])
    snap = w.final
    assert snap is not None
    assert snap.udes["http_request"] == 15 and snap.udes["http_response"] == 15
    assert snap.udes["http"] > 0                 # the chain's inner link: counted
    feed = {e.name for e in snap.feed}
    assert "http_response" in feed and "http" not in feed   # ... but kept out of the feed
    text = screen_text(w)
    assert re.search(r"http_request \(UDE\)\s+15", text)


def test_anomalies_errors_and_checksums() -> None:
    synthetic = SAMPLES / "synthetic"
    w = watched(synthetic / "overlap_conflict.pcap")
    snap = w.final
    assert snap is not None
    assert snap.anomalies["overlap conflicts"] >= 1 and snap.anomalies["retransmissions"] >= 1
    # sampled from the flow's counters, not subscribed to (that would cost the fast path)
    assert any(e.name == "ON_ERROR" and "overlap_conflict" in e.detail for e in snap.feed)
    assert any(e.name == "ON_REXMIT" and e.side == "SVR" for e in snap.feed)
    assert "ON_REXMIT" not in snap.events and not snap.errors
    w = watched(synthetic / "overlap_conflict.pcap", all_events=True)
    assert w.final is not None and w.final.errors.get("overlap_conflict", 0) >= 1
    assert w.final.events["ON_REXMIT"] >= 1
    w = watched(synthetic / "bad_checksum.pcap")
    assert w.final is not None and w.final.anomalies["bad checksums"] == 1
    w = watched(synthetic / "orphans_mixed.pcap")
    assert w.final is not None and w.final.anomalies["orphans"] >= 3


def test_all_events_observes_state_changes() -> None:
    w = watched(HTTP_SMALL, all_events=True)
    snap = w.final
    assert snap is not None
    assert snap.events["ON_TCP_STATE_CHANGE"] > 0 and snap.events["ON_PKT_IN"] > 0
    assert snap.events["ON_CONN_START"] == 5
    assert any(e.name == "ON_TCP_STATE_CHANGE" and "->" in e.detail for e in snap.feed)


def test_gaps_are_counted() -> None:
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"a" * 100)
    lost = sc.send(CLI, b"b" * 100)
    sc.send(CLI, b"c" * 100)
    sc.drop(lost)
    sc.ack(SVR)
    sc.close()
    mon = mos.Monitor(mos.MonitorConfig(rcvbuf=0))
    w = Watch(mon, Console(file=io.StringIO()), interactive=False)
    snap = w.run(MemorySource(sc.frames))
    assert snap.anomalies["gaps"] == 1 and snap.anomalies["gap bytes"] == 100


def test_callback_errors_reach_the_feed(tmp_path: Path) -> None:
    app = tmp_path / "bad.py"
    app.write_text("import mostool as mos\n"
                   "def setup(mon):\n"
                   "    sock = mon.socket(mos.MONITOR_STREAM)\n"
                   "    sock.on(mos.ON_CONN_START, mos.HK_SND, lambda f, s, e: 1 / 0)\n")
    w = watched(HTTP_SMALL, [str(app)])
    snap = w.final
    assert snap is not None and snap.anomalies["callback errors"] == 5
    failures = [e for e in snap.feed if e.kind == "failure"]
    assert failures and "ZeroDivisionError" in failures[0].detail
    assert failures[0].name == "ON_CONN_START"


def test_live_source_header() -> None:
    class FakeLive(MemorySource):
        live = True

        def stats(self) -> dict[str, Any]:
            return {"packets": 7, "received": 9, "kernel_drops": 2, "ifdrops": 0}

    sc = Scenario()
    sc.handshake()
    sc.close()
    mon = mos.Monitor(mos.MonitorConfig(rcvbuf=0))
    w = Watch(mon, Console(file=io.StringIO()), interactive=False)
    src = FakeLive(sc.frames, name="eth9")
    snap = w.run(src)
    assert snap.kind == "live" and snap.progress is None
    assert snap.anomalies["kernel drops"] == 2
    console = Console(file=io.StringIO(), width=120, height=40, record=True)
    console.print(render_screen(snap, 120, 40))
    text = console.export_text()
    assert "live eth9" in text and "dropped by kernel 2" in text


# -- the sampler ----------------------------------------------------------------------------------


def test_sampler_passes_every_frame_and_checks_between_batches() -> None:
    sc = Scenario()
    sc.handshake()
    for _ in range(50):
        sc.send(CLI, b"x" * 10)
    sc.close()
    strides: list[int] = []

    def check() -> int:
        strides.append(len(strides) + 1)
        return len(strides) + 1

    src = Sampler(MemorySource(sc.frames), check)
    assert list(src.frames()) == [(float(f[0]), f[1], f[2], f[3]) for f in sc.frames]
    assert src.first_ts == sc.frames[0][0]
    assert src.bytes == sum(f[3] for f in sc.frames)
    assert sum(strides[:-1]) + 1 <= len(sc.frames)          # batches of 1, 2, 3, ...
    mon = mos.Monitor()
    mon.socket(mos.MONITOR_STREAM)
    stats = mon.run(Sampler(MemorySource(sc.frames), lambda: 3))
    assert stats["packets"] == len(sc.frames) and stats["flows"] == 1


def test_keys_sort_pause_and_quit() -> None:
    r, w_fd = os.pipe()
    keys = os.fdopen(r, "r")
    try:
        mon = mos.Monitor()
        w = Watch(mon, Console(file=io.StringIO()), interactive=False, keys=keys)
        os.write(w_fd, b"s")
        w._poll_keys()
        assert w.model.sort == "rate"
        os.write(w_fd, b"ss")
        w._poll_keys()
        assert w.model.sort == "age"
        os.write(w_fd, b"q")
        w._poll_keys()
        assert w._quit
    finally:
        keys.close()
        os.close(w_fd)


# -- rendering ------------------------------------------------------------------------------------


def test_screen_shows_header_flows_feed_and_counters() -> None:
    w = watched(HTTP_SMALL)
    text = screen_text(w)
    assert "mostool watch" in text and "replay http_small.pcap" in text
    assert "100.0%" in text and "packets 119" in text and "bytes 71.9 kB" in text
    assert "flows 5" in text and "active 0" in text and "packet time 0.101s" in text
    for rec in flow_records(HTTP_SMALL):
        line = next(x for x in text.splitlines() if f" {rec['client']} " in x)
        assert f"{rec['c2s']['bytes']:,}" in line and f"{rec['s2c']['bytes']:,}" in line
        assert f"END {rec['end_reason']}" in line and rec["server"] in line
    assert re.search(r"#5 BOTH ON_CONN_END reason=rst", text)
    assert re.search(r"ON_CONN_START\s+5", text) and re.search(r"orphans\s+2", text)
    assert "finished - press q to quit" in text


def test_summary_table() -> None:
    w = watched(HTTP_SMALL)
    assert w.final is not None
    console = Console(file=io.StringIO(), width=120, record=True)
    console.print(render_summary(w.final, w.model.top_flows(3)))
    text = console.export_text()
    assert "119 packets, 71,946 bytes, 5 flows" in text
    assert "busiest flows (top 3 by bytes)" in text
    assert re.search(r"fin\s+3", text) and re.search(r"rst\s+2", text)


def test_watch_without_a_terminal_prints_a_plain_summary() -> None:
    code, out, err = run("watch", "-r", str(HTTP_SMALL))
    assert code == 0, err
    assert not ANSI.search(out)
    assert "mostool watch: http_small.pcap" in out and "busiest flows" in out
    assert re.search(r"ON_CONN_END\s+5", out)


def test_watch_errors_are_one_line(tmp_path: Path) -> None:
    code, _, err = run("watch", "-r", str(tmp_path / "missing.pcap"))
    assert code == 2 and err.count("\n") == 1 and "missing.pcap" in err
    code, _, err = run("watch", "-r", str(HTTP_SMALL), "--app", "no_such_app_xyz")
    assert code == 2 and err.count("\n") == 1 and "no app named 'no_such_app_xyz'" in err
    code, _, err = run("watch", "-r", str(HTTP_SMALL), "tcp port")
    assert code == 2 and err.count("\n") == 1


# -- in a real terminal ---------------------------------------------------------------------------


def _capture(sock: str) -> str:
    return subprocess.run(["tmux", "-L", sock, "capture-pane", "-p", "-t", "watch"],
                          capture_output=True, text=True, check=True).stdout


def _wait_for(sock: str, needle: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = _capture(sock)
        if needle in text:
            return text
        time.sleep(0.2)
    raise AssertionError(f"{needle!r} never appeared on the screen:\n{text}")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (apt-get install tmux)")
def test_watch_in_a_terminal(tmp_path: Path) -> None:
    """`mostool watch` in tmux (120x40): the live screen, keys, then the summary at exit."""
    sock = f"mostool-test-{uuid.uuid4().hex[:8]}"
    argv = runner_script(tmp_path) + ["watch", "-r", str(HTTP_SMALL), "--app", "http",
                                      "--hold"]
    command = " ".join(argv) + "; echo EXIT=$?; sleep 600"
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    subprocess.run(["tmux", "-L", sock, "-f", "/dev/null", "new-session", "-d", "-x", "120",
                    "-y", "40", "-s", "watch", command], check=True, env=env)
    try:
        screen = _wait_for(sock, "finished - press q to quit")
        (tmp_path / "screen.txt").write_text(screen)
        lines = screen.splitlines()
        assert len(lines) >= 38 and "mostool watch" in lines[0]
        assert "replay http_small.pcap" in screen and "100.0%  done" in screen
        assert "packets 119" in screen and "flows 5" in screen and "active 0" in screen
        for rec in flow_records(HTTP_SMALL):
            row = next(x for x in lines if f" {rec['client']} " in x)
            assert rec["server"] in row and f"END {rec['end_reason']}" in row
            assert f"{rec['c2s']['bytes']:,}" in row and f"{rec['s2c']['bytes']:,}" in row
        assert re.search(r"#5 BOTH ON_CONN_END reason=rst", screen)
        assert re.search(r"CLI\s+http_response", screen)
        assert re.search(r"http_request \(UDE\)\s+15", screen)
        assert re.search(r"ON_CONN_START\s+5", screen)
        subprocess.run(["tmux", "-L", sock, "send-keys", "-t", "watch", "s"], check=True)
        _wait_for(sock, "sorted by rate")
        subprocess.run(["tmux", "-L", sock, "send-keys", "-t", "watch", "q"], check=True)
        after = _wait_for(sock, "EXIT=0")
        assert "http: 15 request(s) (GET 9, POST 6)" in after
        assert "busiest flows (top 5 by bytes)" in after
    finally:
        subprocess.run(["tmux", "-L", sock, "kill-server"], capture_output=True)


def test_interactive_run_draws_and_counts_like_the_plain_one() -> None:
    """The full-screen path (drawn into a fake terminal): same numbers, frames drawn."""
    frames: list[Any] = []
    for i in range(40):
        sc = Scenario(f"10.0.0.1:{40000 + i}", "10.0.0.2:80", t0=1_700_000_000.0 + i)
        sc.handshake()
        sc.send(CLI, b"GET / HTTP/1.1\r\n\r\n")
        sc.send(SVR, b"x" * (100 * (i + 1)))
        sc.close()
        frames.extend(sc.frames)
    frames.sort(key=lambda f: f[0])
    ticks = iter(range(1_000_000))
    mon = mos.Monitor(mos.MonitorConfig(rcvbuf=WATCH_RCVBUF))
    console = Console(file=io.StringIO(), width=120, height=40, force_terminal=True)
    w = Watch(mon, console, interactive=True, clock=lambda: next(ticks) * 0.01)
    snap = w.run(MemorySource(frames))
    assert w.draws > 3                       # a fake clock: a frame every few batches
    assert snap.flows == 40 and snap.events["ON_CONN_END"] == 40
    assert snap.end_reasons == {"fin": 40}
    assert [r.id for r in w.model.top_flows(3)] == [40, 39, 38]
    assert "mostool watch" in console.file.getvalue()  # type: ignore[attr-defined]


def test_paced_replay_keeps_the_view_live_through_a_recorded_gap(tmp_path: Path) -> None:
    """A capture with a months-long gap in recorded time, replayed at --speed 10: the view keeps
    drawing while the replay waits, says it is waiting and for how long, the ETA is at least
    that wait, and q ends the run at once (not at the next packet, weeks later)."""
    import threading
    sc = Scenario("10.0.0.1:40000", "10.0.0.2:80")
    sc.handshake()
    sc.advance(90 * 86400.0)                   # three months of silence
    sc.send(CLI, b"late")
    path = tmp_path / "gap.pcap"
    sc.write_pcap(path)
    r, w_fd = os.pipe()
    keys = os.fdopen(r, "r")
    screens: list[str] = []
    try:
        mon = mos.Monitor()
        console = Console(file=io.StringIO(), force_terminal=True, width=140, height=40)
        w = Watch(mon, console, interactive=True, refresh=20.0, keys=keys)
        shown = w._show

        def show(snap: Any) -> None:
            screens.append(f"{snap.waiting} {snap.eta}")
            shown(snap)
        w._show = show  # type: ignore[method-assign]
        done = threading.Event()

        def quit_when_waiting() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not done.is_set():
                if any(not s.startswith("None") for s in screens[-3:]):
                    os.write(w_fd, b"q")
                    return
                time.sleep(0.05)
        t = threading.Thread(target=quit_when_waiting)
        t.start()
        snap = w.run(ReplaySource(str(path), speed=10))
        done.set()
        t.join()
        waits = [s for s in screens if not s.startswith("None")]
        assert waits, "the view never drew while the replay waited"
        waited, eta = (float(x) for x in waits[-1].split())
        assert 86400 * 8 < waited <= 90 * 86400 / 10 and eta >= waited
        assert snap.packets == 3 and mon.stopped_by == "q key"
        frame = render_screen(w.snapshot(), 140, 40)
        probe = Console(file=io.StringIO(), width=140, height=40)
        probe.print(frame)
    finally:
        keys.close()
        os.close(w_fd)
