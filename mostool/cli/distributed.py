"""`--workers N`, `--dask ADDRESS|local:N`, `--keep-shards`, `--scratch DIR`: a reading command
shared out between processes or over a cluster.

``add_dist_options`` adds them; ``run_distributed`` checks the run can be shared out (capture
files, no live capture, no stopping options, no outputs that need one process) and runs the
plan (``mostool.dist``) on the cluster ``--dask`` names, or (``--workers N``) in N local processes
that each read the whole capture and keep their share (``mostool.dist.shared``).
"""

from __future__ import annotations

import argparse
from typing import IO, Any

from mostool.cli.common import UsageError, refuse_empty


def add_dist_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("distributed")
    g.add_argument("--workers", type=int, default=1, metavar="N",
                   help="share the capture out by flow between N local processes, each "
                        "reading it in place (default 1); the output is one process's")
    g.add_argument("--dask", metavar="ADDRESS",
                   help="run on a Dask cluster: a scheduler (tcp://host:8786) or local:N "
                        "(a LocalCluster of N processes); needs mostool[dask]")
    g.add_argument("--keep-shards", action="store_true",
                   help="keep the partition shards in the scratch directory")
    g.add_argument("--scratch", metavar="DIR",
                   help="where the shards go: a directory every worker sees (default "
                        "$MOSTOOL_SCRATCH or the temp directory)")


def wants_distributed(args: argparse.Namespace) -> bool:
    workers = getattr(args, "workers", 1)
    if workers < 1:
        raise UsageError(f"--workers takes a number >= 1, not {workers}")
    return bool(getattr(args, "dask", None)) or workers > 1


def run_distributed(args: argparse.Namespace, job: Any, err: IO[str]) -> dict[str, Any]:
    """Run ``job`` (a ``mostool.dist.Job``) over ``args.files`` as the options ask."""
    from mostool.dist import DistError, backend_for, run_plan
    from mostool.replay import CaptureError, ReplaySource
    how = "--dask" if getattr(args, "dask", None) else "--workers"
    if getattr(args, "interface", None):
        raise UsageError(f"{how} shares out capture files (-r), not a live capture")
    others = [opt for opt, on in (("-w", getattr(args, "write", None)),
                                  ("--events-out", getattr(args, "events_out", None)),
                                  ("--flows-out", getattr(args, "flows_out", None)),
                                  ("-c", getattr(args, "count", None)),
                                  ("--duration", getattr(args, "duration", None)),
                                  ("--speed", getattr(args, "speed", None)),
                                  ("--realtime", getattr(args, "realtime", None)),
                                  ("--pps", getattr(args, "pps", None)),
                                  ("--mbps", getattr(args, "mbps", None))) if on]
    if others:
        raise UsageError(f"{how} does not combine with {', '.join(others)} yet")
    if not args.files:
        raise UsageError("no input: give -r FILE (or -i IFACE)")
    for path in args.files:
        refuse_empty(path)                          # a zero-byte file: exit 2, as tcpdump
    try:
        ReplaySource(args.files).close()            # unusable input: one line, exit 2
    except CaptureError as exc:
        raise UsageError(str(exc)) from exc
    bpf = " ".join(args.bpf) if args.bpf else None
    if bpf:
        from mostool.bpf import BpfError, BpfFilter
        try:
            BpfFilter(bpf)
        except BpfError as exc:
            raise UsageError(str(exc)) from exc
    spec: Any = args.dask or args.workers
    verbose = bool(getattr(args, "dask", None)) or getattr(args, "verbose", False)
    if not getattr(args, "dask", None):
        # one machine: every worker reads the capture in place and keeps its share
        from mostool.dist.shared import run_shared
        if getattr(args, "keep_shards", False):
            raise UsageError("--keep-shards goes with --dask: --workers writes no shards")
        try:
            return run_shared(args.files, job, args.workers, bpf=bpf,
                              scratch=getattr(args, "scratch", None),
                              err=err if verbose else None)
        except DistError as exc:
            raise UsageError(str(exc)) from exc
    try:
        backend = backend_for(spec, err)
        try:
            return run_plan(args.files, job, backend, bpf=bpf,
                            scratch=getattr(args, "scratch", None),
                            keep_shards=getattr(args, "keep_shards", False),
                            err=err if verbose else None)
        finally:
            backend.close()
    except DistError as exc:
        raise UsageError(str(exc)) from exc
