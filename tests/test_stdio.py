"""tcpdump habits: ``-r -`` reads a capture from standard input, ``-w -`` writes the pcap to
standard output (the command's own output then goes to standard error)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
