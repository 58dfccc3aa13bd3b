"""Live capture through libpcap (pcapy-ng): the source that watches a network interface.

Theory of operation
===================

:class:`LiveSource` opens the interface *eagerly* (``pcap_create`` + options + ``pcap_activate``),
so a wrong name, a missing permission or a bad BPF expression is a :class:`LiveError` with one
line of text before the run starts. The handle is then put in non-blocking mode and read in
``frames()``:

- every packet waiting in the kernel's ring is handed out as ``(ts, linktype, data, wire_len)``
  with ``ts = sec + usec / 1e6`` from libpcap's header, the same formula the file reader uses,
  so a capture written with ``write_to`` replays to the very same floats;
- when the ring is empty it waits on the handle's descriptor with ``select`` (libpcap's own
  blocking read may never return on an idle interface), at most ``timeout_ms``, or less when
  the engine has a timer due sooner (``set_deadline``, called by ``Monitor.run``); when the
  wait ends with no packet it yields a clock tick (:data:`mostool.sources.TICK`) at wall-clock
  time minus the delivery latency, so idle timeouts and timers fire while the link is quiet
  and a tick never overtakes a packet still on its way through the kernel's buffer;
- every second it reads libpcap's statistics (packets received, dropped by the kernel, dropped
  by the interface) into :meth:`LiveSource.stats`; kernel drops become a warning at the end;
- when the interface goes down or disappears it stops cleanly with a warning: what was seen
  is kept and the run ends as at the end of a file.

``stop()`` (from a callback or a signal handler) ends ``frames()`` at once: it also wakes the
wait through a pipe. Closing ``frames()`` (``Monitor.run`` does) flushes and closes the
``write_to`` file and the handle.

Immediate mode: pcapy-ng does not expose ``pcap_set_immediate_mode``. Without it Linux hands
packets over a block at a time, when a block fills or its timeout expires; so ``immediate=True``
uses a 1 ms libpcap timeout instead (packets arrive within about a millisecond) unless the
binding offers ``set_immediate_mode``, which is then used.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pcapy

from mostool._callable import make_callable
from mostool.pcapfile import PcapWriter
from mostool.sources import TICK, Frame
from mostool.stdio import STDIO

__all__ = ["LiveError", "LiveSource", "live", "interfaces", "permission_hint"]

DEFAULT_SNAPLEN = 262144
_STATS_INTERVAL = 1.0
_BATCH = 256
_IMMEDIATE_TIMEOUT_MS = 1
_TICK_SLACK = 0.05

# libpcap's pcap_activate() results (pcap/pcap.h)
_ERROR = -1
_NO_SUCH_DEVICE = -5
_RFMON_NOTSUP = -6
_PERM_DENIED = -8
_IFACE_NOT_UP = -9
_PROMISC_PERM_DENIED = -11
_WARNING_PROMISC_NOTSUP = 2

# DLT_* (what a live handle reports) -> LINKTYPE_* (what pcap files and the decoder use)
_DLT_TO_LINKTYPE = {
    pcapy.DLT_RAW: 101,
    pcapy.DLT_ATM_RFC1483: 100,
}


class LiveError(Exception):
    """The interface cannot be captured on; ``reason`` is one of "nodev", "perm", "down",
    "filter", "write", "error". The message is one line."""

    def __init__(self, message: str, reason: str = "error") -> None:
        super().__init__(message)
        self.reason = reason


def permission_hint() -> str:
    """How to get the right to capture without being root."""
    python = os.path.realpath(sys.executable or "python3")
    return ("run as root or give the interpreter CAP_NET_RAW,CAP_NET_ADMIN: "
            f"sudo setcap cap_net_raw,cap_net_admin=eip {python}")


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


class LiveSource:
    """Frames captured live on ``iface`` (see the module docstring).

    ``bpf``          libpcap filter expression, run in the kernel
    ``snaplen``      bytes kept of each packet (default 262144: all of it)
    ``promisc``      promiscuous mode (default on)
    ``timeout_ms``   libpcap's read timeout, and the longest wait between clock ticks while
                     no packet arrives
    ``buffer_size``  the kernel capture buffer in bytes (libpcap's default when None)
    ``immediate``    deliver packets as they arrive instead of a buffer at a time
    ``write_to``     also write every captured packet to this pcap file (``-``: standard output)
    ``clock``        the wall clock (seconds since the epoch, as packet timestamps)
    """

    live = True

    def __init__(self, iface: str, bpf: str | None = None, *, snaplen: int = DEFAULT_SNAPLEN,
                 promisc: bool = True, timeout_ms: int = 100, buffer_size: int | None = None,
                 immediate: bool = True, write_to: str | os.PathLike[str] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        if not isinstance(iface, str) or not iface:
            raise LiveError("no interface given (see `mostool interfaces`)", "nodev")
        if not isinstance(snaplen, int) or snaplen <= 0:
            raise ValueError(f"snaplen must be a positive integer, not {snaplen!r}")
        if not isinstance(timeout_ms, int) or timeout_ms <= 0:
            raise ValueError(f"timeout_ms must be a positive integer, not {timeout_ms!r}")
        if buffer_size is not None and (not isinstance(buffer_size, int) or buffer_size <= 0):
            raise ValueError(f"buffer_size must be a positive integer, not {buffer_size!r}")
        self.iface = iface
        self.name = iface
        self.bpf = bpf if bpf and bpf.strip() else None
        self.snaplen = snaplen
        self.promisc = promisc
        self.timeout_ms = timeout_ms
        self.buffer_size = buffer_size
        self.immediate = immediate
        self.warnings: list[str] = []
        self._clock = clock
        self._stopped = False
        self._closed = False
        self._started = False
        self._deadline: Callable[[], float | None] | None = None
        self._packets = 0
        self._bytes = 0
        self._wire_bytes = 0
        self._ticks = 0
        self._received = 0
        self._kernel_drops = 0
        self._ifdrops = 0
        self._went_down: str | None = None
        self._pcap: Any = None
        self._dump: PcapWriter | None = None
        self._wake: tuple[int, int] | None = None
        read_timeout = timeout_ms
        self._pcap, read_timeout = self._open(read_timeout)
        # a tick stays this far behind the wall clock: a packet still in the kernel's buffer
        # (delivered within about one read timeout) must not be overtaken by a tick
        self._margin = read_timeout / 1000.0 + _TICK_SLACK
        self._interval = timeout_ms / 1000.0
        try:
            self.datalink: int = self._pcap.datalink()
            self.linktype: int = _DLT_TO_LINKTYPE.get(self.datalink, self.datalink)
            if self.bpf is not None:
                try:
                    self._pcap.setfilter(self.bpf)
                except pcapy.PcapError as exc:
                    msg = _one_line(str(exc)).removeprefix("can't parse filter expression: ")
                    raise LiveError(f"bad filter {self.bpf!r}: {msg}", "filter") from None
            self._pcap.setnonblock(1)
            self._fd: int = self._pcap.getfd()
            if write_to is not None:
                path = "standard output" if write_to == STDIO else os.fspath(write_to)
                try:
                    self._dump = PcapWriter(write_to, self.linktype, snaplen)
                except OSError as exc:
                    raise LiveError(f"cannot write {path}: {exc.strerror or exc}",
                                    "write") from None
            self._wake = os.pipe()
            for fd in self._wake:
                os.set_blocking(fd, False)
        except BaseException:
            self.close()
            raise

    # -- opening ------------------------------------------------------------------------------

    def _open(self, read_timeout: int) -> tuple[Any, int]:
        iface = self.iface
        try:
            p = pcapy.create(iface)
        except pcapy.PcapError as exc:
            raise LiveError(f"cannot capture on {iface}: {_one_line(str(exc))}") from None
        p.set_snaplen(self.snaplen)
        p.set_promisc(1 if self.promisc else 0)
        if self.buffer_size is not None:
            p.set_buffer_size(self.buffer_size)
        if self.immediate:
            setter = getattr(p, "set_immediate_mode", None)
            if setter is not None:
                setter(1)
            else:
                read_timeout = min(read_timeout, _IMMEDIATE_TIMEOUT_MS)
        p.set_timeout(read_timeout)
        status = p.activate()
        if isinstance(status, int) and status < 0:
            self._activation_failed(p, status)
        if status == _WARNING_PROMISC_NOTSUP and self.promisc:
            self.warnings.append(f"{iface}: promiscuous mode is not supported; "
                                 "capturing this host's traffic only")
        return p, read_timeout

    def _activation_failed(self, p: Any, status: int) -> None:
        iface = self.iface
        with contextlib.suppress(Exception):
            p.close()
        if status == _NO_SUCH_DEVICE:
            raise LiveError(f"no such interface: {iface} (see `mostool interfaces`)", "nodev")
        if status == _PERM_DENIED:
            raise LiveError(f"no permission to capture on {iface}: {permission_hint()}", "perm")
        if status == _PROMISC_PERM_DENIED:
            raise LiveError(f"no permission to capture on {iface} in promiscuous mode: "
                            f"{permission_hint()} (or use --no-promisc)", "perm")
        if status == _IFACE_NOT_UP:
            raise LiveError(f"interface {iface} is down (ip link set {iface} up)", "down")
        if status == _RFMON_NOTSUP:
            raise LiveError(f"cannot capture on {iface}: monitor mode is not supported")
        # libpcap's message for a generic failure is only reachable through open_live
        detail = f"libpcap error {status}"
        try:
            probe = pcapy.open_live(iface, self.snaplen, 1 if self.promisc else 0,
                                    self.timeout_ms)
        except pcapy.PcapError as exc:
            detail = _one_line(str(exc))
        else:
            with contextlib.suppress(Exception):
                probe.close()
        raise LiveError(f"cannot capture on {iface}: {detail}")

    # -- the source interface -----------------------------------------------------------------

    def set_deadline(self, deadline: Callable[[], float | None] | None) -> None:
        """``deadline()`` gives the engine's next timer (packet time) so a tick comes then."""
        self._deadline = deadline

    def stop(self) -> None:
        """End ``frames()`` now (safe from a callback, another thread or a signal handler)."""
        self._stopped = True
        wake = self._wake
        if wake is not None:
            with contextlib.suppress(OSError):
                os.write(wake[1], b"x")

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def frames(self) -> Iterator[Frame]:
        """The captured packets, with clock ticks while none arrives, until ``stop()``, the
        interface going down, or ``close()``."""
        if self._started or self._closed:
            return iter(())
        self._started = True
        return self._frames()

    def _frames(self) -> Iterator[Frame]:
        p = self._pcap
        nxt = p.next
        clock = self._clock
        dump = self._dump
        fd = self._fd
        wake_r = self._wake[0] if self._wake is not None else -1
        linktype = self.linktype
        interval = self._interval
        margin = self._margin
        next_stats = clock() + _STATS_INTERVAL
        try:
            while not self._stopped:
                got = 0
                while got < _BATCH:
                    try:
                        hdr, data = nxt()
                    except pcapy.PcapError as exc:
                        self._interface_lost(exc)
                        return
                    if hdr is None:
                        break
                    got += 1
                    sec, usec = hdr.getts()
                    wire = hdr.getlen()
                    if dump is not None:
                        dump.write_raw(sec, usec, data, wire)
                        if dump.error is not None:
                            self._stopped = True     # nothing more can be written: end the run
                    self._packets += 1
                    self._bytes += len(data)
                    self._wire_bytes += wire
                    yield (sec + usec / 1e6, linktype, data, wire)
                    if self._stopped:
                        return
                now = clock()
                if now >= next_stats:
                    self._read_stats()
                    next_stats = now + _STATS_INTERVAL
                if got == _BATCH:
                    continue
                wait = interval
                deadline = self._deadline() if self._deadline is not None else None
                if deadline is not None:
                    wait = min(wait, max(0.001, deadline + margin - now))
                ready, _, _ = select.select([fd, wake_r] if wake_r >= 0 else [fd], [], [], wait)
                if self._stopped:
                    return
                if ready:
                    if wake_r in ready:
                        with contextlib.suppress(OSError):
                            os.read(wake_r, 64)
                    continue
                if dump is not None:
                    dump.flush()
                self._ticks += 1
                yield (clock() - margin, TICK, b"", 0)
        finally:
            self.close()

    def _interface_lost(self, exc: Exception) -> None:
        msg = _one_line(str(exc)) or "capture failed"
        self._went_down = msg
        self.warnings.append(f"{self.iface}: {msg}; capture stopped after {self._packets} "
                             "packets (what was seen is kept)")

    def _read_stats(self) -> None:
        p = self._pcap
        if p is None:
            return
        try:
            received, dropped, ifdropped = p.stats()
        except (pcapy.PcapError, ValueError, TypeError):
            return
        self._received, self._kernel_drops, self._ifdrops = received, dropped, ifdropped

    def close(self) -> None:
        """Read the final statistics, flush and close the ``write_to`` file and the handle."""
        if self._closed:
            return
        self._closed = True
        if self._pcap is not None:
            if self._went_down is None:
                self._read_stats()
            with contextlib.suppress(Exception):
                self._pcap.close()
            self._pcap = None
        if self._dump is not None:
            self._dump.close()
            if self._dump.error and not self._dump.reader_gone:  # a closed pipe ends quietly
                self.warnings.append(self._dump.error)
        if self._wake is not None:
            for fd in self._wake:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._wake = None
        if self._kernel_drops:
            self.warnings.append(
                f"{self.iface}: {self._kernel_drops} packets dropped by the kernel (capture "
                "buffer full; try a larger --buffer-size or a narrower filter); flows may "
                "show gaps")

    def __enter__(self) -> LiveSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def write_error(self) -> str | None:
        """Why writing ``write_to`` failed (one line), or None; a closed pipe (``-w - | head``)
        is no error: the reader had what it wanted."""
        dump = self._dump
        return dump.error if dump is not None and not dump.reader_gone else None

    def stats(self) -> dict[str, Any]:
        return {
            "interface": self.iface,
            "linktype": self.linktype if hasattr(self, "linktype") else None,
            "packets": self._packets,
            "bytes": self._bytes,
            "wire_bytes": self._wire_bytes,
            "received": self._received,
            "kernel_drops": self._kernel_drops,
            "ifdrops": self._ifdrops,
            "ticks": self._ticks,
            "written": self._dump.count if self._dump is not None else None,
            "interface_lost": self._went_down,
        }


def live(iface: str, bpf: str | None = None, **options: Any) -> LiveSource:
    """``LiveSource(iface, bpf, **options)``: e.g. ``mon.run(live("eth0", "tcp port 80"))``."""
    return LiveSource(iface, bpf, **options)


# -- listing interfaces ------------------------------------------------------------------------

_IFF_UP = 0x1
_IFF_LOOPBACK = 0x8
_IFF_RUNNING = 0x40


def _sys_net(name: str, item: str) -> str | None:
    try:
        with open(os.path.join("/sys/class/net", name, item), encoding="ascii") as f:
            return f.read().strip()
    except (OSError, ValueError):
        return None


def interfaces() -> list[dict[str, Any]]:
    """The devices libpcap can capture on: name, whether up and running, and a description."""
    try:
        names = pcapy.findalldevs()
    except pcapy.PcapError as exc:
        raise LiveError(f"cannot list interfaces: {_one_line(str(exc))}") from None
    out: list[dict[str, Any]] = []
    for name in names:
        flags_text = _sys_net(name, "flags") if "/" not in name else None
        info: dict[str, Any] = {"name": name, "up": None, "running": None, "kind": "pseudo"}
        if flags_text is not None:
            try:
                flags = int(flags_text, 16)
            except ValueError:
                flags = 0
            info["up"] = bool(flags & _IFF_UP)
            info["running"] = bool(flags & _IFF_RUNNING)
            info["kind"] = "loopback" if flags & _IFF_LOOPBACK else "network"
            mac = _sys_net(name, "address")
            if mac and mac != "00:00:00:00:00:00":
                info["address"] = mac
        elif name == "any":
            info["kind"] = "all interfaces (Linux cooked capture)"
        out.append(info)
    return out



make_callable(__name__, live)
