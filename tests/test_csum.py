"""mostool.stack.csum: every variant of the ones'-complement sum against the definition."""

from __future__ import annotations

import contextlib
import importlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mostool.stack import csum
from mostool.stack.csum import ones_sum_bigint, ones_sum_loop, ones_sum_reference


def _variants() -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = [("picked", csum.ones_sum), ("bigint", ones_sum_bigint),
                                       ("loop", ones_sum_loop)]
    with contextlib.suppress(ImportError):      # the pure build: no C function to test
        found.append(("C", importlib.import_module("mostool.stack._csum").ones_sum))
    return found


VARIANTS = _variants()
IDS = [name for name, _ in VARIANTS]
EDGES = [
    b"", b"\x00", b"\x01", b"\xff", b"\x00\x00", b"\xff\xff", b"\xff\xff\xff\xff",
    b"\xff\xff" * 731, b"\x00" * 1460, b"\x00" * 1461, b"\xff\xfe\x00\x01",  # sums to 0xFFFF
    b"\x80\x00\x80\x00", b"\xff" * 7, b"\xff" * 9, bytes(range(256)) * 6, b"\x12\x34\x56",
]


def test_reference_matches_rfc1071_example() -> None:
    # RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2
    assert ones_sum_reference(bytes.fromhex("0001f203f4f5f6f7")) == 0xDDF2


@pytest.mark.parametrize(("name", "fn"), VARIANTS, ids=IDS)
@pytest.mark.parametrize("data", EDGES, ids=range(len(EDGES)))
@pytest.mark.parametrize("initial", [0, 1, 0xFFFE, 0xFFFF])
def test_edges(name: str, fn: object, data: bytes, initial: int) -> None:
    assert callable(fn)
    assert fn(data, initial) == ones_sum_reference(data, initial)


@pytest.mark.parametrize(("name", "fn"), VARIANTS, ids=IDS)
def test_zero_only_for_all_zero(name: str, fn: object) -> None:
    assert callable(fn)
    assert fn(b"\x00" * 40) == 0
    assert fn(b"\xff\xff") == 0xFFFF            # negative zero, not 0
    assert fn(b"\x12\x34\xed\xcb") == 0xFFFF    # x + ~x
    assert fn(b"", 0xFFFF) == 0xFFFF
    assert fn(b"\x00\x01") == 1


@pytest.mark.parametrize(("name", "fn"), VARIANTS, ids=IDS)
@given(data=st.binary(max_size=3000), initial=st.integers(0, 0xFFFF))
def test_matches_definition(name: str, fn: object, data: bytes, initial: int) -> None:
    assert callable(fn)
    assert fn(data, initial) == ones_sum_reference(data, initial)


@pytest.mark.parametrize(("name", "fn"), [v for v in VARIANTS if v[0] != "loop"],
                         ids=[n for n in IDS if n != "loop"])
def test_buffers_other_than_bytes(name: str, fn: object) -> None:
    assert callable(fn)
    data = bytes(range(251)) * 7
    want = ones_sum_reference(data)
    assert fn(bytearray(data)) == want
    assert fn(memoryview(data)[3:]) == ones_sum_reference(data[3:])


def test_checksum_of_a_tcp_segment_verifies() -> None:
    # a segment with the right checksum sums (with its pseudo-header) to 0xFFFF
    seg = bytearray(bytes.fromhex("c0010050000000010000000050022000") + b"\0\0\0\0" + b"hi!")
    pseudo = bytes.fromhex("0a000001 0a000002 0006") + len(seg).to_bytes(2, "big")
    start = ones_sum_reference(pseudo)
    seg[16:18] = (ones_sum_reference(bytes(seg), start) ^ 0xFFFF).to_bytes(2, "big")
    for _, fn in VARIANTS:
        assert callable(fn)
        assert fn(bytes(seg), csum.ones_sum(pseudo)) == 0xFFFF


def test_variant_follows_the_build() -> None:
    import mostool

    if mostool.COMPILED:
        assert csum.VARIANT in ("C", "mypyc loop")
    else:
        assert csum.VARIANT == "big int"


def test_bad_initial_rejected_by_c() -> None:
    c = dict(VARIANTS).get("C")
    if c is None:
        pytest.skip("pure build: no C checksum")
    assert callable(c)
    with pytest.raises(ValueError):
        c(b"ab", 0x10000)
    with pytest.raises(TypeError):
        c("text")


@given(data=st.binary(max_size=3000), start=st.integers(-4, 3010), length=st.integers(-4, 3010),
       initial=st.integers(0, 0xFFFF))
def test_ones_sum_at_is_the_sum_of_the_slice(data: bytes, start: int, length: int,
                                             initial: int) -> None:
    variants = [csum.ones_sum_at, csum.ones_sum_at_slice]
    with contextlib.suppress(ImportError):
        variants.append(importlib.import_module("mostool.stack._csum").ones_sum_at)
    for fn in variants:
        if start < 0 or length < 0 or start + length > len(data):
            with pytest.raises(IndexError):
                fn(data, start, length, initial)
        else:
            assert fn(data, start, length, initial) == ones_sum_reference(
                data[start:start + length], initial)
            assert fn(memoryview(data), start, length, initial) == fn(data, start, length,
                                                                      initial)


@given(data=st.binary(max_size=200), frame=st.integers(-2, 120), tlen=st.integers(0, 200),
       valid=st.booleans())
def test_ipv4_tcp_sum_ok_is_the_frames_pseudo_header_sum(data: bytes, frame: int, tlen: int,
                                                         valid: bool) -> None:
    """ipv4_tcp_sum_ok (C) and ipv4_tcp_sum_ok_at: the sum of the addresses and the segment
    plus the protocol and the segment length is 0xFFFF; IndexError outside the data."""
    buf = bytearray(data)
    if frame >= 0 and frame + 18 <= len(buf):
        buf[frame + 16:frame + 18] = tlen.to_bytes(2, "big")
        end = frame + 14 + tlen
        if valid and tlen >= 20 and end <= len(buf) and tlen - 12 >= 12:
            # a correct checksum at the TCP checksum's place (the 16 bytes after the addresses)
            buf[frame + 50:frame + 52] = b"\0\0"
            total = csum.ones_sum_at_slice(bytes(buf), frame + 26, tlen - 12, tlen - 14)
            buf[frame + 50:frame + 52] = (0xFFFF - total).to_bytes(2, "big")
    data = bytes(buf)
    variants = [csum.ipv4_tcp_sum_ok, csum.ipv4_tcp_sum_ok_at]
    with contextlib.suppress(ImportError):
        variants.append(importlib.import_module("mostool.stack._csum").ipv4_tcp_sum_ok)
    length = (data[frame + 16] << 8) | data[frame + 17] if 0 <= frame <= len(data) - 18 else -1
    for fn in variants:
        if length < 20 or frame + 14 + length > len(data):
            with pytest.raises(IndexError):
                fn(data, frame)
        else:
            want = csum.ones_sum_at_slice(data, frame + 26, length - 12, length - 14) == 0xFFFF
            assert fn(data, frame) is want
            assert fn(memoryview(data), frame) is want
