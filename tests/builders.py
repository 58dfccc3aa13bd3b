"""Scenario builder: script a TCP conversation segment by segment into capture frames.

Tests describe what the client and the server send, in order, and get back the frames a capture
would have recorded, as ``(ts, linktype, frame bytes, wire_len)`` tuples: exactly what mostool's
capture reader yields, so a test can feed them to the engine or write them to a pcap.

    sc = Scenario()                     # 10.0.0.1:40000 -> 10.0.0.2:80, Ethernet
    sc.handshake()                      # SYN, SYN/ACK, ACK
    sc.send(CLI, b"GET / HTTP/1.1\\r\\n\\r\\n")
    lost = sc.drop(sc.send(SVR, b"HTTP/1.1 200 OK\\r\\n"))   # lost before the capture point
    sc.send(SVR, b"\\r\\nbody")                               # lands after a hole
    sc.inject(lost)                     # the held-back segment arrives late (reordering)
    sc.send(SVR, b"HTTP/1.1 200 OK\\r\\n", seq_offset=0)    # ... or is retransmitted
    sc.close()                          # FIN, ACK, FIN, ACK
    sc.write_pcap("case.pcap")

Sequence numbers are tracked per side as *stream offsets*: offset 0 is the first byte after the
SYN (``isn + 1``). ``send`` writes at the sender's next offset, or at an explicit ``seq_offset``
(retransmissions, overlaps, holes), and moves the next offset to ``max(next, end)``; the
acknowledgment number is always the peer's current next sequence number unless told otherwise.
``raw`` takes absolute numbers and leaves the state alone. All arithmetic is modulo 2**32, so ISNs
near the wrap work.

Packets are built with ``struct`` (dpkt is used by the builder's own tests to check them) and
carry correct IPv4 header, TCP and UDP checksums unless ``bad_checksum`` is set. Options are
Linux-like: SYNs carry MSS 1460, SACK-permitted, a timestamp and window scale 7; other segments a
timestamp whose value follows the frame time (1 ms ticks) and whose echo is the peer's last value.

Link types: 1 Ethernet (optional 802.1Q tag, or a tuple of tags for QinQ), 101 / 228 / 229 raw IP,
113 Linux SLL, 276 Linux SLL2, 0 BSD NULL (host order, little-endian), 108 BSD LOOP (big-endian).
Linux SLL frames are written as captured on the client host: the client's frames are outgoing,
the server's incoming.
"""

from __future__ import annotations

import ipaddress
import os
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = [
    "CLI",
    "SVR",
    "Frame",
    "Scenario",
    "tcp_frame",
    "udp_frame",
    "arp_frame",
    "ip_packet",
    "link_frame",
    "ipv4_fragments",
    "tcp_flags",
    "syn_options",
    "ts_options",
    "sack_option",
    "inet_checksum",
    "parse_endpoint",
    "write_pcap",
    "retime",
    "LINKTYPE_NULL",
    "LINKTYPE_ETHERNET",
    "LINKTYPE_RAW",
    "LINKTYPE_LOOP",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_IPV4",
    "LINKTYPE_IPV6",
    "LINKTYPE_LINUX_SLL2",
]

CLI, SVR = 0, 1

Frame = tuple[float, int, bytes, int]
"""(timestamp, linktype, captured frame bytes, original length on the wire)."""

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

_RAW_LINKTYPES = (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6)
_LINKTYPES = frozenset(
    {LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_LOOP, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2}
    | set(_RAW_LINKTYPES)
)

ETH_IPV4, ETH_IPV6, ETH_ARP, ETH_VLAN, ETH_QINQ = 0x0800, 0x86DD, 0x0806, 0x8100, 0x88A8
PROTO_TCP, PROTO_UDP = 6, 17
_AF_INET, _AF_INET6_NULL = 2, 30  # BSD NULL/LOOP: AF_INET6 is 24, 28 or 30 by OS; 30 = macOS
_SLL_HOST, _SLL_OUTGOING = 0, 4  # Linux packet types (PACKET_HOST, PACKET_OUTGOING)

_FLAG_BITS = {
    "F": 0x01,
    "S": 0x02,
    "R": 0x04,
    "P": 0x08,
    "A": 0x10,
    "U": 0x20,
    "E": 0x40,
    "C": 0x80,
}
_SEQ_MOD = 1 << 32
_PCAP_SNAPLEN = 262144

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


# --------------------------------------------------------------------------------------------
# low-level helpers
# --------------------------------------------------------------------------------------------


def parse_endpoint(endpoint: str) -> tuple[Address, int]:
    """``"10.0.0.1:40000"`` or ``"[2001:db8::1]:40000"`` -> (address, port)."""
    host, sep, port_s = endpoint.rpartition(":")
    if not sep or not port_s.isdigit():
        raise ValueError(f"endpoint {endpoint!r} is not ADDRESS:PORT")
    if host.startswith("[") and host.endswith("]"):
        addr: Address = ipaddress.IPv6Address(host[1:-1])
    else:
        addr = ipaddress.IPv4Address(host)
    port = int(port_s)
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"port out of range in {endpoint!r}")
    return addr, port


def inet_checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum (the value to store in the header)."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tcp_flags(flags: str) -> int:
    """``"SA"`` -> 0x12. Letters: S A F R P U E C (case-insensitive, any order)."""
    bits = 0
    for letter in flags.upper():
        if letter not in _FLAG_BITS:
            raise ValueError(f"unknown TCP flag {letter!r} in {flags!r} (use S A F R P U E C)")
        bits |= _FLAG_BITS[letter]
    return bits


def syn_options(
    *,
    mss: int = 1460,
    wscale: int | None = 7,
    sack_ok: bool = True,
    tsval: int | None = 0,
    tsecr: int = 0,
) -> bytes:
    """SYN options in Linux's order: MSS, SACK-permitted + timestamp, NOP + window scale."""
    out = struct.pack("!BBH", 2, 4, mss)
    if tsval is not None:
        out += (b"\x04\x02" if sack_ok else b"\x01\x01") + struct.pack(
            "!BBII", 8, 10, tsval & 0xFFFFFFFF, tsecr & 0xFFFFFFFF
        )
    elif sack_ok:
        out += b"\x01\x01\x04\x02"
    if wscale is not None:
        out += struct.pack("!BBBB", 1, 3, 3, wscale)
    return out


def ts_options(tsval: int, tsecr: int) -> bytes:
    """NOP, NOP, timestamp: the 12 option bytes of a Linux data segment."""
    return struct.pack("!BBBBII", 1, 1, 8, 10, tsval & 0xFFFFFFFF, tsecr & 0xFFFFFFFF)


def sack_option(blocks: Sequence[tuple[int, int]]) -> bytes:
    """NOP, NOP, SACK with absolute ``(left, right)`` edges (at most 4 blocks)."""
    if not 1 <= len(blocks) <= 4:
        raise ValueError("a SACK option holds 1 to 4 blocks")
    body = b"".join(struct.pack("!II", lo % _SEQ_MOD, hi % _SEQ_MOD) for lo, hi in blocks)
    return b"\x01\x01" + struct.pack("!BB", 5, 2 + len(body)) + body


def _mac_for(addr: Address) -> bytes:
    """A stable locally administered MAC derived from an IP address."""
    return b"\x02\x00" + addr.packed[-4:]


def _pseudo_header(src: Address, dst: Address, proto: int, length: int) -> bytes:
    if src.version == 4:
        return src.packed + dst.packed + struct.pack("!BBH", 0, proto, length)
    return src.packed + dst.packed + struct.pack("!IxxxB", length, proto)


def _tcp_segment(
    src: Address,
    dst: Address,
    sport: int,
    dport: int,
    *,
    flags: str,
    seq: int,
    ack: int,
    data: bytes,
    window: int,
    options: bytes,
    urgent: int,
    bad_checksum: bool,
) -> bytes:
    if len(options) % 4:
        options += b"\x00" * (4 - len(options) % 4)  # EOL padding
    if len(options) > 40:
        raise ValueError("TCP options longer than 40 bytes")
    offset_words = (20 + len(options)) // 4
    header = struct.pack(
        "!HHIIBBHHH",
        sport,
        dport,
        seq % _SEQ_MOD,
        ack % _SEQ_MOD,
        offset_words << 4,
        tcp_flags(flags),
        window & 0xFFFF,
        0,
        urgent & 0xFFFF,
    )
    segment = header + options + data
    csum = inet_checksum(_pseudo_header(src, dst, PROTO_TCP, len(segment)) + segment)
    if bad_checksum:
        csum ^= 0x0BAD  # never maps 0x0000 <-> 0xFFFF, so the result is always wrong
    return segment[:16] + struct.pack("!H", csum) + segment[18:]


def ip_packet(
    src: Address,
    dst: Address,
    proto: int,
    payload: bytes,
    *,
    ip_id: int = 0,
    ttl: int = 64,
    df: bool = True,
    tos: int = 0,
) -> bytes:
    """An IPv4 (with header checksum) or IPv6 packet around ``payload``."""
    if src.version != dst.version:
        raise ValueError(f"address families differ: {src} / {dst}")
    if src.version == 4:
        header = struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            tos,
            20 + len(payload),
            ip_id & 0xFFFF,
            0x4000 if df else 0,
            ttl,
            proto,
            0,
            src.packed,
            dst.packed,
        )
        header = header[:10] + struct.pack("!H", inet_checksum(header)) + header[12:]
        return header + payload
    first = (6 << 28) | (tos << 20)
    return struct.pack("!IHBB", first, len(payload), proto, ttl) + src.packed + dst.packed + payload


def ipv4_fragments(packet: bytes, size: int) -> list[bytes]:
    """Split an IPv4 packet (no IP options) into fragments carrying ``size`` payload bytes each.

    ``size`` is rounded down to a multiple of 8. The DF bit is cleared; checksums are recomputed.
    """
    if packet[0] != 0x45:
        raise ValueError("ipv4_fragments needs an IPv4 packet without IP options")
    size -= size % 8
    if size <= 0:
        raise ValueError("fragment size must be at least 8")
    header, payload = packet[:20], packet[20:]
    out = []
    for start in range(0, len(payload), size):
        piece = payload[start : start + size]
        more = 0x2000 if start + size < len(payload) else 0
        frag = (
            header[:2]
            + struct.pack("!H", 20 + len(piece))
            + header[4:6]
            + struct.pack("!H", more | (start // 8))
            + header[8:10]
            + b"\x00\x00"
            + header[12:20]
        )
        frag = frag[:10] + struct.pack("!H", inet_checksum(frag)) + frag[12:]
        out.append(frag + piece)
    return out


def _vlan_tags(vlan: int | Sequence[int] | None) -> tuple[int, ...]:
    if vlan is None:
        return ()
    tags = (vlan,) if isinstance(vlan, int) else tuple(vlan)
    for tag in tags:
        if not 0 <= tag <= 0xFFF:
            raise ValueError(f"VLAN id {tag} out of range")
    return tags


def link_frame(
    ip_or_payload: bytes,
    *,
    linktype: int = LINKTYPE_ETHERNET,
    ethertype: int = ETH_IPV4,
    src_mac: bytes = b"\x02\x00\x00\x00\x00\x01",
    dst_mac: bytes = b"\x02\x00\x00\x00\x00\x02",
    vlan: int | Sequence[int] | None = None,
    sll_pkttype: int = _SLL_HOST,
    pad_to: int = 0,
) -> bytes:
    """Wrap a network-layer packet in the link header of ``linktype``.

    ``vlan`` (Ethernet only) is one 802.1Q id or a sequence of ids, outermost first; with more than
    one, the outer tags use TPID 0x88a8 (QinQ). ``pad_to`` pads an Ethernet frame with zero bytes
    to that length (60 = the minimum frame, as a receiver's capture shows it).
    """
    tags = _vlan_tags(vlan)
    if tags and linktype != LINKTYPE_ETHERNET:
        raise ValueError("VLAN tags need linktype 1 (Ethernet)")
    if linktype == LINKTYPE_ETHERNET:
        head = dst_mac + src_mac
        for i, tag in enumerate(tags):
            tpid = ETH_QINQ if i < len(tags) - 1 else ETH_VLAN
            head += struct.pack("!HH", tpid, tag)
        frame = head + struct.pack("!H", ethertype) + ip_or_payload
        return frame + b"\x00" * max(0, pad_to - len(frame))
    if linktype in _RAW_LINKTYPES:
        if ethertype not in (ETH_IPV4, ETH_IPV6):
            raise ValueError(f"linktype {linktype} carries IP only")
        return ip_or_payload
    if linktype == LINKTYPE_LINUX_SLL:
        addr = src_mac.ljust(8, b"\x00")
        return struct.pack("!HHH8sH", sll_pkttype, 1, 6, addr, ethertype) + ip_or_payload
    if linktype == LINKTYPE_LINUX_SLL2:
        addr = src_mac.ljust(8, b"\x00")
        return struct.pack("!HHIHBB8s", ethertype, 0, 2, 1, sll_pkttype, 6, addr) + ip_or_payload
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if ethertype not in (ETH_IPV4, ETH_IPV6):
            raise ValueError(f"linktype {linktype} carries IP only")
        family = _AF_INET if ethertype == ETH_IPV4 else _AF_INET6_NULL
        return struct.pack("<I" if linktype == LINKTYPE_NULL else "!I", family) + ip_or_payload
    raise ValueError(f"unsupported linktype {linktype}")


def _ethertype(addr: Address) -> int:
    return ETH_IPV4 if addr.version == 4 else ETH_IPV6


def tcp_frame(
    src: str,
    dst: str,
    *,
    flags: str,
    seq: int,
    ack: int = 0,
    data: bytes = b"",
    window: int = 65535,
    options: bytes = b"",
    urgent: int = 0,
    linktype: int = LINKTYPE_ETHERNET,
    vlan: int | Sequence[int] | None = None,
    bad_checksum: bool = False,
    ip_id: int = 0,
    ttl: int = 64,
    src_mac: bytes | None = None,
    dst_mac: bytes | None = None,
    sll_pkttype: int = _SLL_HOST,
    pad_to: int = 0,
) -> bytes:
    """One TCP segment as a link-layer frame. ``src``/``dst`` are ``"ip:port"`` or ``"[v6]:port"``.

    ``seq`` and ``ack`` are absolute (taken modulo 2**32); ``options`` are raw option bytes, padded
    with EOL to a multiple of 4. MAC addresses default to ``02:00`` + the last 4 address bytes.
    """
    saddr, sport = parse_endpoint(src)
    daddr, dport = parse_endpoint(dst)
    segment = _tcp_segment(
        saddr,
        daddr,
        sport,
        dport,
        flags=flags,
        seq=seq,
        ack=ack,
        data=data,
        window=window,
        options=options,
        urgent=urgent,
        bad_checksum=bad_checksum,
    )
    packet = ip_packet(saddr, daddr, PROTO_TCP, segment, ip_id=ip_id, ttl=ttl)
    return link_frame(
        packet,
        linktype=linktype,
        ethertype=_ethertype(saddr),
        src_mac=src_mac or _mac_for(saddr),
        dst_mac=dst_mac or _mac_for(daddr),
        vlan=vlan,
        sll_pkttype=sll_pkttype,
        pad_to=pad_to,
    )


def udp_frame(
    src: str,
    dst: str,
    data: bytes = b"",
    *,
    linktype: int = LINKTYPE_ETHERNET,
    vlan: int | Sequence[int] | None = None,
    bad_checksum: bool = False,
    ip_id: int = 0,
    ttl: int = 64,
) -> bytes:
    """One UDP datagram as a link-layer frame (for orphan / non-TCP tests)."""
    saddr, sport = parse_endpoint(src)
    daddr, dport = parse_endpoint(dst)
    length = 8 + len(data)
    datagram = struct.pack("!HHHH", sport, dport, length, 0) + data
    csum = inet_checksum(_pseudo_header(saddr, daddr, PROTO_UDP, length) + datagram) or 0xFFFF
    if bad_checksum:
        csum ^= 0x0BAD
    datagram = datagram[:6] + struct.pack("!H", csum) + datagram[8:]
    packet = ip_packet(saddr, daddr, PROTO_UDP, datagram, ip_id=ip_id, ttl=ttl)
    return link_frame(
        packet,
        linktype=linktype,
        ethertype=_ethertype(saddr),
        src_mac=_mac_for(saddr),
        dst_mac=_mac_for(daddr),
        vlan=vlan,
    )


def arp_frame(
    sender_ip: str,
    target_ip: str,
    *,
    op: int = 1,
    sender_mac: bytes | None = None,
    target_mac: bytes | None = None,
    linktype: int = LINKTYPE_ETHERNET,
    vlan: int | Sequence[int] | None = None,
) -> bytes:
    """An ARP request (``op=1``, broadcast) or reply (``op=2``) for IPv4 addresses."""
    sip, tip = ipaddress.IPv4Address(sender_ip), ipaddress.IPv4Address(target_ip)
    smac = sender_mac or _mac_for(sip)
    tmac = target_mac or (b"\x00" * 6 if op == 1 else _mac_for(tip))
    body = struct.pack("!HHBBH", 1, ETH_IPV4, 6, 4, op) + smac + sip.packed + tmac + tip.packed
    dst = b"\xff" * 6 if op == 1 else tmac
    return link_frame(
        body,
        linktype=linktype,
        ethertype=ETH_ARP,
        src_mac=smac,
        dst_mac=dst,
        vlan=vlan,
        pad_to=60,
    )


def write_pcap(
    path: str | os.PathLike[str],
    frames: Iterable[Frame],
    *,
    linktype: int | None = None,
    snaplen: int = _PCAP_SNAPLEN,
) -> None:
    """Write frames as a classic microsecond pcap. All frames must share one link type."""
    frames = list(frames)
    kinds = {f[1] for f in frames}
    if len(kinds) > 1:
        raise ValueError(f"a pcap holds one link type, got {sorted(kinds)}")
    if linktype is None:
        linktype = kinds.pop() if kinds else LINKTYPE_ETHERNET
    elif kinds and kinds != {linktype}:
        raise ValueError(f"frames are linktype {kinds.pop()}, not {linktype}")
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype))
        for ts, _lt, data, wire_len in frames:
            usec_total = round(ts * 1_000_000)
            sec, usec = divmod(usec_total, 1_000_000)
            data = data[:snaplen]
            f.write(struct.pack("<IIII", sec, usec, len(data), max(wire_len, len(data))))
            f.write(data)


def retime(frames: Iterable[Frame], *, t0: float, step: float = 0.001) -> list[Frame]:
    """The same frames with fresh increasing timestamps ``t0, t0 + step, ...``."""
    return [(t0 + i * step, lt, data, wl) for i, (_ts, lt, data, wl) in enumerate(frames)]


# --------------------------------------------------------------------------------------------
# the scenario builder
# --------------------------------------------------------------------------------------------


@dataclass
class _Side:
    addr: Address
    port: int
    isn: int
    mac: bytes
    ip_id: int
    ts_offset: int
    next_off: int = 0  # next stream offset to send (offset 0 = isn + 1)
    fin_off: int | None = None  # stream offset the FIN occupies, once sent
    last_tsval: int = 0  # last timestamp value this side sent (the peer echoes it)
    sent: bytearray = field(default_factory=bytearray)  # first copy of every byte sent
    have: bytearray = field(default_factory=bytearray)  # 1 where `sent` holds a byte
    last: bytearray = field(default_factory=bytearray)  # last copy of every byte sent

    @property
    def endpoint(self) -> str:
        host = str(self.addr) if self.addr.version == 4 else f"[{self.addr}]"
        return f"{host}:{self.port}"

    def next_seq(self) -> int:
        extra = 1 if self.fin_off is not None and self.fin_off <= self.next_off else 0
        return (self.isn + 1 + self.next_off + extra) % _SEQ_MOD

    def seq_at(self, offset: int) -> int:
        return (self.isn + 1 + offset) % _SEQ_MOD

    def record(self, offset: int, data: bytes) -> None:
        if offset < 0 or not data:
            return
        end = offset + len(data)
        if len(self.sent) < end:
            grow = end - len(self.sent)
            self.sent.extend(b"\x00" * grow)
            self.have.extend(b"\x00" * grow)
            self.last.extend(b"\x00" * grow)
        self.last[offset:end] = data
        for i, byte in enumerate(data, offset):
            if not self.have[i]:
                self.sent[i] = byte
                self.have[i] = 1


class Scenario:
    """Script one TCP connection between a client and a server into capture frames.

    Every method that sends appends its frames to :attr:`frames` and returns the list of frames
    it appended. Timestamps start at ``t0`` and grow by ``step`` per frame (and by whatever
    :meth:`advance` adds).
    """

    def __init__(
        self,
        client: str = "10.0.0.1:40000",
        server: str = "10.0.0.2:80",
        *,
        client_isn: int = 1000,
        server_isn: int = 5000,
        t0: float = 1_700_000_000.0,
        step: float = 0.001,
        linktype: int = LINKTYPE_ETHERNET,
        vlan: int | Sequence[int] | None = None,
        timestamps: bool = True,
        eth_pad: bool = False,
    ) -> None:
        caddr, cport = parse_endpoint(client)
        saddr, sport = parse_endpoint(server)
        if caddr.version != saddr.version:
            raise ValueError(f"client {client} and server {server} differ in address family")
        if linktype not in _LINKTYPES:
            raise ValueError(f"unsupported linktype {linktype}")
        if linktype == LINKTYPE_IPV4 and caddr.version != 4:
            raise ValueError("linktype 228 is raw IPv4")
        if linktype == LINKTYPE_IPV6 and caddr.version != 6:
            raise ValueError("linktype 229 is raw IPv6")
        if vlan is not None and linktype != LINKTYPE_ETHERNET:
            raise ValueError("VLAN tags need linktype 1 (Ethernet)")
        _vlan_tags(vlan)
        self.linktype = linktype
        self.vlan = vlan
        self.t0 = t0
        self.step = step
        self.timestamps = timestamps
        self.eth_pad = eth_pad
        self.frames: list[Frame] = []
        self._stamps = 0  # frames stamped so far
        self._idle = 0.0  # total of advance()
        self._sides = (
            _Side(caddr, cport, client_isn % _SEQ_MOD, _mac_for(caddr), 0x1000, 100_000),
            _Side(saddr, sport, server_isn % _SEQ_MOD, _mac_for(saddr), 0x8000, 900_000),
        )

    # ---- introspection -------------------------------------------------------------------

    @property
    def client(self) -> str:
        return self._sides[CLI].endpoint

    @property
    def server(self) -> str:
        return self._sides[SVR].endpoint

    @property
    def now(self) -> float:
        """The timestamp the next frame will get."""
        return self.t0 + self._stamps * self.step + self._idle

    def isn(self, who: int) -> int:
        return self._pair(who)[0].isn

    def next_offset(self, who: int) -> int:
        """Stream offset of the next new byte ``who`` would send."""
        return self._pair(who)[0].next_off

    def next_seq(self, who: int) -> int:
        """Absolute sequence number ``who`` would send next (counts a FIN already sent)."""
        return self._pair(who)[0].next_seq()

    def seq(self, who: int, offset: int) -> int:
        """Absolute sequence number of stream offset ``offset`` of ``who``."""
        return self._pair(who)[0].seq_at(offset)

    def stream(self, who: int, *, start: int = 0, last: bool = False) -> bytes:
        """The bytes ``who`` sent from stream offset ``start`` up to the first hole after it.

        Where copies overlapped, the first copy sent wins (``last=True``: the last one).
        """
        side = self._pair(who)[0]
        hole = side.have.find(b"\x00", start)
        end = len(side.have) if hole < 0 else hole
        return bytes((side.last if last else side.sent)[start:end])

    def sent_ranges(self, who: int) -> list[tuple[int, int]]:
        """Stream-offset ranges ``[start, end)`` that ``who`` has sent data for, merged."""
        have = self._pair(who)[0].have
        ranges: list[tuple[int, int]] = []
        pos = have.find(b"\x01")
        while pos >= 0:
            end = have.find(b"\x00", pos)
            end = len(have) if end < 0 else end
            ranges.append((pos, end))
            pos = have.find(b"\x01", end)
        return ranges

    # ---- time ----------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Let time pass before the next frame (idle periods, timeouts)."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._idle += seconds

    def _stamp(self) -> float:
        ts = self.now  # t0 + n * step exactly, as a test would compute it
        self._stamps += 1
        return ts

    # ---- frame plumbing --------------------------------------------------------------------

    def _pair(self, who: int) -> tuple[_Side, _Side]:
        if who not in (CLI, SVR):
            raise ValueError(f"who must be CLI (0) or SVR (1), not {who!r}")
        return self._sides[who], self._sides[1 - who]

    def _tsval(self, side: _Side, ts: float) -> int:
        return (int(ts * 1000) + side.ts_offset) % _SEQ_MOD

    def _emit(
        self,
        who: int,
        *,
        flags: str,
        seq: int,
        ack: int,
        data: bytes = b"",
        window: int = 65535,
        options: bytes | None = None,
        extra_options: bytes = b"",
        syn: bool = False,
        bad_checksum: bool = False,
        snaplen: int | None = None,
        ip_fragment: int | None = None,
    ) -> list[Frame]:
        me, peer = self._pair(who)
        if ip_fragment is not None and me.addr.version != 4:
            raise ValueError("ip_fragment is for IPv4 only")
        ts = self._stamp()
        if options is None:
            if not self.timestamps:
                options = syn_options(tsval=None) if syn else b""
            else:
                tsval = self._tsval(me, ts)
                tsecr = peer.last_tsval if "A" in flags.upper() else 0
                options = syn_options(tsval=tsval, tsecr=tsecr) if syn else ts_options(tsval, tsecr)
                me.last_tsval = tsval
            options += extra_options
        segment = _tcp_segment(
            me.addr,
            peer.addr,
            me.port,
            peer.port,
            flags=flags,
            seq=seq,
            ack=ack,
            data=data,
            window=window,
            options=options,
            urgent=0,
            bad_checksum=bad_checksum,
        )
        me.ip_id = (me.ip_id + 1) & 0xFFFF
        packet = ip_packet(
            me.addr, peer.addr, PROTO_TCP, segment, ip_id=me.ip_id, df=ip_fragment is None
        )
        packets = [packet] if ip_fragment is None else ipv4_fragments(packet, ip_fragment)
        out: list[Frame] = []
        for i, pkt in enumerate(packets):
            frame = link_frame(
                pkt,
                linktype=self.linktype,
                ethertype=_ethertype(me.addr),
                src_mac=me.mac,
                dst_mac=peer.mac,
                vlan=self.vlan,
                sll_pkttype=_SLL_OUTGOING if who == CLI else _SLL_HOST,
                pad_to=60 if self.eth_pad else 0,
            )
            wire_len = len(frame)
            if snaplen is not None:
                frame = frame[:snaplen]
            out.append((ts if i == 0 else self._stamp(), self.linktype, frame, wire_len))
        self.frames.extend(out)
        return out

    def drop(self, frames: Iterable[Frame]) -> list[Frame]:
        """Remove frames from :attr:`frames` (lost before the capture point); returns them."""
        dropped = list(frames)
        for frame in dropped:
            index = next((i for i, f in enumerate(self.frames) if f is frame), None)
            if index is None:
                try:
                    index = self.frames.index(frame)
                except ValueError:
                    raise ValueError("frame is not in this scenario") from None
            del self.frames[index]
        return dropped

    def inject(self, frames: Iterable[Frame]) -> list[Frame]:
        """Append copies of earlier frames with the current time (late delivery, duplicates)."""
        out = [(self._stamp(), lt, data, wl) for _ts, lt, data, wl in frames]
        self.frames.extend(out)
        return out

    # ---- connection setup ------------------------------------------------------------------

    def syn(self, *, isn: int | None = None, data: bytes = b"", window: int = 64240) -> list[Frame]:
        """The client's SYN (``isn`` replaces the client ISN; ``data`` rides on the SYN)."""
        me = self._sides[CLI]
        if isn is not None:
            me.isn = isn % _SEQ_MOD
        frames = self._emit(CLI, flags="S", seq=me.isn, ack=0, data=data, window=window, syn=True)
        me.record(0, data)
        me.next_off = max(me.next_off, len(data))
        return frames

    def synack(self, *, isn: int | None = None, window: int = 65160) -> list[Frame]:
        """The server's SYN/ACK, acknowledging the client's SYN (and any SYN data)."""
        me, peer = self._sides[SVR], self._sides[CLI]
        if isn is not None:
            me.isn = isn % _SEQ_MOD
        return self._emit(SVR, flags="SA", seq=me.isn, ack=peer.next_seq(), window=window, syn=True)

    def handshake(self) -> list[Frame]:
        """SYN, SYN/ACK, ACK."""
        return self.syn() + self.synack() + self.ack(CLI)

    # ---- data and acknowledgments --------------------------------------------------------

    def send(
        self,
        who: int,
        data: bytes,
        *,
        seq_offset: int | None = None,
        flags: str = "PA",
        ack: bool = True,
        window: int = 65535,
        bad_checksum: bool = False,
        snaplen: int | None = None,
        options: bytes | None = None,
        ip_fragment: int | None = None,
    ) -> list[Frame]:
        """``data`` at the sender's next offset or at ``seq_offset`` (0 = first byte after SYN).

        ``ack=False`` clears the ACK flag and sends ack number 0. ``snaplen`` truncates the
        captured frame (the wire length stays). ``ip_fragment`` splits the IPv4 packet into
        fragments carrying that many bytes each. ``options`` replaces the default options.
        """
        me, peer = self._pair(who)
        offset = me.next_off if seq_offset is None else seq_offset
        flags = flags.upper().replace("A", "")
        if ack:
            flags += "A"
        frames = self._emit(
            who,
            flags=flags,
            seq=me.seq_at(offset),
            ack=peer.next_seq() if ack else 0,
            data=data,
            window=window,
            options=options,
            bad_checksum=bad_checksum,
            snaplen=snaplen,
            ip_fragment=ip_fragment,
        )
        me.record(offset, data)
        me.next_off = max(me.next_off, offset + len(data))
        return frames

    def segments(
        self, who: int, data: bytes, mss: int, *, flags: str = "PA", window: int = 65535
    ) -> list[Frame]:
        """``data`` split into back-to-back segments of at most ``mss`` bytes."""
        if mss <= 0:
            raise ValueError("mss must be positive")
        frames: list[Frame] = []
        for start in range(0, len(data), mss):
            frames += self.send(who, data[start : start + mss], flags=flags, window=window)
        return frames

    def ack(
        self,
        who: int,
        *,
        ack_offset: int | None = None,
        window: int = 65535,
        sack: Sequence[tuple[int, int]] = (),
        options: bytes | None = None,
    ) -> list[Frame]:
        """A pure ACK of the peer's next seq, or of peer stream offset ``ack_offset``.

        ``sack`` lists peer stream-offset ranges ``(start, end)`` to report in a SACK option.
        """
        me, peer = self._pair(who)
        ackno = peer.next_seq() if ack_offset is None else peer.seq_at(ack_offset)
        blocks = [(peer.seq_at(lo), peer.seq_at(hi)) for lo, hi in sack]
        extra = sack_option(blocks) if blocks else b""
        return self._emit(
            who,
            flags="A",
            seq=me.next_seq(),
            ack=ackno,
            window=window,
            options=options,
            extra_options=extra,
        )

    # ---- teardown --------------------------------------------------------------------------

    def fin(self, who: int, data: bytes = b"") -> list[Frame]:
        """FIN/ACK (with ``data`` before the FIN, PSH set). A second call retransmits the FIN."""
        me, peer = self._pair(who)
        if me.fin_off is not None and not data:
            offset = me.fin_off  # retransmitted FIN
        else:
            offset = me.next_off
            me.next_off += len(data)
            me.fin_off = me.next_off
        flags = "FPA" if data else "FA"
        frames = self._emit(who, flags=flags, seq=me.seq_at(offset), ack=peer.next_seq(), data=data)
        me.record(offset, data)
        return frames

    def rst(self, who: int, *, ack: bool = True, seq_offset: int | None = None) -> list[Frame]:
        """RST (RST/ACK with ``ack=True``) at the sender's next seq, or at ``seq_offset``."""
        me, peer = self._pair(who)
        seq = me.next_seq() if seq_offset is None else me.seq_at(seq_offset)
        return self._emit(
            who,
            flags="RA" if ack else "R",
            seq=seq,
            ack=peer.next_seq() if ack else 0,
            window=0,
            options=b"",
        )

    def close(self, first: int = CLI) -> list[Frame]:
        """Orderly close started by ``first``: FIN, ACK, FIN, ACK."""
        other = 1 - first
        return self.fin(first) + self.ack(other) + self.fin(other) + self.ack(first)

    def raw(
        self,
        who: int,
        *,
        flags: str,
        seq: int,
        ack: int = 0,
        data: bytes = b"",
        options: bytes = b"",
        window: int = 65535,
        bad_checksum: bool = False,
    ) -> list[Frame]:
        """Any segment from ``who``: absolute numbers, exactly ``options``, no state change."""
        return self._emit(
            who,
            flags=flags,
            seq=seq,
            ack=ack,
            data=data,
            window=window,
            options=options,
            bad_checksum=bad_checksum,
        )

    # ---- output ----------------------------------------------------------------------------

    def write_pcap(
        self, path: str | os.PathLike[str], frames: Iterable[Frame] | None = None
    ) -> None:
        """Classic microsecond pcap of ``frames`` (default: :attr:`frames`)."""
        write_pcap(path, self.frames if frames is None else frames, linktype=self.linktype)
