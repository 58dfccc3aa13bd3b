"""Time: ``mtcp_settimer`` and ``mtcp_cb_get_ts`` run on the capture's clock."""

from __future__ import annotations

import errno as _errno
from typing import TYPE_CHECKING, Any

from mostool.compat.mos.constants import _M32
from mostool.compat.mos.context import _ctx
from mostool.compat.mos.errors import _fail, _mos_fail
from mostool.compat.mos.flowcalls import _running_ctx
from mostool.compat.mos.structs import timeval
from mostool.errors import MosError

if TYPE_CHECKING:
    from mostool.compat.mos.constants import Callback
    from mostool.compat.mos.context import mctx_t


def _seconds(timeout: Any) -> float | None:
    if isinstance(timeout, timeval):
        return timeout.tv_sec + timeout.tv_usec / 1e6
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        return float(timeout)
    return None


def mtcp_settimer(mctx: mctx_t, id: int, timeout: timeval | float,
                  cb: Callback | None) -> int:
    """Call ``cb(mctx, id, 0, 0, None)`` once, ``timeout`` (a :class:`timeval` or seconds) of
    packet time from now (:meth:`Monitor.settimer`); re-arm inside the callback for periodic
    work. Timers set before the run count from the first packet's time. mOS uses the wall
    clock. Returns 0; -1 with EACCES (bad context) or EINVAL (no timeout or callback, a
    negative timeout)."""
    ctx = _ctx(mctx)
    if ctx is None:
        return _fail(_errno.EACCES, "invalid or destroyed context")
    delay = _seconds(timeout)
    if delay is None or delay < 0 or cb is None or not callable(cb):
        return _fail(_errno.EINVAL, "mtcp_settimer needs a timeout >= 0 and a callback")

    def fire(timer_id: int) -> None:
        cb(ctx, id, 0, 0, None)
    fire.__name__ = getattr(cb, "__name__", "timer")
    try:
        ctx.monitor.settimer(delay, fire)
    except MosError as exc:
        return _mos_fail(exc)
    return 0


def mtcp_cb_get_ts(mctx: mctx_t) -> int:
    """The current packet time in microseconds, modulo 2**32 with mTCP's millisecond
    resolution (``TS_TO_USEC(cur_ts)``). 0 with EACCES (bad context) or EPERM (outside
    ``mtcp_app_join``)."""
    ctx = _running_ctx(mctx)
    if isinstance(ctx, int):
        return 0
    return (int(ctx.monitor.now * 1000) & _M32) * 1000 & _M32
