"""early_stop: take what you need from a flow, then stop monitoring it.

This app wants one thing per connection: the first HTTP request line. As soon as it has it -
or as soon as the client's first bytes show the flow is not HTTP - it calls
``flow.stop_monitoring()``. The engine then ends the flow for this app (ON_CONN_END with reason
"stopped") and skips the rest of its packets, only watching for the FIN or RST that closes it:
no stack updates, no reassembly, no events. The report says how many packets that saved.

    mostool run --app early_stop -r capture.pcap
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

import mostool as mos
from mostool.apps.http import METHODS
from mostool.text import printable

if TYPE_CHECKING:
    from mostool.summary import FlowSummary

__all__ = ["setup", "EarlyStop"]

MAX_LINE = 8192
_NOT_TCP = frozenset({"non_ip", "non_tcp", "malformed", "unknown_linktype"})


def first_request_line(flow: Any, side: mos.Side, event: Any) -> bool:
    """UDE filter: the client's first line is complete (and looks like HTTP)."""
    if side != mos.SVR:
        return False
    head = flow.ppeek(mos.SVR, 0, MAX_LINE)
    return b"\r\n" in head and head.split(b" ", 1)[0] in METHODS


REQUEST_LINE = mos.define_event(mos.ON_CONN_NEW_DATA, first_request_line,
                                name="first_request_line")


class EarlyStop:
    def __init__(self, mon: mos.Monitor, out: IO[str] | None = None) -> None:
        self.mon = mon
        self.out = out
        self.lines: list[tuple[int, str, str, str]] = []
        self.not_http: list[int] = []
        self.stopped: set[int] = set()
        self.flows = 0
        self.packets_tracked = 0
        sock = mon.socket(mos.MONITOR_STREAM)
        sock.on(REQUEST_LINE, callback=self.request_line)
        sock.on(mos.ON_CONN_NEW_DATA, callback=self.first_bytes)
        sock.on(mos.ON_ORPHAN, callback=self.orphan)
        mon.on_flow_end(self.flow_ended)
        self.tcp_orphans = 0

    def request_line(self, flow: Any, side: mos.Side, event: Any) -> None:
        line = flow.ppeek(mos.SVR, 0, MAX_LINE).split(b"\r\n", 1)[0]
        self.lines.append((flow.id, flow.client, flow.server, line.decode("latin-1")))
        print(f"#{flow.id} {flow.client} > {flow.server}  {printable(line, 512)}",
              file=self.out or sys.stdout)
        self._stop(flow)

    def first_bytes(self, flow: Any, side: mos.Side, event: Any) -> None:
        """Stop flows that are not HTTP: the client's first bytes are no method, or the server
        spoke first."""
        if flow.id in self.stopped:
            return
        if side == mos.SVR:
            first = flow.ppeek(mos.SVR, 0, 8)
            if len(first) < 8 and b" " not in first:
                return                          # too few bytes to tell yet
            if first.split(b" ", 1)[0] in METHODS:
                return                          # HTTP: wait for the request line (the UDE)
        elif flow.to_server.bytes_seen:
            return                              # server bytes after the client's: decided
        self.not_http.append(flow.id)
        self._stop(flow)

    def _stop(self, flow: Any) -> None:
        if flow.id not in self.stopped:
            self.stopped.add(flow.id)
            flow.stop_monitoring()

    def orphan(self, flow: Any, side: mos.Side, event: Any) -> None:
        if event.reason not in _NOT_TCP:
            self.tcp_orphans += 1

    def flow_ended(self, flow: FlowSummary) -> None:
        self.flows += 1
        self.packets_tracked += flow.packets

    def skipped_packets(self) -> int:
        """TCP packets of tracked flows the engine skipped because monitoring had stopped:
        every TCP packet, minus the orphans, minus those the flows' stacks processed."""
        tcp = self.mon.counters["tcp_packets"]
        return tcp - self.tcp_orphans - self.packets_tracked

    def report(self) -> None:
        out = self.out or sys.stdout
        skipped = self.skipped_packets()
        total = self.mon.counters["tcp_packets"]
        print(f"early_stop: {len(self.lines)} request line(s), {len(self.not_http)} non-HTTP "
              f"flow(s); stopped {len(self.stopped)} of {self.flows} flow(s) early; "
              f"{skipped} of {total} TCP packets skipped "
              f"({100.0 * skipped / total if total else 0.0:.1f}%)", file=out)


def setup(mon: mos.Monitor, out: IO[str] | None = None) -> Callable[[], None]:
    return EarlyStop(mon, out).report
