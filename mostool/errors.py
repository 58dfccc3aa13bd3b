"""Exceptions raised for misuse of the API (anomalies in the traffic are events, not exceptions)."""

from __future__ import annotations

import errno as _errno

__all__ = ["MosError", "BytesLost", "CallbackError", "DistError"]


class MosError(Exception):
    """Misuse of a monitor, listener or flow handle; `errno` says which kind (as mOS sets errno)."""

    def __init__(self, errno: int, message: str) -> None:
        super().__init__(message)
        self.errno = errno

    def __str__(self) -> str:
        name = _errno.errorcode.get(self.errno, str(self.errno))
        return f"[{name}] {self.args[0]}"


class BytesLost(MosError):
    """`peek` found that bytes this handle had not read yet were pushed out of the buffer.

    The handle's cursor has jumped to the oldest byte still buffered; the next `peek` continues
    from there (mOS: `mtcp_peek` returns -(bytes lost) with errno ENODATA).
    """

    def __init__(self, lost: int, offset: int) -> None:
        super().__init__(_errno.ENODATA, f"{lost} unread bytes were lost to buffer overflow")
        self.lost = lost
        self.offset = offset


class CallbackError(Exception):
    """A user callback or UDE filter raised while the monitor ran in strict mode."""

    def __init__(self, where: str, original: BaseException) -> None:
        super().__init__(f"{where}: {type(original).__name__}: {original}")
        self.where = where
        self.original = original


class DistError(Exception):
    """A distributed run cannot go on (unreadable input on a worker, a lost scratch, ...).

    Lives here, not in ``mostool.dist``, so that every ``dist`` module can raise it without
    importing another (``mostool.dist`` re-exports it)."""
