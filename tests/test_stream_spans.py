"""Buffered spans (HalfStream.take_span): a segment read in place from the capture is buffered as
a span into it, not a copy. Every reader of the buffer must see exactly what a copying stream
shows, and the spans must be copied out (RecordRefs.detach) before the source lets go."""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import pytest
from builders import CLI, SVR, Scenario
from hypothesis import given, settings
from hypothesis import strategies as hs
from record_loops import monitor

from mostool import HK_RCV, ON_PKT_IN, MonitorConfig
from mostool.replay import ReplaySource
from mostool.stack.stream import HalfStream


def _pair(bufsize: int, overlap_last: bool) -> tuple[HalfStream, HalfStream]:
    return (HalfStream(bufsize, False, overlap_last, 64, 1 << 20),
            HalfStream(bufsize, False, overlap_last, 64, 1 << 20))


def _same_reads(spans: HalfStream, copies: HalfStream, rng: random.Random) -> None:
    assert spans.head == copies.head
    assert spans.nxt == copies.nxt
    assert spans.buffered == copies.buffered
    assert spans.fragments() == copies.fragments()
    lo, hi = copies.head - 3, copies.nxt + 3
    probes = [(lo, hi - lo), (copies.head, copies.nxt - copies.head)]
    probes += [(rng.randrange(lo, hi), rng.randrange(0, 3000)) for _ in range(40)]
    for off, n in probes:
        assert spans.read(off, n) == copies.read(off, n), (off, n)


@settings(max_examples=60, deadline=None)
@given(sizes=hs.lists(hs.integers(1, 2000), min_size=1, max_size=40),
       bufsize=hs.sampled_from([1, 700, 4096, 1 << 20]),
       overlap_last=hs.booleans(), seed=hs.integers(0, 1 << 30))
def test_spans_read_as_copies(sizes: list[int], bufsize: int, overlap_last: bool,
                              seed: int) -> None:
    """In-order segments of every size (small ones are still copied and coalesced), trimmed
    to the buffer size, retransmitted with differing bytes: reads, conflicts and what
    ``overlap_last`` keeps are the same; and after ``own_bytes`` no read needs the capture."""
    rng = random.Random(seed)
    capture = rng.randbytes(sum(sizes) * 2 + 64)
    spans, copies = _pair(bufsize, overlap_last)
    at = 16
    sent: list[tuple[int, bytes]] = []
    for n in sizes:
        off = spans.nxt
        spans.take_span(capture, at, capture, at, n)
        copies.take(capture, at, n)
        sent.append((off, bytes(capture[at:at + n])))
        at += n + rng.randrange(0, 40)      # records lie apart in a capture
    _same_reads(spans, copies, rng)
    off, data = rng.choice(sent)            # a retransmission that differs in its first byte
    changed = bytes([data[0] ^ 0xFF]) + data[1:]
    assert spans.receive(off, changed, len(changed)) == copies.receive(off, changed,
                                                                       len(changed))
    assert spans.conflict_runs == copies.conflict_runs
    _same_reads(spans, copies, rng)
    spans.own_bytes()
    assert spans.src is None                # (a span left would now fail to read)
    assert not any(isinstance(c, int) for c in spans.chunks[spans.chunk_head:])
    _same_reads(spans, copies, rng)


def test_only_big_segments_of_a_plain_buffering_stream_become_spans() -> None:
    capture = bytes(range(256)) * 40
    st = HalfStream(1 << 20, False, False, 64, 1 << 20)
    st.take_span(capture, 0, capture, 0, 100)           # small: copied (coalesced)
    st.take_span(capture, 100, capture, 100, 1460)
    assert [type(c) for c in st.chunks] == [bytes, int]
    hashing = HalfStream(1 << 20, True, False, 64, 1 << 20)
    hashing.take_span(capture, 0, capture, 0, 1460)     # the digest needs the bytes anyway
    assert [type(c) for c in hashing.chunks] == [bytes]
    other = bytes(bytearray(capture))
    st.take_span(other, 0, other, 0, 1460)              # another capture: copied
    assert [type(c) for c in st.chunks] == [bytes, int, bytes]
    assert st.read(0, 3020) == capture[:1560] + other[:1460]    # one run, read across
    st.release()
    assert st.src is None and not st.chunks


# -- through the engine: open flows keep their bytes after the source closed ---------------


def _capture(path: Path) -> dict[int, bytes]:
    s = Scenario()
    s.handshake()
    rng = random.Random(7)
    s.segments(CLI, rng.randbytes(5000), 1400)
    s.ack(SVR)
    s.segments(SVR, rng.randbytes(3000) + b"tail", 1000)
    s.ack(CLI)
    s.send(CLI, b"GET /more\r\n")
    s.ack(SVR)
    s.write_pcap(path)                  # no FIN: the flow is open at the end
    return {0: s.stream(CLI), 1: s.stream(SVR)}


@pytest.mark.parametrize("way", ["in_place", "blocks", "frame_by_frame"])
def test_open_flows_keep_their_buffers_after_the_run(tmp_path: Path, way: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    pcap = tmp_path / "open.pcap"
    sent = _capture(pcap)
    if way == "frame_by_frame":
        monkeypatch.setattr(ReplaySource, "pcap_records", lambda self: None)
    mon = monitor(MonitorConfig(), 64 if way == "blocks" else None)
    spans_seen: list[bool] = []

    def look(flow: Any, side: Any, event: Any) -> None:
        spans_seen.append(any(isinstance(c, int) for st in flow.conn.made_streams()
                              for c in st.chunks))
    mon.socket().on(ON_PKT_IN, HK_RCV, look)
    mon.run(ReplaySource(str(pcap)), keep_open=True)
    (conn,) = {id(c): c for c in mon.engine.table.values()}.values()   # (keyed both ways)
    # the client's bytes are what the server's side receives, and the other way round
    for side, who in ((1, 0), (0, 1)):
        st = conn.stream(side)
        assert st.src is None
        assert st.read(0, 1 << 20) == sent[who]
    assert any(spans_seen) == (way != "frame_by_frame")
    mon.close()


# -- a command that reads every buffer: `mostool streams` ------------------------------------

ROOT = Path(__file__).resolve().parents[1]
_NETGEN = ROOT.parent / "shared" / "pcaps" / "netgen"
STREAMED = sorted(_NETGEN.glob("*.pcap")) if _NETGEN.is_dir() else []
STREAMED += sorted((ROOT / "sample_pcaps").glob("*.pcap"))


def _streams(pcap: Path, outdir: Path) -> dict[str, bytes]:
    from mostool.cli import main
    out, err = io.StringIO(), io.StringIO()
    assert main(["streams", "-r", str(pcap), "-o", str(outdir)], out=out, err=err) == 0, \
        err.getvalue()
    return {p.name: p.read_bytes() for p in sorted(outdir.iterdir())}


@pytest.mark.parametrize("pcap", STREAMED, ids=[p.stem for p in STREAMED])
def test_streams_files_are_the_same_read_in_place(pcap: Path, tmp_path: Path,
                                                  frame_by_frame: Any) -> None:
    """`streams` ppeeks every delivered chunk and cuts each buffer back as it goes: read in
    place (buffered spans) it writes exactly the files the frame-by-frame pipeline (copies)
    writes, and the same index."""
    in_place = _streams(pcap, tmp_path / "in_place")
    frame_by_frame()
    copied = _streams(pcap, tmp_path / "copied")
    assert in_place.keys() == copied.keys()
    for name, data in in_place.items():
        assert data == copied[name], name
