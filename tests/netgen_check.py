"""Compare `mostool flows --hash` with netgen's application truth (used by test_netgen.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mostool.config import MonitorConfig
from mostool.monitor import MONITOR_STREAM, Monitor
from mostool.replay import ReplaySource


def flows_of(pcap: Path, **config: Any) -> list[dict[str, Any]]:
    settings: dict[str, Any] = {"hash_streams": True, "rcvbuf": 0}
    settings.update(config)
    mon = Monitor(MonitorConfig(**settings))
    mon.socket(MONITOR_STREAM)
    records: list[dict[str, Any]] = []
    mon.on_flow_end(lambda conn: records.append(conn.record()))
    mon.run(ReplaySource([pcap]))
    records.sort(key=lambda r: r["id"])
    return records


def endpoint(e: dict[str, Any]) -> str:
    ip = e["ip"]
    return f"[{ip}]:{e['port']}" if ":" in ip else f"{ip}:{e['port']}"


def compare(pcap: Path) -> list[str]:
    """Every disagreement between the flows and the truth, as one line each."""
    truth = json.loads(pcap.with_suffix(".json").read_text())
    flows = flows_of(pcap)
    by_pair: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for f in flows:
        by_pair.setdefault((f["client"], f["server"]), []).append(f)
    problems: list[str] = []
    for conn in truth["connections"]:
        key = (endpoint(conn["client"]), endpoint(conn["server"]))
        found = by_pair.get(key)
        if not found:
            problems.append(f"{pcap.name}: connection {conn['id']} {key} not found")
            continue
        flow = found.pop(0)
        outcome = "rst" if conn["outcome"] == "refused" else conn["outcome"]
        if flow["end_reason"] != outcome:
            problems.append(f"{pcap.name}: {key} ended {flow['end_reason']}, truth {outcome}")
        for d in ("c2s", "s2c"):
            t = conn[d]
            if not t.get("complete"):
                continue
            got = flow[d]
            if got["bytes"] != t["received_bytes"] or got["sha256"] != t["received_sha256"]:
                problems.append(
                    f"{pcap.name}: {key} {d} {got['bytes']} bytes {got['sha256'][:12]} "
                    f"(gaps {got['gaps']}), truth {t['received_bytes']} "
                    f"{t['received_sha256'][:12]}")
    return problems
