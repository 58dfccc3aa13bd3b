"""Reading a classic pcap in place (Engine.process_records) gives exactly what the frame-by-frame
pipeline gives: the same flows, events, counters, warnings, stops and last packets."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from builders import CLI, SVR, Scenario
from record_loops import monitor

from mostool import MonitorConfig
from mostool.cli import main
from mostool.events.types import ON_CONN_END, ON_CONN_START
from mostool.replay import ReplaySource
from mostool.stack import engine as engine_module
from mostool.stack.engine import Engine
from mostool.stack.records import RecordRefs

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "pcaps"
CAPTURES = sorted((SHARED / "netgen").glob("*.pcap")) if SHARED.is_dir() else []
CAPTURES += sorted((ROOT / "sample_pcaps").glob("*.pcap"))
CAPTURES += sorted((ROOT / "sample_pcaps" / "synthetic").glob("*.pcap"))


def _corpus() -> list[Path]:
    """Classic pcap files of the public corpus, up to 2 MB (Ethernet and others)."""
    manifest = SHARED / "MANIFEST.tsv"
    if not manifest.is_file():
        return []
    with manifest.open() as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [SHARED / r["path"] for r in rows
            if r["format"] == "pcap" and int(r["bytes"]) <= 2_000_000]


CORPUS = _corpus()


def flows(*argv: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["flows", *argv], out=out, err=err)
    assert code == 0, err.getvalue()
    return out.getvalue(), err.getvalue()


def both(frame_by_frame: Callable[[], None], *argv: str) -> tuple[tuple[str, str],
                                                                  tuple[str, str]]:
    fast = flows(*argv)
    frame_by_frame()
    return fast, flows(*argv)


@pytest.mark.parametrize("pcap", CAPTURES, ids=[p.stem for p in CAPTURES])
def test_flows_are_identical(pcap: Path, frame_by_frame: Callable[[], None]) -> None:
    fast, slow = both(frame_by_frame, "-r", str(pcap), "--hash", "--rcvbuf", "4096")
    assert fast == slow


@pytest.mark.parametrize("mode", ["on", "off", "skip"])
def test_checksum_modes(mode: str, frame_by_frame: Callable[[], None]) -> None:
    for pcap in ("bad_checksum.pcap", "reorder_dup.pcap"):
        path = ROOT / "sample_pcaps" / "synthetic" / pcap
        fast, slow = both(frame_by_frame, "-r", str(path), "--hash", "--checksums", mode)
        assert fast == slow


def test_corpus_flows_are_identical(frame_by_frame: Callable[[], None]) -> None:
    assert CORPUS or not SHARED.is_dir()
    fast = [flows("-r", str(p), "--hash", "--midstream") for p in CORPUS]
    frame_by_frame()
    slow = [flows("-r", str(p), "--hash", "--midstream") for p in CORPUS]
    for path, a, b in zip(CORPUS, fast, slow, strict=True):
        assert a == b, path


def _cut_and_corrupt(tmp_path: Path) -> tuple[Path, Path]:
    """http_small cut inside a record, and with an absurd captured length in the first."""
    src = (ROOT / "sample_pcaps" / "http_small.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(src[: len(src) * 2 // 3])         # ends inside a record
    corrupt = bytearray(src)
    corrupt[24 + 8:24 + 12] = (10**7).to_bytes(4, "little")  # first record: absurd caplen
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(bytes(corrupt))
    return cut, bad


def test_count_and_damage(tmp_path: Path, frame_by_frame: Callable[[], None]) -> None:
    cut, bad = _cut_and_corrupt(tmp_path)
    cases = [("-r", str(cut)), ("-r", str(bad)), ("-r", str(cut), "-c", "37"),
             ("-r", str(ROOT / "sample_pcaps" / "http_small.pcap"), "-c", "200")]
    fast = [flows(*argv) for argv in cases]
    frame_by_frame()
    slow = [flows(*argv) for argv in cases]
    assert fast == slow
    assert "cut short" in fast[0][1] and "corrupt record header" in fast[1][1]


def _trace(pcap: Path, config: MonitorConfig, stop_after: int | None = None,
           block_size: int | None = None) -> tuple[list[Any], dict[str, Any]]:
    """Flow ends with their last packets, timers with the packet they fired at."""
    mon = monitor(config, block_size)
    sock = mon.socket()
    seen: list[Any] = []
    ends = 0

    def on_start(flow: Any, side: Any, event: Any) -> None:
        mon.settimer(0.05, lambda timer_id: seen.append(
            ("timer", flow.id, mon.engine.packet_number, mon.now)))

    def on_end(flow: Any, side: Any, event: Any) -> None:
        nonlocal ends
        try:
            pkt = flow.last_packet()
            last: Any = (pkt.number, pkt.ts, pkt.seq, pkt.ack, pkt.flags, bytes(pkt.payload))
        except Exception as exc:  # noqa: BLE001 - the error is part of the trace
            last = repr(exc)
        seen.append(("end", flow.id, event.reason, mon.engine.packet_number, last))
        ends += 1
        if stop_after is not None and ends == stop_after:
            mon.stop("test")

    sock.on(ON_CONN_START, callback=on_start)
    sock.on(ON_CONN_END, callback=on_end)
    stats = mon.run(ReplaySource(pcap))
    stats.pop("warnings", None)
    return seen, stats


TRACED = [ROOT / "sample_pcaps" / name for name in ("http_small.pcap", "impaired_small.pcap",
                                                     "mixed_small.pcap")]
TRACED += [ROOT / "sample_pcaps" / "synthetic" / "idle_timeout.pcap"]
TRACED += [p for p in CAPTURES if p.stem in ("http_keepalive", "abort_rst", "keepalive_idle")]


@pytest.mark.pure_engine      # counts calls by patching RecordRefs.segment
@pytest.mark.parametrize("pcap", TRACED, ids=[p.stem for p in TRACED])
def test_callbacks_timers_last_packets_and_stop(pcap: Path,
                                                frame_by_frame: Callable[[], None]) -> None:
    configs = [MonitorConfig(), MonitorConfig(idle_timeout=0.02, rcvbuf=0)]
    runs = [(c, stop) for c in configs for stop in (None, 2)]
    decoded_again = 0
    real = RecordRefs.segment

    def counting(self: RecordRefs, conn: Any) -> Any:
        nonlocal decoded_again
        decoded_again += conn.last_seg is None and conn.last_off >= 0
        return real(self, conn)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(RecordRefs, "segment", counting)
        fast = [_trace(pcap, c, stop) for c, stop in runs]
    frame_by_frame()
    slow = [_trace(pcap, c, stop) for c, stop in runs]
    assert fast == slow
    assert any(entry[0] == "end" and isinstance(entry[4], tuple) for entry in fast[0][0])
    if pcap.stem in ("idle_timeout", "http_keepalive", "abort_rst", "keepalive_idle"):
        # some flow ended while its last packet was one read in place
        assert decoded_again > 0


@pytest.mark.parametrize("block_size", [64, 3000])
@pytest.mark.parametrize("pcap", TRACED, ids=[p.stem for p in TRACED])
def test_record_blocks_loop(pcap: Path, block_size: int,
                            frame_by_frame: Callable[[], None]) -> None:
    """record_blocks (the loop the compiled build runs; here in either build) gives what the
    frame-by-frame pipeline gives, with records crossing block edges."""
    runs = [(c, stop) for c in (MonitorConfig(), MonitorConfig(idle_timeout=0.02, rcvbuf=0))
            for stop in (None, 2)]
    fast = [_trace(pcap, c, stop, block_size) for c, stop in runs]
    frame_by_frame()
    slow = [_trace(pcap, c, stop) for c, stop in runs]
    assert fast == slow


def test_record_blocks_cut_and_corrupt(tmp_path: Path,
                                       frame_by_frame: Callable[[], None]) -> None:
    cut, bad = _cut_and_corrupt(tmp_path)
    config = MonitorConfig(hash_streams=True)
    fast = [_flow_records(ReplaySource(path), config, block_size)
            for path in (cut, bad) for block_size in (64, 1000, 1 << 20)]
    frame_by_frame()
    slow = [_flow_records(ReplaySource(path), config)
            for path in (cut, bad) for block_size in (64, 1000, 1 << 20)]
    assert fast == slow


def test_a_wild_timestamp_is_the_wild_clocks_on_both_paths(
        tmp_path: Path, frame_by_frame: Callable[[], None]) -> None:
    """A pure ACK of an established flow stamped 300 s ahead (no timer due before it) is held
    and judged wild, not taken in place and the clock moved (it once was)."""
    s = Scenario()
    s.handshake()
    s.send(CLI, b"a" * 100)
    s.ack(SVR)
    s.send(SVR, b"b" * 100)
    s.ack(CLI)
    (wild,) = s.ack(SVR)
    s.send(CLI, b"c" * 100)
    s.ack(SVR)
    s.close()
    s.frames = [(ts + 300, lt, data, wl) if (ts, lt, data, wl) == wild else (ts, lt, data, wl)
                for ts, lt, data, wl in s.frames]
    path = tmp_path / "wild.pcap"
    s.write_pcap(path)
    fast = [_flow_records(ReplaySource(path), MonitorConfig(), block_size)
            for block_size in (None, 64)]
    frame_by_frame()
    slow = _flow_records(ReplaySource(path), MonitorConfig())
    assert fast == [slow, slow]
    assert "'wild_timestamps', 1" in slow[-1]
    assert json.loads(slow[0])["duration"] < 1


def test_the_records_path_is_taken() -> None:
    """Guard against the comparisons above passing because both sides read frame by frame."""
    calls = 0
    real = Engine.process_records

    def counting(self: Engine, *args: Any, **kwargs: Any) -> tuple[int, int, int, int]:
        nonlocal calls
        calls += 1
        return real(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Engine, "process_records", counting)
        flows("-r", str(ROOT / "sample_pcaps" / "http_small.pcap"))
    assert calls >= 1



def _pkt_in_trace(pcap: Path, force_general_path: bool, new_data: bool = False,
                  block_size: int | None = None) -> tuple[list[Any], list[str]]:
    """ON_PKT_IN at HK_RCV and ON_TCP_STATE_CHANGE callbacks (and with ``new_data`` a UDE on
    ON_CONN_NEW_DATA whose filter ppeeks, and a NEW_DATA callback) that look at everything they
    can: the packet, the clock, the byte stream (buf_info, the last 16 bytes) and the state."""
    from mostool import (
        HK_RCV,
        HK_SND,
        ON_CONN_NEW_DATA,
        ON_PKT_IN,
        ON_TCP_STATE_CHANGE,
        define_event,
    )

    mon = monitor(MonitorConfig(), block_size)
    sock = mon.socket()
    seen: list[Any] = []

    def look(flow: Any, side: Any, event: Any) -> None:
        pkt = flow.last_packet()
        info = flow.buf_info(side)
        end = info.next_byte_expected
        tail = flow.ppeek(side, max(0, end - 16), 16) if end else b""
        seen.append((repr(event), flow.id, int(side), mon.engine.packet_number,
                     mon.now, pkt.number, pkt.seq, pkt.ack, pkt.flags, repr(info), tail))

    def starts_with_letters(flow: Any, side: Any, event: Any) -> bool:
        new = event.base
        head = flow.ppeek(side, new.offset, 4)
        seen.append(("filter", flow.id, int(side), new.offset, new.length, head))
        return head.isalpha()

    sock.on(ON_PKT_IN, HK_RCV, look)
    sock.on(ON_TCP_STATE_CHANGE, callback=look)
    if new_data:
        sock.on(define_event(ON_CONN_NEW_DATA, starts_with_letters), callback=look)
        sock.on(ON_CONN_NEW_DATA, callback=look)
    if force_general_path:      # ON_PKT_IN at HK_SND keeps every packet off the fast path
        sock.on(ON_PKT_IN, HK_SND, lambda flow, side, event: None)
    records: list[str] = []
    mon.on_flow_end(lambda conn: records.append(repr(conn.record())))
    stats = mon.run(ReplaySource(pcap))
    assert stats["callback_errors"] == 0, mon.failures[:1]
    return seen, records


@pytest.mark.parametrize("new_data", [False, True], ids=["pkt_in", "pkt_in+new_data"])
@pytest.mark.parametrize("pcap", TRACED, ids=[p.stem for p in TRACED])
def test_events_raised_on_the_fast_path(pcap: Path, new_data: bool) -> None:
    """Flows that want ON_PKT_IN at HK_RCV and ON_CONN_NEW_DATA (with a UDE below) stay on the
    fast path (also when read in place), and their callbacks and filters see exactly what the
    general path shows them."""
    calls = [0, 0]
    real = engine_module.sender_step      # called once per packet of the general path

    with pytest.MonkeyPatch.context() as mp:
        for i, forced in enumerate((False, True)):
            def counting(*args: Any, _i: int = i) -> Any:
                calls[_i] += 1
                return real(*args)
            mp.setattr(engine_module, "sender_step", counting)
            if forced:
                slow = _pkt_in_trace(pcap, True, new_data)
            else:
                fast = _pkt_in_trace(pcap, False, new_data)
    assert fast == slow
    assert calls[0] < calls[1] or not calls[1]     # the fast path was taken
    # record_blocks' loop (the compiled build's), with records crossing block edges
    assert _pkt_in_trace(pcap, False, new_data, 64) == slow


def test_checksums_skip_reports_null_and_keeps_every_segment() -> None:
    """--checksums skip computes nothing: bad_checksums is null, and every segment counts, as
    with "off" (which verifies, counts and keeps them)."""
    import json

    path = ROOT / "sample_pcaps" / "synthetic" / "bad_checksum.pcap"
    skip = [json.loads(line) for line in flows("-r", str(path), "--checksums", "skip")[0]
            .splitlines()]
    off = [json.loads(line) for line in flows("-r", str(path), "--checksums", "off")[0]
           .splitlines()]
    assert skip and len(skip) == len(off)
    assert any(rec[d]["bad_checksums"] for rec in off for d in ("c2s", "s2c"))
    for a, b in zip(skip, off, strict=True):
        for d in ("c2s", "s2c"):
            assert a[d].pop("bad_checksums") is None
            b[d].pop("bad_checksums")
        # Zeek's history writes C for a bad checksum only where checksums are verified
        assert a.pop("history") == b.pop("history").replace("C", "").replace("c", "")
        assert a == b


def _flow_records(source: Any, config: MonitorConfig, block_size: int | None = None
                  ) -> list[str]:
    mon = monitor(config, block_size)
    mon.socket()
    out: list[str] = []
    mon.on_flow_end(lambda conn: out.append(conn.record_json()))
    stats = mon.run(source)
    stats.pop("source", None)
    stats.pop("warnings", None)
    return out + [repr(sorted(stats.items()))]


def _mutated_pcap(seed: int, n_mutations: int, nanos: bool, big_endian: bool) -> bytes:
    """http_small with TCP/IP header bytes of some frames changed (flags, sequence and ACK
    numbers, ports, lengths, header length, the IP version/IHL byte, the checksum)."""
    import random

    from mostool.replay import read_capture

    rng = random.Random(seed)
    frames = [list(f) for f in read_capture(ROOT / "sample_pcaps" / "http_small.pcap", [])]
    for _ in range(n_mutations):
        frame = frames[rng.randrange(len(frames))]
        data = bytearray(frame[2])
        if len(data) < 54:
            continue
        pos = rng.choice([14, 16, 17, 20, 23, 34, 35, 36, 38, 41, 42, 45, 46, 47, 50, 51])
        data[pos] = rng.randrange(256)
        frame[2] = bytes(data)
    from fuzz.harness import pcap_bytes
    return pcap_bytes([tuple(f) for f in frames], nanos=nanos,
                      big_endian=big_endian)


@pytest.mark.parametrize("seed", range(40))
def test_mutated_headers_give_the_same_result_both_ways(seed: int, tmp_path: Path) -> None:
    """Headers the fast path must refuse (or take) the same way the pipeline would."""
    from mostool.replay import read_capture
    from mostool.sources import MemorySource

    data = _mutated_pcap(seed, 3 + seed * 4, nanos=seed % 3 == 1, big_endian=seed % 4 == 3)
    path = tmp_path / "m.pcap"
    path.write_bytes(data)
    for config in (MonitorConfig(hash_streams=True), MonitorConfig(midstream=True, rcvbuf=0),
                   MonitorConfig(checksums="on", hash_streams=True)):
        fast = _flow_records(ReplaySource(path), config)
        slow = _flow_records(MemorySource(list(read_capture(path, []))), config)
        assert fast == slow
        assert _flow_records(ReplaySource(path), config, 200) == slow     # record_blocks
