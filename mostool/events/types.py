"""Built-in events, hooks and sides: exactly when each event fires, for which side, at which hook.

Vocabulary (as mOS):

* A flow has two emulated TCP stacks, one per endpoint. ``Side.CLI`` is the client's stack (the
  SYN's sender), ``Side.SVR`` the server's. Bytes live in the *receiving* stack: client->server
  bytes are read with side SVR (``flow.to_server`` names them without that trap).
* A packet from A to B first updates A's stack (the sender) and runs callbacks registered at
  ``HK_SND`` with side = A; then B's stack (the receiver), callbacks at ``HK_RCV`` with side = B.
  ``NULL`` is the hook of events that belong to no single stack update.

Per packet of a tracked flow the order is: HK_SND [PKT_IN, CONN_START, TCP_STATE_CHANGE],
HK_RCV [REXMIT (before the receiver's update, as mOS), PKT_IN, CONN_START, TCP_STATE_CHANGE],
NULL [ERROR..., CONN_NEW_DATA], and if the packet ended the flow: CONN_END at HK_SND (sender)
and HK_RCV (receiver). Listeners see a client->server packet in registration order and a
server->client packet in reverse order (a chain of middleboxes laid out client->server).

Built-in events (bit numbers as mos_api.h):

ON_PKT_IN (0)            every packet of a tracked flow, at HK_SND (side = sender) and at HK_RCV
                         (side = receiver); for MONITOR_RAW listeners every frame their raw filter
                         accepts, at NULL with side BOTH.
ON_CONN_START (2)        the client's first SYN: at HK_SND (side CLI) when the client's stack
                         leaves LISTEN, at HK_RCV (side SVR) when the server's stack does. A flow
                         picked up midstream raises it too, at both hooks, on its first packet.
ON_CONN_NEW_DATA (4)     a stack's in-order (contiguous) received bytes grew: at NULL, side = that
                         receiving stack, once per packet per side; carries offset and length of
                         the new bytes. Half-closed flows included (mOS: only while ESTABLISHED).
ON_ERROR (5)             an anomaly on a side: overlapping copies that differ ("overlap_conflict"),
                         unread bytes pushed out of the buffer ("buffer_overflow"), an
                         out-of-window RST ("bad_rst") or FIN ("bad_fin"), a hole given up
                         ("gap"), late bytes that filled it ("gap_filled") or came too late
                         ("late_data"), bytes given up over the max_buffered_bytes limit
                         ("memory_limit"), an in-window RST not at the next byte
                         ("rst_in_window"), a RST the hosts ignored ("rst_ignored"), data
                         after an accepted RST ("data_after_rst"), a frame with one wild
                         timestamp ("wild_timestamp"); at NULL, side = receiving stack.
ON_TIMEOUT (6)           the flow saw no packet for ``idle_timeout`` seconds of packet time; at
                         NULL, side BOTH, right before its ON_CONN_END(reason="timeout").
                         (mOS never raises it.)
ON_TCP_STATE_CHANGE (7)  a stack changed state: at HK_SND for the sender's stack, at HK_RCV for
                         the receiver's; carries old and new state.
ON_ORPHAN (8)            a packet of no tracked flow (non-SYN, a SYN no SYN filter accepted, a
                         non-TCP or non-IP frame, a malformed one): at NULL, side BOTH, to every
                         MONITOR_STREAM listener whose orphan filter accepts the frame.
ON_REXMIT (9)            a segment overlapping bytes this stack already received (and SYN, SYN/ACK
                         and FIN retransmissions): at HK_RCV, side = receiver. Detected from
                         received byte ranges, so it works with buffering off.
ON_CONN_END (10)         once per flow per subscription, with ``reason``: "fin" (both stacks
                         closed by FINs), "rst", "timeout", "eof" (end of the capture),
                         "evicted" (max_flows), "stopped" (monitoring stopped). At HK_SND with the
                         side of the last packet's sender and at HK_RCV with the receiver's; with
                         no packet (timeout, eof, evicted, stopped) HK_SND gets CLI, HK_RCV SVR.
                         It reaches a handle even if it stopped monitoring its sides (it is
                         where user contexts are released).
"""

from __future__ import annotations

import importlib.machinery
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from enum import IntEnum
from typing import Any, ClassVar, Final

__all__ = [
    "Hook", "Side", "TcpState", "EventType", "Filter", "Callback",
    "ON_PKT_IN", "ON_CONN_START", "ON_CONN_NEW_DATA", "ON_ERROR", "ON_TIMEOUT",
    "ON_TCP_STATE_CHANGE", "ON_ORPHAN", "ON_REXMIT", "ON_CONN_END", "BUILTIN_EVENTS",
    "Event", "PktIn", "ConnStart", "ConnNewData", "ErrorEvent", "Timeout", "TcpStateChange",
    "Orphan", "Rexmit", "ConnEnd", "UserEvent",
]


class Hook(IntEnum):
    """Where a callback runs (mOS ``MOS_NULL``, ``MOS_HK_RCV``, ``MOS_HK_SND``)."""

    NULL = 0
    HK_RCV = 1
    HK_SND = 2


class Side(IntEnum):
    """Which emulated stack (mOS ``MOS_SIDE_CLI``, ``MOS_SIDE_SVR``, ``MOS_SIDE_BOTH``)."""

    CLI = 0
    SVR = 1
    BOTH = 2


class TcpState(IntEnum):
    """mOS/mTCP's TCP states, with their numeric values."""

    CLOSED = 0
    LISTEN = 1
    SYN_SENT = 2
    SYN_RCVD = 3
    ESTABLISHED = 4
    FIN_WAIT_1 = 5
    FIN_WAIT_2 = 6
    CLOSE_WAIT = 7
    CLOSING = 8
    LAST_ACK = 9
    TIME_WAIT = 10


# ``(flow, side, event)``: flow is a Flow (for ON_ORPHAN and MONITOR_RAW listeners, a handle on
# the frame at hand), event an Event (for a UDE, and in every filter, a UserEvent whose ``base``
# is the built-in Event). Typed loosely so a callback may annotate the event it registers for.
Filter = Callable[[Any, Side, Any], bool]
Callback = Callable[[Any, Side, Any], Any]

# UDE ids continue above mOS's 12 built-in bits, in definition order (as mOS's g_evid).
_ude_ids = itertools.count(12)


@dataclass(frozen=True, eq=False, slots=True)
class EventType:
    """An event definition: a built-in (a bit) or a UDE (a filter under a base event).

    Compared by identity. ``define_event`` returns the existing UDE for a repeated
    (base, filter, arg), so identity is the definition's identity.
    """

    id: int
    name: str
    base: EventType | None = None
    filter: Filter | None = None
    arg: Any = None
    floating: bool = False
    hooks: tuple[Hook, ...] = (Hook.NULL, Hook.HK_RCV, Hook.HK_SND)
    default_hook: Hook = Hook.NULL
    children: dict[Any, EventType] = field(default_factory=dict, repr=False)
    # the root built-in's bit, stored: read per raised event (the base chain never changes)
    bit: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "bit", 1 << self.root.id)

    @property
    def builtin(self) -> bool:
        return self.base is None

    @property
    def root(self) -> EventType:
        node = self
        while node.base is not None:
            node = node.base
        return node

    def path(self) -> tuple[EventType, ...]:
        """The chain from the built-in root down to this event, root first."""
        chain: list[EventType] = []
        node: EventType | None = self
        while node is not None:
            chain.append(node)
            node = node.base
        return tuple(reversed(chain))

    def __repr__(self) -> str:
        return f"<event {self.name}>" if self.builtin else f"<UDE {self.name} on {self.base!r}>"


_FLOW_HOOKS = (Hook.HK_SND, Hook.HK_RCV)
_ANY_HOOK = (Hook.NULL, Hook.HK_RCV, Hook.HK_SND)

ON_PKT_IN = EventType(0, "ON_PKT_IN", hooks=_ANY_HOOK, default_hook=Hook.HK_RCV)
ON_CONN_START = EventType(2, "ON_CONN_START", hooks=_FLOW_HOOKS, default_hook=Hook.HK_RCV)
ON_CONN_NEW_DATA = EventType(4, "ON_CONN_NEW_DATA", hooks=(Hook.NULL,))
ON_ERROR = EventType(5, "ON_ERROR", hooks=(Hook.NULL,))
ON_TIMEOUT = EventType(6, "ON_TIMEOUT", hooks=(Hook.NULL,))
ON_TCP_STATE_CHANGE = EventType(7, "ON_TCP_STATE_CHANGE", hooks=_FLOW_HOOKS,
                                default_hook=Hook.HK_RCV)
ON_ORPHAN = EventType(8, "ON_ORPHAN", hooks=(Hook.NULL,))
ON_REXMIT = EventType(9, "ON_REXMIT", hooks=(Hook.HK_RCV,), default_hook=Hook.HK_RCV)
ON_CONN_END = EventType(10, "ON_CONN_END", hooks=_FLOW_HOOKS, default_hook=Hook.HK_RCV)

def builtin_event(event_id: int) -> EventType:
    """The built-in event with mOS's ``event_id`` (its bit number)."""
    for etype in BUILTIN_EVENTS:
        if etype.id == event_id:
            return etype
    raise ValueError(f"no built-in event {event_id}")


BUILTIN_EVENTS: tuple[EventType, ...] = (
    ON_PKT_IN, ON_CONN_START, ON_CONN_NEW_DATA, ON_ERROR, ON_TIMEOUT, ON_TCP_STATE_CHANGE,
    ON_ORPHAN, ON_REXMIT, ON_CONN_END,
)

# Final: compiled with mypyc, a Final int is a constant in every module that imports it (any
# other module global is a dictionary lookup at each use)
PKT_IN_BIT: Final = 1 << 0
CONN_START_BIT: Final = 1 << 2
NEW_DATA_BIT: Final = 1 << 4
ERROR_BIT: Final = 1 << 5
TIMEOUT_BIT: Final = 1 << 6
STATE_CHANGE_BIT: Final = 1 << 7
ORPHAN_BIT: Final = 1 << 8
REXMIT_BIT: Final = 1 << 9
CONN_END_BIT: Final = 1 << 10


def next_ude_id() -> int:
    return next(_ude_ids)


# ---------------------------------------------------------------------------------------------
# Raised events: values handed to callbacks and filters as their third argument.
#
# Frozen slotted dataclasses (eq, hash, frozen) with every __init__ written out (init=False):
# the same source compiles with mypyc, which cannot call a base's custom __init__ with a
# subclass's arguments nor build dataclass __init__s around ClassVars. Subclasses set TYPE
# without an annotation: compiled, an annotated one would become a field (and show in repr).
#
# Each __init__ sets its fields one of two ways. Compiled with mypyc (``_NATIVE``), a plain
# assignment is a store into the native object (mypyc does not go through the frozen
# ``__setattr__``, which still guards the fields from everyone else); interpreted, that
# assignment would raise, and the slot descriptor's own setter does it without the frozen
# guard. One object per raise either way, so the cost matters: ON_PKT_IN is one per packet.

# whether this module runs compiled (as records.COMPILED)
_NATIVE: Final = __file__.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


@dataclass(frozen=True, slots=True, init=False, repr=False)
class Event:
    """A raised event. ``type`` is its definition (compare with ``is``), ``hook`` where it ran."""

    TYPE: ClassVar[EventType]
    hook: Hook

    def __init__(self, hook: Hook) -> None:
        # One per raised event (a new object per raise: sinks tell one raise seen through
        # several listeners by identity). See above for the two ways of setting a field.
        if _NATIVE:
            self.hook = hook  # type: ignore[misc]
        else:
            _set_hook(self, hook)

    @property
    def type(self) -> EventType:
        return self.TYPE

    @property
    def name(self) -> str:
        return self.type.name

    def details(self) -> dict[str, Any]:
        """What the event carries, JSON-ready (for the event trace)."""
        return {}

    def __repr__(self) -> str:
        # written out because compiled with mypyc the generated one also lists TYPE
        values = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)
                           if f.name != "TYPE")
        return f"{type(self).__qualname__}({values})"


@dataclass(frozen=True, slots=True, init=False, repr=False)
class PktIn(Event):
    TYPE = ON_PKT_IN


@dataclass(frozen=True, slots=True, init=False, repr=False)
class ConnStart(Event):
    TYPE = ON_CONN_START


@dataclass(frozen=True, slots=True, init=False, repr=False)
class ConnNewData(Event):
    TYPE = ON_CONN_NEW_DATA
    offset: int
    length: int

    def __init__(self, hook: Hook, offset: int, length: int) -> None:
        if _NATIVE:                         # as Event.__init__
            self.hook = hook  # type: ignore[misc]
            self.offset = offset  # type: ignore[misc]
            self.length = length  # type: ignore[misc]
        else:
            _set_hook(self, hook)
            _set_new_data[0](self, offset)
            _set_new_data[1](self, length)

    def details(self) -> dict[str, Any]:
        return {"offset": self.offset, "length": self.length}


@dataclass(frozen=True, slots=True, init=False, repr=False)
class ErrorEvent(Event):
    TYPE = ON_ERROR
    kind: str
    offset: int = 0
    length: int = 0

    def __init__(self, hook: Hook, kind: str, offset: int = 0, length: int = 0) -> None:
        if _NATIVE:                         # as Event.__init__
            self.hook = hook  # type: ignore[misc]
            self.kind = kind  # type: ignore[misc]
            self.offset = offset  # type: ignore[misc]
            self.length = length  # type: ignore[misc]
        else:
            _set_hook(self, hook)
            _set_error[0](self, kind)
            _set_error[1](self, offset)
            _set_error[2](self, length)

    def details(self) -> dict[str, Any]:
        return {"kind": self.kind, "offset": self.offset, "length": self.length}


@dataclass(frozen=True, slots=True, init=False, repr=False)
class Timeout(Event):
    TYPE = ON_TIMEOUT
    idle: float

    def __init__(self, hook: Hook, idle: float) -> None:
        if _NATIVE:                         # as Event.__init__
            self.hook = hook  # type: ignore[misc]
            self.idle = idle  # type: ignore[misc]
        else:
            _set_hook(self, hook)
            _set_timeout[0](self, idle)

    def details(self) -> dict[str, Any]:
        return {"idle": round(self.idle, 6)}


@dataclass(frozen=True, slots=True, init=False, repr=False)
class TcpStateChange(Event):
    TYPE = ON_TCP_STATE_CHANGE
    old: TcpState
    new: TcpState

    def __init__(self, hook: Hook, old: TcpState, new: TcpState) -> None:
        if _NATIVE:                         # as Event.__init__
            self.hook = hook  # type: ignore[misc]
            self.old = old  # type: ignore[misc]
            self.new = new  # type: ignore[misc]
        else:
            _set_hook(self, hook)
            _set_state_change[0](self, old)
            _set_state_change[1](self, new)

    def details(self) -> dict[str, Any]:
        return {"old": self.old.name, "new": self.new.name}


@dataclass(frozen=True, slots=True, init=False, repr=False)
class Orphan(Event):
    TYPE = ON_ORPHAN
    reason: str

    def __init__(self, hook: Hook, reason: str) -> None:
        if _NATIVE:                         # as Event.__init__
            self.hook = hook  # type: ignore[misc]
            self.reason = reason  # type: ignore[misc]
        else:
            _set_hook(self, hook)
            _set_orphan[0](self, reason)

    def details(self) -> dict[str, Any]:
        return {"reason": self.reason}


@dataclass(frozen=True, slots=True, init=False, repr=False)
class Rexmit(Event):
    TYPE = ON_REXMIT
    offset: int
    length: int

    def __init__(self, hook: Hook, offset: int, length: int) -> None:
        if _NATIVE:                         # as Event.__init__
            self.hook = hook  # type: ignore[misc]
            self.offset = offset  # type: ignore[misc]
            self.length = length  # type: ignore[misc]
        else:
            _set_hook(self, hook)
            _set_rexmit[0](self, offset)
            _set_rexmit[1](self, length)

    def details(self) -> dict[str, Any]:
        return {"offset": self.offset, "length": self.length}


@dataclass(frozen=True, slots=True, init=False, repr=False)
class ConnEnd(Event):
    TYPE = ON_CONN_END
    reason: str

    def __init__(self, hook: Hook, reason: str) -> None:
        if _NATIVE:                         # as Event.__init__
            self.hook = hook  # type: ignore[misc]
            self.reason = reason  # type: ignore[misc]
        else:
            _set_hook(self, hook)
            _set_conn_end[0](self, reason)

    def details(self) -> dict[str, Any]:
        return {"reason": self.reason}


@dataclass(frozen=True, slots=True, init=False)
class UserEvent:
    """A UDE raised on top of a built-in event: ``type`` is the UDE, ``base`` the built-in value."""

    type: EventType
    base: Event

    def __init__(self, type: EventType, base: Event) -> None:
        if _NATIVE:                         # one per filter call: as Event.__init__
            self.type = type  # type: ignore[misc]
            self.base = base  # type: ignore[misc]
        else:
            _set_user_event[0](self, type)
            _set_user_event[1](self, base)

    @property
    def hook(self) -> Hook:
        return self.base.hook

    @property
    def name(self) -> str:
        return self.type.name

    def details(self) -> dict[str, Any]:
        return self.base.details()


def renew_new_data(value: ConnNewData, offset: int, length: int) -> None:
    """Give ``value`` new fields: only for a value nobody but the engine holds any more (the
    Emitter's spare: stack/emit.py), which nobody can then tell from a new one."""
    if _NATIVE:
        value.offset = offset  # type: ignore[misc]
        value.length = length  # type: ignore[misc]
    else:
        _set_new_data[0](value, offset)
        _set_new_data[1](value, length)


def _setters(cls: type, *names: str) -> tuple[Callable[[Any, Any], None], ...]:
    """The slot descriptors' ``__set__`` of ``names`` (they bypass a frozen class's guard)."""
    return tuple(cls.__dict__[name].__set__ for name in names)


(_set_hook,) = _setters(Event, "hook")
_set_new_data = _setters(ConnNewData, "offset", "length")
_set_state_change = _setters(TcpStateChange, "old", "new")
_set_rexmit = _setters(Rexmit, "offset", "length")
_set_user_event = _setters(UserEvent, "type", "base")
_set_error = _setters(ErrorEvent, "kind", "offset", "length")
_set_timeout = _setters(Timeout, "idle")
_set_orphan = _setters(Orphan, "reason")
_set_conn_end = _setters(ConnEnd, "reason")
