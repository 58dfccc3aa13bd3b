"""The shipped apps (midstat, rexmit, http, early_stop) on sample captures, and the app loader."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from builders import CLI, SVR, Scenario
from cmd_helpers import NETGEN, SAMPLES, run
from netgen_check import endpoint

import mostool as mos
from mostool.apps import AppError, load_app, start_apps
from mostool.apps.http import HttpApp
from mostool.replay import ReplaySource
from mostool.sources import MemorySource

HTTP_SMALL = SAMPLES / "http_small.pcap"
IMPAIRED = SAMPLES / "impaired_small.pcap"


def records(pcap: Path, **config: Any) -> dict[int, dict[str, Any]]:
    mon = mos.Monitor(mos.MonitorConfig(rcvbuf=0, **config))
    mon.socket(mos.MONITOR_STREAM)
    out: dict[int, dict[str, Any]] = {}
    mon.on_flow_end(lambda conn: out.__setitem__(conn.id, conn.record()))
    mon.run(ReplaySource([str(pcap)]))
    return out


# -- midstat --------------------------------------------------------------------------------------


def test_midstat_prints_the_table_each_second_of_packet_time() -> None:
    t = 1_700_000_000.0
    a = Scenario("10.0.0.1:40000", "10.0.0.2:80", t0=t)
    a.handshake()
    a.advance(1.2)
    a.send(CLI, b"hello")
    a.advance(1.0)
    a.send(SVR, b"world")
    a.advance(1.0)
    a.close()
    b = Scenario("10.0.0.3:40001", "10.0.0.2:443", t0=t + 1.5)
    b.handshake()
    b.send(CLI, b"x")
    b.advance(0.5)
    b.close(SVR)
    out = io.StringIO()
    mon = mos.Monitor()
    from mostool.apps.midstat import setup
    report = setup(mon, out=out)
    mon.run(MemorySource(sorted(a.frames + b.frames, key=lambda f: f[0])))
    report()
    header = ("Proto Client Address          Client State  Server Address          "
              "Server State")
    a_row = "tcp   10.0.0.1:40000          ESTABLISHED   10.0.0.2:80             ESTABLISHED"
    b_row = "tcp   10.0.0.3:40001          ESTABLISHED   10.0.0.2:443            ESTABLISHED"
    assert out.getvalue().splitlines() == [
        "-- 1 connection(s) at +1.000s", header, a_row,
        "-- 2 connection(s) at +2.000s", header, a_row, b_row,
        "-- 1 connection(s) at +3.000s", header, a_row,
        "midstat: 2 connection(s) (fin 2), 20 state changes, 3 table(s) printed",
        "  #2    10.0.0.3:40001          CLOSED       10.0.0.2:443            TIME_WAIT    fin",
        "  #1    10.0.0.1:40000          TIME_WAIT    10.0.0.2:80             CLOSED       fin",
    ]


def test_midstat_on_the_sample_capture() -> None:
    code, out, err = run("run", "-r", str(HTTP_SMALL), "--app", "midstat")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "midstat: 5 connection(s) (fin 3, rst 2), 40 state changes, 0 table(s) " \
                       "printed"
    recs = records(HTTP_SMALL)
    ended = {int(x.split()[0][1:]): x.split() for x in lines[1:]}
    assert sorted(ended) == sorted(recs)
    for fid, (_, client, cstate, server, sstate, reason) in ended.items():
        r = recs[fid]
        assert (client, cstate, server, sstate, reason) == (
            r["client"], r["client_state"], r["server"], r["server_state"], r["end_reason"])


# -- rexmit ---------------------------------------------------------------------------------------


def test_rexmit_report_on_the_impaired_capture() -> None:
    code, out, err = run("run", "-r", str(IMPAIRED), "--app", "rexmit")
    assert code == 0, err
    # what the report must say, counted here with a plain callback
    mon = mos.Monitor()
    sock = mon.socket(mos.MONITOR_STREAM)
    seen: dict[int, list[int]] = {}

    def count(flow: Any, side: mos.Side, event: Any) -> None:
        c = seen.setdefault(flow.id, [0, 0, 0, 0])
        i = 0 if side == mos.SVR else 2
        c[i] += 1
        c[i + 1] += event.length

    sock.on(mos.ON_REXMIT, callback=count)
    mon.run(ReplaySource([str(IMPAIRED)]))
    recs = records(IMPAIRED)
    lines = out.splitlines()
    assert lines[0].split() == ["flow", "client", "server", "c2s", "rexmit", "bytes", "s2c",
                                "rexmit", "bytes", "end"]
    rows = {int(x.split()[0]): x for x in lines[1:-1]}
    assert sorted(rows) == sorted(seen)
    for fid, (cn, cb, sn, sb) in seen.items():
        r = recs[fid]
        cp, sp = r["c2s"]["packets"], r["s2c"]["packets"]
        assert rows[fid].split() == [
            str(fid), r["client"], r["server"], str(cn), f"({100 * cn / cp:.1f}%)", str(cb),
            str(sn), f"({100 * sn / sp:.1f}%)", str(sb), r["end_reason"]]
    total = [sum(v[i] for v in seen.values()) for i in range(4)]
    assert lines[-1] == (
        f"rexmit: {total[0] + total[2]} retransmission(s) ({total[1] + total[3]} bytes) in "
        f"{len(seen)} of {len(recs)} flow(s); client->server {total[0]} ({total[1]} bytes), "
        f"server->client {total[2]} ({total[3]} bytes)")
    # the impairing relay retransmitted on the upload (port 9000) and on an HTTP connection
    assert any(r["server"].endswith(":9000") for fid, r in recs.items() if fid in seen)
    assert total[0] + total[2] >= 2


def test_rexmit_on_a_clean_capture_reports_none() -> None:
    code, out, _ = run("run", "-r", str(HTTP_SMALL), "--app", "rexmit")
    assert code == 0
    assert out.splitlines()[-1] == ("rexmit: 0 retransmission(s) (0 bytes) in 0 of 5 flow(s); "
                                    "client->server 0 (0 bytes), server->client 0 (0 bytes)")


# -- http -----------------------------------------------------------------------------------------


def test_http_requests_and_responses_on_the_sample() -> None:
    code, out, err = run("run", "-r", str(HTTP_SMALL), "--app", "http")
    assert code == 0, err
    lines = out.splitlines()
    requests = [x for x in lines if " > " in x]
    responses = [x for x in lines if " < " in x]
    assert len(requests) == 15 and len(responses) == 15
    assert requests[0] == "#2 10.77.1.1:59429 > 10.77.0.2:80  POST /obj/0/1/0?size=749 HTTP/1.1"
    assert responses[0] == ("#2 10.77.1.1:59429 < 10.77.0.2:80  HTTP/1.1 200 OK "
                            "(749 bytes, answers POST)")
    # each response's body is the size its request asked for
    for req, resp in zip(requests, responses, strict=True):
        size = req.split("size=")[1].split()[0]
        assert f"({size} bytes, answers {req.split()[4]})" in resp
    assert lines[30] == ("http: 15 request(s) (GET 9, POST 6), 15 response(s) (200 15) on "
                         "3 flow(s)")
    truth = json.loads(HTTP_SMALL.with_suffix(".json").read_text())
    per_flow = {x.split()[1]: x for x in lines[31:]}
    for conn in truth["connections"]:
        if conn["type"] != "http":
            continue
        line = per_flow[endpoint(conn["client"])]
        app = conn["client_app"]
        assert f"{app['requests']} requests" in line
        assert f"{app['requests']} responses ({app['response_body_bytes']} body bytes)" in line


def _http_truth(pcap: Path) -> list[str]:
    truth = json.loads(pcap.with_suffix(".json").read_text())
    mon = mos.Monitor()
    app = HttpApp(mon, out=io.StringIO(), quiet=True)
    mon.run(ReplaySource([str(pcap)]))
    got = {(c, s): (nq, rb) for c, s, nq, _nr, _qb, rb in app.flows.values()}
    problems = []
    for conn in truth["connections"]:
        if conn["type"] != "http":
            continue
        key = (endpoint(conn["client"]), endpoint(conn["server"]))
        want = (conn["client_app"]["requests"], conn["client_app"]["response_body_bytes"])
        if got.get(key) != want:
            problems.append(f"{pcap.name} {key}: got {got.get(key)}, truth {want}")
    return problems


netgen_http = sorted(p for p in NETGEN.glob("*.pcap") if p.with_suffix(".json").exists()
                     and '"type": "http"' in p.with_suffix(".json").read_text()) \
    if NETGEN.is_dir() else []


@pytest.mark.skipif(not netgen_http, reason=f"{NETGEN} is absent (../shared not beside repo)")
@pytest.mark.parametrize("pcap", netgen_http, ids=[p.stem for p in netgen_http])
def test_http_matches_the_applications_truth(pcap: Path) -> None:
    """Requests per connection and response body bytes, as the netgen clients counted them
    (keep-alive, pipelining, loss, reordering, VLAN, IPv6)."""
    assert _http_truth(pcap) == []


@pytest.mark.parametrize("name", ["http_small", "impaired_small", "mixed_small"])
def test_http_matches_the_truth_of_the_bundled_samples(name: str) -> None:
    assert _http_truth(SAMPLES / f"{name}.pcap") == []


def test_http_chunked_and_head() -> None:
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    sc.send(SVR, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
    sc.send(SVR, b"6;ext=1\r\n world\r\n0\r\n\r\n")
    sc.send(CLI, b"HEAD /b HTTP/1.1\r\n\r\n")
    sc.send(SVR, b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n")
    sc.send(CLI, b"GET /c HTTP/1.1\r\n\r\n")
    sc.send(SVR, b"HTTP/1.1 304 Not Modified\r\n\r\n")
    sc.close()
    out = io.StringIO()
    mon = mos.Monitor()
    app = HttpApp(mon, out=out)
    mon.run(MemorySource(sc.frames))
    app.report()
    lines = out.getvalue().splitlines()
    assert "HTTP/1.1 200 OK (chunked, answers GET)" in lines[1]
    assert "HTTP/1.1 200 OK (no body, answers HEAD)" in lines[3]
    assert "HTTP/1.1 304 Not Modified (no body, answers GET)" in lines[5]
    assert lines[6] == "http: 3 request(s) (GET 2, HEAD 1), 3 response(s) (200 2, 304 1) on " \
                       "1 flow(s)"
    assert "3 responses (11 body bytes)" in lines[7]


# -- early_stop -----------------------------------------------------------------------------------


def test_early_stop_skips_the_rest_of_each_flow() -> None:
    code, out, err = run("run", "-r", str(HTTP_SMALL), "--app", "early_stop")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[:3] == [
        "#2 10.77.1.1:59429 > 10.77.0.2:80  POST /obj/0/1/0?size=749 HTTP/1.1",
        "#1 10.77.1.1:50723 > 10.77.0.2:80  GET /obj/0/0/0?size=1059 HTTP/1.1",
        "#3 10.77.1.1:35903 > 10.77.0.2:80  GET /obj/0/2/0?size=2233 HTTP/1.1",
    ]
    # what stopping saved: the packets a full run gives the flows' stacks, minus this run's
    mon = mos.Monitor()
    from mostool.apps.early_stop import EarlyStop
    app = EarlyStop(mon, out=io.StringIO())
    mon.run(ReplaySource([str(HTTP_SMALL)]))
    full_mon = mos.Monitor(mos.MonitorConfig(rcvbuf=0))
    full_mon.socket(mos.MONITOR_STREAM)
    full_recs: list[dict[str, Any]] = []
    full_mon.on_flow_end(lambda conn: full_recs.append(conn.record()))
    full_mon.run(ReplaySource([str(HTTP_SMALL)]))
    full = sum(r["c2s"]["packets"] + r["s2c"]["packets"] for r in full_recs)
    # a stopped flow ends at its second FIN, so the last ACK is an orphan, not a skipped packet
    late_orphans = mon.engine.counters["orphans"] - full_mon.engine.counters["orphans"]
    assert late_orphans == 3
    skipped = full - app.packets_tracked - late_orphans
    assert skipped == app.skipped_packets() == 96
    assert lines[3] == ("early_stop: 3 request line(s), 1 non-HTTP flow(s); stopped 4 of 5 "
                        f"flow(s) early; {skipped} of 117 TCP packets skipped (82.1%)")
    # the stopped flows end as "stopped" for the app, and the refused one was never stopped
    assert app.stopped == {1, 2, 3, 5}


# -- loading apps ---------------------------------------------------------------------------------


def test_app_specs(tmp_path: Path) -> None:
    assert load_app("midstat").name == "setup"
    assert load_app("mostool.apps.rexmit:setup").name == "setup"
    f = tmp_path / "mine.py"
    f.write_text("def main(mon):\n    mon.socket()\n\ndef other(mon):\n    return print\n")
    assert load_app(str(f)).name == "main"
    app = load_app(f"{f}:other")
    assert app.name == "other"
    app.start(mos.Monitor())
    assert app.finish is print


@pytest.mark.parametrize("body, spec_suffix, message", [
    (None, "", "app file not found"),
    ("def setup(mon:\n", "", "SyntaxError: "),
    ("import no_such_module_q\n", "", "ModuleNotFoundError: No module named 'no_such_module_q'"),
    ("x = 1\n", "", "has no function setup (or main)"),
    ("def setup(mon):\n    pass\n", ":nope", "has no function nope"),
    ("def setup(mon):\n    raise ValueError('bad port')\n", "",
     "failed in setup(): ValueError: bad port (app.py, line 2)"),
])
def test_app_errors_are_one_line(tmp_path: Path, body: str | None, spec_suffix: str,
                                 message: str) -> None:
    f = tmp_path / "app.py"
    if body is not None:
        f.write_text(body)
    with pytest.raises(AppError, match=None) as info:
        start_apps(mos.Monitor(), [f"{f}{spec_suffix}"])
    assert message in str(info.value) and "\n" not in str(info.value)
    code, _, err = run("run", "-r", str(HTTP_SMALL), "--app", f"{f}{spec_suffix}")
    assert code == 2 and err.count("\n") == 1 and message in err


def test_syntax_error_names_the_line(tmp_path: Path) -> None:
    f = tmp_path / "app.py"
    f.write_text("x = 1\ndef setup(mon:\n")
    with pytest.raises(AppError) as info:
        load_app(str(f))
    assert "(app.py, line 2)" in str(info.value)


def test_unknown_app_name() -> None:
    code, _, err = run("run", "-r", str(HTTP_SMALL), "--app", "nosuchapp")
    assert code == 2
    assert err == ("mostool: error: no app named 'nosuchapp' (not a file, not an importable "
                   "module; shipped apps: midstat, rexmit, http, early_stop)\n")


def test_run_needs_an_app() -> None:
    code, _, err = run("run", "-r", str(HTTP_SMALL))
    assert code == 2 and "no app" in err


BAD_CALLBACK = """\
import mostool as mos

def setup(mon):
    sock = mon.socket(mos.MONITOR_STREAM)
    def boom(flow, side, event):
        if flow.id == 2:
            raise KeyError("no such thing")
    sock.on(mos.ON_CONN_START, mos.HK_SND, boom)
    return lambda: print("report still printed")
"""


def test_a_raising_callback_is_reported_and_the_run_goes_on(tmp_path: Path) -> None:
    f = tmp_path / "bad.py"
    f.write_text(BAD_CALLBACK)
    code, out, err = run("run", "-r", str(HTTP_SMALL), "--app", str(f))
    assert code == 0
    assert out == "report still printed\n"
    assert err.count("\n") == 1
    assert "1 callback error(s); first: packet 6: callback for ON_CONN_START on flow 2 " \
           "10.77.1.1:59429 > 10.77.0.2:80: KeyError: 'no such thing'" in err


def test_strict_stops_at_the_first_raising_callback(tmp_path: Path) -> None:
    f = tmp_path / "bad.py"
    f.write_text(BAD_CALLBACK)
    code, _, err = run("run", "-r", str(HTTP_SMALL), "--app", str(f), "--strict")
    assert code == 1
    assert err.startswith("mostool: error: callback for ON_CONN_START on flow ")
    assert "KeyError" in err and "(stopped: --strict)" in err


def test_several_apps_share_one_monitor() -> None:
    code, out, err = run("run", "-r", str(HTTP_SMALL), "--app", "http", "--app", "rexmit")
    assert code == 0, err
    assert "http: 15 request(s)" in out and "rexmit: 0 retransmission(s)" in out


def test_watch_with_an_app_shows_its_udes() -> None:
    code, out, err = run("watch", "-r", str(HTTP_SMALL), "--app", "http")
    assert code == 0, err
    assert "http: 15 request(s) (GET 9, POST 6)" in out
    assert "http_request (UDE)" in out and "http_response (UDE)" in out
