"""What a run left untracked, counted so it is never dropped in silence.

* TCP packets of connections whose handshake is not in the capture: without ``--midstream``
  (mOS's default: a flow begins with its SYN) the engine gives them to no flow (ON_ORPHAN
  ``no_flow``). Forensic captures often start mid-conversation; the summary says how many
  packets and connections were left out and how to pick them up. The last ACK of a flow that
  ended is also a ``no_flow`` orphan: a connection counts from its first packet with payload
  or a SYN/ACK, so such ACKs, FINs and RSTs alone are not counted.
* Frames of a link type the decoder does not read (802.11 radiotap, DSA, Juniper ...): counted
  by link type, named once in the summary.

``Untracked(mon)`` subscribes to ON_ORPHAN on the monitor's first stream listener (creating one
that accepts every flow when there is none); read ``packets``, ``connections``, ``linktypes``
and ``lines()`` after the run.
"""

from __future__ import annotations

from typing import Any

from mostool.events.types import ON_ORPHAN
from mostool.monitor import Monitor
from mostool.sinks.select import stream_sockets

__all__ = ["Untracked", "linktype_name"]

_SYN_ACK = 0x12

LINKTYPE_NAMES = {
    0: "NULL", 1: "EN10MB (Ethernet)", 9: "PPP", 12: "RAW", 14: "RAW", 50: "PPP_HDLC",
    51: "PPP_ETHER", 101: "RAW (raw IP)", 104: "C_HDLC", 105: "IEEE802_11 (802.11)",
    108: "LOOP", 113: "LINUX_SLL (Linux cooked v1)", 119: "IEEE802_11_PRISM",
    127: "IEEE802_11_RADIOTAP (802.11 radiotap)", 143: "DOCSIS", 163: "IEEE802_11_AVS",
    178: "JUNIPER_ETHER", 183: "JUNIPER_PPPOE", 192: "PPI", 195: "IEEE802_15_4",
    201: "BLUETOOTH_HCI_H4_WITH_PHDR", 220: "USB_LINUX_MMAPPED", 228: "IPV4", 229: "IPV6",
    239: "NFLOG", 276: "LINUX_SLL2 (Linux cooked v2)", 281: "DSA_TAG_BRCM",
    282: "DSA_TAG_BRCM_PREPEND", 284: "DSA_TAG_DSA", 285: "DSA_TAG_EDSA",
}


def linktype_name(linktype: Any) -> str:
    return LINKTYPE_NAMES.get(linktype, str(linktype))


def _pair(a: bytes, ap: int, b: bytes, bp: int) -> tuple[tuple[bytes, int], tuple[bytes, int]]:
    one, two = (a, ap), (b, bp)
    return (one, two) if one <= two else (two, one)


class Untracked:
    """Counts the TCP packets and connections no flow took, and undecoded link types."""

    def __init__(self, mon: Monitor) -> None:
        self.midstream = bool(mon.config.midstream)
        self.packets = 0
        self._conns: set[tuple[tuple[bytes, int], tuple[bytes, int]]] = set()
        self.linktypes: dict[int, int] = {}
        stream_sockets(mon)[0].on(ON_ORPHAN, callback=self._orphan)

    @property
    def connections(self) -> int:
        return len(self._conns)

    def _orphan(self, handle: Any, side: Any, event: Any) -> None:
        reason = event.reason
        if reason == "no_flow":
            seg = handle.seg
            if seg is None:
                return
            key = _pair(seg.src, seg.sport, seg.dst, seg.dport)
            conns = self._conns
            if key not in conns:
                # A connection is untracked once it shows payload or a SYN/ACK: the pure
                # ACKs, FINs and RSTs that follow the end of a tracked flow (its last ACK)
                # are no connection of their own. No per-flow bookkeeping, so no cost for
                # the flows that are tracked.
                if not (seg.payload_len or seg.flags & _SYN_ACK == _SYN_ACK):
                    return
                conns.add(key)
            self.packets += 1
        elif reason == "unknown_linktype":
            linktype = handle.frame[0]
            self.linktypes[linktype] = self.linktypes.get(linktype, 0) + 1

    @property
    def undecoded(self) -> int:
        return sum(self.linktypes.values())

    def lines(self) -> list[str]:
        """One line per thing left out (none when nothing was)."""
        out = []
        if self.packets and not self.midstream:
            n = self.connections
            out.append(f"{self.packets} TCP packet{'s' if self.packets != 1 else ''} of {n} "
                       f"connection{'s' if n != 1 else ''} not tracked: their handshake is not "
                       "in the capture (--midstream picks them up)")
        for linktype, frames in sorted(self.linktypes.items()):
            out.append(f"{frames} frame{'s' if frames != 1 else ''} of link type "
                       f"{linktype_name(linktype).split(' (')[0]} ({linktype}) not decoded: "
                       "mostool reads Ethernet, raw IP, Linux cooked, loopback, PPP, C-HDLC "
                       "and NFLOG captures")
        return out
