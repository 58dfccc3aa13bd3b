"""Both endpoints' frames in, both stacks and every event out: the test harness in the spirit of
h11's ``ConnectionPair``.

``Pair(config, **filters)`` opens a monitor with one stream socket (its ``bind_filter`` given
``filters``) subscribed to every built-in event at every hook it allows, and keeps:

* ``log``: (packet number, hook, side, event name, details) per delivered event, with
  ``flow_ids`` and ``states`` (both stacks as the callback saw them, or None for an orphan)
  beside it;
* ``at_hook``: both stacks as ON_PKT_IN saw them at HK_SND and HK_RCV, per packet;
* ``flows``: the Flow handles in order of first event; ``records``: each ended flow's record.

Feed it a ``builders.Scenario``'s frames with ``feed`` (frame by frame, returning the newest
flow's states after each) or ``run`` (the whole list through ``Monitor.run``).
"""

from __future__ import annotations

from typing import Any

from builders import Frame

import mostool as mos

Rec = tuple[int, str, str, str, dict[str, Any]]   # packet, hook, side, event, details
States = tuple[str, str]


def states(flow: mos.Flow) -> States:
    return (flow.state(mos.CLI).name, flow.state(mos.SVR).name)


class Pair:
    """A monitor recording everything both endpoints' frames make it raise."""

    def __init__(self, config: mos.MonitorConfig | None = None, **filters: str) -> None:
        self.mon = mos.Monitor(config)
        self.sock = self.mon.socket()
        if filters:
            self.sock.bind_filter(**filters)
        self.log: list[Rec] = []
        self.flow_ids: list[int] = []
        self.states: list[States | None] = []
        self.at_hook: dict[tuple[int, str], States] = {}
        self.flows: list[mos.Flow] = []
        self.records: list[dict[str, Any]] = []
        for etype in mos.BUILTIN_EVENTS:
            for hook in etype.hooks:
                self.sock.on(etype, hook, self._event)
        self.mon.on_flow_end(lambda flow: self.records.append(flow.record()))

    def _event(self, flow: Any, side: mos.Side, event: mos.Event) -> None:
        number = self.mon.packet_number
        now = states(flow) if isinstance(flow, mos.Flow) else None
        self.log.append((number, event.hook.name, side.name, event.name, event.details()))
        self.flow_ids.append(flow.id)
        self.states.append(now)
        if now is not None:
            if flow not in self.flows:
                self.flows.append(flow)
            if event.name == "ON_PKT_IN":
                self.at_hook[(number, event.hook.name)] = now

    # -- driving ------------------------------------------------------------------------------

    def feed(self, frames: list[Frame]) -> list[States | None]:
        """Frame by frame: the newest flow's states after each (None before any flow)."""
        after: list[States | None] = []
        for ts, linktype, data, _wire in frames:
            self.mon.feed(ts, linktype, data)
            after.append(states(self.flows[-1]) if self.flows else None)
        return after

    def run(self, frames: list[Frame]) -> None:
        """The whole list through Monitor.run (the flows end at the end of it)."""
        self.mon.run(frames)

    def finish(self) -> None:
        self.mon.close()

    # -- reading ------------------------------------------------------------------------------

    def at(self, packet: int) -> list[tuple[str, str, str]]:
        """(hook, side, event) of every event raised while handling ``packet``."""
        return [(h, s, e) for p, h, s, e, _ in self.log if p == packet]

    def of(self, name: str) -> list[Rec]:
        return [r for r in self.log if r[3] == name]

    def hook_states(self, hook: str) -> list[States | None]:
        """Both stacks as ON_PKT_IN saw them at ``hook``, per packet (None: no flow)."""
        return [self.at_hook.get((i, hook)) for i in range(1, self.mon.packet_number + 1)]
