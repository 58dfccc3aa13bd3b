"""Flow records as Zeek's ``conn.log`` (TSV with Zeek's header), for zeek-cut, zat and friends.

The header is Zeek's ASCII writer's: ``#separator``, ``#set_separator``, ``#empty_field``,
``#unset_field``, ``#path``, ``#open``, ``#fields``, ``#types``; then one tab-separated line per
TCP connection and ``#close``. Fields Zeek would set and we cannot (``local_orig``,
``local_resp``, ``orig_ip_bytes``, ``resp_ip_bytes``, ``service``, ``tunnel_parents``) are
unset (``-``). As Zeek does, ``duration``, ``orig_bytes`` and ``resp_bytes`` are unset for a
connection of zero duration. ``#open``/``#close`` carry the capture's first and last packet
times (Zeek writes its wall clock), so the same capture gives the same file. ``uid`` is
derived from the flow's number and endpoints (stable across runs, not Zeek's random one).
"""

from __future__ import annotations

import datetime
import hashlib
from typing import IO, Any

__all__ = ["ZeekConnLog", "CONN_FIELDS", "CONN_TYPES", "split_endpoint"]

CONN_FIELDS = ("ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto",
               "service", "duration", "orig_bytes", "resp_bytes", "conn_state", "local_orig",
               "local_resp", "missed_bytes", "history", "orig_pkts", "orig_ip_bytes",
               "resp_pkts", "resp_ip_bytes", "tunnel_parents")
CONN_TYPES = ("time", "string", "addr", "port", "addr", "port", "enum", "string", "interval",
              "count", "count", "string", "bool", "bool", "count", "string", "count", "count",
              "count", "count", "set[string]")
UNSET = "-"
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def split_endpoint(endpoint: str) -> tuple[str, str]:
    """'10.0.0.1:80' or '[2001:db8::1]:80' -> (address, port)."""
    host, _, port = endpoint.rpartition(":")
    return host.strip("[]"), port


def _uid(record: dict[str, Any]) -> str:
    digest = hashlib.sha1(f"{record['id']} {record['client']} {record['server']} "
                          f"{record['start']!r}".encode()).digest()
    n = int.from_bytes(digest[:12], "big")
    chars = []
    for _ in range(17):
        n, r = divmod(n, 62)
        chars.append(_B62[r])
    return "C" + "".join(chars)


def _stamp(ts: float) -> str:
    try:
        return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d-%H-%M-%S")
    except (OverflowError, OSError, ValueError):
        return UNSET


class ZeekConnLog:
    """Writes records (``FlowSummary.record()`` dicts) to ``out`` as conn.log lines; the header
    goes out with the first record (or at ``close`` for an empty log)."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self._opened = False
        self._last = 0.0
        self.count = 0

    def _header(self, first_ts: float) -> None:
        self.out.write("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n"
                       f"#unset_field\t{UNSET}\n#path\tconn\n#open\t{_stamp(first_ts)}\n"
                       "#fields\t" + "\t".join(CONN_FIELDS) + "\n"
                       "#types\t" + "\t".join(CONN_TYPES) + "\n")
        self._opened = True

    def write(self, record: dict[str, Any]) -> None:
        if not self._opened:
            self._header(record["start"])
        self._last = max(self._last, record["end"])
        orig_h, orig_p = split_endpoint(record["client"])
        resp_h, resp_p = split_endpoint(record["server"])
        timed = record["duration"] > 0
        row = (f"{record['start']:.6f}", _uid(record), orig_h, orig_p, resp_h, resp_p, "tcp",
               UNSET, f"{record['duration']:.6f}" if timed else UNSET,
               str(record["orig_bytes"]) if timed else UNSET,
               str(record["resp_bytes"]) if timed else UNSET, record["conn_state"], UNSET,
               UNSET, str(record["missed_bytes"]), record["history"] or UNSET,
               str(record["c2s"]["packets"]), UNSET, str(record["s2c"]["packets"]), UNSET,
               UNSET)
        self.out.write("\t".join(row) + "\n")
        self.count += 1

    def close(self) -> None:
        if not self._opened:
            self._header(0.0)
        self.out.write(f"#close\t{_stamp(self._last)}\n")
