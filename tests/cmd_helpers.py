"""Run `mostool` subcommands in-process or in a fresh interpreter, with their exit status.

Used by test_view.py, test_apps.py and test_streams.py.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from mostool import cli
from mostool.errors import MosError

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_pcaps"
NETGEN = ROOT.parent / "shared" / "pcaps" / "netgen"

RUNNER = """\
import sys
from mostool import cli
parser = cli.build_parser()
args = parser.parse_args(sys.argv[1:])
try:
    sys.exit(args.func(args, sys.stdout, sys.stderr))
except cli.UsageError as exc:
    sys.stderr.write(f"mostool: error: {exc}\\n")
    sys.exit(2)
"""


def parser() -> argparse.ArgumentParser:
    return cli.build_parser()


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
