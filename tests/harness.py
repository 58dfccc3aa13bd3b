"""The observing half of the scenario builder (h11's ``ConnectionPair`` in spirit).

``Observed`` wires one Monitor to a recorder: a MONITOR_STREAM listener with one callback on
every built-in event at every hook it allows (or the events given), and a flow-end hook. Feed it
both endpoints' frames (``feed`` one by one, or ``run`` as a capture); it keeps

* ``log``: every event as (packet number, hook, side, event name, details), in order, with the
  joint state of both stacks as the callback saw it (``states``) and the flow id (``flow_ids``);
* ``hook_states(hook)``: the (CLI, SVR) states as ON_PKT_IN at that hook saw each packet;
* ``flows``: the flow handles in order of start, ``records``: each ended flow's record;
* ``feed`` returns what the newest flow's stacks and streams look like after each frame
  (``Joint``: both states, each side's in-order point, delivered bytes, gaps and byte ranges
  held), so a test can assert the whole joint state step by step.

``at(packet)`` and ``of(name)`` select from the log. Tests that need fewer subscriptions (the
fast path, or events an extra subscription would change) pass ``events=``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from builders import Frame

import mostool as mos

Rec = tuple[int, str, str, str, dict[str, Any]]   # packet, hook, side, event, details
States = tuple[str, str]


class Joint(NamedTuple):
    """Both stacks of one flow after a frame: states, and per receiving side (CLI, SVR) the
    in-order point, delivered bytes, gaps (offset, length) and byte ranges held."""

    states: States
    nxt: tuple[int, int]
    delivered: tuple[int, int]
    gaps: tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]
    held: tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]


def states_of(flow: mos.Flow) -> States:
    return (flow.state(mos.CLI).name, flow.state(mos.SVR).name)


def joint_of(flow: mos.Flow) -> Joint:
    conn = flow.summary                     # (the engine's state, read as a test may)
    s0, s1 = conn.streams
    return Joint(states_of(flow), (s0.nxt, s1.nxt), (s0.delivered, s1.delivered),
                 (tuple(s0.gaps), tuple(s1.gaps)),
                 (tuple(s0.fragments()), tuple(s1.fragments())))


class Observed:
    """A Monitor and everything its listener saw; see the module doc."""

    def __init__(self, config: mos.MonitorConfig | None = None, *,
                 events: Iterable[tuple[mos.EventType, mos.Hook]] | None = None,
                 mon: mos.Monitor | None = None, sock: mos.MonitorSocket | None = None) -> None:
        self.mon = mon if mon is not None else mos.Monitor(config)
        self.sock = sock if sock is not None else self.mon.socket()
        self.log: list[Rec] = []
        self.flow_ids: list[int] = []
        self.states: list[States | None] = []
        self.flows: list[mos.Flow] = []
        self.records: list[dict[str, Any]] = []
        self._at_hook: dict[tuple[int, str], States] = {}
        wanted = list(events) if events is not None else [
            (etype, hook) for etype in mos.BUILTIN_EVENTS for hook in etype.hooks]
        for etype, hook in wanted:
            self.sock.on(etype, hook, self)
        self.mon.on_flow_end(lambda summary: self.records.append(summary.record()))

    def __call__(self, flow: Any, side: mos.Side, event: mos.Event) -> None:
        packet = self.mon.packet_number
        is_flow = isinstance(flow, mos.Flow)
        states = states_of(flow) if is_flow else None
        self.log.append((packet, event.hook.name, side.name, event.name, event.details()))
        self.flow_ids.append(flow.id)
        self.states.append(states)
        if is_flow:
            if flow not in self.flows:
                self.flows.append(flow)
            if event.name == "ON_PKT_IN" and states is not None:
                self._at_hook[(packet, event.hook.name)] = states

    # -- feeding ---------------------------------------------------------------------------------

    def feed(self, frames: Iterable[Frame]) -> list[States | None]:
        """Frames one by one; the newest flow's (CLI, SVR) states after each (None before any
        flow exists)."""
        after: list[States | None] = []
        for ts, linktype, data, _wire in frames:
            self.mon.feed(ts, linktype, data)
            after.append(states_of(self.flows[-1]) if self.flows else None)
        return after

    def step(self, frame: Frame) -> tuple[list[Rec], Joint | None]:
        """One frame: the events it raised and the newest flow's joint state after it."""
        before = len(self.log)
        self.feed([frame])
        return self.log[before:], joint_of(self.flows[-1]) if self.flows else None

    def run(self, frames: Iterable[Any]) -> dict[str, Any]:
        """The frames as one capture, through ``Monitor.run`` (flows end with "eof")."""
        return self.mon.run(list(frames))

    def finish(self) -> None:
        self.mon.close()

    # -- reading ---------------------------------------------------------------------------------

    def at(self, packet: int) -> list[tuple[str, str, str]]:
        return [(h, s, e) for p, h, s, e, _ in self.log if p == packet]

    def of(self, name: str) -> list[Rec]:
        return [r for r in self.log if r[3] == name]

    def without(self, *names: str) -> list[Rec]:
        return [r for r in self.log if r[3] not in names]

    def hook_states(self, hook: str) -> list[States | None]:
        n = self.mon.packet_number
        return [self._at_hook.get((i, hook)) for i in range(1, n + 1)]
