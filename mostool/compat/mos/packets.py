"""The last packet: ``mtcp_getlastpkt`` fills a ``pkt_info`` (headers parsed from the frame);
``mtcp_setlastpkt``, ``mtcp_sendpkt``, ``mtcp_reset_conn`` (inline only in mOS: refused)."""

from __future__ import annotations

import errno as _errno
import ipaddress
import struct
from typing import TYPE_CHECKING

from mostool.compat.mos.constants import _M32, MOS_SOCK_MONITOR_RAW
from mostool.compat.mos.errors import _fail, _mos_fail
from mostool.compat.mos.flowcalls import _running_ctx
from mostool.compat.mos.structs import ethhdr, iphdr, pkt_info, tcphdr
from mostool.errors import MosError
from mostool.events.types import Side
from mostool.stack.flow import (
    Flow,
    PacketInfo,
)

if TYPE_CHECKING:
    from mostool.compat.mos.context import mctx_t


def _ethhdr(frame: bytes) -> ethhdr:
    def mac(b: bytes) -> str:
        return ":".join(f"{x:02x}" for x in b)
    return ethhdr(mac(frame[0:6]), mac(frame[6:12]), int.from_bytes(frame[12:14], "big"))


def _iphdr(data: bytes) -> iphdr | None:
    if not data:
        return None
    version = data[0] >> 4
    if version == 4 and len(data) >= 20:
        (vihl, tos, tot_len, ident, frag, ttl, proto, check, src, dst
         ) = struct.unpack_from("!BBHHHBBH4s4s", data)
        return iphdr(4, vihl & 15, tos, tot_len, ident, frag, ttl, proto, check,
                     str(ipaddress.IPv4Address(src)), str(ipaddress.IPv4Address(dst)))
    if version == 6 and len(data) >= 40:
        plen, nxt, hops = struct.unpack_from("!HBB", data, 4)
        return iphdr(6, 0, 0, 40 + plen, 0, 0, hops, nxt, 0,
                     str(ipaddress.IPv6Address(data[8:24])),
                     str(ipaddress.IPv6Address(data[24:40])))
    return None


def _tcphdr(data: bytes) -> tcphdr | None:
    if len(data) < 20:
        return None
    sport, dport, seq, ack, off_flags, window, check, urg = struct.unpack_from(
        "!HHIIHHHH", data)
    f = off_flags & 0xFF
    return tcphdr(sport, dport, seq, ack, off_flags >> 12, f & 1, f >> 1 & 1, f >> 2 & 1,
                  f >> 3 & 1, f >> 4 & 1, f >> 5 & 1, f >> 6 & 1, f >> 7 & 1, window, check, urg)


def _l3_offset(linktype: int, frame: bytes) -> int | None:
    """Where the IP header starts in a frame (Ethernet with VLAN tags, Linux SLL, raw IP)."""
    if linktype == 1:
        off, et = 14, int.from_bytes(frame[12:14], "big")
        while et in (0x8100, 0x88A8, 0x9100) and len(frame) >= off + 4:
            et = int.from_bytes(frame[off + 2:off + 4], "big")
            off += 4
        return off if et in (0x0800, 0x86DD) else None
    if linktype in (101, 228, 229, 12, 14):
        return 0
    if linktype == 113:
        return 16 if int.from_bytes(frame[14:16], "big") in (0x0800, 0x86DD) else None
    return None


def _fill_from_frame(p: pkt_info, linktype: int, frame: bytes, ts: float,
                     ip_off: int | None = None) -> None:
    """L2/L3 fields of a frame without a decoded TCP segment (RAW sockets, non-TCP orphans);
    ``ip_off`` is where the decoder found the IP header, when it decoded the frame."""
    p.ts = ts
    p.cur_ts = int(ts * 1000) & _M32
    p.in_ifidx = 0
    p.frame = bytes(frame)
    p.eth_len = len(frame)
    p.ethh = _ethhdr(frame) if linktype == 1 and len(frame) >= 14 else None
    off = ip_off if ip_off is not None else _l3_offset(linktype, frame)
    p.iph = _iphdr(bytes(frame[off:])) if off is not None else None
    p.ip_len = p.iph.tot_len if p.iph else 0
    p.tcph = None
    p.payload = None
    p.offset = p.payloadlen = p.seq = p.ack_seq = p.window = 0


def _fill_from_packet(p: pkt_info, info: PacketInfo, flow: Flow | None) -> None:
    seg = info.seg
    frame = seg.buf
    p.ts = info.ts
    p.cur_ts = int(info.ts * 1000) & _M32
    p.in_ifidx = 0
    p.frame = bytes(frame)
    p.eth_len = len(frame)
    p.ethh = _ethhdr(frame) if seg.linktype == 1 and seg.ip_off >= 14 else None
    p.iph = _iphdr(info.ip_header)
    p.ip_len = p.iph.tot_len if p.iph else 0
    p.tcph = _tcphdr(info.tcp_header)
    p.payload = info.payload
    p.payloadlen = seg.wire_len
    p.seq, p.ack_seq, p.window = seg.seq, seg.ack, seg.window
    p.offset = 0
    if flow is not None and not flow.closed:
        rcv = Side(1 - int(info.direction)) if info.direction != Side.BOTH else None
        if rcv is not None:
            isn = flow.buf_info(rcv).init_seq
            if isn is not None:
                p.offset = (seg.seq - isn - 1 + (1 if seg.flags & 0x02 else 0)) & _M32


def mtcp_getlastpkt(mctx: mctx_t, sock: int, side: int, pinfo: pkt_info) -> int:
    """Fill ``pinfo`` with the packet that triggered the current callback
    (:meth:`Flow.last_packet`; for a listener or RAW socket, the orphan or raw frame being
    delivered). As mOS's code (without ``RECORDPKT_PER_STREAM``) the side argument does not
    select the packet. Returns 0; -1 with EACCES (bad context; and, following mOS's code,
    no packet at hand for a listener/RAW socket), EPERM (outside ``mtcp_app_join``), EBADF (no
    such socket, a flow that ended), ENODATA (no packet recorded for the flow), EINVAL (pinfo
    is not a :class:`pkt_info`)."""
    ctx = _running_ctx(mctx)
    if isinstance(ctx, int):
        return ctx
    rec = ctx._socks.get(sock) if isinstance(sock, int) else None
    if rec is None:
        return _fail(_errno.EBADF, f"socket {sock!r} is not open")
    if not isinstance(pinfo, pkt_info):
        return _fail(_errno.EINVAL, "pinfo must be a pkt_info")
    obj = rec.obj
    try:
        if isinstance(obj, Flow):
            _fill_from_packet(pinfo, obj.last_packet(), obj)
            return 0
        handle = ctx._current[-1] if ctx._current else None
        if handle is None:
            return _fail(_errno.EACCES, "no packet is being delivered to this socket")
        if isinstance(handle, Flow):                  # a flow callback asking its listener
            _fill_from_packet(pinfo, handle.last_packet(), handle)
            return 0
        pkt = handle.last_packet()
        if isinstance(pkt, PacketInfo):
            if rec.kind == MOS_SOCK_MONITOR_RAW:
                _fill_from_frame(pinfo, pkt.seg.linktype, pkt.seg.buf, pkt.ts,
                                 pkt.seg.ip_off)
            else:
                _fill_from_packet(pinfo, pkt, None)
        else:
            linktype, frame = pkt
            _fill_from_frame(pinfo, linktype, frame, ctx.monitor.now)
    except MosError as exc:
        return _mos_fail(exc)
    return 0


def mtcp_setlastpkt(mctx: mctx_t, sock: int, side: int, offset: int, data: bytes | None,
                    datalen: int, option: int) -> int:
    """Packet modification (``MOS_DROP``, ``MOS_OVERWRITE`` ...): mostool is a passive
    monitor. Always -1/ENOSYS."""
    return _fail(_errno.ENOSYS, "mostool never modifies or drops packets (passive monitor)")


def mtcp_sendpkt(mctx: mctx_t, sock: int, pkt: pkt_info) -> int:
    """Packet injection: -1/ENOSYS (passive monitor)."""
    return _fail(_errno.ENOSYS, "mostool never sends packets (passive monitor)")


def mtcp_reset_conn(mctx: mctx_t, sock: int) -> int:
    """Resetting a connection: -1/ENOSYS (passive monitor)."""
    return _fail(_errno.ENOSYS, "mostool never sends packets (passive monitor)")
