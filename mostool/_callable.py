"""Let a submodule be called like the function it is named after.

``mostool.replay`` and ``mostool.live`` are both modules and the functions users call
(``mos.replay("x.pcap")``, ``mos.live("eth0")``). Python sets a package attribute to the
submodule whenever the submodule is imported, so a plain function of that name in the package
would be replaced by the module; making the module callable keeps both spellings working.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any


def make_callable(module_name: str, function: Callable[..., Any]) -> None:
    module = sys.modules[module_name]

    class _CallableModule(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return function(*args, **kwargs)

    module.__class__ = _CallableModule
