"""``-w OUT.pcap``: the frames that went through the monitor, to a new capture.

With a BPF expression the command's source already holds only the matching frames; with
``--flow SPEC`` only the frames of the chosen flows are written (a frame belongs to a flow when
the engine tracked it as one of that flow's packets, from its first SYN to its end).
``-w -`` writes the capture to standard output (``PcapWriter``); a write error (a full disk, a
reader that went away) ends the run; it is reported as a warning at the end, except a
closed pipe (``-w - | head``), which ends it quietly as tcpdump does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mostool.events.types import ON_PKT_IN, Hook, Side
from mostool.monitor import Monitor
from mostool.pcapfile import PcapWriter
from mostool.sinks.select import FirstDelivery, FlowSelector, stream_sockets
from mostool.text import printable

__all__ = ["PcapWriter", "PacketWriter"]  # PcapWriter lives in mostool.pcapfile

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
        self._deliveries = FirstDelivery()   # one raise, several handles
        self._verdicts: dict[int, bool] = {}
        self.path = path
        self.matched = 0                     # packets of the chosen flows
        if select is not None:
            listeners = stream_sockets(mon)
            for lst in listeners:
                lst.on(ON_PKT_IN, Hook.HK_SND, self._packet)
            mon.on_flow_end(self._ended)

    def _ended(self, conn: Any) -> None:
        self._verdicts.pop(conn.id, None)

    def _packet(self, flow: Any, side: Side, event: Any) -> None:
        if not self._deliveries.first(event):     # the same raise via another listener
            return
        fid = flow.id
        ok = self._verdicts.get(fid)
        if ok is None:
            ok = self._verdicts[fid] = bool(self.select and self.select.matches(flow))
        if ok:
            self._hit = True
            self.matched += 1

    def frames(self) -> Iterator[tuple[float, int, bytes, int]]:
        write = self.writer.write
        writer = self.writer
        if self.select is None:
            for frame in self.inner.frames():
                if frame[1] >= 0:
                    write(*frame)
                    if writer.error:
                        self.stop()          # nothing more can be written: end the run
                yield frame
            return
        for frame in self.inner.frames():
            self._hit = False
            try:
                yield frame                  # the engine handles it before we resume
            finally:                         # (also when the run stops after this frame)
                if self._hit:
                    write(*frame)
                    if writer.error:
                        self.stop()

    def stop(self) -> None:
        if hasattr(self.inner, "stop"):
            self.inner.stop()

    def stats(self) -> dict[str, Any]:
        return dict(self.inner.stats()) if hasattr(self.inner, "stats") else {}

    def close(self) -> None:
        self.writer.close()
        if self.writer.error and not self.writer.reader_gone:  # a closed pipe ends quietly
            self.mon.warnings.append(self.writer.error)
        if self.select is not None and not self.matched:
            # an empty pcap and exit 0 would look like success: say it
            self.mon.warnings.append(f"--flow {printable(self.select.spec)} matched no flow: "
                                     f"{printable(self.path)} holds no packets")
