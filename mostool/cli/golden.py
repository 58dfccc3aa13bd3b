"""`mostool golden`: write a capture's test (sidecar + golden trace), or print its trace.

``golden new CAPTURE`` runs the capture as the pytest plugin will and writes ``CAPTURE.mos.json``
(what to run) and ``CAPTURE.golden.jsonl`` (what it gave) beside it: a directory listed in the
``mos_pcap_dirs`` ini option then holds a test without Python (suricata-verify's createst.py).
``golden trace CAPTURE`` prints the canonical trace on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from pathlib import Path
from typing import IO, Any

from mostool.cli.common import UsageError

EXAMPLES_GOLDEN = """examples:
  mostool golden new tests/pcaps/login.pcap --app apps/login.py
  mostool golden new tests/pcaps/http.pcap --app http --events ON_CONN_START,ON_CONN_END \\
      --set midstream=true --expect ON_CONN_END=3
  mostool golden trace sample_pcaps/http_small.pcap | head

Then add to pytest's configuration:   [tool.pytest.ini_options] mos_pcap_dirs = ["tests/pcaps"]
"""


def register(sub: Any) -> None:
    """Add `golden` to ``mostool``'s subparsers."""
    golden = sub.add_parser("golden", help="write a capture's regression test (sidecar + golden "
                                           "trace), or print its canonical trace",
                            epilog=EXAMPLES_GOLDEN,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = golden.add_subparsers(dest="golden_command", metavar="ACTION")
    for name, text in (("new", "write CAPTURE.mos.json and CAPTURE.golden.jsonl beside it"),
                       ("trace", "print CAPTURE's canonical trace")):
        p = actions.add_parser(name, help=text, description=text, epilog=EXAMPLES_GOLDEN,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("capture", metavar="CAPTURE", help="a pcap or pcapng file")
        p.add_argument("--app", action="append", default=[], metavar="SPEC",
                       help="app to load (shipped name, path, module[:func]); repeatable")
        p.add_argument("--events", metavar="NAMES",
                       help="comma-separated event names to keep (default: all but ON_PKT_IN)")
        p.add_argument("--exclude", metavar="FIELDS", help="comma-separated fields to leave out")
        p.add_argument("--set", dest="settings", action="append", default=[],
                       metavar="FIELD=VALUE",
                       help="a MonitorConfig field (VALUE as JSON: true, 4096, \"last\")")
        if name == "new":
            p.add_argument("--expect", action="append", default=[], metavar="EVENT=COUNT",
                           help="also assert how often an event occurs; repeatable")
            p.add_argument("--no-golden", action="store_true",
                           help="only the expectations, no whole-trace golden")
            p.add_argument("--force", action="store_true",
                           help="overwrite an existing sidecar and golden")
    golden.set_defaults(func=cmd_golden)


def _settings(items: list[str]) -> dict[str, Any]:
    from mostool.testing.trace import config_fields
    config: dict[str, Any] = {}
    for item in items:
        key, eq, raw = item.partition("=")
        if not eq or not key:
            raise UsageError(f"--set takes FIELD=VALUE, not {item!r}")
        try:
            config[key] = json.loads(raw)
        except json.JSONDecodeError:
            config[key] = raw                              # a bare word: a string
    try:
        return config_fields(config)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from exc


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [n.strip() for n in text.split(",") if n.strip()]


def cmd_golden(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from mostool.apps import AppError
    from mostool.pcapfile import CaptureError
    from mostool.testing.checker import make_spec
    from mostool.testing.golden import write_golden
    from mostool.testing.sidecar import Sidecar, golden_path_for, sidecar_path
    from mostool.testing.trace import run_trace

    if args.golden_command is None:
        raise UsageError("give an action: mostool golden new CAPTURE, or golden trace CAPTURE")
    capture = Path(args.capture)
    if not capture.is_file():
        raise UsageError(f"{args.capture}: no such capture file")
    config = _settings(args.settings)
    events = _names(args.events)
    exclude = _names(args.exclude) or []
    # App paths are stored relative to the sidecar, so the test directory can move.
    apps = [os.path.relpath(a, capture.parent) if a.endswith(".py") and os.path.exists(a)
            else a for a in args.app]
    spec = make_spec([capture], app=apps, events=events, exclude=exclude, round=None,
                     config=config, base=capture.parent)
    try:
        with contextlib.redirect_stdout(err):          # an app's own prints: not the trace
            trace = run_trace([capture], spec)
    except (AppError, CaptureError) as exc:
        raise UsageError(str(exc)) from exc
    except RuntimeError as exc:
        raise UsageError(f"{capture}: {exc}") from exc
    if args.golden_command == "trace":
        out.write(trace.text())
        return 0
    expect = []
    for item in args.expect:
        name, eq, count = item.partition("=")
        if not eq or not count.isdigit():
            raise UsageError(f"--expect takes EVENT=COUNT, not {item!r}")
        expect.append({"event": name, "count": int(count)})
    side, golden = sidecar_path(capture), golden_path_for(capture)
    existing = [str(p) for p in (side, golden) if p.exists()]
    if existing and not args.force:
        raise UsageError(f"{' and '.join(existing)} exist(s); --force overwrites")
    counts: dict[str, int] = {}
    for rec in trace.records:
        counts[rec["event"]] = counts.get(rec["event"], 0) + 1
    for want in expect:
        found = counts.get(want["event"], 0)
        if found != want["count"]:
            raise UsageError(f"--expect {want['event']}={want['count']}: this capture gives "
                             f"{found}")
    sidecar = Sidecar(app=apps, events=events, config=config, exclude=exclude,
                      golden=not args.no_golden, expect=expect)
    side.write_text(sidecar.to_json(), encoding="utf-8")
    written = [str(side)]
    if sidecar.golden:
        write_golden(golden, trace)
        written.append(f"{golden} ({len(trace.records)} events)")
    out.write("wrote " + ", ".join(written) + "\n")
    out.write("events: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + "\n")
    out.write(f"a test once {capture.parent} is in the mos_pcap_dirs ini option\n")
    return 0
