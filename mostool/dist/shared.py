"""`--workers N` on one machine: every worker reads the whole capture and keeps its share.

Theory of operation
===================

On one machine the capture is already where every worker can map it, so the plan's route
phase (``route``: read the records once, write them again into partition shards, number them
and write the clock ticks) is pure overhead: it costs more than the analysis it shares out.
Here each of N worker processes runs the single-process pipeline over the whole input (the
engine's in-place record loop for a classic pcap, the frame reader otherwise, the BPF filter
if any) with ``Monitor.keep_share(k, N)``: the engine tracks only the TCP flows whose
symmetric endpoint hash (``shard_of``, mOS's symmetric RSS) is ``k``; the in-place loop
decides that from a plain IPv4/TCP record's bytes without decoding it, anything else (VLAN,
IPv6, tunnels, fragments) is decoded by every worker and dropped after decoding by the others.
Every other packet still moves the worker's packet clock and count, and a timer that falls due
before one fires there, so packet numbers, timers, idle timeouts and the wild clock are a
single run's. Frames that are not TCP are share 0's. The file's pages are shared by the page
cache, not copied per worker.

Each worker returns what a partition of the plan returns (``analyse.run_job``), so the plan's
merges put the results together: flows in order of first packet with a single run's ids,
events in capture order. What is not a single run's: ``max_flows`` and the memory budget
bound each worker's table (as each partition's), and a stop from a callback stops only its
worker. The parent reads nothing; the source's warnings (a damaged record) are every worker's
and are reported once.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any

from mostool.dist.analyse import Job, run_job
from mostool.dist.backends import LocalBackend

if TYPE_CHECKING:
    from mostool.monitor import Monitor

__all__ = ["run_shared", "run_share"]


def run_share(job: Job, index: int, count: int, paths: Sequence[str], bpf: str | None,
              scratch: str) -> dict[str, Any]:
    """Worker ``index`` of ``count``: ``job`` over its share of ``paths`` (a task)."""

    def feed(mon: Monitor) -> tuple[int, int]:
        from mostool.replay import ReplaySource
        from mostool.sources import FilteredSource
        source: Any = ReplaySource(list(paths))
        if bpf:
            source = FilteredSource(source, bpf)
        mon.keep_share(index, count)
        mon.run(source, keep_open=True)
        total = mon.packet_number
        return total - mon.counters.get("other_shares", 0), total

    return run_job(job, index, scratch, feed)


def run_shared(paths: Sequence[str], job: Job, workers: int, *, bpf: str | None = None,
               scratch: str | None = None, err: IO[str] | None = None) -> dict[str, Any]:
    """Run ``job`` over ``paths`` in ``workers`` local processes, each keeping its share;
    returns what ``run_plan`` returns (``results``, ``packets``, ``warnings``, ``counts``).
    ``scratch``: where a "streams" job's partition indexes go (default: the temp directory)."""
    paths = [os.path.abspath(os.fspath(p)) for p in paths]
    base = scratch or os.environ.get("MOSTOOL_SCRATCH") or None
    if base is not None:
        os.makedirs(base, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix="mostool-workers-", dir=base)
    backend = LocalBackend(workers)
    try:
        results = backend.map(run_share, [(job, k, workers, paths, bpf, scratch)
                                          for k in range(workers)], "workers", err)
    finally:
        backend.close()
        shutil.rmtree(scratch, ignore_errors=True)
    first = results[0]
    counts = [int(res["packets"]) for res in results]
    if err is not None:
        err.write(f"mostool: {first['total']:,} packets; each worker's share: "
                  + ", ".join(f"{c:,}" for c in counts) + "\n")
    return {"results": results, "packets": first["total"],
            "warnings": list(first["stats"]["warnings"]), "counts": counts, "scratch": None}
