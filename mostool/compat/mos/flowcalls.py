"""Per-flow calls made from a callback: user context (``mtcp_set_uctx``/``get_uctx``) and
the receive buffers (``mtcp_peek``, ``mtcp_ppeek``)."""

from __future__ import annotations

import errno as _errno
from typing import TYPE_CHECKING, Any

from mostool.compat.mos.constants import MOS_SIDE_CLI, MOS_SIDE_SVR
from mostool.compat.mos.context import _ctx
from mostool.compat.mos.errors import _fail, _mos_fail
from mostool.errors import BytesLost, MosError
from mostool.events.types import Side
from mostool.stack.flow import (
    SOCKOPT_RCVBUF_CLI,
    SOCKOPT_RCVBUF_SVR,
    Flow,
)

if TYPE_CHECKING:
    from mostool.compat.mos.context import mctx_t


def _running_ctx(mctx: Any) -> mctx_t | int:
    """The context if it can serve callback-only calls, else -1 (errno set): EACCES for a bad
    context, EPERM outside ``mtcp_app_join`` (mOS: not the mOS thread)."""
    ctx = _ctx(mctx)
    if ctx is None:
        return _fail(_errno.EACCES, "invalid or destroyed context")
    if not ctx._running:
        return _fail(_errno.EPERM,
                     "callback-only call outside mtcp_app_join (mOS: not the mOS thread)")
    return ctx


def mtcp_set_uctx(mctx: mctx_t, sock: int, uctx: Any) -> int:
    """Attach a user context to a flow socket (:attr:`Flow.uctx`) or a listener. mOS's version
    is void and silently ignores bad calls; this one returns 0, or -1 with EACCES (bad
    context), EPERM (outside ``mtcp_app_join``), EBADF (no such socket)."""
    ctx = _running_ctx(mctx)
    if isinstance(ctx, int):
        return ctx
    rec = ctx._socks.get(sock) if isinstance(sock, int) else None
    if rec is None:
        return _fail(_errno.EBADF, f"socket {sock!r} is not open")
    if isinstance(rec.obj, Flow):
        rec.obj.uctx = uctx
    else:
        rec.uctx = uctx
    return 0


def mtcp_get_uctx(mctx: mctx_t, sock: int) -> Any:
    """The user context of a flow socket or listener (``None`` if unset). The man page says
    ``int``; mOS's code returns ``void *``, as here. ``None`` with EACCES, EPERM (outside
    ``mtcp_app_join``) or EBADF on failure."""
    ctx = _running_ctx(mctx)
    if isinstance(ctx, int):
        return None
    rec = ctx._socks.get(sock) if isinstance(sock, int) else None
    if rec is None:
        return _fail(_errno.EBADF, f"socket {sock!r} is not open", None)
    return rec.obj.uctx if isinstance(rec.obj, Flow) else rec.uctx


def _flow_rec(ctx: mctx_t, sock: Any, wrong_type: int) -> Flow | int:
    rec = ctx._socks.get(sock) if isinstance(sock, int) else None
    if rec is None:
        return _fail(_errno.EBADF, f"socket {sock!r} is not open")
    if not isinstance(rec.obj, Flow):
        return _fail(wrong_type,
                     f"socket {sock} is a listener, not a flow (MOS_SOCK_MONITOR_STREAM_ACTIVE)")
    return rec.obj


def _side(side: Any) -> Side | None:
    if isinstance(side, int) and side in (MOS_SIDE_CLI, MOS_SIDE_SVR):
        return Side(side)
    return None


def _buffering(flow: Flow, side: Side) -> bool:
    return bool(flow.getsockopt(SOCKOPT_RCVBUF_CLI if side == Side.CLI else SOCKOPT_RCVBUF_SVR))


def _writable(buf: Any, length: int | None) -> tuple[memoryview, int] | None:
    try:
        mv = memoryview(buf).cast("B")
    except TypeError:
        return None
    if mv.readonly:
        return None
    n = len(mv) if length is None else length
    if not isinstance(n, int) or n < 0 or n > len(mv):
        return None
    return mv, n


def _peek_target(mctx: mctx_t, sock: int, side: Any, buf: Any, length: int | None,
                 listener_errno: int, name: str) -> int | tuple[Flow, Side, memoryview, int]:
    """What mtcp_peek and mtcp_ppeek check first: a running context, a flow socket (a listener
    fails with ``listener_errno``), a side, and a writable buffer of ``length`` bytes. Returns
    -1 (errno set) or (flow, side, buffer view, bytes wanted)."""
    ctx = _running_ctx(mctx)
    if isinstance(ctx, int):
        return ctx
    flow = _flow_rec(ctx, sock, listener_errno)
    if isinstance(flow, int):
        return flow
    s = _side(side)
    if s is None:
        return _fail(_errno.EINVAL, f"side must be MOS_SIDE_CLI or MOS_SIDE_SVR, not {side!r}")
    target = _writable(buf, length)
    if target is None:
        return _fail(_errno.EINVAL, f"buf must be a writable buffer of at least {name} bytes")
    return flow, s, target[0], target[1]


def mtcp_peek(mctx: mctx_t, sock: int, side: int, buf: Any, length: int | None = None
              ) -> int:
    """Copy up to ``length`` (default ``len(buf)``) in-order bytes of ``side``'s receive buffer
    (``MOS_SIDE_SVR`` = bytes the client sent) into ``buf`` from this socket's cursor, and
    advance the cursor (:meth:`Flow.peek`). Returns the count (0 when nothing new).

    When unread bytes were pushed out of the buffer it returns ``-(bytes lost)`` with ENODATA
    and moves the cursor to the oldest byte still held; the next call continues there (man
    page NOTES; mostool raises :class:`~mostool.BytesLost`). Other failures return -1 with
    EACCES (bad context), EPERM (outside ``mtcp_app_join``), EBADF (no such socket, a
    listener, a flow that ended), EINVAL (buffering disabled for that side, a side other than
    CLI/SVR, where mOS exits the process, or ``buf`` not a writable buffer of ``length``
    bytes).
    """
    target = _peek_target(mctx, sock, side, buf, length, _errno.EBADF, "length")
    if isinstance(target, int):
        return target
    flow, s, mv, n = target
    try:
        if not _buffering(flow, s):
            return _fail(_errno.EINVAL, "buffering is disabled for this side")
        data = flow.peek(s, n)
    except BytesLost as exc:
        return _fail(_errno.ENODATA, str(exc.args[0]), -exc.lost, exc.lost)
    except MosError as exc:
        return _mos_fail(exc)
    k = len(data)
    mv[:k] = data
    return k


def mtcp_ppeek(mctx: mctx_t, sock: int, side: int, buf: Any, count: int | None = None,
               off: int = 0) -> int:
    """Copy up to ``count`` bytes of ``side``'s receive buffer at stream offset ``off`` (0 = the
    first byte after the SYN) into ``buf``, moving no cursor (:meth:`Flow.ppeek`). Returns the
    count.

    -1 with EACCES (bad context; and, following mOS's code rather than its man page, buffering
    disabled for that side), EPERM (outside ``mtcp_app_join``), EBADF (no such socket or a
    flow that ended), ESOCKTNOSUPPORT (a listener), EINVAL (bad side, offset or buffer),
    ENODATA (no received byte at ``off``; mOS's code returns -1 there without setting errno).
    """
    target = _peek_target(mctx, sock, side, buf, count, _errno.ESOCKTNOSUPPORT, "count")
    if isinstance(target, int):
        return target
    flow, s, mv, n = target
    if not isinstance(off, int) or off < 0:
        return _fail(_errno.EINVAL, f"offset must be >= 0, not {off!r}")
    try:
        if not _buffering(flow, s):
            return _fail(_errno.EACCES, "buffering is disabled for this side")
        data = flow.ppeek(s, off, n)
    except MosError as exc:
        return _mos_fail(exc)
    if not data and n:
        return _fail(_errno.ENODATA, f"no received byte at offset {off}")
    k = len(data)
    mv[:k] = data
    return k
