"""What the tests of the in-place record loops (stack/records.py, stack/record_blocks.py) share."""

from __future__ import annotations

from mostool import Monitor, MonitorConfig


def monitor(config: MonitorConfig | None = None, block_size: int | None = None) -> Monitor:
    """A Monitor whose engine reads records the build's way (``block_size`` None), or through
    record_blocks' loop (the compiled build's choice; on the pure build too) with blocks of
    ``block_size`` bytes (64: every record crosses a block edge)."""
    mon = Monitor(config if config is not None else MonitorConfig())
    if block_size is not None:
        mon.engine.records.in_blocks = True
        mon.engine.records.block_size = block_size
    return mon
