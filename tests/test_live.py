"""Live capture (mostool.live).

Two parts:

* ``LiveSource`` against a fake libpcap handle (no root, no network): packets and clock ticks,
  the ``write_to`` pcap, an interface going down, libpcap's activation errors, a bad filter,
  timers and idle timeouts driven by ticks, and ``Monitor.run`` stopping a live source.
* Real captures (root): the test makes two network namespaces joined by a veth pair, runs real
  TCP connections between them with Python sockets (known bytes both ways, a FIN close either
  way, an RST abort with SO_LINGER 0, a refused connection), captures on one veth end with
  ``mostool flows -i ... --format jsonl --hash -w OUT.pcap`` stopped by SIGINT, checks every
  connection against what the sockets sent and read, then replays OUT.pcap and gets the same
  flows. Offloads are turned off on the veths so frames are wire-sized with valid checksums
  (without ethtool the default checksum mode "auto" copes with offloaded checksums).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import os
import queue
import random
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pcapy
import pytest
from builders import Scenario

from mostool import live as live_mod
from mostool.cli import main
from mostool.config import MonitorConfig
from mostool.events.types import ON_CONN_START
from mostool.live import LiveError, LiveSource, interfaces
from mostool.monitor import MONITOR_STREAM, Monitor
from mostool.replay import ReplaySource
from mostool.sources import TICK

REPO = Path(__file__).resolve().parents[1]


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


# --- a fake libpcap handle ------------------------------------------------------------------------


class FakeHeader:
    def __init__(self, sec: int, usec: int, wire: int) -> None:
        self._ts = (sec, usec)
        self._wire = wire

    def getts(self) -> tuple[int, int]:
        return self._ts

    def getlen(self) -> int:
        return self._wire


class FakePcap:
    """Hands out scripted packets, then nothing (an idle link); "down" raises as libpcap does
    when the interface goes down."""

    def __init__(self, script: list[Any], status: int = 0, datalink: int = 1) -> None:
        self.script = list(script)
        self.status = status
        self._datalink = datalink
        self.options: dict[str, Any] = {}
        self.closed = False
        self.filter: str | None = None
        self._r, self._w = os.pipe()  # never written: select() just times out

    def set_snaplen(self, n: int) -> None:
        self.options["snaplen"] = n

    def set_promisc(self, v: int) -> None:
        self.options["promisc"] = v

    def set_timeout(self, ms: int) -> None:
        self.options["timeout"] = ms

    def set_buffer_size(self, n: int) -> None:
        self.options["buffer_size"] = n

    def activate(self) -> int:
        return self.status

    def datalink(self) -> int:
        return self._datalink

    def setfilter(self, expr: str) -> None:
        if "(" in expr:
            raise pcapy.PcapError("can't parse filter expression: syntax error")
        self.filter = expr

    def setnonblock(self, v: int) -> None:
        self.options["nonblock"] = v

    def getfd(self) -> int:
        return self._r

    def next(self) -> tuple[FakeHeader | None, bytes]:
        if not self.script:
            return None, b""
        item = self.script.pop(0)
        if item == "down":
            raise pcapy.PcapError("The interface went down")
        sec, usec, data = item
        return FakeHeader(sec, usec, len(data) + 4), data

    def stats(self) -> tuple[int, int, int]:
        return (7, 2, 1)

    def close(self) -> None:
        self.closed = True
        for fd in (self._r, self._w):
            with contextlib.suppress(OSError):
                os.close(fd)


class Plan:
    """What the next fake handle does: its packets and its activation status."""

    def __init__(self) -> None:
        self.script: list[Any] = []
        self.status = 0
        self.made: list[FakePcap] = []


@pytest.fixture
def fake_pcap(monkeypatch: pytest.MonkeyPatch) -> Iterator[Plan]:
    plan = Plan()

    def create(iface: str) -> FakePcap:
        p = FakePcap(plan.script, plan.status)
        plan.made.append(p)
        return p

    monkeypatch.setattr(live_mod.pcapy, "create", create)
    yield plan
    for p in plan.made:
        if not p.closed:
            p.close()


def _frames_script(sc: Scenario) -> list[Any]:
    return [(int(ts), round((ts - int(ts)) * 1e6), data) for ts, _lt, data, _w in sc.frames]


def test_packets_then_ticks(fake_pcap: Plan) -> None:
    fake_pcap.script = [(100, 250000, b"a" * 60), (100, 500001, b"b" * 70)]
    src = LiveSource("fake0", timeout_ms=10, clock=lambda: 2000.0)
    frames = []
    for frame in src.frames():
        frames.append(frame)
        if sum(1 for f in frames if f[1] == TICK) == 2:
            src.stop()
    assert frames[0] == (100 + 250000 / 1e6, 1, b"a" * 60, 64)
    assert frames[1] == (100 + 500001 / 1e6, 1, b"b" * 70, 74)
    ticks = [f for f in frames if f[1] == TICK]
    assert len(ticks) == 2 and all(t[2] == b"" and t[3] == 0 for t in ticks)
    # a tick stays behind the wall clock by the delivery latency (immediate: 1 ms + slack)
    assert all(1999.9 < t[0] < 2000.0 for t in ticks)
    st = src.stats()
    assert st["packets"] == 2 and st["ticks"] == 2 and st["bytes"] == 130
    assert (st["received"], st["kernel_drops"], st["ifdrops"]) == (7, 2, 1)
    assert any("2 packets dropped by the kernel" in w for w in src.warnings)


def test_options_reach_libpcap(fake_pcap: Plan) -> None:
    src = LiveSource("fake0", "tcp port 80", snaplen=96, promisc=False, timeout_ms=250,
                     buffer_size=1 << 22, immediate=False)
    src.close()
    p = fake_pcap.made[-1]
    assert p.options == {"snaplen": 96, "promisc": 0, "timeout": 250, "buffer_size": 1 << 22,
                         "nonblock": 1}
    assert p.filter == "tcp port 80" and p.closed
    LiveSource("fake0").close()  # immediate mode without pcap_set_immediate_mode: 1 ms
    assert fake_pcap.made[-1].options["timeout"] == 1
    assert fake_pcap.made[-1].options["promisc"] == 1


def test_write_to_replays_to_identical_frames(fake_pcap: Plan, tmp_path: Path) -> None:
    script = [(1_700_000_000 + i, (i * 123457) % 1_000_000, bytes([i]) * (40 + i))
              for i in range(20)]
    fake_pcap.script = list(script)
    out = tmp_path / "live.pcap"
    src = LiveSource("fake0", timeout_ms=5, write_to=out)
    got = []
    for frame in src.frames():
        if frame[1] == TICK:
            src.stop()
        else:
            got.append(frame)
    assert len(got) == 20
    assert list(ReplaySource([out]).frames()) == got  # the very same floats, bytes, lengths


def test_interface_going_down_keeps_what_was_seen(fake_pcap: Plan) -> None:
    sc = Scenario(t0=1000.0)
    sc.handshake()
    sc.send(0, b"hello")
    script = _frames_script(sc)
    fake_pcap.script = script + ["down"]
    mon = Monitor(MonitorConfig(hash_streams=True))
    mon.socket(MONITOR_STREAM)
    ended: list[Any] = []
    mon.on_flow_end(ended.append)
    stats = mon.run(LiveSource("fake0", timeout_ms=5))
    assert stats["source"]["packets"] == len(script)
    assert stats["source"]["interface_lost"] == "The interface went down"
    assert [c.end_reason for c in ended] == ["eof"]
    assert ended[0].record()["c2s"]["bytes"] == 5
    assert any("went down" in w and "what was seen is kept" in w for w in mon.warnings)


def test_ticks_fire_timers_and_idle_timeouts(fake_pcap: Plan) -> None:
    sc = Scenario(t0=1000.0)
    sc.handshake()
    fake_pcap.script = _frames_script(sc)
    wall = itertools.count(1000.5, 0.25)  # every read of the wall clock: 250 ms later
    src = LiveSource("fake0", timeout_ms=5, clock=lambda: next(wall))
    mon = Monitor(MonitorConfig(idle_timeout=3.0))
    sock = mon.socket(MONITOR_STREAM)
    fired: list[float] = []
    ended: list[str] = []
    seen: list[float] = []

    @sock.on(ON_CONN_START)
    def start(flow: Any, side: Any, event: Any) -> None:
        seen.append(mon.now)
        mon.settimer(1.0, lambda _tid: fired.append(mon.now))

    def flow_end(conn: Any) -> None:
        ended.append(conn.end_reason)
        mon.stop()

    mon.on_flow_end(flow_end)
    stats = mon.run(src)
    assert src._deadline is not None  # Monitor.run handed over the engine's next deadline
    # no packet after the handshake: only the ticks moved the clock
    assert fired == [seen[0] + 1.0]
    assert ended == ["timeout"]
    assert stats["source"]["ticks"] > 0 and mon.stopped_by == "stop()"


def test_duration_of_a_live_run_is_wall_time(fake_pcap: Plan) -> None:
    fake_pcap.script = [(1000, 0, b"x" * 60)]
    mon = Monitor()
    mon.socket(MONITOR_STREAM)
    stats = mon.run(LiveSource("fake0", timeout_ms=5), duration=0.2)
    assert mon.stopped_by == "duration"
    assert stats["source"]["packets"] == 1 and stats["source"]["ticks"] >= 1


@pytest.mark.parametrize(("status", "reason", "words"), [
    (-5, "nodev", "no such interface: fake0"),
    (-8, "perm", "setcap cap_net_raw,cap_net_admin=eip"),
    (-11, "perm", "--no-promisc"),
    (-9, "down", "interface fake0 is down"),
])
def test_activation_errors(fake_pcap: Plan, status: int, reason: str, words: str) -> None:
    fake_pcap.status = status
    with pytest.raises(LiveError) as info:
        LiveSource("fake0")
    assert info.value.reason == reason
    assert words in str(info.value) and "\n" not in str(info.value)


def test_generic_activation_error_has_libpcap_message(
        fake_pcap: Plan, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_pcap.script, fake_pcap.status = [], -1

    def open_live(*args: Any) -> None:
        raise pcapy.PcapError("fake0: something odd happened")

    monkeypatch.setattr(live_mod.pcapy, "open_live", open_live)
    with pytest.raises(LiveError, match="cannot capture on fake0: fake0: something odd"):
        LiveSource("fake0")


def test_bad_filter_is_one_line(fake_pcap: Plan) -> None:
    fake_pcap.script = []
    with pytest.raises(LiveError) as info:
        LiveSource("fake0", "tcp and (")
    assert info.value.reason == "filter"
    assert str(info.value) == "bad filter 'tcp and (': syntax error"


def test_unwritable_write_to(fake_pcap: Plan, tmp_path: Path) -> None:
    fake_pcap.script = []
    with pytest.raises(LiveError, match="cannot write"):
        LiveSource("fake0", write_to=tmp_path / "no" / "such" / "dir.pcap")


def test_cli_live_errors_are_one_line(fake_pcap: Plan) -> None:
    fake_pcap.script, fake_pcap.status = [], -5
    code, out, err = run_cli("flows", "-i", "nosuch9")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "no such interface: nosuch9" in err
    fake_pcap.script, fake_pcap.status = [], 0
    code, out, err = run_cli("events", "-i", "fake0", "tcp", "and", "(")
    assert code == 2 and err.count("\n") == 1 and "bad filter" in err


def test_cli_live_rejects_pacing_and_both_inputs(fake_pcap: Plan, samples: Path,
                                                 tmp_path: Path) -> None:
    code, _, err = run_cli("flows", "-i", "fake0", "--speed", "2")
    assert code == 2 and "pace a replay" in err
    code, _, err = run_cli("flows", "-i", "fake0", "-r", str(samples / "http_small.pcap"))
    assert code == 2 and "not both" in err
    code, _, err = run_cli("flows", "-i", "fake0", "--flow", "1", "-w", str(tmp_path / "x.pcap"))
    assert code == 2 and "--flow with -w is for replays" in err


def test_interfaces_listing() -> None:
    found = interfaces()
    assert all(isinstance(i["name"], str) for i in found)
    code, out, err = run_cli("interfaces", "--format", "jsonl")
    assert code == 0
    names = [json.loads(line)["name"] for line in out.splitlines()]
    assert names == [i["name"] for i in found]


# --- real captures in network namespaces (root) ---------------------------------------------

CLIENT_ADDR = "10.199.0.1"
SERVER_ADDR = "10.199.0.2"

# One script for both ends. argv[1] is the plan (JSON); prints "ready" (server) then one JSON
# line with what each connection sent and read.
PEER = r"""
import hashlib, json, random, socket, struct, sys, time

plan = json.loads(sys.argv[1])
role = sys.argv[2]


def payload(i, who, n):
    return random.Random(f"{plan['seed']}-{i}-{who}").randbytes(n)


def read_all(s):
    chunks = []
    while True:
        try:
            d = s.recv(65536)
        except ConnectionResetError:
            break
        if not d:
            break
        chunks.append(d)
    return b"".join(chunks)


def read_n(s, n):
    chunks, got = [], 0
    while got < n:
        d = s.recv(min(65536, n - got))
        if not d:
            break
        chunks.append(d)
        got += len(d)
    return b"".join(chunks)


def sha(b):
    return hashlib.sha256(b).hexdigest()


results = []
if role == "server":
    listeners = {}
    for port in sorted({c["port"] for c in plan["conns"] if c["kind"] != "refused"}):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((plan["server"], port))
        s.listen(8)
        listeners[port] = s
    print("ready", flush=True)
    for i, c in enumerate(plan["conns"]):
        if c["kind"] == "refused":
            continue
        conn, peer = listeners[c["port"]].accept()
        conn.settimeout(30)
        answer = payload(i, "s", c["s2c"])
        if c["kind"] == "fin":            # read to EOF, answer, close
            got = read_all(conn)
            conn.sendall(answer)
            conn.close()
        elif c["kind"] == "server_close":  # read the request, answer, close first
            got = read_n(conn, c["c2s"])
            conn.sendall(answer)
            conn.close()
        elif c["kind"] == "rst":           # read, answer, wait for the client's RST
            got = read_n(conn, c["c2s"])
            conn.sendall(answer)
            read_all(conn)
            conn.close()
        else:                              # hold: read, keep the connection open
            got = read_n(conn, c["c2s"])
            time.sleep(c.get("hold", 30))
            conn.close()
        results.append({"i": i, "client_port": peer[1], "read_len": len(got),
                        "read_sha": sha(got), "sent_sha": sha(answer)})
else:
    for i, c in enumerate(plan["conns"]):
        s = socket.socket()
        s.settimeout(30)
        s.bind((plan["client"], 0))
        port = s.getsockname()[1]
        request = payload(i, "c", c["c2s"])
        rec = {"i": i, "client_port": port, "sent_sha": sha(request)}
        if c["kind"] == "refused":
            try:
                s.connect((plan["server"], c["port"]))
                rec["outcome"] = "connected"
            except ConnectionRefusedError:
                rec["outcome"] = "refused"
            s.close()
            rec.update(read_len=0, read_sha=sha(b""))
            results.append(rec)
            continue
        s.connect((plan["server"], c["port"]))
        s.sendall(request)
        if c["kind"] == "fin":
            s.shutdown(socket.SHUT_WR)
            got = read_all(s)
            s.close()
        elif c["kind"] == "server_close":
            got = read_all(s)
            s.close()
        elif c["kind"] == "rst":
            got = read_n(s, c["s2c"])
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        else:
            print(json.dumps([rec]), flush=True)
            time.sleep(c.get("hold", 30))
            got = b""
        rec.update(outcome="ok", read_len=len(got), read_sha=sha(got))
        results.append(rec)
print(json.dumps(results), flush=True)
"""


def _sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=check, timeout=30)


class NetnsPair:
    """Two namespaces, client and server, joined by a veth pair named uniquely per test."""

    def __init__(self) -> None:
        tok = secrets.token_hex(3)
        self.ns_cli = f"mostool-{tok}-c"
        self.ns_svr = f"mostool-{tok}-s"
        self.veth_cli = f"mtc{tok}"
        self.veth_svr = f"mts{tok}"
        self.made: list[str] = []

    def create(self) -> None:
        probe = _sh("ip", "netns", "add", self.ns_cli, check=False)
        if probe.returncode != 0:
            pytest.skip(f"`ip netns` is unavailable here: {probe.stderr.strip()}")
        self.made.append(self.ns_cli)
        _sh("ip", "netns", "add", self.ns_svr)
        self.made.append(self.ns_svr)
        _sh("ip", "link", "add", self.veth_cli, "netns", self.ns_cli, "type", "veth",
            "peer", "name", self.veth_svr, "netns", self.ns_svr)
        for ns, dev, addr in ((self.ns_cli, self.veth_cli, CLIENT_ADDR),
                              (self.ns_svr, self.veth_svr, SERVER_ADDR)):
            # no IPv6 chatter, and frames as on a wire: no offloads, valid checksums
            _sh("ip", "netns", "exec", ns, "sysctl", "-qw",
                "net.ipv6.conf.all.disable_ipv6=1", check=False)
            _sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _sh("ip", "-n", ns, "link", "set", "lo", "up")
            _sh("ip", "-n", ns, "link", "set", dev, "up")
            if shutil.which("ethtool"):
                _sh("ip", "netns", "exec", ns, "ethtool", "-K", dev, "tso", "off", "gso",
                    "off", "gro", "off", "tx", "off", check=False)

    def destroy(self) -> None:
        for ns in reversed(self.made):  # deleting a namespace deletes its veth end too
            _sh("ip", "netns", "del", ns, check=False)

    def popen(self, ns: str, *argv: str, **kw: Any) -> subprocess.Popen[str]:
        return subprocess.Popen(["ip", "netns", "exec", ns, *argv], text=True, cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


@pytest.fixture
def netns() -> Iterator[NetnsPair]:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("needs root: the live tests create network namespaces and a veth pair")
    if shutil.which("ip") is None:
        pytest.skip("needs `ip` (iproute2) to create network namespaces")
    pair = NetnsPair()
    try:
        pair.create()
        yield pair
    finally:
        pair.destroy()


class Capture:
    """``mostool ARGS`` running in the client namespace; its output read by two threads."""

    def __init__(self, pair: NetnsPair, *args: str) -> None:
        self.proc = pair.popen(pair.ns_cli, sys.executable, "-m", "mostool", *args)
        self.err_lines: queue.Queue[str] = queue.Queue()
        self.err: list[str] = []
        self.out: list[str] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err, True),
                             daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out, False),
                             daemon=True),
        ]
        for t in self._readers:
            t.start()

    def _read(self, stream: Any, into: list[str], notify: bool) -> None:
        for line in stream:
            into.append(line)
            if notify:
                self.err_lines.put(line)

    def wait_listening(self, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self.err_lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if "listening on" in line:
                return
        self.kill()
        pytest.fail(f"the capture did not start: {self.stderr}")

    def finish(self, sig: int | None = signal.SIGINT, timeout: float = 30.0) -> tuple[int, str]:
        """Signal the capture (or let it end by itself); its exit status and stdout."""
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"the capture did not stop: {self.stderr}")
        for t in self._readers:
            t.join(10)
        return code, "".join(self.out)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    @property
    def stderr(self) -> str:
        return "".join(self.err)


def _traffic(pair: NetnsPair, plan: dict[str, Any]) -> tuple[list[dict[str, Any]],
                                                              list[dict[str, Any]]]:
    arg = json.dumps(plan)
    server = pair.popen(pair.ns_svr, sys.executable, "-c", PEER, arg, "server")
    try:
        assert server.stdout is not None
        ready = server.stdout.readline()
        assert ready.strip() == "ready", server.stderr.read() if server.stderr else ready
        client = subprocess.run(["ip", "netns", "exec", pair.ns_cli, sys.executable, "-c",
                                 PEER, arg, "client"], capture_output=True, text=True,
                                timeout=60, cwd=REPO)
        assert client.returncode == 0, client.stderr
        srv_out, srv_err = server.communicate(timeout=60)
        assert server.returncode == 0, srv_err
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
    return json.loads(client.stdout.splitlines()[-1]), json.loads(srv_out.splitlines()[-1])


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def test_live_flows_match_what_the_sockets_sent(netns: NetnsPair, tmp_path: Path) -> None:
    out_pcap = tmp_path / "live.pcap"
    cap = Capture(netns, "flows", "-i", netns.veth_cli, "--format", "jsonl", "--hash",
                  "-w", str(out_pcap))
    try:
        cap.wait_listening()
        plan = {"seed": random.randrange(1 << 30), "client": CLIENT_ADDR,
                "server": SERVER_ADDR, "conns": [
                    {"kind": "fin", "port": 9001, "c2s": 150_000, "s2c": 70_000},
                    {"kind": "server_close", "port": 9001, "c2s": 1_000, "s2c": 5_000},
                    {"kind": "rst", "port": 9002, "c2s": 3_000, "s2c": 8_000},
                    {"kind": "refused", "port": 9003, "c2s": 0, "s2c": 0},
                ]}
        client, server = _traffic(netns, plan)
        time.sleep(0.5)  # let the last frames through the capture buffer
        code, out = cap.finish(signal.SIGINT)
    finally:
        cap.kill()
    assert code == 0, cap.stderr
    assert "Traceback" not in cap.stderr
    assert "0 dropped by kernel" in cap.stderr
    records = [json.loads(line) for line in out.splitlines()]
    by_port = {int(r["client"].rsplit(":", 1)[1]): r for r in records}
    assert len(records) == len(plan["conns"]) == len(by_port), out
    served = {s["client_port"]: s for s in server}
    expect_end = {"fin": "fin", "server_close": "fin", "rst": "rst", "refused": "rst"}
    for c, spec in zip(client, plan["conns"], strict=True):
        rec = by_port[c["client_port"]]
        assert rec["client"] == f"{CLIENT_ADDR}:{c['client_port']}"
        assert rec["server"] == f"{SERVER_ADDR}:{spec['port']}"
        assert rec["end_reason"] == expect_end[spec["kind"]], rec
        assert rec["c2s"]["bytes"] == spec["c2s"] and rec["s2c"]["bytes"] == spec["s2c"]
        assert rec["c2s"]["sha256"] == c["sent_sha"]
        assert rec["s2c"]["sha256"] == c["read_sha"]
        assert rec["c2s"]["gaps"] == rec["s2c"]["gaps"] == 0
        if spec["kind"] == "refused":
            assert c["outcome"] == "refused" and rec["c2s"]["sha256"] == _sha(b"")
        else:
            s = served[c["client_port"]]
            assert s["read_len"] == spec["c2s"] and rec["c2s"]["sha256"] == s["read_sha"]
            assert rec["s2c"]["sha256"] == s["sent_sha"] and c["read_len"] == spec["s2c"]

    # the session written with -w replays to the same flows, byte for byte
    code, replayed, err = run_cli("flows", "-r", str(out_pcap), "--format", "jsonl", "--hash")
    assert code == 0, err
    assert replayed == out


def test_live_count_with_kernel_filter_stops_mid_flow(netns: NetnsPair) -> None:
    # SYN, SYN/ACK, ACK, data: the fourth TCP packet stops the run; ARP is filtered out
    cap = Capture(netns, "flows", "-i", netns.veth_cli, "--hash", "-c", "4", "tcp")
    plan = {"seed": 1, "client": CLIENT_ADDR, "server": SERVER_ADDR,
            "conns": [{"kind": "hold", "port": 9004, "c2s": 100, "s2c": 0, "hold": 60}]}
    server = client = None
    try:
        cap.wait_listening()
        arg = json.dumps(plan)
        server = netns.popen(netns.ns_svr, sys.executable, "-c", PEER, arg, "server")
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        client = netns.popen(netns.ns_cli, sys.executable, "-c", PEER, arg, "client")
        code, out = cap.finish(sig=None)
    finally:
        cap.kill()
        for p in (server, client):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(10)
    assert code == 0, cap.stderr
    (rec,) = [json.loads(line) for line in out.splitlines()]
    assert rec["end_reason"] == "stopped"
    assert rec["c2s"]["bytes"] == 100 and rec["c2s"]["sha256"] == _sha(
        random.Random("1-0-c").randbytes(100))
    assert "4 packets captured" in cap.stderr


def test_live_duration_is_wall_time(netns: NetnsPair) -> None:
    cap = Capture(netns, "events", "-i", netns.veth_cli, "--duration", "1")
    try:
        cap.wait_listening()
        code, out = cap.finish(sig=None)
    finally:
        cap.kill()
    assert code == 0, cap.stderr
    assert out == ""
    assert "0 packets captured" in cap.stderr


def test_interface_going_down_stops_cleanly(netns: NetnsPair) -> None:
    cap = Capture(netns, "flows", "-i", netns.veth_cli, "--hash")
    try:
        cap.wait_listening()
        plan = {"seed": 2, "client": CLIENT_ADDR, "server": SERVER_ADDR,
                "conns": [{"kind": "fin", "port": 9001, "c2s": 2_000, "s2c": 3_000}]}
        client, _ = _traffic(netns, plan)
        time.sleep(0.3)
        _sh("ip", "-n", netns.ns_cli, "link", "set", netns.veth_cli, "down")
        code, out = cap.finish(sig=None)
    finally:
        cap.kill()
    assert code == 0, cap.stderr
    assert "went down" in cap.stderr and "Traceback" not in cap.stderr
    (rec,) = [json.loads(line) for line in out.splitlines()]
    assert rec["end_reason"] == "fin" and rec["c2s"]["sha256"] == client[0]["sent_sha"]


def _root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.mark.skipif(not _root(), reason="needs root: as another user libpcap reports "
                    "missing permission before a missing interface")
def test_real_no_such_interface() -> None:
    code, out, err = run_cli("flows", "-i", "mostool-nosuch0")
    assert code == 2 and out == ""
    assert err == ("mostool: error: no such interface: mostool-nosuch0 "
                   "(see `mostool interfaces`)\n")


@pytest.mark.skipif(not _root(), reason="needs root to open the loopback interface")
def test_real_bad_filter_on_loopback() -> None:
    code, out, err = run_cli("flows", "-i", "lo", "tcp", "port", "and")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "bad filter 'tcp port and'" in err


@pytest.mark.skipif(not _root(), reason="needs root to drop to an unprivileged user")
def test_real_no_permission_says_how() -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux) to run as an unprivileged user")
    # the unprivileged user keeps only CAP_DAC_READ_SEARCH, so it can read the checkout
    # wherever it is (a root user's /root/..., a mode 0700 directory) but cannot capture
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search",
                           sys.executable, "-m", "mostool", "flows", "-i", "lo"],
                          capture_output=True, text=True, timeout=60, cwd="/")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1
    assert "no permission to capture on lo" in proc.stderr
    assert "setcap cap_net_raw,cap_net_admin=eip" in proc.stderr
