"""`--dask ADDRESS|local:N`, `--keep-shards`, `--scratch DIR`: a reading command on a cluster.

``add_dist_options`` adds them; ``run_distributed`` checks the run can be shared out (capture
files, no live capture, no stopping options, no outputs that need one process) and runs the
plan (``mostool.dist``) on the backend the options name (``--workers N``: local processes).
"""

from __future__ import annotations

import argparse
from typing import IO, Any

from mostool.cli.common import UsageError, refuse_empty


def add_dist_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("distributed")
    g.add_argument("--dask", metavar="ADDRESS",
                   help="run on a Dask cluster: a scheduler (tcp://host:8786) or local:N "
                        "(a LocalCluster of N processes); needs mostool[dask]")
    g.add_argument("--keep-shards", action="store_true",
                   help="keep the partition shards in the scratch directory")
    g.add_argument("--scratch", metavar="DIR",
                   help="where the shards go: a directory every worker sees (default "
                        "$MOSTOOL_SCRATCH or the temp directory)")


def wants_distributed(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "dask", None)) or getattr(args, "workers", 1) > 1


def run_distributed(args: argparse.Namespace, job: Any, err: IO[str]) -> dict[str, Any]:
    """Run ``job`` (a ``mostool.dist.Job``) over ``args.files`` as the options ask."""
    from mostool.dist import DistError, backend_for, run_plan
    from mostool.pcapfile import CaptureError
    from mostool.replay import ReplaySource
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
    if "-" in args.files:
        raise UsageError(f"{how} shares out capture files; standard input (-r -) is read by "
                         "one process: drop it")
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
