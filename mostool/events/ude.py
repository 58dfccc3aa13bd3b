"""User-defined events (UDEs): filters hung under a built-in event or under another UDE.

A UDE is a node in one forest rooted at the built-in events. When its root fires for a flow
handle at a hook, the dispatcher walks that handle's subscribed part of the forest depth-first:
each UDE's filter runs, false prunes the subtree, true runs the UDE's callbacks and then its
children (so a chain is the AND of the filters along its path). Filters run lazily: only where
some callback waits below them. Defining the same (base, filter, arg) again returns the same
event, as mOS does, so library code can define its events unconditionally.
"""

from __future__ import annotations

import copyreg
import errno
from typing import Any

from mostool.errors import MosError
from mostool.events.types import EventType, Filter, builtin_event, next_ude_id

__all__ = ["define_event", "alloc_event"]


def _arg_key(arg: Any) -> Any:
    try:
        hash(arg)
    except TypeError:
        return ("id", id(arg))
    return ("value", type(arg), arg)


def define_event(base: EventType, filter: Filter, arg: Any = None,
                 name: str | None = None) -> EventType:
    """A UDE raised when ``base`` fires for a flow and ``filter(flow, side, event)`` is true.

    ``base`` is a built-in event or another UDE. Raises MosError(EINVAL) for a base that is no
    event or a floating event, or a filter that is not callable.
    """
    if not isinstance(base, EventType):
        raise MosError(errno.EINVAL, f"base must be an event, not {type(base).__name__}")
    if base.floating:
        raise MosError(errno.EINVAL, f"{base.name} is a floating event; it cannot be a base")
    if not callable(filter):
        raise MosError(errno.EINVAL, f"filter must be callable, not {type(filter).__name__}")
    key = (filter, _arg_key(arg))
    existing = base.children.get(key)
    if existing is not None:
        return existing
    label = name or str(getattr(filter, "__name__", "ude"))
    ude = EventType(next_ude_id(), label, base=base,
                    filter=filter, arg=arg, hooks=base.hooks, default_hook=base.default_hook)
    base.children[key] = ude
    return ude


def alloc_event(parent: EventType, name: str | None = None) -> EventType:
    """A filter-less ("floating") child of ``parent``, raised only by ``raise_event`` from inside
    ``parent``'s filter; its callbacks then run right after that filter (multi-outcome filters)."""
    if not isinstance(parent, EventType):
        raise MosError(errno.EINVAL, f"parent must be an event, not {type(parent).__name__}")
    if parent.builtin:
        raise MosError(errno.EINVAL, "a floating event needs a UDE parent (whose filter raises it)")
    ev_id = next_ude_id()
    return EventType(ev_id, name or f"{parent.name}.{ev_id}", base=parent, floating=True,
                     hooks=parent.hooks, default_hook=parent.default_hook)


# -- pickling (Dask, multiprocessing) -------------------------------------------------------------
# By definition, not by field: a built-in comes back as the same object (``event.type is
# ON_CONN_START`` holds in a worker), a UDE is defined again under its unpickled base, where
# ``define_event`` interns it. Registered here rather than as ``EventType.__reduce__``: the
# vocabulary module stays a leaf, and the compiled (mypyc) class cannot be restored field by field.


def _restore(base: EventType, filter: Filter | None, arg: Any, name: str,
             floating: bool) -> EventType:
    if floating or filter is None:
        return alloc_event(base, name)
    return define_event(base, filter, arg, name)


def _reduce(etype: EventType) -> tuple[Any, ...]:
    if etype.base is None:
        return (builtin_event, (etype.id,))
    return (_restore, (etype.base, etype.filter, etype.arg, etype.name, etype.floating))


copyreg.pickle(EventType, _reduce)
