"""Regression tests from captures: golden event traces, as a pytest plugin and as a library.

- ``trace``: a capture's canonical event trace (what a golden file holds).
- ``golden``: reading, comparing and explaining golden files.
- ``checker``: the ``mos_golden`` fixture's object (``check``, ``expect``, ``trace``).
- ``sidecar``: captures with a ``.mos.json`` sidecar as tests without Python.
- ``plugin``: the pytest hooks, registered by the ``pytest11`` entry point ``mostool``.
"""

from mostool.testing.checker import GoldenChecker, GoldenFailure
from mostool.testing.trace import CheckSpec, Trace, run_trace

__all__ = ["CheckSpec", "GoldenChecker", "GoldenFailure", "Trace", "run_trace"]
