"""Micro-benchmark of the frame decoder (not a test).

Decodes every frame of ``shared/pcaps/netgen/bulk_transfer.pcap`` (Ethernet / IPv4 / TCP)
repeatedly and prints ns/frame for ``Decoder.decode`` alone, for decode +
``tcp_checksum_ok``, and, as same-run references, an empty loop and dpkt's object decode.

    .venv/bin/python benchmarks/decode_bench.py [PCAP] [--rounds N]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dpkt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mostool.stack.decode import Decoder, tcp_checksum_ok  # noqa: E402

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "pcaps" / "netgen" / "bulk_transfer.pcap"


def load(path: Path) -> tuple[int, list[tuple[float, bytes]]]:
    with path.open("rb") as f:
        reader = dpkt.pcap.Reader(f)
        return reader.datalink(), [(ts, bytes(buf)) for ts, buf in reader]


def best_ns(run: Callable[[], None], frames: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        run()
        best = min(best, (time.perf_counter_ns() - t0) / frames)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pcap", nargs="?", type=Path, default=DEFAULT)
    ap.add_argument("--rounds", type=int, default=15, help="timed passes; the best is reported")
    args = ap.parse_args()
    linktype, frames = load(args.pcap)
    n = len(frames)

    def empty() -> None:
        for _ts, _buf in frames:
            pass

    def decode_only() -> None:
        decode = Decoder().decode
        for ts, buf in frames:
            decode(linktype, buf, ts)

    def decode_checksum() -> None:
        decode = Decoder().decode
        for ts, buf in frames:
            seg = decode(linktype, buf, ts)
            if not isinstance(seg, int):
                tcp_checksum_ok(seg)

    def dpkt_decode() -> None:
        eth = dpkt.ethernet.Ethernet
        for _ts, buf in frames:
            eth(buf).data.data  # noqa: B018

    dec = Decoder()
    results = [dec.decode(linktype, buf, ts) for ts, buf in frames]
    segs = [r for r in results if not isinstance(r, int)]
    checks = [tcp_checksum_ok(s) for s in segs]
    print(f"{args.pcap.name}: {n} frames, linktype {linktype}, {len(segs)} TCP segments")
    print(
        f"  checksums: {checks.count(True)} ok, {checks.count(False)} bad, "
        f"{checks.count(None)} uncheckable; stats {dec.stats()}"
    )
    base = best_ns(empty, n, args.rounds)
    rows = [
        ("decode", best_ns(decode_only, n, args.rounds)),
        ("decode + tcp_checksum_ok", best_ns(decode_checksum, n, args.rounds)),
        (
            "dpkt Ethernet(...).data.data (reference)",
            best_ns(dpkt_decode, n, max(3, args.rounds // 3)),
        ),
    ]
    print(f"  {'empty loop':42s} {base:8.0f} ns/frame")
    for name, ns in rows:
        print(f"  {name:42s} {ns:8.0f} ns/frame   ({ns - base:.0f} net of the loop)")
    print(f"  dpkt / decode ratio: {rows[2][1] / rows[0][1]:.1f}x")


if __name__ == "__main__":
    main()
