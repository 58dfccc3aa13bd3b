"""Run mostool over the public capture corpus and compare it with tshark's ground truth.

The corpus is ``/work/shared/pcaps`` (see its README.md): 398 captures listed in MANIFEST.tsv,
and for 299 of them a truth file ``truth/<path>.json`` written by tshark 4.0.17. The
definitions this module checks are written down in ``tests/corpus/README.md``.

Running a capture
-----------------
Each capture runs in an engine worker process (``EngineWorker``: one per thread, two threads)
with a time limit, so that a hang or a hard crash of one capture is recorded (and the worker
replaced) and the rest go on. The worker runs the engine exactly as ``mostool flows --hash``
does (one MONITOR_STREAM socket, ``hash_streams``, no buffering) and answers with the flow
records, the engine's counters and, for the first frame of every truth stream, what the frame
decoder makes of it (to tell tunnels and foreign link types from misses). ``run_cli`` runs the
real command line on a capture and checks its contract: exit status 0 or 2, no traceback,
exactly one line on stderr for an unusable file. ``python corpus.py engine FILE`` runs one
capture the worker's way and prints the JSON (for debugging).

Comparing
---------
``compare`` matches our flows to tshark's streams by endpoints and frame numbers, decides which
stream directions are eligible, and compares each eligible direction's reassembled byte count
and SHA-256 with the truth's ``seqmap`` reassembly.
"""

from __future__ import annotations

import contextlib
import csv
import json
import multiprocessing
import os
import queue
import re
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "pcaps"
TRUTH = CORPUS / "truth"
HERE = Path(__file__).resolve().parent
KNOWN_DIFFERENCES = HERE / "KNOWN_DIFFERENCES.md"

HANG_SECONDS = 60.0
SUMMARY_LINES: list[str] = []       # the test run's agreement line, printed by conftest.py
SYN, RST, ACK = 0x02, 0x04, 0x10
WORKERS = 2

# what a stream is counted as when it is not compared (see README.md)
NOT_DECODED_LINKTYPE = "not decoded: link type"
NOT_DECODED_TUNNEL = "not decoded: tunnel"
NO_SYN = "does not begin with a SYN"
REASSEMBLIES_DISAGREE = "tshark reassemblies disagree"
EXCLUSIONS = (NOT_DECODED_LINKTYPE, NOT_DECODED_TUNNEL, NO_SYN, REASSEMBLIES_DISAGREE)


# -- the manifest and the truth ------------------------------------------------------------------

@dataclass(frozen=True)
class Capture:
    """One row of MANIFEST.tsv."""

    path: str                       # relative to CORPUS
    fmt: str
    linktypes: tuple[int, ...]
    packets: int | None
    tcp_streams: int
    tags: frozenset[str]

    @property
    def file(self) -> Path:
        return CORPUS / self.path

    @property
    def truth_file(self) -> Path:
        return TRUTH / (self.path + ".json")


def available() -> bool:
    return (CORPUS / "MANIFEST.tsv").is_file()


def manifest() -> list[Capture]:
    rows: list[Capture] = []
    with open(CORPUS / "MANIFEST.tsv", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            lts = tuple(int(m) for m in re.findall(r"\((\d+)\)", row["linktype(s)"]))
            rows.append(Capture(
                path=row["path"], fmt=row["format"], linktypes=lts,
                packets=int(row["packets"]) if row["packets"].isdigit() else None,
                tcp_streams=int(row["tcp_streams"] or 0),
                tags=frozenset(t.rstrip("*") for t in row["tags"].split(",") if t)))
    return rows


def load_truth(cap: Capture) -> dict[str, Any] | None:
    if not cap.truth_file.is_file():
        return None
    truth: dict[str, Any] = json.loads(cap.truth_file.read_text())
    return truth


# -- running one capture (in a worker process) -----------------------------------------------------

def engine_run(path: Path, wanted_frames: Iterable[int] = ()) -> dict[str, Any]:
    """Run the engine over one capture in this process, as ``mostool flows --hash`` does.

    Returns {"status": "ok" | "unusable" | "crash", "error", "records", "stats", "warnings",
    "frames"}; "frames" maps each wanted frame number to what the decoder makes of it."""
    from mostool.config import MonitorConfig
    from mostool.monitor import MONITOR_STREAM, Monitor
    from mostool.replay import CaptureError, ReplaySource

    out: dict[str, Any] = {"status": "ok", "error": "", "records": [], "stats": {},
                           "warnings": [], "frames": {}}
    try:
        source = ReplaySource([path])
    except CaptureError as exc:
        out["status"] = "unusable"
        out["error"] = str(exc)
        return out
    except Exception:  # noqa: BLE001 - anything else at open is a crash, not "unusable"
        out["status"] = "crash"
        out["error"] = traceback.format_exc()
        return out
    records: list[dict[str, Any]] = []
    try:
        mon = Monitor(MonitorConfig(hash_streams=True, rcvbuf=0))
        mon.socket(MONITOR_STREAM)
        mon.on_flow_end(lambda conn: records.append(conn.record()))
        stats = mon.run(source)
        out["stats"] = {k: v for k, v in stats.items() if isinstance(v, int)}
        out["warnings"] = list(mon.warnings)
    except Exception:  # noqa: BLE001 - a crash is what we are looking for
        out["status"] = "crash"
        out["error"] = traceback.format_exc()
    records.sort(key=lambda r: r["id"])
    out["records"] = records
    if out["status"] == "ok":
        try:
            out["frames"] = decode_frames(path, set(wanted_frames))
        except Exception:  # noqa: BLE001
            out["status"] = "crash"
            out["error"] = "decode pass: " + traceback.format_exc()
    return out


def decode_frames(path: Path, wanted: set[int]) -> dict[int, dict[str, Any]]:
    """What a fresh frame decoder (the engine's, run over every frame in order, so that IP
    fragments reassemble) makes of the wanted frames: link type, the TCP segment's endpoints,
    or the status and the decoder's reason."""
    from mostool.replay import ReplaySource
    from mostool.stack.decode import STATUS_NAMES, Decoder, format_addr

    found: dict[int, dict[str, Any]] = {}
    if not wanted:
        return found
    decoder = Decoder()
    last = max(wanted)
    for number, (ts, linktype, data, _wire) in enumerate(ReplaySource([path]).frames(), 1):
        if number > last:
            break
        seg = decoder.decode(linktype, data, ts)
        if number not in wanted:
            continue
        if isinstance(seg, int):
            found[number] = {"linktype": linktype, "status": STATUS_NAMES.get(seg, str(seg)),
                             "why": decoder.last_error}
        else:
            found[number] = {"linktype": linktype, "status": "tcp", "flags": seg.flags,
                             "src": format_addr(seg.src, seg.sport),
                             "dst": format_addr(seg.dst, seg.dport)}
    return found


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"]
                                     if env.get("PYTHONPATH") else "")
    env.pop("PYTHONWARNINGS", None)
    return env


def _serve(conn: Connection) -> None:
    """The engine worker's loop: (path, wanted frames) in, ``engine_run``'s dict out."""
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        path, frames = msg
        conn.send(engine_run(Path(path), frames))


class EngineWorker:
    """A child process that runs captures one at a time, replaced after a hang or a crash.

    ``run`` gives ``engine_run``'s dict plus "seconds"; a capture that takes longer than the
    limit is a "hang" (the child is killed), a child that dies without answering a "crash"."""

    def __init__(self, timeout: float = HANG_SECONDS) -> None:
        self.timeout = timeout
        self._ctx = multiprocessing.get_context("spawn")
        self._proc: Any = None
        self._conn: Connection | None = None

    def _start(self) -> Connection:
        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=_serve, args=(child,), daemon=True,
                                       name="corpus-engine")
        self._proc.start()
        child.close()
        self._conn = parent
        return parent

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.send(None)
            self._conn.close()
            self._conn = None
        if self._proc is not None:
            self._proc.join(5)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join()
            self._proc = None

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join()
            self._proc = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def run(self, cap: Capture) -> dict[str, Any]:
        conn = self._conn if self._conn is not None and self._proc is not None \
            and self._proc.is_alive() else self._start()
        truth = load_truth(cap)
        frames = sorted({s["first_frame"] for s in truth["tcp_streams"]}) if truth else []
        empty: dict[str, Any] = {"records": [], "stats": {}, "warnings": [], "frames": {}}
        start = time.monotonic()
        try:
            conn.send((str(cap.file), frames))
            if not conn.poll(self.timeout):
                self._kill()
                return {**empty, "status": "hang", "seconds": time.monotonic() - start,
                        "error": f"no answer after {self.timeout:.0f} s"}
            out: dict[str, Any] = conn.recv()
        except (EOFError, OSError) as exc:
            code = self._proc.exitcode if self._proc is not None else None
            self._kill()
            return {**empty, "status": "crash", "seconds": time.monotonic() - start,
                    "error": f"engine worker died (exit code {code}): {exc!r}"}
        out["seconds"] = time.monotonic() - start
        return out


def run_cli(path: Path, timeout: float = HANG_SECONDS) -> dict[str, Any]:
    """The real command line, ``python -m mostool flows -r FILE --hash``, on one capture.

    Returns {"returncode", "stdout_lines", "stderr", "records", "problems"}: problems lists
    every broken promise (exit status not 0/2, a traceback, an unusable file whose stderr is
    not exactly one line, output that is not JSON lines, a hang)."""
    cmd = [sys.executable, "-m", "mostool", "flows", "-r", str(path), "--hash"]
    problems: list[str] = []
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              cwd=REPO, env=_child_env())
    except subprocess.TimeoutExpired:
        return {"returncode": None, "stdout_lines": 0, "stderr": "", "records": [],
                "problems": [f"hang: no exit after {timeout:.0f} s"]}
    rc = proc.returncode
    err = proc.stderr
    if rc not in (0, 2):
        problems.append(f"exit status {rc}")
    if "Traceback (most recent call last)" in err:
        problems.append("traceback on stderr")
    if rc == 2 and len(err.splitlines()) != 1:
        problems.append(f"exit status 2 with {len(err.splitlines())} stderr lines, not 1")
    records: list[dict[str, Any]] = []
    for line in proc.stdout.splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            problems.append(f"stdout line is not JSON: {line[:80]!r}")
            break
    return {"returncode": rc, "stdout_lines": len(proc.stdout.splitlines()), "stderr": err,
            "records": records, "problems": problems}


def run_all(caps: Sequence[Capture], *, workers: int = WORKERS, cli: bool = True,
            progress: Callable[[str], None] | None = None
            ) -> dict[str, tuple[dict[str, Any], dict[str, Any] | None]]:
    """Engine (and, with ``cli``, command-line) runs of every capture, by path: ``workers``
    threads, each with its own engine worker process."""
    todo: queue.SimpleQueue[Capture] = queue.SimpleQueue()
    for cap in caps:
        todo.put(cap)
    done: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {}

    def drain() -> None:
        worker = EngineWorker()
        try:
            while True:
                try:
                    cap = todo.get_nowait()
                except queue.Empty:
                    return
                eng = worker.run(cap)
                c = run_cli(cap.file) if cli else None
                done[cap.path] = (eng, c)
                if progress is not None:
                    progress(cap.path)
        finally:
            worker.close()

    threads = [threading.Thread(target=drain, name=f"corpus-{i}")
               for i in range(max(1, workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {cap.path: done[cap.path] for cap in caps}


def evaluate(caps: Sequence[Capture] | None = None, *, workers: int = WORKERS, cli: bool = True,
             progress: Callable[[str], None] | None = None) -> list[FileResult]:
    """Run (engine and, with ``cli``, command line) and compare every capture."""
    caps = list(manifest() if caps is None else caps)
    runs = run_all(caps, workers=workers, cli=cli, progress=progress)
    results = []
    for cap in caps:
        run, cli_run = runs[cap.path]
        res = compare(cap, run, load_truth(cap))
        if cli_run is not None:
            check_cli(res, cli_run, run)
        results.append(res)
    return results


@dataclass
class Totals:
    files: int
    eligible: int
    agreed: int
    truth_wrong: int                # disagreeing directions KNOWN_DIFFERENCES.md marks "a"
    crashes: int
    hangs: int
    unusable: int
    cli_problems: int

    @property
    def rate(self) -> float:
        """Agreement over eligible directions, leaving out those where the truth itself is
        arguably wrong (category a)."""
        n = self.eligible - self.truth_wrong
        return self.agreed / n if n else 1.0

    @property
    def raw_rate(self) -> float:
        return self.agreed / self.eligible if self.eligible else 1.0

    def line(self) -> str:
        return (f"corpus: {self.agreed}/{self.eligible - self.truth_wrong} eligible stream "
                f"directions agree with tshark's seqmap ({100 * self.rate:.2f}%; raw "
                f"{self.agreed}/{self.eligible} = {100 * self.raw_rate:.2f}%, "
                f"{self.truth_wrong} where the truth is arguably wrong); {self.files} captures, "
                f"{self.crashes} crashes, {self.hangs} hangs, {self.unusable} unusable, "
                f"{self.cli_problems} with CLI problems")


def totals(results: Sequence[FileResult], known: list[Known] | None = None) -> Totals:
    known = known_differences() if known is None else known
    wrong = sum(1 for r in results for d in r.disagreements
                if any(k.covers(d.capture, d.stream, d.direction, "a") for k in known))
    return Totals(files=len(results), eligible=sum(r.eligible for r in results),
                  agreed=sum(r.agreed for r in results), truth_wrong=wrong,
                  crashes=sum(r.status == "crash" for r in results),
                  hangs=sum(r.status == "hang" for r in results),
                  unusable=sum(r.status == "unusable" for r in results),
                  cli_problems=sum(bool(r.cli_problems) for r in results))


# -- comparing with the truth --------------------------------------------------------------------

@dataclass
class Direction:
    """One eligible stream direction, compared."""

    capture: str
    stream: int
    direction: str                  # "ab" or "ba" (truth's: a = the first frame's source)
    ours: str | None                # "c2s" / "s2c", None when no flow matched
    flow_id: int | None
    got: dict[str, Any] | None      # our direction record
    want: dict[str, Any]            # truth's seqmap_ab / seqmap_ba
    note: str = ""

    @property
    def agrees(self) -> bool:
        return self.got is not None and self.got["bytes"] == self.want["bytes"] and \
            self.got["sha256"] == self.want["sha256"]

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.capture, self.stream, self.direction)

    def describe(self) -> str:
        want = self.want
        wgaps = want.get("gaps", [])
        truth = (f"truth {want['bytes']} B {want['sha256'][:12]} gaps {len(wgaps)}"
                 f"{' ' + str(wgaps[:4]) if wgaps else ''}")
        if self.got is None:
            return (f"{self.capture} stream {self.stream} {self.direction}: no flow "
                    f"({self.note}); {truth}")
        g = self.got
        return (f"{self.capture} stream {self.stream} {self.direction} (flow {self.flow_id} "
                f"{self.ours}): ours {g['bytes']} B {str(g['sha256'])[:12]} gaps {g['gaps']}"
                f"/{g['gap_bytes']} B rexmit {g['rexmit']} conflicts {g['overlap_conflicts']}; "
                f"{truth}")


@dataclass
class FileResult:
    """Everything learnt about one capture."""

    capture: Capture
    status: str                     # ok / unusable / crash / hang
    error: str = ""
    seconds: float = 0.0
    has_truth: bool = False
    directions: list[Direction] = field(default_factory=list)
    excluded: dict[str, list[int]] = field(default_factory=dict)   # reason -> streams
    extra_flows: list[dict[str, Any]] = field(default_factory=list)  # flows no stream matched
    flows: int = 0
    stats: dict[str, Any] = field(default_factory=dict)
    cli_problems: list[str] = field(default_factory=list)
    cli_mismatch: str = ""
    truth: dict[str, Any] | None = None

    @property
    def eligible(self) -> int:
        return len(self.directions)

    @property
    def agreed(self) -> int:
        return sum(d.agrees for d in self.directions)

    @property
    def disagreements(self) -> list[Direction]:
        return [d for d in self.directions if not d.agrees]


def _stream_decoded(s: dict[str, Any], frame: dict[str, Any] | None) -> bool:
    return frame is not None and frame.get("status") == "tcp" and \
        {frame["src"], frame["dst"]} == {s["a"], s["b"]}


def exclusion(cap: Capture, s: dict[str, Any], frame: dict[str, Any] | None) -> str | None:
    """Why truth stream ``s`` is not compared (None: it is). ``frame`` is what our decoder made
    of the stream's first frame. See README.md for the rules."""
    from mostool.stack.decode import SUPPORTED_LINKTYPES

    decoded = _stream_decoded(s, frame)
    if not decoded:
        lt = frame["linktype"] if frame is not None else (
            cap.linktypes[0] if len(cap.linktypes) == 1 else None)
        if lt is not None and lt not in SUPPORTED_LINKTYPES:
            return NOT_DECODED_LINKTYPE
        if "tunnel" in cap.tags and frame is not None and \
                frame["status"] in ("not_tcp", "not_ip"):
            return NOT_DECODED_TUNNEL
    if decoded and frame is not None:
        if frame["flags"] & (SYN | ACK | RST) != SYN:
            return NO_SYN
    elif not s["syn"]:
        return NO_SYN
    if not s["follow_matches_seqmap"]:
        return REASSEMBLIES_DISAGREE
    return None


def match_flows(streams: list[dict[str, Any]], records: list[dict[str, Any]]
                ) -> dict[int, dict[str, Any]]:
    """Truth stream number -> our flow record.

    A flow belongs to the stream with the same two endpoints that started last at or before the
    flow's first packet (and has not ended before it): tshark starts a new stream number when a
    4-tuple is reused. Where several of our flows belong to one stream (we end a flow at an RST
    that tshark does not split on, say), the stream is compared with the one that delivered the
    most bytes, the earliest of equals; the others are "extra" flows."""
    by_pair: dict[frozenset[str], list[dict[str, Any]]] = {}
    for s in streams:
        by_pair.setdefault(frozenset((s["a"], s["b"])), []).append(s)
    owners: dict[int, list[dict[str, Any]]] = {}
    for r in records:
        best = None
        for s in by_pair.get(frozenset((r["client"], r["server"])), []):
            if s["first_frame"] <= r["first_packet"] <= s["last_frame"] and (
                    best is None or s["first_frame"] > best["first_frame"]):
                best = s
        if best is not None:
            owners.setdefault(best["stream"], []).append(r)
    return {stream: max(flows, key=lambda r: (r["c2s"]["bytes"] + r["s2c"]["bytes"],
                                              -r["first_packet"]))
            for stream, flows in owners.items()}


def compare(cap: Capture, run: dict[str, Any], truth: dict[str, Any] | None) -> FileResult:
    res = FileResult(capture=cap, status=run["status"], error=run.get("error", ""),
                     seconds=run.get("seconds", 0.0), has_truth=truth is not None,
                     stats=run.get("stats", {}), truth=truth)
    records: list[dict[str, Any]] = run.get("records", [])
    res.flows = len(records)
    if truth is None or run["status"] != "ok":
        return res
    streams: list[dict[str, Any]] = truth["tcp_streams"]
    matched = match_flows(streams, records)
    frames: dict[int, dict[str, Any]] = run.get("frames", {})
    used = {id(r) for r in matched.values()}
    res.extra_flows = [r for r in records if id(r) not in used]
    for s in streams:
        why = exclusion(cap, s, frames.get(s["first_frame"]))
        if why is not None:
            res.excluded.setdefault(why, []).append(s["stream"])
            continue
        rec = matched.get(s["stream"])
        for d in ("ab", "ba"):
            want = s["seqmap_" + d]
            if rec is None:
                f = frames.get(s["first_frame"])
                note = ("first frame decoded" if _stream_decoded(s, f) else
                        f"first frame {s['first_frame']} not decoded: "
                        f"{(f or {}).get('status')} {(f or {}).get('why', '')}")
                res.directions.append(Direction(cap.path, s["stream"], d, None, None, None,
                                                want, note))
                continue
            a_is_client = rec["client"] == s["a"]
            ours = ("c2s" if d == "ab" else "s2c") if a_is_client else \
                ("s2c" if d == "ab" else "c2s")
            res.directions.append(Direction(cap.path, s["stream"], d, ours, rec["id"],
                                            rec[ours], want))
    return res


def check_cli(res: FileResult, cli: dict[str, Any], run: dict[str, Any]) -> None:
    """Record the CLI's broken promises, and whether its flows differ from the in-process
    run's (they are the same engine with the same configuration)."""
    res.cli_problems = list(cli["problems"])
    if run["status"] == "unusable" and cli["returncode"] != 2:
        res.cli_problems.append(f"unusable file, but exit status {cli['returncode']}")
    if run["status"] == "ok" and cli["returncode"] == 0:
        ours = sorted(run["records"], key=lambda r: r["id"])
        theirs = sorted(cli["records"], key=lambda r: r["id"])
        if ours != theirs:
            res.cli_mismatch = (f"CLI printed {len(theirs)} flows, in-process run ended "
                                f"{len(ours)}; records differ")


# -- counts: orphans and connections -------------------------------------------------------------

def counts_comparable(res: FileResult) -> str | None:
    """Why this file's orphan and connection counts are not compared (None: they are); see
    README.md for the definitions."""
    from mostool.stack.decode import SUPPORTED_LINKTYPES

    cap = res.capture
    t = res.truth
    if t is None or res.status != "ok":
        return "no truth or no run"
    if "tshark_error" in t:
        return "tshark stopped early"
    if not cap.linktypes or any(lt not in SUPPORTED_LINKTYPES for lt in cap.linktypes):
        return "a link type we do not decode"
    if "tunnel" in cap.tags:
        return "tunnels"
    return None


def our_non_stream_frames(stats: dict[str, Any]) -> int:
    """Frames that carry no TCP segment for us: not IP, not TCP, malformed, an unknown link
    type, or an IP fragment that did not complete a TCP segment."""
    return int(stats["packets"] - stats["tcp_packets"])


def syn_streams(truth: dict[str, Any]) -> int:
    """tshark streams in which a SYN (without ACK) was seen: each should be one of our flows."""
    return sum(1 for s in truth["tcp_streams"] if s["syn"])


@dataclass(frozen=True)
class CountDiff:
    capture: str
    what: str                       # "orphans" or "flows"
    ours: int
    truth: int

    @property
    def delta(self) -> int:
        return self.ours - self.truth

    def describe(self) -> str:
        name = "frames without a TCP segment" if self.what == "orphans" else "flows"
        truth = "tshark non_tcp_packets" if self.what == "orphans" else "tshark SYN streams"
        return f"{self.capture}: {name} ours {self.ours}, {truth} {self.truth} " \
               f"({self.what}{self.delta:+d})"


def count_differences(res: FileResult) -> list[CountDiff]:
    """Orphan and connection counts that differ from the truth (comparable files only)."""
    if counts_comparable(res) is not None or res.truth is None:
        return []
    out = []
    ours_o, want_o = our_non_stream_frames(res.stats), int(res.truth["non_tcp_packets"])
    if ours_o != want_o:
        out.append(CountDiff(res.capture.path, "orphans", ours_o, want_o))
    ours_c, want_c = res.flows, syn_streams(res.truth)
    if ours_c != want_c:
        out.append(CountDiff(res.capture.path, "flows", ours_c, want_c))
    return out


# -- KNOWN_DIFFERENCES.md ------------------------------------------------------------------------

@dataclass(frozen=True)
class Known:
    """One row of KNOWN_DIFFERENCES.md: | capture | stream | dir | category | reason |.

    ``stream`` is a tshark stream number or "*" (every stream of the file); ``direction`` is
    "ab", "ba", "both" or "*" for a stream difference, or "orphans+N" / "flows-N" for a count
    difference (ours minus the truth's, exactly)."""

    capture: str
    stream: str
    direction: str
    category: str                   # a, b or d (c, our bugs, are never listed)
    reason: str

    def covers(self, capture: str, stream: int, direction: str, categories: str = "ab"
               ) -> bool:
        """Whether this row explains a difference on that stream direction; stream
        disagreements need category a or b, streams not decoded category d."""
        return self.category in categories and self.capture == capture and \
            self.stream in ("*", str(stream)) and self.direction in ("*", "both", direction)

    def covers_count(self, diff: CountDiff) -> bool:
        return self.category in "ab" and self.capture == diff.capture and \
            self.direction == f"{diff.what}{diff.delta:+d}"

    @property
    def is_count(self) -> bool:
        return self.direction.startswith(("orphans", "flows"))


_ROW = re.compile(r"^\|\s*`?([^|`]+?)`?\s*\|\s*([^|]+?)\s*\|\s*([^|]+?)\s*\|\s*([abcd])\s*\|"
                  r"\s*(.*?)\s*\|\s*$")


def known_differences(path: Path = KNOWN_DIFFERENCES) -> list[Known]:
    """The table rows of KNOWN_DIFFERENCES.md (a stream list "3,14" gives one row each)."""
    rows: list[Known] = []
    if not path.is_file():
        return rows
    for line in path.read_text().splitlines():
        m = _ROW.match(line.strip())
        if m is None:
            continue
        capture, streams, direction, category, reason = m.groups()
        for st in streams.split(","):
            rows.append(Known(capture.strip(), st.strip(), direction.strip(), category,
                              reason))
    return rows


def unlisted(diffs: Iterable[Direction], known: list[Known]) -> list[Direction]:
    return [d for d in diffs
            if not any(k.covers(d.capture, d.stream, d.direction) for k in known)]


def unlisted_counts(diffs: Iterable[CountDiff], known: list[Known]) -> list[CountDiff]:
    return [d for d in diffs if not any(k.covers_count(d) for k in known)]


def unlisted_not_decoded(results: Iterable[FileResult], known: list[Known]
                         ) -> list[tuple[str, int, str]]:
    return [(c, s, why) for c, s, why in not_decoded(results)
            if not any(k.covers(c, s, "ab", "d") for k in known)]


def not_decoded(results: Iterable[FileResult]) -> list[tuple[str, int, str]]:
    """(capture, stream, reason) of every stream left out because we do not decode it."""
    return [(r.capture.path, s, why) for r in results
            for why in (NOT_DECODED_LINKTYPE, NOT_DECODED_TUNNEL)
            for s in r.excluded.get(why, [])]


def stale(results: list[FileResult], known: list[Known]) -> list[Known]:
    """Rows of KNOWN_DIFFERENCES.md that no longer match anything (fixed, or a typo)."""
    diffs = [d for r in results for d in r.disagreements]
    counts = [c for r in results for c in count_differences(r)]
    nd = not_decoded(results)
    out = []
    for k in known:
        if k.is_count:           # stale when that count agrees now (a different delta is a
            hit = any(c.capture == k.capture and k.direction.startswith(c.what)  # new bug)
                      for c in counts)
        elif k.category == "d":
            hit = any(k.covers(c, s, "ab", "d") for c, s, _ in nd)
        else:
            hit = any(k.covers(d.capture, d.stream, d.direction) for d in diffs)
        if not hit:
            out.append(k)
    return out


# -- the child process ---------------------------------------------------------------------------

def _main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "engine":
        wanted = [int(x) for x in argv[2].split(",")] if len(argv) > 2 and argv[2] else []
        out = engine_run(Path(argv[1]), wanted)
        sys.stdout.write(json.dumps(out))
        return 0
    sys.stderr.write("usage: corpus.py engine FILE [FRAME,FRAME...]\n")
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
