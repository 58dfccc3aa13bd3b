"""tcpdump habits: ``-r -`` reads a capture from standard input, ``-w -`` writes the pcap to
standard output (the command's own output then goes to standard error)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from mostool.pcapfile import PcapWriter, read_capture

SAMPLES = Path(__file__).resolve().parents[1] / "sample_pcaps"
HTTP = SAMPLES / "http_small.pcap"
MOSTOOL = [sys.executable, "-m", "mostool"]


def _run(*argv: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*MOSTOOL, *argv], input=stdin, capture_output=True, timeout=120)


@pytest.mark.parametrize("command", [["flows", "--hash"], ["events"]])
def test_read_from_standard_input(command: list[str]) -> None:
    from_file = _run(*command, "-r", str(HTTP))
    from_stdin = _run(*command, "-r", "-", stdin=HTTP.read_bytes())
    assert from_file.returncode == from_stdin.returncode == 0, from_stdin.stderr
    assert from_stdin.stdout == from_file.stdout and from_file.stdout


def test_pcapng_from_standard_input(tmp_path: Path) -> None:
    if not _have("editcap"):
        pytest.skip("editcap (Debian: wireshark-common, with tshark) is not installed")
    ng = tmp_path / "x.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(HTTP), str(ng)], check=True)
    assert _run("flows", "-r", "-", stdin=ng.read_bytes()).stdout == \
        _run("flows", "-r", str(HTTP)).stdout


def _have(tool: str) -> bool:
    import shutil
    return shutil.which(tool) is not None


def test_write_to_standard_output_reads_back(tmp_path: Path) -> None:
    done = _run("flows", "-r", str(HTTP), "-w", "-")
    assert done.returncode == 0, done.stderr
    assert done.stdout[:4] == b"\xd4\xc3\xb2\xa1"          # a little-endian classic pcap
    assert b'"client"' in done.stderr                      # the flow records went to stderr
    out = tmp_path / "out.pcap"
    out.write_bytes(done.stdout)
    assert _run("flows", "--hash", "-r", str(out)).stdout == \
        _run("flows", "--hash", "-r", str(HTTP)).stdout
    piped = _run("flows", "--hash", "-r", "-", stdin=done.stdout)
    assert piped.stdout == _run("flows", "--hash", "-r", str(HTTP)).stdout


def test_standard_input_once_and_empty_input() -> None:
    twice = _run("flows", "-r", "-", "-r", "-", stdin=b"")
    assert twice.returncode == 2 and b"once" in twice.stderr
    empty = _run("flows", "-r", "-", stdin=b"")
    assert empty.returncode == 2 and b"Traceback" not in empty.stderr


# -- -w -: refusals, a closed pipe, a failed write -----------------------------------------


def test_write_to_standard_output_refusals() -> None:
    collide = _run("flows", "-r", str(HTTP), "-w", "-", "--flows-out", "-")
    assert collide.returncode == 2 and b"cannot both write standard output" in collide.stderr
    watch = _run("watch", "-r", str(HTTP), "-w", "-")
    assert watch.returncode == 2 and b"watch draws on standard output" in watch.stderr
    controller, terminal = pty.openpty()
    try:
        tty = subprocess.run([*MOSTOOL, "flows", "-r", str(HTTP), "-w", "-"], stdout=terminal,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=120)
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
    proc = subprocess.Popen([*MOSTOOL, "events", "-r", str(HTTP), "-w", "-"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    header = proc.stdout.read(24)
    proc.stdout.close()
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=120) == 0
    assert header[:4] == b"\xd4\xc3\xb2\xa1"
    assert b"Traceback" not in err and b"Exception ignored" not in err


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("target", ["/dev/full", "-"])
def test_a_failed_write_is_a_warning_and_status_1(target: str) -> None:
    """A full disk: the run says so on stderr and exits 1, never with a traceback."""
    with open("/dev/full", "wb") as full:
        done = subprocess.run([*MOSTOOL, "flows", "-r", str(HTTP), "-w", target],
                              stdout=full if target == "-" else subprocess.DEVNULL,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=120)
    assert done.returncode == 1, done.stderr
    assert b"mostool: warning: cannot write" in done.stderr
    assert b"No space left on device" in done.stderr and b"Traceback" not in done.stderr


# -- the one PcapWriter (replay -w, live -w, -w -) ------------------------------------------


def test_pcap_writer_raw_and_float_timestamps_agree(tmp_path: Path) -> None:
    frames = list(read_capture(HTTP))
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
    assert list(read_capture(a)) == frames and by_float.count == by_raw.count == len(frames)
    assert by_float.error is None and by_raw.error is None


def test_pcap_writer_keeps_one_link_type_and_an_empty_capture_is_valid(tmp_path: Path) -> None:
    out = tmp_path / "mixed.pcap"
    w = PcapWriter(out)
    w.write(1.5, 1, b"\x00" * 60, 60)
    w.write(2.0, 101, b"\x45" + b"\x00" * 39, 40)
    w.close()
    assert w.count == 1 and w.skipped_linktype == 1 and len(list(read_capture(out))) == 1
    empty = tmp_path / "empty.pcap"
    PcapWriter(empty).close()
    assert empty.stat().st_size == 24 and list(read_capture(empty)) == []


def test_pcap_writer_keeps_a_write_error_instead_of_raising() -> None:
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


def test_one_pcap_writer_in_the_tree() -> None:
    """``-w`` of a replay, of a live capture and ``-w -`` all write through one class."""
    import mostool.live
    import mostool.sinks.pcap_out
    assert mostool.sinks.pcap_out.PcapWriter is PcapWriter
    assert mostool.live.PcapWriter is PcapWriter
