"""`--workers N`: one capture, several processes, one result.

Every worker reads the whole capture (reading is cheap next to tracking) and keeps its share:
the TCP packets whose flow hashes to it (``shard_of``: a symmetric hash of both endpoints, so
both directions of a flow meet in one worker, as mOS's symmetric RSS does per core); frames
that are not TCP go to worker 0. The other frames still move each worker's packet clock and
count, so packet numbers, timers and timeouts are exactly those of a single process. Each worker
runs the engine's in-place record reader (``Engine.process_records``), which decides the share of
a plain Ethernet/IPv4/TCP record from its raw bytes, without decoding; anything else (VLAN, IPv6,
fragments, ...) is decoded by every worker and dropped after decoding by the ones it does not
belong to. The parent merges the flow records by first packet (renumbering
flow ids in that order, as one process numbers them) and sums the counters.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from multiprocessing.connection import Connection as Pipe
from typing import Any

from mostool.config import MonitorConfig
from mostool.monitor import MONITOR_STREAM, Monitor
from mostool.sources import FilteredSource

__all__ = ["run_flows"]


def _worker(index: int, count: int, paths: Sequence[str], config: MonitorConfig,
            bpf: str | None, pipe: Pipe) -> None:
    from mostool.replay import ReplaySource
    try:
        mon = Monitor(config)
        mon.socket(MONITOR_STREAM)
        records: list[dict[str, Any]] = []
        mon.on_flow_end(lambda conn: records.append(conn.record()))
        mon.share(index, count)
        source: Any = ReplaySource(list(paths))
        if bpf:
            source = FilteredSource(source, bpf)
        mon.run(source)
        stats = {k: v for k, v in mon.stats().items() if k not in ("source", "warnings")}
        pipe.send(("ok", records, stats, list(mon.warnings)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which exits 2
        pipe.send(("error", f"{type(exc).__name__}: {exc}", {}, []))
    finally:
        pipe.close()


def run_flows(paths: Sequence[str], config: MonitorConfig, workers: int,
              bpf: str | None = None) -> tuple[list[dict[str, Any]], dict[str, Any], list[str]]:
    """Flow records (in first-packet order, ids renumbered), summed counters and warnings."""
    ctx = multiprocessing.get_context("fork")
    procs = []
    pipes = []
    for index in range(workers):
        parent_end, child_end = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_worker, args=(index, workers, list(paths), config, bpf,
                                                 child_end), daemon=True)
        proc.start()
        child_end.close()
        procs.append(proc)
        pipes.append(parent_end)
    results = []
    for pipe in pipes:
        try:
            results.append(pipe.recv())
        except EOFError:
            results.append(("error", "a worker died", {}, []))
    for proc in procs:
        proc.join()
    for status, payload, _stats, _warnings in results:
        if status != "ok":
            raise RuntimeError(f"worker failed: {payload}")
    records = sorted((r for _, recs, _, _ in results for r in recs),
                     key=lambda r: r["first_packet"])
    for flow_id, record in enumerate(records, 1):
        record["id"] = flow_id
    stats: dict[str, Any] = {}
    for _, _, worker_stats, _ in results:
        for key, value in worker_stats.items():
            if isinstance(value, int) and not isinstance(value, bool) and key != "packets":
                stats[key] = stats.get(key, 0) + value
    stats["packets"] = results[0][2].get("packets", 0)
    return records, stats, results[0][3]
