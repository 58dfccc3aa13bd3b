"""The source interface every packet source implements, and an in-memory source.

``Monitor.run(source)`` is the only loop. A source hands out frames as plain tuples
``(ts, linktype, data, wire_len)`` in capture order; a tuple whose linktype is negative is a
clock tick (a live source with no traffic), which moves the engine's clock so timers fire.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol, runtime_checkable

__all__ = ["Source", "MemorySource", "Frame", "TICK"]

Frame = tuple[float, int, bytes, int]
TICK = -1


@runtime_checkable
class Source(Protocol):
    name: str
    warnings: list[str]

    def frames(self) -> Iterator[Frame]: ...

    def stop(self) -> None: ...

    def stats(self) -> dict[str, Any]: ...


class MemorySource:
    """Frames held in memory: a list of (ts, linktype, data[, wire_len]) tuples."""

    def __init__(self, frames: Iterable[tuple[Any, ...]], name: str = "memory") -> None:
        self._frames = [(float(f[0]), int(f[1]), bytes(f[2]),
                         int(f[3]) if len(f) > 3 else len(f[2])) for f in frames]
        self.name = name
        self.warnings: list[str] = []
        self._stopped = False
        self._count = 0

    def frames(self) -> Iterator[Frame]:
        for frame in self._frames:
            if self._stopped:
                return
            self._count += 1
            yield frame

    def stop(self) -> None:
        self._stopped = True

    def stats(self) -> dict[str, Any]:
        return {"packets": self._count, "files": 0}
