"""mostool's throughput and memory benchmark, as ratios to sol.py measured in one run.

    .venv/bin/python benchmarks/run.py [--cases 1,1p,1n,1b,1s,2,2s,3,3s,4,4p,4s,5,idle,syn]
                                       [--traces DIR] [--repeat N] [--no-append]

Every timed case is a whole process, run alternately with the yardstick ``sol.py`` on the same
trace (ref, case, ref, case, ...), so that load from other processes hits both alike. Times are
CPU seconds (user + sys of the process and its children, from ``os.wait4``); "x sol" is the
median over the N pairs of case/ref; absolute times are the minimum of N. Peak memory is the
kernel's max RSS (``ru_maxrss``) and the peak anonymous RSS (``RssAnon`` summed over the
process tree, sampled every 20 ms): a memory-mapped capture's pages count in the first, not in
the second. The table is printed and appended, with the commit and the date, to results.md.
See README.md beside this file.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as dt
import io
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = REPO.parent / "shared" / "bench"
SOL = SHARED / "sol.py"
MAKE_TRACES = SHARED / "make_traces.sh"
PY = sys.executable
ALL_CASES = ("1", "1p", "1n", "1b", "1s", "2", "2s", "3", "3s", "4", "4p", "4s", "5", "idle",
             "syn")
TRACE_FILES = {"web": "web.pcap", "bulk": "bulk.pcap", "syn": "synflood.pcap",
               "webng": "web.pcapng"}


def _clean_env() -> dict[str, str]:
    """The environment of every measured process (mostool and sol.py alike): this one, without
    PYTHONUNBUFFERED (a syscall per line written: 21,000 flow records) and
    PYTHONDONTWRITEBYTECODE (every module compiled at each start), which this machine's
    environment sets and a user's shell normally does not."""
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE")}


class Src:
    """Which mostool the case processes import: the working tree, or (``--at REV``) a commit's
    ``mostool/`` extracted with ``git archive`` and put first on PYTHONPATH (the processes then
    run in that directory, so ``-m mostool`` cannot pick up the working tree)."""

    env: dict[str, str] = _clean_env()
    cwd: Path = REPO
    label: str | None = None

    @classmethod
    def at(cls, rev: str) -> None:
        r = subprocess.run(["git", "archive", rev, "mostool"], capture_output=True, cwd=REPO)
        if r.returncode != 0:
            raise SystemExit(f"run.py: git archive {rev}: {r.stderr.decode().strip()}")
        root = Path(tempfile.mkdtemp(prefix=f"mostool-at-{rev}-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tar:
            tar.extractall(root, filter="data")
        cls.env = dict(_clean_env(), PYTHONPATH=str(root))
        cls.cwd = root
        cls.label = _git("rev-parse", "--short", rev)


# -- measuring one process --------------------------------------------------------------------

@dataclass
class Run:
    wall: float
    cpu: float
    maxrss_kb: int
    peak_anon_kb: int
    peak_procs: int
    rc: int
    stdout: str
    stderr: str


def _status_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, RssAnon) of one process in kB; (0, 0) if it is gone."""
    rss = anon = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("RssAnon:"):
                    anon = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return rss, anon


def _tree(pid: int) -> list[int]:
    pids = [pid]
    i = 0
    while i < len(pids):
        p = pids[i]
        i += 1
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    pids.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return pids


def measure(argv: list[str], stdout_to_null: bool = False, pure: bool = False) -> Run:
    """Run ``argv`` to completion; its CPU time, wall time and memory."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        null = open(os.devnull, "w")  # noqa: SIM115 - closed below
        try:
            t0 = time.perf_counter()
            proc = subprocess.Popen(argv, stdout=null if stdout_to_null else out, stderr=err,
                                    cwd=Src.cwd,
                                    env=dict(Src.env, MOSTOOL_PURE="1") if pure else Src.env)
            peak = {"anon": 0, "procs": 1}
            done = threading.Event()

            def sample() -> None:
                while not done.wait(0.02):
                    pids = _tree(proc.pid)
                    anon = sum(_status_kb(p)[1] for p in pids)
                    peak["anon"] = max(peak["anon"], anon)
                    peak["procs"] = max(peak["procs"], len(pids))

            poller = threading.Thread(target=sample, daemon=True)
            poller.start()
            _, status, ru = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - t0
            done.set()
            poller.join()
            proc.returncode = os.waitstatus_to_exitcode(status)
        finally:
            null.close()
        out.seek(0)
        err.seek(0)
        return Run(wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss, peak["anon"], peak["procs"],
                   proc.returncode, out.read(), err.read())


# -- cases ------------------------------------------------------------------------------------

@dataclass
class Case:
    id: str
    title: str
    trace: str                       # key of TRACE_FILES
    argv: list[str]                  # after the interpreter; {trace} is replaced
    refs: list[list[str]]            # sol.py options; refs[0] is what the ratio is against
    target: str
    ratio_on: str = "cpu"            # "cpu" or "wall"
    baseline: str | None = None      # a case id run in the same rotation (speedup)
    implemented: bool = True
    once: bool = False               # a memory case: one run, whatever --repeat says
    pure: bool = False               # run with MOSTOOL_PURE=1 (the interpreted engine)
    ref_trace: str | None = None     # the trace sol.py and the baseline read (default trace)


def _cases() -> dict[str, Case]:
    flows = ["-m", "mostool", "flows", "-r", "{trace}"]
    cases = [
        Case("1", "mostool flows (CLI defaults)", "web", flows, [[]], "<= 1.0"),
        Case("1p", "case 1 on the pure-Python engine (MOSTOOL_PURE=1)", "web", flows, [[]],
             "-", pure=True),
        Case("1b", "mostool flows --rcvbuf 1048576 (buffering on)", "web",
             flows + ["--rcvbuf", "1048576"], [[]], "-"),
        Case("2", "+ callbacks on ON_PKT_IN and ON_TCP_STATE_CHANGE", "web",
             [str(HERE / "cases" / "callbacks.py"), "{trace}"], [[]], "<= 1.5"),
        Case("3", "+ UDE on ON_CONN_NEW_DATA, filter ppeeks each chunk", "web",
             [str(HERE / "cases" / "ude_ppeek.py"), "{trace}"], [[]], "<= 2.0"),
        Case("4", "mostool flows --hash", "bulk", flows + ["--hash"], [["--reasm"], []],
             "<= 1.5"),
        Case("4p", "case 4 on the pure-Python engine (MOSTOOL_PURE=1)", "bulk",
             flows + ["--hash"], [["--reasm"], []], "-", pure=True),
        # what-ifs: the same work without TCP checksum verification (--checksums skip), the
        # one cost pure CPython cannot make small (~2.2 us per full-size segment)
        Case("1s", "case 1 with --checksums skip", "web", flows + ["--checksums", "skip"],
             [[]], "-"),
        Case("2s", "case 2 with checksums skip", "web",
             [str(HERE / "cases" / "callbacks.py"), "{trace}", "--checksums", "skip"], [[]],
             "-"),
        Case("3s", "case 3 with checksums skip", "web",
             [str(HERE / "cases" / "ude_ppeek.py"), "{trace}", "--checksums", "skip"], [[]],
             "-"),
        Case("4s", "case 4 with --checksums skip", "bulk",
             flows + ["--hash", "--checksums", "skip"], [["--reasm"], []], "-"),
        Case("5", "mostool flows --workers 2", "web", flows + ["--workers", "2"], [[]],
             ">= 1.8x faster than 1 worker", ratio_on="wall", baseline="1"),
        # the web trace as pcapng (editcap -F pcapng), against case 1 on the classic file
        Case("1n", "case 1 on the web trace as pcapng", "webng", flows, [[]],
             "<= +10 % of case 1's CPU", baseline="1", ref_trace="web"),
        Case("syn", "SYN flood, 1M half-open flows (default max_flows)", "syn",
             [str(HERE / "cases" / "synflood_run.py"), "{trace}"], [[]], "bounded", once=True),
        Case("syn100k", "SYN flood, max_flows=100000", "syn",
             [str(HERE / "cases" / "synflood_run.py"), "{trace}", "--max-flows", "100000"],
             [[]], "bounded", once=True),
    ]
    return {c.id: c for c in cases}


def _workers_supported() -> bool:
    r = subprocess.run([PY, "-m", "mostool", "flows", "--help"], capture_output=True,
                       text=True, cwd=Src.cwd, env=Src.env)
    return "--workers" in r.stdout


# -- traces -----------------------------------------------------------------------------------

def ensure_traces(tdir: Path, needed: set[str]) -> None:
    tdir.mkdir(parents=True, exist_ok=True)
    if any(not (tdir / TRACE_FILES[t]).exists() for t in needed & {"web", "bulk"}):
        if os.geteuid() != 0:
            raise SystemExit(f"run.py: {tdir} lacks web.pcap/bulk.pcap and make_traces.sh "
                             "needs root (network namespaces); run as root once")
        if not MAKE_TRACES.exists():
            raise SystemExit(f"run.py: {MAKE_TRACES} not found")
        missing = [tool for tool in ("ip", "ethtool", "tcpdump") if shutil.which(tool) is None]
        if missing:
            raise SystemExit(f"run.py: make_traces.sh needs {', '.join(missing)}: "
                             "`make deb` (as root) installs them")
        print(f"making traces in {tdir} (about 40 s, 2.4 GB) ...", flush=True)
        subprocess.run(["bash", str(MAKE_TRACES), "all", str(tdir)], check=True, cwd=REPO)
    if "webng" in needed and not (tdir / TRACE_FILES["webng"]).exists():
        if shutil.which("editcap") is None:
            raise SystemExit("run.py: case 1n needs editcap (Debian: wireshark-common; "
                             "`make deb` as root installs it)")
        print("writing web.pcapng from web.pcap (editcap -F pcapng) ...", flush=True)
        subprocess.run(["editcap", "-F", "pcapng", str(tdir / TRACE_FILES["web"]),
                        str(tdir / TRACE_FILES["webng"])], check=True)
    if "syn" in needed and not (tdir / TRACE_FILES["syn"]).exists():
        print("writing synflood.pcap (1,000,000 SYNs, about 10 s) ...", flush=True)
        subprocess.run([PY, str(HERE / "synflood.py"), str(tdir / TRACE_FILES["syn"])],
                       check=True, cwd=REPO)


# -- running ----------------------------------------------------------------------------------

@dataclass
class Result:
    case: Case
    runs: list[Run] = field(default_factory=list)
    refs: list[list[Run]] = field(default_factory=list)       # per ref option set
    base: list[Run] = field(default_factory=list)             # baseline case (speedup)
    packets: int = 0
    error: str = ""


def _sol_argv(opts: list[str], trace: Path) -> list[str]:
    return [PY, str(SOL), *opts, str(trace)]


def _case_argv(case: Case, trace: Path) -> list[str]:
    return [PY] + [a.replace("{trace}", str(trace)) for a in case.argv]


def _check(run: Run, what: str) -> None:
    if run.rc != 0:
        tail = (run.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        raise RuntimeError(f"{what} exited with {run.rc}: {tail}")


def run_case(case: Case, cases: dict[str, Case], tdir: Path, repeat: int) -> Result:
    res = Result(case, refs=[[] for _ in case.refs])
    if not case.implemented:
        return res
    trace = tdir / TRACE_FILES[case.trace]
    ref_trace = tdir / TRACE_FILES[case.ref_trace or case.trace]
    base = cases[case.baseline] if case.baseline else None
    to_null = "mostool" in case.argv
    repeat = 1 if case.once else repeat
    try:
        for i in range(repeat):
            for k, opts in enumerate(case.refs):
                r = measure(_sol_argv(opts, ref_trace))
                _check(r, "sol.py")
                res.refs[k].append(r)
                m = re.search(r"packets=(\d+)", r.stdout)
                res.packets = int(m.group(1)) if m else 0
                if k == 0:
                    if base is not None:
                        b = measure(_case_argv(base, ref_trace), stdout_to_null=True)
                        _check(b, f"case {base.id}")
                        res.base.append(b)
                    r = measure(_case_argv(case, trace), stdout_to_null=to_null,
                                pure=case.pure)
                    _check(r, f"case {case.id}")
                    res.runs.append(r)
            print(f"  case {case.id} run {i + 1}/{repeat}: {_progress(res)}", flush=True)
    except RuntimeError as exc:
        res.error = str(exc)
    return res


def _t(run: Run, on: str) -> float:
    return run.wall if on == "wall" else run.cpu


def _ratio(res: Result, k: int = 0, on: str | None = None) -> float:
    on = on or res.case.ratio_on
    pairs = zip(res.runs, res.refs[k], strict=False)
    return statistics.median(_t(r, on) / _t(s, on) for r, s in pairs)


def _progress(res: Result) -> str:
    r, s = res.runs[-1], res.refs[0][-1]
    return (f"{r.cpu:.2f} s CPU ({r.wall:.2f} s wall) vs sol {s.cpu:.2f} s: "
            f"{r.cpu / s.cpu:.2f}x")


# -- memory: idle flows -----------------------------------------------------------------------

def run_idle(flows: int) -> dict[str, Any]:
    r = measure([PY, str(HERE / "cases" / "idle_flows.py"), "--flows", str(flows)])
    if r.rc != 0:
        return {"error": (r.stderr.strip().splitlines() or ["?"])[-1]}
    out: dict[str, Any] = json.loads(r.stdout)
    return out


# -- report -----------------------------------------------------------------------------------

def _git(*args: str) -> str:
    r = subprocess.run(["git", *args], capture_output=True, text=True, cwd=REPO)
    return r.stdout.strip()


def commit_label() -> str:
    if Src.label:
        return Src.label
    label = _git("rev-parse", "--short", "HEAD") or "unknown"
    if _git("status", "--porcelain", "--", "mostool"):
        label += "+dirty"
    return label


def _mb(kb: int) -> str:
    return f"{kb / 1024:.0f}"


def timing_table(results: list[Result]) -> list[str]:
    lines = [
        "| case | what | trace | vs | CPU s | sol CPU s | × sol | × sol (wall) | packets/s "
        "| max RSS MB | peak anon MB | target |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for res in results:
        c = res.case
        ref = "sol.py " + " ".join(c.refs[0]) if c.refs[0] else "sol.py"
        head = f"| {c.id} | {c.title} | {TRACE_FILES[c.trace]} | {ref.strip()} "
        if not c.implemented:
            lines.append(head + "| not implemented | | | | | | | " + c.target + " |")
            continue
        if res.error or not res.runs:
            lines.append(head + f"| failed: {res.error} | | | | | | | {c.target} |")
            continue
        cpu = min(r.cpu for r in res.runs)
        sol = min(r.cpu for r in res.refs[0])
        t = min(_t(r, c.ratio_on) for r in res.runs)
        pps = res.packets / t if t else 0.0
        lines.append(
            head + f"| {cpu:.2f} | {sol:.2f} | **{_ratio(res):.2f}** "
            f"| {_ratio(res, on='wall'):.2f} | {pps / 1e3:,.0f} k "
            f"| {_mb(max(r.maxrss_kb for r in res.runs))} "
            f"| {_mb(max(r.peak_anon_kb for r in res.runs))} | {c.target} |")
    return lines


def notes(results: list[Result]) -> list[str]:
    out: list[str] = []
    for res in results:
        c = res.case
        if not c.implemented or not res.runs:
            if not c.implemented:
                out.append(f"- case {c.id}: `--workers` is not an option of `mostool flows` "
                           "yet: not implemented.")
            continue
        checks = [ln for ln in res.runs[-1].stderr.splitlines() if ln.startswith("check:")]
        if checks:
            out.append(f"- case {c.id}: {checks[-1][len('check: '):]}")
        for k in range(1, len(c.refs)):
            opts = " ".join(c.refs[k]) or "(no options)"
            sol = min(r.cpu for r in res.refs[k])
            out.append(f"- case {c.id} vs `sol.py {opts}` on the same trace: "
                       f"{_ratio(res, k):.2f}× (sol {sol:.2f} s CPU)")
        if res.base and "--workers" not in c.argv:
            c1 = min(r.cpu for r in res.base)
            c2 = min(r.cpu for r in res.runs)
            out.append(f"- case {c.id}: CPU {c2:.2f} s vs {c1:.2f} s for case {c.baseline} in "
                       f"the same rotation: **{(c2 / c1 - 1) * 100:+.1f} %**")
        elif res.base:
            w1 = statistics.median(r.wall for r in res.base)
            w2 = statistics.median(r.wall for r in res.runs)
            c1 = min(r.cpu for r in res.base)
            c2 = min(r.cpu for r in res.runs)
            n = int(c.argv[c.argv.index("--workers") + 1]) if "--workers" in c.argv else 1
            out.append(f"- case {c.id}: wall {w2:.2f} s vs {w1:.2f} s with 1 worker (case "
                       f"{c.baseline}): **{w1 / w2:.2f}× faster**; CPU {c2:.2f} s in all vs "
                       f"{c1:.2f} s, so with {n} idle cores at best {c1 / (c2 / n):.2f}× "
                       f"(case {c.baseline} CPU / (case {c.id} CPU / {n})); max "
                       f"{res.runs[-1].peak_procs} processes; load average now "
                       f"{os.getloadavg()[0]:.2f}")
        if c.trace == "syn" and res.runs[-1].stdout.strip():
            try:
                j = json.loads(res.runs[-1].stdout)
                lf = j["kb_at_last_frame"]
                out.append(
                    f"- case {c.id}: max_flows={j['max_flows']:,}, {j['flows']:,} flows, "
                    f"{j['evicted']:,} evicted, {j['active_at_last_frame']:,} open at the "
                    f"last frame, RSS then {_mb(lf['VmRSS'])} MB (anon {_mb(lf['RssAnon'])} "
                    f"MB) ≈ {lf['RssAnon'] * 1024 / max(j['active_at_last_frame'], 1):,.0f} "
                    "anon bytes per open flow")
            except (ValueError, KeyError):
                pass
    return out


def idle_lines(idle: dict[str, Any]) -> list[str]:
    if "error" in idle:
        return [f"- bytes per idle flow: failed: {idle['error']}"]
    sites = idle.get("sites", [])
    top = ", ".join(f"{s[0]} {s[1]:.0f} B" for s in sites[:8])
    return [
        f"- bytes per idle established flow ({idle['flows']:,} flows after SYN, SYN/ACK, ACK; "
        f"default MonitorConfig, one listener, no callbacks): "
        f"**{idle['traced_bytes_per_flow']:,.0f} B traced by tracemalloc**, "
        f"{idle['rss_anon_bytes_per_flow']:,.0f} B of anonymous RSS, "
        f"{idle.get('gc_tracked_objects_per_flow', 0):.0f} GC-tracked objects; biggest holders "
        f"(bytes per flow): {top}",
    ]


def _engine_text() -> str:
    r = subprocess.run([PY, "-c", "import mostool; print(mostool.version_text())"],
                       capture_output=True, text=True, cwd=Src.cwd, env=Src.env)
    return r.stdout.strip() or "mostool (version unknown: no version_text)"


def header(label: str, repeat: int, tdir: Path, load0: tuple[float, float, float]
           ) -> list[str]:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                       cpu)
    except OSError:
        pass
    load1 = os.getloadavg()
    return [
        f"## {now} — commit {label}",
        "",
        f"Engine: {_engine_text()} (rows 1p, 4p: MOSTOOL_PURE=1).",
        "",
        f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
        f"--repeat {repeat}, traces in {tdir}; load average {load0[0]:.2f} at start, "
        f"{load1[0]:.2f} at end. CPU s = min over runs of user+sys; × sol = median of "
        "case/sol over alternating pairs (wall-clock for case 5).",
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(ALL_CASES),
                    help=f"comma-separated case ids (default: {','.join(ALL_CASES)})")
    ap.add_argument("--traces", type=Path, default=HERE / "traces",
                    help="directory of web.pcap, bulk.pcap, synflood.pcap (made when missing)")
    ap.add_argument("--repeat", type=int, default=3, help="alternating pairs per case")
    ap.add_argument("--idle-flows", type=int, default=100_000,
                    help="flows for the bytes-per-idle-flow measurement")
    ap.add_argument("--at", metavar="REV", default=None,
                    help="measure the mostool/ of a commit (git archive) instead of the tree")
    ap.add_argument("--no-append", action="store_true", help="do not append to results.md")
    ap.add_argument("--results", type=Path, default=HERE / "results.md")
    args = ap.parse_args(argv)
    wanted = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in ALL_CASES]
    if unknown or args.repeat < 1:
        ap.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(ALL_CASES)}"
                 if unknown else "--repeat must be >= 1")
    if args.at:
        Src.at(args.at)
    cases = _cases()
    if "5" in wanted:
        cases["5"].implemented = _workers_supported()
    timed = [cases[c] for c in wanted if c in cases and c != "syn"]
    if "syn" in wanted:
        timed += [cases["syn"], cases["syn100k"]]
    label = commit_label()           # before the run: HEAD may move while it runs
    tdir = args.traces.resolve()
    ensure_traces(tdir, {t for c in timed if c.implemented for t in (c.trace, c.ref_trace)
                         if t is not None})
    load0 = os.getloadavg()
    results: list[Result] = []
    for case in timed:
        print(f"case {case.id}: {case.title}", flush=True)
        results.append(run_case(case, cases, tdir, args.repeat))
    idle: dict[str, Any] | None = None
    if "idle" in wanted:
        print(f"idle: {args.idle_flows:,} established flows in-process", flush=True)
        idle = run_idle(args.idle_flows)
    lines = header(label, args.repeat, tdir, load0)
    if results:
        lines += timing_table(results) + [""]
    extra = notes(results) + (idle_lines(idle) if idle is not None else [])
    if extra:
        lines += extra + [""]
    text = "\n".join(lines)
    print()
    print(text)
    if not args.no_append:
        new = not args.results.exists()
        with args.results.open("a") as f:
            if new:
                f.write("# Benchmark results\n\nAppended by `benchmarks/run.py` (see README.md"
                        "), newest last. Ratios are to `sol.py` on the same trace, measured "
                        "alternately in the same run.\n\n")
            f.write(text + "\n")
        print(f"appended to {args.results}")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
