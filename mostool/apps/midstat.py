"""midstat: the connection table of mOS's ``samples/midstat``, in packet time.

mOS's midstat keeps the connections it sees (ON_CONN_START), forgets them when they end
(ON_CONN_END) and prints, every second, each one's client and server address and the state of
both emulated stacks. This port does the same from a Monitor timer, so a replay prints the table
as the capture's own clock passes each second; it prints a table only when it changed (mOS
prints one every second regardless), and at the end a line per connection with how it ended.

    mostool run --app midstat -r capture.pcap
    mostool watch --app midstat -r capture.pcap
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import IO, Any

import mostool as mos
from mostool.text import columns

__all__ = ["setup", "Midstat"]

HEADER = ["Proto", "Client Address", "Client State", "Server Address", "Server State"]


class Midstat:
    def __init__(self, mon: mos.Monitor, interval: float = 1.0,
                 out: IO[str] | None = None) -> None:
        self.mon = mon
        self.interval = interval
        self.out = out
        self.flows: dict[int, mos.Flow] = {}
        self.ended: list[tuple[int, str, str, str, str, str]] = []
        self.state_changes = 0
        self._first: float | None = None
        self._last_table: list[list[str]] = []
        self.tables = 0
        sock = mon.socket(mos.MONITOR_STREAM)
        sock.on(mos.ON_CONN_START, mos.HK_SND, self.created)
        sock.on(mos.ON_TCP_STATE_CHANGE, mos.HK_SND, self.changed)
        sock.on(mos.ON_TCP_STATE_CHANGE, mos.HK_RCV, self.changed)
        sock.on(mos.ON_CONN_END, mos.HK_SND, self.destroyed)
        mon.settimer(interval, self.tick)

    def _print(self, line: str) -> None:
        print(line, file=self.out or sys.stdout)

    # -- callbacks ----------------------------------------------------------------------------

    def created(self, flow: mos.Flow, side: mos.Side, event: mos.Event) -> None:
        self.flows[flow.id] = flow
        if self._first is None:
            self._first = self.mon.now

    def changed(self, flow: mos.Flow, side: mos.Side, event: mos.Event) -> None:
        self.state_changes += 1

    def destroyed(self, flow: mos.Flow, side: mos.Side, event: Any) -> None:
        if self.flows.pop(flow.id, None) is None:
            return
        self.ended.append((flow.id, flow.client, flow.state(mos.CLI).name, flow.server,
                           flow.state(mos.SVR).name, event.reason))

    def tick(self, timer_id: int) -> None:
        rows = [["tcp", f.client, f.state(mos.CLI).name, f.server, f.state(mos.SVR).name]
                for f in self.flows.values()]
        if rows and rows != self._last_table:
            first = self._first if self._first is not None else self.mon.now
            self._print(f"-- {len(rows)} connection(s) at +{self.mon.now - first:.3f}s")
            for line in columns([HEADER, *rows], "<<<<<", 0, (6, 24, 14, 24, 14)):
                self._print(line)
            self.tables += 1
        self._last_table = rows
        self.mon.settimer(self.interval, self.tick)

    # -- at the end ---------------------------------------------------------------------------

    def report(self) -> None:
        reasons: dict[str, int] = {}
        for *_, reason in self.ended:
            reasons[reason] = reasons.get(reason, 0) + 1
        how = ", ".join(f"{r} {n}" for r, n in sorted(reasons.items()))
        self._print(f"midstat: {len(self.ended)} connection(s) ({how or 'none'}), "
                    f"{self.state_changes} state changes, {self.tables} table(s) printed")
        rows = [[f"#{fid}", client, cstate, server, sstate, reason]
                for fid, client, cstate, server, sstate, reason in self.ended]
        for line in columns(rows, "<<<<<<", 0, (6, 24, 13, 24, 13, 0)):
            self._print("  " + line)


def setup(mon: mos.Monitor, interval: float = 1.0,
          out: IO[str] | None = None) -> Callable[[], None]:
    return Midstat(mon, interval, out).report
