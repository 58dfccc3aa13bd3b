"""The plan on a real Dask cluster: `dask scheduler` and two `dask worker` processes on
127.0.0.1 give byte for byte what one process gives (flows --hash, events, idle timeouts), also
when a worker is killed in the middle of a run."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import mostool
from mostool.cli import main

pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC = ROOT / "sample_pcaps" / "synthetic"
BUNDLED = sorted((ROOT / "sample_pcaps").glob("*.pcap")) + sorted(SYNTHETIC.glob("*.pcap"))
NETGEN = ROOT.parent / "shared" / "pcaps" / "netgen"
DASK = str(Path(sys.executable).with_name("dask"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """A scheduler and two workers, each its own process (no nanny: a kill is a real loss)."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        port = _free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        full_env = dict(os.environ, **(env or {}))
        # the test modules, importable on the workers as a user's modules must be: cloudpickle
        # ships what is importable by reference
        here = Path(__file__).resolve().parent
        full_env["PYTHONPATH"] = os.pathsep.join(
            [str(here), str(here / "corpus"), *filter(None, [os.environ.get("PYTHONPATH")])])
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        self.scheduler = subprocess.Popen(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port),
             "--no-dashboard"], env=full_env, **quiet)
        self.workers = [subprocess.Popen(
            [DASK, "worker", self.address, "--host", "127.0.0.1", "--nthreads", "1",
             "--no-nanny", "--no-dashboard"], env=full_env, **quiet) for _ in range(2)]
        from distributed import Client
        deadline = time.monotonic() + 30
        while True:
            try:
                with Client(self.address, timeout="2s") as client:
                    client.wait_for_workers(2, timeout=30)
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.close()
                    raise

    def close(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            if proc.poll() is None:
                proc.terminate()
        for proc in [*self.workers, self.scheduler]:
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def rotated(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The netgen many-short-connections capture cut into rotated files of 300 packets."""
    if shutil.which("editcap") is None:
        pytest.skip("editcap (Wireshark's) is not installed")
    src = NETGEN / "http_many_short.pcap"
    if not src.is_file():
        pytest.skip("shared netgen captures not found")
    out = tmp_path_factory.mktemp("rotated")
    subprocess.run(["editcap", "-c", "300", str(src), str(out / "cut.pcap")], check=True)
    files = sorted(str(p) for p in out.iterdir())
    assert len(files) > 4
    return files


def cli(*argv: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    assert main(list(argv), out=out, err=err) == 0, err.getvalue()
    return out.getvalue()


def reads(files: list[str] | list[Path]) -> list[str]:
    return [arg for f in files for arg in ("-r", str(f))]


def single(files: list[str], config: object, setup: object) -> tuple[list[dict], list[dict]]:
    """What one process gives for an app: its flow records and its --events-out trace."""
    from mostool.apps import load_app
    from mostool.monitor import Monitor
    from mostool.replay import ReplaySource
    from mostool.sinks.events_out import EventRecorder
    mon = Monitor(config)  # type: ignore[arg-type]
    if isinstance(setup, str):
        load_app(setup).start(mon)
    elif setup is not None:
        setup(mon)  # type: ignore[operator]
    trace = io.StringIO()
    EventRecorder(mon, trace).attach()
    flows: list[dict] = []
    mon.on_flow_end(lambda conn: flows.append(conn.record()))
    mon.run(ReplaySource(files))
    flows.sort(key=lambda r: r["first_packet"])     # as `mostool flows` lists them
    return flows, [json.loads(line) for line in trace.getvalue().splitlines()]


def netgen() -> list[Path]:
    files = sorted(NETGEN.glob("*.pcap"))
    if not files:
        pytest.skip("shared netgen captures not found")
    return files


@pytest.mark.parametrize("command", [["flows", "--hash"], ["events"],
                                     ["flows", "--hash", "--idle-timeout", "0.05"],
                                     ["events", "--idle-timeout", "0.05"]],
                         ids=["flows", "events", "flows-idle", "events-idle"])
def test_bundled_captures_together(cluster: Cluster, command: list[str]) -> None:
    one = cli(*command, *reads(BUNDLED))
    assert one
    assert cli(*command, *reads(BUNDLED), "--dask", cluster.address) == one


@pytest.mark.parametrize("command", [["flows", "--hash"], ["events"],
                                     ["events", "--idle-timeout", "0.5"]],
                         ids=["flows", "events", "events-idle"])
def test_netgen_captures_together(cluster: Cluster, command: list[str]) -> None:
    files = netgen()
    one = cli(*command, *reads(files))
    assert cli(*command, *reads(files), "--dask", cluster.address) == one


@pytest.mark.parametrize("command", [["flows", "--hash"], ["events"],
                                     ["events", "--idle-timeout", "0.005"]],
                         ids=["flows", "events", "events-idle"])
def test_rotated_files(cluster: Cluster, rotated: list[str], command: list[str]) -> None:
    whole = cli(*command, "-r", str(NETGEN / "http_many_short.pcap"))
    # flows cross the file boundaries: the cut files give what the whole capture gives
    assert cli(*command, *reads(rotated)) == whole
    assert cli(*command, *reads(rotated), "--dask", cluster.address) == whole
    if "--idle-timeout" in command:
        assert "\"reason\": \"timeout\"" in whole


def test_idle_timeouts_fire_in_every_partition(cluster: Cluster, rotated: list[str]) -> None:
    one = cli("flows", "--idle-timeout", "0.005", *reads(rotated))
    assert '"end_reason": "timeout"' in one
    assert cli("flows", "--idle-timeout", "0.005", *reads(rotated), "--dask",
               cluster.address) == one


def test_progress_skew_and_scratch(cluster: Cluster, tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    scratch = tmp_path / "scratch"
    code = main(["flows", *reads(BUNDLED), "--dask", cluster.address, "--scratch",
                 str(scratch)], out=out, err=err)
    assert code == 0, err.getvalue()
    text = err.getvalue()
    assert "mostool: route: " in text and "mostool: analyse: " in text
    assert "partitions" in text and "us/packet" in text
    assert list(scratch.iterdir()) == []                # the shards are gone
    code = main(["flows", *reads(BUNDLED), "--dask", cluster.address, "--scratch",
                 str(scratch), "--keep-shards"], out=io.StringIO(), err=err)
    assert code == 0
    (kept,) = scratch.iterdir()
    assert any(p.name.startswith("piece-0.part-") for p in kept.iterdir())


def test_notebook_entry_with_a_shipped_function(cluster: Cluster) -> None:
    from mostool.config import MonitorConfig
    from mostool.dist import run_partitions
    from mostool.events.types import ON_CONN_START
    from mostool.monitor import MONITOR_STREAM

    def setup(mon):  # a closure defined here: it reaches the workers by cloudpickle
        mon.socket(MONITOR_STREAM).on(ON_CONN_START, callback=lambda f, s, e: None)

    from distributed import Client
    files = reads(BUNDLED)[1::2]
    config = MonitorConfig(hash_streams=True)
    with Client(cluster.address) as client:
        got = run_partitions(files, config, setup, client, monitor_class=mostool.Monitor)
    assert got == single(files, config, setup)
    assert len(got[0]) > 10 and len(got[1]) > 100


def test_an_app_that_cannot_be_shipped_is_a_clear_error() -> None:
    from mostool.dist import DistError, ship_app
    lock = threading.Lock()

    def setup(mon):
        with lock:
            pass

    with pytest.raises(DistError, match="cannot ship the app"):
        ship_app(setup)


def test_workers_that_cannot_read_the_input(cluster: Cluster, tmp_path: Path) -> None:
    from mostool.dist import DistError, run_partitions
    with pytest.raises(DistError, match="cannot read the input"):
        run_partitions([str(tmp_path / "only-on-my-laptop.pcap")], None, None,
                       cluster.address, monitor_class=mostool.Monitor)


APP = '''
import os, time
def setup(mon):
    mark = os.environ.get("MOSTOOL_TEST_MARK")
    if mark:
        open(os.path.join(mark, str(os.getpid())), "w").close()
        time.sleep(2)
'''


def test_a_worker_killed_mid_run(tmp_path: Path) -> None:
    """The analyse phase is slowed down by the app (2 s per partition); once a partition has
    started on the second worker, that worker is killed: Dask runs it again on the first."""
    from mostool.config import MonitorConfig
    from mostool.dist import run_partitions
    files = netgen()[:4]
    app = tmp_path / "slow_app.py"
    app.write_text(APP)
    marks = tmp_path / "marks"
    marks.mkdir()
    config = MonitorConfig(hash_streams=True)
    c = Cluster(env={"MOSTOOL_TEST_MARK": str(marks)})
    try:
        victim = c.workers[1]

        def kill_when_started() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if (marks / str(victim.pid)).exists():
                    os.kill(victim.pid, signal.SIGKILL)
                    return
                time.sleep(0.05)

        killer = threading.Thread(target=kill_when_started)
        killer.start()
        flows, events = run_partitions([str(f) for f in files], config, str(app), c.address,
                                       partitions=4, monitor_class=mostool.Monitor)
        killer.join()
        assert victim.poll() is not None            # it was killed during the run
    finally:
        c.close()
    assert (flows, events) == single([str(f) for f in files], config, str(app))
    assert len(flows) > 10 and len(events) > 100


def test_route_key_is_symmetric_and_deterministic() -> None:
    from mostool.dist.route import route_key
    ip = bytes.fromhex("4500002800010000400600000a0000010a000002")
    tcp = (40000).to_bytes(2, "big") + (80).to_bytes(2, "big") + bytes(16)
    back = ip[:12] + ip[16:20] + ip[12:16]
    tcp_back = tcp[2:4] + tcp[0:2] + tcp[4:]
    key = route_key(101, ip + tcp)
    assert key is not None and key >= 0
    assert route_key(101, back + tcp_back) == key                  # both directions meet
    other_port = tcp[:2] + (81).to_bytes(2, "big") + tcp[4:]
    assert route_key(101, ip + other_port) != key                   # flows spread
    # the same answer in another process (no salted hash())
    code = "from mostool.dist.route import route_key; import sys; " \
           f"print(route_key(101, bytes.fromhex('{(ip + tcp).hex()}')))"
    assert subprocess.check_output([sys.executable, "-c", code], text=True).strip() == str(key)
    later = ip[:6] + bytes([0x00, 0x10]) + ip[8:]   # a fragment at offset 128: no ports
    assert route_key(101, later + tcp) == -1
    assert route_key(1, bytes(12) + b"\x08\x06" + bytes(28)) is None     # ARP


@pytest.mark.parametrize("command", [["flows", "--hash"], ["events", "--idle-timeout", "0.005"]],
                         ids=["flows", "events-idle"])
def test_one_classic_pcap_cut_into_byte_ranges(cluster: Cluster, command: list[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import mostool.dist.pieces as pieces
    monkeypatch.setattr(pieces, "_MIN_PIECE", 16384)    # ranges of a small capture
    pcap = str(NETGEN / "http_many_short.pcap")
    if not os.path.isfile(pcap):
        pytest.skip("shared netgen captures not found")
    ranges = pieces.plan_pieces([pcap], 4)
    assert len(ranges) > 2 and ranges[-1][4]
    one = cli(*command, "-r", pcap)
    assert cli(*command, "-r", pcap, "--dask", cluster.address) == one


def test_monitor_run_on_a_cluster_is_refused_by_the_compiled_engine() -> None:
    import mostool
    from mostool.dist import DistError
    from mostool.monitor import MONITOR_STREAM, Monitor
    if not mostool.COMPILED:
        pytest.skip("the pure engine ships a set-up Monitor (test_monitor_run_on_a_cluster)")
    mon = Monitor()
    mon.socket(MONITOR_STREAM)
    with pytest.raises(DistError, match="MOSTOOL_PURE=1"):
        mon.run(str(BUNDLED[0]), cluster="local:1")


@pytest.mark.pure_engine
def test_monitor_run_on_a_cluster(cluster: Cluster) -> None:
    from mostool.config import MonitorConfig
    from mostool.events.types import ON_CONN_START
    from mostool.monitor import MONITOR_STREAM, Monitor

    def setup(mon: Monitor) -> None:
        mon.socket(MONITOR_STREAM).on(ON_CONN_START, callback=lambda f, s, e: None)

    files = [str(f) for f in netgen()[:3]]
    config = MonitorConfig(hash_streams=True)
    mon = Monitor(config)
    setup(mon)
    stats = mon.run(files, cluster=cluster.address)
    flows, events = single(files, config, setup)
    assert (stats["flows"], stats["events"]) == (flows, events)
    assert stats["packets"] > 1000 and len(flows) > 10


def test_streams_on_the_cluster(cluster: Cluster, tmp_path: Path) -> None:
    files = reads([str(f) for f in netgen()[:4]] + [str(p) for p in BUNDLED[:3]])
    one_dir, many_dir = tmp_path / "one", tmp_path / "many"
    one = cli("streams", *files, "-o", str(one_dir))
    many = cli("streams", *files, "-o", str(many_dir), "--dask", cluster.address)
    assert many.replace(str(many_dir), "DIR") == one.replace(str(one_dir), "DIR")
    names = sorted(p.name for p in one_dir.iterdir())
    assert len(names) > 10 and names == sorted(p.name for p in many_dir.iterdir())
    for name in names:
        assert (one_dir / name).read_bytes() == (many_dir / name).read_bytes(), name


def test_run_prints_the_apps_lines_in_capture_order(cluster: Cluster) -> None:
    import re
    files = reads([f for f in netgen() if f.name.startswith("http_")])
    one = cli("run", "--app", "http", *files)
    many = cli("run", "--app", "http", *files, "--dask", cluster.address)
    # the lines an app prints as it goes come in the single run's order; the flow ids in
    # them are the partitions' own (the README says so), the reports come per partition
    def lines(text: str) -> list[str]:
        return [re.sub(r"#\d+", "#", x) for x in text.splitlines() if x.startswith("#")]
    assert lines(many) == lines(one) and len(lines(one)) > 100
