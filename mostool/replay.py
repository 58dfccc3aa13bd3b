"""The replay source: capture files merged by timestamp, optionally paced.

Theory of operation
===================

:class:`ReplaySource` is the source the engine runs over capture files (opened and read by
:mod:`mostool.pcapfile`, pcapng by :mod:`mostool.pcapng`). Several
files are merged by timestamp (stable: ties keep file order, and frames of one file are never
reordered, even where its timestamps go backwards), optionally paced. At top speed over one
classic pcap file the engine may instead walk the mapped file in place (``pcap_records``).

Pacing never changes a timestamp; it only decides when a frame is handed out, against an
absolute schedule from the first frame so that sleeping errors do not accumulate, and it
records how far behind that schedule delivery fell. ``wait_until`` says when a paced replay
waits for its next frame, and ``set_waiter`` lets a live view do its work during that wait.

The reader's names (``read_capture``, ``CaptureError``, ``CaptureWarning``, ``Frame``,
``MAX_SNAPLEN``, ``PcapRecords``) are re-exported here for existing imports; new code imports
them from :mod:`mostool.pcapfile`.
"""

from __future__ import annotations

import heapq
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from operator import itemgetter
from typing import Any

from mostool._callable import make_callable
from mostool.pcapfile import (
    MAX_SNAPLEN,
    Capture,
    CaptureError,
    CaptureWarning,
    Frame,
    PcapRecords,
    open_capture,
    read_capture,
    records_layout,
)

__all__ = [
    "CaptureError",
    "CaptureWarning",
    "Frame",
    "MAX_SNAPLEN",
    "PcapRecords",
    "ReplaySource",
    "read_capture",
    "replay",
]

#: Longest single sleep while pacing, so that ``stop()`` from another thread or a signal
#: handler takes effect promptly even inside a long recorded gap.
_SLEEP_SLICE = 0.25


def _check_rate(name: str, value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number, not {value!r}")


class ReplaySource:
    """Frames from one or more capture files, merged by timestamp and optionally paced.

    Every file is opened (and its header validated) here; the first unusable one raises
    :class:`CaptureError`. Pacing: by default frames come at top speed; ``speed=k`` replays the
    recorded timing k times faster; ``pps`` and ``mbps`` send at a fixed packet or bit rate (by
    wire length); ``max_gap`` caps any single wait. At most one of speed, pps, mbps.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
        *,
        speed: float | None = None,
        pps: float | None = None,
        mbps: float | None = None,
        max_gap: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(paths, str | os.PathLike):
            paths = [paths]
        self._paths: list[str] = [os.fspath(p) for p in paths]
        if not self._paths:
            raise ValueError("ReplaySource needs at least one capture file")
        for key, value in (("speed", speed), ("pps", pps), ("mbps", mbps)):
            _check_rate(key, value)
        if sum(v is not None for v in (speed, pps, mbps)) > 1:
            raise ValueError("give at most one of speed, pps, mbps")
        if max_gap is not None and not max_gap >= 0:  # also refuses NaN
            raise ValueError(f"max_gap must be >= 0, not {max_gap!r}")
        self._speed = speed
        self._pps = pps
        self._mbps = mbps
        self._max_gap = max_gap
        self._sleep = sleep
        self._clock = clock
        # a paced replay waiting for its next frame: until this clock() time (None otherwise)
        self.wait_until: float | None = None
        self.warnings: list[str] = []
        self._caps = self._open_all()
        self._started = False
        self._stopped = False
        self._packets = 0
        self._bytes = 0
        self._wire_bytes = 0
        self._lag_max = 0.0
        self._lag_last = 0.0
        names = [os.path.basename(p) or p for p in self._paths]
        self.name: str = (
            ", ".join(names) if len(names) <= 3 else f"{names[0]} (+{len(names) - 1} more)"
        )
        self.total_bytes: int = sum(c.size for c in self._caps)

    def _open_all(self) -> list[Capture]:
        caps: list[Capture] = []
        try:
            for p in self._paths:
                caps.append(open_capture(p, self.warnings))
        except BaseException:
            for c in caps:
                c.close()
            raise
        return caps

    @property
    def paced(self) -> bool:
        return self._speed is not None or self._pps is not None or self._mbps is not None

    @property
    def position_bytes(self) -> int:
        """Bytes of the files read so far (compare with ``total_bytes``)."""
        return sum(c.position() for c in self._caps)

    def stop(self) -> None:
        """End ``frames()`` at the next frame (safe from a callback or a signal handler)."""
        self._stopped = True

    def close(self) -> None:
        """Release the files (``frames()`` ends)."""
        for c in self._caps:
            c.close()

    def stats(self) -> dict[str, float | int]:
        return {
            "packets": self._packets,
            "bytes": self._bytes,
            "wire_bytes": self._wire_bytes,
            "files": len(self._caps),
            "lag_max": self._lag_max,
            "lag_last": self._lag_last,
            "position_bytes": self.position_bytes,
            "total_bytes": self.total_bytes,
            "warnings": len(self.warnings),
        }

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def pcap_records(self) -> PcapRecords | None:
        """The capture for ``Engine.process_records`` to read in place, instead of
        ``frames()``: only at top speed, for one file, on the first read: a classic pcap (not
        the "modified" format, nor versions before 2.4, whose length fields may be swapped), or
        a pcapng whose first packet block is an Enhanced Packet Block (the EPBs of that
        interface are read in place up to the first other block; the frame reader reads on)."""
        if self.paced or len(self._caps) != 1 or self._started or self._stopped:
            return None
        layout = records_layout(self._caps[0])
        if layout is None:
            return None
        self._started = True
        return PcapRecords(self, self._caps[0], layout)

    def set_waiter(self, sleep: Callable[[float], None]) -> None:
        """Call ``sleep(seconds)`` for the pacing waits (``mostool watch`` keeps its view
        live and its keys read while a paced replay waits for a frame due later)."""
        self._sleep = sleep

    def frames(self) -> Iterator[Frame]:
        """The frames of all files in timestamp order (stable), paced as configured.

        A second call reads the files again from the start (counters and warnings reset).
        """
        if self._started:
            self.close()
            self.warnings.clear()
            self._caps = self._open_all()
            self._stopped = False
            self._packets = self._bytes = self._wire_bytes = 0
            self._lag_max = self._lag_last = 0.0
        self._started = True
        caps = self._caps
        src: Iterator[Frame]
        if len(caps) == 1:
            src = caps[0].frames
        else:
            src = heapq.merge(*(c.frames for c in caps), key=itemgetter(0))
        return self._paced_frames(src, caps) if self.paced else self._top_speed(src, caps)

    def _top_speed(self, src: Iterator[Frame], caps: list[Capture]) -> Iterator[Frame]:
        try:
            if self._stopped:
                return
            for frame in src:
                self._packets += 1
                self._bytes += len(frame[2])
                self._wire_bytes += frame[3]
                yield frame
                if self._stopped:
                    return
        finally:
            for c in caps:
                c.close()

    def _paced_frames(self, src: Iterator[Frame], caps: list[Capture]) -> Iterator[Frame]:
        clock, sleep = self._clock, self._sleep
        speed, pps, mbps, max_gap = self._speed, self._pps, self._mbps, self._max_gap
        cap_gap = math.inf if max_gap is None else max_gap
        start = 0.0  # clock() at the first frame
        due = 0.0  # seconds after start the current frame is due
        base_due = 0.0  # speed mode: due time of base_ts (rebased whenever a gap is capped)
        base_ts = hi_ts = 0.0  # speed mode: timestamps, hi_ts the highest seen so far
        prev_wire = 0
        first = True
        try:
            for frame in src:
                if self._stopped:
                    return
                ts = frame[0]
                if first:
                    first = False
                    start = clock()
                    base_ts = hi_ts = ts
                elif speed is not None:
                    # Follow the highest timestamp seen: a timestamp going backwards is sent at
                    # once and does not make later frames wait for the same interval again.
                    if ts > hi_ts:
                        if (ts - hi_ts) / speed > cap_gap:
                            base_due += (hi_ts - base_ts) / speed + cap_gap
                            base_ts = ts
                        hi_ts = ts
                        due = base_due + (hi_ts - base_ts) / speed
                elif pps is not None:
                    due += min(1.0 / pps, cap_gap)
                elif mbps is not None:
                    due += min(prev_wire * 8 / (mbps * 1e6), cap_gap)
                target = start + due
                now = clock()
                if now < target:
                    self.wait_until = target
                while now < target:
                    if self._stopped:
                        return
                    sleep(min(target - now, _SLEEP_SLICE))
                    sleep = self._sleep          # set_waiter may change it during a wait
                    now = clock()
                self.wait_until = None
                lag = now - target
                self._lag_last = lag
                if lag > self._lag_max:
                    self._lag_max = lag
                prev_wire = frame[3]
                self._packets += 1
                self._bytes += len(frame[2])
                self._wire_bytes += prev_wire
                yield frame
                if self._stopped:
                    return
        finally:
            for c in caps:
                c.close()


def replay(*paths: str | os.PathLike[str], **pacing: Any) -> ReplaySource:
    """``ReplaySource(paths, **pacing)``: e.g. ``replay("a.pcap", "b.pcapng", speed=2)``."""
    return ReplaySource(list(paths), **pacing)


make_callable(__name__, replay)
