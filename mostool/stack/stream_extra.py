"""What a half-stream (stack/stream.py) holds only once it has met a hole, an out-of-order run,
a retransmission, a conflict or late bytes: most streams never do.

``HalfStream`` reads and writes these values as its own attributes (``st.gaps``,
``st.rexmit += 1``, ...) through the properties of its base class ``Rare``, which keep them in
a ``StreamExtra`` made on the first write of a value that is not the default (zero, or an
empty run list, or the empty store); until then every stream shares one read-only
``StreamExtra`` of defaults. A stream that needs none of them stays small (about 250 bytes
less per stream, compiled); a side that never receives anything has no stream at all
(stack/stream_spec.py).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

__all__ = ["Rare", "StreamExtra", "Pairs", "Ints", "NONE", "NO_OOO", "OooLimits", "ooo_limits"]

Pairs = list[tuple[int, int]] | tuple[tuple[int, int], ...]
Ints = list[int] | tuple[int, ...]

# A container a stream may never need starts as one of these shared empty stand-ins and
# becomes its own list (dict) on first use. Both are empty and falsy, so readers need not
# care; writers check isinstance.
NONE: Final[tuple[Any, ...]] = ()
NO_OOO: Final[Mapping[int, Any]] = MappingProxyType({})
_NONE: Final = NONE
_NO_OOO: Final = NO_OOO


class OooLimits:
    """How much a stream's out-of-order store may hold before its oldest hole is given up
    (MonitorConfig.max_ooo_segments, max_ooo_bytes): one object shared by the streams of the
    same limits, rather than two words in every stream."""

    __slots__ = ("segments", "nbytes")

    def __init__(self, segments: int, nbytes: int) -> None:
        self.segments = segments
        self.nbytes = nbytes


_LIMITS: Final[dict[tuple[int, int], OooLimits]] = {}


def ooo_limits(segments: int, nbytes: int) -> OooLimits:
    """The shared ``OooLimits`` of these values (a few configurations per process: bounded)."""
    key = (segments, nbytes)
    found = _LIMITS.get(key)
    if found is None:
        found = OooLimits(segments, nbytes)
        if len(_LIMITS) < 64:
            _LIMITS[key] = found
    return found


class StreamExtra:
    """The values; see the module docstring."""

    __slots__ = ("gaps", "_gap_starts", "gap_bytes", "ooo", "ooo_bytes", "rexmit", "rexmit_bytes",
                 "rexmit_off", "rexmit_len", "conflicts", "conflict_bytes", "late_bytes",
                 "conflict_runs", "gap_runs", "late_runs", "filled_runs")

    def __init__(self) -> None:
        self.gaps: Pairs = _NONE  # holes given up, (offset, length), in order
        self._gap_starts: Ints = _NONE  # their offsets, for bisect
        self.gap_bytes: int = 0
        self.ooo: Mapping[int, Any] = _NO_OOO
        self.ooo_bytes: int = 0
        self.rexmit: int = 0
        self.rexmit_bytes: int = 0
        self.rexmit_off: int = 0
        self.rexmit_len: int = 0
        self.conflicts: int = 0
        self.conflict_bytes: int = 0
        self.late_bytes: int = 0
        self.conflict_runs: Pairs = _NONE  # outbox: ON_ERROR overlap_conflict
        self.gap_runs: Pairs = _NONE  # outbox: ON_ERROR gap
        self.late_runs: Pairs = _NONE  # outbox: ON_ERROR late_data
        self.filled_runs: Pairs = _NONE  # outbox: ON_ERROR gap_filled


_DEFAULTS: Final = StreamExtra()      # shared by every stream that has needed none: never written


class Rare:
    """The ``StreamExtra`` values as attributes of their half-stream."""

    __slots__ = ("_extra",)

    def __init__(self) -> None:
        self._extra = _DEFAULTS

    def _own_extra(self) -> StreamExtra:
        x = self._extra
        if x is _DEFAULTS:
            x = self._extra = StreamExtra()
        return x

    def rare_untouched(self) -> bool:
        """Whether no value here was ever written (the stream shares the defaults)."""
        return self._extra is _DEFAULTS

    # -- the gaps, read (HalfStream writes them) ----------------------------------------------

    def skipped(self, start: int, end: int) -> int:
        """How many bytes of [start, end) were given up as gaps (never received)."""
        total = 0
        i = max(bisect_right(self._gap_starts, start) - 1, 0)
        for g_off, g_len in self.gaps[i:]:
            if g_off >= end:
                break
            lo, hi = max(start, g_off), min(end, g_off + g_len)
            if hi > lo:
                total += hi - lo
        return total

    def _was_received(self, start: int, end: int) -> bool:
        """Whether any of [start, end) below nxt was received rather than skipped."""
        starts = self._gap_starts
        if not starts:
            return True
        i = bisect_right(starts, start) - 1
        if i < 0:
            return True
        g_off, g_len = self.gaps[i]
        return not end <= g_off + g_len

    @property
    def gaps(self) -> Pairs:
        return self._extra.gaps

    @gaps.setter
    def gaps(self, value: Pairs) -> None:
        if value or isinstance(value, list) or self._extra is not _DEFAULTS:
            self._own_extra().gaps = value

    @property
    def _gap_starts(self) -> Ints:
        return self._extra._gap_starts

    @_gap_starts.setter
    def _gap_starts(self, value: Ints) -> None:
        if value or isinstance(value, list) or self._extra is not _DEFAULTS:
            self._own_extra()._gap_starts = value

    @property
    def gap_bytes(self) -> int:
        return self._extra.gap_bytes

    @gap_bytes.setter
    def gap_bytes(self, value: int) -> None:
        if value or self._extra is not _DEFAULTS:
            self._own_extra().gap_bytes = value

    @property
    def ooo(self) -> Mapping[int, Any]:
        return self._extra.ooo

    @ooo.setter
    def ooo(self, value: Mapping[int, Any]) -> None:
        if value is not _NO_OOO or self._extra is not _DEFAULTS:
            self._own_extra().ooo = value

    @property
    def ooo_bytes(self) -> int:
        return self._extra.ooo_bytes

    @ooo_bytes.setter
    def ooo_bytes(self, value: int) -> None:
        if value or self._extra is not _DEFAULTS:
            self._own_extra().ooo_bytes = value

    @property
    def rexmit(self) -> int:
        return self._extra.rexmit

    @rexmit.setter
    def rexmit(self, value: int) -> None:
        if value or self._extra is not _DEFAULTS:
            self._own_extra().rexmit = value

    @property
    def rexmit_bytes(self) -> int:
        return self._extra.rexmit_bytes

    @rexmit_bytes.setter
    def rexmit_bytes(self, value: int) -> None:
        if value or self._extra is not _DEFAULTS:
            self._own_extra().rexmit_bytes = value

    @property
    def rexmit_off(self) -> int:
        return self._extra.rexmit_off

    @rexmit_off.setter
    def rexmit_off(self, value: int) -> None:
        if value or self._extra is not _DEFAULTS:
            self._own_extra().rexmit_off = value

    @property
    def rexmit_len(self) -> int:
        return self._extra.rexmit_len

    @rexmit_len.setter
    def rexmit_len(self, value: int) -> None:
        if value or self._extra is not _DEFAULTS:
            self._own_extra().rexmit_len = value

    @property
    def conflicts(self) -> int:
        return self._extra.conflicts

    @conflicts.setter
    def conflicts(self, value: int) -> None:
        if value or self._extra is not _DEFAULTS:
            self._own_extra().conflicts = value

    @property
    def conflict_bytes(self) -> int:
        return self._extra.conflict_bytes

    @conflict_bytes.setter
    def conflict_bytes(self, value: int) -> None:
        if value or self._extra is not _DEFAULTS:
            self._own_extra().conflict_bytes = value

    @property
    def late_bytes(self) -> int:
        return self._extra.late_bytes

    @late_bytes.setter
    def late_bytes(self, value: int) -> None:
        if value or self._extra is not _DEFAULTS:
            self._own_extra().late_bytes = value

    @property
    def conflict_runs(self) -> Pairs:
        return self._extra.conflict_runs

    @conflict_runs.setter
    def conflict_runs(self, value: Pairs) -> None:
        if value or isinstance(value, list) or self._extra is not _DEFAULTS:
            self._own_extra().conflict_runs = value

    @property
    def gap_runs(self) -> Pairs:
        return self._extra.gap_runs

    @gap_runs.setter
    def gap_runs(self, value: Pairs) -> None:
        if value or isinstance(value, list) or self._extra is not _DEFAULTS:
            self._own_extra().gap_runs = value

    @property
    def late_runs(self) -> Pairs:
        return self._extra.late_runs

    @late_runs.setter
    def late_runs(self, value: Pairs) -> None:
        if value or isinstance(value, list) or self._extra is not _DEFAULTS:
            self._own_extra().late_runs = value

    @property
    def filled_runs(self) -> Pairs:
        return self._extra.filled_runs

    @filled_runs.setter
    def filled_runs(self, value: Pairs) -> None:
        if value or isinstance(value, list) or self._extra is not _DEFAULTS:
            self._own_extra().filled_runs = value
