"""tcpdump's ``-r -`` and ``-w -`` (issue #16): a capture read from standard input, a pcap
written to standard output, and the one PcapWriter that ``-w`` uses everywhere.

Every command line runs in a fresh interpreter with real pipes, as a shell would run it."""

from __future__ import annotations

import io
import json
import os
import pty
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cmd_helpers import SAMPLES

from mostool.pcapfile import PcapWriter, read_capture, spool
from mostool.replay import ReplaySource

PCAP = SAMPLES / "http_small.pcap"
MOSTOOL = [sys.executable, "-m", "mostool"]


def _mostool(*argv: str, stdin: bytes | int | None = None, stdout: int | None = None,
             ) -> subprocess.CompletedProcess[bytes]:
    feed = stdin if isinstance(stdin, bytes) else None
    return subprocess.run([*MOSTOOL, *argv], input=feed,
                          stdin=stdin if isinstance(stdin, int) else
                          (None if feed is not None else subprocess.DEVNULL),
                          stdout=stdout if stdout is not None else subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=120, check=False)


def _frames(path: Path) -> list[tuple[float, int, bytes, int]]:
    return list(read_capture(path))


# -- -r - ----------------------------------------------------------------------------------------


def test_flows_from_a_pipe_equal_flows_from_the_file() -> None:
    direct = _mostool("flows", "-r", str(PCAP), "--hash")
    piped = _mostool("flows", "-r", "-", "--hash", stdin=PCAP.read_bytes())
    assert direct.returncode == piped.returncode == 0
    assert piped.stdout == direct.stdout and len(direct.stdout.splitlines()) == 5
    assert piped.stderr == b""


def test_events_from_stdin_redirected_from_a_file(tmp_path: Path) -> None:
    # `mostool events -r - < x.pcap`: a regular file on stdin is mapped, not copied
    direct = _mostool("events", "-r", str(PCAP))
    with open(PCAP, "rb") as f:
        redirected = _mostool("events", "-r", "-", stdin=f.fileno())
    assert redirected.returncode == 0 and redirected.stdout == direct.stdout


def test_pcapng_from_a_pipe(tmp_path: Path) -> None:
    editcap = shutil.which("editcap")
    if editcap is None:
        pytest.skip("editcap (wireshark-common) is not installed")
    ng = tmp_path / "x.pcapng"
    subprocess.run([editcap, "-F", "pcapng", str(PCAP), str(ng)], check=True)
    direct = _mostool("flows", "-r", str(ng), "--hash")
    piped = _mostool("flows", "-r", "-", "--hash", stdin=ng.read_bytes())
    assert piped.returncode == 0 and piped.stdout == direct.stdout
    assert piped.stdout == _mostool("flows", "-r", str(PCAP), "--hash").stdout


def test_unusable_stdin_is_a_usage_error() -> None:
    empty = _mostool("flows", "-r", "-", stdin=b"")
    assert empty.returncode == 2 and b"stdin: empty input" in empty.stderr
    junk = _mostool("flows", "-r", "-", stdin=b"GET / HTTP/1.1\r\n\r\n")
    assert junk.returncode == 2 and junk.stderr.startswith(b"mostool: error: stdin: not a pcap")
    twice = _mostool("flows", "-r", "-", "-r", "-", stdin=PCAP.read_bytes())
    assert twice.returncode == 2 and b"can be given once" in twice.stderr
    workers = _mostool("flows", "-r", "-", "--workers", "2", stdin=PCAP.read_bytes())
    assert workers.returncode == 2 and b"standard input" in workers.stderr


def test_a_terminal_on_stdin_is_refused() -> None:
    controller, terminal = pty.openpty()
    try:
        proc = _mostool("flows", "-r", "-", stdin=terminal)
    finally:
        os.close(controller)
        os.close(terminal)
    assert proc.returncode == 2 and b"stdin: is a terminal" in proc.stderr


def test_replay_source_reads_stdin_once_and_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The library takes ``-`` too; standard input is spooled once, so a second ``frames()``
    (which re-reads every file) gets the same frames again."""
    data = PCAP.read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    src = ReplaySource("-")
    assert src.name == "stdin" and src.total_bytes == len(data)
    expected = _frames(PCAP)
    assert list(src.frames()) == expected
    assert list(src.frames()) == expected
    src.close()


def test_spool_copies_a_stream_into_a_mappable_file() -> None:
    data = PCAP.read_bytes()
    spooled = spool(io.BytesIO(data))
    try:
        assert os.fstat(spooled.fileno()).st_size == len(data)
        spooled.seek(0)
        assert spooled.read() == data
    finally:
        spooled.close()


# -- -w - ----------------------------------------------------------------------------------------


def test_write_to_stdout_reads_back_to_the_same_packets(tmp_path: Path) -> None:
    out = tmp_path / "y.pcap"
    with open(out, "wb") as f:
        proc = _mostool("flows", "-r", str(PCAP), "-w", "-", "--hash", stdout=f.fileno())
    assert proc.returncode == 0
    assert _frames(out) == _frames(PCAP)
    # the flow records moved to standard error, unchanged
    assert proc.stderr == _mostool("flows", "-r", str(PCAP), "--hash").stdout
    assert not Path("-").exists()
    tshark = shutil.which("tshark")
    if tshark is not None:
        count = subprocess.run([tshark, "-r", str(out)], capture_output=True, check=True)
        assert len(count.stdout.splitlines()) == len(_frames(PCAP))


def test_w_dash_into_r_dash_pipeline() -> None:
    """`mostool flows -r x -w - --flow 2 | mostool flows -r -`: the chosen flow's packets."""
    first = subprocess.Popen([*MOSTOOL, "flows", "-r", str(PCAP), "-w", "-", "--flow", "2"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    second = subprocess.run([*MOSTOOL, "flows", "-r", "-"], stdin=first.stdout,
                            capture_output=True, timeout=120, check=False)
    assert first.stdout is not None and first.stderr is not None
    first.stdout.close()
    first_err = first.stderr.read()
    assert first.wait(timeout=120) == 0 and second.returncode == 0
    chosen = [json.loads(line) for line in first_err.splitlines() if line.startswith(b"{")]
    got = [json.loads(line) for line in second.stdout.splitlines()]
    assert len(got) == 1
    wanted = next(r for r in chosen if r["id"] == 2)
    assert (got[0]["client"], got[0]["server"]) == (wanted["client"], wanted["server"])
    assert got[0]["c2s"]["bytes"] == wanted["c2s"]["bytes"]


def test_w_dash_refusals() -> None:
    collide = _mostool("flows", "-r", str(PCAP), "-w", "-", "--flows-out", "-")
    assert collide.returncode == 2 and b"cannot both write standard output" in collide.stderr
    watch = _mostool("watch", "-r", str(PCAP), "-w", "-")
    assert watch.returncode == 2 and b"watch draws on standard output" in watch.stderr
    controller, terminal = pty.openpty()
    try:
        tty = _mostool("flows", "-r", str(PCAP), "-w", "-", stdout=terminal)
        os.set_blocking(controller, False)
        try:
            shown = os.read(controller, 65536)
        except BlockingIOError:
            shown = b""
    finally:
        os.close(controller)
        os.close(terminal)
    assert tty.returncode == 2 and b"standard output is a terminal" in tty.stderr
    assert b"\xd4\xc3\xb2\xa1" not in shown          # no capture bytes reached the terminal


def test_a_closed_pipe_ends_the_written_run_quietly() -> None:
    proc = subprocess.Popen([*MOSTOOL, "events", "-r", str(PCAP), "-w", "-"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    header = proc.stdout.read(24)
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0
    assert header[:4] == b"\xd4\xc3\xb2\xa1"
    assert b"Traceback" not in err and b"Exception ignored" not in err


# -- PcapWriter ----------------------------------------------------------------------------------


def test_pcap_writer_raw_and_float_timestamps_agree(tmp_path: Path) -> None:
    frames = _frames(PCAP)
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    by_float = PcapWriter(a)
    for frame in frames:
        by_float.write(*frame)
    by_float.close()
    by_raw = PcapWriter(b, linktype=frames[0][1])          # a live capture knows its link type
    for ts, _lt, data, wire in frames:
        sec = int(ts)
        by_raw.write_raw(sec, round((ts - sec) * 1e6), data, wire)
    by_raw.close()
    assert a.read_bytes() == b.read_bytes()
    assert _frames(a) == frames and by_float.count == by_raw.count == len(frames)
    assert by_float.error is None and by_raw.error is None


def test_pcap_writer_keeps_one_link_type_and_an_empty_capture_is_valid(tmp_path: Path) -> None:
    out = tmp_path / "mixed.pcap"
    w = PcapWriter(out)
    w.write(1.5, 1, b"\x00" * 60, 60)
    w.write(2.0, 101, b"\x45" + b"\x00" * 39, 40)
    w.close()
    assert w.count == 1 and w.skipped_linktype == 1 and len(_frames(out)) == 1
    empty = tmp_path / "empty.pcap"
    PcapWriter(empty).close()
    assert empty.stat().st_size == 24 and _frames(empty) == []


def test_pcap_writer_reports_a_write_error_instead_of_raising() -> None:
    r, w = os.pipe()
    os.close(r)
    stream = os.fdopen(w, "wb", buffering=0)
    try:
        writer = PcapWriter(stream)
        writer.write(1.0, 1, b"\x00" * 60, 60)
        writer.write(2.0, 1, b"\x00" * 60, 60)           # dropped, no exception
        writer.close()
        assert writer.error is not None and "Broken pipe" in writer.error
        assert writer.reader_gone and writer.count == 0
    finally:
        stream.close()


@pytest.mark.skipif(not (hasattr(os, "geteuid") and os.geteuid() == 0),
                    reason="needs root to capture on the loopback interface")
def test_live_capture_written_to_stdout(tmp_path: Path) -> None:
    """`mostool flows -i lo -w - -c 3 tcp port P > y.pcap`: LiveSource writes the captured
    packets through the same PcapWriter, to standard output."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    out = tmp_path / "y.pcap"
    with open(out, "wb") as f:
        proc = subprocess.Popen([*MOSTOOL, "flows", "-i", "lo", "-w", "-", "-c", "3", "-v",
                                 "tcp", "port", str(port)],
                                stdout=f, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        assert proc.stderr is not None
        try:
            line = b""
            while b"listening on" not in line:
                line = proc.stderr.readline()
                assert line, "the capture did not start"
            deadline = time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < deadline:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                    peer, _ = srv.accept()
                    c.sendall(b"hello")
                    peer.close()
                time.sleep(0.2)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stderr.close()
            srv.close()
    frames = _frames(out)
    assert len(frames) == 3
    assert all(port.to_bytes(2, "big") in data for _ts, _lt, data, _wire in frames)
