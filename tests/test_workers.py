"""`mostool flows --workers N` gives exactly what one process gives."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from mostool.cli import main
from mostool.stack.engine import shard_of

ROOT = Path(__file__).resolve().parents[1]
NETGEN = ROOT.parent / "shared" / "pcaps" / "netgen"
CAPTURES = sorted(NETGEN.glob("*.pcap")) if NETGEN.is_dir() else []
CAPTURES += sorted((ROOT / "sample_pcaps").glob("*.pcap"))
CAPTURES += sorted((ROOT / "sample_pcaps" / "synthetic").glob("*.pcap"))


def flows(*argv: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    assert main(["flows", *argv], out=out, err=err) == 0, err.getvalue()
    return out.getvalue()


@pytest.mark.parametrize("pcap", CAPTURES, ids=[p.stem for p in CAPTURES])
def test_two_workers_give_the_single_process_output(pcap: Path) -> None:
    one = flows("-r", str(pcap), "--hash")
    assert one == flows("-r", str(pcap), "--hash", "--workers", "2")


def test_three_workers_and_a_bpf_filter() -> None:
    pcap = ROOT / "sample_pcaps" / "http_small.pcap"
    one = flows("-r", str(pcap), "--format", "csv", "tcp", "port", "80")
    assert one == flows("-r", str(pcap), "--format", "csv", "--workers", "3", "tcp", "port", "80")


def test_shard_is_symmetric() -> None:
    a, b = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    for n in (2, 3, 8):
        assert shard_of(a, 40000, b, 80, n) == shard_of(b, 80, a, 40000, n)


def test_workers_refuse_what_they_cannot_merge(tmp_path: Path) -> None:
    pcap = ROOT / "sample_pcaps" / "http_small.pcap"
    err = io.StringIO()
    code = main(["flows", "-r", str(pcap), "--workers", "2", "--events-out",
                 str(tmp_path / "e.jsonl")], out=io.StringIO(), err=err)
    assert code == 2 and err.getvalue().count("\n") == 1
    code = main(["flows", "-r", str(pcap), "--workers", "0"], out=io.StringIO(), err=err)
    assert code == 2
