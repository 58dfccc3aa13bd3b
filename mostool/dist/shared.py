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

The workers are forked straight from the caller (``_forked``: a pipe each for its pickled
result, or its exception, read as it comes; no process pool, whose imports, queues and
manager thread cost the parent ~0.012 s of CPU per run), after ``gc.freeze()``, so a worker's
collections do not walk (and copy) the objects it shares with the parent. A worker that dies
(killed, out of memory, an app that exits the process) is a ``DistError``.

Each worker returns what a partition of the plan returns (``analyse.run_job``), so the plan's
merges put the results together: flows in order of first packet with a single run's ids,
events in capture order. What is not a single run's: ``max_flows`` and the memory budget
bound each worker's table (as each partition's), and a stop from a callback stops only its
worker. The parent reads nothing; the source's warnings (a damaged record) are every worker's
and are reported once.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import selectors
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any, NoReturn

from mostool.dist.analyse import Job, run_job
from mostool.dist.backends import _Progress
from mostool.errors import DistError

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
    try:
        results = _forked(run_share, [(job, k, workers, paths, bpf, scratch)
                                      for k in range(workers)], "workers", err)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    first = results[0]
    counts = [int(res["packets"]) for res in results]
    if err is not None:
        err.write(f"mostool: {first['total']:,} packets; each worker's share: "
                  + ", ".join(f"{c:,}" for c in counts) + "\n")
    return {"results": results, "packets": first["total"],
            "warnings": list(first["stats"]["warnings"]), "counts": counts, "scratch": None}


def _forked(fn: Callable[..., Any], tasks: Sequence[tuple[Any, ...]], label: str,
            err: IO[str] | None) -> list[Any]:
    """``fn(*task)`` for every task, each in a process forked from this one; the results in
    task order. A task's exception is raised here; a process that dies is a ``DistError``."""
    progress = _Progress(err, label, len(tasks))
    children: dict[int, tuple[int, int]] = {}      # read end -> (task, pid)
    _flush_std_streams()            # or what they hold would be written by every worker too
    gc.freeze()
    try:
        for k, task in enumerate(tasks):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:                            # the worker: never returns
                os.close(r)
                _child(fn, task, w)
            os.close(w)
            children[r] = (k, pid)
    except BaseException:
        _end(children, kill=True)
        raise
    finally:
        gc.unfreeze()
    got: list[bytearray] = [bytearray() for _ in tasks]
    # each result is unpickled as soon as its worker is done, while the others still run
    sent: list[tuple[bool, Any] | None] = [None] * len(tasks)
    try:
        with selectors.DefaultSelector() as sel:
            for r in children:
                sel.register(r, selectors.EVENT_READ)
            open_ends = len(children)
            while open_ends:
                for key, _mask in sel.select():
                    k = children[key.fd][0]
                    data = os.read(key.fd, 1 << 20)
                    if data:
                        got[k] += data
                        continue
                    sel.unregister(key.fd)
                    open_ends -= 1
                    with contextlib.suppress(Exception):    # cut short: it died writing
                        sent[k] = pickle.loads(got[k])
                    got[k] = bytearray()
                    progress.step()
    except BaseException:
        _end(children, kill=True)
        raise
    failed = _end(children, kill=False)
    results: list[Any] = []
    for k, out in enumerate(sent):
        if out is None or k in failed:
            raise DistError(f"a worker process died during {label} (killed, or out of "
                            "memory?); run again with fewer --workers")
        ok, value = out
        if not ok:
            raise value
        results.append(value)
    progress.end()
    return results


def _child(fn: Callable[..., Any], task: tuple[Any, ...], w: int) -> NoReturn:
    """In the forked worker: run the task, send (ok, result or exception), exit."""
    code = 0
    try:
        try:
            out: tuple[bool, Any] = (True, fn(*task))
        except BaseException as exc:        # noqa: BLE001 - the parent raises it
            out = (False, exc)
        try:
            data = pickle.dumps(out, pickle.HIGHEST_PROTOCOL)
        except Exception as exc:            # noqa: BLE001 - what cannot travel is told
            data = pickle.dumps((False, DistError(f"a worker's result cannot be sent back: "
                                                  f"{exc}")))
        with os.fdopen(w, "wb") as f:
            f.write(data)
    except BaseException:                   # noqa: BLE001 - the parent reports the death
        code = 1
    finally:
        _flush_std_streams()        # what the task printed (os._exit flushes nothing)
        os._exit(code)


def _flush_std_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _end(children: dict[int, tuple[int, int]], kill: bool) -> set[int]:
    """Close the pipes and reap the workers (``kill``: the parent is leaving early, and
    kills those still running); the tasks whose process did not exit normally."""
    failed = set()
    for r, (k, pid) in children.items():
        os.close(r)
        if kill:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _pid, status = os.waitpid(pid, 0)
        if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
            failed.add(k)
    children.clear()
    return failed
