"""`mostool events`: every built-in event as one JSON line."""

from __future__ import annotations

import argparse
import json
from typing import IO, Any

from mostool.cli.common import UsageError, add_common_options, add_write_option, config_from, warn
from mostool.cli.distributed import add_dist_options, wants_distributed
from mostool.cli.outputs import add_output_options, run_with_outputs
from mostool.events.types import BUILTIN_EVENTS
from mostool.monitor import MONITOR_STREAM, Monitor
from mostool.sinks.events_out import EventRecorder

EXAMPLES_EVENTS = """examples:
  mostool events -r capture.pcap
  mostool events -r capture.pcap --only ON_CONN_START,ON_CONN_END host 10.0.0.1
  mostool events -i eth0 --duration 60 tcp port 80
"""


def register(sub: Any) -> None:
    """Add `events` to ``mostool``'s subparsers."""
    events = sub.add_parser("events", help="every built-in event as one JSON line",
                            epilog=EXAMPLES_EVENTS,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(events)
    add_write_option(events)
    events.add_argument("--format", choices=("jsonl",), default="jsonl")
    events.add_argument("--only", default=None, metavar="NAMES",
                        help="comma-separated event names to print (default all)")
    add_output_options(events, write=False)   # -w added above, with its own help
    add_dist_options(events)
    events.set_defaults(func=cmd_events)


def cmd_events(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    mon = Monitor(config_from(args))
    mon.socket(MONITOR_STREAM)
    wanted = None
    if args.only:
        wanted = {n.strip().upper() for n in args.only.split(",") if n.strip()}
        known = {e.name for e in BUILTIN_EVENTS}
        unknown = wanted - known
        if unknown:
            raise UsageError(f"unknown event name(s): {', '.join(sorted(unknown))}")
    if wants_distributed(args):
        return _events_distributed(args, mon.config, wanted, out, err)
    EventRecorder(mon, out, only=wanted).attach()     # the one trace recorder (--events-out's)
    run_with_outputs(mon, args, err)
    out.flush()
    warn(mon, err)
    return 0


def _events_distributed(args: argparse.Namespace, config: Any, wanted: set[str] | None,
                        out: IO[str], err: IO[str]) -> int:
    """--workers / --dask: the same trace, from every partition, in capture order (mostool.dist)."""
    from mostool.cli.distributed import run_distributed
    from mostool.dist import Job, merge_events
    run = run_distributed(args, Job("events", config, Monitor, only=wanted), err)
    dumps = json.dumps
    for record in merge_events(run["results"]):
        out.write(dumps(record) + "\n")
    out.flush()
    for warning in run["warnings"]:
        err.write(f"mostool: warning: {warning}\n")
    return 0
