"""Fuzzing the reader, the decoder and the engine (issue 5): no exception escapes, memory stays
bounded, whatever the frames or the capture file.

Inputs are built from real traffic: windows of frames from ``sample_pcaps/`` and the netgen
captures (``../shared/pcaps/netgen``, used when present), with some frames mutated (bit flips,
byte overwrites, truncation, random bytes spliced in, insertions, deletions, another link type),
reordered, duplicated or retimed; and capture files written from such windows in every format
the reader knows (pcap µs/ns in both byte orders, pcapng with one or two sections, big- and
little-endian, decimal and binary ``if_tsresol``) whose header fields, record lengths and block
lengths are then overwritten, and which are finally mutated as plain bytes. What each run must
satisfy is in ``tests/fuzz/harness.py``.

The normal run tries a few hundred inputs per test, derandomized (the same inputs every run).
``MOSTOOL_FUZZ_LONG=1`` switches to 20,000 random inputs per test (``-s`` prints how many ran);
the atheris target is ``tests/fuzz/fuzz_engine.py``. Inputs that once broke something live in
``tests/fuzz/crashers/`` and are replayed by ``test_crashers_replay``.
"""

from __future__ import annotations

import io
import json
import os
import struct
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fuzz import harness
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

LONG = os.environ.get("MOSTOOL_FUZZ_LONG", "") == "1"
EXAMPLES = 20_000 if LONG else 200
#: Generous: the biggest input is ~40 frames of at most 64 KiB; the engine's buffers are bounded
#: by rcvbuf (1 MiB default per side). Everything a run allocates and keeps must fit.
MEMORY_LIMIT = 64 << 20
CRASHERS = Path(__file__).resolve().parent / "fuzz" / "crashers"

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not LONG,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)

TRIED: dict[str, int] = {}


def _tried(name: str) -> None:
    TRIED[name] = TRIED.get(name, 0) + 1


@pytest.fixture(scope="module", autouse=True)
def _report_inputs() -> Iterator[None]:
    yield
    if LONG and TRIED:
        total = sum(TRIED.values())
        parts = ", ".join(f"{k} {v}" for k, v in sorted(TRIED.items()))
        sys.__stderr__.write(f"\nfuzz: {total} inputs tried ({parts})\n")


def _seeds() -> list[list[harness.Frame]]:
    caps = harness.seed_captures()
    if not caps:
        pytest.skip(f"no seed captures in {harness.SAMPLES}")
    return caps


# -- strategies ----------------------------------------------------------------------------------

@st.composite
def mutated_bytes(draw: st.DrawFn, data: bytes, max_ops: int = 6) -> bytes:
    """``data`` after a few byte-level mutations."""
    b = bytearray(data)
    for _ in range(draw(st.integers(0, max_ops))):
        op = draw(st.sampled_from(["flip", "set", "cut", "splice", "insert", "delete"]))
        pos = draw(st.integers(0, 1 << 16)) % (len(b) + 1)
        if op == "flip" and b:
            b[pos % len(b)] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and b:
            b[pos % len(b)] = draw(st.sampled_from([0, 0xFF, 0x7F, 0x80, 1, 5, 6, 0x45, 0x60])
                                   | st.integers(0, 255))
        elif op == "cut":
            del b[pos:]
        elif op == "splice":
            chunk = draw(st.binary(min_size=1, max_size=16))
            b[pos:pos + len(chunk)] = chunk
        elif op == "insert":
            b[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del b[pos:pos + draw(st.integers(1, 16))]
    return bytes(b)


@st.composite
def frame_windows(draw: st.DrawFn) -> list[harness.Frame]:
    """A run of consecutive frames of a real capture, some mutated, reordered or retimed."""
    caps = _seeds()
    cap = draw(st.sampled_from(caps))
    start = draw(st.integers(0, len(cap) - 1))
    window = list(cap[start:start + draw(st.integers(1, 40))])
    out: list[harness.Frame] = []
    for ts, lt, data, wire in window:
        if draw(st.integers(0, 3)) == 0:
            data = draw(mutated_bytes(data))
            if draw(st.integers(0, 4)) == 0:
                lt = draw(st.sampled_from(harness.LINKTYPES))
            wire = len(data) + draw(st.sampled_from([0, 0, 0, 1, 40, 1500]))
        if draw(st.integers(0, 9)) == 0:
            ts += draw(st.sampled_from([-3600.0, -1.0, -1e-6, 0.5, 31.0, 700.0, 1e7]))
        out.append((ts, lt, data, wire))
    for _ in range(draw(st.integers(0, 3))):
        i, j = (draw(st.integers(0, len(out) - 1)) for _ in range(2))
        if draw(st.booleans()):
            out[i], out[j] = out[j], out[i]          # reorder
        else:
            out.insert(j, out[i])                    # duplicate
    return out


FORMATS = ("pcap", "pcap-be", "pcap-ns", "pcap-ns-be", "pcapng", "pcapng-be", "pcapng-2s",
           "pcapng-bin", "seed-file")


def _write(fmt: str, frames: list[harness.Frame]) -> bytes:
    if fmt == "pcap":
        return harness.pcap_bytes(frames)
    if fmt == "pcap-be":
        return harness.pcap_bytes(frames, big_endian=True)
    if fmt == "pcap-ns":
        return harness.pcap_bytes(frames, nanos=True)
    if fmt == "pcap-ns-be":
        return harness.pcap_bytes(frames, nanos=True, big_endian=True)
    if fmt == "pcapng":
        return harness.pcapng_bytes(frames)
    if fmt == "pcapng-be":
        return harness.pcapng_bytes(frames, big_endian=True, tsresol=9)
    if fmt == "pcapng-2s":
        return harness.pcapng_bytes(frames, sections=2)
    return harness.pcapng_bytes(frames, tsresol=0x94)       # binary resolution 2^-20


U32_VALUES = st.sampled_from([0, 1, 11, 12, 16, 20, 28, 31, 32, 0x7FFFFFFF, 0x80000000,
                              0xFFFFFFFF, 0x40000, 0x40001, 65535, 65536]) | st.integers(
                                  0, 2**32 - 1)


@st.composite
def capture_files(draw: st.DrawFn) -> bytes:
    """A capture file written from a window of real frames, then damaged."""
    fmt = draw(st.sampled_from(FORMATS))
    if fmt == "seed-file":
        files = [p for p in harness.seed_files() if p.stat().st_size <= 64 << 10]
        data = draw(st.sampled_from(files)).read_bytes() if files else b""
    else:
        caps = _seeds()
        cap = draw(st.sampled_from(caps))
        start = draw(st.integers(0, len(cap) - 1))
        data = _write(fmt, list(cap[start:start + draw(st.integers(0, 30))]))
    fields = harness.record_offsets(data)
    b = bytearray(data)
    for _ in range(draw(st.integers(0, 4)) if fields else 0):
        off, kind = draw(st.sampled_from(fields))
        value = draw(U32_VALUES)
        bo = draw(st.sampled_from("<>"))
        if kind == "u16" and off + 2 <= len(b):
            b[off:off + 2] = struct.pack(bo + "H", value & 0xFFFF)
        elif off + 4 <= len(b):
            b[off:off + 4] = struct.pack(bo + "I", value)
    return draw(mutated_bytes(bytes(b), max_ops=4))


CONFIG_INDEX = st.integers(0, len(harness.CONFIGS) - 1)


# -- the tests -----------------------------------------------------------------------------------

def _bounded(fn: Any, *args: Any) -> None:
    """Run ``fn(*args)`` and check the memory it allocated at its peak."""
    tracemalloc.start()
    try:
        fn(*args)
        _cur, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_LIMIT, f"peak {peak / 2**20:.1f} MiB"


@FUZZ
@given(frames=frame_windows(), config=CONFIG_INDEX)
def test_mutated_frames_through_decoder_and_engine(frames: list[harness.Frame],
                                                  config: int) -> None:
    _tried("frames")
    harness.check_decoder(frames)
    _bounded(harness.check_monitor, frames, harness.CONFIGS[config])


@FUZZ
@given(data=capture_files(), config=CONFIG_INDEX)
def test_mutated_capture_files_through_reader_and_engine(data: bytes, config: int) -> None:
    _tried("files")
    _bounded(harness.check_file, data, harness.CONFIGS[config])


@FUZZ
@given(data=st.binary(max_size=2048))
def test_arbitrary_bytes(data: bytes) -> None:
    """What the atheris target runs: byte 0 picks file or frame list and the configuration."""
    _tried("bytes")
    _bounded(harness.one_input, data)


@settings(FUZZ, max_examples=EXAMPLES // 2)
@given(data=capture_files(), command=st.sampled_from([["flows", "--hash"], ["events"]]))
def test_command_line_on_damaged_files(data: bytes, command: list[str]) -> None:
    """``mostool flows|events -r FILE`` (in process): exit status 0 or 2, a one-line error for
    an unusable file, JSON lines on stdout."""
    _tried("cli")
    from mostool import cli

    path = harness._tmp_path("cli-input.cap")
    path.write_bytes(data)
    out, err = io.StringIO(), io.StringIO()
    code = cli.main([command[0], "-r", str(path), *command[1:]], out, err)
    assert code in (0, 2), (code, err.getvalue())
    if code == 2:
        assert len(err.getvalue().splitlines()) == 1, err.getvalue()
    for line in out.getvalue().splitlines():
        json.loads(line)


def test_the_file_writers_make_files_the_reader_reads_back() -> None:
    """The seeds of the file fuzzer are valid captures (so mutations start from real files)."""
    frames = _seeds()[0][:10]
    for fmt in FORMATS[:-1]:
        data = _write(fmt, frames)
        assert harness.check_file(data) == "ok", fmt
        path = harness._tmp_path("roundtrip.cap")
        path.write_bytes(data)
        back = [f[2] for f in harness.load_frames(path)]
        assert back == [f[2] for f in frames], fmt


#: Crashers whose engine fix is still to come: file name prefix -> what the engine needs.
OPEN_CRASHERS: dict[str, str] = {}


def _crashers() -> list[Any]:
    out = []
    for path in sorted(CRASHERS.glob("*")):
        if not path.is_file() or path.name == "README.md":
            continue
        why = next((r for k, r in OPEN_CRASHERS.items() if path.name.startswith(k)), None)
        marks = [pytest.mark.xfail(strict=True, reason=why)] if why else []
        out.append(pytest.param(path, id=path.name, marks=marks))
    return out


def test_crashers_folder_is_there() -> None:
    assert CRASHERS.is_dir(), f"{CRASHERS} should hold the regression inputs (and a README)"


@pytest.mark.parametrize("path", _crashers())
def test_crashers_replay(path: Path) -> None:
    """Inputs that once broke a run (found by the fuzzers, kept in tests/fuzz/crashers/) stay
    fixed."""
    harness.one_input(path.read_bytes())
