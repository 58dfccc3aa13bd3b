"""Packet time against one wild timestamp.

The engine's clock is the packets' timestamps: every timer (user timers, idle timeouts,
TIME_WAIT) that falls due before a frame fires first. Damaged files carry single frames
stamped years off (pcapplusplus ``pcapng-example``: a SYN/ACK 46 years after its SYN, the next
frame back on time); moving the clock there would expire every flow. So a frame more than
``max_jump`` seconds ahead of the clock (``MonitorConfig.max_jump``, never more than half the
idle timeout) is held, not handled, until the next frame or tick says what it was:

* the next one is back near the old clock (more than ``max_jump`` before the held stamp): the
  held frame was one wild timestamp. It is handled at the current clock (its flow gets ON_ERROR
  "wild_timestamp"; counted ``wild_timestamps``), and the clock never went there;
* otherwise the jump was real (a quiet spell in the capture): the held frame is handled at its
  own time, timers falling due first, and then the next one.

At the end of the input a held frame is handled at its own time. Backward steps never move the
clock back (they never did). The held frame keeps its packet number. While a frame is held the
in-place record reader hands every record to ``Engine.process`` (``Engine.inline_ok``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from mostool.stack.decode import TcpSegment

if TYPE_CHECKING:
    from mostool.stack.engine import Engine

__all__ = ["WildClock"]



class WildClock:
    """The frame held while a jump of the clock is unconfirmed (one per engine)."""

    __slots__ = ("max_jump", "held")

    def __init__(self, max_jump: float, idle_timeout: float | None) -> None:
        if idle_timeout:
            max_jump = min(max_jump, idle_timeout / 2)
        self.max_jump = max_jump if max_jump > 0 else math.inf
        # (timestamp, link type, frame, packet number) of the held frame
        self.held: tuple[float, int, bytes, int] | None = None

    def take(self, engine: Engine, ts: float, linktype: int, frame: bytes) -> bool:
        """A frame (``frame`` None: a tick) at ``ts``: settle what is held, then hold this
        one if it jumps. True when the caller must not handle it now."""
        if self.held is not None:
            self.settle(engine, ts)
        if ts > engine.now + self.max_jump and engine.clock_started:
            self.held = (ts, linktype, frame, engine.packet_number)
            return True
        return False

    def settle(self, engine: Engine, next_ts: float | None) -> None:
        """Handle the held frame: wild when ``next_ts`` is back near the old clock, at its own
        time otherwise (or when the input ended: ``next_ts`` None)."""
        held = self.held
        if held is None:
            return
        self.held = None
        ts, linktype, frame, number = held
        wild = next_ts is not None and next_ts < ts - self.max_jump
        current = engine.packet_number
        engine.packet_number = number
        if wild:
            engine.counts["wild_timestamps"] += 1
            conn = engine.route(engine.now, linktype, frame)
            if conn is not None and not conn.ended:
                seg = conn.last_seg
                if seg is not None and not isinstance(seg, TcpSegment):
                    # the frame just routed (Engine.route)
                    seg = engine.records.segment(conn)
                snd = 1 if isinstance(seg, TcpSegment) and seg.key != conn.key_c2s else 0
                engine.emitter.anomaly(conn, snd, "wild_timestamp",
                                       conn.stream(1 - snd).nxt, 0, snd)
        else:
            engine.route(ts, linktype, frame)
        engine.packet_number = current
