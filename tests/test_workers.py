"""`--workers N` (every worker reads the capture in place and keeps its share of the flows,
mostool.dist.shared) gives exactly what one process gives: flows, events, streams."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from mostool.cli import main
from mostool.config import MonitorConfig
from mostool.stack.engine import shard_of

ROOT = Path(__file__).resolve().parents[1]
NETGEN = ROOT.parent / "shared" / "pcaps" / "netgen"
CAPTURES = sorted(NETGEN.glob("*.pcap")) if NETGEN.is_dir() else []
CAPTURES += sorted((ROOT / "sample_pcaps").glob("*.pcap"))
CAPTURES += sorted((ROOT / "sample_pcaps" / "synthetic").glob("*.pcap"))
SMALL = sorted((ROOT / "sample_pcaps").glob("*.pcap"))
SMALL += sorted((ROOT / "sample_pcaps" / "synthetic").glob("*.pcap"))
SMALL += sorted((ROOT / "sample_pcaps" / "tunnels").glob("*.pcap"))


def flows(*argv: str) -> str:
    return command("flows", *argv)


def command(*argv: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    assert main(list(argv), out=out, err=err) == 0, err.getvalue()
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


@pytest.mark.parametrize("pcap", SMALL, ids=[p.stem for p in SMALL])
def test_events_in_workers_are_the_single_process_trace(pcap: Path) -> None:
    """Every event (orphans, RAW-level anomalies of non-TCP frames, tunnels, fragments) once,
    in capture order, with a single run's packet numbers and flow ids."""
    one = command("events", "-r", str(pcap), "--midstream")
    assert one == command("events", "-r", str(pcap), "--midstream", "--workers", "3")


@pytest.mark.parametrize("pcap", ["synthetic/idle_timeout.pcap", "impaired_small.pcap",
                                  "http_small.pcap"])
def test_timers_fire_at_the_single_process_packets(pcap: str) -> None:
    """Idle timeouts fall due at another worker's packets: they fire there, not at the next
    packet of the worker's own."""
    path = str(ROOT / "sample_pcaps" / pcap)
    for timeout in ("0.001", "0.05"):
        one = command("events", "-r", path, "--idle-timeout", timeout)
        assert one == command("events", "-r", path, "--idle-timeout", timeout,
                              "--workers", "2")
        assert flows("-r", path, "--idle-timeout", timeout) == flows(
            "-r", path, "--idle-timeout", timeout, "--workers", "2")


def test_streams_in_workers(tmp_path: Path) -> None:
    pcap = str(ROOT / "sample_pcaps" / "http_small.pcap")
    command("streams", "-r", pcap, "-o", str(tmp_path / "one"))
    command("streams", "-r", pcap, "-o", str(tmp_path / "two"), "--workers", "2")
    one = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*"))
    two = sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*"))
    assert one == two and len(one) > 1
    for rel in one:
        a, b = tmp_path / "one" / rel, tmp_path / "two" / rel
        assert a.is_dir() == b.is_dir()
        if a.is_file():
            assert a.read_bytes() == b.read_bytes(), rel


def test_keep_shards_is_for_dask() -> None:
    pcap = ROOT / "sample_pcaps" / "http_small.pcap"
    err = io.StringIO()
    code = main(["flows", "-r", str(pcap), "--workers", "2", "--keep-shards"],
                out=io.StringIO(), err=err)
    assert code == 2 and "--dask" in err.getvalue()


def _setup(mon: Any) -> None:
    """An app whose callbacks raise events of their own kind (for the trace)."""
    from mostool.events.types import ON_CONN_START
    from mostool.monitor import MONITOR_STREAM
    mon.socket(MONITOR_STREAM).on(ON_CONN_START, callback=lambda f, s, e: None)


def test_the_notebook_entry_on_local_processes() -> None:
    """``run_partitions(..., cluster=N)`` (an int: local processes) reads in place too, and
    gives one process's flows and --events-out trace."""
    from mostool.dist import run_partitions
    from mostool.monitor import Monitor
    from mostool.replay import ReplaySource
    from mostool.sinks.events_out import EventRecorder
    files = [str(p) for p in SMALL[:4]]
    config = MonitorConfig(hash_streams=True)
    mon = Monitor(config)
    _setup(mon)
    trace = io.StringIO()
    EventRecorder(mon, trace).attach()
    records: list[dict[str, Any]] = []
    mon.on_flow_end(lambda flow: records.append(flow.record()))
    mon.run(ReplaySource(files))
    records.sort(key=lambda r: r["first_packet"])
    one = records, [json.loads(line) for line in trace.getvalue().splitlines()]
    got = run_partitions(files, config, _setup, 3, monitor_class=Monitor)
    assert got == one and len(one[1]) > 100


def test_a_worker_that_dies_is_one_line(tmp_path: Path) -> None:
    """A worker killed mid-run (here: its app exits the process at the first flow) is a clear
    error, not a traceback."""
    app = tmp_path / "exits.py"
    app.write_text("import os\n"
                   "from mostool import MONITOR_STREAM, ON_CONN_START\n"
                   "def setup(mon):\n"
                   "    mon.socket(MONITOR_STREAM).on(ON_CONN_START,\n"
                   "                                  callback=lambda f, s, e: os._exit(3))\n")
    pcap = ROOT / "sample_pcaps" / "http_small.pcap"
    err = io.StringIO()
    code = main(["run", "-r", str(pcap), "--app", str(app), "--workers", "2"],
                out=io.StringIO(), err=err)
    assert code == 2 and "worker process died" in err.getvalue()
    assert err.getvalue().count("\n") == 1


def test_an_error_in_a_worker_is_the_single_process_error(tmp_path: Path) -> None:
    """A worker's exception travels back to the parent (pickled through its pipe) and is
    reported as one process reports it."""
    app = tmp_path / "raises.py"
    app.write_text("def setup(mon):\n    raise RuntimeError('no setup today')\n")
    pcap = str(ROOT / "sample_pcaps" / "http_small.pcap")
    got = []
    for extra in ([], ["--workers", "2"]):
        err = io.StringIO()
        code = main(["run", "-r", pcap, "--app", str(app), *extra], out=io.StringIO(), err=err)
        got.append((code, err.getvalue()))
    assert got[0] == got[1] and got[0][0] == 2 and "no setup today" in got[0][1]


def test_what_workers_print_reaches_standard_output_once(tmp_path: Path) -> None:
    """A worker's own prints (the notebook entry keeps no record of them) are flushed before
    it exits, and what the parent had not yet flushed when forking is written once."""
    import subprocess
    import sys
    app = tmp_path / "prints.py"
    app.write_text("from mostool import MONITOR_STREAM, ON_CONN_START\n"
                   "def setup(mon):\n"
                   "    mon.socket(MONITOR_STREAM).on(ON_CONN_START,\n"
                   "                                  callback=lambda f, s, e: print('a flow'))\n")
    pcap = ROOT / "sample_pcaps" / "http_small.pcap"
    script = ("import mostool\nfrom mostool.dist import run_partitions\n"
              "print('before the workers')\n"
              f"flows, _ = run_partitions([{str(pcap)!r}], None, {str(app)!r}, 2,\n"
              "                          monitor_class=mostool.Monitor)\n"
              "print('flows', len(flows))\n")
    import os
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # a pipe: buffered
    text = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=True, env=env).stdout
    flows = int(text.splitlines()[-1].split()[1])
    assert text.startswith("before the workers\n") and text.count("before the workers") == 1
    # (two workers write to one pipe: their lines may interleave)
    assert text.count("a flow") == flows > 0
