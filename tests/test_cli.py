"""The command-line contract of `mostool flows` and `mostool events`."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from builders import CLI, SVR, Scenario

from mostool.cli import main

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_pcaps" / "http_small.pcap"
MIXED = ROOT / "sample_pcaps" / "mixed_small.pcap"
FLOW_KEYS = {"client", "server", "first_packet", "start", "end", "end_reason", "client_state",
             "server_state", "c2s", "s2c"}
DIRECTION_KEYS = {"packets", "payload_bytes", "bytes", "sha256", "gaps", "gap_bytes", "rexmit",
                  "overlap_conflicts", "bad_checksums"}


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_flows_jsonl_contract() -> None:
    code, out, err = run("flows", "-r", str(SAMPLE), "--hash")
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert records
    for r in records:
        assert set(r) >= FLOW_KEYS
        assert r["end_reason"] in {"fin", "rst", "timeout", "eof", "evicted", "stopped"}
        for d in ("c2s", "s2c"):
            assert set(r[d]) >= DIRECTION_KEYS
            assert len(r[d]["sha256"]) == 64
    firsts = [r["first_packet"] for r in records]
    assert firsts == sorted(firsts), "records come in order of each flow's first packet"


def test_flows_without_hash_has_no_digest() -> None:
    code, out, _ = run("flows", "-r", str(SAMPLE))
    assert code == 0
    assert all(json.loads(line)["c2s"]["sha256"] is None for line in out.splitlines())


def test_ipv6_addresses_are_bracketed_and_canonical(tmp_path: Path) -> None:
    sc = Scenario("[2001:db8:0:0::1]:40000", "[2001:0db8::0002]:443")
    sc.handshake()
    sc.send(CLI, b"hello")
    sc.close()
    pcap = tmp_path / "v6.pcap"
    sc.write_pcap(pcap)
    code, out, _ = run("flows", "-r", str(pcap))
    assert code == 0
    (rec,) = [json.loads(line) for line in out.splitlines()]
    assert rec["client"] == "[2001:db8::1]:40000"
    assert rec["server"] == "[2001:db8::2]:443"
    assert rec["c2s"]["bytes"] == 5 and rec["end_reason"] == "fin"


def test_flows_csv_has_a_header_and_one_row_per_flow() -> None:
    code, out, _ = run("flows", "-r", str(SAMPLE), "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    _, jsonl, _ = run("flows", "-r", str(SAMPLE))
    assert len(rows) == len(jsonl.splitlines())
    assert rows[0]["c2s_bytes"].isdigit()


def test_flows_table_renders() -> None:
    code, out, _ = run("flows", "-r", str(SAMPLE), "--format", "table")
    assert code == 0 and "TCP flows" in out


def test_trailing_bpf_words_filter_frames() -> None:
    _, all_flows, _ = run("flows", "-r", str(SAMPLE))
    code, port80, _ = run("flows", "-r", str(SAMPLE), "tcp", "port", "80")
    assert code == 0
    servers = {json.loads(line)["server"] for line in port80.splitlines()}
    assert servers and all(s.endswith(":80") for s in servers)
    assert len(port80.splitlines()) < len(all_flows.splitlines())


def test_bad_bpf_is_one_line_exit_2() -> None:
    code, _, err = run("flows", "-r", str(SAMPLE), "tcp", "and", "(")
    assert code == 2 and err.count("\n") == 1 and "error" in err


def test_not_a_capture_exits_2_with_one_line(tmp_path: Path) -> None:
    junk = tmp_path / "notes.pcap"
    junk.write_text("this is not a capture\n")
    code, out, err = run("flows", "-r", str(junk))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "notes.pcap" in err and "Traceback" not in err


def test_missing_file_exits_2(tmp_path: Path) -> None:
    code, _, err = run("flows", "-r", str(tmp_path / "nope.pcap"))
    assert code == 2 and err.count("\n") == 1


def test_cut_short_capture_gives_flows_and_one_warning(tmp_path: Path) -> None:
    data = SAMPLE.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[: len(data) * 2 // 3])
    code, out, err = run("flows", "-r", str(cut))
    assert code == 0
    assert out.strip()
    assert err.count("warning") == 1 and "cut.pcap" in err and "offset" in err


def test_several_files_are_merged_by_time(tmp_path: Path) -> None:
    a = Scenario("10.0.0.1:1000", "10.0.0.2:80", t0=100.0)
    b = Scenario("10.0.0.3:1000", "10.0.0.2:80", t0=100.0005)
    for sc in (a, b):
        sc.handshake()
        sc.send(CLI, b"x" * 10)
        sc.send(SVR, b"y" * 20)
        sc.close()
    a.write_pcap(tmp_path / "a.pcap")
    b.write_pcap(tmp_path / "b.pcap")
    code, out, _ = run("flows", "-r", str(tmp_path / "a.pcap"), "-r", str(tmp_path / "b.pcap"))
    recs = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["client"] for r in recs] == ["10.0.0.1:1000", "10.0.0.3:1000"]
    assert recs[1]["first_packet"] == 2          # interleaved by timestamp


def test_events_are_json_lines_and_deterministic() -> None:
    code1, out1, _ = run("events", "-r", str(MIXED))
    code2, out2, _ = run("events", "-r", str(MIXED))
    assert code1 == code2 == 0 and out1 == out2
    lines = [json.loads(line) for line in out1.splitlines()]
    assert {"packet", "ts", "flow", "side", "hook", "event"} <= set(lines[0])
    names = {e["event"] for e in lines}
    assert {"ON_PKT_IN", "ON_CONN_START", "ON_CONN_NEW_DATA", "ON_TCP_STATE_CHANGE",
            "ON_CONN_END"} <= names
    ends = [e for e in lines if e["event"] == "ON_CONN_END"]
    flows = {e["flow"] for e in lines if e["flow"]}
    # one ON_CONN_END per flow per subscription; the trace listener subscribes at both hooks
    assert len(ends) == 2 * len(flows)


def test_help_shows_examples() -> None:
    for argv in (["--help"], ["flows", "--help"], ["events", "--help"]):
        proc = subprocess.run([sys.executable, "-m", "mostool", *argv], capture_output=True,
                              text=True, cwd=ROOT)
        assert proc.returncode == 0 and "example" in proc.stdout.lower()


def test_module_entry_point_runs() -> None:
    proc = subprocess.run([sys.executable, "-m", "mostool", "flows", "-r", str(SAMPLE)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.count("\n") >= 3


def test_replay_and_live_are_callable_as_often_as_needed() -> None:
    import mostool as mos
    import mostool.replay  # noqa: F401 - the submodule import must not shadow the function
    first = mos.replay(str(SAMPLE))
    second = mos.replay(str(SAMPLE))
    assert first is not second and first.name == second.name
    assert callable(mos.live)


def _records_both_ways(path: Path, **config: object) -> list[tuple[str, str]]:
    """(record_json, json.dumps(record)) of every flow of a capture."""
    from mostool.config import MonitorConfig
    from mostool.monitor import MONITOR_STREAM, Monitor
    from mostool.replay import ReplaySource
    mon = Monitor(MonitorConfig(**config))  # type: ignore[arg-type]
    mon.socket(MONITOR_STREAM)
    out: list[tuple[str, str]] = []
    mon.on_flow_end(lambda conn: out.append((conn.record_json(), json.dumps(conn.record()))))
    mon.run(ReplaySource([str(path)]))
    return out


@pytest.mark.parametrize("config", [{}, {"hash_streams": True, "checksums": "skip"},
                                    {"midstream": True, "checksums": "on"}],
                         ids=["default", "hash+skip", "midstream+on"])
def test_flow_lines_are_json_dumps_of_the_records(config: dict[str, object]) -> None:
    """The jsonl formatter writes exactly what json.dumps writes for each flow's record
    (IPv4 and IPv6, every end reason and state of the sample captures)."""
    paths = sorted((ROOT / "sample_pcaps").glob("*.pcap"))
    paths += sorted((ROOT / "sample_pcaps" / "synthetic").glob("*.pcap"))
    n = 0
    for path in paths:
        for fast, plain in _records_both_ways(path, **config):
            assert fast == plain, path.name
            n += 1
    assert n > 20


def test_flow_lines_fall_back_to_json_dumps_for_unusual_values() -> None:
    """Integer timestamps and an end reason that needs escaping still come out as json.dumps
    writes them (and FlowLog.jsonl orders lines as the plain writer does)."""
    from mostool.monitor import MONITOR_STREAM, Monitor
    from mostool.sinks.flowlog import FlowLog
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"hello")
    other = Scenario("10.0.0.3:40001", "10.0.0.2:80", t0=1_700_000_000.0005)
    other.handshake()
    other.close()
    frames = sorted(sc.frames + other.frames, key=lambda f: f[0])
    fast_out, plain_out = io.StringIO(), io.StringIO()
    plain: list[str] = []
    mon = Monitor()
    mon.socket(MONITOR_STREAM)
    mon.on_flow_end(FlowLog.jsonl(fast_out).flow_ended)
    mon.on_flow_end(FlowLog(FlowLog.jsonl_writer(plain_out)).flow_ended)
    mon.on_flow_end(lambda conn: plain.append(json.dumps(conn.record())))
    engine = mon.engine
    for i, (_ts, linktype, frame, _wire) in enumerate(frames):
        engine.process(1_700_000_000 + i, linktype, frame)    # int timestamps
    engine.finish('odd "reason" é\n')
    plain.sort(key=lambda line: json.loads(line)["id"])    # (they ended in another order)
    assert fast_out.getvalue() == plain_out.getvalue() == "".join(p + "\n" for p in plain)
    assert len(plain) == 2 and '"start": 1700000000,' in plain[0]
    assert "\\u00e9" in fast_out.getvalue()


def test_max_flows_evicts_the_longest_idle_flow() -> None:
    pcap = str(Path(__file__).resolve().parents[1] / "sample_pcaps" / "mixed_small.pcap")
    out, err = io.StringIO(), io.StringIO()
    assert main(["flows", "-r", pcap, "--max-flows", "1"], out=out, err=err) == 0
    reasons = [json.loads(line)["end_reason"] for line in out.getvalue().splitlines()]
    assert reasons.count("evicted") == 3 and len(reasons) > 3
    assert main(["flows", "-r", pcap, "--max-flows", "0"], out=io.StringIO(), err=err) == 2
    assert "max_flows" in err.getvalue()
