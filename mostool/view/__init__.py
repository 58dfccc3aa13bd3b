"""The rich terminal view of a running monitor (`mostool watch`).

``model`` gathers what is shown without slowing the engine, ``render`` turns a snapshot into
rich renderables, ``watch`` drives the full-screen display between frames of the source.
"""

from mostool.view.model import Snapshot, ViewModel
from mostool.view.watch import Sampler, Watch, print_summary

__all__ = ["ViewModel", "Snapshot", "Watch", "Sampler", "print_summary"]
