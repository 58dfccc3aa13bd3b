"""TCP fields read off a decoded segment: checksum, options, addresses.

``tcp_checksum_ok`` verifies a segment's checksum against its pseudo-header: compiled, with
``csum.ones_sum_at`` (C) where the segment lies; interpreted, with ``mod_ffff`` (the
ones'-complement sum of a byte string is its big-endian value modulo 0xFFFF, computed by folding);
``offload_verdict`` tells a checksum a sending host's NIC would have filled in from a bad one
(the in-place record reader uses it too). ``parse_tcp_options`` and ``tcp_wscale`` read options
(the latter with a fast path for Linux's SYN layout); ``format_addr`` writes an endpoint.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import TYPE_CHECKING, Final, NamedTuple

from mostool.stack.csum import VARIANT, ones_sum, ones_sum_at

if TYPE_CHECKING:
    from mostool.stack.decode import TcpSegment

__all__ = ["TcpOptions", "tcp_checksum_ok", "offload_verdict", "mod_ffff", "parse_tcp_options",
           "tcp_timestamps", "tcp_wscale", "format_addr"]

_IPPROTO_TCP: Final = 6
_U16: Final = struct.Struct("!H").unpack_from
_U32: Final = struct.Struct("!I").unpack_from


class TcpOptions(NamedTuple):
    """The TCP options mostool uses; everything else is ignored."""

    mss: int | None
    wscale: int | None
    """The raw shift count (RFC 7323 says to use 14 for anything larger)."""
    sack_permitted: bool
    sack_blocks: tuple[tuple[int, int], ...]
    ts_val: int | None
    ts_ecr: int | None


# --------------------------------------------------------------------------- checksums

# The compiled build sums segments in place with csum's C function (or its mypyc loop); the
# interpreted one keeps its fastest form, the segment as one big int modulo 0xFFFF (mod_ffff)
IN_PLACE_SUM: Final = VARIANT != "big int"

# Masks 2**h - 1 for h = 0, 256, ..., 16384 bits (segments up to ~4 KB fold with these).
_FOLD_MASKS: Final = tuple((1 << (k << 8)) - 1 for k in range(65))


def mod_ffff(x: int) -> int:
    """``x % 0xFFFF``, faster for long segments.

    Since 2**16 == 1 (mod 0xFFFF), splitting x at a multiple of 16 bits and adding the
    halves keeps the residue; two shifts/ands/adds on big ints are cheaper than CPython's
    digit-by-digit division, so x is folded down to <= 2048 bits first.
    """
    n = x.bit_length()
    while n > 2048:
        h = ((n + 511) >> 9) << 8  # a multiple of 256 bits, at least n / 2
        x = (x >> h) + (x & (_FOLD_MASKS[h >> 8] if h <= 16384 else (1 << h) - 1))
        n = x.bit_length()
    return x % 0xFFFF


def tcp_checksum_ok(seg: TcpSegment) -> bool | None:
    """Whether the TCP checksum is valid; ``None`` when it cannot be checked.

    It cannot be checked when the snaplen cut the segment, or when the IP length is 0
    (a TSO/GSO super-frame or jumbogram, whose checksum the NIC will fill in).
    The ones'-complement sum of a byte string is its big-endian value modulo 0xFFFF,
    so a segment is valid iff pseudo-header + segment is 0 modulo 0xFFFF.
    (IPv6 with a routing header is checked against the IPv6 destination field.)
    """
    buf = seg.buf
    if seg.payload_len < seg.wire_len:
        return None
    ip_off = seg.ip_off
    length_field = ip_off + 2 if seg.ip_version == 4 else ip_off + 4
    if buf[length_field] == 0 and buf[length_field + 1] == 0:
        return None
    start = seg.tcp_off
    tcp_len = ((buf[start + 12] >> 4) << 2) + seg.wire_len
    if start + tcp_len > len(buf):          # the snaplen cut the options
        return None
    if IN_PLACE_SUM:
        rest = _IPPROTO_TCP + tcp_len
        pseudo = ones_sum(seg.src + seg.dst, (rest & 0xFFFF) + (rest >> 16))
        if ones_sum_at(buf, start, tcp_len, pseudo) == 0xFFFF:
            return True
    else:
        x = int.from_bytes(buf[start : start + tcp_len], "big")
        if tcp_len & 1:
            x <<= 8
        pseudo = int.from_bytes(seg.src + seg.dst, "big") + _IPPROTO_TCP + tcp_len
        if (mod_ffff(x) + pseudo) % 0xFFFF == 0:
            return True
    return offload_verdict((buf[start + 16] << 8) | buf[start + 17], pseudo)


def offload_verdict(field: int, pseudo: int) -> bool | None:
    """A TCP checksum that did not verify: None when its ``field`` still holds the NIC's
    starting value, the pseudo-header sum ``pseudo`` (or its complement), as a sending host
    with checksum offload leaves it (not verifiable, not bad); else False."""
    partial = pseudo % 0xFFFF or 0xFFFF
    return None if field in (partial, partial ^ 0xFFFF) else False


# --------------------------------------------------------------------------- options

_NO_OPTIONS: Final = TcpOptions(None, None, False, (), None, None)


def parse_tcp_options(options: bytes) -> TcpOptions:
    """Parse MSS, window scale, SACK-permitted, SACK blocks and timestamps.

    Tolerant of garbage: parsing stops at the end-of-list option or at the first option
    whose length byte is missing, < 2 or runs past the end; a known option with the wrong
    length is skipped. Never raises.
    """
    if not options:
        return _NO_OPTIONS
    mss: int | None = None
    wscale: int | None = None
    sack_ok = False
    blocks: tuple[tuple[int, int], ...] = ()
    ts_val: int | None = None
    ts_ecr: int | None = None
    n = len(options)
    i = 0
    while i < n:
        kind = options[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= n:
            break
        olen = options[i + 1]
        if olen < 2 or i + olen > n:
            break
        if kind == 2 and olen == 4:
            mss = _U16(options, i + 2)[0]
        elif kind == 3 and olen == 3:
            wscale = options[i + 2]
        elif kind == 4 and olen == 2:
            sack_ok = True
        elif kind == 5 and olen >= 10 and (olen - 2) % 8 == 0:
            blocks = tuple(
                (_U32(options, j)[0], _U32(options, j + 4)[0]) for j in range(i + 2, i + olen, 8)
            )
        elif kind == 8 and olen == 10:
            ts_val = _U32(options, i + 2)[0]
            ts_ecr = _U32(options, i + 6)[0]
        i += olen
    return TcpOptions(mss, wscale, sack_ok, blocks, ts_val, ts_ecr)


_LINUX_SYN_HEAD: Final = b"\x02\x04"     # MSS, then SACK-permitted and timestamps ...
_LINUX_SYN_MID: Final = b"\x04\x02\x08\x0a"
_LINUX_SYN_TAIL: Final = b"\x01\x03\x03"     # ... NOP, window scale


def tcp_wscale(options: bytes) -> int | None:
    """``parse_tcp_options(options).wscale`` (what a SYN's bookkeeping needs): read at its fixed
    place in Linux's SYN and SYN/ACK layout, else by the full walk."""
    if (len(options) == 20 and options[16:19] == _LINUX_SYN_TAIL
            and options[4:8] == _LINUX_SYN_MID and options[:2] == _LINUX_SYN_HEAD):
        return options[19]
    return parse_tcp_options(options).wscale


def tcp_timestamps(options: bytes) -> tuple[int, int] | None:
    """``(ts_val, ts_ecr)`` of ``parse_tcp_options(options)``, None without a timestamps option
    (what a SYN's bookkeeping and its answer's echo check need): read at their fixed place in
    Linux's SYN and SYN/ACK layout, else by the full walk."""
    if (len(options) == 20 and options[16:19] == _LINUX_SYN_TAIL
            and options[4:8] == _LINUX_SYN_MID and options[:2] == _LINUX_SYN_HEAD):
        return ((options[8] << 24 | options[9] << 16 | options[10] << 8 | options[11]),
                (options[12] << 24 | options[13] << 16 | options[14] << 8 | options[15]))
    parsed = parse_tcp_options(options)
    if parsed.ts_val is None or parsed.ts_ecr is None:
        return None
    return parsed.ts_val, parsed.ts_ecr


# --------------------------------------------------------------------------- formatting


def format_addr(addr: bytes, port: int) -> str:
    """``"1.2.3.4:80"`` or ``"[2001:db8::1]:80"`` (the ipaddress module's canonical form)."""
    if len(addr) == 4:
        return f"{addr[0]}.{addr[1]}.{addr[2]}.{addr[3]}:{port}"
    if len(addr) == 16:
        return f"[{ipaddress.IPv6Address(addr)}]:{port}"
    raise ValueError(f"address of {len(addr)} bytes is neither IPv4 nor IPv6")
