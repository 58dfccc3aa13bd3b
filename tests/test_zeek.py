"""Zeek's conn.log view of each flow: conn_state and history as Zeek defines them, the
``--format zeek`` log read back by a parser written to Zeek's ASCII log format."""

from __future__ import annotations

import json
from typing import Any

import pytest
from builders import CLI, SVR, Scenario
from cmd_helpers import NETGEN, SAMPLES, run

import mostool as mos
from mostool.sources import MemorySource
from mostool.stack.zeek import (
    CLOSED,
    ESTABLISHED,
    INACTIVE,
    PARTIAL,
    RESET,
    SYN_SENT,
    ZeekRecorder,
    conn_state,
)


def _records(frames: list[Any], **config: Any) -> list[dict[str, Any]]:
    mon = mos.Monitor(mos.MonitorConfig(**config))
    mon.socket(mos.MONITOR_STREAM)
    out: list[dict[str, Any]] = []
    mon.on_flow_end(lambda conn: out.append(conn.record()))
    mon.run(MemorySource(sorted(frames, key=lambda f: f[0])))
    return out


def _one(build: Any, **config: Any) -> tuple[str, str]:
    s = Scenario("10.0.0.1:40000", "10.0.0.2:80")
    build(s)
    (rec,) = _records(s.frames, **config)
    return rec["conn_state"], rec["history"]


# -- the scenarios, with Zeek's expected values worked out by hand --------------------------------


def test_attempt_without_reply_is_s0() -> None:
    # a SYN and its retransmission (same sequence number: one S); the responder never answers
    assert _one(lambda s: (s.syn(), s.advance(1.0), s.syn())) == ("S0", "S")


def test_handshake_only_is_s1() -> None:
    # S (orig SYN), h (resp SYN/ACK: both endpoints ESTABLISHED), A (orig's pure ACK)
    assert _one(lambda s: s.handshake()) == ("S1", "ShA")


def test_refused_is_rej() -> None:
    # the responder answers the SYN with a RST: orig still SYN_SENT, resp RESET
    assert _one(lambda s: (s.syn(), s.rst(SVR))) == ("REJ", "Sr")


def test_half_open_syn_then_fin_is_sh() -> None:
    # orig SYN then FIN, the responder silent: orig CLOSED, resp INACTIVE
    assert _one(lambda s: (s.syn(), s.advance(0.5), s.fin(CLI))) == ("SH", "SF")


def test_normal_close_is_sf() -> None:
    def build(s: Scenario) -> None:
        s.handshake()
        s.send(CLI, b"GET / HTTP/1.0\r\n\r\n")
        s.ack(SVR)
        s.send(SVR, b"HTTP/1.0 200 OK\r\n\r\nhello")
        s.ack(CLI)
        s.close(CLI)
    # D/d once per direction however many data packets; F then f; the final ACKs add nothing
    assert _one(build) == ("SF", "ShADadFf")


def test_reset_by_originator_is_rsto() -> None:
    def build(s: Scenario) -> None:
        s.handshake()
        s.send(CLI, b"x" * 10)
        s.ack(SVR)
        s.rst(CLI)
    assert _one(build) == ("RSTO", "ShADaR")


def test_reset_by_responder_is_rstr() -> None:
    def build(s: Scenario) -> None:
        s.handshake()
        s.send(CLI, b"x" * 10)
        s.rst(SVR)
    assert _one(build) == ("RSTR", "ShADr")


def test_retransmissions_are_scaled_t_letters() -> None:
    """Zeek writes T at the 1st, 10th, 100th ... retransmission of a direction."""
    def build(rexmits: int) -> Any:
        def b(s: Scenario) -> None:
            s.handshake()
            s.send(CLI, b"a" * 100)
            for _ in range(rexmits):
                s.send(CLI, b"a" * 100, seq_offset=0)
            s.ack(SVR)
            s.close(CLI)
        return b
    assert _one(build(1)) == ("SF", "ShADTaFf")
    assert _one(build(9)) == ("SF", "ShADTaFf")
    assert _one(build(10)) == ("SF", "ShADTTaFf")


def test_loss_and_gap_write_g_and_missed_bytes() -> None:
    def build(s: Scenario) -> None:
        s.handshake()
        s.drop(s.send(CLI, b"a" * 100))          # lost before the capture saw it
        s.send(CLI, b"b" * 50)
        s.ack(SVR)                               # acknowledges past the hole: a gap
        s.close(CLI)
    s = Scenario("10.0.0.1:40000", "10.0.0.2:80")
    build(s)
    (rec,) = _records(s.frames)
    assert rec["missed_bytes"] == 100
    assert rec["orig_bytes"] == 150 and rec["resp_bytes"] == 0
    assert "G" in rec["history"] and rec["conn_state"] == "SF"


def test_midstream_flow_is_oth_or_partial_states() -> None:
    def build(s: Scenario) -> None:
        s.handshake()
        s.send(CLI, b"GET / HTTP/1.0\r\n\r\n")
        s.send(SVR, b"HTTP/1.0 200 OK\r\n\r\n")
    s = Scenario("10.0.0.1:40000", "10.0.0.2:80")
    build(s)
    (rec,) = _records(s.frames[3:], midstream=True)     # the handshake is not captured
    assert rec["conn_state"] == "OTH" and rec["history"] == "Dd"


def test_conn_state_table() -> None:
    assert conn_state(RESET, RESET, 0, 0, "Rr") == "REJ"
    assert conn_state(PARTIAL, RESET, 5, 0, "Dr") == "RSTRH"
    assert conn_state(RESET, INACTIVE, 0, 0, "SR") == "RSTOS0"
    assert conn_state(RESET, INACTIVE, 0, 0, "DR") == "OTH"
    assert conn_state(CLOSED, ESTABLISHED, 1, 1, "ShADF") == "S2"
    assert conn_state(ESTABLISHED, CLOSED, 1, 1, "ShADf") == "S3"
    assert conn_state(PARTIAL, CLOSED, 0, 1, "df") == "SHR"
    assert conn_state(SYN_SENT, INACTIVE, 0, 0, "S") == "S0"
    rec = ZeekRecorder()
    rec.packet(0, 0x02, 100, 0, 64240, object())  # type: ignore[arg-type]
    assert rec.state == (SYN_SENT, INACTIVE) and rec.history == "S"


# -- real captures (netgen: Linux endpoints, tshark truth) ----------------------------------------


def _netgen(name: str) -> dict[str, dict[str, Any]]:
    path = NETGEN / f"{name}.pcap"
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared capture corpus)")
    code, out, _err = run("flows", "-r", str(path))
    assert code == 0
    return {json.loads(line)["client"]: json.loads(line) for line in out.splitlines()}


def test_netgen_refused_and_normal_close() -> None:
    recs = _netgen("refused")
    rej = [r for r in recs.values() if r["server"].endswith(":7000")]
    assert rej and all((r["conn_state"], r["history"]) == ("REJ", "Sr") for r in rej)
    ok = [r for r in recs.values() if r["server"].endswith(":80")]
    assert ok and all((r["conn_state"], r["history"]) == ("SF", "ShADadFf") for r in ok)


def test_netgen_resets_by_either_side() -> None:
    recs = _netgen("abort_rst")
    # a server abort while sending (its data then its RST), a client abort after an exchange
    assert (recs["10.77.1.1:42367"]["conn_state"], recs["10.77.1.1:42367"]["history"]) == \
        ("RSTR", "ShADar")
    assert (recs["10.77.1.1:34223"]["conn_state"], recs["10.77.1.1:34223"]["history"]) == \
        ("RSTO", "ShADadR")


def test_netgen_loss_retransmission() -> None:
    recs = _netgen("loss")
    # the client's 600 kB upload: two of its segments retransmitted (tshark flags frames 202
    # and 570), so one T; its FIN, then the server's 19-byte answer and FIN
    r = recs["10.77.1.1:57443"]
    assert (r["conn_state"], r["history"]) == ("SF", "ShADaTFdf")
    assert r["orig_bytes"] == r["c2s"]["bytes"] == 600041 and r["missed_bytes"] == 0


# -- the conn.log ---------------------------------------------------------------------------------


def read_zeek_log(text: str) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """A reader written to Zeek's ASCII log format: the #-header (separator given as \\xNN),
    #fields and #types, values typed by #types, the unset field as None."""
    lines = text.splitlines()
    assert lines[0].startswith("#separator ")
    sep = bytes(lines[0].split(" ", 1)[1], "ascii").decode("unicode_escape")
    meta: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    fields: list[str] = []
    types: list[str] = []
    for line in lines[1:]:
        if line.startswith("#"):
            key, _, value = line[1:].partition(sep)
            meta[key] = value
            if key == "fields":
                fields = value.split(sep)
            elif key == "types":
                types = value.split(sep)
            continue
        values = line.split(sep)
        assert len(values) == len(fields) == len(types)
        row: dict[str, Any] = {}
        for name, kind, value in zip(fields, types, values, strict=True):
            if value == meta["unset_field"]:
                row[name] = None
            elif kind in ("count", "port"):
                row[name] = int(value)
            elif kind in ("time", "interval"):
                row[name] = float(value)
            elif kind == "bool":
                row[name] = {"T": True, "F": False}[value]
            elif kind.startswith("set["):
                row[name] = set() if value == meta["empty_field"] else set(
                    value.split(meta["set_separator"]))
            else:
                row[name] = value
        rows.append(row)
    return meta, rows


def test_conn_log_reads_back() -> None:
    pcap = str(SAMPLES / "http_small.pcap")
    code, text, _ = run("flows", "-r", pcap, "--format", "zeek")
    assert code == 0
    meta, rows = read_zeek_log(text)
    assert meta["path"] == "conn" and "close" in meta and meta["unset_field"] == "-"
    code, jsonl, _ = run("flows", "-r", pcap)
    recs = [json.loads(line) for line in jsonl.splitlines()]
    assert len(rows) == len(recs) == 5
    for row, rec in zip(rows, recs, strict=True):
        assert f"{row['id.orig_h']}:{row['id.orig_p']}" == rec["client"]
        assert row["proto"] == "tcp" and row["uid"].startswith("C")
        assert row["conn_state"] == rec["conn_state"] and row["history"] == rec["history"]
        assert row["orig_pkts"] == rec["c2s"]["packets"]
        assert row["ts"] == pytest.approx(rec["start"], abs=1e-6)
        if rec["duration"] > 0:
            assert row["orig_bytes"] == rec["orig_bytes"]
            assert row["duration"] == pytest.approx(rec["duration"], abs=1e-6)
    assert [r["conn_state"] for r in rows] == ["SF", "SF", "SF", "REJ", "RSTO"]


def test_conn_log_ipv6_addresses_without_brackets() -> None:
    path = NETGEN / "ipv6_mixed.pcap"
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared capture corpus)")
    code, text, _ = run("flows", "-r", str(path), "--format", "zeek")
    _meta, rows = read_zeek_log(text)
    assert any(r["id.orig_h"] == "fd00:77::1:1" for r in rows)


def test_record_json_matches_record_with_zeek_fields() -> None:
    s = Scenario("10.0.0.1:40000", "10.0.0.2:80")
    s.handshake()
    s.send(CLI, b"hi")
    s.close(CLI)
    mon = mos.Monitor()
    mon.socket(mos.MONITOR_STREAM)
    pairs: list[tuple[str, str]] = []
    mon.on_flow_end(lambda c: pairs.append((c.record_json(), json.dumps(c.record()))))
    mon.run(MemorySource(s.frames))
    assert pairs and all(a == b for a, b in pairs)
    # the server's first packet is the ACK riding on its FIN reply's predecessor: a, then f
    assert '"conn_state": "SF", "history": "ShADFaf"' in pairs[0][0]
