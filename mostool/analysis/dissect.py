"""tshark dissection of chosen packets through pyshark, safe inside a running event loop.

pyshark drives tshark with asyncio. Inside a Jupyter kernel an event loop already runs in the
main thread, and pyshark's ``run_until_complete`` then fails ("Cannot run the event loop while
another loop is running", pyshark #360, #542). So each dissection runs in a worker thread with an
event loop of its own, and the caller waits for the thread; no global loop is patched
(nest_asyncio is not needed).

Packet numbers are the capture's numbering (``packet`` in mostool's tables). One capture file
is handed to tshark as it is, with a ``frame.number`` filter; several files (merged by time,
numbered across the merge) are first written as one temporary pcap of just the wanted packets,
so tshark's numbering cannot disagree with ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from typing import Any

__all__ = ["dissect", "DissectError"]

_MAX_FILTER_TERMS = 500


class DissectError(RuntimeError):
    """tshark or pyshark is missing, or tshark failed."""


def _tshark() -> str:
    path = shutil.which("tshark")
    if path is None:
        raise DissectError("tshark is not installed (Debian: apt-get install tshark)")
    return path


def _in_thread(path: str, display_filter: str | None) -> list[Any]:
    try:
        import pyshark
    except ImportError as exc:
        raise DissectError("dissect needs pyshark (pip install 'mostool[notebook]')") from exc
    result: list[Any] = []
    failure: list[BaseException] = []

    def work() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        cap = None
        try:
            cap = pyshark.FileCapture(path, display_filter=display_filter, keep_packets=True,
                                      tshark_path=_tshark(), eventloop=loop)
            cap.load_packets()
            result.extend(cap._packets)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            failure.append(exc)
        finally:
            if cap is not None:
                with contextlib.suppress(Exception):    # closing a finished tshark
                    cap.close()
            loop.close()

    thread = threading.Thread(target=work, name="mostool-dissect", daemon=True)
    thread.start()
    thread.join()
    if failure:
        error = failure[0]
        if isinstance(error, DissectError):
            raise error
        raise DissectError(f"tshark could not dissect {os.path.basename(path)}: "
                           f"{type(error).__name__}: {error}") from error
    return result


def _extract(files: Sequence[str], numbers: set[int], out_path: str) -> None:
    """Write the wanted packets (global numbering of the merged files) to a pcap."""
    from mostool.pcapfile import PcapWriter
    from mostool.replay import ReplaySource
    src = ReplaySource(list(files))
    picked = []
    try:
        n = 0
        for frame in src:
            if frame[1] < 0:
                continue
            n += 1
            if n in numbers:
                picked.append(frame)
                if len(picked) == len(numbers):
                    break
    finally:
        src.close()
    writer = PcapWriter(out_path)
    try:
        for ts, linktype, data, wire_len in picked:
            writer.write(ts, linktype, data, wire_len)
    finally:
        writer.close()
    if writer.error:                  # the writer keeps its first error instead of raising
        raise OSError(writer.error)


def dissect(files: Sequence[str], numbers: Sequence[int]) -> list[Any]:
    """pyshark packets for ``numbers`` (in that order); KeyError for a number not there."""
    wanted = sorted(set(numbers))
    if not wanted:
        return []
    if any(n < 1 for n in wanted):
        raise KeyError(f"packet numbers start at 1, not {min(wanted)}")
    _tshark()
    if len(files) == 1 and len(wanted) <= _MAX_FILTER_TERMS:
        terms = " or ".join(f"frame.number == {n}" for n in wanted)
        packets = _in_thread(files[0], terms)
        by_number = {int(p.number): p for p in packets}
    else:
        with tempfile.TemporaryDirectory(prefix="mostool-dissect-") as tmp:
            path = os.path.join(tmp, "packets.pcap")
            _extract(files, set(wanted), path)
            packets = _in_thread(path, None)
        by_number = dict(zip(wanted, packets, strict=False))
    missing = [n for n in wanted if n not in by_number]
    if missing:
        names = ", ".join(os.path.basename(f) for f in files)
        raise KeyError(f"no packet {missing[0]} in {names}")
    return [by_number[n] for n in numbers]
