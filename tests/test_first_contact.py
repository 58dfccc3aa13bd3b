"""What a user meets first (issue #16): hostile captures never drive the terminal, nothing is
dropped in silence, tcpdump's habits, the outputs data tools read."""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from builders import CLI, SVR, Scenario, write_pcap
from cmd_helpers import ROOT, SAMPLES, run
from rich.console import Console

import mostool as mos
from mostool import cli
from mostool.sources import MemorySource

HOSTILE_LINES = [
    b"GET /\x1b]0;PWNED\x07\x1b[31mred\x1b[0m HTTP/1.1",           # retitle, recolour
    b"GET /[bold]styled[/] HTTP/1.1",                               # rich markup
    b"GET /\xff\xfe\xc3\x28 HTTP/1.1",                              # invalid UTF-8
    b"GET /" + b"A" * 5000 + b" HTTP/1.1",                          # a very long line
    b"GET /\r\x1b[2J\x9b31m HTTP/1.1",                              # CR, clear screen, C1 CSI
]


def _hostile_pcap(tmp_path: Path) -> Path:
    frames: list[Any] = []
    for i, line in enumerate(HOSTILE_LINES):
        client = f"[fd00::{i + 1}]:{40000 + i}" if i % 2 else f"10.0.0.{i + 1}:{40000 + i}"
        server = "[fd00::100]:80" if i % 2 else "10.0.0.100:80"
        s = Scenario(client, server, t0=1_700_000_000.0 + i)
        s.handshake()
        request = line + b"\r\nHost: [bold]x[/]\r\n\r\n"
        s.send(CLI, request)
        s.send(CLI, request, seq_offset=0)                  # a retransmission (rexmit app)
        s.ack(SVR)
        s.send(SVR, b"HTTP/1.1 200 \x1b]2;OWNED\x07\r\nContent-Length: 0\r\n\r\n")
        s.ack(CLI)
        s.close(CLI)
        frames += s.frames
    frames.sort(key=lambda f: f[0])
    path = tmp_path / "hostile.pcap"
    write_pcap(path, frames)
    return path


def _assert_terminal_safe(text: str) -> None:
    for ch in text:
        assert ch in "\n" or ch.isprintable(), f"{ch!r} reached the terminal"


def test_hostile_capture_through_every_command_for_people(tmp_path: Path) -> None:
    pcap = str(_hostile_pcap(tmp_path))
    outputs = []
    for argv in (["run", "-r", pcap, "--app", "http"],
                 ["run", "-r", pcap, "--app", "midstat"],
                 ["run", "-r", pcap, "--app", "rexmit"],
                 ["run", "-r", pcap, "--app", "early_stop"],
                 ["watch", "-r", pcap, "--app", "http", "--plain"],
                 ["flows", "-r", pcap, "--format", "table"],
                 ["streams", "-r", pcap, "-o", str(tmp_path / "streams")]):
        code, out, err = run(*argv)
        assert code == 0, (argv, err)
        _assert_terminal_safe(out)
        _assert_terminal_safe(err)
        outputs.append(out)
    http = outputs[0]
    assert "GET /\\x1b]0;PWNED\\x07\\x1b[31mred\\x1b[0m HTTP/1.1" in http
    assert "GET /[bold]styled[/] HTTP/1.1" in http                # shown as it is, not styled
    assert "\\xff\\xfe\\xc3(" in http                              # invalid UTF-8, escaped
    assert "\\r\\x1b[2J\\x9b31m" in http
    long_line = next(line for line in http.splitlines() if "AAAA" in line)
    assert len(long_line) < 700 and long_line.rstrip().endswith("…")
    assert "HTTP/1.1 200 \\x1b]2;OWNED\\x07" in http
    # IPv6 rows show their addresses, columns apart, in every table and report
    for out in outputs[:3] + outputs[4:6]:
        assert "[fd00::2]:40001" in out, out
    assert "[fd00::2]:40001  [fd00::100]:80" in outputs[0]               # http report
    midstat_rows = [line for line in outputs[1].splitlines() if "fd00::2]" in line]
    assert midstat_rows and all("]:40001 " in row and "]:80 " in row for row in midstat_rows)
    # machine outputs stay exact: the stream files hold the bytes as captured
    got = b"".join(p.read_bytes() for p in (tmp_path / "streams").iterdir()
                   if p.name.startswith("010.000.000.001"))
    assert HOSTILE_LINES[0] in got


def test_watch_tables_show_ipv6_addresses() -> None:
    from mostool.view import Watch
    from mostool.view.render import render_screen, render_summary
    s = Scenario("[fd00::1]:40000", "[fd00::2]:80")
    s.handshake()
    s.send(CLI, b"x" * 10)
    mon = mos.Monitor()
    w = Watch(mon, Console(file=io.StringIO()), interactive=False)
    w.run(MemorySource(s.frames))
    snap = w.snapshot(finished=True)
    for renderable in (render_screen(snap, 140, 40),
                       render_summary(snap, w.model.top_flows(5))):
        console = Console(file=io.StringIO(), width=140, height=40)
        console.print(renderable)
        text = console.file.getvalue()  # type: ignore[attr-defined]
        assert "[fd00::1]:40000" in text and "[fd00::2]:80" in text


# -- nothing dropped in silence -------------------------------------------------------------------


def _midstream_pcap(tmp_path: Path) -> Path:
    frames: list[Any] = []
    for i in range(3):
        s = Scenario(f"10.0.0.1:{40000 + i}", "10.0.0.2:80", t0=100.0 + i)
        s.handshake()
        s.send(CLI, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        s.send(SVR, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        s.ack(CLI)
        frames += s.frames[3:]                      # the capture began after the handshake
    path = tmp_path / "midstream.pcap"
    write_pcap(path, sorted(frames, key=lambda f: f[0]))
    return path


def test_untracked_connections_are_said_and_midstream_picks_them_up(tmp_path: Path) -> None:
    pcap = str(_midstream_pcap(tmp_path))
    code, out, err = run("flows", "-r", pcap, "-v")
    assert code == 0 and out == ""
    assert "9 TCP packets of 3 connections not tracked" in err and "--midstream" in err
    assert "9 TCP packets untracked" in err          # the -v summary too
    code, out, err = run("flows", "-r", pcap, "--midstream")
    assert len(out.splitlines()) == 3 and "not tracked" not in err
    code, out, err = run("run", "-r", pcap, "--midstream", "--app", "http")
    assert out.count("GET /a HTTP/1.1") == 3 and out.count("HTTP/1.1 200 OK") == 3
    code, out, err = run("watch", "-r", pcap, "--plain")
    assert "not tracked" in err and "untracked TCP" in out


def test_the_last_ack_of_a_closed_flow_is_not_untracked() -> None:
    code, _out, err = run("flows", "-r", str(SAMPLES / "http_small.pcap"))
    assert code == 0 and "not tracked" not in err


def test_unknown_link_type_is_named_once(tmp_path: Path) -> None:
    # a link type that carries no IP we decode (radiotap is decoded since issue #17)
    path = tmp_path / "usb.pcap"
    write_pcap(path, [(1.0 + i, 220, b"\x00" * 40, 40) for i in range(5)], linktype=220)
    code, out, err = run("flows", "-r", str(path))
    assert code == 0 and out == ""
    assert err.count("\n") == 1
    assert "5 frames of link type USB_LINUX_MMAPPED (220) not decoded" in err
    code, out, err = run("watch", "-r", str(path), "--plain")
    line = next(x for x in out.splitlines() if "decode errors" in x)
    assert line.split()[-1] == "5" and "USB_LINUX_MMAPPED (220)" in err


def test_zero_byte_file_is_unusable_input(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcap"
    path.write_bytes(b"")
    for command in ("flows", "events"):
        code, out, err = run(command, "-r", str(path))
        assert code == 2 and out == "" and err.count("\n") == 1 and "empty file" in err


def test_verbose_says_a_damaged_file_was_not_read_to_the_end(tmp_path: Path) -> None:
    path = tmp_path / "cut.pcap"
    path.write_bytes((SAMPLES / "http_small.pcap").read_bytes()[:3000])
    code, _out, err = run("flows", "-r", str(path), "-v")
    assert code == 0 and "cut short" in err
    assert "to the end" not in err and "read up to damage" in err


def test_closed_pipe_ends_the_run_quietly() -> None:
    pcap = ROOT.parent / "shared" / "pcaps" / "netgen" / "bulk_transfer.pcap"
    if not pcap.exists():
        pcap = SAMPLES / "impaired_small.pcap"
    proc = subprocess.Popen([sys.executable, "-m", "mostool", "events", "-r", str(pcap)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0
    assert json.loads(first)["event"] and err == ""


def test_flow_selection_is_never_ignored_in_silence(tmp_path: Path) -> None:
    pcap = str(SAMPLES / "http_small.pcap")
    code, _out, err = run("flows", "-r", pcap, "--flow", "2")
    assert code == 2 and "-w" in err and err.count("\n") == 1
    code, _out, err = run("flows", "-r", pcap, "--flow", "999", "-w", str(tmp_path / "x.pcap"))
    assert code == 0 and "--flow 999 matched no flow" in err


# -- tcpdump's habits -----------------------------------------------------------------------------


def test_version_interfaces_n_and_subcommand_usage(capsys: pytest.CaptureFixture[str]) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["--version"], out, err) == 0
    assert out.getvalue().startswith("mostool ") and out.getvalue().count("\n") >= 1
    code, out_n, _ = run("flows", "-n", "-r", str(SAMPLES / "http_small.pcap"))
    assert code == 0 and len(out_n.splitlines()) == 5
    with pytest.raises(SystemExit) as exc:
        cli.main(["flows", "-r", "x.pcap", "--bogus"], io.StringIO(), io.StringIO())
    assert exc.value.code == 2
    shown = capsys.readouterr().err
    assert shown.startswith("usage: mostool flows") and "unrecognized arguments: --bogus" in shown
    try:
        from mostool.live import interfaces
        names = [i["name"] for i in interfaces()]
    except Exception:  # noqa: BLE001 - no libpcap interfaces here
        pytest.skip("libpcap lists no interface here")
    out = io.StringIO()
    assert cli.main(["-D"], out, io.StringIO()) == 0
    assert names and names[0] in out.getvalue().splitlines()[0]


# -- outputs for data tools -----------------------------------------------------------------------


def test_csv_booleans_and_parquet_round_trip(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow.parquet")
    pcap = str(SAMPLES / "http_small.pcap")
    code, out, _ = run("flows", "-r", pcap, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows and {r["midstream"] for r in rows} == {"false"}
    assert rows[0]["conn_state"] == "SF" and rows[0]["history"].startswith("ShAD")
    target = tmp_path / "flows.parquet"
    code, jsonl, _ = run("flows", "-r", pcap, "--flows-out", str(target))
    assert code == 0
    table = pa.read_table(target).to_pylist()
    records = [json.loads(line) for line in jsonl.splitlines()]
    assert len(table) == len(records) == 5
    for row, rec in zip(table, records, strict=True):
        assert row["client"] == rec["client"] and row["midstream"] is False
        assert row["c2s_bytes"] == rec["c2s"]["bytes"] and row["history"] == rec["history"]
        assert row["start"] == rec["start"]


# -- the live view's latency on a real interface --------------------------------------------------


@pytest.mark.skipif(not (hasattr(os, "geteuid") and os.geteuid() == 0),
                    reason="needs root to capture on the loopback interface")
def test_live_view_shows_a_burst_soon_after_a_quiet_start() -> None:
    """`watch -i lo` started on a quiet link, then a burst of connections: the view's model
    must see them while the run goes on (it used to stay at "packets 0" for seconds, a batch
    size grown during the first packets waiting for as many frames to come). No wall-clock
    bound (the machine may be busy): the burst must be drawn before the run is stopped, and
    the test stops it only once it has been drawn, or after 60 s."""
    from mostool.live import LiveSource
    from mostool.view import Watch

    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(32)
    port = srv.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                conn.recv(1024)
                conn.sendall(b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 4000)

    threading.Thread(target=serve, daemon=True).start()
    mon = mos.Monitor()
    console = Console(file=io.StringIO(), force_terminal=True, width=140, height=40)
    watch = Watch(mon, console, interactive=True, refresh=4.0)
    seen: list[tuple[bool, int]] = []       # (the run asked to stop yet, packets shown)
    stopping: list[bool] = []
    shown = watch._show

    def show(snap: Any) -> None:
        seen.append((bool(stopping), snap.packets))
        shown(snap)
    watch._show = show  # type: ignore[method-assign]

    def traffic() -> None:
        time.sleep(1.5)
        for _ in range(15):
            with socket.create_connection(("127.0.0.1", port)) as c:
                c.sendall(b"GET / HTTP/1.0\r\n\r\n")
                while c.recv(65536):
                    pass
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(p > 0 for _, p in seen):
            time.sleep(0.05)
        time.sleep(0.3)
        stopping.append(True)
        mon.stop("test")

    threading.Thread(target=traffic, daemon=True).start()
    try:
        watch.run(LiveSource("lo", f"tcp port {port}"))
    finally:
        srv.close()
    # drawn while the capture ran: before the fix, the burst waited in the batch until the stop
    first_drawn = next((stopped for stopped, packets in seen if packets > 0), None)
    assert first_drawn is False
    assert seen[-1][1] >= 15 * 5


def test_partial_capture_of_http_responses() -> None:
    """pcapplusplus/650HttpResponses.pcap begins after every handshake (284 HTTP streams)."""
    pcap = ROOT.parent / "shared" / "pcaps" / "pcapplusplus" / "650HttpResponses.pcap"
    if not pcap.exists():
        pytest.skip(f"{pcap} is absent (the shared capture corpus)")
    code, out, err = run("flows", "-r", str(pcap))
    assert code == 0 and out == ""
    assert "682 TCP packets of 284 connections not tracked" in err
    code, out, err = run("run", "-r", str(pcap), "--midstream", "--app", "http")
    summary = next(line for line in out.splitlines() if line.startswith("http: "))
    responses = int(summary.split(" response(s)")[0].rsplit(" ", 1)[1])
    assert responses >= 600 and "on 284 flow(s)" in summary


def test_warnings_and_errors_quoting_capture_content_are_escaped(tmp_path: Path) -> None:
    app = tmp_path / "loud.py"
    app.write_text("import mostool as mos\n"
                   "def setup(mon):\n"
                   "    sock = mon.socket(mos.MONITOR_STREAM)\n"
                   "    def boom(flow, side, ev):\n"
                   "        raise ValueError(flow.ppeek(side, 0, 40).decode(\"latin-1\"))\n"
                   "    sock.on(mos.ON_CONN_NEW_DATA, callback=boom)\n")
    code, _out, err = run("run", "-r", str(_hostile_pcap(tmp_path)), "--app", str(app))
    assert code == 0 and "callback error" in err
    _assert_terminal_safe(err)
    assert "\\x1b]0;PWNED" in err


def test_a_hostile_file_name_is_escaped(tmp_path: Path) -> None:
    path = tmp_path / "x\x1b]0;PWNED\x07.pcap"
    path.write_bytes((SAMPLES / "http_small.pcap").read_bytes())
    for argv in (["flows", "-v", "-r", str(path)], ["watch", "--plain", "-r", str(path)]):
        code, out, err = run(*argv)
        assert code == 0
        _assert_terminal_safe(out)
        _assert_terminal_safe(err)
        assert "\\x1b]0;PWNED\\x07" in out + err
