"""Print mostool's agreement with tshark's ground truth over the public capture corpus.

    .venv/bin/python tests/corpus_report.py [--no-cli] [--json OUT] [--only SUBSTRING]

Runs every capture of /work/shared/pcaps/MANIFEST.tsv through the engine (in a child process,
60 s limit each) and the real command line, then prints: crashes, hangs and CLI contract
breaches; per-file and total agreement over eligible stream directions; every disagreement with
our bytes/hash/gaps against the truth's, and whether KNOWN_DIFFERENCES.md lists it; excluded
streams by reason; orphan and connection counts where comparable. Definitions:
tests/corpus/README.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "corpus"))

import corpus  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--no-cli", action="store_true", help="skip the command-line runs")
    p.add_argument("--json", metavar="OUT", help="also write the comparison as JSON")
    p.add_argument("--only", metavar="SUBSTRING", help="captures whose path contains this")
    p.add_argument("--workers", type=int, default=corpus.WORKERS)
    args = p.parse_args(argv)
    if not corpus.available():
        print(f"corpus not found at {corpus.CORPUS}", file=sys.stderr)
        return 2
    caps = corpus.manifest()
    if args.only:
        caps = [c for c in caps if args.only in c.path]
    start = time.monotonic()
    results = corpus.evaluate(caps, workers=args.workers, cli=not args.no_cli)
    elapsed = time.monotonic() - start
    known = corpus.known_differences()
    t = corpus.totals(results, known)

    w = sys.stdout.write
    w(f"# mostool vs tshark over {len(caps)} captures ({elapsed:.1f} s, "
      f"{args.workers} workers{', no CLI' if args.no_cli else ', engine + CLI'})\n\n")
    w(t.line() + "\n")

    # robustness
    w("\n## Robustness\n\n")
    for st in ("ok", "unusable", "crash", "hang"):
        w(f"- {st}: {sum(r.status == st for r in results)}\n")
    for r in results:
        if r.status == "unusable":
            w(f"  - unusable {r.capture.path}: {r.error}\n")
    for r in results:
        if r.status in ("crash", "hang"):
            w(f"\n### {r.status.upper()} {r.capture.path}\n\n```\n{r.error.rstrip()}\n```\n")
    if not args.no_cli:
        w(f"- CLI contract problems: {t.cli_problems} files; CLI output differs from the "
          f"in-process run: {sum(bool(r.cli_mismatch) for r in results)} files\n")
        for r in results:
            if r.cli_problems or r.cli_mismatch:
                w(f"  - {r.capture.path}: {'; '.join(r.cli_problems)} {r.cli_mismatch}\n")
    slow = sorted(results, key=lambda r: -r.seconds)[:5]
    w("- slowest engine runs (child process, wall clock): "
      + ", ".join(f"{r.capture.path} {r.seconds:.1f} s" for r in slow) + "\n")

    # agreement
    w("\n## Agreement with seqmap over eligible stream directions\n\n")
    w(f"**{t.agreed} / {t.eligible - t.truth_wrong} = {100 * t.rate:.2f}%** leaving out the "
      f"{t.truth_wrong} directions where the truth is arguably wrong (category a); raw "
      f"{t.agreed} / {t.eligible} = {100 * t.raw_rate:.2f}% "
      f"({len({(d.capture, d.stream) for r in results for d in r.directions})} streams in "
      f"{sum(1 for r in results if r.eligible)} files)\n\n")
    excluded: dict[str, int] = {}
    for r in results:
        for why, streams in r.excluded.items():
            excluded[why] = excluded.get(why, 0) + len(streams)
    w("Streams not compared: " + ", ".join(f"{k} {v}" for k, v in excluded.items()) + "\n\n")
    w("| file | eligible | agree | rate |\n| --- | ---: | ---: | ---: |\n")
    for r in results:
        if r.eligible:
            w(f"| {r.capture.path} | {r.eligible} | {r.agreed} | "
              f"{100 * r.agreed / r.eligible:.1f}% |\n")

    # disagreements
    diffs = [d for r in results for d in r.disagreements]
    w(f"\n## Disagreements ({len(diffs)}, "
      f"{len(corpus.unlisted(diffs, known))} not in KNOWN_DIFFERENCES.md)\n\n")
    for d in diffs:
        k = next((k for k in known if k.covers(d.capture, d.stream, d.direction)), None)
        tag = f"[known {k.category}: {k.reason}]" if k else "[NOT LISTED]"
        w(f"- {d.describe()}\n  {tag}\n")

    # not decoded
    w("\n## Streams not decoded (not compared)\n\n")
    missing = set(corpus.unlisted_not_decoded(results, known))
    for nd in corpus.not_decoded(results):
        w(f"- {nd[0]} stream {nd[1]}: {nd[2]}{' [NOT LISTED as d]' if nd in missing else ''}\n")

    # extra flows
    w("\n## Our flows that match no tshark stream (or lost to another flow of its stream)\n\n")
    for r in results:
        for f in r.extra_flows:
            w(f"- {r.capture.path}: flow {f['id']} {f['client']} > {f['server']} first packet "
              f"{f['first_packet']}, end {f['end_reason']}, bytes {f['c2s']['bytes']}/"
              f"{f['s2c']['bytes']}, gap bytes {f['c2s']['gap_bytes']}/"
              f"{f['s2c']['gap_bytes']}\n")

    # counts
    compared = [r for r in results if corpus.counts_comparable(r) is None]
    counts = [c for r in compared for c in corpus.count_differences(r)]
    unlisted_counts = corpus.unlisted_counts(counts, known)
    w(f"\n## Orphans and flows ({len(compared)} comparable files, {len(counts)} differences, "
      f"{len(unlisted_counts)} not listed)\n\n")
    for cd in counts:
        w(f"- {cd.describe()}{' [NOT LISTED]' if cd in unlisted_counts else ''}\n")

    gone = corpus.stale(results, known)
    if gone:
        w("\n## Stale rows in KNOWN_DIFFERENCES.md\n\n")
        for k in gone:
            w(f"- {k.capture} {k.stream} {k.direction}\n")

    if args.json:
        Path(args.json).write_text(json.dumps(_as_json(results), indent=1))
    return 0


def _as_json(results: list[corpus.FileResult]) -> list[dict[str, Any]]:
    return [{
        "capture": r.capture.path, "status": r.status, "error": r.error,
        "seconds": r.seconds, "eligible": r.eligible, "agreed": r.agreed,
        "excluded": r.excluded, "cli_problems": r.cli_problems, "cli_mismatch": r.cli_mismatch,
        "stats": r.stats, "flows": r.flows,
        "disagreements": [{"stream": d.stream, "direction": d.direction, "ours": d.ours,
                           "flow_id": d.flow_id, "got": d.got, "want": d.want, "note": d.note}
                          for d in r.disagreements],
        "extra_flows": r.extra_flows,
    } for r in results]


if __name__ == "__main__":
    sys.exit(main())
