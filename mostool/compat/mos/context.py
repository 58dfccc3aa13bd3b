"""``mctx_t``: one mOS context holding a Monitor, its integer sockets and the callback
wrapper that calls ``cb(mctx, sock, side, event, arg)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mostool.compat.mos.constants import (
    MOS_SOCK_MONITOR_RAW,
    MOS_SOCK_MONITOR_STREAM,
    MOS_SOCK_MONITOR_STREAM_ACTIVE,
)
from mostool.compat.mos.errors import _S
from mostool.config import MonitorConfig
from mostool.events.types import Side
from mostool.monitor import Monitor, MonitorSocket
from mostool.stack.flow import Flow
from mostool.summary import FlowSummary

if TYPE_CHECKING:
    from mostool.compat.mos.constants import Callback


class _Sock:
    __slots__ = ("id", "kind", "obj", "uctx")

    def __init__(self, sock_id: int, kind: int, obj: MonitorSocket | Flow) -> None:
        self.id = sock_id
        self.kind = kind
        self.obj = obj
        self.uctx: Any = None      # listeners' uctx (flows keep theirs in Flow.uctx)


class mctx_t:
    """``mctx_t``: one mOS context (``struct mtcp_context``), holding a mostool Monitor.

    ``cpu`` is the core id given to ``mtcp_create_context``; ``monitor`` the Monitor it drives;
    after ``mtcp_app_join``, ``stats`` holds the run's statistics.
    """

    def __init__(self, cpu: int, config: MonitorConfig) -> None:
        self.cpu = cpu
        self.monitor = Monitor(config)
        self.stats: dict[str, Any] = {}
        self._socks: dict[int, _Sock] = {}
        self._flow_ids: dict[Flow, int] = {}
        self._handles_of: dict[int, list[Flow]] = {}    # flow id -> its handles with a socket
        self._next_sock = 0
        self._running = False
        self._joined = False
        self._destroyed = False
        self._destroy_after_run = False
        self._current: list[Any] = []          # handles of the callbacks/filters running now
        self.monitor.on_flow_end(self._flow_ended)

    def __repr__(self) -> str:
        return f"<mctx_t cpu={self.cpu}{' destroyed' if self._destroyed else ''}>"

    # -- sockets ------------------------------------------------------------------------------

    def _new_sock(self, kind: int, obj: MonitorSocket | Flow) -> int:
        sock_id = self._next_sock
        self._next_sock += 1
        self._socks[sock_id] = _Sock(sock_id, kind, obj)
        return sock_id

    def _flow_sock(self, flow: Flow) -> int:
        sock_id = self._flow_ids.get(flow)
        if sock_id is None:
            sock_id = self._new_sock(MOS_SOCK_MONITOR_STREAM_ACTIVE, flow)
            self._flow_ids[flow] = sock_id
            self._handles_of.setdefault(flow.id, []).append(flow)
        return sock_id

    def _sock_of(self, handle: Any, listener_sock: int | None) -> int:
        """The integer for a callback's first argument: a Flow's own socket, or for orphan
        and RAW callbacks (no flow) the listener's."""
        if isinstance(handle, Flow):
            return self._flow_sock(handle)
        if listener_sock is not None:
            return listener_sock
        return self._orphan_listener()

    def _orphan_listener(self) -> int:
        # A UDE filter on ON_ORPHAN / RAW ON_PKT_IN gets the shared orphan handle, which does not
        # say for which listener it is being evaluated: use the only candidate, if unique.
        cands = [s.id for s in self._socks.values()
                 if s.kind in (MOS_SOCK_MONITOR_STREAM, MOS_SOCK_MONITOR_RAW)]
        return cands[0] if len(cands) == 1 else -1

    def _flow_ended(self, flow: FlowSummary) -> None:
        for h in self._handles_of.pop(flow.id, ()):
            sock_id = self._flow_ids.pop(h, None)
            if sock_id is not None:
                self._socks.pop(sock_id, None)

    # -- callbacks ----------------------------------------------------------------------------

    def _wrap(self, cb: Callback, ev: int, arg: Any, listener_sock: int | None
              ) -> Callable[[Any, Side, Any], None]:
        def mos_callback(handle: Any, side: Side, event: Any) -> None:
            sock = self._sock_of(handle, listener_sock)
            self._current.append(handle)
            try:
                cb(self, sock, int(side), ev, arg)
            finally:
                self._current.pop()
        mos_callback.__name__ = getattr(cb, "__name__", "callback")
        mos_callback.__qualname__ = mos_callback.__name__
        return mos_callback


def _ctx(mctx: Any) -> mctx_t | None:
    if isinstance(mctx, mctx_t) and not mctx._destroyed and _S.contexts.get(mctx.cpu) is mctx:
        return mctx
    return None


def _ctx_of_handle(handle: Any) -> mctx_t | None:
    engine = getattr(handle, "engine", None)
    return _S.by_engine.get(id(engine)) if engine is not None else None
