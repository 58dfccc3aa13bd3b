"""The web trace cut into 16 files: `mostool flows --dask local:2` against one process.

    .venv/bin/python benchmarks/dist_bench.py [--trace /work/traces/web.pcap] [--files 16]
                                              [--dask local:2] [--no-append]

The trace is cut with `editcap -F pcap -c` into a temporary directory (removed afterwards).
Each run is a whole `mostool flows` process; wall time, and CPU time of the process and every
process it started (the LocalCluster's workers: user + sys from ``os.wait4``). The outputs of
the two runs are compared byte for byte. The route phase's cost per packet is measured apart: one
``route_piece`` over one of the files in this process (CPU time / packets). A row is appended
to results.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MOSTOOL = str(Path(sys.executable).with_name("mostool"))


def timed(argv: list[str], out_path: str) -> tuple[float, float]:
    """(wall s, CPU s of the process tree) of one command, its stdout to ``out_path``."""
    start = time.monotonic()
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.PIPE)
        assert proc.stderr is not None
        err = proc.stderr.read()
        _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {err.decode(errors='replace')}")
    sys.stderr.write(err.decode(errors="replace"))
    return wall, usage.ru_utime + usage.ru_stime


def route_cost(path: str) -> tuple[float, int]:
    """CPU microseconds per packet of routing one file into 2 partitions."""
    from mostool.dist.route import route_piece
    scratch = tempfile.mkdtemp(prefix="mostool-route-bench-")
    try:
        t0 = time.process_time()
        piece = route_piece(0, path, 2, scratch, None)
        took = time.process_time() - t0
    finally:
        shutil.rmtree(scratch)
    return took / piece["packets"] * 1e6, piece["packets"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", default="/work/traces/web.pcap")
    ap.add_argument("--files", type=int, default=16)
    ap.add_argument("--dask", default="local:2")
    ap.add_argument("--no-append", action="store_true")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="mostool-dist-bench-")
    try:
        count = int(subprocess.check_output(["capinfos", "-Mc", args.trace], text=True)
                    .split(":")[-1].strip())
        per = -(-count // args.files)
        subprocess.run(["editcap", "-F", "pcap", "-c", str(per), args.trace,
                        os.path.join(tmp, "cut.pcap")], check=True)
        files = sorted(str(p) for p in Path(tmp).glob("cut*.pcap"))
        reads = [a for f in files for a in ("-r", f)]
        one_out, many_out = os.path.join(tmp, "one.jsonl"), os.path.join(tmp, "many.jsonl")
        one = timed([MOSTOOL, "flows", "--hash", *reads], one_out)
        many = timed([MOSTOOL, "flows", "--hash", *reads, "--dask", args.dask], many_out)
        same = Path(one_out).read_bytes() == Path(many_out).read_bytes()
        us, routed = route_cost(files[0])
        load = os.getloadavg()[0]
    finally:
        shutil.rmtree(tmp)
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                         capture_output=True).stdout.strip()
    row = (f"| {datetime.date.today()} | {rev} | {Path(args.trace).name} in {len(files)} files, "
           f"{count:,} packets | one process: {one[0]:.1f} s wall, {one[1]:.1f} s CPU | "
           f"--dask {args.dask}: {many[0]:.1f} s wall, {many[1]:.1f} s CPU | "
           f"{one[0] / many[0]:.2f}x wall | route {us:.2f} us/packet (CPU, {routed:,} "
           f"packets) | identical: {'yes' if same else 'NO'} | load {load:.1f} |")
    print(row)
    if not args.no_append:
        with open(ROOT / "benchmarks" / "results.md", "a", encoding="utf-8") as f:
            f.write("\n### dist_bench.py (flows --hash, 16 rotated files)\n\n"
                    "| date | commit | input | single | distributed | speed-up | route phase |"
                    " output | load |\n|---|---|---|---|---|---|---|---|---|\n" + row + "\n")
    if not same:
        raise SystemExit("the distributed output differs from the single process's")


if __name__ == "__main__":
    main()
