"""One receiving side's byte stream: received ranges, out-of-order runs, a bounded buffer.

Theory of operation. Offsets are 64-bit stream offsets: 0 is the first byte after the peer's
SYN (or the first byte seen, for a flow picked up midstream). ``nxt`` is the in-order point
(rcv_nxt): every byte below it has either been delivered or skipped as a gap. The sequence
number of offset 0 is the connection's (``Connection.base``), which maps sequence numbers to
offsets (``seq_offset``): a stream is made only once its side receives something, and a side
that never does has none.

* A segment at ``nxt`` is delivered at once: appended to the buffer (if this side buffers) and
  the hash (if hashing), and recorded as a new in-order run for ON_CONN_NEW_DATA.
* A segment beyond ``nxt`` waits in the out-of-order store: coalesced, non-overlapping runs
  keyed by start (bytes when anyone needs bytes, else only the run's end). When the hole before
  the first run fills, runs are delivered in order.
* A hole is given up (``skip_to``) when the peer acknowledges past it (the host has the bytes, the
  capture missed them), when the store exceeds its limits, and when the flow ends; each skip is a
  recorded gap. Bytes arriving later inside the newest gap, with nothing delivered beyond it yet
  (a capture point often records an ACK before the data it covers), fill it: the gap is
  withdrawn (or, if it was already reported, each filled piece is a ``filled_runs`` entry, ON_ERROR
  "gap_filled") and the bytes are delivered in order. Bytes arriving inside any other skipped gap
  are "late" and dropped, each piece recorded in ``late_runs`` (ON_ERROR "late_data").
* Overlaps: bytes already received (delivered, or waiting out of order) make the segment a
  retransmission (ON_REXMIT). Where both copies are at hand, differing bytes are a conflict
  (ON_ERROR "overlap_conflict"); the overlap policy says which copy the stream keeps. A byte
  already delivered stays delivered: "last" can only rewrite bytes still buffered or waiting.
* The buffer keeps at least ``bufsize`` of the newest in-order bytes as a list of chunks (the
  segments' payloads, copied once from the frame); older chunks are dropped whole. A segment
  taken in place from the capture (``take_span``: records.py's readers) is not copied at all:
  its chunk is a span, the int ``capture offset << 16 | length`` into ``src`` (the records'
  buffer, which outlives the run's flows); ``own_bytes`` copies the spans out before the
  source lets the buffer go (``RecordRefs.detach``), and every reader here resolves them.

The outbox, the one hand-off to the event side: ``receive``, ``skip_to`` and ``finish`` leave
what the events of a step must say in ``new_runs`` (in-order runs: ON_CONN_NEW_DATA),
``gap_runs`` (holes given up: ON_ERROR "gap") and ``conflict_runs`` (differing overlaps:
ON_ERROR "overlap_conflict"), as (offset, length) pairs. The Emitter (stack/emit.py) reads and
empties them once per step; everyone else only tests them for being non-empty, or discards them
unread (``discard_outbox``) when nobody may be told any more.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left, bisect_right
from typing import Any, Final, TypeVar

from mostool.stack.stream_extra import NO_OOO, NONE, Ints, Pairs, Rare, ooo_limits

__all__ = ["HalfStream", "NEW", "REXMIT", "CONFLICT", "LATE", "M32", "seq_offset"]

# (Final: compiled with mypyc, any other module global is a dictionary lookup at every use)
M32: Final = 0xFFFFFFFF
_SMALL: Final = 512     # segments shorter than this are coalesced in the buffer ...
_TAIL: Final = 4096     # ... into a tail chunk of up to this many bytes (and 1/8 of the buffer)
NEW: Final = 1          # in-order data grew
REXMIT: Final = 2       # the segment overlapped bytes already received
CONFLICT: Final = 4     # ... and some overlapping bytes differed
LATE: Final = 8         # bytes arrived inside a hole that had already been skipped

_T = TypeVar("_T")
Chunk = bytes | bytearray | int       # an int: a span into HalfStream.src (module docstring)
Chunks = list[Chunk] | tuple[Chunk, ...]
_SPAN_LEN: Final = 0xFFFF              # a span's length field (an IPv4 payload always fits)

# Most flows never have a gap, an out-of-order run or a conflict, and many never buffer a byte:
# a container a stream may never need starts as one of these shared empty stand-ins and becomes
# its own list (dict) on first use, which saves ~1 KB and 16 GC-tracked objects per flow. Both
# are empty and falsy, so readers need not care; writers check isinstance (or use _grow). The
# values only such streams need live in a StreamExtra (stack/stream_extra.py, base class Rare).
_NONE = NONE
_NO_OOO = NO_OOO


def seq_offset(seq: int, base: int, nxt: int) -> int:
    """The stream offset of ``seq`` in a stream whose offset 0 is sequence number ``base``
    (-1: none yet, offset 0), unwrapped to the 2**31 window around the in-order point ``nxt``."""
    if base < 0:
        return 0
    d = (seq - base - nxt) & M32
    if d >= 0x80000000:
        d -= 0x100000000
    return nxt + d


def _grow(seq: list[_T] | tuple[_T, ...], item: _T) -> list[_T]:
    """``seq`` with ``item`` appended: in place once it is a list, else a new list."""
    if isinstance(seq, list):
        seq.append(item)
        return seq
    return [*seq, item]


def _length(chunk: Chunk) -> int:
    """A buffered chunk's length (a span's is in its low 16 bits)."""
    return chunk & _SPAN_LEN if isinstance(chunk, int) else len(chunk)


class HalfStream(Rare):
    """The bytes one emulated stack receives (sent by its peer)."""

    __slots__ = (
        "nxt", "delivered", "bufsize", "chunks", "chunk_offs", "chunk_head", "buffered",
        "ooo_starts", "ooo_limits", "hasher", "new_runs", "fin_off",
        "keep_bytes", "overlap_last", "rexmit_needs_buffer", "fill_late", "shared", "src",
    )

    # (positional too: a class called with keywords costs ~0.3 us more, per flow and side)
    def __init__(self, bufsize: int, hashing: bool, overlap_last: bool,
                 max_ooo_segments: int, max_ooo_bytes: int) -> None:
        # gaps, ooo (start -> bytearray run, or its end when no one needs bytes), the counters
        # and the ON_ERROR outbox (conflict_runs, gap_runs, late_runs, filled_runs): Rare's
        super().__init__()
        self.nxt = 0                        # in-order point (stream offset)
        self.delivered = 0                  # bytes of the reassembled stream, gaps skipped
        self.bufsize = bufsize
        self.chunks: Chunks = _NONE         # buffered in-order bytes (see _buffer)
        self.chunk_offs: Ints = _NONE
        self.chunk_head = 0                 # chunks before this index have been dropped
        self.buffered = 0
        self.ooo_starts: Ints = _NONE
        self.ooo_limits = ooo_limits(max_ooo_segments, max_ooo_bytes)   # shared
        self.hasher = hashlib.sha256() if hashing else None
        self.new_runs: Pairs = _NONE        # drained by the engine: NEW_DATA
        self.fin_off: int | None = None
        # (the flags together: a compiled stream packs them in one word)
        self.keep_bytes = bufsize > 0 or hashing
        self.overlap_last = overlap_last
        # mOS compatibility: a retransmission is seen only against bytes still buffered
        self.rexmit_needs_buffer = False
        # late bytes may fill the newest gap (mOS drops them: False in mOS-compatible mode)
        self.fill_late = True
        # one of a StreamSpec's empty streams, which stand for sides that have none: read-only
        self.shared = False
        self.src: Any = None                # what the buffer's spans point into (take_span)

    # -- receiving ----------------------------------------------------------------------------

    def receive(self, off: int, data: bytes | None, n: int) -> int:
        """Take ``n`` payload bytes at stream offset ``off`` (``data`` None when no one needs the
        bytes). Returns NEW/REXMIT/CONFLICT/LATE flags; details in new_runs, conflict_runs,
        rexmit_off/rexmit_len."""
        flags = 0
        if off < 0:                       # bytes before the stream's first byte
            if off + n <= 0:
                return REXMIT
            cut = -off
            data = data[cut:] if data is not None else None
            n -= cut
            off = 0
        end = off + n
        nxt = self.nxt
        if off < nxt:
            old_end = end if end < nxt else nxt
            if self._was_received(off, old_end) and (
                    not self.rexmit_needs_buffer or (self.bufsize and old_end > self.head)):
                flags |= REXMIT
                self.rexmit += 1
                self.rexmit_bytes += old_end - off
                self.rexmit_off = off
                self.rexmit_len = old_end - off
                if data is not None and self.bufsize:
                    flags |= self._against_buffer(off, data[:old_end - off])
            elif self.fill_late and self._fill_gap(
                    off, None if data is None else data[:old_end - off], old_end - off):
                flags |= NEW
            else:
                flags |= LATE
                self.late_bytes += old_end - off
                self.late_runs = _grow(self.late_runs, (off, old_end - off))
            if end <= nxt:
                return flags
            if data is not None:
                data = data[nxt - off:]
            n = end - nxt
            off = nxt
        if off == nxt and not (self.ooo_starts and self.ooo_starts[0] < end):
            self._deliver(off, data, n)
            if self.ooo_starts and self.ooo_starts[0] <= self.nxt:
                self._flush()
            return flags | NEW
        flags |= self._insert_ooo(off, data, n)
        if self.ooo_starts[0] <= self.nxt:
            self._flush()
            flags |= NEW
        else:
            # over a limit: give up holes, oldest first, until the store is within both
            limits = self.ooo_limits
            while self.ooo_starts and (len(self.ooo_starts) > limits.segments
                                       or self.ooo_bytes > limits.nbytes):
                self.skip_to(self.ooo_starts[0])
                flags |= NEW
        return flags

    def skip_to(self, target: int) -> bool:
        """Give up the holes below ``target``: record them as gaps and deliver what waits behind
        them. True if anything was delivered."""
        before = self.delivered
        while self.nxt < target:
            starts = self.ooo_starts
            if starts and starts[0] < target:
                if starts[0] > self.nxt:
                    self._gap(starts[0] - self.nxt)
                self._flush()
            else:
                self._gap(target - self.nxt)
        if self.ooo_starts and self.ooo_starts[0] <= self.nxt:
            self._flush()                   # a run that starts right at the new nxt
        return self.delivered != before

    def rexmit_at(self, off: int) -> None:
        """A retransmitted SYN or FIN (no bytes) at ``off``: what ON_REXMIT says."""
        self.rexmit_off = off
        self.rexmit_len = 0

    def discard_outbox(self) -> None:
        """Forget what the outbox holds, unraised (the flow stopped being monitored)."""
        self.new_runs = self.gap_runs = self.conflict_runs = _NONE

    def finish(self) -> bool:
        """The flow ended: skip every remaining hole so that all waiting bytes are delivered."""
        delivered = False
        while self.ooo_starts:
            delivered |= self.skip_to(self.ooo_starts[0] + 1)
        return delivered

    def _gap(self, length: int) -> None:
        self.gaps = _grow(self.gaps, (self.nxt, length))
        self.gap_runs = _grow(self.gap_runs, (self.nxt, length))
        self._gap_starts = _grow(self._gap_starts, self.nxt)
        self.gap_bytes += length
        self.nxt += length

    def _fill_gap(self, off: int, data: bytes | None, n: int) -> bool:
        """Bytes [off, off+n) inside the newest gap, which ends at ``nxt`` (nothing was
        delivered beyond it): the gap gives way to them. False when that is not the case."""
        gaps = self.gaps
        starts = self._gap_starts
        if not gaps or not isinstance(gaps, list) or not isinstance(starts, list):
            return False
        g_off, g_len = gaps[-1]
        end = off + n
        top = g_off + g_len
        if top != self.nxt or off < g_off or end > top:
            return False
        runs = self.gap_runs
        # gap_runs holds the gaps not yet reported (the newest ones): was this one?
        pending = False
        if isinstance(runs, list) and runs and runs[-1] == (g_off, g_len):
            runs.pop()
            pending = True
        else:
            self.filled_runs = _grow(self.filled_runs, (off, n))
        keep = len(runs)
        gaps.pop()
        starts.pop()
        self.gap_bytes -= g_len
        self.nxt = g_off
        if off > g_off:
            self._gap(off - g_off)          # the part before the late bytes stays a gap
        self._deliver(off, data, n)
        if end < top:
            self._gap(top - end)            # ... and the part after them
        if not pending and isinstance(self.gap_runs, list):
            del self.gap_runs[keep:]        # reported already: the pieces left are not new
        return True

    def _deliver(self, off: int, data: bytes | None, n: int) -> None:
        if data is not None:
            if self.hasher is not None:
                self.hasher.update(data)
            if self.bufsize:
                self._buffer(off, data, n)
        self.nxt = off + n
        self.delivered += n
        runs = self.new_runs
        if not isinstance(runs, list):
            self.new_runs = [(off, n)]
        elif runs and runs[-1][0] + runs[-1][1] == off:
            runs[-1] = (runs[-1][0], runs[-1][1] + n)
        else:
            runs.append((off, n))

    def release(self) -> None:
        """Drop the bytes held (the flow ended); counts, gaps and the digest stay."""
        if self.chunks is _NONE and self.ooo is _NO_OOO:
            return                      # it never held a byte
        self.drop_buffer()
        self.ooo_starts = _NONE
        self.ooo = _NO_OOO
        self.ooo_bytes = 0

    def drop_buffer(self) -> None:
        """Forget the buffered in-order bytes (not the runs waiting out of order)."""
        self.chunks = _NONE
        self.chunk_offs = _NONE
        self.chunk_head = 0
        self.buffered = 0
        self.src = None

    def take(self, buf: Any, start: int, n: int) -> None:
        """In-order bytes nobody is told about (the engine's fast path): ``buf[start:start+n]``
        at ``nxt``, into the hash and the buffer, without recording a NEW_DATA run. ``buf`` is
        a records.RecordBuffer (bytes or the capture's mmap)."""
        if self.keep_bytes:
            data: bytes
            if isinstance(buf, bytes):  # noqa: SIM108 - compiled: a native slice, no slice object
                data = buf[start:start + n]
            else:
                data = buf[start:start + n]
            if self.hasher is not None:
                self.hasher.update(data)
            if self.bufsize:
                self._buffer(self.nxt, data, n)
        self.nxt += n
        self.delivered += n

    def take_span(self, src: Any, at: int, buf: Any, start: int, n: int) -> None:
        """``take(buf, start, n)`` of a record read in place, whose payload lies at ``at`` in
        the capture ``src``: a buffering stream without a digest to feed keeps a span there
        rather than a copy (segments of ``_SMALL`` bytes or more; smaller ones are coalesced)."""
        if (n < _SMALL or n > _SPAN_LEN or not self.bufsize or self.hasher is not None
                or (self.src is not None and self.src is not src)):
            self.take(buf, start, n)
            return
        self.src = src
        self._append(self.nxt, (at << 16) | n, n)
        self.nxt += n
        self.delivered += n

    def own_bytes(self) -> None:
        """Copy the buffer's spans out of ``src`` (the source is about to let it go)."""
        chunks = self.chunks
        if self.src is not None and isinstance(chunks, list):
            for i in range(self.chunk_head, len(chunks)):
                chunk = chunks[i]
                if isinstance(chunk, int):
                    chunks[i] = self._piece(chunk, 0, chunk & _SPAN_LEN)
        self.src = None

    def _piece(self, chunk: Chunk, lo: int, hi: int) -> bytes | bytearray:
        """``chunk[lo:hi]``, a span's read from ``src``."""
        if not isinstance(chunk, int):
            return chunk[lo:hi]
        at = chunk >> 16
        hi = min(hi, chunk & _SPAN_LEN)
        piece = self.src[at + lo:at + hi] if hi > lo else b""
        return piece if isinstance(piece, (bytes, bytearray)) else bytes(piece)

    def _buffer(self, off: int, data: bytes, n: int) -> None:
        """Append in-order bytes at ``off``. Small segments are coalesced into a tail chunk of
        up to _TAIL bytes, so the buffer's memory follows its bytes, not its segment count."""
        chunks = self.chunks
        offs = self.chunk_offs
        if (n < _SMALL and isinstance(chunks, list) and isinstance(offs, list)
                and len(chunks) > self.chunk_head):
            last = chunks[-1]
            if (not isinstance(last, int) and len(last) + n <= min(_TAIL, self.bufsize >> 3)
                    and offs[-1] + len(last) == off):
                if type(last) is not bytearray:
                    last = chunks[-1] = bytearray(last)
                last += data
                self.buffered += n
                if self.buffered - _length(chunks[self.chunk_head]) >= self.bufsize:
                    self._trim()            # (only then can the head move)
                return
        self._append(off, data if type(data) is bytes else bytes(data), n)

    def _append(self, off: int, chunk: Chunk, n: int) -> None:
        """A new chunk of ``n`` bytes at ``off`` (bytes, or a span); older chunks past the
        buffer's size are dropped."""
        chunks = self.chunks
        offs = self.chunk_offs
        if not isinstance(chunks, list) or not isinstance(offs, list):
            chunks = self.chunks = []       # the first bytes buffered
            offs = self.chunk_offs = []
        chunks.append(chunk)
        offs.append(off)
        self.buffered += n
        if self.buffered - _length(chunks[self.chunk_head]) >= self.bufsize:
            self._trim()

    def _trim(self) -> None:
        chunks = self.chunks
        head = self.chunk_head
        limit = self.bufsize
        while self.buffered - _length(chunks[head]) >= limit:
            self.buffered -= _length(chunks[head])
            head += 1
        offs = self.chunk_offs
        if (head > 64 and head * 2 > len(chunks) and isinstance(chunks, list)
                and isinstance(offs, list)):
            del chunks[:head]
            del offs[:head]
            head = 0
        self.chunk_head = head

    def _flush(self) -> None:
        starts = self.ooo_starts
        ooo = self.ooo
        if not isinstance(starts, list) or not isinstance(ooo, dict):
            return                          # no run ever waited
        while starts and starts[0] <= self.nxt:
            start = starts.pop(0)
            run = ooo.pop(start)
            if isinstance(run, int):
                length = run - start
                self.ooo_bytes -= length
                if run > self.nxt:
                    self._deliver(self.nxt, None, run - self.nxt)
            else:
                length = len(run)
                self.ooo_bytes -= length
                if start + length > self.nxt:
                    skip = self.nxt - start
                    self._deliver(self.nxt, bytes(run[skip:]) if skip else bytes(run),
                                  length - skip)

    def _insert_ooo(self, off: int, data: bytes | None, n: int) -> int:
        """Store [off, off+n) out of order, coalescing with the runs it overlaps or touches."""
        starts = self.ooo_starts
        ooo = self.ooo
        if not isinstance(starts, list) or not isinstance(ooo, dict):
            starts = self.ooo_starts = []   # the first run to wait behind a hole
            ooo = self.ooo = {}
        end = off + n
        i = bisect_left(starts, off)
        lo = i
        if i > 0:
            prev = starts[i - 1]
            prev_end = self._run_end(prev)
            if prev_end >= off:
                lo = i - 1
                if data is not None and prev_end == off and (i == len(starts) or
                                                             starts[i] > end):
                    ooo[prev].extend(data)            # the common case: the run grows at its end
                    self.ooo_bytes += n
                    return 0
                if data is None and prev_end == off and (i == len(starts) or starts[i] > end):
                    ooo[prev] = end
                    self.ooo_bytes += n
                    return 0
        hi = i
        while hi < len(starts) and starts[hi] <= end:
            hi += 1
        affected = starts[lo:hi]
        if not affected:
            starts.insert(i, off)
            ooo[off] = bytearray(data) if data is not None else end
            self.ooo_bytes += n
            return 0
        flags = 0
        new_start = min(off, affected[0])
        new_end = end
        old_bytes = 0
        for s in affected:
            e = self._run_end(s)
            old_bytes += e - s
            new_end = max(new_end, e)
            lo_ov, hi_ov = max(off, s), min(end, e)
            if lo_ov < hi_ov:
                flags |= REXMIT
                self.rexmit += 1
                self.rexmit_bytes += hi_ov - lo_ov
                self.rexmit_off, self.rexmit_len = lo_ov, hi_ov - lo_ov
                if data is not None:
                    run = ooo[s]
                    mine = data[lo_ov - off:hi_ov - off]
                    theirs = run[lo_ov - s:hi_ov - s]
                    if mine != theirs:
                        flags |= CONFLICT
                        self._conflict(lo_ov, mine, theirs)
        if data is not None:
            merged = bytearray(new_end - new_start)
            if not self.overlap_last:
                merged[off - new_start:end - new_start] = data
            for s in affected:
                run = ooo[s]
                merged[s - new_start:s - new_start + len(run)] = run
            if self.overlap_last:
                merged[off - new_start:end - new_start] = data
            merged_run: Any = merged
        else:
            merged_run = new_end
        for s in affected:
            del ooo[s]
        del starts[lo:hi]
        starts.insert(lo, new_start)
        ooo[new_start] = merged_run
        self.ooo_bytes += (new_end - new_start) - old_bytes
        return flags

    def _run_end(self, start: int) -> int:
        run = self.ooo[start]
        return run if isinstance(run, int) else start + len(run)

    def _conflict(self, off: int, mine: bytes | bytearray, theirs: bytes | bytearray) -> None:
        first = next(i for i in range(len(mine)) if mine[i] != theirs[i])
        last = next(i for i in range(len(mine) - 1, -1, -1) if mine[i] != theirs[i])
        self.conflicts += 1
        self.conflict_bytes += sum(1 for a, b in zip(mine, theirs, strict=True) if a != b)
        self.conflict_runs = _grow(self.conflict_runs, (off + first, last - first + 1))

    def _against_buffer(self, off: int, data: bytes) -> int:
        """Compare a retransmission of delivered bytes with what the buffer still holds."""
        flags = 0
        end = off + len(data)
        offs = self.chunk_offs
        chunks = self.chunks
        if not isinstance(chunks, list):
            return 0                        # nothing was ever buffered
        i = max(bisect_right(offs, off) - 1, self.chunk_head)
        while i < len(offs) and offs[i] < end:
            c_off = offs[i]
            chunk = chunks[i]
            lo, hi = max(off, c_off), min(end, c_off + _length(chunk))
            if lo < hi:
                mine = data[lo - off:hi - off]
                theirs = self._piece(chunk, lo - c_off, hi - c_off)
                if mine != theirs:
                    flags |= CONFLICT
                    self._conflict(lo, mine, theirs)
                    if self.overlap_last:
                        whole = self._piece(chunk, 0, _length(chunk))
                        chunks[i] = whole[:lo - c_off] + bytes(mine) + whole[hi - c_off:]
            i += 1
        return flags

    # -- reading ------------------------------------------------------------------------------

    @property
    def head(self) -> int:
        """Offset of the oldest byte still buffered (== nxt when nothing is)."""
        if self.chunk_head < len(self.chunks):
            return self.chunk_offs[self.chunk_head]
        return self.nxt

    def read(self, off: int, n: int) -> bytes:
        """Up to ``n`` bytes from ``off`` within one contiguous buffered (or waiting) run."""
        if n <= 0:
            return b""
        offs = self.chunk_offs
        head = self.chunk_head
        last = len(offs) - 1
        chunks = self.chunks
        if last >= head and isinstance(offs, list) and isinstance(chunks, list):
            # (the lists narrowed: compiled, indexed natively)
            newest = offs[last]
            if off >= newest:
                # in the newest chunk (a filter peeking at new data): no bisect, no join
                chunk = chunks[last]
                pos = off - newest
                if pos < _length(chunk):
                    piece = self._piece(chunk, pos, pos + n)
                    return piece if type(piece) is bytes else bytes(piece)
        if head < len(offs) and off >= offs[head] and off < self.nxt:
            i = bisect_right(offs, off, head) - 1
            parts: list[bytes | bytearray] = []
            want = n
            pos = off
            while want > 0 and i < len(offs):
                c_off = offs[i]
                chunk = self.chunks[i]
                if not c_off <= pos < c_off + _length(chunk):
                    break
                piece = self._piece(chunk, pos - c_off, pos - c_off + want)
                parts.append(piece)
                want -= len(piece)
                pos += len(piece)
                i += 1
            return b"".join(parts)
        starts = self.ooo_starts
        j = bisect_right(starts, off) - 1
        if j >= 0:
            run = self.ooo[starts[j]]
            if not isinstance(run, int) and off < starts[j] + len(run):
                return bytes(run[off - starts[j]:off - starts[j] + n])
        return b""

    def fragments(self) -> list[tuple[int, int]]:
        """Received, not yet given-up byte ranges: the in-order buffer and each waiting run."""
        frags: list[tuple[int, int]] = []
        if self.chunk_head < len(self.chunks):
            frags.append((self.head, self.nxt - self.head))
        for s in self.ooo_starts:
            frags.append((s, self._run_end(s) - s))
        return frags

    def digest(self) -> str | None:
        return self.hasher.hexdigest() if self.hasher is not None else None
