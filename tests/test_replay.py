"""Tests for mostool.replay: the pcap/pcapng reader, merging, damage handling and pacing.

Captures are built byte by byte in tmp_path (small builders below); the corpus test reads the
shared public captures in place and is skipped when they are absent.
"""

from __future__ import annotations

import csv
import re
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import dpkt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mostool.replay import (
    MAX_SNAPLEN,
    CaptureError,
    CaptureWarning,
    Frame,
    ReplaySource,
    read_capture,
    replay,
)

# --- builders -----------------------------------------------------------------------------------

PCAP_MAGIC = {False: 0xA1B2C3D4, True: 0xA1B23C4D}
Record = tuple[int, int, bytes, int]  # seconds, fraction, captured bytes, wire length


def pcap_bytes(
    records: list[Record],
    *,
    bo: str = "<",
    nsec: bool = False,
    network: int = 1,
    snaplen: int = 65535,
    version: tuple[int, int] = (2, 4),
    magic: int | None = None,
    extra: bytes = b"",
) -> bytes:
    """A classic pcap; ``extra`` is appended to every record header (modified pcap)."""
    m = PCAP_MAGIC[nsec] if magic is None else magic
    out = [struct.pack(bo + "IHHiIII", m, version[0], version[1], 0, 0, snaplen, network)]
    for sec, frac, data, orig in records:
        out.append(struct.pack(bo + "IIII", sec, frac, len(data), orig) + extra + data)
    return b"".join(out)


def _pad(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def block(bo: str, btype: int, body: bytes) -> bytes:
    body = _pad(body)
    n = len(body) + 12
    return struct.pack(bo + "II", btype, n) + body + struct.pack(bo + "I", n)


def option(bo: str, code: int, value: bytes) -> bytes:
    return struct.pack(bo + "HH", code, len(value)) + _pad(value)


def shb(bo: str, major: int = 1, minor: int = 0, options: bytes = b"") -> bytes:
    return block(bo, 0x0A0D0D0A, struct.pack(bo + "IHHq", 0x1A2B3C4D, major, minor, -1) + options)


def idb(
    bo: str,
    linktype: int,
    snaplen: int = 0,
    tsresol: int | None = None,
    tsoffset: int | None = None,
) -> bytes:
    opts = b""
    if tsresol is not None:
        opts += option(bo, 9, bytes([tsresol]))
    if tsoffset is not None:
        opts += option(bo, 14, struct.pack(bo + "q", tsoffset))
    if opts:
        opts += option(bo, 0, b"")
    return block(bo, 1, struct.pack(bo + "HHI", linktype, 0, snaplen) + opts)


def epb(bo: str, ifid: int, t: int, data: bytes, orig: int | None = None) -> bytes:
    orig = len(data) if orig is None else orig
    body = struct.pack(bo + "IIIII", ifid, t >> 32, t & 0xFFFFFFFF, len(data), orig) + _pad(data)
    return block(bo, 6, body + option(bo, 1, b"comment") + option(bo, 0, b""))


def spb(bo: str, data: bytes, orig: int | None = None) -> bytes:
    orig = len(data) if orig is None else orig
    return block(bo, 3, struct.pack(bo + "I", orig) + data)


def opb(bo: str, ifid: int, t: int, data: bytes, orig: int | None = None) -> bytes:
    orig = len(data) if orig is None else orig
    body = struct.pack(bo + "HHIIII", ifid, 0, t >> 32, t & 0xFFFFFFFF, len(data), orig)
    return block(bo, 2, body + data)


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(content)
    return p


def read_all(path: Path) -> tuple[list[Frame], list[str]]:
    warnings: list[str] = []
    frames = list(read_capture(path, warnings))
    return frames, warnings


class FakeTime:
    """A clock and a sleep that advances it, recording every sleep."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


def delivery_times(source: ReplaySource, fake: FakeTime) -> list[float]:
    """Seconds after the first frame at which each frame was handed out."""
    times = [fake.now for _ in source.frames()]
    return [t - times[0] for t in times]


# --- classic pcap -------------------------------------------------------------------------------


@pytest.mark.parametrize("bo", ["<", ">"])
@pytest.mark.parametrize("nsec", [False, True])
def test_pcap_both_byte_orders_and_resolutions(tmp_path: Path, bo: str, nsec: bool) -> None:
    units = 10**9 if nsec else 10**6
    recs: list[Record] = [
        (1_700_000_000, 123_456, b"\x01\x02\x03", 60),
        (1_700_000_001, units - 1, bytes(range(200)), 200),
        (0, 0, b"", 0),
    ]
    p = write(tmp_path, "cap.pcap", pcap_bytes(recs, bo=bo, nsec=nsec, network=113))
    frames, warnings = read_all(p)
    assert warnings == []
    assert [(f[1], f[2], f[3]) for f in frames] == [(113, r[2], r[3]) for r in recs]
    # the documented formula, exactly; and within a microsecond of the true value
    assert [f[0] for f in frames] == [s + fr / units for s, fr, _, _ in recs]
    assert frames[0][0] == pytest.approx(1_700_000_000 + 123_456 / units, abs=1e-6)
    assert all(type(f[2]) is bytes and type(f[0]) is float for f in frames)


def test_pcap_linktype_masks_fcs_bits(tmp_path: Path) -> None:
    p = write(
        tmp_path, "fcs.pcap", pcap_bytes([(1, 0, b"x", 1)], network=0x4000_0000 | 0x10 << 24 | 1)
    )
    assert [f[1] for f in read_capture(p)] == [1]


def test_modified_pcap_record_headers(tmp_path: Path) -> None:
    recs: list[Record] = [(5, 6, b"abcd", 4), (7, 8, b"ef", 9)]
    for bo in "<>":
        data = pcap_bytes(recs, bo=bo, magic=0xA1B2CD34, extra=b"\xee" * 8)
        frames, warnings = read_all(write(tmp_path, f"mod{bo == '<'}.pcap", data))
        assert warnings == []
        assert [(f[2], f[3]) for f in frames] == [(b"abcd", 4), (b"ef", 9)]


def test_old_pcap_versions_swap_lengths_as_libpcap_does(tmp_path: Path) -> None:
    # 2.0-2.2: fields are (len, caplen); 2.3: either order, the smaller is caplen.
    old = (
        pcap_bytes([(1, 0, b"", 0)], version=(2, 0))[:24]
        + struct.pack("<IIII", 1, 0, 60, 3)
        + b"abc"
    )
    frames, warnings = read_all(write(tmp_path, "v20.pcap", old))
    assert warnings == [] and [(f[2], f[3]) for f in frames] == [(b"abc", 60)]
    v23 = pcap_bytes([(1, 0, b"", 0)], version=(2, 3))[:24]
    v23 += struct.pack("<IIII", 1, 0, 60, 2) + b"ab" + struct.pack("<IIII", 2, 0, 2, 60) + b"cd"
    frames, warnings = read_all(write(tmp_path, "v23.pcap", v23))
    assert warnings == [] and [(f[2], f[3]) for f in frames] == [(b"ab", 60), (b"cd", 60)]


def test_invalid_timestamp_fraction_read_as_is(tmp_path: Path) -> None:
    p = write(tmp_path, "badts.pcap", pcap_bytes([(10, 2_500_000, b"x", 1), (11, 0, b"y", 1)]))
    frames, warnings = read_all(p)
    assert warnings == []
    assert [f[0] for f in frames] == [12.5, 11.0]


def test_dpkt_writers_round_trip(tmp_path: Path) -> None:
    pkts = [(1_600_000_000.25, b"\xaa" * 60), (1_600_000_000.5, b"\xbb" * 1514)]
    p1 = tmp_path / "dpkt.pcap"
    with p1.open("wb") as f:
        w = dpkt.pcap.Writer(f, linktype=dpkt.pcap.DLT_EN10MB)
        for ts, buf in pkts:
            w.writepkt(buf, ts=ts)
    p2 = tmp_path / "dpkt.pcapng"
    with p2.open("wb") as f:
        w2 = dpkt.pcapng.Writer(f, linktype=dpkt.pcap.DLT_EN10MB)
        for ts, buf in pkts:
            w2.writepkt(buf, ts=ts)
    for p in (p1, p2):
        frames, warnings = read_all(p)
        assert warnings == []
        assert [(f[0], f[1], f[2], f[3]) for f in frames] == [
            (ts, 1, buf, len(buf)) for ts, buf in pkts
        ]


# --- pcapng -------------------------------------------------------------------------------------


def two_section_pcapng() -> bytes:
    le, be = "<", ">"
    section1 = [
        shb(le, options=option(le, 4, b"mostool test") + option(le, 0, b"")),
        idb(le, 1),  # if 0: Ethernet, default microseconds
        block(le, 4, struct.pack("<HH", 1, 8) + bytes([10, 0, 0, 1]) + b"host" + b"\0" * 4),  # NRB
        idb(le, 101, tsresol=9, tsoffset=-100),  # if 1: raw IP, nanoseconds, offset
        epb(le, 0, 1_700_000_000_123_456, b"eth-frame", 70),
        block(le, 5, struct.pack("<III", 0, 0, 0)),  # ISB
        block(le, 0x0BAD, b"\x00\x00\x7e\xd9custom"),  # custom block
        block(le, 0x0000_0A0D, b"decryption secrets"),  # DSB
        block(le, 0x7777, b"unknown block type"),
        epb(le, 1, 1_700_000_001_000_000_001, b"raw-ip"),
        opb(le, 0, 1_700_000_002_000_000, b"obsolete", 99),
        # orig 200 > the block: captured = the block room, padding included (the format cannot
        # tell padding from data when the packet was cut)
        spb(le, b"simple-frame!", 200),
    ]
    section2 = [
        shb(be),
        idb(be, 113, snaplen=4, tsresol=0x80 | 20),  # if 0 again (reset): SLL, 2^-20 s, snaplen 4
        epb(be, 0, (1_700_000_003 << 20) + (1 << 19), b"sll-frame"),
        spb(be, b"0123456789", 10),  # cut to snaplen 4
        spb(be, b"ab", 2),  # orig smaller than the padded room
    ]
    return b"".join(section1 + section2)


def test_pcapng_interfaces_sections_and_block_types(tmp_path: Path) -> None:
    frames, warnings = read_all(write(tmp_path, "multi.pcapng", two_section_pcapng()))
    assert warnings == []
    assert [(f[1], f[2], f[3]) for f in frames] == [
        (1, b"eth-frame", 70),
        (101, b"raw-ip", 6),
        (1, b"obsolete", 99),
        (1, b"simple-frame!\0\0\0", 200),
        (113, b"sll-frame", 9),
        (113, b"0123", 10),
        (113, b"ab", 2),
    ]
    ts = [f[0] for f in frames]
    assert ts[0] == 1_700_000_000 + 123_456 / 10**6
    assert ts[1] == (1_700_000_001 - 100) + 1 / 10**9
    assert ts[2] == 1_700_000_002.0
    assert ts[3] == ts[2]  # a simple packet block has no timestamp: the previous one
    assert ts[4] == 1_700_000_003.5  # binary resolution 2^-20
    assert ts[5] == ts[6] == ts[4]


def test_pcapng_file_named_pcap(tmp_path: Path) -> None:
    frames, _ = read_all(write(tmp_path, "really-pcapng.pcap", two_section_pcapng()))
    assert len(frames) == 7


def test_pcapng_interfaces_reset_per_section(tmp_path: Path) -> None:
    le = "<"
    body = shb(le) + idb(le, 1) + idb(le, 0) + epb(le, 1, 0, b"a")
    second = shb(le) + idb(le, 1) + epb(le, 1, 0, b"b")
    frames, warnings = read_all(write(tmp_path, "reset.pcapng", body + second))
    assert [f[2] for f in frames] == [b"a"]
    assert len(warnings) == 1
    assert f"byte offset {len(body) + len(shb(le)) + len(idb(le, 1))}" in warnings[0]
    assert "interface 1" in warnings[0] and "read 1 packets" in warnings[0]


def test_pcapng_unsupported_version(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match=r"v2\.pcapng: unsupported pcapng version 2\.0"):
        read_capture(write(tmp_path, "v2.pcapng", shb("<", major=2) + idb("<", 1)))
    # a later section of version 2 ends the file with a warning
    first = shb("<") + idb("<", 1) + epb("<", 0, 5, b"ok")
    frames, warnings = read_all(write(tmp_path, "later.pcapng", first + shb("<", major=2)))
    assert [f[2] for f in frames] == [b"ok"]
    assert warnings == [
        f"{tmp_path / 'later.pcapng'}: section at byte offset {len(first)} has unsupported"
        " pcapng version 2.0; read 1 packets"
    ]


@pytest.mark.parametrize(
    ("damage", "expect"),
    [
        ("trailer", "trailing length"),
        ("length-not-multiple-of-4", "corrupt block header"),
        ("length-too-small", "corrupt block header"),
        ("cut", "is cut short (needs"),
        ("caplen-exceeds-block", "captured length"),
        ("spb-without-interface", "no interface"),
    ],
)
def test_pcapng_damage(tmp_path: Path, damage: str, expect: str) -> None:
    le = "<"
    good = shb(le) + idb(le, 1) + epb(le, 0, 1, b"first")
    bad = bytearray(epb(le, 0, 2, b"second packet"))
    head = good
    if damage == "trailer":
        bad[-4:] = struct.pack("<I", len(bad) + 4)
    elif damage == "length-not-multiple-of-4":
        bad[4:8] = struct.pack("<I", len(bad) - 3)
    elif damage == "length-too-small":
        bad[4:8] = struct.pack("<I", 8)
    elif damage == "cut":
        bad = bad[:-5]
    elif damage == "caplen-exceeds-block":
        bad[20:24] = struct.pack("<I", 4000)
    elif damage == "spb-without-interface":
        head = shb(le) + epb(le, 0, 1, b"")[:0]
        bad = bytearray(spb(le, b"x"))
    p = write(tmp_path, "damaged.pcapng", head + bytes(bad) + epb(le, 0, 3, b"never"))
    if damage == "cut":
        p.write_bytes(head + bytes(bad))
    frames, warnings = read_all(p)
    assert [f[2] for f in frames] == ([b"first"] if head is good else [])
    assert len(warnings) == 1
    assert expect in warnings[0]
    assert f"byte offset {len(head)}" in warnings[0]
    assert warnings[0].startswith(str(p) + ": ")


# --- damage, non-captures, empty files ----------------------------------------------------------


def test_cut_short_record(tmp_path: Path) -> None:
    recs: list[Record] = [(i, 0, bytes([i]) * 100, 100) for i in range(5)]
    whole = pcap_bytes(recs)
    p = write(tmp_path, "capture.pcap", whole[:-30])
    frames, warnings = read_all(p)
    assert [f[2] for f in frames] == [r[2] for r in recs[:4]]
    offset = 24 + 4 * 116
    assert warnings == [
        f"{p}: record at byte offset {offset} is cut short (needs 116 bytes, 86 left);"
        " read 4 packets"
    ]


def test_cut_short_record_header(tmp_path: Path) -> None:
    whole = pcap_bytes([(1, 0, b"abc", 3), (2, 0, b"def", 3)])
    frames, warnings = read_all(write(tmp_path, "c.pcap", whole[: 24 + 19 + 5]))
    assert [f[2] for f in frames] == [b"abc"]
    assert len(warnings) == 1 and "record header at byte offset 43 is cut short" in warnings[0]
    assert "(needs 16 bytes, 5 left); read 1 packets" in warnings[0]


@pytest.mark.parametrize("claimed", [4_325_376, 3_925_868_813, MAX_SNAPLEN + 1])
def test_corrupt_huge_record_header(tmp_path: Path, claimed: int) -> None:
    good = pcap_bytes([(1, 0, b"abc", 3)])
    bad = struct.pack("<IIII", 2, 0, claimed, claimed) + b"x" * 300
    p = write(tmp_path, "huge.pcap", good + bad)
    frames, warnings = read_all(p)
    assert [f[2] for f in frames] == [b"abc"]
    assert warnings == [
        f"{p}: corrupt record header at byte offset {len(good)} (captured length {claimed}"
        f" > maximum {MAX_SNAPLEN}); read 1 packets"
    ]


def test_big_snaplen_allows_big_records(tmp_path: Path) -> None:
    data = b"z" * (MAX_SNAPLEN + 10)
    p = write(tmp_path, "jumbo.pcap", pcap_bytes([(1, 0, data, len(data))], snaplen=1 << 20))
    frames, warnings = read_all(p)
    assert warnings == [] and frames[0][2] == data


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("text.pcap", b"this is not a capture file at all\n", "not a pcap or pcapng file"),
        ("short.pcap", b"\xd4\xc3", "too short"),
        ("header.pcap", pcap_bytes([])[:20], "pcap file header is cut short"),
        ("ng.pcapng", shb("<")[:20], "pcapng section header is cut short"),
        ("bom.pcapng", shb("<")[:8] + b"XXXX" + shb("<")[12:], "bad byte-order magic"),
        ("gz.pcap.gz", b"\x1f\x8b\x08\x00" + b"\0" * 40, "gzip"),
        ("archaic.pcap", pcap_bytes([], version=(1, 0)), "unsupported pcap version 1.0"),
    ],
)
def test_not_a_capture(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    p = write(tmp_path, name, content)
    with pytest.raises(CaptureError) as exc:
        ReplaySource([write(tmp_path, "fine.pcap", pcap_bytes([])), p])
    msg = str(exc.value)
    assert reason in msg and str(p) in msg and "\n" not in msg
    with pytest.raises(CaptureError):
        read_capture(p)  # raised by the call itself, before any iteration


@pytest.mark.parametrize("kind", ["directory", "missing", "nul", "newline"])
def test_unreadable_paths(tmp_path: Path, kind: str) -> None:
    p = tmp_path / {"nul": "d\0x", "newline": "d\nx"}.get(kind, "d")
    if kind == "directory":
        p.mkdir()
    with pytest.raises(CaptureError, match=r"cannot read file") as exc:
        ReplaySource(p)
    shown = str(p) if str(p).isprintable() else repr(str(p))  # a NUL or newline is escaped
    assert shown in str(exc.value) and "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "content",
    [b"", pcap_bytes([]), pcap_bytes([], bo=">", nsec=True), shb("<"), shb(">") + idb(">", 1)],
)
def test_empty_captures(tmp_path: Path, content: bytes) -> None:
    frames, warnings = read_all(write(tmp_path, "empty.pcap", content))
    assert frames == [] and warnings == []


def test_warning_without_list_is_a_capture_warning(tmp_path: Path) -> None:
    p = write(tmp_path, "w.pcap", pcap_bytes([(1, 0, b"abc", 3)])[:-1])
    with pytest.warns(CaptureWarning, match="cut short"):
        assert list(read_capture(p)) == []


def _variants() -> list[bytes]:
    recs: list[Record] = [(i, i * 7, bytes([i]) * (i * 13 % 70), 64) for i in range(12)]
    return [pcap_bytes(recs), pcap_bytes(recs, bo=">", nsec=True), two_section_pcapng()]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    which=st.integers(0, 2),
    cut=st.integers(0, 4000),
    flips=st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 255)), max_size=4),
)
def test_damaged_input_never_raises_while_iterating(
    tmp_path: Path, which: int, cut: int, flips: list[tuple[int, int]]
) -> None:
    original = _variants()[which]
    expected = [f for f in read_capture(write(tmp_path, "orig", original))]
    data = bytearray(original[: min(cut, len(original))])
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    p = write(tmp_path, "fuzz", bytes(data))
    warnings: list[str] = []
    try:
        it = read_capture(p, warnings)
    except CaptureError as e:
        assert "\n" not in str(e)
        return
    frames = list(it)
    assert len(warnings) <= 1
    if not flips:  # only truncated: a prefix of the frames, a warning unless cut cleanly
        assert frames == expected[: len(frames)]
        if which < 2 and len(data) > 0:  # classic pcap: records end at known offsets
            ends = {24}
            for f in expected:
                ends.add(max(ends) + 16 + len(f[2]))
            assert (len(warnings) == 0) == (len(data) in ends)


# --- the replay source: merging, stop, stats ----------------------------------------------------


def test_merge_two_files_by_timestamp(tmp_path: Path) -> None:
    a = write(
        tmp_path,
        "a.pcap",
        pcap_bytes(
            [
                (1, 0, b"a1", 2),
                (3, 0, b"a3", 2),
                (3, 0, b"a3'", 3),
                (2, 0, b"a2-late", 7),
                (5, 0, b"a5", 2),
            ]
        ),
    )
    le = "<"
    b = write(
        tmp_path,
        "b.pcapng",
        shb(le)
        + idb(le, 101)
        + b"".join(epb(le, 0, t * 10**6, d) for t, d in [(0, b"b0"), (3, b"b3"), (4, b"b4")]),
    )
    src = ReplaySource([a, b])
    got = [(f[0], f[2]) for f in src.frames()]
    # ties keep file order (a before b); a's late frame is not moved before its predecessors
    assert got == [
        (0.0, b"b0"),
        (1.0, b"a1"),
        (3.0, b"a3"),
        (3.0, b"a3'"),
        (2.0, b"a2-late"),
        (3.0, b"b3"),
        (4.0, b"b4"),
        (5.0, b"a5"),
    ]
    stats = src.stats()
    assert stats["packets"] == 8 and stats["files"] == 2
    assert stats["bytes"] == sum(len(d) for _, d in got)
    assert src.total_bytes == a.stat().st_size + b.stat().st_size
    assert src.position_bytes == src.total_bytes
    assert src.name == "a.pcap, b.pcapng"
    assert replay(a, b).name == src.name


def test_one_file_out_of_order_is_kept_in_file_order(tmp_path: Path) -> None:
    p = write(tmp_path, "ooo.pcap", pcap_bytes([(5, 0, b"x", 1), (1, 0, b"y", 1), (3, 0, b"z", 1)]))
    assert [f[2] for f in replay(p).frames()] == [b"x", b"y", b"z"]


def test_warnings_collected_from_every_file(tmp_path: Path) -> None:
    good = write(tmp_path, "good.pcap", pcap_bytes([(1, 0, b"g", 1)]))
    cut = write(tmp_path, "cut.pcap", pcap_bytes([(0, 0, b"c", 1), (2, 0, b"cc", 2)])[:-1])
    src = replay(good, cut)
    assert [f[2] for f in src.frames()] == [b"c", b"g"]
    assert len(src.warnings) == 1 and src.warnings[0].startswith(f"{cut}: record at byte offset 41")
    assert src.stats()["warnings"] == 1


def test_stop_from_a_consumer(tmp_path: Path) -> None:
    p = write(tmp_path, "s.pcap", pcap_bytes([(i, 0, b"x", 1) for i in range(10)]))
    src = replay(p)
    got = []
    for f in src.frames():
        got.append(f)
        if len(got) == 3:
            src.stop()
    assert len(got) == 3 and src.stats()["packets"] == 3


def test_frames_again_rereads(tmp_path: Path) -> None:
    p = write(tmp_path, "r.pcap", pcap_bytes([(1, 0, b"a", 1), (2, 0, b"b", 1)])[:-1])
    src = replay(p)
    assert len(list(src.frames())) == 1 and len(src.warnings) == 1
    assert len(list(src)) == 1 and len(src.warnings) == 1 and src.stats()["packets"] == 1


def test_position_advances(tmp_path: Path) -> None:
    p = write(tmp_path, "pos.pcap", pcap_bytes([(i, 0, b"x" * 84, 84) for i in range(4)]))
    src = replay(p)
    it = src.frames()
    assert src.position_bytes == 0
    next(it)
    assert src.position_bytes == 24 + 100
    list(it)
    assert src.position_bytes == src.total_bytes == 424


# --- pacing -------------------------------------------------------------------------------------


def paced(tmp_path: Path, recs: list[Record], **pacing: float) -> tuple[ReplaySource, FakeTime]:
    fake = FakeTime()
    p = write(tmp_path, "paced.pcap", pcap_bytes(recs))
    return ReplaySource(p, sleep=fake.sleep, clock=fake.clock, **pacing), fake


def secs(*ts: float) -> list[Record]:
    return [(int(t), round((t % 1) * 1e6), b"p" * 10, 1000) for t in ts]


def test_top_speed_never_sleeps(tmp_path: Path) -> None:
    src, fake = paced(tmp_path, secs(0, 10, 3600))
    assert delivery_times(src, fake) == [0, 0, 0] and fake.sleeps == []


@pytest.mark.parametrize(("speed", "expect"), [(1.0, [0, 1, 3, 3.5]), (2.0, [0, 0.5, 1.5, 1.75])])
def test_speed_scales_recorded_gaps(tmp_path: Path, speed: float, expect: list[float]) -> None:
    src, fake = paced(tmp_path, secs(100, 101, 103, 103.5), speed=speed)
    times = delivery_times(src, fake)
    assert times == pytest.approx(expect)
    assert sum(fake.sleeps) == pytest.approx(expect[-1])
    assert max(fake.sleeps) <= 0.25  # slept in slices, so stop() is prompt
    assert src.stats()["lag_max"] == pytest.approx(0.0, abs=1e-9)


def test_speed_does_not_change_timestamps(tmp_path: Path) -> None:
    src, fake = paced(tmp_path, secs(100, 101), speed=4)
    assert [f[0] for f in src.frames()] == [100.0, 101.0]


def test_max_gap_caps_each_wait(tmp_path: Path) -> None:
    src, fake = paced(tmp_path, secs(0, 1, 3601, 3602.5), speed=1, max_gap=2)
    assert delivery_times(src, fake) == pytest.approx([0, 1, 3, 4.5])


def test_backwards_timestamp_sent_at_once(tmp_path: Path) -> None:
    src, fake = paced(tmp_path, secs(0, 5, 2, 6), speed=1)
    assert delivery_times(src, fake) == pytest.approx([0, 5, 5, 6])


def test_pps_spacing(tmp_path: Path) -> None:
    src, fake = paced(tmp_path, secs(0, 100, 100, 200), pps=4)
    assert delivery_times(src, fake) == pytest.approx([0, 0.25, 0.5, 0.75])


def test_mbps_spacing_by_wire_length(tmp_path: Path) -> None:
    recs = [(0, 0, b"x", 1000), (0, 0, b"x", 500), (0, 0, b"x", 2000), (0, 0, b"x", 10)]
    src, fake = paced(tmp_path, recs, mbps=8)  # 1 byte per microsecond
    assert delivery_times(src, fake) == pytest.approx([0, 0.001, 0.0015, 0.0035])


def test_schedule_is_absolute_and_lag_is_tracked(tmp_path: Path) -> None:
    src, fake = paced(tmp_path, secs(0, 1, 2, 10), speed=1)
    times = []
    for f in src.frames():
        times.append(fake.now)
        if f[0] == 0:
            fake.now += 2.5  # a slow consumer: frames 2 and 3 are late, no sleep for them
    assert [t - times[0] for t in times] == pytest.approx([0, 2.5, 2.5, 10])
    stats = src.stats()
    assert stats["lag_max"] == pytest.approx(1.5) and stats["lag_last"] == pytest.approx(0)


def test_stop_during_a_long_wait(tmp_path: Path) -> None:
    fake = FakeTime()
    sources: list[ReplaySource] = []

    def sleep(seconds: float) -> None:  # the fake's sleep, plus a stop() as a signal handler
        fake.sleep(seconds)
        if len(fake.sleeps) == 2:
            sources[0].stop()

    p = write(tmp_path, "long.pcap", pcap_bytes(secs(0, 3600)))
    sources.append(ReplaySource(p, speed=1, sleep=sleep, clock=fake.clock))
    assert len(list(sources[0].frames())) == 1 and len(fake.sleeps) == 2


def test_real_clock_pacing(tmp_path: Path) -> None:
    p = write(tmp_path, "real.pcap", pcap_bytes(secs(0, 0.05, 0.1)))
    src = ReplaySource(p, speed=1)
    started = time.monotonic()
    assert len(list(src.frames())) == 3
    assert time.monotonic() - started >= 0.1 - 1e-3
    assert 0 <= src.stats()["lag_max"] < 0.5


@pytest.mark.parametrize(
    "pacing",
    [{"speed": 0}, {"pps": -1}, {"mbps": float("nan")}, {"speed": 1, "pps": 1}, {"max_gap": -1}],
)
def test_bad_pacing_is_a_value_error(tmp_path: Path, pacing: dict[str, float]) -> None:
    p = write(tmp_path, "x.pcap", pcap_bytes([]))
    with pytest.raises(ValueError):
        replay(p, **pacing)


def test_no_paths_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        replay()


# --- the public corpus --------------------------------------------------------------------------

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PCAPS = SHARED / "pcaps"
MANIFEST = PCAPS / "MANIFEST.tsv"


def _manifest() -> list[dict[str, str]]:
    if not MANIFEST.is_file():
        return []
    with MANIFEST.open(newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def test_corpus() -> None:
    """Every manifest file opens and reads without an exception; frame counts match capinfos."""
    rows = _manifest()
    if not rows:
        pytest.skip(f"no capture corpus at {PCAPS}")
    started = time.perf_counter()
    problems: list[str] = []
    open_errors: dict[str, str] = {}
    damaged: dict[str, str] = {}
    for row in rows:
        path = PCAPS / row["path"]
        tags = set(row["tags"].split(","))
        warnings: list[str] = []
        try:
            it: Iterator[Frame] = read_capture(path, warnings)
        except CaptureError as e:
            open_errors[row["path"]] = str(e)
            continue
        count = 0
        linktypes = set()
        for ts, linktype, data, wire_len in it:
            count += 1
            linktypes.add(linktype)
            assert type(ts) is float and type(data) is bytes and isinstance(wire_len, int)
        if len(warnings) > 1:
            problems.append(f"{row['path']}: {len(warnings)} warnings")
        if warnings:
            damaged[row["path"]] = warnings[0]
        manifest_types = {int(x) for x in re.findall(r"\((\d+)\)", row["linktype(s)"])}
        if not linktypes <= manifest_types:
            problems.append(f"{row['path']}: link types {linktypes} not in {manifest_types}")
        damage_tags = tags & {"tshark-error", "corrupt", "cut-short"}
        if row["packets"].isdigit() and not damage_tags and count != int(row["packets"]):
            problems.append(f"{row['path']}: {count} frames, capinfos says {row['packets']}")
        if row["packets"].isdigit() and "cut-short" in tags and count != int(row["packets"]):
            problems.append(f"{row['path']}: cut short: {count} frames, capinfos {row['packets']}")
        if (tags & {"cut-short", "corrupt", "unsupported-format"}) and not warnings:
            problems.append(f"{row['path']}: damaged but no warning")
        if not (tags & {"cut-short", "corrupt", "unsupported-format"}) and warnings:
            problems.append(f"{row['path']}: unexpected warning {warnings}")
    elapsed = time.perf_counter() - started
    assert problems == []
    # No file in the corpus is beyond reading: even the SHB-2.0 file has a readable first section.
    assert open_errors == {}
    assert set(damaged) == {
        r["path"]
        for r in rows
        if set(r["tags"].split(",")) & {"cut-short", "corrupt", "unsupported-format"}
    }
    assert elapsed < 10


def test_corpus_replay_merges_everything_quickly() -> None:
    rows = [r for r in _manifest() if r["path"].startswith("pcapng-test-generator/")]
    if not rows:
        pytest.skip(f"no capture corpus at {PCAPS}")
    src = ReplaySource([PCAPS / r["path"] for r in rows])
    ts = [f[0] for f in src.frames()]
    assert len(ts) == sum(int(r["packets"]) for r in rows)
    assert src.position_bytes == src.total_bytes
