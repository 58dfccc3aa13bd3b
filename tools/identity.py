"""Do two revisions of mostool give byte-identical ``flows --hash`` and ``events`` output?

    python3 tools/identity.py BEFORE [AFTER] [--pcaps DIR ...] [--quick]

Each revision's ``mostool/`` is extracted with ``git archive`` into a temporary directory and run
there with ``PYTHONPATH`` pointing at it (AFTER defaults to the working tree). Every capture in
``sample_pcaps/`` and in ``../shared/pcaps/netgen`` (or the ``--pcaps`` directories) is read with
``mostool flows --hash`` and ``mostool events``, with and without ``--midstream``; any difference
is printed and the exit status is 1. A refactor that is a move, not a rewrite, keeps them equal.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIRS = [ROOT / "sample_pcaps", ROOT.parent / "shared" / "pcaps" / "netgen"]
RUNS: list[list[str]] = [
    ["flows", "--hash"],
    ["flows", "--hash", "--midstream"],
    ["events"],
    ["events", "--midstream"],
]


def extract(rev: str, into: Path) -> Path:
    """``mostool/`` of git revision ``rev`` below ``into``; returns the PYTHONPATH to use."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev, "mostool"],
                          check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def run(pythonpath: Path, args: list[str], pcap: Path) -> bytes:
    code = "import sys; from mostool.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", code, *args, "-r", str(pcap)],
                          capture_output=True, env={"PYTHONPATH": str(pythonpath),
                                                    "PATH": "/usr/bin:/bin"})
    return b"rc=%d\n" % proc.returncode + proc.stdout


def captures(dirs: list[Path]) -> list[Path]:
    out: list[Path] = []
    for d in dirs:
        out += sorted(p for p in d.iterdir() if p.suffix in (".pcap", ".pcapng"))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("before")
    ap.add_argument("after", nargs="?", default=None, help="a revision (default: working tree)")
    ap.add_argument("--pcaps", nargs="*", type=Path, default=None)
    ap.add_argument("--quick", action="store_true", help="flows --hash and events only")
    opts = ap.parse_args(argv)
    runs = RUNS[::2] if opts.quick else RUNS
    pcaps = captures(opts.pcaps or [d for d in DEFAULT_DIRS if d.is_dir()])
    with tempfile.TemporaryDirectory() as tmp:
        before = extract(opts.before, Path(tmp) / "before")
        after = extract(opts.after, Path(tmp) / "after") if opts.after else ROOT
        differ = 0
        for pcap in pcaps:
            for args in runs:
                a, b = run(before, args, pcap), run(after, args, pcap)
                same = a == b
                differ += not same
                digest = hashlib.sha256(b).hexdigest()[:12]
                print(f"{'same ' if same else 'DIFF '} {digest} {' '.join(args):28} {pcap.name}")
        print(f"{len(pcaps)} captures, {len(pcaps) * len(runs)} runs, {differ} differ")
        return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
