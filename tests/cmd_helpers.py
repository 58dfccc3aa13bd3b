"""Run `mostool` subcommands in-process, whether or not cli.py already registers them.

``mostool.commands.register`` adds `watch`, `run` and `streams`; until ``cli.build_parser`` calls
it, these helpers do. Used by test_view.py, test_apps.py and test_streams.py.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from mostool import cli, commands
from mostool.errors import MosError

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_pcaps"
NETGEN = ROOT.parent / "shared" / "pcaps" / "netgen"

RUNNER = """\
import argparse, sys
from mostool import cli, commands
parser = cli.build_parser()
sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
if "watch" not in sub.choices:
    commands.register(sub)
args = parser.parse_args(sys.argv[1:])
try:
    sys.exit(args.func(args, sys.stdout, sys.stderr))
except cli.UsageError as exc:
    sys.stderr.write(f"mostool: error: {exc}\\n")
    sys.exit(2)
"""


def parser() -> argparse.ArgumentParser:
    p = cli.build_parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    if "watch" not in sub.choices:
        commands.register(sub)
    return p


def run(*argv: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``mostool ARGV`` run in this process."""
    out, err = io.StringIO(), io.StringIO()
    args = parser().parse_args(list(argv))
    try:
        code = args.func(args, out, err)
    except (cli.UsageError, MosError) as exc:
        err.write(f"mostool: error: {exc}\n")
        code = 2
    return code, out.getvalue(), err.getvalue()


def runner_script(tmp: Path) -> list[str]:
    """argv prefix that runs ``mostool`` in a fresh interpreter (for a terminal test)."""
    script = tmp / "mostool_runner.py"
    script.write_text(RUNNER)
    return [sys.executable, str(script)]
