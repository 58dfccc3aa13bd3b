"""Each direction's reassembled bytes to a file (`mostool streams -r FILE -o DIR`).

File names follow tcpflow: ``SRC.SPORT-DST.DPORT`` with zero-padded parts
(``010.077.001.001.50723-010.077.000.002.00080``; an IPv6 address as its eight zero-padded
groups joined by dots), a ``c2``, ``c3`` ... suffix for a later connection on the same 4-tuple.
A file holds exactly the bytes of the reassembled stream, the bytes `mostool flows --hash`
digests: bytes the capture missed are not in the file, they are listed in the index.

The index (``index.jsonl``, one line per direction, in flow order) says for each direction its
flow id, endpoints, file (null when no byte flowed), byte count, SHA-256 of the file, and its
gaps: ``{"offset": stream offset, "file_offset": where in the file, "length": bytes}``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
from collections import OrderedDict
from typing import IO, TYPE_CHECKING, Any

from mostool.events.types import ON_CONN_NEW_DATA, Hook, Side
from mostool.sinks.select import FirstDelivery, FlowSelector, stream_sockets
from mostool.stack.flow import SOCKOPT_RCVBUF_CLI, SOCKOPT_RCVBUF_SVR

if TYPE_CHECKING:
    from mostool.monitor import Monitor
    from mostool.summary import FlowSummary

__all__ = ["StreamWriter", "stream_file_name", "INDEX_NAME"]

INDEX_NAME = "index.jsonl"
MAX_OPEN_FILES = 128


def _addr_part(addr: bytes) -> str:
    if len(addr) == 4:
        return ".".join(f"{b:03d}" for b in addr)
    return ipaddress.IPv6Address(addr).exploded.replace(":", ".")


def stream_file_name(src: bytes, sport: int, dst: bytes, dport: int) -> str:
    """tcpflow's name for the bytes ``src:sport`` sent to ``dst:dport``."""
    return f"{_addr_part(src)}.{sport:05d}-{_addr_part(dst)}.{dport:05d}"


class _Direction:
    __slots__ = ("name", "path", "hasher", "written", "lost", "src", "dst")

    def __init__(self, name: str, path: str, src: str, dst: str) -> None:
        self.name = name
        self.path = path
        self.hasher = hashlib.sha256()
        self.written = 0
        self.lost: list[dict[str, int]] = []
        self.src = src
        self.dst = dst


class StreamWriter:
    """Writes the reassembled streams of the flows a Monitor tracks into ``directory``.

    ``attach()`` registers ON_CONN_NEW_DATA on the monitor's stream listeners (opening one if
    there is none) and a flow-end hook; ``close()`` closes the files and writes the index.
    The bytes are read with ``ppeek`` as they are delivered, and each side's buffer is cut back
    to its newest chunk right after, so memory stays at about one segment per open direction.
    """

    def __init__(self, mon: Monitor, directory: str, *, select: FlowSelector | None = None,
                 keep: int = 1 << 20) -> None:
        self.mon = mon
        self.directory = directory
        self.select = select
        # The buffer must hold what one packet can deliver at once: a segment plus the
        # out-of-order bytes it releases.
        self.keep = max(keep, mon.config.max_ooo_bytes + (256 << 10))
        self._dirs: dict[tuple[int, int], _Direction] = {}
        self._files: OrderedDict[str, IO[bytes]] = OrderedDict()
        self._names: dict[str, int] = {}
        self._index: list[dict[str, Any]] = []
        self._skip: set[int] = set()
        self._deliveries = FirstDelivery()   # one raise, several handles
        self.files_written = 0
        self.bytes_written = 0
        self.warnings: list[str] = []

    def attach(self) -> None:
        os.makedirs(self.directory, exist_ok=True)
        listeners = stream_sockets(self.mon)
        for lst in listeners:
            lst.setsockopt(SOCKOPT_RCVBUF_CLI, self.keep)
            lst.setsockopt(SOCKOPT_RCVBUF_SVR, self.keep)
            lst.on(ON_CONN_NEW_DATA, Hook.NULL, self._data)
        self.mon.on_flow_end(self._ended)

    # -- per delivery -----------------------------------------------------------------------------

    def _data(self, flow: Any, side: Side, event: Any) -> None:
        if not self._deliveries.first(event):     # the same raise via another listener
            return
        fid = flow.id
        if fid in self._skip:
            return
        if self.select is not None and not self.select.matches(flow):
            self._skip.add(fid)
            return
        d = self._dirs.get((fid, side))
        if d is None:
            d = self._open(flow, side)
        data = flow.ppeek(side, event.offset, event.length)
        if len(data) < event.length:       # pushed out of the buffer before we could read it
            d.lost.append({"offset": event.offset + len(data), "file_offset": d.written
                           + len(data), "length": event.length - len(data)})
        if data:
            self._file(d).write(data)
            d.hasher.update(data)
            d.written += len(data)
            self.bytes_written += len(data)
        # Let go of what was written: keep only the newest chunk of this side's buffer.
        opt = SOCKOPT_RCVBUF_CLI if side == Side.CLI else SOCKOPT_RCVBUF_SVR
        flow.setsockopt(opt, 1)
        flow.setsockopt(opt, self.keep)

    def _open(self, flow: Any, side: Side) -> _Direction:
        (caddr, cport), (saddr, sport) = flow.peername()
        client = ipaddress.ip_address(caddr).packed
        server = ipaddress.ip_address(saddr).packed
        # side is the receiving stack: SVR holds client->server bytes
        if side == Side.SVR:
            base = stream_file_name(client, cport, server, sport)
            src_text, dst_text = flow.client, flow.server
        else:
            base = stream_file_name(server, sport, client, cport)
            src_text, dst_text = flow.server, flow.client
        n = self._names.get(base, 0) + 1
        self._names[base] = n
        name = base if n == 1 else f"{base}c{n}"
        d = _Direction(name, os.path.join(self.directory, name), src_text, dst_text)
        self._dirs[(flow.id, side)] = d
        with open(d.path, "wb"):
            pass
        self.files_written += 1
        return d

    def _file(self, d: _Direction) -> IO[bytes]:
        f = self._files.get(d.name)
        if f is not None:
            self._files.move_to_end(d.name)
            return f
        if len(self._files) >= MAX_OPEN_FILES:
            _, old = self._files.popitem(last=False)
            old.close()
        f = open(d.path, "ab")  # noqa: SIM115 - kept open across deliveries (LRU)
        self._files[d.name] = f
        return f

    # -- per flow ---------------------------------------------------------------------------------

    def _ended(self, flow: FlowSummary) -> None:
        self._skip.discard(flow.id)
        if self.select is not None and not self.select.matches(flow):
            return
        for side, direction in ((Side.SVR, "c2s"), (Side.CLI, "s2c")):
            d = self._dirs.pop((flow.id, side), None)
            way = flow.c2s if direction == "c2s" else flow.s2c
            gaps = way.gaps
            if d is not None:
                f = self._files.pop(d.name, None)
                if f is not None:
                    f.close()
            file_gaps = []
            shift = 0
            for off, n in gaps:
                file_gaps.append({"offset": off, "file_offset": off - shift, "length": n})
                shift += n
            src, dst = (flow.client, flow.server) if direction == "c2s" else (flow.server,
                                                                              flow.client)
            rec: dict[str, Any] = {
                "flow": flow.id, "direction": direction, "src": src, "dst": dst,
                "file": d.name if d is not None else None,
                "bytes": d.written if d is not None else 0,
                "sha256": (d.hasher if d is not None else hashlib.sha256()).hexdigest(),
                "gaps": file_gaps, "end_reason": flow.end_reason, "start": flow.start,
                "end": flow.end,
            }
            if d is not None and d.lost:
                rec["lost"] = d.lost
                self.warnings.append(f"flow {flow.id} {direction}: "
                                     f"{sum(x['length'] for x in d.lost)} bytes left the "
                                     f"buffer before they could be written")
            if d is not None and d.written + sum(x["length"] for x in d.lost) != way.bytes:
                self.warnings.append(f"flow {flow.id} {direction}: wrote {d.written} of "
                                     f"{way.bytes} reassembled bytes")
            self._index.append(rec)

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()
        self._index.sort(key=lambda r: (r["flow"], r["direction"]))
        with open(os.path.join(self.directory, INDEX_NAME), "w", encoding="utf-8") as out:
            for rec in self._index:
                out.write(json.dumps(rec) + "\n")

    @property
    def index(self) -> list[dict[str, Any]]:
        return list(self._index)
