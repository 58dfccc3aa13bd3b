"""pcapng Enhanced Packet Blocks read in place (Engine.process_records with an ``epb_layout``)
give exactly what the pcapng frame reader and the frame-by-frame pipeline give: the same flows,
last packets, timers, counters and damage warnings, whatever blocks come between or after."""

from __future__ import annotations

import csv
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from record_loops import monitor
from test_records import flows

from mostool import Monitor, MonitorConfig
from mostool.events.types import ON_CONN_END, ON_CONN_START
from mostool.replay import ReplaySource
from mostool.stack.engine import Engine

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "pcaps"
SAMPLES = [ROOT / "sample_pcaps" / name for name in ("http_small.pcap", "impaired_small.pcap",
                                                      "mixed_small.pcap")]
SAMPLES += [ROOT / "sample_pcaps" / "synthetic" / name
            for name in ("idle_timeout.pcap", "bad_checksum.pcap", "reorder_dup.pcap")]


def _corpus_pcapng() -> list[Path]:
    """pcapng files of the public corpus, up to 1 MB."""
    manifest = SHARED / "MANIFEST.tsv"
    if not manifest.is_file():
        return []
    with manifest.open() as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [SHARED / r["path"] for r in rows
            if r["format"] == "pcapng" and int(r["bytes"]) <= 1_000_000]


# --- writing pcapng (as tests/test_replay.py does) ------------------------------------------------

def _pad(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def _block(bo: str, btype: int, body: bytes) -> bytes:
    body = _pad(body)
    n = len(body) + 12
    return struct.pack(bo + "II", btype, n) + body + struct.pack(bo + "I", n)


def _option(bo: str, code: int, value: bytes) -> bytes:
    return struct.pack(bo + "HH", code, len(value)) + _pad(value)


def _shb(bo: str) -> bytes:
    return _block(bo, 0x0A0D0D0A, struct.pack(bo + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def _idb(bo: str, linktype: int, tsresol: int | None, tsoffset: int) -> bytes:
    opts = b""
    if tsresol is not None:
        opts += _option(bo, 9, bytes([tsresol]))
    if tsoffset:
        opts += _option(bo, 14, struct.pack(bo + "q", tsoffset))
    if opts:
        opts += _option(bo, 0, b"")
    return _block(bo, 1, struct.pack(bo + "HHI", linktype, 0, 0) + opts)


def _epb(bo: str, ifid: int, t: int, data: bytes, orig: int, comment: bool) -> bytes:
    body = struct.pack(bo + "IIIII", ifid, t >> 32, t & 0xFFFFFFFF, len(data), orig) + _pad(data)
    if comment:
        body += _option(bo, 1, b"comment") + _option(bo, 0, b"")
    return _block(bo, 6, body)


def _records(classic: bytes) -> tuple[int, list[tuple[int, int, bytes, int]]]:
    """A little-endian microsecond classic pcap's link type and (sec, usec, frame, orig)."""
    assert classic[:4] == b"\xd4\xc3\xb2\xa1"
    linktype = struct.unpack_from("<I", classic, 20)[0]
    out = []
    off = 24
    while off + 16 <= len(classic):
        sec, usec, incl, orig = struct.unpack_from("<IIII", classic, off)
        out.append((sec, usec, classic[off + 16:off + 16 + incl], orig))
        off += 16 + incl
    return linktype, out


def to_pcapng(classic: bytes, bo: str = "<", tsresol: int | None = None, tsoffset: int = 0,
              middle: bytes = b"", tail: bytes = b"") -> bytes:
    """The classic capture as one pcapng section (interface 0); ``tsresol`` as the if_tsresol
    option (None: microseconds); ``middle`` inserted before the middle packet."""
    linktype, recs = _records(classic)
    resol = 6 if tsresol is None else tsresol
    units = 1 << (resol & 0x7F) if resol & 0x80 else 10**resol
    blocks = [_shb(bo), _block(bo, 4, b"\x00\x00\x00\x00"),     # a name resolution block
              _idb(bo, linktype, tsresol, tsoffset)]
    for i, (sec, usec, frame, orig) in enumerate(recs):
        if i == len(recs) // 2 and middle:
            blocks.append(middle)
        t = (sec - tsoffset) * units + usec * units // 10**6
        blocks.append(_epb(bo, 0, t, frame, orig, comment=i % 3 == 0))
    blocks.append(tail)
    return b"".join(blocks)


# --- running both ways ----------------------------------------------------------------------------

def _trace(path: Path, config: MonitorConfig, stop_after: int | None = None,
           block_size: int | None = None) -> tuple[list[Any], dict[str, Any]]:
    """Flow ends with their last packets (decoded again from their block), timers."""
    mon = monitor(config, block_size)
    sock = mon.socket()
    seen: list[Any] = []
    ends = 0

    def on_start(flow: Any, side: Any, event: Any) -> None:
        mon.settimer(0.05, lambda timer_id: seen.append(
            ("timer", flow.id, mon.engine.packet_number, mon.now)))

    def on_end(flow: Any, side: Any, event: Any) -> None:
        nonlocal ends
        pkt = flow.last_packet()
        last = None if pkt is None else (pkt.number, pkt.ts, pkt.seq, pkt.ack, pkt.flags,
                                         bytes(pkt.payload))
        seen.append(("end", flow.id, event.reason, mon.engine.packet_number, last))
        ends += 1
        if stop_after is not None and ends == stop_after:
            mon.stop("test")

    sock.on(ON_CONN_START, callback=on_start)
    sock.on(ON_CONN_END, callback=on_end)
    src = ReplaySource(path)
    stats = mon.run(src)
    return seen, {**stats, "source": src.stats()}


VARIANTS = {
    "le-usec": {},
    "be-nsec-offset": {"bo": ">", "tsresol": 9, "tsoffset": -3600},
    "le-binary": {"tsresol": 0x80 | 20},
    # timestamps of 2**63 units and more: the block loop's arithmetic on Python ints
    "le-nsec-far-offset": {"tsresol": 9, "tsoffset": -8_000_000_000},
    # another interface's packet in the middle: the frame reader takes over from there
    "other-block-middle": {"middle": _idb("<", 1, None, 0)},
    "statistics-at-end": {"tail": _block("<", 5, struct.pack("<III", 0, 0, 0))},
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("pcap", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_epbs_in_place_give_what_frames_give(pcap: Path, variant: str, tmp_path: Path,
                                             frame_by_frame: Callable[[], None]) -> None:
    path = tmp_path / (pcap.stem + ".pcapng")
    path.write_bytes(to_pcapng(pcap.read_bytes(), **VARIANTS[variant]))
    runs = [(MonitorConfig(), None, None), (MonitorConfig(idle_timeout=0.02, rcvbuf=0), 2, 64),
            (MonitorConfig(hash_streams=True), None, 3000)]
    fast = [_trace(path, c, stop, size) for c, stop, size in runs]
    cli_fast = flows("-r", str(path), "--hash")
    frame_by_frame()
    slow = [_trace(path, c, stop) for c, stop, _size in runs]
    assert fast == slow
    assert cli_fast == flows("-r", str(path), "--hash")


def test_damage_is_reported_as_the_frame_reader_does(tmp_path: Path,
                                                     frame_by_frame: Callable[[], None]) -> None:
    good = to_pcapng((ROOT / "sample_pcaps" / "http_small.pcap").read_bytes())
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(good[: len(good) * 2 // 3])
    # the trailing length of the last block differs
    bad = tmp_path / "trailer.pcapng"
    bad.write_bytes(good[:-4] + struct.pack("<I", 4))
    cases = [("-r", str(cut)), ("-r", str(bad)), ("-r", str(cut), "-c", "37")]
    fast = [flows(*argv) for argv in cases]
    frame_by_frame()
    slow = [flows(*argv) for argv in cases]
    assert fast == slow
    assert "cut short" in fast[0][1] and "trailing length" in fast[1][1]


def test_corpus_pcapng_flows_are_identical(frame_by_frame: Callable[[], None]) -> None:
    corpus = _corpus_pcapng()
    assert corpus or not SHARED.is_dir()
    fast = [flows("-r", str(p), "--hash", "--midstream") for p in corpus]
    frame_by_frame()
    slow = [flows("-r", str(p), "--hash", "--midstream") for p in corpus]
    for path, a, b in zip(corpus, fast, slow, strict=True):
        assert a == b, path


def test_the_records_path_is_taken_for_pcapng(tmp_path: Path) -> None:
    """Guard against the comparisons above passing because both sides read frame by frame."""
    path = tmp_path / "http.pcapng"
    path.write_bytes(to_pcapng((ROOT / "sample_pcaps" / "http_small.pcap").read_bytes()))
    taken = 0
    real = Engine.process_records

    def counting(self: Engine, *args: Any, **kwargs: Any) -> tuple[int, int, int, int]:
        nonlocal taken
        out = real(self, *args, **kwargs)
        taken += out[1]
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Engine, "process_records", counting)
        stats = Monitor(MonitorConfig()).run(ReplaySource(path))
    assert taken == stats["packets"] > 0
