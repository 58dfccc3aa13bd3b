"""``errno`` and failures: :class:`MtcpError`, the process-wide state ``_S`` (mOS keeps
configuration, contexts, the UDE map and errno per process; ``mtcp_destroy`` resets it),
``mtcp_errno``/``mtcp_errmsg``/``mtcp_perror``/``mtcp_raise_errors``."""

from __future__ import annotations

import errno as _errno
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from mostool.compat.mos.constants import NUM_BEV
from mostool.errors import MosError
from mostool.events.types import EventType

if TYPE_CHECKING:
    from mostool.compat.mos.conf import _Conf
    from mostool.compat.mos.context import mctx_t

_T = TypeVar("_T")


class MtcpError(OSError):
    """A failed ``mtcp_*`` call under ``mtcp_raise_errors(True)``. ``lost`` is the number of
    bytes lost for an ``mtcp_peek`` overflow (ENODATA), else 0."""

    def __init__(self, err: int, message: str, lost: int = 0) -> None:
        super().__init__(err, message)
        self.lost = lost


class _State:
    """mOS's process-wide state: configuration, contexts, the UDE id map, errno."""

    def __init__(self) -> None:
        # UDEs and floating events: event_t <-> EventType (the forest itself is mostool's);
        # they survive mtcp_destroy, as mOS's global event forest
        self.ude_by_id: dict[int, EventType] = {}
        self.ude_ids: dict[EventType, int] = {}
        self.next_ude = 1 << NUM_BEV
        self.filters: dict[Any, Callable[..., bool]] = {}
        self.reset()

    def reset(self) -> None:
        self.errno = 0
        self.errmsg = ""
        self.raise_errors = False
        self.conf: _Conf | None = None
        self.contexts: dict[int, mctx_t] = {}
        self.by_engine: dict[int, mctx_t] = {}
        self.signals: dict[int, Any] = {}
        self.destroy_pending = False


_S = _State()


@overload
def _fail(err: int, message: str) -> int: ...
@overload
def _fail(err: int, message: str, ret: _T, lost: int = 0) -> _T: ...
def _fail(err: int, message: str, ret: Any = -1, lost: int = 0) -> Any:
    """Record a failure (errno and message); raise under mtcp_raise_errors, else return ret."""
    _S.errno = err
    _S.errmsg = message
    if _S.raise_errors:
        raise MtcpError(err, message, lost)
    return ret


@overload
def _mos_fail(exc: MosError) -> int: ...
@overload
def _mos_fail(exc: MosError, ret: _T) -> _T: ...
def _mos_fail(exc: MosError, ret: Any = -1) -> Any:
    return _fail(exc.errno, str(exc.args[0]) if exc.args else str(exc), ret)


def mtcp_errno() -> int:
    """The errno of the last failed call (0 if none failed yet); errno is not cleared by
    successful calls, as in C."""
    return _S.errno


def mtcp_errmsg() -> str:
    """A one-line description of the last failure (mostool's detail, e.g. libpcap's message for
    a bad filter)."""
    if not _S.errno:
        return ""
    name = _errno.errorcode.get(_S.errno, str(_S.errno))
    return f"{os.strerror(_S.errno)} [{name}]" + (f": {_S.errmsg}" if _S.errmsg else "")


def mtcp_perror(prefix: str) -> None:
    """``perror(3)`` for this module's errno: ``prefix: description`` on stderr."""
    sys.stderr.write(f"{prefix}: {mtcp_errmsg() or 'Success'}\n")


def mtcp_raise_errors(on: bool = True) -> bool:
    """Make failing calls raise :class:`MtcpError` (an ``OSError`` with the errno) instead of
    returning -1/0/None. Returns the previous setting."""
    old = _S.raise_errors
    _S.raise_errors = bool(on)
    return old
