"""mos.analyze(): DataFrames equal to the command line's output, plots, streams, dissection,
empty results, and the stepper (a run stepped to the end gives mon.run's trace)."""

from __future__ import annotations

import io
import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

import mostool as mos
from mostool.analysis.tables import to_datetime
from mostool.cli import main
from mostool.sinks.events_out import EventRecorder

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_pcaps"
NETGEN = ROOT.parent / "shared" / "pcaps" / "netgen"
BUNDLED = sorted(SAMPLES.glob("*.pcap")) + sorted(SAMPLES.glob("synthetic/*.pcap"))
CAPTURES = BUNDLED + sorted(NETGEN.glob("*.pcap"))
ALL_BUILTINS = [e.name for e in mos.BUILTIN_EVENTS]


def _cli(*argv: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    assert main(list(argv), out=out, err=err) == 0, err.getvalue()
    return out.getvalue()


def _same(value: object, want: object) -> bool:
    if want is None:
        return value is None or value is pd.NA or (isinstance(value, float) and
                                                    math.isnan(value))
    if isinstance(want, float):
        return isinstance(value, float) and (value == want or math.isclose(value, want))
    return bool(value == want)


@pytest.mark.parametrize("pcap", CAPTURES, ids=lambda p: p.name)
def test_flows_equal_mostool_flows_field_by_field(pcap: Path) -> None:
    # analyze() runs MonitorConfig's defaults: buffering on (1 MiB), which also compares
    # overlapping copies; `mostool flows` buffers nothing unless asked (--rcvbuf)
    out = _cli("flows", "-r", str(pcap), "--rcvbuf", str(mos.MonitorConfig().rcvbuf))
    records = [json.loads(line) for line in out.splitlines()]
    frame = mos.analyze(pcap).flows
    assert list(frame.index) == [r["id"] for r in records]
    for rec in records:
        row = frame.loc[rec["id"]]
        flat = {k: v for k, v in rec.items() if k not in ("id", "c2s", "s2c", "tunnel")}
        for d in ("c2s", "s2c"):
            flat.update({f"{d}_{k}": v for k, v in rec[d].items()})
        # how the flow was carried: the kinds, outermost first ("" for a plain flow)
        flat["tunnel"] = "/".join(hop["kind"] for hop in rec.get("tunnel", ()))
        assert set(flat) == set(frame.columns)
        for name, want in flat.items():
            got = row[name]
            if name in ("start", "end"):
                assert got == to_datetime([want])[0], name
            elif isinstance(got, str) or hasattr(got, "item"):
                got = got.item() if hasattr(got, "item") else got
                assert _same(got, want), (name, got, want)
            else:
                assert _same(None if got is pd.NA else got, want), (name, got, want)


@pytest.mark.parametrize("pcap", BUNDLED[:3] + sorted(NETGEN.glob("loss.pcap")),
                         ids=lambda p: p.name)
def test_events_equal_mostool_events(pcap: Path) -> None:
    lines = [json.loads(line) for line in _cli("events", "-r", str(pcap)).splitlines()]
    ev = mos.analyze(pcap, events=ALL_BUILTINS).events
    assert len(ev) == len(lines)
    extra = ("offset", "length", "kind", "reason", "old", "new", "idle")
    for rec, row in zip(lines, ev.itertuples(index=False), strict=True):
        assert (row.packet, row.ts, row.flow, row.side, row.hook, row.event) == (
            rec["packet"], rec["ts"], rec["flow"], rec["side"], rec["hook"], rec["event"])
        for name in extra:
            got = getattr(row, name)
            want = rec.get(name)
            if want is None:
                assert got is pd.NA or got is None or (isinstance(got, float)
                                                       and math.isnan(got)), name
            else:
                assert got == want, (name, got, want)


def test_events_default_leaves_out_pkt_in_and_keeps_udes() -> None:
    cap = mos.analyze(SAMPLES / "http_small.pcap", app="http")
    ev = cap.events
    assert "ON_PKT_IN" not in set(ev["event"].astype(str))
    udes = ev[ev["ude"]]
    assert {"http_request", "http_response"} <= set(udes["event"].astype(str))
    assert set(udes["base"].astype(str)) == {"ON_CONN_NEW_DATA"}
    only = mos.analyze(SAMPLES / "http_small.pcap", app="http",
                       events=["http_request"]).events
    assert set(only["event"].astype(str)) == {"http_request"}
    assert len(only) == 15                    # the truth file's 15 requests


@pytest.mark.parametrize("pcap", BUNDLED[:3] + sorted(NETGEN.glob("loss.pcap"))
                         + sorted(NETGEN.glob("reorder_dup.pcap")), ids=lambda p: p.name)
def test_stream_equals_mostool_streams(pcap: Path, tmp_path: Path) -> None:
    _cli("streams", "-r", str(pcap), "-o", str(tmp_path))
    index = [json.loads(line) for line in (tmp_path / "index.jsonl").read_text().splitlines()]
    cap = mos.analyze(pcap)
    assert index
    for entry in index:
        direction = entry.get("direction")
        got = cap.stream(entry["flow"], direction)
        want = (tmp_path / entry["file"]).read_bytes() if entry["file"] else b""
        assert bytes(got) == want and len(got) == entry["bytes"]
        assert [(g["offset"], g["length"]) for g in got.gaps] == [
            (g["offset"], g["length"]) for g in entry["gaps"]]


def test_packets_of_a_flow() -> None:
    cap = mos.analyze(SAMPLES / "impaired_small.pcap")
    flows = cap.flows
    fid = int(flows.index[(flows["c2s_rexmit"] + flows["s2c_rexmit"]) > 0][0])
    pk = cap.packets(fid)
    rec = flows.loc[fid]
    assert list(pk["number"]) == sorted(pk["number"])
    assert pk["number"].iloc[0] == rec["first_packet"]
    assert (pk["direction"] == "c2s").sum() == rec["c2s_packets"]
    assert (pk["direction"] == "s2c").sum() == rec["s2c_packets"]
    assert pk["flags"].iloc[0] == "S" and pk["seq"].iloc[0] == 0
    for d in ("c2s", "s2c"):
        assert pk.loc[pk["direction"] == d, "new_data"].sum() == rec[f"{d}_bytes"]
    assert (pk["rexmit"] > 0).sum() > 0
    assert str(pk["time"].dtype) == "datetime64[ns, UTC]"
    with pytest.raises(KeyError, match="no flow 999"):
        cap.packets(999)


def test_plots_are_figures_that_save(tmp_path: Path) -> None:
    from matplotlib.figure import Figure
    cap = mos.analyze(SAMPLES / "impaired_small.pcap")
    fid = int(cap.flows.index[(cap.flows["c2s_rexmit"] + cap.flows["s2c_rexmit"]) > 0][0])
    direction = "c2s" if cap.flows.loc[fid, "c2s_rexmit"] else "s2c"
    fig = cap.plot.time_sequence(fid, direction)
    assert isinstance(fig, Figure)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert {"segments", "retransmissions", "ACK", "receive window"} <= set(labels)
    for f in (fig, cap.plot.throughput(fid), cap.plot.timeline()):
        path = tmp_path / "p.png"
        f.savefig(path)
        assert path.stat().st_size > 1000
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, ax = plt.subplots()
    assert cap.plot.throughput(fid, ax=ax) is figure
    plt.close(figure)


def test_empty_results_are_typed_frames(tmp_path: Path) -> None:
    from mostool.sinks.pcap_out import PcapWriter
    path = tmp_path / "arp.pcap"
    w = PcapWriter(str(path))
    w.write(1.0, 1, b"\xff" * 12 + b"\x08\x06" + b"\x00" * 28, 42)
    w.close()
    cap = mos.analyze(path)
    assert len(cap.flows) == 0 and "client" in cap.flows.columns
    assert str(cap.flows["start"].dtype) == "datetime64[ns, UTC]"
    ev = mos.analyze(path, events=["ON_CONN_START"]).events
    assert len(ev) == 0 and str(ev["time"].dtype) == "datetime64[ns, UTC]"
    assert "flow" in ev.columns


def test_bad_arguments_are_clear(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such capture"):
        mos.analyze(tmp_path / "none.pcap")
    with pytest.raises(TypeError, match="overlpa"):
        mos.analyze(SAMPLES / "http_small.pcap", overlpa="last")
    with pytest.raises(ValueError, match="'c2s' or 's2c'"):
        mos.analyze(SAMPLES / "http_small.pcap").stream(1, "up")


def test_to_arrow_and_parquet(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    cap = mos.analyze(SAMPLES / "http_small.pcap")
    table = cap.to_arrow()
    assert table.num_rows == len(cap.flows) and "client" in table.column_names
    cap.to_parquet(tmp_path / "f.parquet")
    assert pq.read_table(tmp_path / "f.parquet").num_rows == len(cap.flows)
    assert cap.to_arrow("events").num_rows == len(cap.events)


def test_html_reprs_escape_and_summarise() -> None:
    cap = mos.analyze(SAMPLES / "http_small.pcap")
    page = cap._repr_html_()
    assert "5 flow(s)" in page and "10.77.1.1" in page and "<table" in page
    assert "<table" in cap.flow(1)._repr_html_()


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_dissect_one_packet_a_flow_and_merged_files(tmp_path: Path) -> None:
    cap = mos.analyze(SAMPLES / "http_small.pcap")
    pkt = cap.dissect(3)
    assert int(pkt.number) == 3 and pkt.tcp.flags_syn in ("1", "True")
    view = cap.flow(1)
    packets = view.dissect()
    assert [int(p.number) for p in packets] == list(view.packets()["number"])
    with pytest.raises(KeyError):
        cap.dissect(10_000)
    # two files merged by time: numbered across the merge, as mostool numbers them
    two = mos.analyze([SAMPLES / "http_small.pcap", SAMPLES / "impaired_small.pcap"])
    first = two.flows.iloc[0]
    pkt = two.dissect(int(first["first_packet"]))
    assert pkt.tcp.flags_syn in ("1", "True")


# -- the stepper ----------------------------------------------------------------------------------


def _trace(mon: mos.Monitor) -> io.StringIO:
    out = io.StringIO()
    EventRecorder(mon, out).attach()
    return out


@pytest.mark.parametrize("pcap", BUNDLED, ids=lambda p: p.name)
def test_stepped_to_the_end_equals_a_run(pcap: Path) -> None:
    plain = mos.Monitor()
    plain.socket(mos.MONITOR_STREAM)
    want = _trace(plain)
    plain.run(mos.replay(str(pcap)))
    stepped = mos.Monitor()
    stepped.socket(mos.MONITOR_STREAM)
    got = _trace(stepped)
    st = stepped.stepper(mos.replay(str(pcap)))
    st.step(3)
    st.run_until(lambda flow, side, ev: False)
    assert st.done
    assert got.getvalue() == want.getvalue()


def _is_request(flow: mos.Flow, side: mos.Side, event: mos.Event) -> bool:
    """The man page's HTTP request UDE: new client bytes that start with a method."""
    return side == mos.SVR and flow.ppeek(side, event.base.offset, 4) in (b"GET ", b"POST")


def _is_post(flow: mos.Flow, side: mos.Side, event: mos.Event) -> bool:
    return flow.ppeek(side, event.base.offset, 4) == b"POST"


def test_run_until_a_ude_and_read_the_live_flow() -> None:
    pcap = SAMPLES / "http_small.pcap"
    cap = mos.analyze(pcap)
    posts = sum(cap.stream(int(f), "c2s").count(b"POST /") for f in cap.flows.index)
    mon = mos.Monitor()
    sock = mon.socket(mos.MONITOR_STREAM)
    http_req = mos.define_event(mos.ON_CONN_NEW_DATA, _is_request, name="http_req")
    http_post = mos.define_event(http_req, _is_post, name="http_post")
    seen: list[int] = []
    sock.on(http_post, callback=lambda flow, side, ev: seen.append(flow.id))
    st = mon.stepper(mos.replay(str(pcap)))
    hit = st.run_until(http_post)
    assert hit is not None and hit.name == "http_post" and hit.side == mos.SVR
    assert hit.packet == st.packet and seen == [hit.flow.id]
    assert hit.flow.ppeek(hit.side, hit.event.base.offset, 5) == b"POST "
    assert not mon.failures
    assert hit.flow.state(mos.SVR) == mos.TcpState.ESTABLISHED
    assert "http_post" in hit._repr_html_()
    snapshot = st.flows
    assert hit.flow.id in snapshot.index
    nxt = st.step()
    assert nxt == hit.packet + 1 or st.done
    again = st.run_until("ON_CONN_END")
    assert again is not None and again.event.type is mos.ON_CONN_END
    st.run()
    assert st.done and len(st.flows) == len(cap.flows) and len(st.hits) == 2
    assert posts > 1 and len(seen) == posts


def test_run_until_a_predicate_and_its_errors() -> None:
    mon = mos.Monitor()
    mon.socket(mos.MONITOR_STREAM)
    st = mon.stepper(mos.replay(str(SAMPLES / "impaired_small.pcap")))
    hit = st.run_until(lambda flow, side, ev: ev.type is mos.ON_REXMIT)
    assert hit is not None and hit.event.type is mos.ON_REXMIT
    assert st.run_until("ON_CONN_START", max_packets=1) is None or st.packet == hit.packet + 1

    def broken(flow: object, side: object, ev: object) -> bool:
        raise ZeroDivisionError("user bug")

    with pytest.raises(ZeroDivisionError):
        st.run_until(broken)
    with pytest.raises(ValueError):
        st.step(0)


def test_flows_on_a_dask_cluster_equal_one_process() -> None:
    pytest.importorskip("distributed", reason="the dask extra is not installed")
    files = [SAMPLES / "http_small.pcap", SAMPLES / "impaired_small.pcap"]
    here = mos.analyze(files).flows
    there = mos.analyze(files, cluster="local:2").flows
    pd.testing.assert_frame_equal(here, there)


def test_flow_html_escapes_and_shows_both_stacks() -> None:
    from mostool.analysis.html import event_html, flow_html
    mon = mos.Monitor()
    mon.socket(mos.MONITOR_STREAM)
    st = mon.stepper(mos.replay(str(SAMPLES / "http_small.pcap")))
    hit = st.run_until("ON_CONN_NEW_DATA")
    assert hit is not None
    page = flow_html(hit.flow)
    assert "CLI (client" in page and "SVR (server" in page and "&gt;" in page
    assert "ON_CONN_NEW_DATA" in event_html(hit.event)
