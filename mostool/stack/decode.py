"""Frame decoding: link layer -> IPv4 / IPv6 -> TCP, with IP fragment reassembly.

Theory of operation
-------------------
``Decoder.decode(linktype, frame, ts)`` turns one captured frame into either a
:class:`TcpSegment` (a flat tuple of header fields plus offsets into a buffer) or
one of the integer status codes ``NOT_IP``, ``NOT_TCP``, ``FRAGMENT``,
``MALFORMED`` and ``UNKNOWN_LINKTYPE``.  It never raises on network input: a bad
header yields ``MALFORMED`` (or ``NOT_IP``) and ``Decoder.last_error`` says why.
``last_error`` is only meaningful right after a non-segment status; it is not
cleared on success (that would cost a store per packet).

The common case -- Ethernet, IPv4 without options, not fragmented, TCP -- is
handled by a fast path at the top of ``decode``: one precompiled
``struct.unpack_from`` over the first 54 bytes of the frame (it also yields the
two addresses), two integer tests, two slices (flow key and options) and one
``tuple.__new__``.  IPv4 (IHL 5) + TCP and IPv6 + TCP behind any other link
header (VLAN, SLL, NULL, raw ...) get the same one-unpack treatment at their
offset.  Anything those fast checks do not fully validate falls through to the
full decoder, which walks the link layer (802.1Q/802.1ad/0x9100 tags at any
depth, VN-Tag, PBB, PPPoE, MPLS; SLL, SLL2, NULL/LOOP, raw IP, PPP, Cisco
HDLC, NFLOG), the IPv4 header with options, or the IPv6 extension headers.
Frames must be ``bytes`` (the flow key is a slice of the frame and must hash).

No header objects are created: fields come from ``unpack_from`` on the frame,
and the segment carries offsets into ``buf`` (the frame itself, or the
reassembled datagram) so that the payload is copied only by whoever needs it.

IP fragments are reassembled by ``mostool/stack/ipfrag.py``; a completed datagram
is decoded as raw IP (linktype 228 / 229), so the segment's ``buf`` is the
reassembled datagram.  Fragments of a non-TCP datagram are answered with
``NOT_TCP`` straight away (the protocol is in every IPv4 fragment and in every
IPv6 fragment header) and never buffered.  Incomplete datagrams expire
``frag_timeout`` seconds of *packet* time after their first fragment.

Tunnels and more link types: ``decap``. Sans-IO: it imports pure stdlib and its own parts.
"""

from __future__ import annotations

import struct
from typing import Any, Final, NamedTuple

from mostool.stack.codes import (  # re-exported: decode is where they were first
    ACK,
    CWR,
    ECE,
    FIN,
    FRAGMENT,
    LINKTYPE_C_HDLC,
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NFLOG,
    LINKTYPE_NULL,
    LINKTYPE_PPP,
    LINKTYPE_PPP_ETHER,
    LINKTYPE_PPP_HDLC,
    LINKTYPE_RAW,
    MALFORMED,
    NOT_IP,
    NOT_TCP,
    PSH,
    RST,
    STATUS_NAMES,
    SUPPORTED_LINKTYPES,
    SYN,
    UNKNOWN_LINKTYPE,
    URG,
)
from mostool.stack.decap import EXTRA_LINKTYPES, TUNNEL_IP_PROTOCOLS, Decapsulator, TunnelHop
from mostool.stack.ipfrag import FragmentTable
from mostool.stack.tcpfields import (  # re-exported: decode is where they were first
    TcpOptions,
    format_addr,
    parse_tcp_options,
    tcp_checksum_ok,
    tcp_wscale,
)

__all__ = [
    "NOT_IP", "NOT_TCP", "FRAGMENT", "MALFORMED", "UNKNOWN_LINKTYPE", "STATUS_NAMES", "FIN", "SYN",
    "RST", "PSH", "ACK", "URG", "ECE", "CWR", "LINKTYPE_NULL", "LINKTYPE_ETHERNET", "LINKTYPE_PPP",
    "LINKTYPE_RAW", "LINKTYPE_PPP_HDLC", "LINKTYPE_PPP_ETHER", "LINKTYPE_C_HDLC", "LINKTYPE_LOOP",
    "LINKTYPE_LINUX_SLL", "LINKTYPE_IPV4", "LINKTYPE_IPV6", "LINKTYPE_NFLOG",
    "LINKTYPE_LINUX_SLL2", "SUPPORTED_LINKTYPES", "TcpSegment", "TcpOptions", "Decoder",
    "tcp_checksum_ok", "parse_tcp_options", "tcp_wscale", "format_addr",
]

_ETH_IPV4: Final = 0x0800
_ETH_IPV6: Final = 0x86DD
_ETH_VLAN: Final = frozenset({0x8100, 0x88A8, 0x9100})
_ETH_PPPOE_SESSION: Final = 0x8864
_ETH_VNTAG: Final = 0x8926
_ETH_PBB: Final = 0x88E7
_ETH_MPLS: Final = frozenset({0x8847, 0x8848})
_PPP_IPV4: Final = 0x0021
_PPP_IPV6: Final = 0x0057
_AF_INET: Final = 2
_AF_INET6: Final = frozenset({10, 24, 28, 30})

_IPPROTO_TCP: Final = 6
_IPPROTO_UDP: Final = 17
# IPv6 extension headers walked with the generic (len + 1) * 8 layout
_IP6_EXT_GENERIC: Final = frozenset({0, 43, 60})
_IP6_FRAGMENT: Final = 44
_IP6_AH: Final = 51
# first header of a fragmentable part that may still lead to TCP
_IP6_MAY_BE_TCP: Final = frozenset({_IPPROTO_TCP, 0, 43, 60, _IP6_AH})

# --------------------------------------------------------------------------- structs

# Fast path: Ethernet (no tag) + IPv4 (IHL 5) + TCP header, 54 bytes.
#   12: ethertype(2) version/IHL(1) TOS(1) -> one int, checked as  >> 8 == 0x080045
#   16: total length   18: id (skipped)
#   20: flags/frag offset(2) TTL(1) protocol(1) -> one int, checked with a mask
#   24: header checksum (skipped)   26: src, dst
#   34: sport dport seq ack data-offset flags window (checksum skipped) urgent
_FAST: Final = struct.Struct("!12xIHxxIxx4s4sHHIIBBHxxH")
_fast_unpack: Final = _FAST.unpack_from
_FAST_LEN: Final = _FAST.size  # 54

_U16: Final = struct.Struct("!H").unpack_from
_U32: Final = struct.Struct("!I").unpack_from
_U32LE: Final = struct.Struct("<I").unpack_from
_U16LE: Final = struct.Struct("<H").unpack_from
_IP4: Final = struct.Struct("!BxHHHxB").unpack_from  # vhl, total length, id, frag, proto
_IP6: Final = struct.Struct("!BxxxHB").unpack_from  # version/tc, payload length, next header
_FRAG6: Final = struct.Struct("!BxHI").unpack_from  # next header, offset|M, id
_TCP: Final = struct.Struct("!HHIIBBHxxH").unpack_from
# IPv4 (IHL 5) + TCP at any offset: version/IHL, total length, (flags/offset, TTL, protocol)
_v4tcp: Final = struct.Struct("!BxHxxIxx4s4sHHIIBBHxxH").unpack_from
# IPv6 + TCP at any offset: version/class, payload length, next header, addresses, TCP
_v6tcp: Final = struct.Struct("!BxxxHBx16s16sHHIIBBHxxH").unpack_from
_PACK16: Final = struct.Struct("!H").pack_into

_tuple_new: Final[Any] = tuple.__new__


# --------------------------------------------------------------------------- results


class TcpSegment(NamedTuple):
    """One decoded TCP segment: header fields plus offsets into ``buf``."""

    key: bytes
    """Directional flow key: src + dst + sport (2 bytes BE) + dport (2 bytes BE)."""
    src: bytes
    dst: bytes
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    """The 8 TCP flag bits (FIN ... CWR)."""
    window: int
    """Raw, unscaled."""
    urgent: int
    options: bytes
    """Raw TCP option bytes (``b""`` if none)."""
    buf: bytes
    """The frame, or the reassembled IP datagram when defragmented."""
    ip_off: int
    tcp_off: int
    payload_off: int
    payload_len: int
    """Captured payload bytes in ``buf`` (< ``wire_len`` when the snaplen cut the frame)."""
    wire_len: int
    """Payload length according to the IP header; link-layer padding is not payload."""
    ip_version: int
    linktype: int
    """Link type of ``buf``: the original one, or 228/229 for a reassembled datagram."""
    tunnel: tuple[TunnelHop, ...] | None = None
    """Tunnel hops it came through, outermost first (``key`` ends with their tunnel_key)."""


# --------------------------------------------------------------------------- decoder


class Decoder(Decapsulator):
    """Decode frames into :class:`TcpSegment` values or status codes; see the module doc
    (tunnels and the extra link types: ``decap.Decapsulator``)."""

    __slots__ = (
        "last_error",
        "_n_tcp",
        "_counts",
        "_frag",
    )

    def __init__(
        self,
        *,
        frag_timeout: float = 30.0,
        max_frag_datagrams: int = 4096,
        max_frag_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        if frag_timeout <= 0:
            raise ValueError("frag_timeout must be > 0")
        if max_frag_datagrams < 1:
            raise ValueError("max_frag_datagrams must be >= 1")
        if max_frag_bytes < 1:
            raise ValueError("max_frag_bytes must be >= 1")
        super().__init__()
        self.last_error = ""
        self._n_tcp = 0
        self._counts = [0] * 6  # indexed by status code
        self._frag = FragmentTable(float(frag_timeout), max_frag_datagrams, max_frag_bytes)

    # ------------------------------------------------------------------ public

    def decode(self, linktype: int, frame: bytes, ts: float) -> TcpSegment | int:
        """Decode one frame captured at packet time ``ts`` (seconds)."""
        n = len(frame)
        if linktype == 1 and n >= 54:
            eth, tlen, fp, src, dst, sport, dport, seq, ack, off, flags, win, urg = _fast_unpack(
                frame
            )
            # IPv4 with IHL 5; protocol TCP and neither MF nor a fragment offset
            if eth >> 8 == 0x080045 and fp & 0x3FFF00FF == 6:
                thl = (off >> 2) & 0x3C
                pend = 34 + thl
                wire = tlen - 20 - thl
                if thl >= 20 and pend <= n and wire >= 0:
                    self._n_tcp += 1
                    return _tuple_new(  # type: ignore[no-any-return]
                        TcpSegment,
                        (frame[26:38], src, dst, sport, dport, seq, ack, flags, win, urg,
                         frame[54:pend], frame, 14, 34, pend, wire if 14 + tlen <= n else n - pend,
                         wire, 4, 1, None),
                    )
        return self._decode_general(linktype, frame, ts)

    def add_tcp(self, n: int) -> None:
        """``n`` TCP frames decoded elsewhere (the in-place record reader) count as ours."""
        self._n_tcp += n

    def stats(self) -> dict[str, int]:
        """Counts per status, and the fragment table's counters."""
        c = self._counts
        out = {"tcp": self._n_tcp}
        for code, name in STATUS_NAMES.items():
            out[name] = c[code]
        out["frames"] = self._n_tcp + sum(c)
        frag = self._frag
        out["frag_reassembled"] = frag.reassembled
        out["frag_expired"] = frag.expired
        out["frag_dropped"] = frag.dropped
        out["frag_pending"] = len(frag.frags)
        out["frag_pending_bytes"] = frag.bytes
        return out

    def expire(self, now: float) -> int:
        """Drop datagrams whose first fragment is older than ``frag_timeout``; return how many."""
        return self._frag.expire(now)

    # ------------------------------------------------------------------ general path

    def _decode_general(self, linktype: int, frame: bytes, ts: float) -> TcpSegment | int:
        try:
            if linktype == 1 and len(frame) >= 14:
                et = _U16(frame, 12)[0]
                if et == _ETH_IPV6:
                    r = self._ipv6(frame, 14, 1, ts)
                elif et == _ETH_IPV4:
                    r = self._ipv4(frame, 14, 1, ts)
                else:
                    r = self._ethertype(frame, 14, et, 1, ts)
            else:
                r = self._link(linktype, frame, ts)
        except (struct.error, IndexError, ValueError) as exc:  # pragma: no cover - safety net
            self.last_error = f"internal: {type(exc).__name__}: {exc}"
            r = MALFORMED
        if self._hops:
            r = self._tunnelled(r)
        if type(r) is int:
            self._counts[r] += 1
        else:
            self._n_tcp += 1
        return r

    def _fail(self, status: int, why: str) -> int:
        self.last_error = why
        return status

    def _link(self, lt: int, buf: bytes, ts: float) -> TcpSegment | int:
        n = len(buf)
        if lt == 1:
            if n < 14:
                return self._fail(MALFORMED, f"eth: frame of {n} bytes < 14")
            return self._ethertype(buf, 14, _U16(buf, 12)[0], lt, ts)
        if lt == 228:
            return self._ipv4(buf, 0, lt, ts)
        if lt == 229:
            return self._ipv6(buf, 0, lt, ts)
        if lt == 113:
            if n < 16:
                return self._fail(MALFORMED, f"sll: frame of {n} bytes < 16")
            return self._ethertype(buf, 16, _U16(buf, 14)[0], lt, ts)
        if lt == 276:
            if n < 20:
                return self._fail(MALFORMED, f"sll2: frame of {n} bytes < 20")
            return self._ethertype(buf, 20, _U16(buf, 0)[0], lt, ts)
        if lt == 0 or lt == 108:
            if n < 4:
                return self._fail(MALFORMED, f"null: frame of {n} bytes < 4")
            # host byte order of the capturing machine (NULL) or network order (LOOP):
            # families are small, so the smaller reading is the right one
            fam = min(_U32(buf, 0)[0], _U32LE(buf, 0)[0])
            if fam == _AF_INET:
                return self._ipv4(buf, 4, lt, ts)
            if fam in _AF_INET6:
                return self._ipv6(buf, 4, lt, ts)
            return self._fail(NOT_IP, f"null: address family {fam}")
        if lt == 101 or lt == 12 or lt == 14:
            return self._raw(buf, 0, lt, ts)
        if lt == 9 or lt == 50:
            # PPP, or Cisco HDLC framing (address 0x0F/0x8F, control 0) in a PPP link
            if n >= 2 and (buf[0] == 0x0F or buf[0] == 0x8F) and buf[1] == 0:
                return self._chdlc(buf, lt, ts)
            return self._ppp(buf, 0, lt, ts)
        if lt == 51:
            if n < 6:
                return self._fail(MALFORMED, f"pppoe: frame of {n} bytes < 6")
            return self._ppp(buf, 6, lt, ts)
        if lt == 104:
            return self._chdlc(buf, lt, ts)
        if lt == 239:
            return self._nflog(buf, lt, ts)
        if lt in EXTRA_LINKTYPES:
            return self._extra_link(lt, buf, ts)
        return self._fail(UNKNOWN_LINKTYPE, f"linktype {lt} not supported")

    def _raw(self, buf: bytes, off: int, lt: int, ts: float) -> TcpSegment | int:
        if off >= len(buf):
            return self._fail(MALFORMED, "raw: empty packet")
        v = buf[off] >> 4
        if v == 4:
            return self._ipv4(buf, off, lt, ts)
        if v == 6:
            return self._ipv6(buf, off, lt, ts)
        return self._fail(NOT_IP, f"raw: IP version {v}")

    def _ppp(self, buf: bytes, off: int, lt: int, ts: float) -> TcpSegment | int:
        n = len(buf)
        if off + 2 <= n and buf[off] == 0xFF and buf[off + 1] == 0x03:
            off += 2  # HDLC-like framing: address, control
        if off >= n:
            return self._fail(MALFORMED, "ppp: no protocol field")
        if buf[off] & 1:  # protocol field compression: one byte
            proto = buf[off]
            off += 1
        else:
            if off + 2 > n:
                return self._fail(MALFORMED, "ppp: protocol field truncated")
            proto = _U16(buf, off)[0]
            off += 2
        if proto == _PPP_IPV4:
            return self._ipv4(buf, off, lt, ts)
        if proto == _PPP_IPV6:
            return self._ipv6(buf, off, lt, ts)
        return self._fail(NOT_IP, f"ppp: protocol 0x{proto:04x}")

    def _chdlc(self, buf: bytes, lt: int, ts: float) -> TcpSegment | int:
        if len(buf) < 4:
            return self._fail(MALFORMED, f"chdlc: frame of {len(buf)} bytes < 4")
        return self._ethertype(buf, 4, _U16(buf, 2)[0], lt, ts)

    def _nflog(self, buf: bytes, lt: int, ts: float) -> TcpSegment | int:
        n = len(buf)
        if n < 4:
            return self._fail(MALFORMED, f"nflog: frame of {n} bytes < 4")
        # TLVs (length, type) are in the capturing host's byte order: try both
        for u16 in (_U16LE, _U16):
            off = 4
            while off + 4 <= n:
                tlv_len = u16(buf, off)[0]
                tlv_type = u16(buf, off + 2)[0]
                if tlv_len < 4 or off + tlv_len > n:
                    break
                if tlv_type & 0x7FFF == 9:  # NFULA_PAYLOAD
                    # the payload is the IP packet (its length field trims what follows)
                    return self._raw(buf, off + 4, lt, ts)
                off += (tlv_len + 3) & ~3
        return self._fail(NOT_IP, "nflog: no payload TLV")

    def _ethertype(self, buf: bytes, off: int, et: int, lt: int, ts: float) -> TcpSegment | int:
        n = len(buf)
        while True:
            if et == _ETH_IPV4:
                return self._ipv4(buf, off, lt, ts)
            if et == _ETH_IPV6:
                return self._ipv6(buf, off, lt, ts)
            if et in _ETH_VLAN:
                if off + 4 > n:
                    return self._fail(MALFORMED, "vlan: tag truncated")
                et = _U16(buf, off + 2)[0]
                off += 4
                continue
            if et == _ETH_VNTAG:  # Cisco VN-Tag: 4-byte tag, then the next ethertype
                if off + 6 > n:
                    return self._fail(MALFORMED, "vn-tag: tag truncated")
                et = _U16(buf, off + 4)[0]
                off += 6
                continue
            if et == _ETH_PBB:  # 802.1ah I-TAG, then a whole customer Ethernet header
                if off + 18 > n:
                    return self._fail(MALFORMED, "pbb: I-TAG truncated")
                et = _U16(buf, off + 16)[0]
                off += 18
                continue
            if et == _ETH_PPPOE_SESSION:
                if off + 6 > n:
                    return self._fail(MALFORMED, "pppoe: header truncated")
                bound = off + 6 + _U16(buf, off + 4)[0]
                if bound >= n:
                    return self._ppp(buf, off + 6, lt, ts)
                # The PPPoE length bounds the packet: bytes beyond it (an IP length that
                # overstates, link padding) are not payload, and not a snaplen cut either.
                r = self._ppp(buf[:bound], off + 6, lt, ts)
                if not isinstance(r, int) and r.wire_len > r.payload_len:
                    r = r._replace(wire_len=max(r.payload_len, 0))
                return r
            if et in _ETH_MPLS:
                while True:
                    if off + 4 > n:
                        return self._fail(MALFORMED, "mpls: label stack truncated")
                    bottom = buf[off + 2] & 1
                    off += 4
                    if bottom:
                        break
                if off >= n:
                    return self._fail(MALFORMED, "mpls: no payload")
                v = buf[off] >> 4
                if v == 4:
                    return self._ipv4(buf, off, lt, ts)
                if v == 6:
                    return self._ipv6(buf, off, lt, ts)
                return self._fail(NOT_IP, f"mpls: payload starts with nibble {v}")
            return self._fail(NOT_IP, f"ethertype 0x{et:04x}")

    # ------------------------------------------------------------------ IP

    def _ipv4(self, buf: bytes, off: int, lt: int, ts: float) -> TcpSegment | int:
        n = len(buf)
        if off + 40 <= n:
            # the common case at any offset: IHL 5, TCP, not a fragment, one unpack
            vhl, tlen, fp, src, dst, sport, dport, seq, ack, offb, flags, win, urg = _v4tcp(
                buf, off
            )
            if vhl == 0x45 and fp & 0x3FFF00FF == 6:
                thl = (offb >> 2) & 0x3C
                tcp_off = off + 20
                pend = tcp_off + thl
                wire = tlen - 20 - thl
                if thl >= 20 and pend <= n and wire >= 0:
                    return _tuple_new(  # type: ignore[no-any-return]
                        TcpSegment,
                        (buf[off + 12 : off + 24], src, dst, sport, dport, seq, ack, flags, win,
                         urg, buf[tcp_off + 20 : pend], buf, off, tcp_off, pend,
                         wire if off + tlen <= n else n - pend, wire, 4, lt, None),
                    )
        return self._ipv4_full(buf, off, lt, ts)

    def _ipv4_full(self, buf: bytes, off: int, lt: int, ts: float) -> TcpSegment | int:
        n = len(buf)
        if off + 20 > n:
            return self._fail(MALFORMED, "ipv4: header truncated")
        vhl, tlen, ident, frag, proto = _IP4(buf, off)
        if vhl >> 4 != 4:
            return self._fail(MALFORMED, f"ipv4: version {vhl >> 4}")
        ihl = (vhl & 15) << 2
        if ihl < 20:
            return self._fail(MALFORMED, f"ipv4: header length {ihl >> 2} < 5")
        if off + ihl > n:
            return self._fail(MALFORMED, "ipv4: options truncated")
        if tlen == 0:  # TSO / GSO capture: the length is whatever was captured
            end = n
        elif tlen < ihl:
            return self._fail(MALFORMED, f"ipv4: total length {tlen} < header length {ihl}")
        else:
            end = off + tlen
        if proto != _IPPROTO_TCP and (proto not in TUNNEL_IP_PROTOCOLS
                                      or frag & 0x3FFF and proto == _IPPROTO_UDP):
            # a fragmented UDP datagram's ports are in its first fragment only: not buffered
            return self._fail(NOT_TCP, f"ipv4: protocol {proto}")
        if frag & 0x3FFF:
            r = self._frag.add4(buf, off, ihl, end, frag, ts, self._scope())
            if type(r) is bytes:
                return self._ipv4(r, 0, LINKTYPE_IPV4, ts)
            return self._fail(MALFORMED, r) if type(r) is str else r  # type: ignore[return-value]
        if proto != _IPPROTO_TCP:
            return self._tunnel(buf, off + ihl, end, proto, off + 12, 4, lt, ts)
        return self._tcp(buf, off, off + 12, 8, off + ihl, end, 4, lt)

    def _ipv6(self, buf: bytes, off: int, lt: int, ts: float) -> TcpSegment | int:
        n = len(buf)
        if off + 60 <= n:
            # the common case at any offset: TCP right after the fixed header, one unpack
            vtc, plen, nh, src, dst, sport, dport, seq, ack, offb, flags, win, urg = _v6tcp(
                buf, off
            )
            if vtc >> 4 == 6 and nh == _IPPROTO_TCP:
                thl = (offb >> 2) & 0x3C
                tcp_off = off + 40
                pend = tcp_off + thl
                wire = plen - thl
                if thl >= 20 and pend <= n and wire >= 0:
                    return _tuple_new(  # type: ignore[no-any-return]
                        TcpSegment,
                        (buf[off + 8 : off + 44], src, dst, sport, dport, seq, ack, flags, win,
                         urg, buf[tcp_off + 20 : pend], buf, off, tcp_off, pend,
                         wire if tcp_off + plen <= n else n - pend, wire, 6, lt, None),
                    )
        return self._ipv6_full(buf, off, lt, ts)

    def _ipv6_full(self, buf: bytes, off: int, lt: int, ts: float) -> TcpSegment | int:
        n = len(buf)
        if off + 40 > n:
            return self._fail(MALFORMED, "ipv6: header truncated")
        vtc, plen, nh = _IP6(buf, off)
        if vtc >> 4 != 6:
            return self._fail(MALFORMED, f"ipv6: version {vtc >> 4}")
        # payload length 0: a jumbogram or a BIG TCP / GSO capture; use the captured length
        end = n if plen == 0 else off + 40 + plen
        cap = end if end <= n else n
        p = off + 40
        nh_pos = off + 6
        while nh != _IPPROTO_TCP:
            if nh in _IP6_EXT_GENERIC or nh == _IP6_AH:
                if p + 8 > cap:
                    return self._fail(MALFORMED, f"ipv6: extension header {nh} truncated")
                hl = (buf[p + 1] + 2) << 2 if nh == _IP6_AH else (buf[p + 1] + 1) << 3
                if p + hl > cap:
                    return self._fail(MALFORMED, f"ipv6: extension header {nh} truncated")
                nh_pos = p
                nh = buf[p]
                p += hl
            elif nh == _IP6_FRAGMENT:
                if p + 8 > cap:
                    return self._fail(MALFORMED, "ipv6: fragment header truncated")
                fnh, fo, ident = _FRAG6(buf, p)
                if fo & 0xFFF9 == 0:  # atomic fragment (offset 0, M 0): just skip it
                    nh_pos = p
                    nh = fnh
                    p += 8
                    continue
                if fnh not in _IP6_MAY_BE_TCP and (fnh not in TUNNEL_IP_PROTOCOLS
                                                   or fnh == _IPPROTO_UDP):
                    return self._fail(NOT_TCP, f"ipv6: fragment of next header {fnh}")
                r = self._frag.add6(buf, off, nh_pos, p, fnh, fo, end, ts, self._scope())
                if type(r) is bytes:
                    return self._ipv6(r, 0, LINKTYPE_IPV6, ts)
                return self._fail(MALFORMED, r) if type(r) is str else r  # type: ignore[return-value]
            elif nh in TUNNEL_IP_PROTOCOLS:
                return self._tunnel(buf, p, end, nh, off + 8, 16, lt, ts)
            else:
                return self._fail(NOT_TCP, f"ipv6: next header {nh}")
        return self._tcp(buf, off, off + 8, 32, p, end, 6, lt)

    def _tcp(
        self,
        buf: bytes,
        ip_off: int,
        addr_off: int,
        addr_len: int,
        tcp_off: int,
        end: int,
        version: int,
        lt: int,
    ) -> TcpSegment | int:
        n = len(buf)
        cap = end if end <= n else n
        if tcp_off + 20 > cap:
            if tcp_off + 20 > end:
                return self._fail(MALFORMED, "tcp: header beyond the IP packet")
            return self._fail(MALFORMED, "tcp: header truncated")
        sport, dport, seq, ack, offb, flags, win, urg = _TCP(buf, tcp_off)
        thl = (offb >> 4) << 2
        if thl < 20:
            return self._fail(MALFORMED, f"tcp: data offset {offb >> 4} < 5")
        pay = tcp_off + thl
        if pay > end:
            return self._fail(MALFORMED, f"tcp: data offset {offb >> 4} beyond the IP packet")
        # pay > cap: the snaplen cut the options; the segment is still a segment (as tshark
        # reads it), with what options were captured and no captured payload
        o_end = pay if pay <= cap else cap
        half = addr_len >> 1
        a_end = addr_off + addr_len
        return _tuple_new(  # type: ignore[no-any-return]
            TcpSegment,
            (buf[addr_off:a_end] + buf[tcp_off : tcp_off + 4],
             buf[addr_off : addr_off + half], buf[addr_off + half : a_end],
             sport, dport, seq, ack, flags, win, urg, buf[tcp_off + 20 : o_end],
             buf, ip_off, tcp_off, o_end, cap - o_end, end - pay, version, lt, None),
        )

