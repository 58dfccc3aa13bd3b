"""``mtcp_init``'s configuration: a mos.conf file or a dict, mapped onto MonitorConfig and a
packet source (replay files, a Source, frames, or a live interface)."""

from __future__ import annotations

import errno as _errno
import os
import re
from dataclasses import fields
from typing import Any, cast

from mostool.config import MonitorConfig
from mostool.sources import MemorySource, Source

# mos.conf / dict keys of mOS -> MonitorConfig fields
_MOS_KEYS = {"rmem_size": "rcvbuf", "tcp_timeout": "idle_timeout",
             "tcp_tw_interval": "time_wait", "max_concurrency": "max_flows"}
# mos.conf keys of mOS that have no meaning for a passive replay/capture tool
_MOS_IGNORED = {"forward", "nb_mem_channels", "stat_print", "mos_log", "max_num_buffers",
                "wmem_size", "core_mask", "nic_forward_table", "num_cores", "type", "run"}
_PACING_KEYS = ("speed", "pps", "mbps", "max_gap")
_CONFIG_FIELDS = {f.name for f in fields(MonitorConfig)}


class _Conf:
    """What mtcp_init established: the MonitorConfig and where packets come from."""

    def __init__(self, config: MonitorConfig, source: Any, interfaces: list[str],
                 pacing: dict[str, Any], ignored: list[str]) -> None:
        self.config = config
        self.source = source               # paths, a Source, frames, or None
        self.interfaces = interfaces
        self.pacing = pacing
        self.ignored = ignored


_FIELD_KINDS: dict[str, str] = {
    "rcvbuf": "int", "max_flows": "int", "max_ooo_segments": "int", "max_ooo_bytes": "int",
    "time_wait": "float", "frag_timeout": "float", "idle_timeout": "timeout",
    "midstream": "bool", "hash_streams": "bool", "mos_compat": "bool", "strict": "bool",
    "overlap": "str", "checksums": "str",
}


def _config_value(key: str, value: Any) -> tuple[str, Any]:
    """A mOS or mostool configuration key and value -> (MonitorConfig field, typed value)."""
    name = _MOS_KEYS.get(key, key)
    kind = _FIELD_KINDS.get(name, "str")
    if kind == "timeout":
        if value is not None:
            v = float(value)
            value = None if v <= 0 else v
    elif kind == "int":
        value = int(value)
    elif kind == "float":
        value = float(value)
    elif kind == "bool":
        value = _bool(value)
    return name, value


def _parse_mos_conf(path: str) -> dict[str, Any]:
    """A mOS configuration file (``mos { ... }`` and ``application { ... }`` blocks) as a dict.

    ``netdev`` names become ``interface``; ``no_ring_buffers = 1`` becomes ``rcvbuf = 0``. A
    mostool extension, ``source = a.pcap b.pcap`` in the ``mos`` block, replays files instead.
    """
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    out: dict[str, Any] = {"_ignored": []}
    stack: list[str] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z_][\w]*)\s*\{", line)
        if m:
            stack.append(m.group(1))
            continue
        if line == "}":
            if not stack:
                raise ValueError(f"{path}:{lineno}: unbalanced '}}'")
            stack.pop()
            continue
        block = stack[-1] if stack else ""
        if block == "netdev":
            out.setdefault("interface", []).append(line.split()[0])
            continue
        if block in ("application", "nic_forward_table"):
            continue
        m = re.fullmatch(r"([A-Za-z_]\w*)\s*=\s*(.*)", line)
        if not m:
            raise ValueError(f"{path}:{lineno}: cannot parse {line!r}")
        key, value = m.group(1), m.group(2).strip()
        if key == "source":
            out["source"] = value.split()
        elif key == "no_ring_buffers":
            if int(value):
                out["rcvbuf"] = 0
        elif key in _MOS_KEYS or key in _CONFIG_FIELDS:
            out[key] = value
        else:
            out["_ignored"].append(key)
    if stack:
        raise ValueError(f"{path}: block {stack[-1]!r} is not closed")
    return out


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _make_conf(spec: dict[str, Any]) -> _Conf:
    values: dict[str, Any] = {}
    pacing: dict[str, Any] = {}
    ignored = list(spec.get("_ignored", []))
    source: Any = None
    interfaces: list[str] = []
    for key, value in spec.items():
        if key == "_ignored":
            continue
        if key == "source":
            source = value
        elif key == "interface":
            interfaces = [value] if isinstance(value, str) else [str(v) for v in value]
        elif key in _PACING_KEYS:
            pacing[key] = float(value)
        elif key in _MOS_IGNORED:
            ignored.append(key)
        elif key in _MOS_KEYS or key in _CONFIG_FIELDS:
            name, v = _config_value(key, value)
            values[name] = v
        else:
            raise ValueError(f"unknown configuration key {key!r}")
    if source is not None and interfaces:
        raise ValueError("give either a source (capture files) or an interface, not both")
    config = MonitorConfig(**values)
    if isinstance(source, (str, os.PathLike)):
        source = [os.fspath(source)]
    elif isinstance(source, (list, tuple)) and source and all(
            isinstance(s, (str, os.PathLike)) for s in source):
        source = [os.fspath(s) for s in source]
    if isinstance(source, list) and source and isinstance(source[0], str):
        for path in source:
            if not os.path.exists(path):
                raise FileNotFoundError(_errno.ENOENT, "no such file", path)
        from mostool.replay import ReplaySource
        ReplaySource(source, **pacing).close()       # validate every file now
    return _Conf(config, source, interfaces, pacing, ignored)


def _open_source(conf: _Conf) -> Source:
    src = conf.source
    if conf.interfaces:
        return _live_source(conf.interfaces)
    if src is None:
        raise ValueError("no packet source: mtcp_init needs a 'source' or an 'interface'")
    if isinstance(src, Source):
        return src
    if isinstance(src, list) and src and isinstance(src[0], str):
        from mostool.replay import ReplaySource
        return ReplaySource(src, **conf.pacing)
    return MemorySource(src)


_LIVE_ERRNO = {"nodev": _errno.ENODEV, "perm": _errno.EPERM, "down": _errno.ENETDOWN,
               "filter": _errno.EINVAL, "write": _errno.EIO}


def _live_source(interfaces: list[str]) -> Source:
    """mostool.live's source for the configured interface (imported lazily). mostool.live
    captures one interface; mOS's inline setups list two (one per direction)."""
    import importlib
    if len(interfaces) != 1:
        raise ValueError(f"live capture takes one interface, not {len(interfaces)} "
                         f"({' '.join(interfaces)})")
    live = importlib.import_module("mostool.live")
    try:
        return cast(Source, live.LiveSource(interfaces[0]))
    except live.LiveError as exc:
        err = _LIVE_ERRNO.get(getattr(exc, "reason", ""), _errno.EIO)
        raise OSError(err, str(exc)) from None
