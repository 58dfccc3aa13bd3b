"""Hand-built tunnel headers for the tunnel tests and tools/make_tunnel_pcaps.py.

Every builder takes the inner packet (bytes) and returns the outer frame; the header layouts
follow the RFCs cited in ``mostool.stack.tunnels``.  Outer IPv4 headers come from dpkt (so the
checksums tshark checks are right); IPv6 and the tunnel headers are packed with struct.
"""

from __future__ import annotations

import struct

import dpkt

MAC_A = b"\x02\x00\x00\x00\x00\x01"
MAC_B = b"\x02\x00\x00\x00\x00\x02"
MAC_C = b"\x02\x00\x00\x00\x00\x03"
MAC_D = b"\x02\x00\x00\x00\x00\x04"
V4_A = bytes([192, 0, 2, 1])
V4_B = bytes([192, 0, 2, 2])
V6_A = bytes.fromhex("20010db8000000000000000000000001")
V6_B = bytes.fromhex("20010db8000000000000000000000002")


def ether(payload: bytes, ethertype: int, src: bytes = MAC_A, dst: bytes = MAC_B) -> bytes:
    return dst + src + struct.pack("!H", ethertype) + payload


def ipv4(payload: bytes, proto: int, src: bytes = V4_A, dst: bytes = V4_B) -> bytes:
    return bytes(dpkt.ip.IP(src=src, dst=dst, p=proto, ttl=64, id=1, data=payload))


def ipv6(payload: bytes, nxt: int, src: bytes = V6_A, dst: bytes = V6_B) -> bytes:
    return struct.pack("!IHBB", 6 << 28, len(payload), nxt, 64) + src + dst + payload


def udp(payload: bytes, sport: int, dport: int) -> bytes:
    # checksum 0: allowed over IPv4, and over IPv6 for tunnels (RFC 6935)
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def inner_ethertype(inner_ip: bytes) -> int:
    return 0x0800 if inner_ip[0] >> 4 == 4 else 0x86DD


def gre(payload: bytes, ptype: int, key: int | None = None, seq: int | None = None,
        csum: bool = False) -> bytes:
    flags = (0x8000 if csum else 0) | (0x2000 if key is not None else 0)
    flags |= 0x1000 if seq is not None else 0
    out = struct.pack("!HH", flags, ptype)
    if csum:
        out += b"\0\0\0\0"
    if key is not None:
        out += struct.pack("!I", key)
    if seq is not None:
        out += struct.pack("!I", seq)
    return out + payload


def erspan2_header(session: int, vlan: int = 0) -> bytes:
    return struct.pack("!II", 1 << 28 | vlan << 16 | session, 7)


def erspan3_header(session: int, frame_type: int = 0, o_flag: bool = False) -> bytes:
    w2 = frame_type << 10 | (1 if o_flag else 0)
    return struct.pack("!III", 2 << 28 | session, 123456, w2) + (b"\0" * 8 if o_flag else b"")


def vxlan(frame: bytes, vni: int) -> bytes:
    return struct.pack("!II", 0x08000000, vni << 8) + frame


def geneve(payload: bytes, vni: int, ptype: int = 0x6558, options: bytes = b"") -> bytes:
    return struct.pack("!BBHI", len(options) // 4, 0, ptype, vni << 8) + options + payload


def gtpu(ip_packet: bytes, teid: int, ext: bool = False) -> bytes:
    if not ext:
        return struct.pack("!BBHI", 0x30, 255, len(ip_packet), teid) + ip_packet
    # E flag: seq 0, N-PDU 0, next type 0x85 (PDU session container, 4 bytes), then none
    opt = struct.pack("!HBB", 0, 0, 0x85) + bytes([1, 0x10, 0x05, 0])
    return struct.pack("!BBHI", 0x34, 255, len(opt) + len(ip_packet), teid) + opt + ip_packet


def l2tp_ppp(ip_packet: bytes, tunnel: int, session: int, offset_pad: int = 0) -> bytes:
    ppp = b"\xff\x03" + struct.pack("!H", 0x21 if ip_packet[0] >> 4 == 4 else 0x57) + ip_packet
    flags = 0x4002 | (0x0200 if offset_pad else 0)  # L (length), version 2, O
    body = struct.pack("!HH", tunnel, session)
    if offset_pad:
        body += struct.pack("!H", offset_pad) + b"\0" * offset_pad
    total = 4 + len(body) + len(ppp)
    return struct.pack("!HH", flags, total) + body + ppp


def teredo(ipv6_packet: bytes, origin: bool = True, auth: bool = False) -> bytes:
    out = b""
    if auth:  # client id "ab", no auth value, nonce, confirmation
        out += b"\x00\x01\x02\x00" + b"ab" + b"\x11" * 8 + b"\x00"
    if origin:  # obfuscated port and IPv4 address
        out += b"\x00\x00" + struct.pack("!H", 0xFFFF ^ 40000) + bytes(b ^ 0xFF for b in V4_A)
    return out + ipv6_packet


# --------------------------------------------------------------------------- link types


def snap(ip: bytes, oui: bytes = b"\0\0\0") -> bytes:
    et = 0x0800 if ip[0] >> 4 == 4 else 0x86DD
    return b"\xaa\xaa\x03" + oui + struct.pack("!H", et) + ip


def dot11(payload: bytes, *, subtype: int = 0, flags: int = 0x01, four_addr: bool = False,
          qos: int | None = None, order: bool = False, ftype: int = 2, pad: int = 0) -> bytes:
    """An 802.11 frame: data (type 2) by default, ToDS; QoS control when ``qos`` is given."""
    if four_addr:
        flags |= 0x03
    if order:
        flags |= 0x80
    fc0 = subtype << 4 | ftype << 2
    hdr = bytes([fc0, flags]) + b"\0\0" + MAC_A + MAC_B + MAC_C + b"\x10\x00"
    if four_addr:
        hdr += MAC_D
    if qos is not None:
        hdr += struct.pack("<H", qos)
        if order:
            hdr += b"\0\0\0\0"
    return hdr + b"\0" * pad + payload


def radiotap(frame: bytes, flags: int | None = None, tsft: bool = False) -> bytes:
    present = (1 if tsft else 0) | (2 if flags is not None else 0) | 0x04  # + rate
    fields = b""
    if tsft:
        fields += b"\0" * 4 + b"\x01" * 8  # pad to 8 (header 8 + 4 pad), TSFT
    if flags is not None:
        fields += bytes([flags])
    fields += b"\x02"  # rate
    hlen = 8 + len(fields)
    return struct.pack("<BBHI", 0, 0, hlen, present) + fields + frame


def ppi(frame: bytes, dlt: int) -> bytes:
    # one PPI field: 802.11-Common (type 2, 20 bytes: TSF, flags, rate, channel, signal)
    field = struct.pack("<HH", 2, 20) + struct.pack("<QHHHHBBbb", 1, 0, 2, 2437, 0x00A0, 0, 0,
                                                     -40, -90)
    return struct.pack("<BBHI", 0, 0, 8 + len(field), dlt) + field + frame
