"""``-r -`` and ``-w -``: a capture read from standard input, a pcap written to standard output.

Standard input cannot be mapped, and the readers read a capture in place (an mmap) and sort
several captures by time, so ``-r -`` first copies standard input into a private temporary file
(removed when the process exits) and reads that: the same reader, the same numbering and the
same results as ``-r FILE``. ``-w -`` hands the one pcap writer (``mostool.pcapfile.PcapWriter``,
used by replays and live captures alike) the binary standard output, which it flushes instead of
closing.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from typing import IO, Any, cast

__all__ = ["STDIO", "spool_stdin", "open_output"]

STDIO = "-"


def spool_stdin(stream: IO[bytes] | None = None) -> str:
    """Copy standard input (or ``stream``) into a temporary file; its path."""
    src = stream if stream is not None else sys.stdin.buffer
    folder = tempfile.mkdtemp(prefix="mostool-stdin-")
    atexit.register(shutil.rmtree, folder, True)
    path = os.path.join(folder, "stdin.pcap")
    with open(path, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    return path


def open_output(path: str) -> IO[bytes]:
    """The binary file ``path`` opened for writing, or standard output for ``-``."""
    if path == STDIO:
        stdout: Any = sys.__stdout__ if sys.__stdout__ is not None else sys.stdout
        return cast(IO[bytes], stdout.buffer)
    return open(path, "wb")  # noqa: SIM115 - the caller closes it
