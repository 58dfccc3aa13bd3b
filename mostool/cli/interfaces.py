"""`mostool interfaces`: the interfaces that -i can capture on."""

from __future__ import annotations

import argparse
import json
from typing import IO, Any

from mostool.cli.common import UsageError

EXAMPLES_INTERFACES = """examples:
  mostool interfaces
  mostool interfaces --format jsonl
"""


def register(sub: Any) -> None:
    """Add `interfaces` to ``mostool``'s subparsers."""
    ifaces = sub.add_parser("interfaces", help="list the interfaces that -i can capture on",
                            epilog=EXAMPLES_INTERFACES,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    ifaces.add_argument("--format", choices=("table", "jsonl"), default="table")
    ifaces.set_defaults(func=cmd_interfaces)


def cmd_interfaces(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from mostool.live import LiveError, interfaces
    try:
        found = interfaces()
    except LiveError as exc:
        raise UsageError(str(exc)) from exc
    if args.format == "jsonl":
        for info in found:
            out.write(json.dumps(info) + "\n")
        return 0
    width = max([len(i["name"]) for i in found] + [4])
    for n, info in enumerate(found, 1):
        if info["up"] is None:
            state = ""
        else:
            state = ("up" if info["up"] else "down") + (", running" if info["running"] else "")
        extra = f"  {info['address']}" if info.get("address") else ""
        out.write(f"{n:>2}. {info['name']:<{width}}  {state:<13}  {info['kind']}{extra}\n")
    if not found:
        err.write("mostool: no interface to capture on (libpcap found none; try as root)\n")
    return 0
