"""``--flow SPEC``: which flows an output keeps.

SPEC is a comma-separated list of flow ids (``3``), id ranges (``2-5``) and endpoints
(``10.0.0.1:80``, ``[2001:db8::1]:443``, or an address alone: ``10.0.0.1``), matched against
either end of a flow. Ids are the ones ``mostool flows`` prints (order of first packet).
"""

from __future__ import annotations

import ipaddress
from typing import Any

__all__ = ["FlowSelector", "FirstDelivery", "stream_sockets", "subscribed_udes"]

STREAM = "stream"           # mostool.monitor.MONITOR_STREAM (this module is imported by it)


def stream_sockets(mon: Any) -> list[Any]:
    """The monitor's open MONITOR_STREAM sockets - the apps' - or a new one that accepts
    every flow when there is none (an output then sees every flow)."""
    return mon.sockets(STREAM) or [mon.socket(STREAM)]


def subscribed_udes(sock: Any) -> list[tuple[Any, Any]]:
    """Every (UDE, hook) a socket's subscriptions reach, the UDEs along each chain included, in
    registration order: what a recorder must also subscribe to so that it sees them fire."""
    udes: list[tuple[Any, Any]] = []
    for etype, hook, _cb in list(sock.subs.entries):
        for step in etype.path():
            if not step.builtin and (step, hook) not in udes:
                udes.append((step, hook))
    return udes


class FlowSelector:
    """Matches flows (engine connections) against a ``--flow`` SPEC."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.ids: set[int] = set()
        self.ranges: list[tuple[int, int]] = []
        self.endpoints: set[str] = set()       # canonical "addr:port"
        self.hosts: set[str] = set()           # canonical address text
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            self._add(part)
        if not (self.ids or self.ranges or self.endpoints or self.hosts):
            raise ValueError(f"empty flow selector {spec!r}")

    def _add(self, part: str) -> None:
        if part.isdigit():
            self.ids.add(int(part))
            return
        lo, sep, hi = part.partition("-")
        if sep and lo.isdigit() and hi.isdigit():
            a, b = int(lo), int(hi)
            if a > b:
                raise ValueError(f"bad flow id range {part!r}")
            self.ranges.append((a, b))
            return
        if part.startswith("["):
            addr, _, port = part[1:].partition("]")
            port = port.removeprefix(":")
            self._endpoint(addr, port, part)
            return
        if part.count(":") == 1:
            addr, _, port = part.partition(":")
            self._endpoint(addr, port, part)
            return
        self._endpoint(part, "", part)

    def _endpoint(self, addr: str, port: str, part: str) -> None:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            raise ValueError(f"bad flow selector {part!r}: give flow ids (3, 2-5) or "
                             f"endpoints (10.0.0.1:80, [2001:db8::1]:443)") from None
        text = f"[{ip}]" if ip.version == 6 else str(ip)
        if not port:
            self.hosts.add(text)
            return
        if not port.isdigit() or int(port) > 65535:
            raise ValueError(f"bad port in flow selector {part!r}")
        self.endpoints.add(f"{text}:{int(port)}")

    def matches(self, conn: Any) -> bool:
        fid = conn.id
        if fid in self.ids or any(a <= fid <= b for a, b in self.ranges):
            return True
        if self.endpoints and (conn.client in self.endpoints or conn.server in self.endpoints):
            return True
        if self.hosts:
            for ep in (conn.client, conn.server):
                if ep.rsplit(":", 1)[0] in self.hosts:
                    return True
        return False

    def __repr__(self) -> str:
        return f"FlowSelector({self.spec!r})"


class FirstDelivery:
    """A sink subscribed on every listener gets one raise once per handle of the flow, as the
    same event value: ``first(event)`` is True for its first delivery only (by identity: two
    raises are never the same object, a value repeated across handles always is)."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: Any = None

    def first(self, event: Any) -> bool:
        if event is self._last:
            return False
        self._last = event
        return True
