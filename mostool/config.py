"""MonitorConfig, where users import it from: defined in the engine's package
(mostool/stack/config.py), so that the engine imports nothing from the public face."""

from mostool.stack.config import ChecksumMode, MonitorConfig, OverlapPolicy

__all__ = ["MonitorConfig", "ChecksumMode", "OverlapPolicy"]
