"""The `mostool watch` driver: a rich full-screen view, drawn between frames, never per event.

Theory of operation. ``Monitor.run`` stays the only loop and the engine's path is untouched:
the view wraps the *source*. The wrapper (``Sampler``) passes frames through, adds up their
bytes, and every ``every`` frames reads the wall clock; ``every`` adapts so that happens about a
hundred times a second whatever the packet rate. When a frame is due (``refresh`` per second)
the driver takes a ``Snapshot`` of the model and redraws. Drawing time is measured and the next
frame waits at least ``cost / budget``, so drawing never takes more than ``budget`` of the run
(default 2%) even with a million active flows. Keys (q, s, p) are read between frames.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from itertools import chain, islice
from operator import itemgetter
from typing import IO, Any

from rich.console import Console
from rich.live import Live

from mostool.monitor import Monitor
from mostool.sources import TICK, is_live, source_attr
from mostool.view.model import Snapshot, ViewModel
from mostool.view.render import layout_sizes, render_screen, render_summary

__all__ = ["Sampler", "Watch", "print_summary"]


# frames that come on the wall clock (live, paced): check at least this often (seconds)
_CHECK_AT_LEAST = 0.1


class Sampler:
    """A source wrapper that hands frames over in batches and calls ``check()`` between them.

    From a top-speed replay the frames of a batch go to ``Monitor.run`` through
    ``itertools.chain`` (C code, no Python frame per packet); ``check()`` runs when the engine
    has handled a whole batch and returns the size of the next one. A live capture or a paced
    replay delivers on the wall clock, so nothing is read ahead there: frames pass one by one
    and ``check()`` runs every ``every`` frames.
    """

    def __init__(self, inner: Any, check: Callable[[], int] | None = None,
                 every: int = 1) -> None:
        self.inner = inner
        self.name: str = getattr(inner, "name", "source")
        self.warnings: list[str] = getattr(inner, "warnings", [])
        self.check = check
        self.every = every
        self.bytes = 0
        self.first_ts: float | None = None

    def frames(self) -> Iterator[tuple[float, int, bytes, int]]:
        if is_live(self.inner) or source_attr(self.inner, "paced", False):
            return self._one_by_one()        # frames come on the wall clock: never read ahead
        return _Batched(self._batches())

    def _one_by_one(self) -> Iterator[tuple[float, int, bytes, int]]:
        it = iter(self.inner.frames())
        check = self.check
        n = self.every
        nbytes = self.bytes
        clock = time.monotonic
        due = clock() + _CHECK_AT_LEAST
        try:
            for frame in it:
                if self.first_ts is None:
                    self.first_ts = frame[0]
                nbytes += frame[3]
                yield frame
                n -= 1
                # a clock tick means the link is idle, and frames that trickle in after a
                # burst may take long to fill a batch grown during it: check then too, or the
                # view stays frozen while packets arrive
                if not n or frame[1] == TICK or clock() >= due:
                    self.bytes = nbytes
                    n = self.every = check() if check is not None else self.every
                    due = clock() + _CHECK_AT_LEAST
        finally:
            self.bytes = nbytes
            close = getattr(it, "close", None)
            if close is not None:
                close()

    def _batches(self) -> Iterator[list[tuple[float, int, bytes, int]]]:
        it = iter(self.inner.frames())
        wire = itemgetter(3)
        check = self.check
        try:
            while True:
                batch = list(islice(it, self.every))
                if not batch:
                    return
                if self.first_ts is None:
                    self.first_ts = batch[0][0]
                self.bytes += sum(map(wire, batch))
                yield batch
                if check is not None:
                    self.every = check()
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    def stop(self) -> None:
        if hasattr(self.inner, "stop"):
            self.inner.stop()

    def stats(self) -> dict[str, Any]:
        return dict(self.inner.stats()) if hasattr(self.inner, "stats") else {}


class _Batched:
    """The frames of a batch generator, one by one (``Monitor.run`` closes it at the end)."""

    __slots__ = ("_batches", "_frames")

    def __init__(self, batches: Iterator[list[tuple[float, int, bytes, int]]]) -> None:
        self._batches = batches
        self._frames = chain.from_iterable(batches)

    def __iter__(self) -> Iterator[tuple[float, int, bytes, int]]:
        return self._frames

    def __next__(self) -> tuple[float, int, bytes, int]:
        return next(self._frames)

    def close(self) -> None:
        close = getattr(self._batches, "close", None)
        if close is not None:
            close()


class Watch:
    """Runs a Monitor over a source with the live view (``interactive``) or without it."""

    def __init__(self, mon: Monitor, console: Console, *, interactive: bool,
                 refresh: float = 4.0, sort: str = "bytes", all_events: bool = False,
                 hold: bool = False, budget: float = 0.02,
                 clock: Callable[[], float] = time.monotonic,
                 keys: IO[str] | None = None, feed: set[str] | None = None) -> None:
        if refresh <= 0:
            raise ValueError(f"refresh must be positive, not {refresh}")
        self.mon = mon
        self.console = console
        self.interactive = interactive
        self.period = 1.0 / refresh
        self.hold = hold
        self.budget = budget
        self.clock = clock
        self.model = ViewModel(mon, all_events=all_events, sort=sort, feed=feed)
        self.model.attach()
        self.keys = keys
        self.sampler: Sampler | None = None
        self.source: Any = None
        self._live: Live | None = None
        self._t0 = 0.0
        self._last_check = 0.0
        self._next_draw = 0.0
        self._paused = False
        self._quit = False
        self.draws = 0
        self.draw_time = 0.0
        self.final: Snapshot | None = None

    # -- running --------------------------------------------------------------------------------

    def run(self, source: Any, **run_options: Any) -> Snapshot:
        """Run the monitor over ``source`` (``run_options`` go to ``Monitor.run``: count,
        duration); returns the final snapshot, for the summary."""
        self.source = source
        self.sampler = Sampler(source, self._check if self.interactive else self._drain)
        self._t0 = self._last_check = self.clock()
        self._next_draw = self._t0           # draw the first frame at once
        if not self.interactive:
            self.mon.run(self.sampler, **run_options)
            self.final = self.snapshot(finished=True)
            return self.final
        waiter = source_attr(source, "set_waiter")
        if callable(waiter):
            waiter(self._wait)              # a paced replay's waits keep the view live
        live = Live(console=self.console, screen=True, auto_refresh=False,
                    redirect_stdout=True, redirect_stderr=True, transient=True)
        with _cbreak(self.keys), live:
            self._live = live
            self._draw(self.clock())
            self.mon.run(self.sampler, **run_options)
            self.final = self.snapshot(finished=True)
            self._show(self.final)
            if self.hold and self.keys is not None and not self._quit:
                self._wait_for_quit()
        self._live = None
        return self.final

    def _wait(self, seconds: float) -> None:
        """A paced replay's wait for its next frame: sleep in short slices, drawing the view
        (which says what it waits for) and reading keys; q stops the replay at once."""
        end = self.clock() + seconds
        while not self._quit:
            now = self.clock()
            if now >= end:
                return
            if now >= self._next_draw or self._paused:
                self._draw(now)
                self._poll_keys()
                if self._quit:
                    self.mon.stop("q key")
                    return
            time.sleep(max(0.0, min(end - now, self.period / 2, 0.05)))

    def waiting(self) -> float | None:
        """Seconds until a paced replay's next frame is due, while it waits (else None)."""
        until = source_attr(self.source, "wait_until") if self.source is not None else None
        if until is None:
            return None
        return max(0.0, float(until) - time.monotonic())

    def snapshot(self, *, finished: bool = False) -> Snapshot:
        s = self.sampler
        rows, bottom = layout_sizes(self.console.size.height)
        return self.model.snapshot(
            self.clock() - self._t0, source=self.source,
            waiting=None if finished else self.waiting(),
            packets=self.mon.counters.get("packets", 0),
            nbytes=s.bytes if s is not None else 0,
            first_ts=s.first_ts if s is not None else None, rows=rows, feed_rows=bottom,
            finished=finished,
            paused=self._paused)

    # -- between frames -------------------------------------------------------------------------

    def _drain(self) -> int:
        """Between batches without the view: only fold the ended flows into the counters."""
        self.model.drain()
        return 4096

    def _check(self) -> int:
        """Called by the sampler between batches: maybe draw; returns the next batch size."""
        now = self.clock()
        elapsed = now - self._last_check
        self._last_check = now
        self.model.drain()
        every = self.sampler.every if self.sampler is not None else 1
        # aim for ~100 checks per second, growing at most 4x at a time
        nxt = int(every * 0.01 / elapsed) if elapsed > 0 else every * 4
        nxt = 1 if nxt < 1 else min(nxt, every * 4, 4096)
        if now >= self._next_draw:
            self._draw(now)
            self._poll_keys()
            while self._paused and not self._quit:
                time.sleep(self.period)
                self._draw(self.clock())
                self._poll_keys()
            if self._quit:
                self.mon.stop("q key")
        return nxt

    def _draw(self, now: float) -> None:
        snap = self.snapshot()
        self._show(snap)
        done = self.clock()
        cost = done - now
        self.draws += 1
        self.draw_time += cost
        self._next_draw = now + max(self.period, cost / self.budget)

    def _show(self, snap: Snapshot) -> None:
        if self._live is None:
            return
        size = self.console.size
        self._live.update(render_screen(snap, size.width, size.height), refresh=True)

    def _poll_keys(self) -> None:
        for key in _read_keys(self.keys):
            if key in ("q", "Q"):
                self._quit = True
            elif key in ("s", "S"):
                self.model.cycle_sort()
            elif key in ("p", "P", " "):
                self._paused = not self._paused

    def _wait_for_quit(self) -> None:
        while not self._quit:
            time.sleep(0.05)
            before = self.model.sort
            self._poll_keys()
            if self.model.sort != before and self.final is not None:
                self.final = self.snapshot(finished=True)
                self._show(self.final)


def print_summary(console: Console, watch: Watch, title: str = "mostool watch",
                  top: int = 10) -> None:
    """The table printed at exit (plain text when the console is no terminal)."""
    snap = watch.final or watch.snapshot(finished=True)
    console.print(render_summary(snap, watch.model.top_flows(top), title=title))


# -- terminal plumbing ----------------------------------------------------------------------------


@contextlib.contextmanager
def _cbreak(stream: IO[str] | None) -> Iterator[None]:
    """Single-key input from ``stream`` (a terminal) for the duration; no-op otherwise."""
    if stream is None:
        yield
        return
    try:
        import termios
        import tty
    except ImportError:
        yield
        return
    try:
        fd = stream.fileno()
        saved = termios.tcgetattr(fd)
    except (OSError, ValueError, AttributeError, termios.error):
        yield
        return
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _read_keys(stream: IO[str] | None) -> str:
    if stream is None:
        return ""
    try:
        import select
        fd = stream.fileno()
        ready, _, _ = select.select([fd], [], [], 0)
        if not ready:
            return ""
        return os.read(fd, 64).decode(errors="replace")
    except (OSError, ValueError, AttributeError):
        return ""


def stdin_keys() -> IO[str] | None:
    """stdin when it is a terminal (keys can be read), else None."""
    try:
        return sys.stdin if sys.stdin is not None and sys.stdin.isatty() else None
    except (ValueError, AttributeError):
        return None
