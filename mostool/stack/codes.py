"""The numbers a frame is described by, shared by the decoder and the modules it calls: the
decoder's status codes for a frame that gives no TCP segment, TCP flag bits, and the libpcap
link types the decoder walks itself (``linktypes.EXTRA_LINKTYPES`` are the others it knows).
``mostool.stack.decode`` re-exports them all.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "NOT_IP", "NOT_TCP", "FRAGMENT", "MALFORMED", "UNKNOWN_LINKTYPE", "STATUS_NAMES",
    "ORPHAN_REASONS",
    "FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR",
    "LINKTYPE_NULL", "LINKTYPE_ETHERNET", "LINKTYPE_PPP", "LINKTYPE_RAW", "LINKTYPE_PPP_HDLC",
    "LINKTYPE_PPP_ETHER", "LINKTYPE_C_HDLC", "LINKTYPE_LOOP", "LINKTYPE_LINUX_SLL",
    "LINKTYPE_IPV4", "LINKTYPE_IPV6", "LINKTYPE_NFLOG", "LINKTYPE_LINUX_SLL2",
    "SUPPORTED_LINKTYPES",
]

# --------------------------------------------------------------------------- status codes

NOT_IP: Final = 1
"""The frame carries no IPv4/IPv6 packet (ARP, LLDP, unknown ethertype, CAN, ...)."""
NOT_TCP: Final = 2
"""An IP packet of another protocol (UDP, ICMP, ESP, ...), reassembled or not."""
FRAGMENT: Final = 3
"""An IP fragment held for reassembly: nothing to do yet (mostool/stack/ipfrag.py)."""
MALFORMED: Final = 4
"""A header is truncated or invalid; ``Decoder.last_error`` says why."""
UNKNOWN_LINKTYPE: Final = 5
"""The link type is not supported."""

STATUS_NAMES: Final[dict[int, str]] = {
    NOT_IP: "not_ip",
    NOT_TCP: "not_tcp",
    FRAGMENT: "fragment",
    MALFORMED: "malformed",
    UNKNOWN_LINKTYPE: "unknown_linktype",
}

#: The orphan reason (and the engine's counter) for a frame that gives no TCP segment.
ORPHAN_REASONS: Final[dict[int, str]] = {
    NOT_IP: "non_ip",
    NOT_TCP: "non_tcp",
    MALFORMED: "malformed",
    UNKNOWN_LINKTYPE: "unknown_linktype",
}

# --------------------------------------------------------------------------- TCP flags

FIN: Final = 0x01
SYN: Final = 0x02
RST: Final = 0x04
PSH: Final = 0x08
ACK: Final = 0x10
URG: Final = 0x20
ECE: Final = 0x40
CWR: Final = 0x80

# --------------------------------------------------------------------------- link types

LINKTYPE_NULL: Final = 0
LINKTYPE_ETHERNET: Final = 1
LINKTYPE_PPP: Final = 9
LINKTYPE_RAW: Final = 101
LINKTYPE_PPP_HDLC: Final = 50
LINKTYPE_PPP_ETHER: Final = 51
LINKTYPE_C_HDLC: Final = 104
LINKTYPE_LOOP: Final = 108
LINKTYPE_LINUX_SLL: Final = 113
LINKTYPE_IPV4: Final = 228
LINKTYPE_IPV6: Final = 229
LINKTYPE_NFLOG: Final = 239
LINKTYPE_LINUX_SLL2: Final = 276

SUPPORTED_LINKTYPES: Final = frozenset(
    {0, 1, 9, 12, 14, 50, 51, 101, 104, 108, 113, 228, 229, 239, 276}
)
