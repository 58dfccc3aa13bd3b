"""MonitorConfig: the frozen, validated configuration of a Monitor."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Literal

__all__ = ["MonitorConfig"]

OverlapPolicy = Literal["first", "last"]
ChecksumMode = Literal["auto", "on", "off", "skip"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorConfig:
    """How the engine tracks flows.

    rcvbuf            bytes kept per receiving side for peek/ppeek (0 = none; byte ranges are
                      still tracked, so REXMIT, gaps and counts work without buffering)
    overlap           which copy wins when segments overlap: "first" (mOS default) or "last"
    checksums         "auto": a direction that has carried a valid TCP checksum has its
                      bad-checksum segments dropped (as the host would), a direction that never
                      did (checksum offload at the capture host) is trusted; "on": drop every bad
                      one; "off": drop none. Bad checksums are counted in those three modes.
                      "skip": not computed at all (the fastest: verifying costs ~2 us per
                      full-size segment in CPython); bad_checksums is then reported as null
    midstream         pick up flows whose handshake was not captured (default: orphans, as mOS)
    idle_timeout      seconds of packet time without a packet before a flow ends with
                      ON_TIMEOUT then ON_CONN_END(reason="timeout"); None = never
    time_wait         seconds a flow lingers once both stacks reached TIME_WAIT/CLOSED
                      (0 = end at once, mOS's tcp_tw_interval default for monitors)
    rst_grace         seconds of packet time an accepted RST stays provisional: the flow waits
                      (not reported) for traffic proving the RST was ignored (ON_ERROR
                      "rst_ignored", the flow resumes) before it ends "rst"; 0 = end at once,
                      as mOS does (always so in mos_compat)
    max_jump          seconds a frame may run ahead of the packet clock before it is held until
                      the next frame says whether it is one wild timestamp (handled at the
                      current clock, ON_ERROR "wild_timestamp") or a real gap; never more than
                      half the idle timeout; 0 = never hold (mostool/stack/clock.py)
    max_flows         concurrent flows; at the limit the longest-idle flow is evicted
                      (ON_CONN_END reason="evicted")
    max_ooo_segments  out-of-order byte runs held per side before the oldest hole is skipped
    max_ooo_bytes     out-of-order bytes held per side before the oldest hole is skipped
    max_buffered_bytes bytes held (buffers and out-of-order runs) by all flows together; past
                      it, the flow that grew gives up its buffer and its holes (gaps), with
                      ON_ERROR "memory_limit"
    hash_streams      keep a SHA-256 of each direction's reassembled bytes (flows --hash)
    mos_compat        reproduce mOS 0.3's observable quirks (see DESIGN.md §3)
    strict            a user callback or filter that raises stops the run (CallbackError)
    frag_timeout      seconds an incomplete IP datagram waits for its fragments
    """

    rcvbuf: int = 1 << 20
    overlap: OverlapPolicy = "first"
    checksums: ChecksumMode = "auto"
    midstream: bool = False
    idle_timeout: float | None = 600.0
    time_wait: float = 0.0
    rst_grace: float = 2.0
    max_jump: float = 60.0
    max_flows: int = 1_000_000
    max_ooo_segments: int = 4096
    max_ooo_bytes: int = 32 << 20
    max_buffered_bytes: int = 1 << 30
    hash_streams: bool = False
    mos_compat: bool = False
    strict: bool = False
    frag_timeout: float = 30.0

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled (Dask, multiprocessing) by its fields and rebuilt through the constructor,
        # which validates them again; the compiled (mypyc) class cannot be restored slot by slot
        return (_config_from, (tuple((f.name, getattr(self, f.name)) for f in fields(self)),))

    def __post_init__(self) -> None:
        if self.mos_compat:
            # mOS 0.3's defaults where the caller left ours: 8 KB buffers (rmem_size), bad
            # checksums skipped (VERIFY_RX_CHECKSUM), 30 s idle timeout (tcp_timeout), no
            # midstream pickup
            for name, ours, theirs in (("rcvbuf", 1 << 20, 8192), ("checksums", "auto", "on"),
                                       ("idle_timeout", 600.0, 30.0)):
                if getattr(self, name) == ours:
                    object.__setattr__(self, name, theirs)
            if self.midstream:
                raise ValueError("mos_compat: mOS never picks up midstream flows")
        if self.rcvbuf < 0:
            raise ValueError(f"rcvbuf must be >= 0, not {self.rcvbuf}")
        if self.overlap not in ("first", "last"):
            raise ValueError(f"overlap must be 'first' or 'last', not {self.overlap!r}")
        if self.checksums not in ("auto", "on", "off", "skip"):
            raise ValueError(
                f"checksums must be 'auto', 'on', 'off' or 'skip', not {self.checksums!r}")
        if self.idle_timeout is not None and self.idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be positive or None, not {self.idle_timeout}")
        if self.time_wait < 0:
            raise ValueError(f"time_wait must be >= 0, not {self.time_wait}")
        if not self.rst_grace >= 0:
            raise ValueError(f"rst_grace must be >= 0, not {self.rst_grace}")
        if not self.max_jump >= 0:
            raise ValueError(f"max_jump must be >= 0, not {self.max_jump}")
        for name in ("max_flows", "max_ooo_segments", "max_ooo_bytes", "max_buffered_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, not {getattr(self, name)}")
        if self.frag_timeout <= 0:
            raise ValueError(f"frag_timeout must be positive, not {self.frag_timeout}")

    def replace(self, **changes: object) -> MonitorConfig:
        return replace(self, **changes)  # type: ignore[arg-type]


def _config_from(items: tuple[tuple[str, Any], ...]) -> MonitorConfig:
    return MonitorConfig(**dict(items))
