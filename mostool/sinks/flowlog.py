"""Flow records in order of each flow's first packet, as flows end (jsonl, csv)."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from mostool.summary import FlowSummary

if TYPE_CHECKING:
    from mostool.monitor import Monitor
    from mostool.stack.connection import Connection

__all__ = ["FlowLog", "CSV_COLUMNS", "flatten", "tunnel_kinds"]

_DIRECTION_KEYS = ("packets", "payload_bytes", "bytes", "sha256", "gaps", "gap_bytes", "rexmit",
                   "overlap_conflicts", "bad_checksums")
CSV_COLUMNS = (["id", "client", "server", "first_packet", "start", "end", "end_reason",
                "client_state", "server_state", "midstream", "duration", "orig_bytes",
                "resp_bytes", "missed_bytes", "conn_state", "history"]
               + [f"c2s_{k}" for k in _DIRECTION_KEYS] + [f"s2c_{k}" for k in _DIRECTION_KEYS]
               + ["tunnel"])


def tunnel_kinds(record: dict[str, Any]) -> str:
    """How a flow was carried, in one cell: its tunnels' kinds, outermost first, joined by
    "/" ("gre/erspan2/vxlan"); "" for a plain flow."""
    return "/".join(str(hop["kind"]) for hop in record.get("tunnel", ()))


def flatten(record: dict[str, Any]) -> dict[str, Any]:
    flat = {k: v for k, v in record.items() if k not in ("c2s", "s2c")}
    flat["tunnel"] = tunnel_kinds(record)
    for direction in ("c2s", "s2c"):
        for k, v in record[direction].items():
            flat[f"{direction}_{k}"] = v
    return flat


def _json_line(conn: FlowSummary) -> str:
    return conn.record_json() + "\n"


class FlowLog:
    """Collects flow records as flows end and writes them in first-packet order.

    A record waits only while a flow that started earlier is still open.
    """

    def __init__(self, emit: Callable[[dict[str, Any]], None]) -> None:
        self._emit_record = emit
        # what a flow's end keeps until its turn, and what writes it then: its record dict
        # and ``emit``, or, for jsonl (FlowLog.jsonl), its line and the file's write
        self._encode: Callable[[FlowSummary], Any] = FlowSummary.record
        self._emit: Callable[[Any], Any] = emit
        self._pending: dict[int, Any] = {}
        self._next = 1
        self.count = 0

    @classmethod
    def jsonl(cls, out: IO[str]) -> FlowLog:
        """JSON lines on ``out``: each flow's line formatted straight from the connection
        (FlowSummary.record_json, the bytes json.dumps gives for its record)."""
        log = cls(cls.jsonl_writer(out))
        log._encode = _json_line
        log._emit = out.write
        return log

    def watch(self, mon: Monitor) -> None:
        """Log every flow ``mon`` ends (``flow_ended`` as its ``on_flow_end`` hook). JSON lines
        are formatted from the engine's record of the flow as it ends
        (``Monitor.on_connection_end``): no FlowSummary and fewer calls per flow, the same
        lines."""
        if self._encode is _json_line:
            mon.on_connection_end(self._connection_ended)
        else:
            mon.on_flow_end(self.flow_ended)

    def flow_ended(self, conn: FlowSummary) -> None:
        self._put(conn.id, self._encode(conn))

    def _connection_ended(self, conn: Connection) -> None:
        # flow_ended for jsonl with _json_line inlined: FlowSummary.record_json is the
        # connection's record_json
        self._put(conn.id, conn.record_json() + "\n")

    def _put(self, flow_id: int, line: str) -> None:
        """Flow ``flow_id``'s line, written once every flow before it has been (in id order)."""
        pending = self._pending
        pending[flow_id] = line
        while self._next in pending:
            self._emit(pending.pop(self._next))
            self._next += 1
            self.count += 1

    def write(self, record: dict[str, Any]) -> None:
        """Write a record now (records that come already in order, e.g. merged from workers)."""
        self._emit_record(record)
        self.count += 1

    def close(self) -> None:
        for key in sorted(self._pending):
            self._emit(self._pending.pop(key))
            self.count += 1

    @staticmethod
    def jsonl_writer(out: IO[str]) -> Callable[[dict[str, Any]], None]:
        def write(record: dict[str, Any]) -> None:
            # the default separators are (", ", ": "); passing none keeps json's cached encoder
            out.write(json.dumps(record) + "\n")
        return write

    @staticmethod
    def csv_writer(out: IO[str]) -> Callable[[dict[str, Any]], None]:
        writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()

        def write(record: dict[str, Any]) -> None:
            # booleans as data tools read them (true/false), not Python's True/False
            writer.writerow({k: ("true" if v else "false") if isinstance(v, bool) else v
                             for k, v in flatten(record).items()})
        return write
