"""Tunnel decapsulation: GRE, ERSPAN I/II/III, VXLAN(-GPE), Geneve, IP in IP, GTP-U, L2TPv2, Teredo.

Theory of operation
-------------------
The frame decoder walks link -> ethertype -> IP.  When an IP packet is *not* TCP, and only
then, it asks this module whether the packet is a tunnel; so unencapsulated TCP (every fast
path) never reaches this code, and other non-TCP traffic pays one set membership test.

The hook the decoder calls (one call per tunnel hop)::

    if proto in TUNNEL_IP_PROTOCOLS:            # {4, 17, 41, 47}: a frozenset test
        r = decapsulate(buf, l4_off, end, proto, src, dst)
        if r is None:   -> NOT_TCP as today (UDP on a port that is no tunnel)
        elif type(r) is Refusal: -> r.status (NOT_TCP or MALFORMED), last_error = r.reason
        else (Decap):  continue decoding at r.off according to r.inner:
            INNER_ETHERNET -> an Ethernet header at r.off (ethertype at r.off + 12)
            INNER_ETHERTYPE -> the payload of ethertype r.ethertype at r.off
                               (IPv4 0x0800, IPv6 0x86DD, MPLS, VLAN ...: the decoder's
                               ethertype walk handles each)
            INNER_PPP       -> a PPP frame at r.off (optional FF 03, protocol field)
          and append r.hop to the segment's tunnel chain; stop with MALFORMED
          ("tunnel: nesting deeper than MAX_DEPTH") past MAX_DEPTH hops.

``buf`` is the frame (bytes), ``l4_off`` the offset of the header after the outer IP header
(after any IPv6 extension headers), ``end`` the outer IP packet's end (its length field; may
exceed ``len(buf)`` when the snaplen cut the frame), ``proto`` the IP protocol / next header,
``src``/``dst`` the outer IP addresses (slices of the frame).  Inner packets are never copied:
``Decap.off`` and ``Decap.end`` are offsets into the same ``buf``.  The returned ``end`` is the
tunnel's own bound (UDP length, GTP length, outer IP end) clipped to nothing: the inner IP
header's own length still decides where the inner packet ends.

Nothing here raises on network input: every length is checked before it is read, a bad
header gives ``Refusal(MALFORMED, reason)``, a header that carries no user traffic (a GTP-U
echo, an L2TP control message, a Teredo bubble) gives ``Refusal(NOT_TCP, reason)``.

Flow identity.  Each hop is described by a :class:`TunnelHop` (kind, outer endpoints, ports,
identifier).  :func:`tunnel_key` turns a chain of hops into bytes to append to the inner flow
key, so equal inner 4-tuples in two tunnels stay two flows.  The key is *symmetric*: the two
directions of one connection travel with outer endpoints swapped, so endpoints are put in a
canonical order and only the tunnel's service port enters the key (VXLAN, Geneve and
GTP-U senders pick the UDP source port as per-flow entropy, so it differs per direction);
identifiers that differ per direction by protocol design (GTP-U TEIDs,
L2TPv2 tunnel/session ids, PPTP call ids: each names the *receiver's* end) are left out of the
key (see ``TunnelHop.ident_in_key``) and kept only in the description.

The module is sans-IO and imports only the standard library.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Final, NamedTuple

from mostool.stack.codes import MALFORMED, NOT_TCP

__all__ = [
    "NOT_TCP",
    "MALFORMED",
    "MAX_DEPTH",
    "INNER_ETHERNET",
    "INNER_ETHERTYPE",
    "INNER_PPP",
    "TUNNEL_IP_PROTOCOLS",
    "TUNNEL_UDP_PORTS",
    "service_port",
    "TunnelHop",
    "Decap",
    "Refusal",
    "decapsulate",
    "decapsulate_gre",
    "decapsulate_udp",
    "tunnel_key",
    "describe",
]


MAX_DEPTH: Final = 8
"""Tunnel hops one frame may nest (the corpus shows 3: VXLAN in ERSPAN in GRE)."""

INNER_ETHERNET: Final = 1
INNER_ETHERTYPE: Final = 2
INNER_PPP: Final = 3

_IPPROTO_IPIP: Final = 4
_IPPROTO_UDP: Final = 17
_IPPROTO_IPV6: Final = 41
_IPPROTO_GRE: Final = 47

TUNNEL_IP_PROTOCOLS: Final = frozenset({_IPPROTO_IPIP, _IPPROTO_UDP, _IPPROTO_IPV6, _IPPROTO_GRE})

PORT_VXLAN: Final = 4789
PORT_VXLAN_LINUX: Final = 8472  # Linux's pre-IANA default, still common (tcpdump's samples)
PORT_VXLAN_GPE: Final = 4790
PORT_GENEVE: Final = 6081
PORT_GTP_U: Final = 2152
PORT_L2TP: Final = 1701
PORT_TEREDO: Final = 3544

TUNNEL_UDP_PORTS: Final = frozenset(
    {PORT_VXLAN, PORT_VXLAN_LINUX, PORT_VXLAN_GPE, PORT_GENEVE, PORT_GTP_U, PORT_L2TP,
     PORT_TEREDO}
)

_ETH_IPV4: Final = 0x0800
_ETH_IPV6: Final = 0x86DD
_ETH_TEB: Final = 0x6558  # transparent Ethernet bridging (NVGRE, Geneve's Ethernet)
_ETH_PPP: Final = 0x880B
_ETH_ERSPAN_2: Final = 0x88BE  # type I without GRE sequence number, type II with
_ETH_ERSPAN_3: Final = 0x22EB

_U16: Final = struct.Struct("!H").unpack_from
_U32: Final = struct.Struct("!I").unpack_from
_HH: Final = struct.Struct("!HH").unpack_from
_UDP: Final = struct.Struct("!HHH").unpack_from  # sport, dport, length


class TunnelHop(NamedTuple):
    """One level of encapsulation, as seen on the packet that carried it."""

    kind: str
    """``ipip`` (4in4, 4in6), ``ip6`` (6in4, 6in6), ``gre``, ``nvgre``, ``erspan1``,
    ``erspan2``, ``erspan3``, ``vxlan``, ``vxlan-gpe``, ``geneve``, ``gtpu``, ``l2tp``,
    ``teredo``."""
    src: bytes
    """Outer source IP address (4 or 16 bytes)."""
    dst: bytes
    sport: int
    """Outer UDP ports (0 when the tunnel does not run over UDP)."""
    dport: int
    ident: int
    """GRE key, VNI, NVGRE key (VSID << 8 | FlowID), ERSPAN session id, TEID,
    L2TP tunnel << 16 | session; -1 if none."""
    ident_in_key: bool
    """Whether ``ident`` is the same both ways and so part of the flow key."""


class Decap(NamedTuple):
    """Where the inner packet is and what it is."""

    inner: int
    """INNER_ETHERNET, INNER_ETHERTYPE or INNER_PPP."""
    ethertype: int
    """With INNER_ETHERTYPE: the ethertype of the packet at ``off`` (else 0)."""
    off: int
    end: int
    """The tunnel's bound on the inner packet (may exceed ``len(buf)`` after a snaplen cut)."""
    hop: TunnelHop


class Refusal(NamedTuple):
    """No inner packet: ``status`` is NOT_TCP (nothing carried) or MALFORMED; ``reason`` why."""

    status: int
    reason: str


def _bad(reason: str) -> Refusal:
    return Refusal(MALFORMED, reason)


def _ip_by_nibble(buf: bytes, off: int, end: int, hop: TunnelHop, what: str) -> Decap | Refusal:
    """An IP packet of either version at ``off`` (GTP-U, Teredo, ERSPAN III frame type 2)."""
    if off >= min(end, len(buf)):
        return _bad(f"{what}: no inner packet")
    v = buf[off] >> 4
    if v == 4:
        return Decap(INNER_ETHERTYPE, _ETH_IPV4, off, end, hop)
    if v == 6:
        return Decap(INNER_ETHERTYPE, _ETH_IPV6, off, end, hop)
    return Refusal(NOT_TCP, f"{what}: inner packet starts with IP version {v}")


# --------------------------------------------------------------------------- dispatch


def decapsulate(
    buf: bytes, off: int, end: int, proto: int, src: bytes, dst: bytes
) -> Decap | Refusal | None:
    """One tunnel hop at ``off``; None if this IP payload is no tunnel (see the module doc)."""
    if proto == _IPPROTO_UDP:
        return decapsulate_udp(buf, off, end, src, dst)
    if proto == _IPPROTO_GRE:
        return decapsulate_gre(buf, off, end, src, dst)
    if proto == _IPPROTO_IPIP:
        hop = TunnelHop("ipip", src, dst, 0, 0, -1, False)
        return Decap(INNER_ETHERTYPE, _ETH_IPV4, off, end, hop)
    if proto == _IPPROTO_IPV6:
        hop = TunnelHop("ip6", src, dst, 0, 0, -1, False)
        return Decap(INNER_ETHERTYPE, _ETH_IPV6, off, end, hop)
    return None


# --------------------------------------------------------------------------- GRE / ERSPAN


def decapsulate_gre(buf: bytes, off: int, end: int, src: bytes, dst: bytes) -> Decap | Refusal:
    """GRE (RFC 2784/2890, RFC 1701 routing, PPTP's enhanced GRE) and what it carries."""
    cap = min(end, len(buf))
    if off + 4 > cap:
        return _bad("gre: header truncated")
    flags, ptype = _HH(buf, off)
    version = flags & 7
    p = off + 4
    key = -1
    has_seq = bool(flags & 0x1000)
    if version == 0:
        if flags & 0xC000:  # checksum or routing present: checksum + offset word
            p += 4
        if flags & 0x2000:
            if p + 4 > cap:
                return _bad("gre: key truncated")
            key = _U32(buf, p)[0]
            p += 4
        if has_seq:
            p += 4
        if flags & 0x4000:  # RFC 1701 source route entries, ended by one of length 0
            while True:
                if p + 4 > cap:
                    return _bad("gre: routing entries truncated")
                sre_len = buf[p + 3]
                p += 4 + sre_len
                if sre_len == 0:
                    break
    elif version == 1:  # PPTP (RFC 2637): key = payload length, call id (per direction)
        if not flags & 0x2000 or ptype != _ETH_PPP:
            return _bad("gre: version 1 without key or not PPP")
        if p + 4 > cap:
            return _bad("gre: key truncated")
        payload_len, key = _HH(buf, p)
        p += 4 + (4 if has_seq else 0) + (4 if flags & 0x0080 else 0)
        end = min(end, p + payload_len)
        if p > cap:
            return _bad("gre: header truncated")
        if p >= min(end, cap) or not has_seq:
            return Refusal(NOT_TCP, "gre: PPTP acknowledgement without payload")
        hop = TunnelHop("gre", src, dst, 0, 0, key, False)
        return Decap(INNER_PPP, 0, p, end, hop)
    else:
        return _bad(f"gre: version {version}")
    if p > cap:
        return _bad("gre: header truncated")
    if ptype == _ETH_ERSPAN_2:
        if not has_seq:  # type I: no ERSPAN header, the mirrored frame follows
            return Decap(INNER_ETHERNET, 0, p, end, TunnelHop("erspan1", src, dst, 0, 0, -1, True))
        return _erspan2(buf, p, end, cap, src, dst)
    if ptype == _ETH_ERSPAN_3:
        return _erspan3(buf, p, end, cap, src, dst)
    if ptype == _ETH_TEB:
        if key >= 0 and not flags & 0x9000:
            # NVGRE (RFC 7637: K set, C and S clear): key = VSID (24 bits) << 8 | FlowID.
            # A Linux gretap tunnel with a key looks the same, so the whole key (not the VSID
            # alone) identifies the tunnel: keys 1 and 2 must stay two tunnels.
            hop = TunnelHop("nvgre", src, dst, 0, 0, key, True)
        elif key >= 0:
            hop = TunnelHop("gre", src, dst, 0, 0, key, True)
        else:
            hop = TunnelHop("gre", src, dst, 0, 0, -1, True)
        return Decap(INNER_ETHERNET, 0, p, end, hop)
    hop = TunnelHop("gre", src, dst, 0, 0, key, True)
    if ptype == _ETH_PPP:
        return Decap(INNER_PPP, 0, p, end, hop)
    return Decap(INNER_ETHERTYPE, ptype, p, end, hop)


def _erspan2(buf: bytes, p: int, end: int, cap: int, src: bytes, dst: bytes) -> Decap | Refusal:
    if p + 8 > cap:
        return _bad("erspan2: header truncated")
    w0 = _U32(buf, p)[0]
    if w0 >> 28 != 1:
        return _bad(f"erspan2: version {w0 >> 28} in a type II header")
    hop = TunnelHop("erspan2", src, dst, 0, 0, w0 & 0x3FF, True)
    return Decap(INNER_ETHERNET, 0, p + 8, end, hop)


def _erspan3(buf: bytes, p: int, end: int, cap: int, src: bytes, dst: bytes) -> Decap | Refusal:
    if p + 12 > cap:
        return _bad("erspan3: header truncated")
    w0 = _U32(buf, p)[0]
    if w0 >> 28 != 2:
        return _bad(f"erspan3: version {w0 >> 28} in a type III header")
    w2 = _U32(buf, p + 8)[0]
    frame_type = (w2 >> 10) & 0x1F
    q = p + 12 + (8 if w2 & 1 else 0)  # O flag: an 8-byte platform-specific subheader
    if q > cap:
        return _bad("erspan3: platform-specific subheader truncated")
    hop = TunnelHop("erspan3", src, dst, 0, 0, w0 & 0x3FF, True)
    if frame_type == 0:
        return Decap(INNER_ETHERNET, 0, q, end, hop)
    if frame_type == 2:
        return _ip_by_nibble(buf, q, end, hop, "erspan3")
    return Refusal(NOT_TCP, f"erspan3: frame type {frame_type}")


# --------------------------------------------------------------------------- UDP tunnels


def decapsulate_udp(
    buf: bytes, off: int, end: int, src: bytes, dst: bytes
) -> Decap | Refusal | None:
    """The UDP datagram at ``off`` if one of its ports is a tunnel port.

    When both are (VXLAN 4789 -> 4790 in the corpus), the lower one decides, as Wireshark
    does: a rule that looks at the ports as a set gives both directions the same kind, and so
    the same tunnel key.
    """
    cap = min(end, len(buf))
    if off + 8 > cap:
        return None  # the decoder reports UDP as NOT_TCP; a cut header is not ours to judge
    sport, dport, ulen = _UDP(buf, off)
    port = service_port(sport, dport)
    if not port:
        return None
    if ulen >= 8:  # 0 = unknown (UDP over IPv6 jumbograms, GSO): the IP length bounds it
        end = min(end, off + ulen)
        cap = min(end, len(buf))
    p = off + 8
    if port in (PORT_VXLAN, PORT_VXLAN_LINUX, PORT_VXLAN_GPE):
        return _vxlan(buf, p, end, cap, src, dst, sport, dport)
    if port == PORT_GENEVE:
        return _geneve(buf, p, end, cap, src, dst, sport, dport)
    if port == PORT_GTP_U:
        return _gtpu(buf, p, end, cap, src, dst, sport, dport)
    if port == PORT_L2TP:
        return _l2tp(buf, p, end, cap, src, dst, sport, dport)
    return _teredo(buf, p, end, cap, src, dst, sport, dport)


def service_port(sport: int, dport: int) -> int:
    """The tunnel port of a UDP datagram (the lower if both are tunnel ports), else 0."""
    if sport in TUNNEL_UDP_PORTS and (dport not in TUNNEL_UDP_PORTS or sport < dport):
        return sport
    return dport if dport in TUNNEL_UDP_PORTS else 0


def _vxlan(
    buf: bytes, p: int, end: int, cap: int, src: bytes, dst: bytes, sport: int, dport: int
) -> Decap | Refusal:
    if p + 8 > cap:
        return _bad("vxlan: header truncated")
    flags = buf[p]
    vni = _U32(buf, p + 4)[0] >> 8 if flags & 0x08 else -1
    # VXLAN-GPE only on its own port: on 4789 the same bit is reserved (and set in the
    # corpus's gre-erspan-vxlan, whose byte 3 is a group policy id)
    if flags & 0x04 and service_port(sport, dport) == PORT_VXLAN_GPE:
        nxt = buf[p + 3]
        hop = TunnelHop("vxlan-gpe", src, dst, sport, dport, vni, True)
        if nxt == 1:
            return Decap(INNER_ETHERTYPE, _ETH_IPV4, p + 8, end, hop)
        if nxt == 2:
            return Decap(INNER_ETHERTYPE, _ETH_IPV6, p + 8, end, hop)
        if nxt == 3:
            return Decap(INNER_ETHERNET, 0, p + 8, end, hop)
        return Refusal(NOT_TCP, f"vxlan-gpe: next protocol {nxt}")
    # RFC 7348 wants the I flag; receivers in practice (Linux, Wireshark) decode regardless
    hop = TunnelHop("vxlan", src, dst, sport, dport, vni, True)
    return Decap(INNER_ETHERNET, 0, p + 8, end, hop)


def _geneve(
    buf: bytes, p: int, end: int, cap: int, src: bytes, dst: bytes, sport: int, dport: int
) -> Decap | Refusal:
    if p + 8 > cap:
        return _bad("geneve: header truncated")
    b0 = buf[p]
    if b0 >> 6 != 0:
        return _bad(f"geneve: version {b0 >> 6}")
    if buf[p + 1] & 0x80:
        return Refusal(NOT_TCP, "geneve: OAM frame")
    ptype = _U16(buf, p + 2)[0]
    vni = _U32(buf, p + 4)[0] >> 8
    q = p + 8 + ((b0 & 0x3F) << 2)
    if q > cap:
        return _bad("geneve: options truncated")
    hop = TunnelHop("geneve", src, dst, sport, dport, vni, True)
    if ptype == _ETH_TEB:
        return Decap(INNER_ETHERNET, 0, q, end, hop)
    return Decap(INNER_ETHERTYPE, ptype, q, end, hop)


def _gtpu(
    buf: bytes, p: int, end: int, cap: int, src: bytes, dst: bytes, sport: int, dport: int
) -> Decap | Refusal:
    if p + 8 > cap:
        return _bad("gtpu: header truncated")
    flags = buf[p]
    if flags >> 5 != 1 or not flags & 0x10:
        return _bad(f"gtpu: version {flags >> 5}, protocol type {(flags >> 4) & 1}")
    msg_type = buf[p + 1]
    if msg_type != 255:
        return Refusal(NOT_TCP, f"gtpu: message type {msg_type} (not a G-PDU)")
    glen = _U16(buf, p + 2)[0]
    teid = _U32(buf, p + 4)[0]
    end = min(end, p + 8 + glen)
    cap = min(cap, end)
    q = p + 8
    if flags & 0x07:  # E, S or PN: sequence number, N-PDU number, next extension type
        if q + 4 > cap:
            return _bad("gtpu: optional fields truncated")
        nxt = buf[q + 3]
        q += 4
        hops = 0
        while nxt:
            hops += 1
            if q + 1 > cap or hops > 16:
                return _bad("gtpu: extension headers truncated")
            ext_len = buf[q] << 2
            if ext_len == 0 or q + ext_len > cap:
                return _bad("gtpu: extension header length")
            nxt = buf[q + ext_len - 1]
            q += ext_len
    # TEIDs name the receiving end: the two directions use different ones
    hop = TunnelHop("gtpu", src, dst, sport, dport, teid, False)
    return _ip_by_nibble(buf, q, end, hop, "gtpu")


def _l2tp(
    buf: bytes, p: int, end: int, cap: int, src: bytes, dst: bytes, sport: int, dport: int
) -> Decap | Refusal:
    if p + 2 > cap:
        return _bad("l2tp: header truncated")
    flags = _U16(buf, p)[0]
    version = flags & 0xF
    if version == 3:
        return Refusal(NOT_TCP, "l2tp: version 3 (cookie size comes from the control plane)")
    if version != 2:
        return _bad(f"l2tp: version {version}")
    if flags & 0x8000:
        return Refusal(NOT_TCP, "l2tp: control message")
    q = p + 2
    if flags & 0x4000:  # L: length field
        if q + 2 > cap:
            return _bad("l2tp: length truncated")
        length = _U16(buf, q)[0]
        if length < 6:
            return _bad(f"l2tp: length {length}")
        end = min(end, p + length)
        cap = min(cap, end)
        q += 2
    if q + 4 > cap:
        return _bad("l2tp: tunnel/session id truncated")
    tunnel, session = _HH(buf, q)
    q += 4
    if flags & 0x0800:  # S: Ns, Nr
        q += 4
    if flags & 0x0200:  # O: offset size, then that much padding
        if q + 2 > cap:
            return _bad("l2tp: offset size truncated")
        q += 2 + _U16(buf, q)[0]
    if q > cap:
        return _bad("l2tp: header truncated")
    # the ids name the receiving end (RFC 2661 3.1): they differ per direction
    hop = TunnelHop("l2tp", src, dst, sport, dport, tunnel << 16 | session, False)
    return Decap(INNER_PPP, 0, q, end, hop)


def _teredo(
    buf: bytes, p: int, end: int, cap: int, src: bytes, dst: bytes, sport: int, dport: int
) -> Decap | Refusal:
    q = p
    # RFC 4380 5.1.1: optional authentication indicator, then optional origin indication
    if q + 2 <= cap and buf[q] == 0 and buf[q + 1] == 1:
        if q + 4 > cap:
            return _bad("teredo: authentication indicator truncated")
        q += 4 + buf[q + 2] + buf[q + 3] + 9  # ids, auth value, nonce (8), confirmation (1)
    if q + 2 <= cap and buf[q] == 0 and buf[q + 1] == 0:
        q += 8
    if q + 40 > cap:
        return Refusal(NOT_TCP, "teredo: no IPv6 packet")
    if buf[q] >> 4 != 6:
        return Refusal(NOT_TCP, f"teredo: inner packet starts with IP version {buf[q] >> 4}")
    hop = TunnelHop("teredo", src, dst, sport, dport, -1, False)
    return Decap(INNER_ETHERTYPE, _ETH_IPV6, q, end, hop)


# --------------------------------------------------------------------------- identity


def tunnel_key(hops: tuple[TunnelHop, ...]) -> bytes:
    """Bytes that identify a tunnel chain the same way in both directions (see the module doc).

    Append to the inner directional flow key; the reverse key keeps the same suffix.
    Empty for no hops, so unencapsulated keys do not change.
    """
    parts: list[bytes] = []
    for h in hops:
        lo, hi = (h.src, h.dst) if h.src <= h.dst else (h.dst, h.src)
        port = service_port(h.sport, h.dport)
        ident = h.ident if h.ident_in_key else -1
        parts.append(
            h.kind.encode() + b"\0" + bytes((len(lo),)) + lo + hi + port.to_bytes(2, "big")
            + (ident & 0xFFFFFFFFFFFF).to_bytes(6, "big")
        )
    return b"".join(parts)


def _fmt_addr(a: bytes) -> str:
    if len(a) == 4:
        return f"{a[0]}.{a[1]}.{a[2]}.{a[3]}"
    if len(a) == 16:
        return str(ipaddress.IPv6Address(a))
    return a.hex()


_IDENT_NAMES: Final[dict[str, str]] = {
    "gre": "key",
    "erspan1": "session",
    "erspan2": "session",
    "erspan3": "session",
    "vxlan": "vni",
    "vxlan-gpe": "vni",
    "geneve": "vni",
    "gtpu": "teid",
    "l2tp": "tunnel_session",
}


def describe(hop: TunnelHop) -> dict[str, object]:
    """A JSON-ready description of one hop, for the flow record's ``"tunnel"`` list."""
    out: dict[str, object] = {
        "kind": hop.kind,
        "src": _fmt_addr(hop.src),
        "dst": _fmt_addr(hop.dst),
    }
    if hop.sport or hop.dport:
        out["sport"] = hop.sport
        out["dport"] = hop.dport
    if hop.ident >= 0:
        name = _IDENT_NAMES.get(hop.kind, "id")
        if hop.kind == "nvgre":
            out["vsid"] = hop.ident >> 8
            out["flow_id"] = hop.ident & 0xFF
        elif hop.kind == "l2tp":
            out["tunnel_id"] = hop.ident >> 16
            out["session_id"] = hop.ident & 0xFFFF
        else:
            out[name] = hop.ident
    return out
