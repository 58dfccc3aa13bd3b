"""Timers on packet time: user timers (settimer / cancel_timer), idle timeouts, ticks.

Decided semantics, asserted here:

* The clock is the packet timestamp. A timer fires when the clock *passes* its deadline: before
  the first frame (or tick) whose timestamp is later, with ``mon.now`` set to the deadline.
* A timer set before the first frame counts from the first frame's timestamp.
* When the source ends, ``finish()`` ends every open flow (reason "eof") and drops the timers
  still pending: nothing fires past the end of the capture, not even in a later ``run``.
* An idle flow ends (ON_TIMEOUT, then ON_CONN_END "timeout") exactly when the clock passes
  ``last_ts + idle_timeout``; a packet at exactly that time still belongs to the flow.
"""

from __future__ import annotations

import errno
from typing import Any

import pytest
from builders import CLI, SVR, Frame, Scenario

import mostool as mos
from mostool.sources import TICK, MemorySource


def spaced(n: int, gap: float = 1.0) -> tuple[Scenario, list[Frame]]:
    """A connection whose frames are ``gap`` seconds apart."""
    sc = Scenario(step=gap)
    sc.handshake()
    for i in range(n):
        sc.send(CLI, b"x%d" % i)
    return sc, sc.frames


class Clock:
    """Records, in order, timer firings and packets (as PKT_IN at HK_SND)."""

    def __init__(self, mon: mos.Monitor) -> None:
        self.mon = mon
        self.log: list[tuple[str, Any, float]] = []
        mon.socket().on(mos.ON_PKT_IN, mos.HK_SND, self.packet)

    def packet(self, flow: mos.Flow, side: mos.Side, event: Any) -> None:
        self.log.append(("pkt", self.mon.engine.packet_number, self.mon.now))

    def timer(self, name: str) -> Any:
        def fire(timer_id: int) -> None:
            self.log.append(("timer", name, self.mon.now))
        return fire


def test_timers_fire_in_deadline_order_on_packet_time() -> None:
    sc, frames = spaced(3)                        # frames at t0 .. t0+5
    t0 = sc.t0
    mon = mos.Monitor()
    clock = Clock(mon)
    mon.settimer(2.5, clock.timer("b"))           # set before the run: from the first frame
    mon.settimer(0.5, clock.timer("a"))
    mon.settimer(2.5, clock.timer("b2"))          # same deadline: in the order they were set
    mon.run(frames)
    assert clock.log == [
        ("pkt", 1, t0), ("timer", "a", t0 + 0.5), ("pkt", 2, t0 + 1), ("pkt", 3, t0 + 2),
        ("timer", "b", t0 + 2.5), ("timer", "b2", t0 + 2.5), ("pkt", 4, t0 + 3),
        ("pkt", 5, t0 + 4), ("pkt", 6, t0 + 5),
    ]


def test_a_timer_due_exactly_at_a_packet_fires_after_it() -> None:
    sc, frames = spaced(2)
    mon = mos.Monitor()
    clock = Clock(mon)
    mon.settimer(2.0, clock.timer("t"))
    mon.run(frames)
    names = [entry[1] for entry in clock.log]
    assert names == [1, 2, 3, "t", 4, 5]          # the clock passes t0+2 only at packet 4
    assert clock.log[3][2] == sc.t0 + 2.0


def test_timer_set_from_a_callback() -> None:
    sc, frames = spaced(3)
    mon = mos.Monitor()
    clock = Clock(mon)
    sock = mon.socket()
    ids: list[int] = []

    def data(flow: mos.Flow, side: mos.Side, event: Any) -> None:
        if event.offset == 0:
            ids.append(mon.settimer(1.5, clock.timer("from-callback")))
    sock.on(mos.ON_CONN_NEW_DATA, callback=data)

    mon.run(frames)
    timers = [e for e in clock.log if e[0] == "timer"]
    assert timers == [("timer", "from-callback", frames[3][0] + 1.5)]
    assert ids == [ids[0]] and ids[0] >= 1


def test_periodic_timer_by_rearming() -> None:
    sc, frames = spaced(6)                        # t0 .. t0+8
    mon = mos.Monitor()
    ticks: list[float] = []

    def every_two_seconds(timer_id: int) -> None:
        ticks.append(mon.now)
        mon.settimer(2.0, every_two_seconds)

    mon.settimer(2.0, every_two_seconds)
    mon.run(frames)
    t0 = sc.t0
    assert ticks == [t0 + 2.0, t0 + 4.0, t0 + 6.0]   # t0+8 is the last packet: never passed
    assert mon.engine.next_deadline() is None         # the re-armed one was dropped at the end


def test_cancel_timer() -> None:
    sc, frames = spaced(4)
    mon = mos.Monitor()
    fired: list[str] = []
    keep = mon.settimer(1.5, lambda _t: fired.append("keep"))
    gone = mon.settimer(2.5, lambda _t: fired.append("gone"))
    assert keep != gone
    sock = mon.socket()
    sock.on(mos.ON_CONN_START, mos.HK_SND, lambda f, s, e: mon.cancel_timer(gone))
    mon.run(frames)
    assert fired == ["keep"]


def test_timers_due_after_the_last_packet_never_fire() -> None:
    sc, frames = spaced(1)
    mon = mos.Monitor()
    fired: list[float] = []
    ends: list[tuple[float, str]] = []
    mon.socket().on(mos.ON_CONN_END, callback=lambda f, s, e: ends.append((mon.now, e.reason)))
    mon.settimer(60.0, lambda _t: fired.append(mon.now))
    mon.run(frames)
    assert fired == []
    assert ends == [(frames[-1][0], "eof")]       # the flows end at the last packet's time
    assert mon.engine.next_deadline() is None
    # a later run (another source) does not revive them
    later = Scenario("10.0.0.5:1000", "10.0.0.2:80", t0=sc.t0 + 3600)
    later.handshake()
    mon.run(later.frames)
    assert fired == []


def test_ticks_move_the_clock_without_packets() -> None:
    sc, frames = spaced(1)
    t_last = frames[-1][0]
    mon = mos.Monitor()
    fired: list[float] = []
    mon.settimer(10.0, lambda _t: fired.append(mon.now))
    source = MemorySource(frames + [(t_last + 5, TICK, b""), (t_last + 20, TICK, b"")])
    mon.run(source)
    assert fired == [sc.t0 + 10.0]


def test_timer_errors_and_failures() -> None:
    mon = mos.Monitor()
    with pytest.raises(mos.MosError) as exc:
        mon.settimer(-1.0, lambda _t: None)
    assert exc.value.errno == errno.EINVAL
    with pytest.raises(mos.MosError) as exc:
        mon.settimer(1.0, "not callable")  # type: ignore[arg-type]
    assert exc.value.errno == errno.EINVAL

    def boom(timer_id: int) -> None:
        raise RuntimeError("timer broke")

    _, frames = spaced(3)
    mon.settimer(1.5, boom)
    after: list[float] = []
    mon.settimer(2.5, lambda _t: after.append(mon.now))
    mon.run(frames)
    assert len(mon.failures) == 1
    assert mon.failures[0].where == "timer"
    assert "RuntimeError: timer broke" in str(mon.failures[0])
    assert len(after) == 1                        # the run went on


# --------------------------------------------------------------------------------------------
# idle timeouts
# --------------------------------------------------------------------------------------------


def _idle(gap: float, timeout: float = 30.0) -> tuple[list[tuple[Any, ...]], list[str], float]:
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"first")
    last = sc.frames[-1][0]
    sc.advance(gap - sc.step)                     # the next frame is exactly `gap` later
    sc.send(SVR, b"second")
    assert sc.frames[-1][0] == pytest.approx(last + gap)
    mon = mos.Monitor(mos.MonitorConfig(idle_timeout=timeout))
    sock = mon.socket()
    log: list[tuple[Any, ...]] = []
    sock.on(mos.ON_TIMEOUT, callback=lambda f, s, e: log.append(
        ("timeout", s.name, e.idle, mon.now)))
    sock.on(mos.ON_CONN_END, callback=lambda f, s, e: log.append(("end", e.reason, mon.now)))
    sock.on(mos.ON_ORPHAN, callback=lambda f, s, e: log.append(("orphan", e.reason)))
    reasons: list[str] = []
    mon.on_flow_end(lambda conn: reasons.append(conn.end_reason))
    frames = sc.frames[:-1] + [(last + gap,) + sc.frames[-1][1:]]
    mon.run(frames)
    return log, reasons, last


def test_idle_timeout_fires_when_the_clock_passes_the_deadline() -> None:
    log, reasons, last = _idle(gap=45.0)
    assert log == [("timeout", "BOTH", 30.0, last + 30.0), ("end", "timeout", last + 30.0),
                   ("orphan", "no_flow")]
    assert reasons == ["timeout"]


def test_a_packet_exactly_at_the_deadline_keeps_the_flow() -> None:
    log, reasons, last = _idle(gap=30.0)
    assert log == [("end", "eof", last + 30.0)]
    assert reasons == ["eof"]


def test_idle_timeout_is_measured_from_the_last_packet() -> None:
    sc = Scenario()
    sc.handshake()
    for _ in range(5):
        sc.advance(20.0)                          # 20 s apart: each gap below the timeout
        sc.send(CLI, b"keepalive-ish")
    last = sc.frames[-1][0]
    mon = mos.Monitor(mos.MonitorConfig(idle_timeout=30.0))
    ends: list[str] = []
    mon.socket().on(mos.ON_CONN_END, callback=lambda f, s, e: ends.append(e.reason))
    mon.run(sc.frames + [(last + 100.0, TICK, b"")])
    assert ends == ["timeout"]
    assert mon.engine.counters["timeouts"] == 1


def test_no_idle_timeout_when_disabled() -> None:
    sc = Scenario()
    sc.handshake()
    sc.advance(10_000.0)
    sc.send(CLI, b"much later")
    mon = mos.Monitor(mos.MonitorConfig(idle_timeout=None))
    ends: list[str] = []
    mon.socket().on(mos.ON_CONN_END, callback=lambda f, s, e: ends.append(e.reason))
    mon.run(sc.frames)
    assert ends == ["eof"]


def test_idle_and_user_timers_interleave_in_time_order() -> None:
    sc = Scenario()
    sc.handshake()
    last = sc.frames[-1][0]
    mon = mos.Monitor(mos.MonitorConfig(idle_timeout=10.0))
    log: list[tuple[str, float]] = []
    mon.socket().on(mos.ON_TIMEOUT, callback=lambda f, s, e: log.append(("idle", mon.now)))
    sock = mon.socket()

    def start(flow: mos.Flow, side: mos.Side, event: Any) -> None:
        mon.settimer(5.0, lambda _t: log.append(("user5", mon.now)))
        mon.settimer(15.0, lambda _t: log.append(("user15", mon.now)))
    sock.on(mos.ON_CONN_START, mos.HK_SND, callback=start)

    mon.run(sc.frames + [(last + 60.0, TICK, b"")])
    t0 = sc.t0
    assert log == [("user5", t0 + 5.0), ("idle", last + 10.0), ("user15", t0 + 15.0)]


# --------------------------------------------------------------------------------------------
# the deadline structure itself (mostool/stack/timers.py)
# --------------------------------------------------------------------------------------------


class _Conn:
    """What Timers reads of a flow: its id, last packet time and whether it ended."""

    def __init__(self, conn_id: int, last_ts: float) -> None:
        self.id = conn_id
        self.last_ts = last_ts
        self.ended = False


def test_timers_pop_in_deadline_order_and_keep_due_a_lower_bound() -> None:
    from mostool.stack.timers import IDLE, TIME_WAIT, Timers
    t = Timers(idle_timeout=10.0)
    assert t.due == float("inf") and t.next_deadline() is None
    late = t.add(5.0, lambda _i: None)
    gone = t.add(2.0, lambda _i: None)
    t.cancel(gone)
    assert t.due == 2.0                         # a cancelled timer still bounds due: it is lazy
    a, b = _Conn(1, 0.0), _Conn(2, 1.0)
    t.watch_idle(a, 0.0)
    t.watch_idle(b, 1.0)
    t.time_wait(b, 3.0)
    assert t.next_deadline() == 2.0
    a.last_ts = 4.0                             # a saw packets since: pushed again, not due
    popped = []
    while (item := t.pop_expired(12.0)) is not None:
        popped.append(item[:2])
    assert popped == [(3.0, TIME_WAIT), (5.0, late), (11.0, IDLE)]   # b idles out at 11
    assert t.due == 14.0                        # a: 4 + 10, exact again once nothing is due


def test_timers_longest_idle_skips_ended_and_refreshed_flows() -> None:
    from mostool.stack.timers import Timers
    t = Timers(idle_timeout=None)
    flows = [_Conn(i, float(i)) for i in range(1, 4)]
    for c in flows:
        t.watch_idle(c, c.last_ts)
    flows[0].ended = True
    flows[1].last_ts = 9.0
    assert t.longest_idle() is flows[2]
    assert t.longest_idle() is flows[1]
    assert t.longest_idle() is None
