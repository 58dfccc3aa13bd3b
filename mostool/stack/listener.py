"""Listeners: the engine's view of a monitoring socket (MONITOR_STREAM or MONITOR_RAW).

A listener holds what the engine needs to know of a socket: its kind, its subscription set (the
handles of the flows it accepts start from it), its BPF-compiled matchers (which SYNs start a
flow for it, which orphans and raw frames it sees) and the per-side buffer size and overlap
policy it asks for. ``registration`` checks one (event, hook, callback) before it is added.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

from mostool.errors import MosError
from mostool.events.dispatch import Registration, SubscriptionRegistry
from mostool.events.types import Callback, EventType, Hook

__all__ = ["Listener", "STREAM", "RAW", "Matcher"]

STREAM = "stream"
RAW = "raw"
Matcher = Callable[[int, bytes], bool]


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
