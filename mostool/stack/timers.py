"""The engine's clocks: user timers, TIME_WAIT expiry and idle timeouts, in packet time.

Theory of operation. Two heaps. ``user`` holds (when, seq, id, target): a user timer's callback
(ids from 1) or a flow lingering in TIME_WAIT (id 0); ``seq`` keeps equal deadlines in the order
they were set. ``idle`` holds the flows themselves, one entry per flow, ordered by
(``idle_since``, id) (``Connection.__lt__``; ``idle_since`` is its ``last_ts`` when pushed, so a
flow costs the heap one pointer, not a tuple and a float), with lazy deletion: a flow that saw
packets since it was pushed is pushed again with its newer ``last_ts`` when it reaches the
top, an ended flow is dropped there, and the heap is compacted when ended flows make up most
of it. ``pop_due(ts)`` pops the next thing that falls
due before ``ts`` (idle deadlines first on ties, as they were set earlier) and leaves in ``due``
the deadline to wait for after it; the engine fires it (mostool/stack/engine.py ``_fire_due``).
Nothing here reads a clock: every deadline comes from a packet's timestamp.
"""

from __future__ import annotations

import errno
import heapq
import itertools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mostool.errors import MosError

if TYPE_CHECKING:
    from mostool.stack.connection import Connection

__all__ = ["Timers", "IDLE", "TIME_WAIT"]

IDLE = -1           # pop_due: an idle flow's timeout
TIME_WAIT = 0       # pop_due: a flow's TIME_WAIT ended (user timers have ids from 1)


class Timers:
    """User timers, TIME_WAIT expiry and idle timeouts of one engine."""

    def __init__(self, idle_timeout: float | None) -> None:
        self.idle_timeout = idle_timeout
        self.user: list[tuple[float, int, int, Any]] = []     # (when, seq, id, callback|conn)
        self.idle: list[Connection] = []     # by (idle_since, id): see the module docstring
        self.due = math.inf                 # set by pop_due when nothing more is due
        self._seq = itertools.count()
        self._ids = itertools.count(1)
        self._cancelled: set[int] = set()
        self._idle_dead = 0                 # ended flows still in the idle heap

    def add(self, now: float, delay: float, callback: Callable[[int], Any]) -> int:
        """A user timer ``delay`` seconds after ``now``; returns its id."""
        if delay < 0:
            raise MosError(errno.EINVAL, f"timer delay must be >= 0, not {delay}")
        if not callable(callback):
            raise MosError(errno.EINVAL, "timer callback must be callable")
        timer_id = next(self._ids)
        heapq.heappush(self.user, (now + delay, next(self._seq), timer_id, callback))
        return timer_id

    def cancel(self, timer_id: int) -> None:
        self._cancelled.add(timer_id)

    def add_time_wait(self, when: float, conn: Connection) -> None:
        """``conn`` ends at ``when`` unless its ``tw_deadline`` has changed by then."""
        heapq.heappush(self.user, (when, next(self._seq), TIME_WAIT, conn))

    def watch_idle(self, now: float, conn: Connection) -> float:
        """Start the idle clock of a new flow; returns its deadline (inf without a timeout)."""
        conn.idle_since = now
        heapq.heappush(self.idle, conn)
        return math.inf if self.idle_timeout is None else now + self.idle_timeout

    def shift(self, by: float) -> None:
        """The clock started: user timers set before count from now on (``by`` later)."""
        self.user = [(when + by, seq, timer_id, target)
                     for when, seq, timer_id, target in self.user]
        heapq.heapify(self.user)

    def next_deadline(self) -> float | None:
        """When the next timer falls due (for a live source's idle ticking)."""
        best: float | None = self.user[0][0] if self.user else None
        if self.idle and self.idle_timeout is not None:
            d = self.idle[0].idle_since + self.idle_timeout
            best = d if best is None or d < best else best
        return best

    def pop_due(self, ts: float) -> tuple[float, int, Any] | None:
        """The next (deadline, kind, target) due before ``ts``, removed: kind IDLE (target a
        flow), TIME_WAIT (a flow) or a user timer's id (its callback). None when nothing is,
        with ``due`` set to the next deadline."""
        timers = self.user
        idle = self.idle
        timeout = self.idle_timeout
        while True:
            t_deadline = timers[0][0] if timers else None
            i_deadline = idle[0].idle_since + timeout if idle and timeout is not None else None
            if (t_deadline is None or t_deadline >= ts) and (i_deadline is None
                                                            or i_deadline >= ts):
                self.due = min(math.inf if t_deadline is None else t_deadline,
                               math.inf if i_deadline is None else i_deadline)
                return None
            if i_deadline is not None and (t_deadline is None or i_deadline <= t_deadline):
                conn = heapq.heappop(idle)
                if conn.ended:
                    continue
                if conn.last_ts > conn.idle_since:
                    conn.idle_since = conn.last_ts      # (off the heap: its order holds)
                    heapq.heappush(idle, conn)
                    continue
                return i_deadline, IDLE, conn
            when, _, timer_id, target = heapq.heappop(timers)
            if timer_id == TIME_WAIT:
                if not target.ended and target.tw_deadline == when:
                    return when, TIME_WAIT, target
            elif timer_id in self._cancelled:
                self._cancelled.discard(timer_id)
            else:
                return when, timer_id, target

    def least_recent(self) -> Connection | None:
        """The open flow that has gone longest without a packet (to evict), off the heap."""
        idle = self.idle
        while idle:
            conn = idle[0]
            if conn.ended:
                heapq.heappop(idle)
            elif conn.last_ts > conn.idle_since:
                conn.idle_since = conn.last_ts      # the top, replaced by itself: sifted down
                heapq.heapreplace(idle, conn)
            else:
                heapq.heappop(idle)
                return conn
        return None

    def flow_ended(self) -> None:
        """A flow ended: its idle entry is dead; compact the heap when most of it is."""
        self._idle_dead += 1
        idle = self.idle
        if self._idle_dead > 64 and 2 * self._idle_dead > len(idle):
            idle[:] = [conn for conn in idle if not conn.ended]   # in place: loops hold it
            heapq.heapify(idle)
            self._idle_dead = 0

    def clear(self) -> None:
        """The end of the capture: what was due after it never fires."""
        self.user.clear()
        self._cancelled.clear()
        self.idle.clear()
