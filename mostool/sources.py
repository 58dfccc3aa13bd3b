"""The source interface every packet source implements, and the small sources and wrappers.

``Monitor.run(source)`` is the only loop. A source hands out frames as plain tuples
``(ts, linktype, data, wire_len)`` in capture order; a tuple whose linktype is negative
(:data:`TICK`) is a clock tick: no packet, only "the time is now ``ts``", which a live source
yields while no traffic arrives so that idle timeouts and timers still fire. Every source has:

``name``        what it reads (file names, an interface), for messages and summaries
``warnings``    one-line messages about damage or trouble met while reading (filled as it goes)
``frames()``    the iterator of frames; closing it (``Monitor.run`` does) releases the source
``stop()``      end ``frames()`` at the next frame; safe from a callback or a signal handler
``stats()``     counters (at least ``packets``), read during or after the run

Optional, looked up with :func:`source_attr` (which also looks through wrappers):

``live``             True for a wall-clock source (a capture): a run's ``duration`` is wall
                     time; otherwise it is packet time
``set_deadline(f)``  ``Monitor.run`` hands the source ``f() -> float | None``, the engine's next
                     timer deadline (packet time), so a live source can tick right then

A wrapper (a BPF filter, a pcap writer, a sampler) keeps the wrapped source as ``inner`` and
forwards ``stop`` and ``stats``; :func:`source_attr` follows ``inner`` for the optional
attributes, so wrappers need not forward them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "Source",
    "MemorySource",
    "FilteredSource",
    "Frame",
    "TICK",
    "tick",
    "source_attr",
    "is_live",
]

Frame = tuple[float, int, bytes, int]
TICK = -1
_MAX_WRAPPERS = 32
_MISSING: Any = object()


@runtime_checkable
class Source(Protocol):
    name: str
    warnings: list[str]

    def frames(self) -> Iterator[Frame]: ...

    def stop(self) -> None: ...

    def stats(self) -> dict[str, Any]: ...


def tick(ts: float) -> Frame:
    """A clock tick at ``ts`` (no packet)."""
    return (ts, TICK, b"", 0)


def source_attr(source: Any, name: str, default: Any = None) -> Any:
    """``source.name``, or the first wrapped source's (through ``inner``) that has it."""
    for _ in range(_MAX_WRAPPERS):
        if source is None:
            break
        value = getattr(source, name, _MISSING)
        if value is not _MISSING:
            return value
        source = getattr(source, "inner", None)
    return default


def is_live(source: Any) -> bool:
    """Whether ``source`` (or the source it wraps) is a wall-clock capture."""
    return bool(source_attr(source, "live", False))


class MemorySource:
    """Frames held in memory: ``(ts, linktype, data[, wire_len])`` tuples (ticks pass through)."""

    live = False

    def __init__(self, frames: Iterable[tuple[Any, ...]], name: str = "memory") -> None:
        self._frames = [(float(f[0]), int(f[1]), bytes(f[2]),
                         int(f[3]) if len(f) > 3 else len(f[2])) for f in frames]
        self.name = name
        self.warnings: list[str] = []
        self._stopped = False
        self._started = False
        self._count = 0
        self._bytes = 0

    def frames(self) -> Iterator[Frame]:
        """The frames in order; a second call starts again from the first."""
        if self._started:
            self._stopped = False
            self._count = self._bytes = 0
        self._started = True
        return self._iterate()

    def _iterate(self) -> Iterator[Frame]:
        for frame in self._frames:
            if self._stopped:
                return
            if frame[1] >= 0:
                self._count += 1
                self._bytes += len(frame[2])
            yield frame

    def stop(self) -> None:
        self._stopped = True

    def stats(self) -> dict[str, Any]:
        return {"packets": self._count, "bytes": self._bytes, "files": 0}


class FilteredSource:
    """The frames of ``inner`` that pass a libpcap BPF filter (tcpdump's trailing words).

    Ticks always pass. Raises :class:`mostool.bpf.BpfError` (libpcap's message, one line) for
    a bad expression. A live capture filters in the kernel instead (``LiveSource(bpf=...)``).
    """

    def __init__(self, inner: Any, expression: str) -> None:
        from mostool.bpf import BpfFilter
        self.filter = BpfFilter(expression)
        self.inner = inner
        self.name: str = getattr(inner, "name", "source")
        self.warnings: list[str] = getattr(inner, "warnings", [])
        self.passed = 0

    def frames(self) -> Iterator[Frame]:
        matches = self.filter.matches
        inner = self.inner.frames()
        try:
            for frame in inner:
                if frame[1] < 0:
                    yield frame
                elif matches(frame[1], frame[2]):
                    self.passed += 1
                    yield frame
        finally:
            close = getattr(inner, "close", None)
            if close is not None:
                close()

    def stop(self) -> None:
        self.inner.stop()

    def stats(self) -> dict[str, Any]:
        out = dict(self.inner.stats())
        out["filtered_in"] = self.passed
        return out
