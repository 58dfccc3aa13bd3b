"""Golden files: read, compare with a fresh trace, explain the first difference, write.

A golden file is a canonical trace (``mostool.testing.trace``): a header line, then one event per
line. ``compare`` first checks that the golden was made from the same capture (SHA-256) with the
same check (app, config, events, exclude, round): if not, it says so in one paragraph instead of
showing a wall of differences. A different mostool version is only mentioned. Then it finds the
first differing event and builds a report a person can read: that event's packet, flow and side,
three events of context on each side from both traces, the states of the flow's two TCP stacks at
that packet in the new run, and how many further differences follow. The full new trace is written
as ``<golden>.obtained.jsonl`` beside the golden for a diff tool.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mostool.testing.trace import KEY_FIELDS, Trace, canonical_line

__all__ = ["Comparison", "compare", "read_golden", "write_golden", "obtained_path"]

CONTEXT = 3
# Header fields that must agree for two traces to be comparable at all.
CHECK_FIELDS = ("app", "events", "config", "exclude", "round")


@dataclass
class Comparison:
    equal: bool
    report: str = ""
    notes: str = ""


def obtained_path(golden: Path) -> Path:
    return golden.with_name(golden.name.removesuffix(".jsonl") + ".obtained.jsonl")


def read_golden(path: Path) -> tuple[dict[str, Any], list[str]]:
    """(header, event lines) of a golden file. A file that is not one raises ValueError."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        raise ValueError(f"{path}: empty golden file")
    try:
        header = json.loads(lines[0])
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: the first line is not a golden header: {exc}") from exc
    if not isinstance(header, dict) or "mostool_golden" not in header:
        raise ValueError(f"{path}: the first line is not a golden header")
    return header, [line for line in lines[1:] if line.strip()]


def write_golden(path: Path, trace: Trace) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(trace.text(), encoding="utf-8")


def _describe(line: str) -> str:
    try:
        rec = json.loads(line)
    except json.JSONDecodeError:
        return line
    keys = " ".join(f"{k}={rec[k]}" for k in KEY_FIELDS if k in rec)
    rest = ", ".join(f"{k}={v!r}" for k, v in rec.items() if k not in KEY_FIELDS)
    return f"{keys}" + (f" ({rest})" if rest else "")


def _header_mismatch(golden: dict[str, Any], new: dict[str, Any]) -> str:
    if golden.get("sha256") != new.get("sha256"):
        return (f"the golden was made from another capture: golden {golden.get('capture')} "
                f"sha256 {str(golden.get('sha256'))[:16]}..., this check reads "
                f"{new.get('capture')} sha256 {str(new.get('sha256'))[:16]}...")
    differing = [f"{k}: golden {golden.get(k)!r}, this check {new.get(k)!r}"
                 for k in CHECK_FIELDS if golden.get(k) != new.get(k)]
    if differing:
        return "the golden was made with another check:\n  " + "\n  ".join(differing)
    return ""


def compare(golden_path: Path, trace: Trace) -> Comparison:
    """Compare ``trace`` with the golden at ``golden_path`` (which must exist)."""
    header, old = read_golden(golden_path)
    new_header = trace.header
    notes = ""
    if header.get("version") != new_header.get("version"):
        notes = (f"golden written by mostool {header.get('version')}, checked with "
                 f"{new_header.get('version')}")
    mismatch = _header_mismatch(header, new_header)
    if mismatch:
        return Comparison(False, f"{golden_path}: {mismatch}\n(run pytest --mos-update to "
                                 "rewrite it if that is intended)", notes)
    new = [canonical_line(r) for r in trace.records]
    if new == old:
        return Comparison(True, "", notes)
    return Comparison(False, _report(golden_path, old, new, trace), notes)


def _report(golden_path: Path, old: list[str], new: list[str], trace: Trace) -> str:
    first = next((i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b),
                 min(len(old), len(new)))
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    changes = [op for op in matcher.get_opcodes() if op[0] != "equal"]
    removed = sum(i2 - i1 for tag, i1, i2, _, _ in changes if tag in ("delete", "replace"))
    added = sum(j2 - j1 for tag, _, _, j1, j2 in changes if tag in ("insert", "replace"))
    where = new[first] if first < len(new) else old[first]
    out = [f"event trace differs from {golden_path} at event {first + 1} of "
           f"{len(old)} (golden) / {len(new)} (now):",
           f"  first difference: {_describe(where)}"]
    if first < len(trace.states):
        out.append(f"  at that event (now): {trace.states[first]}")
    elif trace.states:
        out.append(f"  last event of the new run: {trace.states[-1]}")
    lo = max(0, first - CONTEXT)
    out.append("  golden:")
    for i in range(lo, min(len(old), first + CONTEXT + 1)):
        out.append(f"    {'>' if i == first else ' '} {i + 1:>6}  {_describe(old[i])}")
    if first >= len(old):
        out.append(f"    > {first + 1:>6}  (no more events)")
    out.append("  now:")
    for i in range(lo, min(len(new), first + CONTEXT + 1)):
        out.append(f"    {'>' if i == first else ' '} {i + 1:>6}  {_describe(new[i])}")
    if first >= len(new):
        out.append(f"    > {first + 1:>6}  (no more events)")
    out.append(f"  in all: {len(changes)} differing run(s), {removed} golden event(s) "
               f"missing or changed, {added} new or changed; "
               f"{max(len(changes) - 1, 0)} more after this one")
    out.append(f"  full trace: {obtained_path(golden_path)} (diff it with the golden; "
               "pytest --mos-update accepts it)")
    return "\n".join(out)
