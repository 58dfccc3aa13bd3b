"""`mostool streams`: each direction's reassembled bytes to a file, as tcpflow does."""

from __future__ import annotations

import argparse
import os
from typing import IO, Any

from mostool.cli.common import UsageError, add_common_options, config_from, run_source, warn
from mostool.cli.distributed import add_dist_options, wants_distributed
from mostool.cli.outputs import add_output_options, open_with_outputs
from mostool.monitor import MONITOR_STREAM, Monitor

_RAW = argparse.RawDescriptionHelpFormatter

EXAMPLES_STREAMS = """examples:
  mostool streams -r capture.pcap -o flows/
  mostool streams -r capture.pcap -o flows/ --flow 3,7 tcp port 80
  mostool streams -r capture.pcap -o flows/ --flow 10.0.0.1:443

Each direction's reassembled bytes go to DIR/SRC.SPORT-DST.DPORT (tcpflow names); bytes the
capture missed are left out and listed, with their offsets, in DIR/index.jsonl.
"""


def register(sub: Any) -> None:
    """Add `streams` to ``mostool``'s subparsers."""
    streams = sub.add_parser("streams", help="each direction's reassembled bytes to a file",
                             description="Write every flow's two byte streams to files in DIR, "
                                         "as tcpflow does, with an index of flows and gaps.",
                             epilog=EXAMPLES_STREAMS, formatter_class=_RAW)
    add_common_options(streams)
    streams.add_argument("-o", "--outdir", required=True, metavar="DIR",
                         help="directory for the stream files and index.jsonl")
    add_output_options(streams)
    add_dist_options(streams)
    streams.set_defaults(func=cmd_streams)


def cmd_streams(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from mostool.sinks.streams import INDEX_NAME, StreamWriter
    if os.path.exists(args.outdir) and not os.path.isdir(args.outdir):
        raise UsageError(f"-o {args.outdir}: not a directory")
    if wants_distributed(args):
        return _streams_distributed(args, out, err)
    mon = Monitor(config_from(args, rcvbuf=0))
    mon.socket(MONITOR_STREAM)
    source, outs = open_with_outputs(args, mon)
    writer = StreamWriter(mon, args.outdir, select=outs.select)
    try:
        writer.attach()
    except OSError as exc:
        outs.close()
        raise UsageError(f"cannot create {args.outdir}: {exc.strerror}") from exc
    try:
        run_source(mon, source, args, err)
    finally:
        outs.close()
        writer.close()
    flows = len({r["flow"] for r in writer.index})
    gaps = sum(len(r["gaps"]) for r in writer.index)
    out.write(f"{writer.files_written} file(s), {writer.bytes_written:,} bytes from {flows} "
              f"flow(s), {gaps} gap(s); index: {os.path.join(args.outdir, INDEX_NAME)}\n")
    for warning in writer.warnings:
        err.write(f"mostool: warning: {warning}\n")
    warn(mon, err)
    return 0


def _streams_distributed(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """--workers / --dask: every partition writes its flows' files into DIR (which the
    workers must see); the index is merged with a single run's flow ids."""
    import json

    from mostool.cli.distributed import run_distributed
    from mostool.dist import Job, merge_stream_index
    from mostool.sinks.streams import INDEX_NAME
    if getattr(args, "flow", None):
        raise UsageError("--flow does not combine with --workers or --dask yet (flow ids "
                         "are known only after the merge)")
    outdir = os.path.abspath(args.outdir)
    try:
        os.makedirs(outdir, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {args.outdir}: {exc.strerror}") from exc
    job = Job("streams", config_from(args, rcvbuf=0), Monitor, outdir=outdir)
    run = run_distributed(args, job, err)
    index = merge_stream_index(run["results"])
    with open(os.path.join(outdir, INDEX_NAME), "w", encoding="utf-8") as f:
        for rec in index:
            f.write(json.dumps(rec) + "\n")
    parts = [res["streams"] for res in run["results"]]
    files = sum(p["files"] for p in parts)
    nbytes = sum(p["bytes"] for p in parts)
    flows = len({r["flow"] for r in index})
    gaps = sum(len(r["gaps"]) for r in index)
    out.write(f"{files} file(s), {nbytes:,} bytes from {flows} flow(s), {gaps} gap(s); "
              f"index: {os.path.join(args.outdir, INDEX_NAME)}\n")
    for warning in [w for p in parts for w in p["warnings"]] + run["warnings"]:
        err.write(f"mostool: warning: {warning}\n")
    return 0
