"""Addresses and socket options: ``mtcp_getpeername``/``getsockname``,
``mtcp_getsockopt``/``setsockopt``."""

from __future__ import annotations

import errno as _errno
from socket import AF_INET, AF_INET6
from typing import TYPE_CHECKING, Any, cast

from mostool.compat.mos.constants import (
    _M32,
    _OVERLAP_OPT,
    _RCVBUF_OPT,
    MOS_CLIBUF,
    MOS_CLIOVERLAP,
    MOS_FRAG_CLIBUF,
    MOS_FRAG_SVRBUF,
    MOS_FRAGINFO_CLIBUF,
    MOS_FRAGINFO_SVRBUF,
    MOS_INFO_CLIBUF,
    MOS_INFO_SVRBUF,
    MOS_OVERLAP_POLICY_FIRST,
    MOS_OVERLAP_POLICY_LAST,
    MOS_SIDE_BOTH,
    MOS_SIDE_CLI,
    MOS_SIDE_SVR,
    MOS_STOP_MON,
    MOS_SVRBUF,
    MOS_SVROVERLAP,
    MOS_TCP_STATE_CLI,
    MOS_TCP_STATE_SVR,
    MOS_TIMESTAMP,
    SOCKADDR_LEN,
    SOL_MONSOCKET,
)
from mostool.compat.mos.context import _ctx
from mostool.compat.mos.errors import _fail, _mos_fail
from mostool.compat.mos.flowcalls import _buffering, _flow_rec, _running_ctx
from mostool.compat.mos.structs import sockaddr_in, tcp_buf_info, tcp_ring_fragment
from mostool.errors import MosError
from mostool.events.types import Side
from mostool.stack.flow import (
    SOCKOPT_STOP_MON,
    Flow,
)

if TYPE_CHECKING:
    from mostool.compat.mos.context import mctx_t


#: mOS's overlap policies as the monitor names them
_OVERLAP_POLICY = {MOS_OVERLAP_POLICY_FIRST: "first", MOS_OVERLAP_POLICY_LAST: "last"}


def _fill_addr(addr: Any, index: int, value: sockaddr_in) -> bool:
    """Store ``value`` into ``addr`` (a sockaddr_in for index 0, or a list)."""
    if isinstance(addr, sockaddr_in) and index == 0:
        addr.sin_family, addr.sin_port, addr.sin_addr = \
            value.sin_family, value.sin_port, value.sin_addr
        return True
    if isinstance(addr, list):
        while len(addr) <= index:
            addr.append(sockaddr_in())
        if isinstance(addr[index], sockaddr_in):
            return _fill_addr(addr[index], 0, value)
        addr[index] = value
        return True
    return False


def _length(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int):
        return value
    if hasattr(value, "value"):
        return int(value.value)
    if isinstance(value, list) and value:
        return int(value[0])
    return None


def _store(out: Any, value: Any) -> bool:
    """Write an int through a C-style out-parameter (ctypes object or one-element list)."""
    if out is None:
        return False
    if hasattr(out, "value"):
        out.value = value
        return True
    if isinstance(out, list):
        if out:
            out[0] = value
        else:
            out.append(value)
        return True
    return False


def mtcp_getpeername(mctx: mctx_t, sock: int, addr: Any, addrlen: Any, side: int) -> int:
    """Fill ``addr`` with the endpoint of ``side`` (:meth:`Flow.peername`): a
    :class:`sockaddr_in` (or a list, whose first item is filled) for ``MOS_SIDE_CLI`` /
    ``MOS_SIDE_SVR``; for ``MOS_SIDE_BOTH`` a list that gets ``addr[MOS_SIDE_CLI]`` and
    ``addr[MOS_SIDE_SVR]``. ``addrlen`` may be ``None``; if given (int, ctypes or list) it must
    be ``16`` (``2 * 16`` for BOTH) as mOS checks. Returns 0; -1 with EACCES (bad context),
    EPERM (outside ``mtcp_app_join``), EBADF (no such socket or a flow that ended), ENOTCONN (a
    listener: no stream), EINVAL (bad side, ``addrlen`` or ``addr``)."""
    ctx = _running_ctx(mctx)
    if isinstance(ctx, int):
        return ctx
    flow = _flow_rec(ctx, sock, _errno.ENOTCONN)
    if isinstance(flow, int):
        return flow
    if side not in (MOS_SIDE_CLI, MOS_SIDE_SVR, MOS_SIDE_BOTH):
        return _fail(_errno.EINVAL, f"invalid side {side!r}")
    want = SOCKADDR_LEN * (2 if side == MOS_SIDE_BOTH else 1)
    given = _length(addrlen)
    if given is not None and given != want:
        return _fail(_errno.EINVAL, f"addrlen must be {want}, not {given}")
    try:
        names = cast(tuple[tuple[str, int], tuple[str, int]], flow.peername(Side.BOTH))
    except MosError as exc:
        return _mos_fail(exc)
    out = []
    for host, port in names:
        family = AF_INET6 if ":" in str(host) else AF_INET
        out.append(sockaddr_in(family, int(port), str(host)))
    if side == MOS_SIDE_BOTH:
        ok = isinstance(addr, list) and _fill_addr(addr, 0, out[0]) and \
            _fill_addr(addr, 1, out[1])
    else:
        ok = _fill_addr(addr, 0, out[side])
    if not ok:
        return _fail(_errno.EINVAL, "addr must be a sockaddr_in (or a list for MOS_SIDE_BOTH)")
    return 0


def mtcp_getsockname(mctx: mctx_t, sock: int, addr: Any, addrlen: Any) -> int:
    """Only for mTCP endpoint sockets in mOS: -1/ENOTSOCK for monitoring sockets, EACCES for
    a bad context."""
    if _ctx(mctx) is None:
        return _fail(_errno.EACCES, "invalid or destroyed context")
    return _fail(_errno.ENOTSOCK, "mtcp_getsockname works on mTCP endpoint sockets only")


def mtcp_getsockopt(mctx: mctx_t, sock: int, level: int, optname: int, optval: Any,
                    optlen: Any = None) -> int:
    """Read a ``SOL_MONSOCKET`` option of a flow socket into the out-parameter ``optval``:

    * ``MOS_TCP_STATE_CLI``/``_SVR``: the emulated TCP state (``TCP_*``; :meth:`Flow.state`)
      into a ``ctypes.c_int`` or one-element list;
    * ``MOS_INFO_CLIBUF``/``_SVRBUF``: a :class:`tcp_buf_info` (:meth:`Flow.buf_info`);
    * ``MOS_FRAGINFO_CLIBUF``/``_SVRBUF``: a list, filled with :class:`tcp_ring_fragment`
      (:meth:`Flow.frag_info`); ``optlen`` (ctypes or list) caps the count and receives it;
    * ``MOS_TIMESTAMP``: the flow's last packet time, microseconds mod 2**32.

    ``optlen`` may be ``None`` otherwise. Returns 0; -1 with EACCES (bad context), EPERM
    (outside ``mtcp_app_join``), EBADF (no such socket or a flow that ended), ENOTSOCK (a
    listener: mOS's code serves these options on flow sockets only), ENOSYS (another level or
    option, as the man page; mOS's code asserts), ENODATA (buffer info with buffering off, as
    mOS's code), EINVAL (``optval`` of the wrong kind).
    """
    ctx = _running_ctx(mctx)
    if isinstance(ctx, int):
        return ctx
    if not isinstance(sock, int) or sock not in ctx._socks:
        return _fail(_errno.EBADF, f"socket {sock!r} is not open")
    if level != SOL_MONSOCKET:
        return _fail(_errno.ENOSYS, f"level {level!r} is not implemented (use SOL_MONSOCKET)")
    flow = _flow_rec(ctx, sock, _errno.ENOTSOCK)
    if isinstance(flow, int):
        return flow
    side = Side.CLI if optname in (MOS_TCP_STATE_CLI, MOS_INFO_CLIBUF,
                                   MOS_FRAGINFO_CLIBUF) else Side.SVR
    try:
        if optname in (MOS_TCP_STATE_CLI, MOS_TCP_STATE_SVR):
            if not _store(optval, int(flow.state(side))):
                return _fail(_errno.EINVAL, "optval must be a ctypes int or a list")
            _store(optlen, 4)
        elif optname in (MOS_INFO_CLIBUF, MOS_INFO_SVRBUF):
            if not isinstance(optval, tcp_buf_info):
                return _fail(_errno.EINVAL, "optval must be a tcp_buf_info")
            if not _buffering(flow, side):
                return _fail(_errno.ENODATA, "buffering is disabled for this side")
            bi = flow.buf_info(side)
            optval.tcpbi_init_seq = ((bi.init_seq or 0) + 1) & _M32 \
                if bi.init_seq is not None else 0
            optval.tcpbi_last_byte_read = bi.last_byte_read
            optval.tcpbi_next_byte_expected = bi.next_byte_expected
            optval.tcpbi_last_byte_received = bi.last_byte_received
            _store(optlen, 16)
        elif optname in (MOS_FRAGINFO_CLIBUF, MOS_FRAGINFO_SVRBUF):
            if not isinstance(optval, list):
                return _fail(_errno.EINVAL, "optval must be a list")
            cap = _length(optlen)
            frags = flow.frag_info(side)
            if cap is not None:
                frags = frags[:max(cap, 0)]
            optval[:] = [tcp_ring_fragment(o, n) for o, n in frags]
            _store(optlen, len(optval))
        elif optname == MOS_TIMESTAMP:
            last = flow.last_ts
            if not _store(optval, (int(last * 1000) & _M32) * 1000 & _M32):
                return _fail(_errno.EINVAL, "optval must be a ctypes int or a list")
            _store(optlen, 4)
        else:
            return _fail(_errno.ENOSYS, f"option {optname!r} cannot be read")
    except MosError as exc:
        return _mos_fail(exc)
    return 0


def mtcp_setsockopt(mctx: mctx_t, sock: int, level: int, optname: int, optval: Any,
                    optlen: Any = None) -> int:
    """Set a ``SOL_MONSOCKET`` option on a listener (flows accepted from now on) or a flow:

    * ``MOS_CLIBUF``/``MOS_SVRBUF``: receive-buffer size of that side, 0 = no buffering
      (:meth:`Flow.setsockopt` with ``SOCKOPT_RCVBUF_*``). The man page says it resizes;
      mOS 0.3's code only accepts 0 (``DISABLE_DYN_RESIZE``). mostool accepts any size, except
      under ``MonitorConfig(mos_compat=True)`` where a non-zero size fails with EINVAL as mOS.
    * ``MOS_FRAG_CLIBUF``/``_SVRBUF`` (suppressed in mOS): 0 only, same effect on a flow;
      a no-op on a listener (mOS's code).
    * ``MOS_CLIOVERLAP``/``MOS_SVROVERLAP``: ``MOS_OVERLAP_POLICY_FIRST`` or ``_LAST``.
    * ``MOS_STOP_MON``: stop monitoring ``MOS_SIDE_CLI``/``_SVR``/``_BOTH`` of a flow
      (:meth:`Flow.stop_monitoring`); EPERM on a listener.
    * ``MOS_SEQ_REMAP``: as mOS's code, -1/ENOSYS.

    ``optval`` is an int (or a ctypes int / one-element list); ``optlen`` is ignored. Returns
    0; -1 with EACCES (bad context), EBADF (no such socket or a flow that ended), ENOSYS
    (another level or option), EPERM, EINVAL (bad value).
    """
    ctx = _ctx(mctx)
    if ctx is None:
        return _fail(_errno.EACCES, "invalid or destroyed context")
    rec = ctx._socks.get(sock) if isinstance(sock, int) else None
    if rec is None:
        return _fail(_errno.EBADF, f"socket {sock!r} is not open")
    if level != SOL_MONSOCKET:
        return _fail(_errno.ENOSYS, f"level {level!r} is not implemented (use SOL_MONSOCKET)")
    value = _length(optval)
    if value is None:
        return _fail(_errno.EINVAL, f"optval must be an int, not {optval!r}")
    obj = rec.obj
    try:
        # The values are checked by the monitor's own setsockopt (Listener/Flow, a MosError
        # with mOS's errno); only what mOS adds to it is checked here.
        if optname in (MOS_CLIBUF, MOS_SVRBUF):
            if value > 0 and ctx.monitor.config.mos_compat:
                return _fail(_errno.EINVAL, f"buffer size {value} refused (mOS only accepts 0)")
            obj.setsockopt(_RCVBUF_OPT[optname], value)
        elif optname in (MOS_FRAG_CLIBUF, MOS_FRAG_SVRBUF):
            if value != 0:
                return _fail(_errno.EINVAL, "only 0 is accepted (suppressed option)")
            if isinstance(obj, Flow):
                obj.setsockopt(_RCVBUF_OPT[optname], 0)
        elif optname in (MOS_CLIOVERLAP, MOS_SVROVERLAP):
            obj.setsockopt(_OVERLAP_OPT[optname], _OVERLAP_POLICY.get(value, value))
        elif optname == MOS_STOP_MON:
            # MOS_SIDE_CLI/SVR/BOTH are Side's values; the handle refuses any other
            obj.setsockopt(SOCKOPT_STOP_MON, value)
        else:
            return _fail(_errno.ENOSYS, f"option {optname!r} is not implemented")
    except MosError as exc:
        return _mos_fail(exc)
    return 0
