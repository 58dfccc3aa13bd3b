"""``-w OUT.pcap``: the frames that went through the monitor, to a new capture.

With a BPF expression the command's source already holds only the matching frames; with
``--flow SPEC`` only the frames of the chosen flows are written (a frame belongs to a flow when
the engine tracked it as one of that flow's packets, from its first SYN to its end).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import IO, Any

from mostool.events.types import ON_PKT_IN, Hook, Side
from mostool.monitor import Monitor
from mostool.sinks.select import FlowSelector, once_per_raise, stream_sockets

__all__ = ["PcapWriter", "PacketWriter"]

_HEADER = struct.Struct("<IHHiIII")
_RECORD = struct.Struct("<IIII")
SNAPLEN = 262144


class PcapWriter:
    """A classic pcap file (microsecond timestamps, little-endian), one link type."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._f: IO[bytes] = open(path, "wb")  # noqa: SIM115 - closed by close()
        self.linktype: int | None = None
        self.count = 0
        self.skipped_linktype = 0

    def write(self, ts: float, linktype: int, data: bytes, wire_len: int) -> None:
        if self.linktype is None:
            self.linktype = linktype
            self._f.write(_HEADER.pack(0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, linktype))
        elif linktype != self.linktype:
            self.skipped_linktype += 1       # a classic pcap holds one link type
            return
        sec = int(ts)
        usec = int(round((ts - sec) * 1e6))
        if usec >= 1_000_000:
            sec, usec = sec + 1, usec - 1_000_000
        self._f.write(_RECORD.pack(sec, usec, len(data), max(wire_len, len(data))))
        self._f.write(data)
        self.count += 1

    def close(self) -> None:
        if self.linktype is None:           # no frame: still a valid (empty) capture
            self._f.write(_HEADER.pack(0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, 1))
        self._f.close()


class PacketWriter:
    """A source wrapper writing the frames that passed (all, or the chosen flows') to a pcap."""

    def __init__(self, mon: Monitor, inner: Any, path: str,
                 select: FlowSelector | None = None) -> None:
        self.mon = mon
        self.inner = inner
        self.name: str = getattr(inner, "name", "source")
        self.warnings: list[str] = getattr(inner, "warnings", [])
        self.select = select
        self.writer = PcapWriter(path)
        self._hit = False
        self._verdicts: dict[int, bool] = {}
        if select is not None:
            listeners = stream_sockets(mon)
            packet = once_per_raise(self._packet)
            for lst in listeners:
                lst.on(ON_PKT_IN, Hook.HK_SND, packet)
            mon.on_flow_end(self._ended)

    def _ended(self, conn: Any) -> None:
        self._verdicts.pop(conn.id, None)

    def _packet(self, flow: Any, side: Side, event: Any) -> None:
        ok = self._verdicts.get(flow.id)
        if ok is None:
            ok = self._verdicts[flow.id] = bool(self.select and self.select.matches(flow))
        if ok:
            self._hit = True

    def frames(self) -> Iterator[tuple[float, int, bytes, int]]:
        write = self.writer.write
        if self.select is None:
            for frame in self.inner.frames():
                if frame[1] >= 0:
                    write(*frame)
                yield frame
            return
        for frame in self.inner.frames():
            self._hit = False
            try:
                yield frame                  # the engine handles it before we resume
            finally:                         # (also when the run stops after this frame)
                if self._hit:
                    write(*frame)

    def stop(self) -> None:
        if hasattr(self.inner, "stop"):
            self.inner.stop()

    def stats(self) -> dict[str, Any]:
        return dict(self.inner.stats()) if hasattr(self.inner, "stats") else {}

    def close(self) -> None:
        self.writer.close()
