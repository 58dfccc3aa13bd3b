"""What the fuzzers feed to mostool, and what must hold whatever they feed.

Shared by ``tests/test_fuzz.py`` (hypothesis) and ``tests/fuzz/fuzz_engine.py`` (atheris).

Three targets, from the outside in:

* **files** (:func:`check_file`): bytes written to a file and opened with ``ReplaySource``. The
  only exception allowed is ``CaptureError`` when the file is opened; reading yields well-formed
  frame tuples and at most one one-line warning per file.
* **frames** (:func:`check_decoder`): every frame through a fresh ``Decoder``: a ``TcpSegment``
  whose offsets stay inside its buffer, or a status code.
* **the engine** (:func:`check_monitor`): a ``Monitor`` with a callback on every built-in event at
  every hook it allows and a UDE filter that reads the streams (``ppeek``, ``peek``,
  ``frag_info``, ``buf_info``, ``last_packet``). Nothing may escape ``run``; the callbacks
  themselves must never fail (``mon.failures`` stays empty: a flow API that raises anything but
  the documented ``MosError(ENODATA)`` inside a live callback is a bug); every flow that started
  ends exactly once and the table is empty afterwards.

:func:`one_input` turns arbitrary bytes into one of these runs (the atheris entry point and the
crasher replay use it). Seeds come from ``sample_pcaps/`` and, when present, the netgen captures
in ``../shared/pcaps/netgen``.
"""

from __future__ import annotations

import errno
import math
import os
import struct
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import mostool as mos
from mostool.replay import CaptureError, ReplaySource, read_capture
from mostool.stack.decode import STATUS_NAMES, Decoder, TcpSegment, parse_tcp_options

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
SAMPLES = REPO / "sample_pcaps"
NETGEN = REPO.parent / "shared" / "pcaps" / "netgen"

Frame = tuple[float, int, bytes, int]

#: Link types the fuzzers pick when they change a frame's link type: every one mostool decodes
#: and a few it does not.
LINKTYPES = (0, 1, 9, 12, 14, 50, 51, 101, 104, 108, 113, 228, 229, 239, 276, 2, 10, 127, 65535)
ERROR_KINDS = frozenset({"overlap_conflict", "buffer_overflow", "bad_rst", "gap", "late_data",
                         "bad_fin", "memory_limit", "gap_filled", "rst_in_window",
                         "rst_ignored", "data_after_rst", "wild_timestamp"})
END_REASONS = frozenset({"fin", "rst", "timeout", "eof", "evicted", "stopped"})
ORPHAN_REASONS = frozenset({"non_ip", "non_tcp", "malformed", "unknown_linktype", "no_flow",
                            "filtered", "no_listener", "after_close"})

#: Monitor configurations the engine target cycles through (the fuzzer picks one by index).
CONFIGS: tuple[dict[str, Any], ...] = (
    {},
    {"midstream": True, "overlap": "last", "rcvbuf": 512, "hash_streams": True},
    {"midstream": True, "checksums": "off", "rcvbuf": 0, "max_ooo_segments": 2,
     "max_ooo_bytes": 300},
    {"mos_compat": True},
    {"checksums": "on", "idle_timeout": 0.5, "time_wait": 0.2, "max_flows": 2},
    {"midstream": True, "overlap": "last", "hash_streams": True, "idle_timeout": None,
     "frag_timeout": 0.01, "rcvbuf": 1},
    {"midstream": True, "max_buffered_bytes": 3000, "max_flows": 3, "overlap": "last"},
)


class HarnessError(AssertionError):
    """An invariant the fuzzed run broke."""


# -- seeds ---------------------------------------------------------------------------------------

def seed_files() -> list[Path]:
    """The bundled sample captures, then the netgen captures (if ``../shared`` is there)."""
    files = sorted(SAMPLES.glob("*.pcap")) + sorted(SAMPLES.glob("synthetic/*.pcap"))
    if NETGEN.is_dir():
        files += sorted(NETGEN.glob("*.pcap"))
    return files


def load_frames(path: Path, limit: int = 400) -> list[Frame]:
    """The first ``limit`` frames of a capture (as the reader yields them)."""
    out: list[Frame] = []
    for frame in read_capture(path, []):
        out.append(frame)
        if len(out) >= limit:
            break
    return out


_SEED_CACHE: list[list[Frame]] = []


def seed_captures() -> list[list[Frame]]:
    """Frames of every seed capture (at most 400 each), loaded once."""
    if not _SEED_CACHE:
        for path in seed_files():
            frames = load_frames(path)
            if frames:
                _SEED_CACHE.append(frames)
    return _SEED_CACHE


# -- writing capture files (seeds for the file fuzzers) ------------------------------------------

def pcap_bytes(frames: Sequence[Frame], *, big_endian: bool = False, nanos: bool = False,
               linktype: int | None = None, snaplen: int = 65535) -> bytes:
    """A classic pcap file (µs or ns, either byte order) of ``frames``."""
    bo = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    lt = frames[0][1] if linktype is None and frames else (linktype or 1)
    units = 1_000_000_000 if nanos else 1_000_000
    parts = [struct.pack(bo + "IHHiIII", magic, 2, 4, 0, 0, snaplen, lt)]
    for ts, _lt, data, wire in frames:
        sec = int(ts) & 0xFFFFFFFF
        frac = min(int(round((ts - int(ts)) * units)), units - 1) & 0xFFFFFFFF
        parts.append(struct.pack(bo + "IIII", sec, frac, len(data), wire) + data)
    return b"".join(parts)


def _ng_block(bo: str, btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack(bo + "II", btype, n) + body + struct.pack(bo + "I", n)


def _ng_option(bo: str, code: int, value: bytes) -> bytes:
    return struct.pack(bo + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def pcapng_bytes(frames: Sequence[Frame], *, big_endian: bool = False, tsresol: int = 6,
                 sections: int = 1) -> bytes:
    """A pcapng file: per section an SHB, an IDB per link type (with ``if_tsresol``), Enhanced
    Packet Blocks, one Simple Packet Block and a custom block."""
    bo = ">" if big_endian else "<"
    units = 2 ** (tsresol & 0x7F) if tsresol & 0x80 else 10 ** tsresol
    out: list[bytes] = []
    per = max(1, math.ceil(len(frames) / max(sections, 1)))
    for start in range(0, max(len(frames), 1), per):
        chunk = frames[start:start + per]
        out.append(_ng_block(bo, 0x0A0D0D0A, struct.pack(bo + "IHHq", 0x1A2B3C4D, 1, 0, -1)))
        ifaces: dict[int, int] = {}
        for _ts, lt, _data, _wire in chunk:
            if lt not in ifaces:
                ifaces[lt] = len(ifaces)
                opts = _ng_option(bo, 9, bytes([tsresol])) + _ng_option(bo, 0, b"")
                out.append(_ng_block(bo, 1, struct.pack(bo + "HHI", lt, 0, 0) + opts))
        for i, (ts, lt, data, wire) in enumerate(chunk):
            if i == 1 and ifaces.get(lt) == 0:
                out.append(_ng_block(bo, 3, struct.pack(bo + "I", wire) + data))
                continue
            t = int(ts * units) & 0xFFFFFFFFFFFFFFFF
            out.append(_ng_block(bo, 6, struct.pack(bo + "IIIII", ifaces[lt], t >> 32,
                                                    t & 0xFFFFFFFF, len(data), wire) + data))
        out.append(_ng_block(bo, 0xBAD, b"custom block"))
    return b"".join(out)


def record_offsets(data: bytes) -> list[tuple[int, str]]:
    """(offset, what) of the length fields a file mutator should aim at: classic pcap record
    headers' captured/original lengths, pcapng block lengths and trailers, header fields."""
    out: list[tuple[int, str]] = []
    if len(data) < 24:
        return out
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1",
                 b"\xa1\xb2\x3c\x4d"):
        bo = "<" if magic[0] in (0xD4, 0x4D) else ">"
        out += [(4, "u16"), (6, "u16"), (16, "u32"), (20, "u32")]
        off = 24
        while off + 16 <= len(data):
            out += [(off, "u32"), (off + 4, "u32"), (off + 8, "u32"), (off + 12, "u32")]
            (incl,) = struct.unpack_from(bo + "I", data, off + 8)
            off += 16 + incl
    elif magic == b"\x0a\x0d\x0d\x0a":
        bo = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
        off = 0
        while off + 12 <= len(data):
            btype, blen = struct.unpack_from(bo + "II", data, off)
            out += [(off, "u32"), (off + 4, "u32"), (off + 8, "u32")]
            if blen < 12 or off + blen > len(data):
                break
            out.append((off + blen - 4, "u32"))
            if btype == 0x0A0D0D0A:
                out += [(off + 8, "u32"), (off + 12, "u16")]
            elif btype in (6, 1):
                out += [(off + 12, "u32"), (off + 16, "u32"), (off + 20, "u32")]
            off += blen
    return out


# -- the checks ----------------------------------------------------------------------------------

def check_segment(r: TcpSegment | int, dec: Decoder) -> None:
    if isinstance(r, int):
        if r not in STATUS_NAMES:
            raise HarnessError(f"unknown decoder status {r}")
        if dec.last_error.startswith("internal"):
            raise HarnessError(f"decoder safety net caught: {dec.last_error}")
        return
    n = len(r.buf)
    if not (r.ip_off < r.tcp_off < r.payload_off <= n):
        raise HarnessError(f"offsets {r.ip_off}/{r.tcp_off}/{r.payload_off} in {n} bytes")
    if not (0 <= r.payload_len <= r.wire_len and r.payload_off + r.payload_len <= n):
        raise HarnessError(f"payload {r.payload_len}/{r.wire_len} at {r.payload_off} of {n}")
    parse_tcp_options(r.options)


def check_decoder(frames: Iterable[Frame]) -> None:
    """Every frame through one decoder (in order, so IP fragments reassemble)."""
    dec = Decoder(frag_timeout=5.0)
    for ts, lt, data, _wire in frames:
        check_segment(dec.decode(lt, data, ts), dec)
    stats = dec.stats()
    if stats["frag_pending_bytes"] < 0 or stats["frag_pending"] < 0:
        raise HarnessError(f"fragment table went negative: {stats}")


class _Probe:
    """Callbacks on every event that read through the flow API and check what they see."""

    def __init__(self, mon: mos.Monitor) -> None:
        self.mon = mon
        self.starts: dict[int, int] = {}
        self.ends: dict[int, int] = {}
        self.calls = 0

    def _read(self, flow: Any, side: mos.Side) -> None:
        for s in (mos.CLI, mos.SVR):
            flow.ppeek(s, 0, 64)
            info = flow.buf_info(s)
            if not 0 <= info.head <= info.next_byte_expected:
                raise HarnessError(f"buf_info out of order: {info}")
            for off, length in flow.frag_info(s):
                if off < 0 or length < 0:
                    raise HarnessError(f"frag_info ({off}, {length})")
            flow.state(s)
        try:
            data = flow.peek(side, 1500) if side != mos.BOTH else b""
        except mos.MosError as exc:          # BytesLost: unread bytes pushed out
            if exc.errno != errno.ENODATA:
                raise
            data = b""
        if len(data) > 1500:
            raise HarnessError("peek returned more than asked")

    def _packet(self, flow: Any) -> None:
        try:
            pkt = flow.last_packet()
        except mos.MosError as exc:
            if exc.errno != errno.ENODATA:
                raise
            return
        if isinstance(pkt, mos.PacketInfo):
            _ = (pkt.src, pkt.dst, pkt.flag_names, pkt.payload, pkt.options, repr(pkt))

    def on_event(self, flow: Any, side: mos.Side, event: Any) -> None:
        self.calls += 1
        name = event.name
        if name == "ON_ORPHAN":
            self._packet(flow)
            if event.reason not in ORPHAN_REASONS:
                raise HarnessError(f"orphan reason {event.reason!r}")
            return
        fid = flow.id
        if name == "ON_CONN_START":
            self.starts[fid] = self.starts.get(fid, 0) + 1
        elif name == "ON_CONN_END":
            self.ends[fid] = self.ends.get(fid, 0) + 1
            if event.reason not in END_REASONS:
                raise HarnessError(f"end reason {event.reason!r}")
        elif name == "ON_CONN_NEW_DATA":
            if event.offset < 0 or event.length <= 0:
                raise HarnessError(f"new data ({event.offset}, {event.length})")
            if len(flow.ppeek(side, event.offset, event.length)) > event.length:
                raise HarnessError("ppeek returned more than asked")
        elif name == "ON_ERROR":
            if event.kind not in ERROR_KINDS or event.offset < 0 or event.length < 0:
                raise HarnessError(f"error event {event}")
        elif name == "ON_REXMIT" and (event.offset < 0 or event.length < 0):
            raise HarnessError(f"rexmit ({event.offset}, {event.length})")
        if name != "ON_CONN_END":
            self._packet(flow)
        self._read(flow, side)
        flow.stats()



def _text_filter(flow: Any, side: mos.Side, event: Any) -> bool:
    """A UDE filter under ON_CONN_NEW_DATA that looks at the bytes, as a parser would."""
    base = event.base
    head = flow.ppeek(side, base.offset, 8)
    flow.to_server.bytes_seen  # noqa: B018 - the property must not raise
    flow.to_client.next_offset  # noqa: B018
    return bool(head) and head[:1].isalpha()


# defined once: UDEs live as long as the process (as in mOS), so a per-run definition would
# grow the event forest by one node per fuzz input
TEXT_EVENT = mos.define_event(mos.ON_CONN_NEW_DATA, _text_filter, name="fuzz_text")


def check_monitor(frames: Sequence[Frame], config: dict[str, Any] | None = None,
                  source: Any = None) -> dict[str, Any]:
    """One Monitor run over ``frames`` (or ``source``) with probes on every event."""
    mon = mos.Monitor(mos.MonitorConfig(**(config or {})))
    probe = _Probe(mon)
    sock = mon.socket(mos.MONITOR_STREAM)
    raw = mon.socket(mos.MONITOR_RAW)
    raw.on(mos.ON_PKT_IN, callback=lambda f, s, e: f.last_packet())
    for etype in mos.BUILTIN_EVENTS:
        for hook in etype.hooks:
            if etype is mos.ON_CONN_END and hook != mos.HK_RCV:
                continue                    # counted once per flow at HK_RCV
            sock.on(etype, hook, probe.on_event)
    sock.on(TEXT_EVENT, callback=probe.on_event)
    stats = mon.run(source if source is not None else frames)
    if mon.failures:
        raise HarnessError(f"{len(mon.failures)} callback failure(s), first: "
                           f"{mon.failures[0]}")
    if mon.engine.table or stats["active_flows"]:
        raise HarnessError(f"{stats['active_flows']} flows still open after the run")
    per_end = 2 if mon.config.mos_compat else 1
    bad = {fid: n for fid, n in probe.ends.items() if n != per_end}
    if bad or set(probe.ends) != set(probe.starts):
        raise HarnessError(f"ON_CONN_END per flow {probe.ends}, started {probe.starts}")
    for name, value in stats.items():
        if isinstance(value, int) and value < 0:
            raise HarnessError(f"counter {name} = {value}")
    return stats


_TMP: tempfile.TemporaryDirectory[str] | None = None


def _tmp_path(name: str) -> Path:
    global _TMP
    if _TMP is None:
        _TMP = tempfile.TemporaryDirectory(prefix="mostool-fuzz-")
    return Path(_TMP.name) / name


def check_file(data: bytes, config: dict[str, Any] | None = None) -> str:
    """``data`` as a capture file through the reader, the decoder and the engine.

    Returns "unusable" (CaptureError at open), or "ok"."""
    path = _tmp_path(f"input-{os.getpid()}.cap")
    path.write_bytes(data)
    try:
        source = ReplaySource([path])
    except CaptureError as exc:
        msg = str(exc)
        if "\n" in msg or not msg:
            raise HarnessError(f"CaptureError message is not one line: {msg!r}") from exc
        return "unusable"
    frames = list(source.frames())
    if len(source.warnings) > 1 or any("\n" in w for w in source.warnings):
        raise HarnessError(f"warnings {source.warnings}")
    if len(frames) > max(len(data) // 12, 1):
        raise HarnessError(f"{len(frames)} frames from {len(data)} bytes")
    for ts, lt, frame, wire in frames:
        if not (isinstance(ts, float) and math.isfinite(ts) and isinstance(lt, int)
                and lt >= 0 and isinstance(frame, bytes) and isinstance(wire, int)
                and wire >= 0):
            raise HarnessError(f"bad frame tuple {(ts, lt, frame[:16], wire)}")
    check_decoder(frames)
    check_monitor(frames, config, source=ReplaySource([path]))
    return "ok"


# -- arbitrary bytes -> one run (atheris, crasher replay) -----------------------------------------

def frames_from_bytes(data: bytes) -> list[Frame]:
    """Decode a compact frame list: repeated [linktype index u8][dt u8][length u16][bytes]."""
    frames: list[Frame] = []
    ts = 1_700_000_000.0
    pos = 0
    while pos + 4 <= len(data) and len(frames) < 256:
        lti, dt, length = struct.unpack_from("!BBH", data, pos)
        pos += 4
        frame = data[pos:pos + length]
        pos += length
        ts += (dt - 16) * 0.05              # may go backwards
        frames.append((ts, LINKTYPES[lti % len(LINKTYPES)], frame, len(frame)))
    return frames


def one_input(data: bytes) -> None:
    """The fuzz entry point: byte 0 picks the target and the configuration, the rest is a
    capture file (even selector) or a compact frame list (odd selector)."""
    if not data:
        return
    selector, body = data[0], data[1:]
    config = CONFIGS[(selector >> 1) % len(CONFIGS)]
    if selector & 1:
        frames = frames_from_bytes(body)
        check_decoder(frames)
        check_monitor(frames, config)
    else:
        check_file(body, config)
