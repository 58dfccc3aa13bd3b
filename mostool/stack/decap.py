"""The decoder's way into tunnels and the link types ``linktypes`` knows (issue #17).

Theory of operation
-------------------
``decode.Decoder`` inherits this class's three steps; they run only where the plain decoder
would give up, so unencapsulated TCP (every fast path) never reaches them:

* ``_extra_link``: a link type in ``linktypes.EXTRA_LINKTYPES`` (802.11, FDDI, IPoIB, ARCNET
  ...) instead of ``UNKNOWN_LINKTYPE``: ``linktypes.link_payload`` says where the packet
  starts, and the decoder's ethertype walk goes on from there.
* ``_tunnel``: an IP packet whose protocol is in ``tunnels.TUNNEL_IP_PROTOCOLS`` (IP in IP,
  6in4, GRE, UDP), after the outer fragments are reassembled and the IPv6 extension headers
  walked: ``tunnels.decapsulate`` peels one hop, the hop joins the frame's hop list, and the
  inner packet is decoded by the same walk (Ethernet, an ethertype, or PPP), which may meet
  another tunnel; more than ``tunnels.MAX_DEPTH`` hops is MALFORMED. ``None`` from
  ``decapsulate`` (UDP on no tunnel port) returns ``None``: the caller answers NOT_TCP as
  before.
* ``_tunnelled``: once the frame is decoded, a segment found inside tunnels gets the hops
  (``TcpSegment.tunnel``, outermost first) and ``tunnels.tunnel_key(hops)`` appended to its
  flow key, so equal inner 4-tuples in two tunnels are two flows; the list is emptied for the
  next frame whatever the outcome. The decoder calls it only when the list is not empty.

Inner packets are not copied: their offsets point into the outer frame (or the reassembled
outer datagram). Inner IP fragments are reassembled with ``scope()`` (the tunnel key so far)
in their datagram key, so two tunnels' fragments never merge.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Final

from mostool.stack import linktypes, tunnels
from mostool.stack.codes import MALFORMED, NOT_TCP
from mostool.stack.linktypes import EXTRA_LINKTYPES
from mostool.stack.tunnels import (
    INNER_ETHERNET,
    INNER_ETHERTYPE,
    TUNNEL_IP_PROTOCOLS,
    Decap,
    TunnelHop,
)

if TYPE_CHECKING:
    from mostool.stack.decode import TcpSegment

__all__ = ["Decapsulator", "EXTRA_LINKTYPES", "TUNNEL_IP_PROTOCOLS", "TunnelHop"]

_U16: Final = struct.Struct("!H").unpack_from


class Decapsulator:
    """The tunnel and extra-link-type steps of ``decode.Decoder``; see the module doc."""

    __slots__ = ("_hops",)

    def __init__(self) -> None:
        self._hops: list[TunnelHop] = []

    # the decoder's own steps, which the inner packets continue with
    def _fail(self, status: int, why: str) -> int:
        raise NotImplementedError

    def _ethertype(self, buf: bytes, off: int, et: int, lt: int, ts: float) -> TcpSegment | int:
        raise NotImplementedError

    def _ppp(self, buf: bytes, off: int, lt: int, ts: float) -> TcpSegment | int:
        raise NotImplementedError

    # ------------------------------------------------------------------ steps

    def _extra_link(self, lt: int, buf: bytes, ts: float) -> TcpSegment | int:
        r = linktypes.link_payload(lt, buf)
        if isinstance(r, linktypes.Refusal):
            return self._fail(r.status, r.reason)
        return self._inner(buf, r.inner, r.ethertype, r.off, lt, ts)

    def _tunnel(self, buf: bytes, l4_off: int, end: int, proto: int, addr_off: int, n: int,
                lt: int, ts: float) -> TcpSegment | int:
        """The payload at ``l4_off`` of the IP packet ending at ``end`` (protocol ``proto``,
        ``n``-byte source and destination addresses at ``addr_off``) as a tunnel."""
        a_end = addr_off + 2 * n
        r = tunnels.decapsulate(buf, l4_off, end, proto, buf[addr_off:addr_off + n],
                                buf[addr_off + n:a_end])
        if r is None:
            return self._fail(NOT_TCP, f"ipv4: protocol {proto}" if n == 4
                              else f"ipv6: next header {proto}")
        if not isinstance(r, Decap):
            return self._fail(r.status, r.reason)
        hops = self._hops
        hops.append(r.hop)
        if len(hops) > tunnels.MAX_DEPTH:
            return self._fail(MALFORMED, "tunnel: nesting deeper than MAX_DEPTH")
        return self._inner(buf, r.inner, r.ethertype, r.off, lt, ts)

    def _inner(self, buf: bytes, inner: int, ethertype: int, off: int, lt: int, ts: float
               ) -> TcpSegment | int:
        if inner == INNER_ETHERNET:
            if off + 14 > len(buf):
                return self._fail(MALFORMED, "tunnel: inner Ethernet header truncated")
            return self._ethertype(buf, off + 14, _U16(buf, off + 12)[0], lt, ts)
        if inner == INNER_ETHERTYPE:
            return self._ethertype(buf, off, ethertype, lt, ts)
        return self._ppp(buf, off, lt, ts)

    def _scope(self) -> bytes:
        """What keeps inner fragments of different tunnels apart (b"" outside tunnels)."""
        hops = self._hops
        return tunnels.tunnel_key(tuple(hops)) if hops else b""

    def _tunnelled(self, r: TcpSegment | int) -> TcpSegment | int:
        hops = tuple(self._hops)
        self._hops.clear()
        if isinstance(r, int):
            return r
        return r._replace(key=r.key + tunnels.tunnel_key(hops), tunnel=hops)
