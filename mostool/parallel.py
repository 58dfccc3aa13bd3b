"""`--workers N`: one capture, N local processes, one result, through the plan every backend
shares (``mostool.dist``): the records are routed to N partitions by host pair, each partition
runs the engine with the capture's clock ticks, and the flows are merged by first packet with
the ids one process gives them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mostool.config import MonitorConfig
from mostool.monitor import Monitor

__all__ = ["run_flows"]


def run_flows(paths: Sequence[str], config: MonitorConfig, workers: int,
              bpf: str | None = None) -> tuple[list[dict[str, Any]], dict[str, Any], list[str]]:
    """Flow records (in first-packet order, ids renumbered), summed counters and warnings."""
    from mostool.dist import Job, LocalBackend, merge_flows, run_plan
    backend = LocalBackend(workers)
    try:
        run = run_plan(paths, Job("flows", config, Monitor), backend, bpf=bpf)
    finally:
        backend.close()
    stats: dict[str, Any] = {}
    for res in run["results"]:
        for key, value in res["stats"].items():
            if isinstance(value, int) and not isinstance(value, bool) and key != "packets":
                stats[key] = stats.get(key, 0) + value
    stats["packets"] = run["packets"]
    return merge_flows(run["results"]), stats, run["warnings"]
