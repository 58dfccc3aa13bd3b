"""MonitorConfig: the frozen, validated configuration of a Monitor.

It lives with the engine (``mostool/stack/config.py``), which must not import the public face;
this module is its public name.
"""

from __future__ import annotations

from mostool.stack.config import ChecksumMode, MonitorConfig, OverlapPolicy

__all__ = ["MonitorConfig", "ChecksumMode", "OverlapPolicy"]
