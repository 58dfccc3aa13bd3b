"""Captures as tests without Python: ``capture.pcap`` + ``capture.mos.json`` (+ its golden).

The sidecar says what to run and what to check, as data::

    {"app": ["http"],                   # shipped name, path (relative to the sidecar), module
     "events": null,                           # event names to keep; null = all but ON_PKT_IN
     "config": {"midstream": true},            # MonitorConfig fields
     "exclude": [], "round": {"t": 6},         # canonicalisation
     "golden": true,                           # compare with capture.golden.jsonl
     "expect": [{"event": "ON_CONN_END", "count": 3, "where": {"reason": "fin"}}]}

``mostool golden new capture.pcap --app x.py`` writes both files from a real run (the role of
suricata-verify's createst.py); every key is optional.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Sidecar", "CAPTURE_SUFFIXES", "sidecar_path", "golden_path_for", "load_sidecar"]

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap")
SIDECAR_SUFFIX = ".mos.json"
GOLDEN_SUFFIX = ".golden.jsonl"
_KEYS = {"app", "events", "config", "exclude", "round", "golden", "expect", "description"}


@dataclass
class Sidecar:
    app: list[str] = field(default_factory=list)
    events: list[str] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    exclude: list[str] = field(default_factory=list)
    round: dict[str, int] = field(default_factory=dict)
    golden: bool = True
    expect: list[dict[str, Any]] = field(default_factory=list)
    description: str = ""

    def to_json(self) -> str:
        data: dict[str, Any] = {"app": self.app, "events": self.events, "config": self.config}
        if self.exclude:
            data["exclude"] = self.exclude
        if self.round:
            data["round"] = self.round
        data["golden"] = self.golden
        if self.expect:
            data["expect"] = self.expect
        if self.description:
            data["description"] = self.description
        return json.dumps(data, indent=2) + "\n"


def sidecar_path(capture: Path) -> Path:
    return capture.with_name(capture.stem + SIDECAR_SUFFIX)


def golden_path_for(capture: Path) -> Path:
    return capture.with_name(capture.stem + GOLDEN_SUFFIX)


def load_sidecar(path: Path) -> Sidecar:
    """Read and validate a sidecar; ValueError with the file name and the problem."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable JSON sidecar: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a sidecar is a JSON object")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(_KEYS))})")
    app = data.get("app") or []
    if isinstance(app, str):
        app = [app]
    expect = data.get("expect") or []
    for n, item in enumerate(expect, 1):
        if not isinstance(item, dict) or "event" not in item:
            raise ValueError(f"{path}: expect #{n} needs an \"event\"")
    return Sidecar(app=list(app), events=data.get("events"), config=data.get("config") or {},
                   exclude=list(data.get("exclude") or []), round=data.get("round") or {},
                   golden=bool(data.get("golden", True)), expect=list(expect),
                   description=str(data.get("description", "")))
