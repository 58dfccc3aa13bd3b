"""A `--workers` worker's record blocks (mostool.stack.shares): other shares' payloads left out,
the C and pure builders byte for byte alike, and the worker's in-place loop over such blocks
giving what the frame-by-frame pipeline gives for its share."""

from __future__ import annotations

import mmap
import random
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mostool import Monitor, MonitorConfig
from mostool.events.types import ON_CONN_END, ON_CONN_START
from mostool.replay import ReplaySource
from mostool.stack import shares
from mostool.stack.records import shard_hash

ROOT = Path(__file__).resolve().parents[1]
NETGEN = ROOT.parent / "shared" / "pcaps" / "netgen"
PCAPS = [ROOT / "sample_pcaps" / name for name in ("http_small.pcap", "impaired_small.pcap",
                                                   "mixed_small.pcap")]
PCAPS += sorted((ROOT / "sample_pcaps" / "synthetic").glob("*.pcap"))
PCAPS += [p for p in (sorted(NETGEN.glob("*.pcap")) if NETGEN.is_dir() else [])
          if p.stem in ("http_keepalive", "abort_rst", "keepalive_idle")]


def _records(data: bytes) -> tuple[bool, list[int]]:
    """A classic pcap's byte order and the offsets of its whole records."""
    little = data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1")
    fmt = "<I" if little else ">I"
    offsets, off = [], 24
    while off + 16 <= len(data):
        incl = struct.unpack_from(fmt, data, off + 8)[0]
        if off + 16 + incl > len(data):
            break
        offsets.append(off)
        off += 16 + incl
    return little, offsets


def _foreign(frame: bytes, index: int, count: int) -> bool:
    """The test's own reading of "another share's plain IPv4/TCP frame"."""
    if len(frame) < 54 or frame[12:14] != b"\x08\x00" or frame[14] != 0x45:
        return False
    if frame[20] & 0x3F or frame[21] or frame[23] != 6:
        return False
    thl = (frame[46] >> 4) * 4
    if thl < 20 or int.from_bytes(frame[16:18], "big") < 20 + thl or 34 + thl > len(frame):
        return False
    addrs = int.from_bytes(frame[26:30], "big") ^ int.from_bytes(frame[30:34], "big")
    ports = int.from_bytes(frame[34:36], "big") ^ int.from_bytes(frame[36:38], "big")
    return shard_hash(addrs, ports) % count != index


@pytest.mark.parametrize("pcap", PCAPS, ids=[p.stem for p in PCAPS])
def test_share_block_leaves_out_exactly_other_shares_payloads(pcap: Path) -> None:
    data = pcap.read_bytes()
    little, offsets = _records(data)
    rng = random.Random(pcap.stem)
    left_out = 0
    for index, count in ((0, 2), (1, 2), (2, 3)):
        for _ in range(12):
            start = rng.choice(offsets)
            stop = min(len(data), start + rng.choice((64, 700, 5000, 1 << 20)))
            got = shares.share_block_py(data, start, stop, little, 262144, index, count)
            want = bytearray(data[start:stop])
            for off in offsets:
                incl = int.from_bytes(data[off + 8:off + 12], "little" if little else "big")
                if start <= off and off + 16 + incl <= stop and _foreign(
                        data[off + 16:off + 16 + incl], index, count):
                    want[off - start + 16 + shares.KEPT:off - start + 16 + incl] = bytes(
                        incl - shares.KEPT)
                    left_out += incl > shares.KEPT
            assert got == bytes(want)
            if shares.SHARE_BLOCK_VARIANT == "C":
                # the C builder, reading the file's mapping as the worker's loop does
                with pcap.open("rb") as f, mmap.mmap(f.fileno(), 0,
                                                     access=mmap.ACCESS_READ) as m:
                    assert shares.share_block(m, start, stop, little, 262144, index,
                                              count) == got
    if pcap.stem in ("http_small", "http_keepalive"):
        assert left_out > 0


def test_share_block_keeps_damage_and_cut_records_whole(tmp_path: Path) -> None:
    data = bytearray((ROOT / "sample_pcaps" / "http_small.pcap").read_bytes())
    little, offsets = _records(bytes(data))
    # a record header claiming more than max_caplen: it and all after it are copied as read
    data[offsets[5] + 8:offsets[5] + 12] = (10**7).to_bytes(4, "little" if little else "big")
    for builder in {shares.share_block_py, shares.share_block}:
        got = builder(bytes(data), offsets[5], len(data), little, 262144, 0, 2)
        assert got == bytes(data[offsets[5]:])
        # a block ending inside a record: that record is copied as it is
        got = builder(bytes(data), offsets[0], offsets[3] + 20, little, 262144, 1, 2)
        assert got[offsets[3] - offsets[0]:] == bytes(data[offsets[3]:offsets[3] + 20])
    for bad in ((0, 0), (2, 2), (-1, 2)):
        with pytest.raises(ValueError):
            shares.share_block(bytes(data), 24, 100, little, 262144, *bad)
    with pytest.raises(IndexError):
        shares.share_block(bytes(data), 24, len(data) + 1, little, 262144, 0, 2)


def _worker_trace(pcap: Path, config: MonitorConfig, index: int, count: int,
                  block_size: int | None, sparse: bool = True
                  ) -> tuple[list[Any], dict[str, Any]]:
    """What share ``index`` of ``count`` sees: flow ends with their last packets, timers
    (set at each flow's start) with the packet and time they fired at, and the counters."""
    mon = Monitor(config)
    if block_size is not None:          # 0: the struct loop; else the block loop
        mon.engine.records.in_blocks = block_size > 0
        mon.engine.records.block_size = block_size
        mon.engine.records.share_blocks = sparse
    mon.keep_share(index, count)
    sock = mon.socket()
    seen: list[Any] = []

    def on_start(flow: Any, side: Any, event: Any) -> None:
        mon.settimer(0.03, lambda timer_id: seen.append(
            ("timer", flow.id, mon.engine.packet_number, mon.now)))

    def on_end(flow: Any, side: Any, event: Any) -> None:
        try:
            pkt = flow.last_packet()
            last: Any = (pkt.number, pkt.ts, pkt.seq, bytes(pkt.payload))
        except Exception as exc:  # noqa: BLE001 - the error is part of the trace
            last = repr(exc)
        seen.append(("end", flow.id, event.reason, mon.engine.packet_number, mon.now, last))

    sock.on(ON_CONN_START, callback=on_start)
    sock.on(ON_CONN_END, callback=on_end)
    stats = mon.run(ReplaySource(pcap))
    stats.pop("warnings", None)
    return seen, stats


@pytest.mark.parametrize("pcap", PCAPS, ids=[p.stem for p in PCAPS])
def test_a_workers_blocks_give_the_frame_by_frame_share(
        pcap: Path, frame_by_frame: Callable[[], None]) -> None:
    """The in-place block loop over a worker's blocks (tiny blocks: records cross their
    edges; idle timeouts and timers fall due at other shares' packets, which then go the
    general way with their frames read from the capture) gives what the struct loop gives,
    counters and all, and the frame-by-frame pipeline's flows, timers and last packets (its
    decoder also counts the other shares' packets it decodes and drops)."""
    runs = [(config, index, count) for config in (MonitorConfig(),
                                                  MonitorConfig(idle_timeout=0.02, rcvbuf=0))
            for index, count in ((0, 2), (1, 2), (2, 3))]
    blocks = [[_worker_trace(pcap, c, k, n, size) for c, k, n in runs] for size in (64, 3000)]
    dense = [_worker_trace(pcap, c, k, n, 64, sparse=False) for c, k, n in runs]
    struct_loop = [_worker_trace(pcap, c, k, n, 0) for c, k, n in runs]
    assert blocks[0] == struct_loop and blocks[1] == struct_loop and dense == struct_loop
    frame_by_frame()
    slow = [_worker_trace(pcap, c, k, n, None) for c, k, n in runs]
    assert [seen for seen, _stats in struct_loop] == [seen for seen, _stats in slow]
