"""`mostool streams` and the output options (--events-out, --flows-out, -w with --flow)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from builders import CLI, SVR, Scenario
from cmd_helpers import NETGEN, SAMPLES, run
from netgen_check import flows_of

from mostool.cli import main
from mostool.replay import read_capture
from mostool.sinks.flows_out import parquet_available
from mostool.sinks.select import FlowSelector
from mostool.sinks.streams import INDEX_NAME, stream_file_name

HTTP_SMALL = SAMPLES / "http_small.pcap"
SYNTHETIC = SAMPLES / "synthetic"


def streams(pcap: Path, outdir: Path, *extra: str) -> list[dict[str, Any]]:
    code, out, err = run("streams", "-r", str(pcap), "-o", str(outdir), *extra)
    assert code == 0, err
    assert "warning" not in err, err
    assert out.endswith(f"index: {outdir / INDEX_NAME}\n")
    return [json.loads(line) for line in (outdir / INDEX_NAME).read_text().splitlines()]


def check_against_flows(pcap: Path, outdir: Path, **config: Any) -> int:
    """Every direction's file is byte for byte what `flows --hash` digests; returns the number
    of directions checked."""
    extra = ["--midstream"] if config.get("midstream") else []
    index = streams(pcap, outdir, *extra)
    flows = {f["id"]: f for f in flows_of(pcap, **config)}
    assert {r["flow"] for r in index} == set(flows)
    assert len(index) == 2 * len(flows)
    for rec in index:
        want = flows[rec["flow"]][rec["direction"]]
        data = (outdir / rec["file"]).read_bytes() if rec["file"] else b""
        assert rec["file"] is not None or want["bytes"] == 0
        assert len(data) == want["bytes"] == rec["bytes"], (pcap.name, rec)
        assert hashlib.sha256(data).hexdigest() == want["sha256"] == rec["sha256"], rec
        assert len(rec["gaps"]) == want["gaps"]
        assert sum(g["length"] for g in rec["gaps"]) == want["gap_bytes"]
    return len(index)


netgen_pcaps = sorted(NETGEN.glob("*.pcap")) if NETGEN.is_dir() else []


@pytest.mark.skipif(not netgen_pcaps, reason=f"{NETGEN} is absent (../shared not beside repo)")
@pytest.mark.parametrize("pcap", netgen_pcaps, ids=[p.stem for p in netgen_pcaps])
def test_stream_files_match_the_flow_digests_netgen(pcap: Path, tmp_path: Path) -> None:
    assert check_against_flows(pcap, tmp_path) > 0


samples = sorted(SAMPLES.glob("*.pcap")) + sorted(
    SYNTHETIC / n for n in ("overlap_conflict.pcap", "reorder_dup.pcap", "wraparound.pcap",
                            "port_reuse.pcap", "ipv6_sll.pcap", "ip_fragments.pcap",
                            "rst_abort.pcap", "bad_checksum.pcap"))


@pytest.mark.parametrize("pcap", samples, ids=[p.stem for p in samples])
def test_stream_files_match_the_flow_digests_samples(pcap: Path, tmp_path: Path) -> None:
    assert check_against_flows(pcap, tmp_path) > 0


def test_midstream_flows(tmp_path: Path) -> None:
    assert check_against_flows(SYNTHETIC / "midstream.pcap", tmp_path, midstream=True) == 2


def test_tcpflow_names(tmp_path: Path) -> None:
    index = streams(HTTP_SMALL, tmp_path)
    first = index[0]
    assert first["file"] == "010.077.001.001.50723-010.077.000.002.00080"
    assert index[1]["file"] == "010.077.000.002.00080-010.077.001.001.50723"
    assert (first["src"], first["dst"]) == ("10.77.1.1:50723", "10.77.0.2:80")
    refused = [r for r in index if r["dst"].endswith(":7000") or r["src"].endswith(":7000")]
    assert [r["file"] for r in refused] == [None, None]   # no byte flowed: no file
    assert stream_file_name(bytes(15) + b"\x01", 443, bytes(16), 80) == (
        "0000.0000.0000.0000.0000.0000.0000.0001.00443-"
        "0000.0000.0000.0000.0000.0000.0000.0000.00080")


def test_same_four_tuple_twice(tmp_path: Path) -> None:
    index = streams(SYNTHETIC / "port_reuse.pcap", tmp_path)
    names = [r["file"] for r in index if r["direction"] == "c2s"]
    assert len(names) == 2 and names[1] == names[0] + "c2"


def test_gaps_are_left_out_and_indexed(tmp_path: Path) -> None:
    sc = Scenario("10.0.0.1:40000", "10.0.0.2:80")
    sc.handshake()
    sc.send(CLI, b"A" * 100)
    lost = sc.send(CLI, b"B" * 50)
    sc.send(CLI, b"C" * 100)
    sc.drop(lost)
    sc.ack(SVR)
    sc.send(SVR, b"reply")
    sc.close()
    pcap = tmp_path / "gap.pcap"
    sc.write_pcap(pcap)
    index = streams(pcap, tmp_path / "out")
    c2s = next(r for r in index if r["direction"] == "c2s")
    assert (tmp_path / "out" / c2s["file"]).read_bytes() == b"A" * 100 + b"C" * 100
    assert c2s["gaps"] == [{"offset": 100, "file_offset": 100, "length": 50}]
    s2c = next(r for r in index if r["direction"] == "s2c")
    assert (tmp_path / "out" / s2c["file"]).read_bytes() == b"reply" and s2c["gaps"] == []


def test_flow_selection(tmp_path: Path) -> None:
    index = streams(HTTP_SMALL, tmp_path, "--flow", "2,5")
    assert sorted({r["flow"] for r in index}) == [2, 5]
    files = sorted(p.name for p in tmp_path.iterdir() if p.name != INDEX_NAME)
    assert len(files) == 4
    index = streams(HTTP_SMALL, tmp_path / "b", "--flow", "10.77.0.2:9002")
    assert {r["flow"] for r in index} == {5}


def test_streams_errors(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    code, _, err = run("streams", "-r", str(HTTP_SMALL), "-o", str(f))
    assert code == 2 and "not a directory" in err and err.count("\n") == 1
    code, _, err = run("streams", "-r", str(HTTP_SMALL), "-o", str(tmp_path / "d"), "--flow",
                       "banana")
    assert code == 2 and "bad flow selector 'banana'" in err


def test_flow_selector() -> None:
    class C:
        def __init__(self, i: int, client: str, server: str) -> None:
            self.id, self.client, self.server = i, client, server

    sel = FlowSelector("3, 7-9, 10.0.0.1:80, [2001:db8::1]:443, 192.168.0.9")
    assert sel.matches(C(3, "a:1", "b:2")) and sel.matches(C(8, "a:1", "b:2"))
    assert not sel.matches(C(10, "a:1", "b:2"))
    assert sel.matches(C(11, "10.0.0.9:5555", "10.0.0.1:80"))
    assert sel.matches(C(12, "[2001:db8::1]:443", "[2001:db8::2]:1"))
    assert sel.matches(C(13, "192.168.0.9:1234", "1.1.1.1:53"))
    assert not sel.matches(C(14, "192.168.0.99:1234", "1.1.1.1:53"))
    for bad in ("", "5-2", "host:x", "10.0.0.1:99999"):
        with pytest.raises(ValueError):
            FlowSelector(bad)


# -- outputs of every command --------------------------------------------------------------------


def test_events_out_is_the_events_trace_plus_udes(tmp_path: Path) -> None:
    trace = tmp_path / "events.jsonl"
    code, _, err = run("run", "-r", str(HTTP_SMALL), "--app", "http", "--events-out",
                       str(trace))
    assert code == 0, err
    got = [json.loads(line) for line in trace.read_text().splitlines()]
    out = io.StringIO()
    assert main(["events", "-r", str(HTTP_SMALL)], out=out, err=io.StringIO()) == 0
    builtin = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r for r in got if not r.get("ude")] == builtin
    udes = [r for r in got if r.get("ude")]
    assert sum(r["event"] == "http_request" for r in udes) == 15
    assert all(r["base"] == "ON_CONN_NEW_DATA" for r in udes)


def test_flows_out_csv_and_jsonl(tmp_path: Path) -> None:
    code, _, err = run("watch", "-r", str(HTTP_SMALL), "--flows-out", str(tmp_path / "f.csv"))
    assert code == 0, err
    rows = list(csv.DictReader((tmp_path / "f.csv").open()))
    out = io.StringIO()
    main(["flows", "-r", str(HTTP_SMALL)], out=out, err=io.StringIO())
    want = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [int(r["id"]) for r in rows] == [w["id"] for w in want]
    assert [int(r["s2c_bytes"]) for r in rows] == [w["s2c"]["bytes"] for w in want]
    code, _, _ = run("run", "-r", str(HTTP_SMALL), "--app", "rexmit", "--flows-out",
                     str(tmp_path / "f.jsonl"))
    got = [json.loads(line) for line in (tmp_path / "f.jsonl").read_text().splitlines()]
    assert [(g["id"], g["c2s"]["bytes"]) for g in got] == [(w["id"], w["c2s"]["bytes"])
                                                           for w in want]


@pytest.mark.skipif(not parquet_available(), reason="needs pyarrow (the parquet extra)")
def test_flows_out_parquet(tmp_path: Path) -> None:
    import pyarrow.parquet as pq
    code, _, err = run("run", "-r", str(HTTP_SMALL), "--app", "rexmit", "--flows-out",
                       str(tmp_path / "f.parquet"))
    assert code == 0, err
    table = pq.read_table(tmp_path / "f.parquet")
    assert table.num_rows == 5 and "c2s_bytes" in table.column_names


def test_flows_out_parquet_without_pyarrow_is_one_line(tmp_path: Path) -> None:
    if parquet_available():
        pytest.skip("pyarrow is installed")
    code, _, err = run("run", "-r", str(HTTP_SMALL), "--app", "rexmit", "--flows-out",
                       str(tmp_path / "f.parquet"))
    assert code == 2 and "needs pyarrow" in err and err.count("\n") == 1


def test_write_the_packets_of_chosen_flows(tmp_path: Path) -> None:
    out_pcap = tmp_path / "flow5.pcap"
    code, _, err = run("streams", "-r", str(HTTP_SMALL), "-o", str(tmp_path / "s"), "--flow",
                       "5", "-w", str(out_pcap))
    assert code == 0, err
    full = {f["id"]: f for f in flows_of(HTTP_SMALL)}
    frames = list(read_capture(out_pcap))
    want = full[5]
    assert len(frames) == want["c2s"]["packets"] + want["s2c"]["packets"]
    (again,) = flows_of(out_pcap)
    for key in ("client", "server", "end_reason", "c2s", "s2c"):
        assert again[key] == want[key]


def test_write_after_a_bpf(tmp_path: Path) -> None:
    out_pcap = tmp_path / "port9002.pcap"
    code, _, err = run("run", "-r", str(HTTP_SMALL), "--app", "rexmit", "-w", str(out_pcap),
                       "tcp", "port", "9002")
    assert code == 0, err
    frames = list(read_capture(out_pcap))
    src = [f for f in read_capture(HTTP_SMALL)]
    assert len(frames) == 24 and len(frames) < len(src)
    assert [bytes(f[2]) for f in frames] == [bytes(f[2]) for f in src
                                             if bytes(f[2]) in {bytes(x[2]) for x in frames}]


def test_output_errors_are_one_line(tmp_path: Path) -> None:
    code, _, err = run("run", "-r", str(HTTP_SMALL), "--app", "rexmit", "--events-out",
                       str(tmp_path / "no" / "such" / "dir" / "e.jsonl"))
    assert code == 2 and "cannot write" in err and err.count("\n") == 1
    code, _, err = run("run", "-r", str(HTTP_SMALL), "--app", "rexmit", "-w", str(tmp_path))
    assert code == 2 and "is a directory" in err
