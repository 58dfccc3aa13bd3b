"""Events: built-in and user-defined (``mtcp_define_event``, ``mtcp_alloc_event``,
``mtcp_raise_event``, ``mtcp_remove_ude``) and callbacks (``mtcp_register_callback``,
``mtcp_unregister_callback``)."""

from __future__ import annotations

import errno as _errno
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import mostool
from mostool.compat.mos.constants import _BUILTIN, _HOOKS, _UNSUPPORTED_BUILTIN, NUM_BEV
from mostool.compat.mos.context import _ctx, _ctx_of_handle
from mostool.compat.mos.errors import _S, _fail, _mos_fail
from mostool.compat.mos.structs import filter_arg
from mostool.errors import MosError
from mostool.events.types import (
    EventType,
    Hook,
    Side,
)
from mostool.monitor import MONITOR_RAW, MonitorSocket
from mostool.stack.flow import Flow

if TYPE_CHECKING:
    from mostool.compat.mos.constants import Callback
    from mostool.compat.mos.context import mctx_t


def _event(ev: int, what: str) -> EventType | tuple[int, str]:
    """An event_t -> mostool EventType, or (errno, message)."""
    if not isinstance(ev, int) or isinstance(ev, bool) or ev <= 0:
        return (_errno.EINVAL, f"{what}: invalid event {ev!r}")
    if ev < (1 << NUM_BEV):
        if ev & (ev - 1):
            return (_errno.EINVAL, f"{what}: {ev:#x} is not a single built-in event bit")
        if ev in _UNSUPPORTED_BUILTIN:
            return (_errno.ENOSYS, f"{what}: {_UNSUPPORTED_BUILTIN[ev]} is deprecated in mOS "
                                   "and never raised")
        return _BUILTIN[ev]
    found = _S.ude_by_id.get(ev)
    if found is None:
        return (_errno.EINVAL, f"{what}: event {ev} was not defined")
    return found


def _event_id(etype: EventType) -> int:
    if etype.builtin:
        return 1 << etype.id
    ev = _S.ude_ids.get(etype)
    if ev is None:
        ev = _S.next_ude
        _S.next_ude += 1
        _S.ude_ids[etype] = ev
        _S.ude_by_id[ev] = etype
    return ev


def _filter_wrapper(filt: Callable[..., Any]) -> Callable[..., bool]:
    """One mostool filter per C-style filter, so that mostool's (base, filter, arg) dedup
    applies."""
    found = _S.filters.get(filt)
    if found is not None:
        return found

    def mos_filter(handle: Any, side: Side, event: Any) -> bool:
        ctx = _ctx_of_handle(handle)
        etype = event.type
        ev = _S.ude_ids.get(etype, 0)
        if ctx is None:
            return bool(filt(None, -1, int(side), ev, etype.arg))
        sock = ctx._sock_of(handle, None)
        ctx._current.append(handle)
        try:
            return bool(filt(ctx, sock, int(side), ev, etype.arg))
        finally:
            ctx._current.pop()
    mos_filter.__name__ = getattr(filt, "__name__", "filter")
    mos_filter.__qualname__ = mos_filter.__name__
    _S.filters[filt] = mos_filter
    return mos_filter


def mtcp_define_event(event: int, filter: Callable[..., Any] | None,
                      arg: Any = None) -> int:
    """A user-defined event under ``event`` (built-in or UDE) raised when
    ``filter(mctx, sock, side, event, arg)`` is true (:func:`mostool.define_event`). The same
    (event, filter, arg) returns the same id.

    Returns the new ``event_t`` (ids count up from ``1 << 12`` as mOS's ``g_evid``); on failure
    ``MOS_NULL_EVENT`` (0) with EINVAL (no filter, unknown base event, a floating base event, a
    ``filter_arg`` with a length but no data) or ENOSYS (a deprecated mOS event as base). The
    man page says "returns 0 on success, -1 on failure"; mOS's code returns the event id and
    0 on failure, as here.
    """
    if filter is None or not callable(filter):
        return _fail(_errno.EINVAL, "mtcp_define_event: filter must be callable", 0)
    if isinstance(arg, filter_arg) and arg.len > 0 and arg.arg is None:
        return _fail(_errno.EINVAL, "mtcp_define_event: filter_arg has a length but no data", 0)
    base = _event(event, "mtcp_define_event")
    if isinstance(base, tuple):
        return _fail(base[0], base[1], 0)
    try:
        ude = mostool.define_event(base, _filter_wrapper(filter), arg,
                                   name=getattr(filter, "__name__", None))
    except MosError as exc:
        return _mos_fail(exc, 0)
    return _event_id(ude)


def mtcp_alloc_event(event: int) -> int:
    """A floating child of ``event`` for a multi-outcome filter: raised with
    ``mtcp_raise_event`` inside ``event``'s filter (:func:`mostool.alloc_event`). Returns its
    id, or ``MOS_NULL_EVENT`` with EINVAL for an unknown event. The parent must be a UDE
    (mostool's rule: only a UDE's filter can raise it); mOS also accepts a built-in parent,
    whose children can then never be raised."""
    parent = _event(event, "mtcp_alloc_event")
    if isinstance(parent, tuple):
        return _fail(parent[0], parent[1], 0)
    try:
        child = mostool.alloc_event(parent)
    except MosError as exc:
        return _mos_fail(exc, 0)
    return _event_id(child)


def mtcp_raise_event(mctx: mctx_t, event: int) -> int:
    """Raise a floating event from inside a UDE filter (:func:`mostool.raise_event`); its
    callbacks run right after the filter. -1 with EACCES (bad context), EINVAL (not an event
    from ``mtcp_alloc_event``), EPERM (not inside a filter)."""
    ctx = _ctx(mctx)
    if ctx is None:
        return _fail(_errno.EACCES, "invalid or destroyed context")
    child = _event(event, "mtcp_raise_event")
    if isinstance(child, tuple):
        return _fail(_errno.EINVAL, child[1])
    if not ctx._current:
        return _fail(_errno.EPERM, "mtcp_raise_event works only inside a UDE filter")
    try:
        mostool.raise_event(ctx._current[-1], child)
    except MosError as exc:
        return _mos_fail(exc)
    return 0


def mtcp_remove_ude(event: int) -> int:
    """mOS's stub: UDEs cannot be removed. Always -1/ENOSYS."""
    return _fail(_errno.ENOSYS, "UDEs cannot be removed")


def _registered(obj: MonitorSocket | Flow, etype: EventType, hook: Hook) -> bool:
    if isinstance(obj, MonitorSocket) and obj.kind == MONITOR_RAW:
        hook = Hook.NULL
    return any(e[0] is etype and e[1] == hook for e in obj.subs.entries)


def mtcp_register_callback(mctx: mctx_t, sock: int, event: int, hook: int,
                           cb: Callback | None) -> int:
    """Register ``cb(mctx, sock, side, event, filter_arg)`` for ``event`` at ``hook``
    (``MOS_NULL``, ``MOS_HK_RCV``, ``MOS_HK_SND``) on a listener (every flow it accepts from
    now on: :meth:`MonitorSocket.on`) or on one flow's socket (:meth:`Flow.on`). ``cb=None``
    de-registers (:meth:`MonitorSocket.off` / :meth:`Flow.off`). One callback per (socket,
    event, hook): registering again replaces it.

    Hook rules of mOS's code (``scalable_event.c``): ``CONN_START``, ``REXMIT``,
    ``TCP_STATE_CHANGE``, ``CONN_END`` only at ``MOS_HK_SND``/``MOS_HK_RCV`` (and REXMIT only
    at ``MOS_HK_RCV`` in mostool); ``CONN_NEW_DATA``, ``ORPHAN``, ``ERROR`` (and mostool's
    ``TIMEOUT``) only at ``MOS_NULL``; UDEs follow their built-in root. RAW sockets see only
    ``ON_PKT_IN``.

    Returns 0; -1 with EACCES (bad context), EINVAL (no such socket, as the man page; invalid
    event, hook or event/hook pair; de-registering what is not registered, where mOS returns -1
    without setting errno), EBADF (a flow that ended), ENOSYS (a deprecated mOS event).
    """
    ctx = _ctx(mctx)
    if ctx is None:
        return _fail(_errno.EACCES, "invalid or destroyed context")
    etype = _event(event, "mtcp_register_callback")
    if isinstance(etype, tuple):
        return _fail(etype[0], etype[1])
    h = _HOOKS.get(hook) if isinstance(hook, int) else None
    if h is None:
        return _fail(_errno.EINVAL, f"invalid hook point {hook!r}")
    rec = ctx._socks.get(sock) if isinstance(sock, int) else None
    if rec is None:
        return _fail(_errno.EINVAL, f"socket {sock!r} is not open")
    obj = rec.obj
    try:
        if cb is None:
            if not _registered(obj, etype, h):
                return _fail(_errno.EINVAL, f"no callback registered for event {event} at "
                                            f"this hook")
            obj.off(etype, h)
            return 0
        if not callable(cb):
            return _fail(_errno.EINVAL, "callback must be callable")
        listener = rec.id if isinstance(obj, MonitorSocket) else None
        wrapper = ctx._wrap(cb, event, None if etype.builtin else etype.arg, listener)
        listener_obj = obj.listener if isinstance(obj, Flow) else obj
        listener_obj.registration(etype, h, wrapper)      # validate before replacing
        if _registered(obj, etype, h):
            obj.off(etype, h)
        obj.on(etype, h, wrapper)
    except MosError as exc:
        return _mos_fail(exc)
    return 0


def mtcp_unregister_callback(mctx: mctx_t, sock: int, event: int, hook: int) -> int:
    """``mtcp_register_callback(mctx, sock, event, hook, None)`` (implemented in mOS, commented
    out of its header)."""
    return mtcp_register_callback(mctx, sock, event, hook, None)
