"""The engine's deadlines: user timers, TIME_WAIT expiries and idle timeouts, in packet time.

Theory of operation. Two heaps. ``heap`` holds (when, seq, timer id, target): a user timer
(id > 0, target its callback) or a flow's TIME_WAIT expiry (id 0, target the Connection).
``idle`` holds (last_ts when pushed, conn id, conn), one entry per open flow, with lazy
deletion: an entry whose flow has seen packets since it was pushed is pushed again with the newer
time when it comes up, one whose flow ended is dropped (and ``forget`` compacts the heap when
ended flows are more than half of it). A flow's idle deadline is its last packet's time plus
``idle_timeout``.

``due`` is the contract the per-packet paths read instead of looking at either heap: no deadline
falls before it (a lower bound, not necessarily a deadline). Everything that adds a deadline
lowers it; ``pop_expired`` recomputes it exactly when nothing more is due. The engine (and the
fused record reader) calls ``pop_expired`` only for a packet at or after ``due``.

Nothing here runs a callback or ends a flow: ``pop_expired`` hands the engine what is due, in
time order, and the engine acts on it (the clock set to each deadline in turn).
"""

from __future__ import annotations

import errno
import heapq
import itertools
import math
from typing import TYPE_CHECKING, Any

from mostool.errors import MosError

if TYPE_CHECKING:
    from collections.abc import Callable

    from mostool.stack.connection import Connection

__all__ = ["Timers", "IDLE", "TIME_WAIT"]

IDLE = -1           # the timer id pop_expired gives an idle timeout (target: the Connection)
TIME_WAIT = 0       # ... and a TIME_WAIT expiry (target: the Connection)


class Timers:
    """User timers, TIME_WAIT expiries and idle timeouts; ``due`` bounds them from below."""

    __slots__ = ("due", "heap", "idle", "idle_timeout", "_seq", "_ids", "_cancelled",
                 "_idle_dead")

    def __init__(self, idle_timeout: float | None) -> None:
        self.due = math.inf                 # no deadline falls before this time
        self.heap: list[tuple[float, int, int, Any]] = []     # (when, seq, id, callback|conn)
        self.idle: list[tuple[float, int, Connection]] = []   # (last_ts when pushed, id, conn)
        self.idle_timeout = idle_timeout
        self._seq = itertools.count()
        self._ids = itertools.count(1)
        self._cancelled: set[int] = set()
        self._idle_dead = 0                 # ended flows still in the idle heap

    # -- adding deadlines ---------------------------------------------------------------------

    def add(self, when: float, callback: Callable[[int], Any]) -> int:
        """A user timer: ``callback(timer_id)`` at ``when``; returns its id."""
        if not callable(callback):
            raise MosError(errno.EINVAL, "timer callback must be callable")
        timer_id = next(self._ids)
        if when < self.due:
            self.due = when
        heapq.heappush(self.heap, (when, next(self._seq), timer_id, callback))
        return timer_id

    def cancel(self, timer_id: int) -> None:
        self._cancelled.add(timer_id)

    def time_wait(self, conn: Connection, when: float) -> None:
        """The flow's TIME_WAIT ends at ``when`` (``conn.tw_deadline``)."""
        if when < self.due:
            self.due = when
        heapq.heappush(self.heap, (when, next(self._seq), TIME_WAIT, conn))

    def watch_idle(self, conn: Connection, now: float) -> None:
        """A new flow, idle from ``now`` on."""
        heapq.heappush(self.idle, (now, conn.id, conn))
        if self.idle_timeout is not None and now + self.idle_timeout < self.due:
            self.due = now + self.idle_timeout

    def shift(self, old_now: float, ts: float) -> None:
        """The clock starts at ``ts``: timers set before it count from it."""
        if ts > old_now:
            self.heap = [(when - old_now + ts, seq, timer_id, target)
                         for when, seq, timer_id, target in self.heap]
            heapq.heapify(self.heap)
        self.due = -math.inf                # recompute on the next frame

    # -- what is due --------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When the next timer falls due (for a live source's idle ticking)."""
        best: float | None = self.heap[0][0] if self.heap else None
        if self.idle and self.idle_timeout is not None:
            d = self.idle[0][0] + self.idle_timeout
            best = d if best is None or d < best else best
        return best

    def pop_expired(self, ts: float) -> tuple[float, int, Any] | None:
        """The earliest (deadline, timer id or IDLE or TIME_WAIT, target) before ``ts``, taken
        off its heap; None (and ``due`` exact again) when nothing more is due before ``ts``.
        Cancelled user timers and stale idle entries are skipped."""
        timers = self.heap
        idle = self.idle
        timeout = self.idle_timeout
        while True:
            t_deadline = timers[0][0] if timers else None
            i_deadline = idle[0][0] + timeout if idle and timeout is not None else None
            if (t_deadline is None or t_deadline >= ts) and (i_deadline is None
                                                            or i_deadline >= ts):
                self.due = min(math.inf if t_deadline is None else t_deadline,
                               math.inf if i_deadline is None else i_deadline)
                return None
            if i_deadline is not None and (t_deadline is None or i_deadline <= t_deadline):
                pushed, _, conn = heapq.heappop(idle)
                if conn.ended:
                    continue
                if conn.last_ts > pushed:
                    heapq.heappush(idle, (conn.last_ts, conn.id, conn))
                    continue
                return i_deadline, IDLE, conn
            when, _, timer_id, target = heapq.heappop(timers)
            if timer_id in self._cancelled:
                self._cancelled.discard(timer_id)
                continue
            return when, timer_id, target

    def longest_idle(self) -> Connection | None:
        """The open flow idle the longest (to evict), taken off the idle heap."""
        idle = self.idle
        while idle:
            pushed, _, conn = idle[0]
            if conn.ended:
                heapq.heappop(idle)
            elif conn.last_ts > pushed:
                heapq.heapreplace(idle, (conn.last_ts, conn.id, conn))
            else:
                heapq.heappop(idle)
                return conn
        return None

    # -- flows ending, the run ending ---------------------------------------------------------

    def forget(self) -> None:
        """A flow ended: its idle entry is dead; compact once dead entries are the majority."""
        self._idle_dead += 1
        idle = self.idle
        if self._idle_dead > 64 and 2 * self._idle_dead > len(idle):
            idle[:] = [entry for entry in idle if not entry[2].ended]   # in place: loops hold it
            heapq.heapify(idle)
            self._idle_dead = 0

    def clear(self) -> None:
        """The run ended: what was due after the end never fires."""
        self.heap.clear()
        self._cancelled.clear()
        self.idle.clear()
