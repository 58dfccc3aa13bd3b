"""Same behaviour before and after a change: ``mostool flows --hash`` and ``mostool events`` on
every capture, compared between two git revisions (or a revision and stored outputs).

    python tools/identity.py --at 5d09b21                  # that revision vs the work tree
    python tools/identity.py --at 5d09b21 --at HEAD        # two revisions
    python tools/identity.py --store out.json              # the work tree's digests, kept
    python tools/identity.py --against out.json            # the work tree vs what was kept
    options: --sets bundled,netgen,corpus (default: all three)  --limit N  --verbose

A revision is exported with ``git archive`` into a temporary directory and run there by this
same interpreter (the repo's .venv has every dependency), in one child process per revision that
calls ``mostool.cli.main(argv, out, err)`` for each capture and command: the child prints one
JSON line per run with the exit status and the SHA-256 of stdout and of stderr (stderr minus the
interpreter-dependent file paths is not compared: it only names the capture). The captures:
bundled = sample_pcaps/**/*.pcap, netgen = ../shared/pcaps/netgen/*.pcap, corpus = every
capture listed in ../shared/pcaps/MANIFEST.tsv. Exits 1 when anything differs.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "pcaps"
COMMANDS = {"flows": ["flows", "--hash", "-r"], "events": ["events", "-r"]}

# runs in the child: sys.argv[1] is the tree to import mostool from; captures on stdin
_CHILD = r"""
import hashlib, io, json, sys
sys.path.insert(0, sys.argv[1])
from mostool.cli import main
commands = json.loads(sys.argv[2])
for line in sys.stdin:
    pcap = line.rstrip("\n")
    for name, argv in commands.items():
        out, err = io.StringIO(), io.StringIO()
        try:
            rc = main([*argv, pcap], out, err)
        except BaseException as exc:  # a traceback is a difference too
            rc = f"raised {type(exc).__name__}: {exc}"
        print(json.dumps({"pcap": pcap, "command": name, "rc": rc,
                          "out": hashlib.sha256(out.getvalue().encode()).hexdigest(),
                          "lines": out.getvalue().count("\n"),
                          "err": err.getvalue()[-300:]}), flush=True)
"""


def captures(sets: list[str], limit: int | None) -> list[Path]:
    out: list[Path] = []
    if "bundled" in sets:
        out += sorted((ROOT / "sample_pcaps").rglob("*.pcap"))
    if "netgen" in sets:
        out += sorted((SHARED / "netgen").glob("*.pcap"))
    if "corpus" in sets and (SHARED / "MANIFEST.tsv").exists():
        with open(SHARED / "MANIFEST.tsv", newline="") as f:
            out += [SHARED / row["path"] for row in csv.DictReader(f, delimiter="\t")]
    return out[:limit] if limit else out


def export(rev: str, into: Path) -> Path:
    """The revision's tree (only mostool/ is needed) in a fresh directory."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "mostool"], check=True,
                          capture_output=True).stdout
    target = into / rev.replace("/", "_")
    target.mkdir()
    with tarfile.open(fileobj=__import__("io").BytesIO(data)) as tar:
        tar.extractall(target, filter="data")
    return target


def run_tree(tree: Path, pcaps: list[Path]) -> dict[tuple[str, str], dict[str, object]]:
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(tree), json.dumps(COMMANDS)],
                          input="".join(f"{p}\n" for p in pcaps), capture_output=True,
                          text=True, cwd=tree)
    if proc.returncode:
        sys.exit(f"identity: the run at {tree} failed:\n{proc.stderr[-2000:]}")
    results = {}
    for line in proc.stdout.splitlines():
        rec = json.loads(line)
        results[(rec["pcap"], rec["command"])] = rec
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--at", action="append", default=[], metavar="REV",
                    help="a git revision (twice: compare two revisions)")
    ap.add_argument("--store", type=Path, help="write the work tree's results here")
    ap.add_argument("--against", type=Path, help="compare the work tree with stored results")
    ap.add_argument("--sets", default="bundled,netgen,corpus")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    pcaps = captures(args.sets.split(","), args.limit)
    with tempfile.TemporaryDirectory(prefix="identity-") as tmp:
        trees = [(rev, export(rev, Path(tmp))) for rev in args.at[:2]]
        if len(trees) < 2 and not (args.store and not args.at):
            trees.append(("work tree", ROOT))
        if args.store and not args.at:
            res = run_tree(ROOT, pcaps)
            args.store.write_text(json.dumps(sorted(res.values(), key=lambda r: (
                r["pcap"], r["command"])), indent=0))
            print(f"identity: {len(res)} results stored in {args.store}")
            return 0
        if args.against:
            stored = {(r["pcap"], r["command"]): r for r in json.loads(args.against.read_text())}
            sides = [(str(args.against), stored), ("work tree", run_tree(ROOT, pcaps))]
        else:
            sides = [(name, run_tree(tree, pcaps)) for name, tree in trees]
    (a_name, a), (b_name, b) = sides
    differ = []
    for key in sorted(set(a) | set(b)):
        ra, rb = a.get(key), b.get(key)
        if ra is None or rb is None or (ra["rc"], ra["out"]) != (rb["rc"], rb["out"]):
            differ.append((key, ra, rb))
    for (pcap, command), ra, rb in differ:
        print(f"DIFFERS {command} {pcap}")
        if args.verbose:
            print(f"  {a_name}: {ra}\n  {b_name}: {rb}")
    print(f"identity: {len(pcaps)} captures x {len(COMMANDS)} commands, {a_name} vs {b_name}: "
          f"{len(differ)} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
