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

__all__ = ["setup", "Midstat"]

HEADER = f"{'Proto':<6}{'Client Address':<24}{'Client State':<14}{'Server Address':<24}" \
         f"{'Server State':<14}"


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
        self._last_table: list[str] = []
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
        rows = [f"{'tcp':<6}{f.client:<24}{f.state(mos.CLI).name:<14}{f.server:<24}"
                f"{f.state(mos.SVR).name:<14}" for f in self.flows.values()]
        if rows and rows != self._last_table:
            first = self._first if self._first is not None else self.mon.now
            self._print(f"-- {len(rows)} connection(s) at +{self.mon.now - first:.3f}s")
            self._print(HEADER.rstrip())
            for row in rows:
                self._print(row.rstrip())
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
        for fid, client, cstate, server, sstate, reason in self.ended:
            self._print(f"  #{fid:<4} {client:<24}{cstate:<12} {server:<24}{sstate:<12} "
                        f"{reason}".rstrip())


def setup(mon: mos.Monitor, interval: float = 1.0,
          out: IO[str] | None = None) -> Callable[[], None]:
    return Midstat(mon, interval, out).report
