"""What the engine delivers to: listeners (monitoring sockets as the engine sees them) and the
handle ORPHAN and RAW callbacks get in place of a flow.

A ``Listener`` is a plain record the shell fills in (``mostool.monitor.MonitorSocket`` subclasses
it): its kind, its subscriptions, its three BPF matchers (SYN, orphan, raw) and per-side buffer
and overlap settings, read when a flow is created (``stream_params``).
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from mypy_extensions import mypyc_attr

from mostool.errors import MosError
from mostool.events.dispatch import Registration, SubscriptionRegistry
from mostool.events.types import Callback, EventType, Hook, Side
from mostool.stack.config import MonitorConfig
from mostool.stack.decode import TcpSegment
from mostool.stack.flow import PacketInfo
from mostool.stack.stream_spec import StreamSpec, stream_spec

if TYPE_CHECKING:
    from mostool.stack.engine import Engine

__all__ = ["Listener", "OrphanHandle", "STREAM", "RAW", "Matcher", "stream_params"]

STREAM = "stream"
RAW = "raw"
Matcher = Callable[[int, bytes], bool]


# subclassed by the interpreted shell (monitor.MonitorSocket)
@mypyc_attr(allow_interpreted_subclasses=True)
class Listener:
    """The engine's view of a monitoring socket (MONITOR_STREAM or MONITOR_RAW)."""

    def __init__(self, kind: str, registry: SubscriptionRegistry) -> None:
        if kind not in (STREAM, RAW):
            raise MosError(errno.EINVAL, f"unknown socket type {kind!r}")
        self.kind = kind
        self.registry = registry
        self.subs = registry.empty
        self.syn_match: Matcher | None = None
        self.orphan_match: Matcher | None = None
        self.raw_match: Matcher | None = None
        self.rcvbuf: list[int | None] = [None, None]     # per side; None = the config's
        self.overlap: list[str | None] = [None, None]
        self.closed = False

    def registration(self, event: EventType, hook: Hook | None, callback: Callback
                     ) -> Registration:
        if not isinstance(event, EventType):
            raise MosError(errno.EINVAL, f"not an event: {event!r}")
        if not callable(callback):
            raise MosError(errno.EINVAL, f"callback must be callable, not {callback!r}")
        h = event.default_hook if hook is None else Hook(hook)
        if h not in event.hooks:
            raise MosError(errno.EINVAL, f"{event.root.name} cannot be hooked at {h.name}")
        if self.kind == RAW and event.root.id != 0:
            raise MosError(errno.EINVAL, "a MONITOR_RAW socket only sees ON_PKT_IN")
        if self.kind == RAW:
            h = Hook.NULL
        return (event, h, callback)


def stream_params(listeners: Sequence[Listener], cfg: MonitorConfig) -> StreamSpec:
    """How a new flow's two half-streams are made (stack/stream_spec.py): per side, the largest
    buffer any of its listeners asks for and the first overlap policy one sets (else the
    config's)."""
    sizes = [0, 0]
    overlaps: list[str | None] = [None, None]
    for x in listeners:
        for side in (0, 1):
            size = x.rcvbuf[side]
            size = cfg.rcvbuf if size is None else size
            if size > sizes[side]:
                sizes[side] = size
            if overlaps[side] is None:
                overlaps[side] = x.overlap[side]
    overlaps = [cfg.overlap if o is None else o for o in overlaps]
    return stream_spec(sizes[0], sizes[1], cfg.hash_streams, overlaps[0] == "last",
                       overlaps[1] == "last", cfg.max_ooo_segments, cfg.max_ooo_bytes,
                       cfg.mos_compat)


class OrphanHandle:
    """What ORPHAN callbacks and RAW listeners get in place of a flow: the frame at hand."""

    __slots__ = ("engine", "frame", "seg", "uctx")

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.frame: tuple[int, bytes] = (0, b"")
        self.seg: TcpSegment | None = None
        self.uctx: Any = None

    def last_packet(self, side: Side = Side.BOTH) -> PacketInfo | tuple[int, bytes]:
        """The TCP packet (as PacketInfo) or, for non-TCP frames, (linktype, frame bytes)."""
        if self.seg is not None:
            return PacketInfo(self.seg, self.engine.now, self.engine.packet_number,
                              Side.BOTH)
        return self.frame

    @property
    def id(self) -> int:
        return 0
