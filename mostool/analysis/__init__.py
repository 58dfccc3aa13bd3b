"""mostool in a notebook: ``mos.analyze()`` (DataFrames, plots, streams, tshark dissection) and
the stepper (``mon.stepper(source)``). Needs the ``notebook`` extra (pandas, matplotlib, pyshark).

- ``capture``: ``analyze`` and ``Capture``, the one-line entry point.
- ``runs``: the passes over a capture (flows, events, one flow in detail).
- ``tables``: typed, column-wise DataFrames of flows and events.
- ``plots``: time-sequence, throughput and event-timeline figures.
- ``dissect``: pyshark in a worker thread with its own event loop.
- ``stepper``: packet-by-packet runs, ``run_until`` an event or a predicate.
- ``html``: notebook display of live flows and events (registered with IPython on import).
"""

from mostool.analysis.capture import Capture, FlowView, StreamBytes, analyze
from mostool.analysis.html import register as _register_display
from mostool.analysis.stepper import Hit, Stepper

__all__ = ["Capture", "FlowView", "Hit", "Stepper", "StreamBytes", "analyze"]

_register_display()
