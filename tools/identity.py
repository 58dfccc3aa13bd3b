"""Do two revisions of mostool give byte-identical ``flows --hash`` and ``events`` output?

    python3 tools/identity.py BEFORE [AFTER] [--pcaps DIR ...] [--quick]

Each revision's ``mostool/`` is extracted with ``git archive`` into a temporary directory and run
there with ``PYTHONPATH`` pointing at it (AFTER defaults to the working tree). Every capture in
``sample_pcaps/`` and in ``../shared/pcaps/netgen`` (or the ``--pcaps`` directories) is read with
``mostool flows --hash`` and ``mostool events``, with and without ``--midstream``; any difference
is printed and the exit status is 1. A refactor that is a move, not a rewrite, keeps them equal.
Directories are searched recursively (``--pcaps ../shared/pcaps`` is the whole public corpus); both
revisions run as pure Python under this interpreter (``-j`` runs at once). A run that fails on both
sides is reported too: equal tracebacks prove nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor
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


def run(pythonpath: Path, args: list[str], pcap: Path) -> tuple[bytes, str]:
    """The run's exit status and standard output, and its last line of stderr if it crashed."""
    code = "import sys; from mostool.cli import main; sys.exit(main(sys.argv[1:]))"
    # cwd: with -c the current directory comes first on sys.path, so run where the revision
    # is (from the repository root every "before" would import the working tree)
    proc = subprocess.run([sys.executable, "-c", code, *args, "-r", str(pcap)],
                          capture_output=True, cwd=pythonpath, env={"PYTHONPATH": str(pythonpath),
                                                    "MOSTOOL_PURE": "1",
                                                    "PATH": "/usr/bin:/bin"})
    crashed = b"Traceback" in proc.stderr or proc.returncode not in (0, 1, 2)
    why = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] if crashed else []
    return b"rc=%d\n" % proc.returncode + proc.stdout, "".join(why)


def captures(dirs: list[Path]) -> list[Path]:
    out: list[Path] = []
    for d in dirs:
        out += sorted(p for p in d.rglob("*") if p.suffix in (".pcap", ".pcapng", ".cap"))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("before")
    ap.add_argument("after", nargs="?", default=None, help="a revision (default: working tree)")
    ap.add_argument("--pcaps", nargs="*", type=Path, default=None)
    ap.add_argument("--quick", action="store_true", help="flows --hash and events only")
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    opts = ap.parse_args(argv)
    runs = RUNS[::2] if opts.quick else RUNS
    pcaps = captures(opts.pcaps or [d for d in DEFAULT_DIRS if d.is_dir()])
    with tempfile.TemporaryDirectory() as tmp:
        before = extract(opts.before, Path(tmp) / "before")
        after = extract(opts.after, Path(tmp) / "after") if opts.after else ROOT
        jobs = [(pcap, args) for pcap in pcaps for args in runs]

        def both(job: tuple[Path, list[str]]) -> tuple[tuple[bytes, str], tuple[bytes, str]]:
            pcap, args = job
            return run(before, args, pcap), run(after, args, pcap)

        differ = crashed = 0
        with ThreadPoolExecutor(max(1, opts.jobs)) as pool:
            for (pcap, args), ((a, why_a), (b, why_b)) in zip(jobs, pool.map(both, jobs)):
                same = a == b
                differ += not same
                crashed += bool(why_a or why_b)
                digest = hashlib.sha256(b).hexdigest()[:12]
                verdict = "same " if same else "DIFF "
                print(f"{verdict} {digest} {' '.join(args):28} {pcap}")
                for side, why in (("before", why_a), ("after", why_b)):
                    if why:
                        print(f"  CRASH ({side}): {why}")
        print(f"{len(pcaps)} captures, {len(jobs)} runs, {differ} differ, {crashed} crashed")
        return 1 if differ or crashed else 0


if __name__ == "__main__":
    sys.exit(main())
