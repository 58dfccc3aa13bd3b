"""The RFC 1071 ones'-complement sum, the heart of IP/TCP/UDP checksums.

Contract of :data:`ones_sum` ``(data, initial=0) -> int``: ``data`` is bytes (the C and
big-int variants also take any buffer: bytearray, memoryview), read as big-endian 16-bit words,
an odd last byte padded with a zero byte; ``initial`` is a partial sum in ``0..0xFFFF`` (the
pseudo-header's, say) added in ones'-complement arithmetic. The result is in ``0..0xFFFF``; it
is 0 only when ``data`` and ``initial`` are all zero: other sums that are multiples of 0xFFFF
come out as 0xFFFF (ones'-complement "negative zero"). A segment whose checksum field is right
sums (with its pseudo-header) to 0xFFFF.

``ones_sum_at(data, start, length, initial)`` is ``ones_sum(data[start:start + length],
initial)``; the C variant reads the range where it lies (no slice), and raises IndexError for a
range outside ``data`` as the fallback does.

Three variants, one picked at import:

* ``mostool.stack._csum.ones_sum``, a small C function of the compiled build (32-bit words into
  a 64-bit accumulator), when the build has it and the pure engine is not forced;
* :func:`ones_sum_loop`, a plain loop written for mypyc, when this module is compiled but the C
  function is missing (interpreted, it is by far the slowest: never picked then);
* :func:`ones_sum_bigint`, the fastest interpreted form: 2**16 == 1 (mod 0xFFFF), so the sum is
  the buffer's big-endian integer value modulo 0xFFFF, computed in C inside ``int``.
"""

from __future__ import annotations

import importlib
import importlib.machinery
from collections.abc import Callable
from typing import Final

from mypy_extensions import i64

__all__ = ["ones_sum", "ones_sum_at", "ones_sum_loop", "ones_sum_bigint", "ones_sum_reference",
           "ones_sum_at_slice", "ipv4_tcp_sum_ok", "ipv4_tcp_sum_ok_at", "VARIANT"]

# masks for folding big ints at multiples of 256 bits (see ones_sum_bigint)
_FOLD_MASKS: Final = tuple((1 << (256 * k)) - 1 for k in range(65))


def ones_sum_reference(data: bytes, initial: int = 0) -> int:
    """The definition, word by word with end-around carry (for tests)."""
    total = initial
    padded = bytes(data) + b"\0" * (len(data) & 1)
    for i in range(0, len(padded), 2):
        total += (padded[i] << 8) | padded[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return total


def ones_sum_loop(data: bytes, initial: int = 0) -> int:
    """A plain loop over 16-bit words in native 64-bit arithmetic when compiled with mypyc."""
    n: i64 = len(data)
    acc: i64 = initial
    i: i64 = 0
    last: i64 = n - 1
    while i < last:
        acc += (i64(data[i]) << 8) | i64(data[i + 1])
        i += 2
    if i < n:
        acc += i64(data[i]) << 8
    while acc > 0xFFFF:
        acc = (acc & 0xFFFF) + (acc >> 16)
    return acc


def ones_sum_bigint(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """The sum as the buffer's integer value modulo 0xFFFF (the interpreted engine's choice).

    CPython divides a big int digit by digit, so a long value is first folded at multiples of
    256 bits (2**(256k) == 1 mod 0xFFFF keeps the residue) down to <= 2048 bits.
    """
    x = int.from_bytes(data, "big")
    if len(data) & 1:
        x <<= 8
    nonzero = x != 0 or initial != 0
    n = x.bit_length()
    while n > 2048:
        h = ((n + 511) >> 9) << 8      # a multiple of 256 bits, at least n / 2
        x = (x >> h) + (x & (_FOLD_MASKS[h >> 8] if h <= 16384 else (1 << h) - 1))
        n = x.bit_length()
    r = (x + initial) % 0xFFFF
    return 0xFFFF if r == 0 and nonzero else r


def ones_sum_at_slice(data: bytes | bytearray | memoryview, start: int, length: int,
                      initial: int) -> int:
    """``ones_sum(data[start:start + length], initial)`` (``ones_sum_at`` without the C
    function; the C one reads the range in place)."""
    if start < 0 or length < 0 or start + length > len(data):
        raise IndexError("ones_sum_at: range outside data")
    return ones_sum(data[start:start + length], initial)


def ipv4_tcp_sum_ok_at(data: bytes | bytearray | memoryview, frame: int) -> bool:
    """Does the TCP checksum of the IPv4 packet (no options) of the Ethernet frame at
    ``data[frame:]`` verify? The addresses and the segment summed in one piece with the
    pseudo-header's protocol and length: ``ones_sum_at(data, frame + 26, tlen - 12, tlen - 14)
    == 0xFFFF`` for the IPv4 total length ``tlen`` (>= 20). IndexError when the packet is
    outside ``data``. (``ipv4_tcp_sum_ok`` without the C function.)"""
    if frame < 0 or frame + 18 > len(data):
        raise IndexError("ipv4_tcp_sum_ok: packet outside data")
    tlen = (data[frame + 16] << 8) | data[frame + 17]
    if tlen < 20 or frame + 14 + tlen > len(data):
        raise IndexError("ipv4_tcp_sum_ok: packet outside data")
    return ones_sum_at(data, frame + 26, tlen - 12, tlen - 14) == 0xFFFF


def _compiled() -> bool:
    return __file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def _pick() -> tuple[str, Callable[..., int], Callable[..., int] | None,
                    Callable[[bytes, int], bool] | None]:
    try:
        c_module = importlib.import_module("mostool.stack._csum")
    except ImportError:
        if _compiled():
            return "mypyc loop", ones_sum_loop, None, None
        return "big int", ones_sum_bigint, None, None
    fn: Callable[..., int] = c_module.ones_sum
    at: Callable[..., int] = c_module.ones_sum_at
    frame_ok: Callable[[bytes, int], bool] = c_module.ipv4_tcp_sum_ok
    return "C", fn, at, frame_ok


_PICKED: Final = _pick()
VARIANT: Final[str] = _PICKED[0]
ones_sum: Final[Callable[..., int]] = _PICKED[1]
# ones_sum_at(data, start, length, initial) -> ones_sum(data[start:start + length], initial),
# read in place by the C variant
ones_sum_at: Final[Callable[..., int]] = _PICKED[2] or ones_sum_at_slice
# ipv4_tcp_sum_ok(data, frame) -> bool: ipv4_tcp_sum_ok_at, in C (no int boxed but the offset)
ipv4_tcp_sum_ok: Final[Callable[[bytes, int], bool]] = _PICKED[3] or ipv4_tcp_sum_ok_at
