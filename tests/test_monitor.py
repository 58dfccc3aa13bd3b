"""Monitor's public accessors and its flow-end hook failure path, on a real capture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
