"""Sockets and filters: ``mtcp_socket``, ``mtcp_close``, ``mtcp_bind_monitor_filter``."""

from __future__ import annotations

import errno as _errno
from socket import AF_INET, AF_INET6
from typing import TYPE_CHECKING

from mostool.compat.mos.constants import MOS_SOCK_MONITOR_RAW, MOS_SOCK_MONITOR_STREAM
from mostool.compat.mos.context import _ctx
from mostool.compat.mos.errors import _fail, _mos_fail
from mostool.errors import MosError
from mostool.monitor import MONITOR_RAW, MONITOR_STREAM, MonitorSocket
from mostool.stack.flow import Flow

if TYPE_CHECKING:
    from mostool.compat.mos.context import mctx_t
    from mostool.compat.mos.structs import monitor_filter


def mtcp_socket(mctx: mctx_t, domain: int, type: int, protocol: int = 0) -> int:
    """A monitoring socket: ``MOS_SOCK_MONITOR_STREAM`` (a listener, one flow socket per
    accepted connection: :meth:`Monitor.socket` with ``MONITOR_STREAM``) or
    ``MOS_SOCK_MONITOR_RAW`` (``MONITOR_RAW``). -1 with EACCES (bad context), EAFNOSUPPORT
    (domain other than AF_INET; AF_INET6 is accepted too, mostool tracks both), EINVAL (other
    types: mTCP endpoints are out of scope)."""
    ctx = _ctx(mctx)
    if ctx is None:
        return _fail(_errno.EACCES, "invalid or destroyed context")
    if domain not in (AF_INET, AF_INET6):
        return _fail(_errno.EAFNOSUPPORT, f"domain {domain} is not supported")
    if type == MOS_SOCK_MONITOR_STREAM:
        return ctx._new_sock(type, ctx.monitor.socket(MONITOR_STREAM))
    if type == MOS_SOCK_MONITOR_RAW:
        return ctx._new_sock(type, ctx.monitor.socket(MONITOR_RAW))
    return _fail(_errno.EINVAL, f"socket type {type} is not a monitoring socket type")


def mtcp_close(mctx: mctx_t, sock: int) -> int:
    """Close a socket. A listener stops accepting flows and its callbacks leave the flows it
    holds, which go on (:meth:`MonitorSocket.close`); a flow socket drops all of its flow's
    callbacks (:meth:`Flow.off`) and its number. Neither ends a flow. -1 with EACCES (bad
    context) or EBADF (no such socket)."""
    ctx = _ctx(mctx)
    if ctx is None:
        return _fail(_errno.EACCES, "invalid or destroyed context")
    rec = ctx._socks.get(sock) if isinstance(sock, int) else None
    if rec is None:
        return _fail(_errno.EBADF, f"socket {sock!r} is not open")
    try:
        if isinstance(rec.obj, Flow):
            flow = rec.obj
            if not flow.closed:
                for ev, hook, cb in list(flow.subs.entries):
                    flow.off(ev, hook, cb)
            ctx._flow_ids.pop(flow, None)
        else:
            rec.obj.close()
    except MosError as exc:
        return _mos_fail(exc)
    del ctx._socks[sock]
    return 0


def mtcp_bind_monitor_filter(mctx: mctx_t, sock: int, ft: monitor_filter | None) -> int:
    """Bind BPF filters (:meth:`MonitorSocket.bind_filter`): ``stream_syn_filter`` picks flows
    by their first SYN and ``stream_orphan_filter`` orphan packets (MONITOR_STREAM),
    ``raw_pkt_filter`` frames (MONITOR_RAW). ``ft`` None is not an error (man page). -1 with
    EACCES (bad context), EBADF (no such socket), ENOPROTOOPT (a flow socket), EINVAL (a filter
    libpcap refuses). mOS's restricted keyword list for stream filters is a mos_compat matter
    of the engine; here any libpcap filter is accepted."""
    ctx = _ctx(mctx)
    if ctx is None:
        return _fail(_errno.EACCES, "invalid or destroyed context")
    if ft is None:
        return 0
    rec = ctx._socks.get(sock) if isinstance(sock, int) else None
    if rec is None:
        return _fail(_errno.EBADF, f"socket {sock!r} is not open")
    if not isinstance(rec.obj, MonitorSocket):
        return _fail(_errno.ENOPROTOOPT, "filters bind to MOS_SOCK_MONITOR_STREAM or "
                                         "MOS_SOCK_MONITOR_RAW sockets")
    try:
        if rec.kind == MOS_SOCK_MONITOR_RAW:
            if ft.raw_pkt_filter is not None:
                rec.obj.bind_filter(raw=ft.raw_pkt_filter)
        else:
            rec.obj.bind_filter(syn=ft.stream_syn_filter, orphan=ft.stream_orphan_filter)
    except MosError as exc:
        return _mos_fail(exc)
    return 0
