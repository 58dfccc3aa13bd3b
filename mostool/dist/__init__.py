"""One analysis over many machines: a two-phase plan, the same for every backend.

Theory of operation
===================

1. **route** (one task per input file, or per byte range of a large classic pcap found by a
   record-boundary scan, ``pieces``): the file is read once; every record goes to one of N
   partitions by a symmetric hash of its IP address pair (``route.route_key``) and is appended
   to that partition's shard in a scratch directory all workers share. One more task numbers
   the records as a single run's merge of the files does and writes the capture's clock ticks
   (``route.build_timeline``).
2. **analyse** (one task per partition): the partition merges its shards by global packet
   number and runs the full engine with the user's app, replaying the ticks so that timers and
   idle timeouts fire at the packets where one process fires them (``analyse.run_partition``).

``merge`` then puts the partitions' results together: flows in order of first packet with the
ids a single run gives them (a flow id is its rank by first packet), events in capture order
(packet number, then time, then flow) with their flow ids renumbered the same way. What each
phase reads and writes: route reads the inputs once and writes the records once (shards, plus
8 bytes of timestamp and 2 of partition per record); analyse reads its shards and the ticks.

Backends (``backends``): a Dask scheduler (``--dask tcp://host:8786``), a ``LocalCluster``
(``--dask local:N``) or a notebook's ``Client``. Local processes (``--workers N``, ``cluster=N``)
skip the route phase: on one machine each worker reads the capture in place and keeps its share
of the flows (``shared``), and the same merges put their results together.

What cannot be the same as one process: a user's timers (``mon.settimer``) run in every
partition; ``max_flows`` bounds each partition's table; a stop from a callback stops only its
partition. One host pair's traffic cannot be split (it is one partition's): the run says so
when a partition is much larger than the others.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import IO, Any

from mostool.config import MonitorConfig
from mostool.dist.analyse import Job, run_partition
from mostool.dist.backends import DaskBackend, LocalBackend, backend_for
from mostool.dist.pieces import plan_pieces
from mostool.dist.route import build_timeline, route_piece
from mostool.errors import DistError

__all__ = ["DistError", "Job", "run_plan", "run_partitions", "ship_app", "backend_for",
           "DaskBackend", "LocalBackend", "merge_flows", "merge_flow_lines", "merge_events",
           "merge_printed", "merge_stream_index", "run_monitor"]

_SKEW = 2.0         # a partition this many times the mean is called out


def _dumps(obj: Any, what: str) -> bytes:
    try:
        import cloudpickle
        return bytes(cloudpickle.dumps(obj))
    except ImportError:
        pass
    except Exception as exc:  # noqa: BLE001 - whatever cloudpickle refuses
        raise DistError(f"cannot ship {what} to the workers ({exc}); give it as a path or "
                        "module name instead") from None
    try:
        return pickle.dumps(obj)
    except Exception as exc:  # noqa: BLE001
        raise DistError(f"cannot ship {what} to the workers ({exc}); install cloudpickle or "
                        "give it as a path or module name") from None


def ship_app(app: Any) -> str | bytes:
    """An app for the workers: a path or module name as is; a function pickled (cloudpickle
    where it is installed, for functions defined in a notebook or ``__main__``)."""
    if isinstance(app, str):
        return app
    if not callable(app):
        raise DistError(f"an app is a path, a module name or a setup function, not {app!r}")
    return _dumps(app, f"the app {app!r}")


def _gid_maps(results: list[dict[str, Any]]) -> list[dict[int, int]]:
    """Per partition: local flow id -> the id a single run gives (rank by first packet)."""
    firsts = sorted((rec["first_packet"], part, rec["id"])
                    for part, res in enumerate(results) for rec in res["flows"])
    maps: list[dict[int, int]] = [{} for _ in results]
    for gid, (_first, part, local) in enumerate(firsts, 1):
        maps[part][local] = gid
    return maps


def merge_flows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every partition's flow records in order of first packet, with a single run's ids."""
    maps = _gid_maps(results)
    records = []
    for part, res in enumerate(results):
        for rec in res["flows"]:
            rec = dict(rec)
            rec["id"] = maps[part][rec["id"]]
            records.append(rec)
    records.sort(key=lambda r: r["first_packet"])
    return records


def merge_flow_lines(results: list[dict[str, Any]]) -> Iterator[str]:
    """For a ``Job(jsonl=True)``: every partition's flow lines in order of first packet, each
    with the id a single run gives it (a flow's rank by first packet). Each partition's
    lines come ordered by first packet, then id (``analyse.pack_flow_lines``): a stable sort
    on first packet, then partition, keeps that order."""
    parts = len(results)
    keys: list[int] = []
    rests: list[str] = []
    for part, res in enumerate(results):
        firsts, text = res["flows"]
        keys.extend([first * parts + part for first in firsts])
        rests.extend(text.split("\n")[:-1])
    for gid, i in enumerate(sorted(range(len(keys)), key=keys.__getitem__), 1):
        # a record's line opens with its id ('{"id": 7, "client": ...'): that number is
        # left out (rests[i] starts at the comma after it) and the single run's put in
        yield f'{{"id": {gid}{rests[i]}\n'


def merge_events(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every partition's event records in capture order, flow ids as a single run's."""
    maps = _gid_maps(results)
    keyed = []
    for part, res in enumerate(results):
        fmap = maps[part]
        # events raised by the end of the capture (flows still open end) come after every
        # event of the last packet, whichever partition raised those
        end_events, end_lines, _end_printed = res["closing"]
        for seq, (packet, ts, fid, rec) in enumerate(res["events"]):
            gid = fmap.get(fid, 0) if fid else 0
            keyed.append(((packet, seq >= end_events, ts, gid, part, seq), fid, rec))
        for seq, (packet, ts, line) in enumerate(res["lines"]):
            if not line:
                continue
            rec = json.loads(line)
            fid = rec.get("flow", 0)
            gid = fmap.get(fid, 0) if fid else 0
            keyed.append(((packet, seq >= end_lines, ts, gid, part, seq), fid, rec))
    keyed.sort(key=lambda k: k[0])
    out = []
    for (_p, _end, _t, gid, _part, _seq), fid, rec in keyed:
        if fid:
            rec = dict(rec)
            rec["flow"] = gid
        out.append(rec)
    return out


def merge_stream_index(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The partitions' `streams` index records with a single run's flow ids, in its order."""
    maps = _gid_maps(results)
    out = []
    for part, res in enumerate(results):
        for rec in res["streams"].get("index", []):
            rec = dict(rec)
            rec["flow"] = maps[part].get(rec["flow"], rec["flow"])
            out.append(rec)
    out.sort(key=lambda r: (r["flow"], r["direction"]))
    return out


def merge_printed(results: list[dict[str, Any]]) -> list[str]:
    """What the apps printed in every partition, in capture order (by the packet each line
    was printed at)."""
    keyed = [((packet, seq >= res["closing"][2], ts, part, seq), line)
             for part, res in enumerate(results)
             for seq, (packet, ts, line) in enumerate(res.get("printed", []))]
    keyed.sort(key=lambda k: k[0])
    return [line for _key, line in keyed]


def run_plan(paths: Sequence[str], job: Job, backend: Any, *, partitions: int | None = None,
             bpf: str | None = None, scratch: str | None = None, keep_shards: bool = False,
             err: IO[str] | None = None) -> dict[str, Any]:
    """Route ``paths`` into partitions and run ``job`` on each; returns the partitions'
    results (``results``), the packet total and the warnings. ``scratch`` is a directory every
    worker sees (default: a new one under $MOSTOOL_SCRATCH or the temp directory)."""
    paths = [os.path.abspath(os.fspath(p)) for p in paths]
    if not paths:
        raise DistError("no input files")
    n: int = partitions or int(getattr(backend, "partitions", 1))
    base = scratch or os.environ.get("MOSTOOL_SCRATCH") or None
    if base is not None:
        os.makedirs(base, exist_ok=True)
    work = tempfile.mkdtemp(prefix="mostool-shards-", dir=base)
    dashboard = getattr(backend, "dashboard", None)
    if err is not None and dashboard:
        err.write(f"mostool: dask dashboard: {dashboard}\n")
    try:
        t0 = time.monotonic()
        plan = plan_pieces(paths, n)
        pieces = backend.map(route_piece, [(i, path, n, work, bpf, f, start, stop, last)
                                           for i, (f, path, start, stop, last)
                                           in enumerate(plan)], "route", err)
        route_s = time.monotonic() - t0
        (timeline,) = backend.map(build_timeline, [(pieces, n, work)], "timeline", err)
        offsets = timeline["offsets"]
        total = timeline["packets"]
        used = set(timeline["pieces"])
        counts = [sum(p["counts"][k] for p in pieces if p["index"] in used) for k in range(n)]
        if err is not None:
            _report_skew(counts, total, route_s, err)
        results = backend.map(run_partition,
                              [(job, k, work, timeline["pieces"], offsets, total)
                               for k in range(n)], "analyse", err)
    finally:
        if keep_shards:
            if err is not None:
                err.write(f"mostool: shards kept in {work}\n")
        else:
            shutil.rmtree(work, ignore_errors=True)
    warnings = [w for p in pieces for w in p["warnings"]]
    return {"results": results, "packets": total, "warnings": warnings, "counts": counts,
            "scratch": work if keep_shards else None}


def _report_skew(counts: list[int], total: int, route_s: float, err: IO[str]) -> None:
    per = f"{route_s / total * 1e6:.2f} us/packet" if total else "no packets"
    err.write(f"mostool: routed {total:,} packets into {len(counts)} partitions ({per}): "
              + ", ".join(f"{c:,}" for c in counts) + "\n")
    mean = total / len(counts) if counts else 0
    if len(counts) > 1 and mean and max(counts) > _SKEW * mean:
        err.write(f"mostool: note: partition {counts.index(max(counts))} holds "
                  f"{max(counts) / total:.0%} of the packets: one host pair's traffic (an "
                  "elephant flow) cannot be split between partitions\n")


def run_partitions(paths: Sequence[str], config: MonitorConfig | None, app: Any,
                   cluster: Any, *, partitions: int | None = None, bpf: str | None = None,
                   scratch: str | None = None, keep_shards: bool = False,
                   err: IO[str] | None = None, monitor_class: Any = None
                   ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The notebook API's entry: run ``app`` (a setup function, a path or a module name, or
    a list of them; None for none) over ``paths`` on ``cluster`` (a Dask ``Client``, an
    address, ``"local:N"`` or an int for local processes). Returns (flow records, event
    records) exactly as one process would give them: flows by first packet with a single
    run's ids, every event (built-ins and the app's UDEs, as ``--events-out`` writes them) in
    capture order. ``monitor_class``: the Monitor class every partition runs (the caller's
    ``mostool.Monitor``; ``mostool.dist`` does not import the public face)."""
    apps = app if isinstance(app, list | tuple) else [] if app is None else [app]
    job = Job("app", config or MonitorConfig(), monitor_class,
              apps=[ship_app(a) for a in apps])
    run = _run_on(cluster, paths, job, partitions=partitions, bpf=bpf, scratch=scratch,
                  keep_shards=keep_shards, err=err)
    return merge_flows(run["results"]), merge_events(run["results"])


def _run_on(cluster: Any, paths: Sequence[str], job: Job, *, partitions: int | None = None,
            bpf: str | None = None, scratch: str | None = None, keep_shards: bool = False,
            err: IO[str] | None = None) -> dict[str, Any]:
    """``job`` over ``paths``: local processes (an int) each read the files in place and keep
    their share (``shared``); a cluster runs the plan."""
    if isinstance(cluster, int) and not isinstance(cluster, bool) and not keep_shards:
        from mostool.dist.shared import run_shared
        if cluster < 1:
            raise DistError(f"a number of local processes >= 1, not {cluster}")
        return run_shared(paths, job, partitions or cluster, bpf=bpf, scratch=scratch, err=err)
    backend = backend_for(cluster, err)
    try:
        return run_plan(paths, job, backend, partitions=partitions, bpf=bpf, scratch=scratch,
                        keep_shards=keep_shards, err=err)
    finally:
        backend.close()


def run_monitor(mon: Any, source: Any, cluster: Any, *, err: IO[str] | None = None
                ) -> dict[str, Any]:
    """``Monitor.run(source, cluster=...)``: every partition runs a copy of ``mon`` as set up
    so far (its sockets, callbacks and UDEs, shipped with cloudpickle) over ``source`` (paths,
    or a ``ReplaySource`` at top speed). Returns the run's statistics with ``flows`` and
    ``events``, the merged records. Callbacks run on the workers: what they change there stays
    there; what they print is not brought back."""
    import mostool
    if mostool.COMPILED:
        # the set-up engine's native (mypyc) objects do not unpickle in a worker
        raise DistError("Monitor.run(cluster=...) ships the set-up Monitor, which the compiled "
                        "engine cannot pickle: pass the setup as an app instead "
                        "(mos.analyze(paths, app=setup, cluster=...) or mostool.dist."
                        "run_partitions), or run with MOSTOOL_PURE=1")
    if isinstance(source, str | os.PathLike):
        paths = [os.fspath(source)]
    elif isinstance(source, list | tuple):
        paths = [os.fspath(p) for p in source]
    else:
        paths = list(getattr(source, "_paths", None) or [])
        if not paths or getattr(source, "paced", False):
            raise DistError("a cluster run reads capture files: give paths or a ReplaySource "
                            "at top speed")
        close = getattr(source, "close", None)
        if close is not None:
            close()
    job = Job("app", mon.config, type(mon), monitor=_dumps(mon, "the monitor"))
    run = _run_on(cluster, paths, job, err=err)
    results = run["results"]
    stats: dict[str, Any] = {}
    for res in results:
        for key, value in res["stats"].items():
            if isinstance(value, int) and not isinstance(value, bool):
                stats[key] = stats.get(key, 0) + value
    stats["packets"] = run["packets"]
    stats["warnings"] = run["warnings"]
    stats["partitions"] = run["counts"]
    stats["flows"] = merge_flows(results)
    stats["events"] = merge_events(results)
    mon.warnings.extend(run["warnings"])
    return stats
