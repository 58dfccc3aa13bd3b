"""Link types beyond the decoder's own: 802.11 (plain, radiotap, PPI, Prism, AVS), FDDI,
IP over InfiniBand, ARCNET (BSD and Linux), and LLC/SNAP.

Theory of operation
-------------------
The decoder handles Ethernet, SLL/SLL2, NULL/LOOP, raw IP, PPP, Cisco HDLC and NFLOG itself
(``mostool.stack.decode.SUPPORTED_LINKTYPES``).  For any other link type it asks this module,
once per frame, where the network-layer packet starts::

    if lt in EXTRA_LINKTYPES:                   # instead of UNKNOWN_LINKTYPE straight away
        r = link_payload(lt, frame)
        if type(r) is Refusal: -> r.status (NOT_IP or MALFORMED), last_error = r.reason
        else (LinkPayload): continue as for a tunnel's inner packet:
            INNER_ETHERTYPE -> the decoder's ethertype walk at r.off with r.ethertype
            INNER_ETHERNET  -> an Ethernet header at r.off (PPI carrying Ethernet)

So the common link types (Ethernet above all) never reach this code.  Frames are walked with
offsets only, nothing is copied, and nothing raises on network input: a short or bad header
gives ``Refusal(MALFORMED, reason)``, a frame that carries no IP (802.11 management, control
or null-data frames, encrypted data, ARCNET ARP, non-SNAP LLC) gives ``Refusal(NOT_IP, ...)``.

802.11: only data frames carry IP.  The MAC header is 24 bytes, 30 with a fourth address
(ToDS and FromDS both set, a WDS/mesh frame), +2 for QoS data, +4 for an HT/VHT control field
(QoS data with the Order bit); a protected frame is encrypted (no IP for us) and an A-MSDU
(QoS control bit 7) carries subframes: we decode its first subframe, as the first MSDU's
LLC/SNAP follows a 14-byte subframe header.  The payload is LLC/SNAP (RFC 1042, or 802.1H's
00-00-F8 OUI) giving an ethertype.  A frame check sequence at the end (radiotap flag 0x10)
needs no handling: the IP header's length ends the packet.  Radiotap's data-pad flag (0x20)
means the driver padded the MAC header to a multiple of 4 bytes (a 26-byte QoS header is
followed by 2 pad bytes): the Flags field is found by walking the present-bit words.

docs/linktypes.md lists libpcap's link-type registry with a decision and reason for each.
The module is sans-IO and imports only ``mostool.stack`` and the standard library.
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

from mostool.stack.tunnels import INNER_ETHERNET, INNER_ETHERTYPE, MALFORMED

__all__ = [
    "NOT_IP",
    "LINKTYPE_ARCNET_BSD",
    "LINKTYPE_FDDI",
    "LINKTYPE_IEEE802_11",
    "LINKTYPE_PRISM",
    "LINKTYPE_RADIOTAP",
    "LINKTYPE_ARCNET_LINUX",
    "LINKTYPE_AVS",
    "LINKTYPE_PPI",
    "LINKTYPE_IPOIB",
    "EXTRA_LINKTYPES",
    "LinkPayload",
    "Refusal",
    "link_payload",
    "llc_snap",
    "ieee80211",
]

NOT_IP: Final = 1  # = mostool.stack.decode.NOT_IP (checked by a test)

LINKTYPE_ARCNET_BSD: Final = 7
LINKTYPE_FDDI: Final = 10
LINKTYPE_IEEE802_11: Final = 105
LINKTYPE_PRISM: Final = 119
LINKTYPE_RADIOTAP: Final = 127
LINKTYPE_ARCNET_LINUX: Final = 129
LINKTYPE_AVS: Final = 163
LINKTYPE_PPI: Final = 192
LINKTYPE_IPOIB: Final = 242

EXTRA_LINKTYPES: Final = frozenset(
    {
        LINKTYPE_ARCNET_BSD,
        LINKTYPE_FDDI,
        LINKTYPE_IEEE802_11,
        LINKTYPE_PRISM,
        LINKTYPE_RADIOTAP,
        LINKTYPE_ARCNET_LINUX,
        LINKTYPE_AVS,
        LINKTYPE_PPI,
        LINKTYPE_IPOIB,
    }
)

_ETH_IPV4: Final = 0x0800
_ETH_IPV6: Final = 0x86DD
_PPI_MAX_NEST: Final = 2  # a PPI header around another PPI header is a broken file, not a tunnel

_U16: Final = struct.Struct("!H").unpack_from
_U16LE: Final = struct.Struct("<H").unpack_from
_U32: Final = struct.Struct("!I").unpack_from
_U32LE: Final = struct.Struct("<I").unpack_from

# ARCNET protocol ids (RFC 1051 "old" ones have no split flag / sequence id; RFC 1201 ones do)
_ARC_IP_OLD: Final = 0xF0
_ARC_ARP_OLD: Final = 0xF1
_ARC_IP: Final = 0xD4
_ARC_ARP: Final = 0xD5
_ARC_IPV6: Final = 0xC4
_ARC_ETHERTYPE: Final = {_ARC_IP_OLD: _ETH_IPV4, _ARC_IP: _ETH_IPV4, _ARC_IPV6: _ETH_IPV6}


class LinkPayload(NamedTuple):
    """Where the network-layer packet starts: see the module doc."""

    inner: int
    """INNER_ETHERTYPE or INNER_ETHERNET."""
    ethertype: int
    off: int


class Refusal(NamedTuple):
    """No network-layer packet: ``status`` NOT_IP or MALFORMED, ``reason`` why."""

    status: int
    reason: str


def _bad(reason: str) -> Refusal:
    return Refusal(MALFORMED, reason)


def llc_snap(buf: bytes, off: int, what: str) -> LinkPayload | Refusal:
    """An 802.2 LLC header at ``off``: SNAP (AA AA 03 + OUI + ethertype) gives the ethertype."""
    n = len(buf)
    if off + 3 > n:
        return _bad(f"{what}: LLC header truncated")
    dsap, ssap, ctrl = buf[off], buf[off + 1], buf[off + 2]
    if dsap == 0xAA and ssap == 0xAA and ctrl == 0x03:
        if off + 8 > n:
            return _bad(f"{what}: SNAP header truncated")
        return LinkPayload(INNER_ETHERTYPE, _U16(buf, off + 6)[0], off + 8)
    if dsap == 0x06 and ssap == 0x06 and ctrl == 0x03:  # IP straight over LLC (RFC 948 style)
        return LinkPayload(INNER_ETHERTYPE, _ETH_IPV4, off + 3)
    return Refusal(NOT_IP, f"{what}: LLC DSAP 0x{dsap:02x} SSAP 0x{ssap:02x}")


def ieee80211(buf: bytes, off: int, data_pad: bool = False) -> LinkPayload | Refusal:
    """An 802.11 MAC frame at ``off`` (see the module doc).

    ``data_pad``: radiotap's flag 0x20, the driver padded the MAC header to a multiple of 4
    bytes (a QoS data header of 26 bytes is followed by 2 pad bytes).
    """
    n = len(buf)
    if off + 24 > n:
        return _bad("802.11: header truncated")
    fc0, fc1 = buf[off], buf[off + 1]
    if fc0 & 0x03:
        return _bad(f"802.11: protocol version {fc0 & 3}")
    ftype = (fc0 >> 2) & 3
    subtype = fc0 >> 4
    if ftype != 2:
        kind = ("management", "control", "data", "extension")[ftype]
        return Refusal(NOT_IP, f"802.11: {kind} frame")
    if subtype & 0x04:
        return Refusal(NOT_IP, "802.11: data frame without data (null/CF)")
    if fc1 & 0x40:
        return Refusal(NOT_IP, "802.11: protected (encrypted) frame")
    hlen = 30 if fc1 & 0x03 == 0x03 else 24
    amsdu = False
    if subtype & 0x08:  # QoS data
        if off + hlen + 2 > n:
            return _bad("802.11: QoS control truncated")
        amsdu = bool(buf[off + hlen] & 0x80)
        hlen += 2
        if fc1 & 0x80:  # Order: HT control
            hlen += 4
    if data_pad:
        hlen = (hlen + 3) & ~3
    p = off + hlen
    if amsdu:
        p += 14  # first A-MSDU subframe header: DA, SA, length
    return llc_snap(buf, p, "802.11")


def _radiotap(buf: bytes) -> LinkPayload | Refusal:
    if len(buf) < 8:
        return _bad("radiotap: header truncated")
    if buf[0] != 0:
        return _bad(f"radiotap: version {buf[0]}")
    hlen = _U16LE(buf, 2)[0]
    if hlen < 8 or hlen > len(buf):
        return _bad(f"radiotap: header length {hlen}")
    return ieee80211(buf, hlen, _radiotap_data_pad(buf, hlen))


def _radiotap_data_pad(buf: bytes, hlen: int) -> bool:
    """Whether the radiotap Flags field (present bit 1) has the data-pad bit 0x20 set.

    Fields follow the chain of present words (bit 31: another word follows); TSFT (bit 0,
    8 bytes aligned to 8 from the header's start) comes before Flags.
    """
    present = _U32LE(buf, 4)[0]
    p = 8
    word = present
    while word & 0x80000000:
        if p + 4 > hlen:
            return False
        word = _U32LE(buf, p)[0]
        p += 4
    if not present & 0x02:
        return False
    if present & 0x01:
        p = ((p + 7) & ~7) + 8
    return p < hlen and bool(buf[p] & 0x20)


def _ppi(buf: bytes, off: int, depth: int) -> LinkPayload | Refusal:
    if off + 8 > len(buf):
        return _bad("ppi: header truncated")
    hlen = _U16LE(buf, off + 2)[0]
    dlt = _U32LE(buf, off + 4)[0]
    if buf[off] != 0 or hlen < 8 or off + hlen > len(buf):
        return _bad(f"ppi: version {buf[off]}, header length {hlen}")
    p = off + hlen
    if dlt == 1:
        if p + 14 > len(buf):
            return _bad("ppi: Ethernet header truncated")
        return LinkPayload(INNER_ETHERNET, 0, p)
    if dlt == LINKTYPE_IEEE802_11:
        return ieee80211(buf, p)
    if dlt == LINKTYPE_PPI and depth < _PPI_MAX_NEST:
        return _ppi(buf, p, depth + 1)
    return Refusal(NOT_IP, f"ppi: carried link type {dlt}")


def _arcnet(buf: bytes, type_off: int) -> LinkPayload | Refusal:
    n = len(buf)
    if type_off + 1 > n:
        return _bad("arcnet: header truncated")
    arc_type = buf[type_off]
    p = type_off + 1
    if arc_type in (_ARC_IP, _ARC_IPV6, _ARC_ARP):  # RFC 1201: split flag, sequence id
        if p + 1 > n:
            return _bad("arcnet: split flag truncated")
        if buf[p] == 0xFF:  # exception packet: flag, two pad bytes, the protocol id again
            p += 4
        p += 3
        if p > n:
            return _bad("arcnet: header truncated")
    et = _ARC_ETHERTYPE.get(arc_type)
    if et is None:
        return Refusal(NOT_IP, f"arcnet: protocol id 0x{arc_type:02x}")
    return LinkPayload(INNER_ETHERTYPE, et, p)


def link_payload(linktype: int, buf: bytes) -> LinkPayload | Refusal:
    """Where the frame's network-layer packet starts (``linktype`` in EXTRA_LINKTYPES)."""
    if linktype == LINKTYPE_RADIOTAP:
        return _radiotap(buf)
    if linktype == LINKTYPE_IEEE802_11:
        return ieee80211(buf, 0)
    if linktype == LINKTYPE_PPI:
        return _ppi(buf, 0, 0)
    if linktype == LINKTYPE_FDDI:
        # frame control, destination, source; then LLC.  Frame control 0x50-0x57 is an LLC
        # frame (asynchronous; synchronous 0xD0-0xD7 too), anything else is MAC/SMT.
        if len(buf) < 13:
            return _bad("fddi: header truncated")
        if buf[0] & 0x70 != 0x50:
            return Refusal(NOT_IP, f"fddi: frame control 0x{buf[0]:02x} (not LLC)")
        return llc_snap(buf, 13, "fddi")
    if linktype == LINKTYPE_IPOIB:
        # libpcap's IPoIB: destination and source hardware addresses (20 bytes each), then
        # RFC 4391's 4-byte encapsulation header: ethertype, reserved
        if len(buf) < 44:
            return _bad("ipoib: header truncated")
        return LinkPayload(INNER_ETHERTYPE, _U16(buf, 40)[0], 44)
    if linktype == LINKTYPE_ARCNET_LINUX:
        # source, destination, offset (2 bytes), then the protocol id
        return _arcnet(buf, 4)
    if linktype == LINKTYPE_ARCNET_BSD:
        # source, destination, then the protocol id
        return _arcnet(buf, 2)
    if linktype == LINKTYPE_PRISM:
        # Prism monitor header: message code, message length (little-endian), then 802.11
        if len(buf) < 8:
            return _bad("prism: header truncated")
        hlen = _U32LE(buf, 4)[0]
        if hlen < 8 or hlen > len(buf):
            return _bad(f"prism: header length {hlen}")
        return ieee80211(buf, hlen)
    if linktype == LINKTYPE_AVS:
        # AVS WLAN capture header: version, header length (both big-endian), then 802.11
        if len(buf) < 8:
            return _bad("avs: header truncated")
        hlen = _U32(buf, 4)[0]
        if hlen < 8 or hlen > len(buf):
            return _bad(f"avs: header length {hlen}")
        return ieee80211(buf, hlen)
    return Refusal(NOT_IP, f"linktype {linktype} not handled here")
