"""Reassembly: HalfStream unit tests, then properties (any order, duplicates, consistent and
conflicting overlaps) checked against a byte-by-byte model, then end to end through the engine,
with sequence numbers wrapping at 2**32."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from builders import CLI, SVR, Scenario
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import mostool as mos
from mostool.stack.stream import CONFLICT, LATE, NEW, REXMIT, HalfStream, seq_offset


def stream(bufsize: int = 1 << 20, *, hashing: bool = False, last: bool = False,
           max_segments: int = 4096, max_bytes: int = 1 << 24) -> HalfStream:
    return HalfStream(bufsize=bufsize, hashing=hashing, overlap_last=last,
                      max_ooo_segments=max_segments, max_ooo_bytes=max_bytes)


def feed(s: HalfStream, off: int, data: bytes) -> int:
    return s.receive(off, data if s.keep_bytes else None, len(data))


# --------------------------------------------------------------------------------------------
# unit tests
# --------------------------------------------------------------------------------------------


def test_in_order() -> None:
    s = stream()
    assert feed(s, 0, b"abc") == NEW
    assert feed(s, 3, b"de") == NEW
    assert (s.nxt, s.delivered) == (5, 5)
    assert s.new_runs == [(0, 5)]                # adjacent deliveries coalesce
    assert s.read(0, 100) == b"abcde"
    assert s.read(2, 2) == b"cd"
    assert s.fragments() == [(0, 5)]
    assert s.head == 0


def test_out_of_order_waits_then_flushes() -> None:
    s = stream()
    assert feed(s, 5, b"fgh") == 0               # not in order: nothing new yet
    assert (s.nxt, s.delivered, list(s.new_runs)) == (0, 0, [])
    assert s.fragments() == [(5, 3)]
    assert s.read(5, 3) == b"fgh"                # waiting bytes are readable
    assert s.read(0, 3) == b""
    assert feed(s, 0, b"abcde") == NEW           # the hole fills
    assert (s.nxt, s.delivered) == (8, 8)
    assert s.new_runs == [(0, 8)]
    assert s.read(0, 8) == b"abcdefgh"
    assert s.fragments() == [(0, 8)]


def test_several_holes_filled_in_any_order() -> None:
    s = stream()
    feed(s, 8, b"89")
    feed(s, 4, b"4567")
    assert s.fragments() == [(4, 6)]             # touching runs coalesce
    feed(s, 12, b"CD")
    assert s.fragments() == [(4, 6), (12, 2)]
    feed(s, 0, b"0123")
    assert s.nxt == 10
    feed(s, 10, b"AB")
    assert s.nxt == 14
    assert s.read(0, 14) == b"0123456789ABCD"
    assert not s.gaps


def test_skip_to_records_gaps_and_delivers_what_waits() -> None:
    s = stream()
    feed(s, 0, b"ab")
    feed(s, 10, b"klm")
    feed(s, 20, b"uv")
    assert s.skip_to(15) is True                 # gives up 2..10, delivers klm, gap 13..15
    assert s.gaps == [(2, 8), (13, 2)]
    assert s.gap_bytes == 10
    assert (s.nxt, s.delivered) == (15, 5)
    assert s.new_runs == [(0, 2), (10, 3)]
    assert s.read(10, 3) == b"klm"
    assert s.fragments() == [(0, 15), (20, 2)]
    assert s.skip_to(15) is False                # nothing below: a no-op
    assert s.skip_to(18) is False                # a pure gap delivers nothing
    assert s.gaps[-1] == (15, 3)


def test_finish_delivers_everything_waiting() -> None:
    s = stream(hashing=True)
    feed(s, 3, b"def")
    feed(s, 9, b"jk")
    assert s.finish() is True
    assert s.gaps == [(0, 3), (6, 3)]
    assert (s.nxt, s.delivered, s.ooo_starts) == (11, 5, [])
    assert s.digest() == hashlib.sha256(b"defjk").hexdigest()
    assert s.finish() is False


def test_late_data_inside_a_skipped_gap_is_dropped() -> None:
    s = stream()
    s.fill_late = False                          # as mOS: a given-up hole stays given up
    feed(s, 0, b"ab")
    s.skip_to(6)
    flags = feed(s, 3, b"de")
    assert flags & LATE and not flags & (REXMIT | NEW)
    assert s.late_bytes == 2
    assert s.read(3, 2) == b""
    flags = feed(s, 4, b"efgh")                  # late head, new tail
    assert flags & LATE and flags & NEW
    assert s.nxt == 8
    assert s.read(6, 2) == b"gh"


def test_late_data_fills_the_newest_gap_while_nothing_lies_beyond_it() -> None:
    s = stream(hashing=True)
    feed(s, 0, b"ab")
    s.skip_to(6)                                 # an ACK gave [2, 6) up
    s.gap_runs = ()                              # ... and the engine reported the gap
    flags = feed(s, 3, b"de")                    # [3, 5) arrives: it fills that part
    assert flags & NEW and not flags & LATE
    assert s.gaps == [(2, 1), (5, 1)] and s.gap_bytes == 2
    assert s.filled_runs == [(3, 2)] and not s.late_runs and not s.gap_runs
    assert (s.nxt, s.delivered) == (6, 4)
    feed(s, 6, b"g")
    flags = feed(s, 5, b"f")                     # bytes were delivered beyond: too late
    assert flags & LATE and s.late_runs == [(5, 1)] and s.late_bytes == 1
    assert s.digest() == hashlib.sha256(b"abdeg").hexdigest()


def test_a_late_segment_reaching_past_the_gap_fills_it_and_goes_on() -> None:
    """Its bytes inside the gap fill it, the rest is new data: each byte hashed and buffered
    once (a copy of the whole segment at the fill was hashed twice)."""
    s = stream(hashing=True)
    feed(s, 0, b"ab")
    s.skip_to(4)                                 # an ACK gave [2, 4) up
    feed(s, 2, b"cdefg")                         # [2, 4) fills the gap, [4, 7) is new
    assert not s.gaps and (s.nxt, s.delivered) == (7, 7)
    assert s.read(0, 7) == b"abcdefg"
    assert s.digest() == hashlib.sha256(b"abcdefg").hexdigest()


def test_late_data_fills_an_unreported_gap_without_a_trace() -> None:
    s = stream()
    feed(s, 0, b"ab")
    s.skip_to(6)
    feed(s, 2, b"cdef")
    assert not s.gaps and not s.gap_runs and not s.filled_runs
    assert (s.nxt, s.delivered, s.gap_bytes) == (6, 6, 0)
    assert s.read(0, 6) == b"abcdef"


def test_retransmission_of_delivered_bytes() -> None:
    s = stream()
    feed(s, 0, b"hello world")
    s.new_runs = []
    flags = feed(s, 6, b"world")
    assert flags == REXMIT
    assert (s.rexmit, s.rexmit_bytes, s.rexmit_off, s.rexmit_len) == (1, 5, 6, 5)
    assert s.new_runs == []
    flags = feed(s, 6, b"world!!")               # old + new
    assert flags == REXMIT | NEW
    assert s.new_runs == [(11, 2)]


def test_bytes_before_offset_zero() -> None:
    s = stream()
    assert feed(s, -3, b"xyz") == REXMIT         # wholly before the stream: ignored
    assert feed(s, -2, b"xyab") == NEW           # the part from offset 0 counts
    assert s.read(0, 10) == b"ab"


def test_overflow_trimming_keeps_at_least_bufsize_newest_bytes() -> None:
    s = stream(bufsize=10)
    chunks = [bytes([65 + i]) * 4 for i in range(6)]
    for i, chunk in enumerate(chunks):
        feed(s, 4 * i, chunk)
        kept = s.nxt - s.head
        assert kept >= min(10, s.nxt)
        assert s.read(s.head, 100) == b"".join(chunks)[s.head:s.nxt]
    assert s.head == 12                          # whole chunks are dropped: 12 >= 10 kept
    assert s.read(0, 4) == b""
    assert s.read(11, 1) == b""
    assert s.read(12, 100) == b"DDDDEEEEFFFF"
    assert s.fragments() == [(12, 12)]
    assert s.delivered == 24


def test_read_stops_at_the_end_of_a_run() -> None:
    s = stream()
    feed(s, 0, b"abcd")
    feed(s, 8, b"ijkl")
    assert s.read(2, 100) == b"cd"               # buffer ends at nxt
    assert s.read(9, 100) == b"jkl"              # a waiting run
    assert s.read(5, 2) == b""                   # inside the hole
    assert s.read(0, 0) == b""


def test_ranges_only_without_bytes() -> None:
    s = stream(bufsize=0)
    assert not s.keep_bytes
    assert feed(s, 4, b"efgh") == 0
    assert s.fragments() == [(4, 4)]             # a waiting run is still a range
    assert s.read(4, 4) == b""
    assert feed(s, 0, b"abcd") == NEW
    assert (s.nxt, s.delivered) == (8, 8)
    assert feed(s, 2, b"cd") == REXMIT           # detected without the bytes
    assert s.fragments() == []
    assert s.read(0, 8) == b""


def test_ooo_limits_skip_the_oldest_hole() -> None:
    s = stream(max_segments=2)
    feed(s, 10, b"a")
    feed(s, 20, b"b")
    flags = feed(s, 30, b"c")                    # third run: over the limit
    assert flags & NEW
    assert s.gaps == [(0, 10)]
    assert s.nxt == 11                           # the run behind the hole is delivered
    assert s.new_runs == [(10, 1)]
    s2 = stream(max_bytes=5)
    feed(s2, 10, b"abc")
    feed(s2, 20, b"def")
    assert s2.gaps == [(0, 10)]
    assert s2.nxt == 13


@pytest.mark.parametrize("last", [False, True], ids=["first", "last"])
def test_conflict_against_a_waiting_run(last: bool) -> None:
    s = stream(last=last)
    feed(s, 4, b"efgh")
    flags = feed(s, 4, b"eXgY")
    assert flags == REXMIT | CONFLICT
    assert s.conflict_runs == [(5, 3)]           # from the first to the last differing byte
    assert (s.conflicts, s.conflict_bytes) == (1, 2)
    feed(s, 0, b"abcd")
    assert s.read(0, 8) == (b"abcdeXgY" if last else b"abcdefgh")


@pytest.mark.parametrize("last", [False, True], ids=["first", "last"])
def test_conflict_against_delivered_bytes(last: bool) -> None:
    s = stream(hashing=True, last=last)
    feed(s, 0, b"abcdefgh")
    flags = feed(s, 2, b"cZe")
    assert flags == REXMIT | CONFLICT
    assert s.conflict_runs == [(3, 1)]
    # delivered bytes stay delivered: the hash keeps the first copy either way; "last" can
    # only rewrite the buffered copy
    assert s.digest() == hashlib.sha256(b"abcdefgh").hexdigest()
    assert s.read(0, 8) == (b"abcZefgh" if last else b"abcdefgh")


def test_identical_overlap_is_a_rexmit_not_a_conflict() -> None:
    s = stream()
    feed(s, 4, b"efgh")
    assert feed(s, 2, b"cdef") == REXMIT
    assert not s.conflict_runs
    assert s.fragments() == [(2, 6)]


def test_sequence_numbers_wrap() -> None:
    base = 0xFFFFFFF0
    assert seq_offset(0x1234, -1, 0) == 0          # no base yet
    assert seq_offset(0xFFFFFFF0, base, 0) == 0
    assert seq_offset(0xFFFFFFFF, base, 0) == 15
    assert seq_offset(0, base, 0) == 16
    assert seq_offset(0x10, base, 0) == 32
    assert seq_offset(0xFFFFFFEB, base, 0) == -5
    s = stream()
    feed(s, 0, b"x" * 40)
    assert seq_offset(0x18, base, s.nxt) == 40
    # far ahead of nxt is still read as ahead (2**31 window around nxt)
    assert seq_offset((base + 0x7FFFFFF0 + 100) & 0xFFFFFFFF, base, 0x7FFFFFF0) == 0x7FFFFFF0 + 100


# --------------------------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------------------------


@st.composite
def consistent_segments(draw: st.DrawFn) -> tuple[bytes, list[tuple[int, bytes]]]:
    """Data, and segments covering all of it (a split, plus duplicates and overlapping copies of
    the same bytes), in random order."""
    data = draw(st.binary(min_size=1, max_size=600))
    n = len(data)
    cuts = sorted(draw(st.sets(st.integers(1, max(1, n - 1)), max_size=12)) | {0, n})
    segs = [(a, data[a:b]) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]
    extra = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(1, 80)), max_size=8))
    segs += [(a, data[a:a + ln]) for a, ln in extra]
    segs += draw(st.lists(st.sampled_from(segs), max_size=4))          # exact duplicates
    order = draw(st.permutations(segs))
    return data, list(order)


def _model_rexmits(segs: list[tuple[int, bytes]]) -> list[bool]:
    seen: set[int] = set()
    out = []
    for off, d in segs:
        span = set(range(off, off + len(d)))
        out.append(bool(span & seen))
        seen |= span
    return out


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(consistent_segments(), st.sampled_from(["buffer", "hash", "both", "ranges"]),
       st.booleans())
def test_any_order_reassembles_the_original(case: tuple[bytes, list[tuple[int, bytes]]],
                                            mode: str, last: bool) -> None:
    data, segs = case
    s = stream(bufsize=0 if mode in ("hash", "ranges") else 1 << 16,
               hashing=mode in ("hash", "both"), last=last)
    flags = [feed(s, off, d) for off, d in segs]
    assert not s.ooo_starts and not s.gaps
    assert (s.nxt, s.delivered) == (len(data), len(data))
    assert s.conflicts == 0
    # exactly the segments that overlap bytes received before are retransmissions
    assert [bool(f & REXMIT) for f in flags] == _model_rexmits(segs)
    assert not any(f & (CONFLICT | LATE) for f in flags)
    runs = s.new_runs
    assert sum(n for _, n in runs) == len(data)
    assert all(a + n == b for (a, n), (b, _) in zip(runs, runs[1:], strict=False))
    if mode in ("buffer", "both"):
        assert s.read(0, len(data)) == data
        assert s.fragments() == [(0, len(data))]
    if mode in ("hash", "both"):
        assert s.digest() == hashlib.sha256(data).hexdigest()


@st.composite
def conflicting_segments(draw: st.DrawFn) -> tuple[int, list[tuple[int, bytes]]]:
    n = draw(st.integers(1, 300))
    alphabet = st.sampled_from(b"abcXY")
    segs: list[tuple[int, bytes]] = []
    cuts = sorted(draw(st.sets(st.integers(1, max(1, n - 1)), max_size=8)) | {0, n})
    for a, b in zip(cuts, cuts[1:], strict=False):
        if b > a:
            segs.append((a, bytes(draw(st.lists(alphabet, min_size=b - a, max_size=b - a)))))
    for _ in range(draw(st.integers(0, 8))):
        a = draw(st.integers(0, n - 1))
        ln = draw(st.integers(1, 60))
        segs.append((a, bytes(draw(st.lists(alphabet, min_size=ln, max_size=ln)))))
    return n, list(draw(st.permutations(segs)))


class Model:
    """Byte-by-byte reference: which copy each position holds, what was delivered, in order."""

    def __init__(self, last: bool) -> None:
        self.last = last
        self.value: dict[int, int] = {}
        self.nxt = 0
        self.stream = bytearray()

    def receive(self, off: int, data: bytes) -> tuple[bool, int]:
        """(overlapped something received, number of differing overlapped bytes)."""
        overlap = False
        differ = 0
        for i, b in enumerate(data, off):
            if i in self.value:
                overlap = True
                if self.value[i] != b:
                    differ += 1
                    if self.last:
                        self.value[i] = b
            else:
                self.value[i] = b
        while self.nxt in self.value:
            self.stream.append(self.value[self.nxt])
            self.nxt += 1
        return overlap, differ

    def buffer(self) -> bytes:
        return bytes(self.value[i] for i in range(self.nxt))


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(conflicting_segments(), st.booleans())
def test_conflicting_overlaps_follow_the_policy(case: tuple[int, list[tuple[int, bytes]]],
                                               last: bool) -> None:
    n, segs = case
    s = stream(hashing=True, last=last)
    model = Model(last)
    total_differ = 0
    for off, d in segs:
        before = dict(model.value)
        overlap, differ = model.receive(off, d)
        s.conflict_runs = []
        flags = feed(s, off, d)
        assert bool(flags & REXMIT) == overlap
        assert bool(flags & CONFLICT) == (differ > 0)
        total_differ += differ
        for c_off, c_len in s.conflict_runs:     # each report starts and ends on a difference
            assert off <= c_off and c_off + c_len <= off + len(d)
            assert before[c_off] != d[c_off - off]
            assert before[c_off + c_len - 1] != d[c_off + c_len - 1 - off]
        assert len(s.conflict_runs) >= (1 if differ else 0)
    assert s.conflict_bytes == total_differ
    assert s.nxt == model.nxt >= n
    # the delivered stream (hash) never changes once delivered; the buffer follows the policy
    assert s.digest() == hashlib.sha256(bytes(model.stream)).hexdigest()
    assert s.read(0, s.nxt) == model.buffer()


@settings(max_examples=60)
@given(st.binary(min_size=1, max_size=300).flatmap(
           lambda d: st.tuples(st.just(d), st.integers(0, len(d) - 1))),
       st.integers(1, 40), st.sampled_from(b"#@"))
def test_first_keeps_first_last_keeps_later_for_waiting_bytes(
        case: tuple[bytes, int], ln: int, fill: int) -> None:
    data, at = case
    end = min(len(data), at + ln)
    forged = bytes([fill]) * (end - at)
    assume(forged != data[at:end])
    for last in (False, True):
        s = stream(last=last)
        feed(s, at, data[at:end])                # waiting (or in order, when at == 0)
        flags = feed(s, at, forged)
        assert flags & CONFLICT
        first_diff = next(i for i in range(end - at) if data[at + i] != fill)
        last_diff = max(i for i in range(end - at) if data[at + i] != fill)
        assert s.conflict_runs == [(at + first_diff, last_diff - first_diff + 1)]
        feed(s, 0, data[:at])                    # fill around it, overlapping nothing
        feed(s, end, data[end:])
        got = s.read(0, len(data))
        want = data[:at] + (forged if last else data[at:end]) + data[end:]
        assert got == want


# --------------------------------------------------------------------------------------------
# end to end: builder frames through the engine, sequence numbers wrapping
# --------------------------------------------------------------------------------------------


def _reassemble(frames: list[Any], **config: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    mon = mos.Monitor(mos.MonitorConfig(hash_streams=True, **config))
    sock = mon.socket()
    seen: dict[str, Any] = {"rexmit": 0}

    def end(flow: mos.Flow, side: mos.Side, event: Any) -> None:
        if config.get("rcvbuf", 1) and flow.to_server.bytes_seen:
            seen["c2s"] = flow.to_server.ppeek(0, 1 << 20)
            seen["s2c"] = flow.to_client.ppeek(0, 1 << 20)
    sock.on(mos.ON_CONN_END, callback=end)

    def rexmit(flow: mos.Flow, side: mos.Side, event: Any) -> None:
        seen["rexmit"] += 1
    sock.on(mos.ON_REXMIT, callback=rexmit)

    records: list[dict[str, Any]] = []
    mon.on_flow_end(lambda conn: records.append(conn.record()))
    mon.run(frames)
    assert len(records) == 1
    return records[0], seen


def test_wraparound_end_to_end() -> None:
    payload = bytes(range(256)) * 4
    sc = Scenario(client_isn=0xFFFFFF00, server_isn=0xFFFFFFF0)
    sc.handshake()
    frames = []
    for i in range(0, len(payload), 100):
        frames += sc.send(CLI, payload[i:i + 100])
    sc.drop(frames[3:5])                          # reordered across the wrap
    sc.inject(frames[3:5])
    sc.send(CLI, payload[250:350], seq_offset=250)   # a retransmission over the wrap
    sc.send(SVR, b"R" * 40)                       # the server's numbers wrap too
    sc.close()
    rec, seen = _reassemble(sc.frames)
    assert rec["end_reason"] == "fin"
    assert rec["c2s"]["bytes"] == len(payload)
    assert rec["c2s"]["sha256"] == hashlib.sha256(payload).hexdigest()
    assert rec["c2s"]["gaps"] == 0
    assert rec["c2s"]["rexmit"] == 1
    assert rec["s2c"]["sha256"] == hashlib.sha256(b"R" * 40).hexdigest()
    assert seen["c2s"] == payload
    assert seen["rexmit"] == 1


@settings(max_examples=40, deadline=None)
@given(consistent_segments(),
       st.sampled_from([0, 1000, 0xFFFFFF00, 0xFFFFFFFF, 0x7FFFFFFF, 0xFFFFFE00]),
       st.booleans())
def test_any_order_end_to_end(case: tuple[bytes, list[tuple[int, bytes]]], isn: int,
                              buffered: bool) -> None:
    data, segs = case
    sc = Scenario(client_isn=isn)
    sc.handshake()
    for off, d in segs:
        sc.send(CLI, d, seq_offset=off)
    sc.close()
    rec, seen = _reassemble(sc.frames, rcvbuf=1 << 16 if buffered else 0)
    assert rec["c2s"]["bytes"] == len(data)
    assert rec["c2s"]["gaps"] == 0
    assert rec["c2s"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert rec["end_reason"] == "fin"
    if buffered:
        assert seen["c2s"] == data
    # (a 1-byte copy of the last delivered byte looks like a keep-alive probe: not counted)
    if any(r and len(d) > 1 for r, (_o, d) in zip(_model_rexmits(segs), segs, strict=True)):
        assert rec["c2s"]["rexmit"] >= 1


def test_overlap_policy_end_to_end() -> None:
    def build() -> Scenario:
        sc = Scenario(client_isn=0xFFFFFFFA)
        sc.handshake()
        lost = sc.drop(sc.send(CLI, b"0123456789"))
        sc.send(CLI, b"abcdef")                   # waits behind the hole
        sc.send(CLI, b"abXdef", seq_offset=10)    # a different copy of waiting bytes
        sc.inject(lost)
        sc.close()
        return sc

    def check(policy: str, want: bytes) -> None:
        mon = mos.Monitor(mos.MonitorConfig(hash_streams=True).replace(overlap=policy))
        sock = mon.socket()
        errors: list[tuple[str, str, int, int]] = []
        got: list[bytes] = []
        sock.on(mos.ON_ERROR, callback=lambda f, s, e: errors.append(
            (s.name, e.kind, e.offset, e.length)))
        sock.on(mos.ON_CONN_END, callback=lambda f, s, e: got.append(f.to_server.ppeek(0, 99)))
        records: list[dict[str, Any]] = []
        mon.on_flow_end(lambda conn: records.append(conn.record()))
        mon.run(build().frames)
        assert errors == [("SVR", "overlap_conflict", 12, 1)]
        assert got == [want]
        assert records[0]["c2s"]["sha256"] == hashlib.sha256(want).hexdigest()
        assert records[0]["c2s"]["overlap_conflicts"] == 1

    check("first", b"0123456789abcdef")
    check("last", b"0123456789abXdef")


def test_hole_given_up_when_the_receiver_acks_past_it() -> None:
    sc = Scenario()
    sc.handshake()
    sc.drop(sc.send(SVR, b"lost bytes"))          # the capture missed them, the host did not
    sc.send(SVR, b"after")
    sc.ack(CLI)                                   # the client acknowledges everything
    sc.close()
    rec, _ = _reassemble(sc.frames)
    assert rec["s2c"]["gaps"] == 1
    assert rec["s2c"]["gap_bytes"] == 10
    assert rec["s2c"]["bytes"] == 5
    assert rec["s2c"]["sha256"] == hashlib.sha256(b"after").hexdigest()


def test_snaplen_cut_segment_is_a_gap() -> None:
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"A" * 200, snaplen=14 + 20 + 32 + 50)   # only 50 payload bytes captured
    sc.send(CLI, b"tail")
    sc.close()
    rec, seen = _reassemble(sc.frames)
    assert rec["c2s"]["bytes"] == 54
    assert rec["c2s"]["gap_bytes"] == 150
    assert rec["c2s"]["sha256"] == hashlib.sha256(b"A" * 50 + b"tail").hexdigest()
    assert seen["c2s"] == b"A" * 50                # ppeek stops at the gap
    assert SVR == 1
