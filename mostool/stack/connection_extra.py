"""What a connection (stack/connection.py) holds only once something unusual happened to it:
a FIN, a bad checksum, a retransmitted SYN or FIN, a keep-alive, late or RST payload, a refused
RST or FIN, a changed ISN, segments set aside. Most flows meet few of these, idle ones none.

``Connection`` reads and writes these values as its own attributes (``conn.fin_seq``,
``conn.bad_rst += 1``, ...) through the properties of its base class ``ConnRare``, which keep
them in a ``ConnExtra`` made on the first write of a value that is not the default; until then
every connection shares one read-only ``ConnExtra`` of defaults. The pairs are immutable (see
``connection.pair_set``), so a shared default is never changed in place.
"""

from __future__ import annotations

from typing import Final

from mostool.events.types import TcpState
from mostool.stack.tunnels import TunnelHop

__all__ = ["ConnRare", "ConnExtra"]

_NONE2: Final[tuple[None, None]] = (None, None)
_ZERO2: Final = (0, 0)
_SetAside = tuple[list[tuple[int, bytes | None, int]], list[tuple[int, bytes | None, int]]] | None
_RstPending = tuple[int, int, TcpState, TcpState, int] | None
_Hops = tuple[TunnelHop, ...] | None


class ConnExtra:
    """The values; see the module docstring."""

    __slots__ = ("fin_seq", "bad_checksums", "dropped", "control_rexmit", "keepalives", "late",
                 "rst_payload", "bad_rst", "bad_fin", "alt_isn", "set_aside", "rejected_ack",
                 "tunnel", "tw_deadline", "rst_pending")

    def __init__(self) -> None:
        self.fin_seq: tuple[int | None, int | None] = _NONE2  # seq of each side's FIN
        self.bad_checksums: tuple[int, int] = _ZERO2  # per sender; UNCHECKED when not verified
        self.dropped: tuple[int, int] = _ZERO2  # bad-checksum segments dropped, per sender
        self.control_rexmit: tuple[int, int] = _ZERO2  # SYN/FIN rexmits, by receiving side
        self.keepalives: tuple[int, int] = _ZERO2
        self.late: tuple[int, int] = _ZERO2
        self.rst_payload: tuple[int, int] = _ZERO2
        self.bad_rst: int = 0
        self.bad_fin: int = 0
        self.alt_isn: tuple[int, ...] = ()  # ISNs a side gave up
        self.set_aside: _SetAside = None  # bad-checksum segments, per receiving side
        self.rejected_ack: tuple[int, int] | None = None  # see Connection
        self.tunnel: _Hops = None  # the hops a tunnelled flow's first packet came through
        self.tw_deadline: float | None = None  # when a flow in TIME_WAIT ends
        self.rst_pending: _RstPending = None  # see Connection


_DEFAULTS: Final = ConnExtra()      # shared by every connection that has needed none: never written


class ConnRare:
    """The ``ConnExtra`` values as attributes of their connection."""

    __slots__ = ("_extra",)

    def __init__(self) -> None:
        self._extra = _DEFAULTS

    def _own_extra(self) -> ConnExtra:
        x = self._extra
        if x is _DEFAULTS:
            x = self._extra = ConnExtra()
        return x

    @property
    def fin_seq(self) -> tuple[int | None, int | None]:
        return self._extra.fin_seq

    @fin_seq.setter
    def fin_seq(self, value: tuple[int | None, int | None]) -> None:
        if value[0] is not None or value[1] is not None or self._extra is not _DEFAULTS:
            self._own_extra().fin_seq = value

    @property
    def bad_checksums(self) -> tuple[int, int]:
        return self._extra.bad_checksums

    @bad_checksums.setter
    def bad_checksums(self, value: tuple[int, int]) -> None:
        if value != _ZERO2 or self._extra is not _DEFAULTS:
            self._own_extra().bad_checksums = value

    @property
    def dropped(self) -> tuple[int, int]:
        return self._extra.dropped

    @dropped.setter
    def dropped(self, value: tuple[int, int]) -> None:
        if value != _ZERO2 or self._extra is not _DEFAULTS:
            self._own_extra().dropped = value

    @property
    def control_rexmit(self) -> tuple[int, int]:
        return self._extra.control_rexmit

    @control_rexmit.setter
    def control_rexmit(self, value: tuple[int, int]) -> None:
        if value != _ZERO2 or self._extra is not _DEFAULTS:
            self._own_extra().control_rexmit = value

    @property
    def keepalives(self) -> tuple[int, int]:
        return self._extra.keepalives

    @keepalives.setter
    def keepalives(self, value: tuple[int, int]) -> None:
        if value != _ZERO2 or self._extra is not _DEFAULTS:
            self._own_extra().keepalives = value

    @property
    def late(self) -> tuple[int, int]:
        return self._extra.late

    @late.setter
    def late(self, value: tuple[int, int]) -> None:
        if value != _ZERO2 or self._extra is not _DEFAULTS:
            self._own_extra().late = value

    @property
    def rst_payload(self) -> tuple[int, int]:
        return self._extra.rst_payload

    @rst_payload.setter
    def rst_payload(self, value: tuple[int, int]) -> None:
        if value != _ZERO2 or self._extra is not _DEFAULTS:
            self._own_extra().rst_payload = value

    @property
    def bad_rst(self) -> int:
        return self._extra.bad_rst

    @bad_rst.setter
    def bad_rst(self, value: int) -> None:
        if value or self._extra is not _DEFAULTS:
            self._own_extra().bad_rst = value

    @property
    def bad_fin(self) -> int:
        return self._extra.bad_fin

    @bad_fin.setter
    def bad_fin(self, value: int) -> None:
        if value or self._extra is not _DEFAULTS:
            self._own_extra().bad_fin = value

    @property
    def alt_isn(self) -> tuple[int, ...]:
        return self._extra.alt_isn

    @alt_isn.setter
    def alt_isn(self, value: tuple[int, ...]) -> None:
        if value or self._extra is not _DEFAULTS:
            self._own_extra().alt_isn = value

    @property
    def set_aside(self) -> _SetAside:
        return self._extra.set_aside

    @set_aside.setter
    def set_aside(self, value: _SetAside) -> None:
        if value is not None or self._extra is not _DEFAULTS:
            self._own_extra().set_aside = value

    @property
    def rejected_ack(self) -> tuple[int, int] | None:
        return self._extra.rejected_ack

    @rejected_ack.setter
    def rejected_ack(self, value: tuple[int, int] | None) -> None:
        if value is not None or self._extra is not _DEFAULTS:
            self._own_extra().rejected_ack = value

    @property
    def tunnel(self) -> _Hops:
        return self._extra.tunnel

    @tunnel.setter
    def tunnel(self, value: _Hops) -> None:
        if value is not None or self._extra is not _DEFAULTS:
            self._own_extra().tunnel = value

    @property
    def tw_deadline(self) -> float | None:
        return self._extra.tw_deadline

    @tw_deadline.setter
    def tw_deadline(self, value: float | None) -> None:
        if value is not None or self._extra is not _DEFAULTS:
            self._own_extra().tw_deadline = value

    @property
    def rst_pending(self) -> _RstPending:
        return self._extra.rst_pending

    @rst_pending.setter
    def rst_pending(self, value: _RstPending) -> None:
        if value is not None or self._extra is not _DEFAULTS:
            self._own_extra().rst_pending = value
