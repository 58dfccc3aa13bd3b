"""Profile one benchmark case: where each packet's time goes.

    .venv/bin/python benchmarks/profile_case.py CASE [--traces DIR] [--tool spy,cprofile,gc]
                                               [--rate 250] [--top 25] [--out DIR]

CASE is a run.py case id (1, 1b, 2, 3, 4, syn ...). Tools:

spy       py-spy (``.venv/bin/pip install py-spy``) samples the case's process at --rate Hz;
          samples are charged to a cost category (reader, decode, checksum, table lookup,
          PacketInfo, state update, stream receive, dispatch, flow creation, flow end ...) by
          the outermost frame that names one: a function's own category, or, for the
          engine's pipeline functions (Monitor.run, Engine.process, Engine._packet), the
          category of the source line being executed. Printed as shares and as µs per packet
          of an unprofiled run's CPU time, then the hottest functions and lines.
cprofile  cProfile's table (calls, own time, per-call time): exact call counts, biased times.
gc        the case in-process with gc.callbacks: collections and seconds per generation.
floors    what the layers under the engine cost on the case's trace, as whole processes
          alternating with sol.py: the replay reader alone, + Decoder.decode, + a dict lookup
          of the flow key, + tcp_checksum_ok (µs/packet of CPU and x sol).

Raw outputs (py-spy collapsed stacks, .cprof) are kept in --out (default /tmp/mostool-prof).
"""

from __future__ import annotations

import argparse
import collections
import linecache
import os
import re
import runpy
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402

CASE_SCRIPTS = {p.name for p in (Path(__file__).resolve().parent / "cases").glob("*.py")}
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):(?P<line>\d+)\)$")

# A function's own category (matched on the qualified name py-spy prints).
FUNC_CATEGORY: list[tuple[str, str]] = [
    (r"^(_pcap_frames|pcapng_frames|ReplaySource\.|_Filtered\.frames|Probe\.frames)",
     "reader"),
    (r"^(tcp_checksum_ok|_mod_ffff)$", "checksum"),
    (r"^(Decoder\.|_Datagram\.)", "decode"),
    (r"^Engine\._new_flow$", "flow creation"),
    (r"^Engine\._evict_one$", "flow eviction"),
    (r"^(Engine\._end|Engine\.finish|Monitor\._flow_ended|FlowLog\.|Connection\.record)",
     "flow end + flow record"),
    (r"^Engine\._fire_due$", "timers"),
    (r"^(Engine\._syn_bookkeeping|parse_tcp_options|Engine\._same_connection)$",
     "SYN bookkeeping (options, ISN)"),
    (r"^(Engine\._sender_update|Engine\._receiver_inputs|Engine\._settle_isn|"
     r"Engine\._rst_acceptable)$", "state update"),
    (r"^Engine\._ack_gives_up_holes$", "ACK hole check"),
    (r"^(Engine\._payload|HalfStream\.)", "stream receive"),
    (r"^PacketInfo\.__init__$", "PacketInfo creation"),
    (r"^(Engine\._emit|Engine\._emit_both|Engine\._new_data|Engine\._check_overflow|"
     r"Engine\._errors|Engine\._count|Dispatcher\.|_Node)", "event dispatch"),
    (r"^(Engine\._not_tcp|Engine\._orphan)", "orphans"),
]
# For the pipeline functions: the category of the line being executed (matched on its text).
LINE_CATEGORY: dict[str, list[tuple[str, str]]] = {
    "Monitor.run": [(r".", "reader")],
    "Monitor._pump": [(r".", "reader")],
    "Engine.process_records": [(r".", "in-place records: walk + fast path")],
    # the fused reader and fast path (mostool/stack/records.py)
    "process_records": [
        (r"_mod_ffff|from_bytes|_offloaded|seglen|verify", "checksum"),
        (r"header\(|nbytes|nwire|n \+= 1|ts = sec|max_caplen|RECORD_HEADER|nxt > end", "reader"),
        (r"frame\(|eth >>|thl|wire = |key = |crc32|shard", "decode"),
        (r"table_get", "table lookup"),
        (r"process\(", "process() call"),
        (r"_fast_events|_emit", "event dispatch"),
        (r"take|start, size|delivered|_account", "stream receive"),
        (r".", "fast path: flow checks and counters"),
    ],
    "Engine.process": [
        (r"decode\(", "decode"),
        (r"table\.get|_same_connection|flags & SYN", "table lookup"),
        (r"_fire_due|_timers|_idle", "timers"),
        (r"_new_flow", "flow creation"),
        (r"stopped", "table lookup"),
        (r".", "process() glue: counters, clock"),
    ],
    "Engine._packet": [
        (r"PacketInfo\(", "PacketInfo creation"),
        (r"checksum|_check_mode", "checksum"),
        (r"_emit|masks|_BIT|new_runs|_new_data|_errors|conflict_runs", "event dispatch"),
        (r"_payload|wire_len|streams\[|st\.|rexmit", "stream receive"),
        (r"state|TRANSITIONS|_inputs|_update|changes|rst|fin_seq|TERMINAL|_end\(", "state update"),
        (r"_ack_gives_up_holes", "ACK hole check"),
        (r".", "_packet() glue: counters, locals"),
    ],
}


def categorize(frames: list[str], repo: str) -> tuple[str, str, str]:
    """(category, self function, self line) of one sample, frames root first."""
    parsed = []
    for f in frames:
        m = FRAME.match(f)
        if m:
            parsed.append((m["func"], m["file"], int(m["line"])))
        else:
            parsed.append((f or "?", "", 0))
    leaf = parsed[-1]
    for func, file, _ in parsed:
        if Path(file).name in CASE_SCRIPTS and func not in ("main", "<module>", "run_flows",
                                                           "flow_log"):
            return "user callbacks/filters (with their ppeek)", leaf[0], f"{leaf[1]}:{leaf[2]}"
    for i, (func, file, line) in enumerate(parsed):
        is_leaf = i == len(parsed) - 1
        if func in LINE_CATEGORY and file:
            callee = parsed[i + 1][0] if not is_leaf else ""
            if callee in LINE_CATEGORY or any(re.search(p, callee) for p, _ in FUNC_CATEGORY):
                continue  # the callee names its own category
            path = file if os.path.isabs(file) else os.path.join(repo, file)
            text = linecache.getline(path, line)
            cat = next((c for p, c in LINE_CATEGORY[func] if re.search(p, text)), "?")
            return cat, leaf[0], f"{leaf[1]}:{leaf[2]}"
        for pattern, cat in FUNC_CATEGORY:
            if re.search(pattern, func):
                return cat, leaf[0], f"{leaf[1]}:{leaf[2]}"
    return "other (startup, imports, interpreter)", leaf[0], f"{leaf[1]}:{leaf[2]}"


def summarize_spy(raw: Path, packets: int, cpu: float, top: int) -> None:
    repo = str(bench.Src.cwd)
    cats: collections.Counter[str] = collections.Counter()
    funcs: collections.Counter[str] = collections.Counter()
    lines: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for row in raw.read_text().splitlines():
        stack, _, n_s = row.rpartition(" ")
        n = int(n_s)
        total += n
        frames = stack.split(";")
        cat, func, line = categorize(frames, repo)
        cats[cat] += n
        funcs[func] += n
        lines[f"{func} ({line})"] += n
        for f in {FRAME.sub(r"\g<func>", fr) for fr in frames}:
            incl[f] += n
    if not total:
        print("no samples")
        return
    us = cpu / packets * 1e6 if packets else 0.0
    print(f"\n{total} samples; unprofiled run: {cpu:.2f} s CPU for {packets:,} packets "
          f"= {us:.2f} µs/packet")
    print("\nper-packet cost by category (share of samples x unprofiled µs/packet):")
    for cat, n in cats.most_common():
        print(f"  {cat:44s} {100 * n / total:5.1f} %  {us * n / total:6.3f} µs/pkt")
    print(f"\nfunctions by own time (top {top}):")
    for f, n in funcs.most_common(top):
        print(f"  {100 * n / total:5.1f} %  {us * n / total:6.3f} µs/pkt  {f}")
    print(f"\nfunctions by inclusive time (top {top}):")
    for f, n in incl.most_common(top):
        print(f"  {100 * n / total:5.1f} %  {f}")
    print(f"\nlines by own time (top {2 * top}):")
    for f, n in lines.most_common(2 * top):
        text = ""
        m = re.search(r"\((.*):(\d+)\)$", f)
        if m:
            path = m[1] if os.path.isabs(m[1]) else os.path.join(repo, m[1])
            text = linecache.getline(path, int(m[2])).strip()[:70]
        print(f"  {100 * n / total:5.1f} %  {us * n / total:6.3f}  {f}   | {text}")


def gc_child(argv: list[str]) -> None:
    """Run argv (``-m module ...`` or ``script ...``) in this process, timing collections."""
    import gc
    count = [0, 0, 0]
    secs = [0.0, 0.0, 0.0]
    start = [0.0]

    def cb(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            start[0] = time.perf_counter()
        else:
            g = int(info["generation"])
            count[g] += 1
            secs[g] += time.perf_counter() - start[0]

    gc.callbacks.append(cb)
    t0 = time.perf_counter()
    try:
        if argv[0] == "-m":
            sys.argv = [argv[1], *argv[2:]]
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the module's output
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv = argv
            sys.path.insert(0, str(Path(argv[0]).parent))
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit:
        pass
    wall = time.perf_counter() - t0
    print(f"gc: {wall:.2f} s wall in-process; collections gen0/1/2 = {count}; seconds = "
          f"{[round(x, 3) for x in secs]} (total {sum(secs):.2f} s, "
          f"{100 * sum(secs) / wall:.1f} % of the run)", file=sys.stderr)


FLOORS = ("reader", "decode", "lookup", "checksum")


def floor_child(mode: str, trace: str) -> None:
    """One layer under the engine, over every frame of ``trace``."""
    from mostool.replay import ReplaySource
    from mostool.stack.decode import Decoder, tcp_checksum_ok
    frames = ReplaySource([trace]).frames()
    decode = Decoder().decode
    table: dict[bytes, int] = {}
    get = table.get
    if mode == "reader":
        for _ in frames:
            pass
    elif mode == "decode":
        for ts, lt, data, _wl in frames:
            decode(lt, data, ts)
    elif mode == "lookup":
        for ts, lt, data, _wl in frames:
            seg = decode(lt, data, ts)
            if not isinstance(seg, int) and get(seg.key) is None:
                table[seg.key] = 1
    else:
        for ts, lt, data, _wl in frames:
            seg = decode(lt, data, ts)
            if not isinstance(seg, int):
                tcp_checksum_ok(seg)


def floors(trace: Path, ref: list[str], repeat: int) -> None:
    runs: dict[str, list[tuple[float, float]]] = {m: [] for m in FLOORS}
    packets = 0
    for _ in range(repeat):
        for mode in FLOORS:
            sol = bench.measure(bench._sol_argv(ref, trace))
            m = re.search(r"packets=(\d+)", sol.stdout)
            packets = int(m.group(1)) if m else packets
            r = bench.measure([bench.PY, __file__, "--floor-child", mode, str(trace)])
            if r.rc != 0:
                raise SystemExit(f"floor {mode} failed: {r.stderr.strip()[-300:]}")
            runs[mode].append((r.cpu, r.cpu / sol.cpu))
    ref_name = " ".join(["sol.py", *ref])
    print(f"\nfloors on {trace.name} ({packets:,} packets), vs {ref_name}, {repeat} pairs:")
    labels = {"reader": "replay reader, nothing done", "decode": "+ Decoder.decode",
              "lookup": "+ dict lookup of the flow key",
              "checksum": "+ tcp_checksum_ok (instead of the lookup)"}
    for mode in FLOORS:
        cpu = min(c for c, _ in runs[mode])
        ratio = sorted(x for _, x in runs[mode])[len(runs[mode]) // 2]
        print(f"  {labels[mode]:42s} {cpu / packets * 1e6:6.2f} µs/pkt  x sol {ratio:5.2f}")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--gc-child":
        gc_child(sys.argv[2:])
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--floor-child":
        floor_child(sys.argv[2], sys.argv[3])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("case")
    ap.add_argument("--traces", type=Path, default=bench.HERE / "traces")
    ap.add_argument("--tool", default="spy,cprofile,gc")
    ap.add_argument("--rate", type=int, default=250)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--out", type=Path, default=Path("/tmp/mostool-prof"))
    ap.add_argument("--at", metavar="REV", default=None,
                    help="profile the mostool/ of a commit (git archive) instead of the tree")
    args = ap.parse_args()
    if args.at:
        bench.Src.at(args.at)
        print(f"mostool/ of {bench.Src.label}, extracted to {bench.Src.cwd}")
    cases = bench._cases()
    if args.case not in cases:
        ap.error(f"unknown case {args.case}; choose from {', '.join(cases)}")
    case = cases[args.case]
    trace = args.traces.resolve() / bench.TRACE_FILES[case.trace]
    if not trace.exists():
        ap.error(f"{trace} missing: run benchmarks/run.py once to make the traces")
    argv = bench._case_argv(case, trace)
    args.out.mkdir(parents=True, exist_ok=True)
    tools = {t.strip() for t in args.tool.split(",")}
    to_null = "mostool" in case.argv
    print(f"case {case.id}: {case.title} on {trace.name}")
    print("  " + " ".join(argv))
    sol = bench.measure(bench._sol_argv([], trace))
    m = re.search(r"packets=(\d+)", sol.stdout)
    packets = int(m.group(1)) if m else 0
    if "spy" in tools:
        spy = shutil.which("py-spy") or str(Path(bench.PY).parent / "py-spy")
        if not Path(spy).exists():
            print("py-spy not installed: .venv/bin/pip install py-spy")
        else:
            plain = bench.measure(argv, stdout_to_null=to_null)
            if plain.rc != 0:
                tail = (plain.stderr.strip().splitlines() or ["?"])[-1]
                raise SystemExit(f"the case failed (exit {plain.rc}): {tail}")
            raw = args.out / f"case{case.id}.spy.txt"
            with open(os.devnull, "w") as null:
                subprocess.run([spy, "record", "-r", str(args.rate), "-f", "raw", "-o",
                                str(raw), "--", *argv], stdout=null if to_null else None,
                               stderr=subprocess.DEVNULL, check=True, cwd=bench.Src.cwd,
                               env=bench.Src.env)
            summarize_spy(raw, packets, plain.cpu, args.top)
    if "cprofile" in tools:
        out = args.out / f"case{case.id}.cprof"
        with open(os.devnull, "w") as null:
            subprocess.run([bench.PY, "-m", "cProfile", "-o", str(out), *argv[1:]],
                           stdout=null, check=True, cwd=bench.Src.cwd, env=bench.Src.env)
        import pstats
        print(f"\ncProfile, by own time (top {args.top}); {packets:,} packets:")
        pstats.Stats(str(out)).sort_stats("tottime").print_stats(args.top)
    if "floors" in tools:
        floors(trace, case.refs[0], 2)
    if "gc" in tools:
        subprocess.run([bench.PY, __file__, "--gc-child", *argv[1:]], check=True,
                       cwd=bench.Src.cwd, env=bench.Src.env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
