"""How a flow's half-streams are made, and what stands in for a side that has none yet.

A connection (stack/connection.py) makes each side's ``HalfStream`` only when that side first
has something to keep: a payload byte, a FIN, a hole, a retransmitted SYN, a per-flow socket
option. An idle flow and many short ones never need one for a side, and a stream is the
largest part of a flow after the connection itself. What a stream is made with is fixed when
its flow is (``listener.stream_params``, from the listeners of that moment): a ``StreamSpec``,
shared by every flow of the same settings (``stream_spec``).

A spec also holds, per side, one shared *empty* stream made with those settings. Readers get it
for a side with no stream (``Connection.stream``): it answers exactly as the side's own stream
would before its first byte (nothing delivered, buffered or waiting, no gaps, the digest of no
bytes, the side's buffer size and overlap policy). Nobody may write to it: writers take the
side's own stream (``Connection.own_stream``, which makes it). ``check_empties`` says loudly
when a writer took the shared one by mistake (the test suite runs it after every test).
"""

from __future__ import annotations

from typing import Final

from mostool.stack.stream import HalfStream

__all__ = ["StreamSpec", "stream_spec", "check_empties"]


class StreamSpec:
    """Per side, the buffer size and overlap policy of a flow's streams; whether they hash,
    their out-of-order limits, mOS compatibility; and the two shared empty streams."""

    __slots__ = ("bufsize0", "bufsize1", "hashing", "last0", "last1", "max_ooo_segments",
                 "max_ooo_bytes", "mos_compat", "empty0", "empty1")

    def __init__(self, bufsize0: int, bufsize1: int, hashing: bool, last0: bool, last1: bool,
                 max_ooo_segments: int, max_ooo_bytes: int, mos_compat: bool) -> None:
        self.bufsize0 = bufsize0
        self.bufsize1 = bufsize1
        self.hashing = hashing
        self.last0 = last0                  # overlap policy "last"
        self.last1 = last1
        self.max_ooo_segments = max_ooo_segments
        self.max_ooo_bytes = max_ooo_bytes
        self.mos_compat = mos_compat
        self.empty0 = self.make(0)          # read-only: see the module docstring
        self.empty1 = self.make(1)
        self.empty0.shared = self.empty1.shared = True

    def make(self, side: int) -> HalfStream:
        """A new stream for side ``side`` (what that side's stack receives)."""
        st = HalfStream(self.bufsize0 if side == 0 else self.bufsize1, self.hashing,
                        self.last0 if side == 0 else self.last1,
                        self.max_ooo_segments, self.max_ooo_bytes)
        if self.mos_compat:
            st.rexmit_needs_buffer = True   # mOS: a retransmission only against buffered bytes
            st.fill_late = False            # mOS drops bytes inside a given-up hole
        return st

    def written(self) -> str | None:
        """What differs in a shared empty stream from a new one (None: nothing, as it must)."""
        for side, st in ((0, self.empty0), (1, self.empty1)):
            new = self.make(side)
            for name in ("nxt", "delivered", "bufsize", "chunk_head", "buffered", "fin_off",
                         "keep_bytes", "overlap_last", "rexmit_needs_buffer", "fill_late"):
                if getattr(st, name) != getattr(new, name):
                    return f"side {side}: {name} is {getattr(st, name)!r}"
            if (not st.shared or st.chunks or st.chunk_offs or st.ooo_starts or st.new_runs
                    or not st.rare_untouched()):
                return f"side {side}: it holds bytes, runs or rare values"
            if st.digest() != new.digest():
                return f"side {side}: its digest changed"
        return None


_SPECS: Final[dict[tuple[int, int, bool, bool, bool, int, int, bool], StreamSpec]] = {}


def stream_spec(bufsize0: int, bufsize1: int, hashing: bool, last0: bool, last1: bool,
                max_ooo_segments: int, max_ooo_bytes: int, mos_compat: bool) -> StreamSpec:
    """The shared ``StreamSpec`` of these settings (a few per process: at most 64 are kept,
    any more are made per flow)."""
    key = (bufsize0, bufsize1, hashing, last0, last1, max_ooo_segments, max_ooo_bytes,
           mos_compat)
    found = _SPECS.get(key)
    if found is None:
        found = StreamSpec(bufsize0, bufsize1, hashing, last0, last1, max_ooo_segments,
                           max_ooo_bytes, mos_compat)
        if len(_SPECS) < 64:
            _SPECS[key] = found
    return found


def check_empties() -> None:
    """Raise AssertionError if a shared empty stream was written to: a writer used
    ``Connection.stream`` where it needed ``Connection.own_stream``."""
    for spec in _SPECS.values():
        wrong = spec.written()
        if wrong is not None:
            raise AssertionError(f"a shared empty half-stream was written to ({wrong}): "
                                 "writers must take Connection.own_stream(side)")
