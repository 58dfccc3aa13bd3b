"""rexmit: a retransmission report per flow.

Counts ON_REXMIT (a segment overlapping bytes its receiver already had, and repeated SYN,
SYN/ACK and FIN) per direction, with the bytes retransmitted, and prints at the end one line per
flow that had any, then the totals.

    mostool run --app rexmit -r capture.pcap
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import IO, Any

import mostool as mos
from mostool.text import columns

__all__ = ["setup", "RexmitReport"]


class RexmitReport:
    def __init__(self, mon: mos.Monitor, out: IO[str] | None = None) -> None:
        self.out = out
        # flow id -> [client, server, c2s count, c2s bytes, s2c count, s2c bytes, c2s pkts,
        #             s2c pkts, end reason]
        self.flows: dict[int, list[Any]] = {}
        self.total_flows = 0
        sock = mon.socket(mos.MONITOR_STREAM)
        sock.on(mos.ON_REXMIT, callback=self.rexmit)
        sock.on(mos.ON_CONN_END, mos.HK_RCV, self.ended)

    def rexmit(self, flow: mos.Flow, side: mos.Side, event: Any) -> None:
        rec = flow.uctx
        if rec is None:
            rec = flow.uctx = [flow.client, flow.server, 0, 0, 0, 0, 0, 0, ""]
            self.flows[flow.id] = rec
        # the receiving side is in context: SVR received client->server bytes
        i = 2 if side == mos.SVR else 4
        rec[i] += 1
        rec[i + 1] += event.length

    def ended(self, flow: mos.Flow, side: mos.Side, event: Any) -> None:
        self.total_flows += 1
        rec = flow.uctx
        if rec is not None:
            stats = flow.stats()
            rec[6] = stats["c2s"]["packets"]
            rec[7] = stats["s2c"]["packets"]
            rec[8] = event.reason

    def report(self) -> None:
        p = self.out or sys.stdout
        rows = [["flow", "client", "server", "c2s rexmit", "bytes", "s2c rexmit", "bytes",
                 "end"]]
        tot = [0, 0, 0, 0]
        for fid in sorted(self.flows):
            client, server, cn, cb, sn, sb, cp, sp, reason = self.flows[fid]
            tot = [tot[0] + cn, tot[1] + cb, tot[2] + sn, tot[3] + sb]
            rows.append([str(fid), client, server, _pct(cn, cp), str(cb), _pct(sn, sp),
                         str(sb), reason or "open"])
        for line in columns(rows, "><<>>>><"):
            print(line, file=p)
        print(f"rexmit: {tot[0] + tot[2]} retransmission(s) ({tot[1] + tot[3]} bytes) in "
              f"{len(self.flows)} of {self.total_flows} flow(s); client->server {tot[0]} "
              f"({tot[1]} bytes), server->client {tot[2]} ({tot[3]} bytes)", file=p)


def _pct(n: int, packets: int) -> str:
    """'3 (2.1%)' of the direction's packets."""
    return f"{n} ({100.0 * n / packets:.1f}%)" if packets else str(n)


def setup(mon: mos.Monitor, out: IO[str] | None = None) -> Callable[[], None]:
    return RexmitReport(mon, out).report
