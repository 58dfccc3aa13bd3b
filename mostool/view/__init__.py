"""The rich terminal view of a running monitor (`mostool watch`).

``model`` gathers what is shown without slowing the engine, ``render`` turns a snapshot into
rich renderables, ``watch`` drives the full-screen display between frames of the source.

The names below are imported on first use (PEP 562): commands that only need ``model``'s
constants (every ``mostool`` command builds the watch parser) do not load ``rich``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mostool.view.model import Snapshot, ViewModel
    from mostool.view.watch import Sampler, Watch, print_summary

__all__ = ["ViewModel", "Snapshot", "Watch", "Sampler", "print_summary"]

_HOME = {"ViewModel": "model", "Snapshot": "model", "Watch": "watch", "Sampler": "watch",
         "print_summary": "watch"}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
