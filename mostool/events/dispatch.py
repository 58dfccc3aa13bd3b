"""Subscription sets and the dispatcher.

Theory of operation. A registration is an (event, hook, callback) triple. The set of triples a
flow handle listens to is a ``SubscriptionSet``: immutable, interned in a ``SubscriptionRegistry``
so that every flow with the same registrations points at one object (mOS's "scalable event
system"; a million flows with the same callbacks cost one set). Registering or removing a
callback on one flow swaps its pointer to another interned set; flows that converge on the same
registrations share again.

Each set is compiled once into, per hook, a bit mask of the built-in events with anything below
them (so an event nobody wants costs one ``&``) and a tree per (hook, built-in): the built-in's
own callbacks and the UDE children that lead to callbacks. Dispatch walks that tree depth-first:
a UDE filter that returns false prunes its subtree; floating events raised with ``raise_event``
inside a filter run right after that filter returns. A built-in with no UDE child below it is
compiled further into a plain tuple of callbacks. ``plan`` holds, per (hook, built-in), that
tuple or the tree node, flat: slot ``hook * PLAN_WIDTH + event id`` (``plan_slot``), one list
index for the engine's funnel (stack/emit.py), which calls a plain tuple inline.
"""

from __future__ import annotations

import errno
import itertools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final

from mostool.errors import CallbackError, MosError
from mostool.events.types import Callback, Event, EventType, Hook, Side, UserEvent

if TYPE_CHECKING:
    from mostool.stack.flow import Flow

__all__ = ["Registration", "SubscriptionSet", "SubscriptionRegistry", "Dispatcher",
           "PLAN_WIDTH", "plan_slot"]

Registration = tuple[EventType, Hook, Callback]
ErrorSink = Callable[[str, "Flow | None", "Event | UserEvent", BaseException], None]

# plan slots per hook: the built-in event ids (mOS's bit numbers) are below 12
PLAN_WIDTH: Final = 16


def plan_slot(hook: int, event_id: int) -> int:
    """Where ``SubscriptionSet.plan`` holds what a built-in at a hook runs."""
    return hook * PLAN_WIDTH + event_id


class _Node:
    __slots__ = ("type", "callbacks", "children")

    def __init__(self, type: EventType) -> None:
        self.type = type
        self.callbacks: list[Callback] = []
        self.children: list[_Node] = []


class SubscriptionSet:
    """An immutable, interned set of registrations, compiled for dispatch."""

    __slots__ = ("entries", "masks", "trees", "floating", "plan", "__weakref__")

    def __init__(self, entries: frozenset[Registration], order: dict[Registration, int]) -> None:
        self.entries = entries
        self.masks = [0, 0, 0]                      # indexed by Hook
        self.trees: list[dict[int, _Node]] = [{}, {}, {}]
        self.floating: list[dict[EventType, _Node]] = [{}, {}, {}]
        nodes: dict[tuple[Hook, EventType], _Node] = {}
        for entry in sorted(entries, key=order.__getitem__):
            etype, hook, callback = entry
            if etype.floating:
                node = self.floating[hook].get(etype)
                if node is None:
                    node = self.floating[hook][etype] = _Node(etype)
                node.callbacks.append(callback)
                continue
            self._node(nodes, hook, etype).callbacks.append(callback)
            self.masks[hook] |= etype.bit
        # A floating event's callbacks are reachable only through its parent's filter: the
        # path to the parent must exist so that filter gets evaluated.
        for hook in Hook:
            for etype in self.floating[hook]:
                assert etype.base is not None
                self._node(nodes, hook, etype.base)
                self.masks[hook] |= etype.bit
        # per (hook, built-in), its callbacks (a tuple) when no UDE hangs below it, else its
        # tree node, else None: the common case then costs no walk and no call layer per
        # callback
        self.plan: list[tuple[Callback, ...] | _Node | None] = [None] * (3 * PLAN_WIDTH)
        for hook in Hook:
            for tid, node in self.trees[hook].items():
                self.plan[plan_slot(hook, tid)] = (node if node.children
                                                   else tuple(node.callbacks))

    def matching(self, event: EventType, hook: Hook, callback: Callback | None
                 ) -> list[Registration]:
        """The registrations of ``event`` at ``hook`` (of ``callback`` only, if given): what
        ``off`` removes, for a listener and for a flow alike."""
        return [e for e in self.entries
                if e[0] is event and e[1] == hook and (callback is None or e[2] == callback)]

    def _node(self, nodes: dict[tuple[Hook, EventType], _Node], hook: Hook,
              etype: EventType) -> _Node:
        """The tree node for ``etype`` at ``hook``, creating the path from its root."""
        parent: _Node | None = None
        for step in etype.path():
            node = nodes.get((hook, step))
            if node is None:
                node = nodes[(hook, step)] = _Node(step)
                if parent is None:
                    self.trees[hook][step.id] = node
                else:
                    parent.children.append(node)
            parent = node
        assert parent is not None
        return parent

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return f"<SubscriptionSet of {len(self.entries)} registrations>"


class SubscriptionRegistry:
    """Interns subscription sets: equal registrations give the identical set object."""

    def __init__(self) -> None:
        self._sets: dict[frozenset[Registration], SubscriptionSet] = {}
        self._order: dict[Registration, int] = {}
        self._counter = itertools.count()
        self.empty = self.intern(frozenset())

    def intern(self, entries: frozenset[Registration]) -> SubscriptionSet:
        found = self._sets.get(entries)
        if found is None:
            for entry in entries:
                if entry not in self._order:
                    self._order[entry] = next(self._counter)
            found = self._sets[entries] = SubscriptionSet(entries, self._order)
        return found

    def with_added(self, base: SubscriptionSet, entries: Iterable[Registration]
                   ) -> SubscriptionSet:
        new = list(entries)
        for entry in new:
            self._order.setdefault(entry, next(self._counter))
        return self.intern(base.entries.union(new))

    def with_removed(self, base: SubscriptionSet, entries: Iterable[Registration]
                     ) -> SubscriptionSet:
        return self.intern(base.entries.difference(entries))

    def __len__(self) -> int:
        return len(self._sets)


class Dispatcher:
    """Runs callbacks and UDE filters; catches what user code raises (counted, reported)."""

    def __init__(self, *, strict: bool, on_error: ErrorSink) -> None:
        self.strict = strict
        self.on_error = on_error
        self.callback_errors = 0
        self._raising: list[list[EventType] | None] = []    # per filter running: raised

    def dispatch(self, subs: SubscriptionSet, hook: Hook, flow: Any, side: Side,
                 value: Event) -> None:
        """Run what ``subs`` registered for ``value`` at ``hook`` (Engine._emit inlines the
        plain-callbacks case of this). ``flow`` is a Flow, the engine's handle on an orphan
        frame, or None (typed Any: compiled with mypyc, a union is checked at run time)."""
        entry = subs.plan[plan_slot(hook, value.TYPE.id)]
        if entry is None:
            return
        if isinstance(entry, tuple):
            for callback in entry:
                try:
                    callback(flow, side, value)
                except Exception as exc:  # noqa: BLE001 - user code: count, report, go on
                    self.report_failure("callback", flow, value, exc)
        else:
            self.walk(subs, hook, entry, flow, side, value)

    def walk(self, subs: SubscriptionSet, hook: int, node: _Node, flow: Any,
             side: Side, value: Event) -> None:
        """A built-in's tree with UDEs below: its own callbacks, then each UDE subtree."""
        for callback in node.callbacks:
            try:
                callback(flow, side, value)
            except Exception as exc:  # noqa: BLE001 - user code: count, report, go on
                self.report_failure("callback", flow, value, exc)
        for child in node.children:
            self._visit(subs, hook, child, flow, side, value)

    def _visit(self, subs: SubscriptionSet, hook: int, node: _Node, flow: Any,
               side: Side, base: Event) -> None:
        etype = node.type
        event = UserEvent(etype, base)
        assert etype.filter is not None
        raising = self._raising
        raising.append(None)                # a list only once the filter raises an event
        try:
            passed = bool(etype.filter(flow, side, event))
        except Exception as exc:  # noqa: BLE001 - user code: count, report, go on
            self.report_failure("filter", flow, event, exc)
            passed = False
        finally:
            raised = raising.pop()
        if passed:
            for callback in node.callbacks:
                try:
                    callback(flow, side, event)
                except Exception as exc:  # noqa: BLE001 - user code: count, report, go on
                    self.report_failure("callback", flow, event, exc)
            for child in node.children:
                self._visit(subs, hook, child, flow, side, base)
        if raised is not None:
            for child_type in raised:
                floating = subs.floating[hook].get(child_type)
                if floating is not None:
                    child_event = UserEvent(child_type, base)
                    for callback in floating.callbacks:
                        self._call(callback, flow, side, child_event)

    def _call(self, callback: Callback, flow: Any, side: Side,
              event: Event | UserEvent) -> None:
        try:
            callback(flow, side, event)
        except Exception as exc:  # noqa: BLE001 - user code: count, report, go on
            self.report_failure("callback", flow, event, exc)

    def report_failure(self, what: str, flow: Any, event: Event | UserEvent,
                       exc: Exception) -> None:
        """User code (a callback, filter, timer or hook: ``what``) raised: count it, and raise
        CallbackError when strict, else tell the error sink."""
        self.callback_errors += 1
        if self.strict:
            name = getattr(getattr(flow, "client", None), "__str__", lambda: "-")()
            raise CallbackError(f"{what} for {event.name} on flow {name}", exc) from exc
        self.on_error(what, flow, event, exc)


    def raise_event(self, child: EventType) -> None:
        """Raise a floating event from inside a UDE filter (mOS ``mtcp_raise_event``)."""
        if not isinstance(child, EventType) or not child.floating:
            raise MosError(errno.EINVAL, "only events made by alloc_event can be raised")
        if not self._raising:
            raise MosError(errno.EPERM, "raise_event works only inside a UDE filter")
        raised = self._raising[-1]
        if raised is None:
            raised = self._raising[-1] = []
        raised.append(child)


