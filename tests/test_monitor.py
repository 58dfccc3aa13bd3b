"""Monitor's public accessors and its flow-end hook failure path, on a real capture."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import mostool as mos
from mostool.replay import ReplaySource

SAMPLE = Path(__file__).resolve().parent.parent / "sample_pcaps" / "http_small.pcap"


def _run(mon: mos.Monitor) -> dict[str, Any]:
    return mon.run(ReplaySource([str(SAMPLE)]))


def test_accessors_agree_with_the_run_stats() -> None:
    mon = mos.Monitor()
    sock = mon.socket(mos.MONITOR_STREAM)
    seen: list[tuple[int, float]] = []
    sock.on(mos.ON_CONN_START, callback=lambda f, s, e: seen.append((mon.packet_number,
                                                                      mon.now)))
    stats = _run(mon)
    counters = mon.counters
    assert counters["packets"] == stats["packets"] > 0
    assert mon.flows_total == len(seen) > 0
    assert mon.active_flows == 0 and mon.active_connections() == []
    assert mon.event_counts["ON_CONN_START"] == len(seen)
    assert mon.callback_errors == 0 and mon.failures == []
    assert all(n >= 1 for n, _ in seen)
    assert [ts for _, ts in seen] == sorted(ts for _, ts in seen)
    counters["packets"] = -1                     # a copy: the engine's count stays
    assert mon.counters["packets"] == stats["packets"]


def test_active_connections_while_running() -> None:
    mon = mos.Monitor()
    sock = mon.socket(mos.MONITOR_STREAM)
    live: list[int] = []
    sock.on(mos.ON_CONN_START, callback=lambda f, s, e: live.append(
        len(mon.active_connections())))
    _run(mon)
    assert live and live[0] >= 1
    assert mon.active_flows == 0


def test_a_failing_flow_end_hook_is_reported_and_the_run_goes_on() -> None:
    mon = mos.Monitor()
    mon.socket(mos.MONITOR_STREAM)
    ended: list[int] = []

    def hook(conn: Any) -> None:
        ended.append(conn.id)
        raise ValueError("boom")

    mon.on_flow_end(hook)
    _run(mon)
    assert ended and mon.callback_errors == len(ended)
    assert len(mon.failures) == len(ended)
    failure = mon.failures[0]
    assert failure.where == "flow_end_hook" and failure.event == "ON_CONN_END"
    assert failure.error == "ValueError: boom"
    assert failure.flow_id == ended[0]


def test_flow_end_hooks_get_a_typed_summary_equal_to_the_record() -> None:
    mon = mos.Monitor()
    mon.socket()
    ended: list[mos.FlowSummary] = []
    mon.on_flow_end(ended.append)
    mon.run(ReplaySource(SAMPLE))
    assert ended and all(isinstance(s, mos.FlowSummary) for s in ended)
    for s in ended:                 # kept past the hook: what it says does not change
        rec = s.record()
        assert (s.id, s.client, s.server, s.start, s.end, s.end_reason, s.midstream) == (
            rec["id"], rec["client"], rec["server"], rec["start"], rec["end"],
            rec["end_reason"], rec["midstream"])
        assert (s.client_state.name, s.server_state.name) == (rec["client_state"],
                                                              rec["server_state"])
        for way, name in ((s.c2s, "c2s"), (s.s2c, "s2c")):
            assert isinstance(way, mos.DirectionSummary)
            assert (way.packets, way.payload_bytes, way.bytes, len(way.gaps), way.gap_bytes,
                    way.sha256) == (rec[name]["packets"], rec[name]["payload_bytes"],
                                    rec[name]["bytes"], rec[name]["gaps"],
                                    rec[name]["gap_bytes"], rec[name]["sha256"])
            assert way.record() == rec[name]
        assert s.packets == rec["c2s"]["packets"] + rec["s2c"]["packets"]
        assert json.loads(s.record_json()) == rec


def test_connection_end_hooks_see_the_engine_record_for_views() -> None:
    mon = mos.Monitor()
    mon.socket()
    seen: list[tuple[int, str]] = []
    mon.on_connection_end(lambda conn: seen.append((conn.id, conn.end_reason)))
    summaries: list[tuple[int, str]] = []
    mon.on_flow_end(lambda s: summaries.append((s.id, s.end_reason)))
    mon.run(ReplaySource(SAMPLE))
    assert seen == summaries and seen


def test_keep_open_leaves_the_flows_for_close() -> None:
    mon = mos.Monitor()
    mon.socket()
    ended: list[str] = []
    mon.on_flow_end(lambda flow: ended.append(flow.end_reason))
    mon.run(ReplaySource([str(SAMPLE)]), keep_open=True)
    still_open = mon.active_flows
    before = len(ended)
    assert still_open and "eof" not in ended
    mon.close()
    assert len(ended) == before + still_open and mon.active_flows == 0


def test_shares_split_the_flows_and_count_the_rest() -> None:
    """Two shares track disjoint flows that add up to one run's; each counts every packet."""
    def flows(share: tuple[int, int] | None) -> tuple[set[int], int, dict[str, int]]:
        mon = mos.Monitor()
        mon.socket()
        firsts: set[int] = set()
        mon.on_flow_end(lambda flow: firsts.add(flow.record()["first_packet"]))
        if share is not None:
            mon.keep_share(*share)
        _run(mon)
        return firsts, mon.packet_number, mon.counters

    whole, total, _ = flows(None)
    (a, na, ca), (b, nb, cb) = flows((0, 2)), flows((1, 2))
    assert a and b and not a & b and a | b == whole
    assert na == nb == total
    assert ca["other_shares"] + cb["other_shares"] == total
    with pytest.raises(mos.MosError):
        mos.Monitor().keep_share(2, 2)
