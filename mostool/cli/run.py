"""`mostool run`: monitoring apps over a capture, without the view."""

from __future__ import annotations

import argparse
from typing import IO, Any

from mostool.cli.common import (
    SHIPPED_APPS,
    UsageError,
    add_app_options,
    add_common_options,
    config_from,
    print_reports,
    run_source,
    start_apps_or_fail,
    stdout_to,
    strict_failure,
    warn,
)
from mostool.cli.distributed import add_dist_options, wants_distributed
from mostool.cli.outputs import add_output_options, open_with_outputs
from mostool.errors import CallbackError
from mostool.monitor import Monitor

_RAW = argparse.RawDescriptionHelpFormatter

EXAMPLES_RUN = f"""examples:
  mostool run -r capture.pcap --app midstat
  mostool run -r capture.pcap --app http --app rexmit
  mostool run -r capture.pcap --app ./my_app.py --strict

apps: {SHIPPED_APPS}, path/to/app.py[:func] or package.module[:func]
An app is a function setup(mon) that registers sockets, callbacks and UDEs on the Monitor and
may return a function that prints its report after the run.
"""


def register(sub: Any) -> None:
    """Add `run` to ``mostool``'s subparsers."""
    run = sub.add_parser("run", help="run monitoring apps over a capture (no view)",
                         description="Load apps (--app) into one Monitor and run it; each "
                                     "app prints its own output and report.",
                         epilog=EXAMPLES_RUN, formatter_class=_RAW)
    add_common_options(run)
    add_app_options(run)
    add_output_options(run)
    add_dist_options(run)
    run.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    if not args.app:
        raise UsageError("no app: give --app NAME, --app path/to/app.py or --app module:func "
                         f"(shipped: {SHIPPED_APPS})")
    if wants_distributed(args):
        return _run_distributed(args, out, err)
    mon = Monitor(config_from(args, strict=args.strict))
    apps = start_apps_or_fail(mon, args.app)
    source, outs = open_with_outputs(args, mon)
    code = 0
    try:
        with stdout_to(out):
            try:
                run_source(mon, source, args, err)
            except CallbackError as exc:
                code = strict_failure(exc, err)
    finally:
        outs.close()
    with stdout_to(out):
        print_reports(apps, err)
    warn(mon, err)
    return code


def _run_distributed(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """--workers / --dask: the apps run in every partition; what they print comes back in
    capture order, then each partition's report (an app's report covers its partition's
    flows)."""
    from mostool.cli.distributed import run_distributed
    from mostool.dist import Job, merge_printed
    for spec in args.app:                        # a bad app is one line here, not per worker
        start_apps_or_fail(Monitor(), [spec])
    job = Job("app", config_from(args, strict=args.strict), Monitor, apps=list(args.app),
              trace=False, printed=True)
    try:
        run = run_distributed(args, job, err)
    except CallbackError as exc:
        return strict_failure(exc, err)
    for line in merge_printed(run["results"]):
        out.write(line + "\n")
    results = run["results"]
    reports = [res["report"] for res in results if res["report"]]
    if reports:
        if len(results) > 1:
            err.write(f"mostool: the apps' reports come from each of {len(results)} "
                      "partitions (each covers its partition's flows)\n")
        for res in results:
            if res["report"]:
                if len(results) > 1:
                    out.write(f"-- partition {res['partition']} --\n")
                out.write(res["report"])
    out.flush()
    for warning in run["warnings"]:
        err.write(f"mostool: warning: {warning}\n")
    errors = sum(res["callback_errors"] for res in results)
    failures = [f for res in results for f in res["failures"]]
    if errors:
        err.write(f"mostool: warning: {errors} callback error(s); first: {failures[0]}\n")
    return 0
