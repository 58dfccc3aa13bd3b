"""Canonical event traces: what a golden file stores and what a check compares.

A capture runs through the same engine and the same recorder as ``mostool events
--events-out`` (``mostool.sinks.events_out.EventRecorder``: every built-in event at every hook
it fires at, plus the UDEs the apps' callbacks use). Each trace record then becomes canonical:

- ``ts`` (epoch seconds) becomes ``t``, seconds since the capture's first packet, rounded to
  microseconds (``round={"t": 9}`` keeps more), so a capture re-stamped by editcap still matches;
- ``packet`` stays the capture's packet number and ``flow`` the engine's flow number (flows are
  numbered in order of their first packet), both stable across runs;
- fields named in ``exclude`` are dropped and fields in ``round`` rounded, as declared data
  (btest stores baselines canonified; pytest-regressions #32 asked for exactly this).

Beside the records, a run keeps for each record the states of both TCP stacks of its flow at that
moment (``Trace.states``), never stored: a failing check quotes them for the first difference.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CheckSpec", "Trace", "capture_sha256", "run_trace", "canonical_line",
           "DEFAULT_ROUND"]

DEFAULT_ROUND: dict[str, int] = {"t": 6}
# Fields that identify an event in a report; every record has them.
KEY_FIELDS = ("packet", "t", "flow", "side", "hook", "event")


@dataclass(frozen=True)
class CheckSpec:
    """What one check runs and how its trace is canonified: the header of a golden file."""

    capture: str                                   # file name (the SHA-256 pins the content)
    app: tuple[str, ...] = ()
    events: tuple[str, ...] | None = None          # None: every event but ON_PKT_IN
    config: Mapping[str, Any] = field(default_factory=dict)
    exclude: tuple[str, ...] = ()
    round: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_ROUND))

    def header(self, sha256: str, count: int) -> dict[str, Any]:
        return {"mostool_golden": 1, "capture": self.capture, "sha256": sha256,
                "app": list(self.app), "events": None if self.events is None
                else list(self.events), "config": dict(sorted(self.config.items())),
                "exclude": list(self.exclude), "round": dict(sorted(self.round.items())),
                "version": mostool_version(), "count": count}


@dataclass
class Trace:
    """A canonical trace: its header, one dict per event, and the flow states beside them."""

    header: dict[str, Any]
    records: list[dict[str, Any]]
    states: list[str]

    def lines(self) -> list[str]:
        return [canonical_line(self.header)] + [canonical_line(r) for r in self.records]

    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines())


def mostool_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("mostool")
    except PackageNotFoundError:
        return "unknown"


def canonical_line(record: Mapping[str, Any]) -> str:
    """One JSON line, keys in the record's order, no spaces that vary."""
    return json.dumps(record, ensure_ascii=True, separators=(", ", ": "))


def capture_sha256(paths: Sequence[str | os.PathLike[str]]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def config_fields(config: Mapping[str, Any]) -> dict[str, Any]:
    """The given MonitorConfig fields, validated (an unknown name or bad value raises)."""
    from mostool.config import MonitorConfig
    names = {f.name for f in dataclasses.fields(MonitorConfig)}
    unknown = sorted(set(config) - names)
    if unknown:
        raise ValueError(f"unknown MonitorConfig field(s): {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(names))})")
    MonitorConfig(**config)
    return dict(config)


def _first_timestamp(paths: Sequence[str]) -> float:
    from mostool.replay import ReplaySource
    src = ReplaySource(paths)
    try:
        for frame in src:
            return float(frame[0])
    finally:
        src.close()
    return 0.0


def _canonify(record: dict[str, Any], t0: float, exclude: Iterable[str],
              rounding: Mapping[str, int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key == "ts":
            key, value = "t", value - t0
        out[key] = value
    for key in exclude:
        out.pop(key, None)
    for key, digits in rounding.items():
        value = out.get(key)
        if isinstance(value, float):
            value = round(value, digits)
            out[key] = 0.0 if value == 0 else value          # no "-0.0"
    return out


def _flow_states(flow: Any) -> str:
    if flow is None or not hasattr(flow, "state"):
        return "no flow (orphan)"
    from mostool.events.types import Side
    try:
        cli, svr = flow.state(Side.CLI).name, flow.state(Side.SVR).name
    except Exception:  # noqa: BLE001 - a report helper must not fail the report
        return "unknown"
    return f"flow {flow.id} {flow.client} > {flow.server}: client {cli}, server {svr}"


def run_trace(paths: Sequence[str | os.PathLike[str]], spec: CheckSpec) -> Trace:
    """Run the capture(s) with the spec's app(s), config and event filter; canonical trace."""
    from mostool.apps import start_apps
    from mostool.config import MonitorConfig
    from mostool.monitor import Monitor
    from mostool.replay import replay
    from mostool.sinks.events_out import EventRecorder

    names = [os.fspath(p) for p in paths]
    mon = Monitor(MonitorConfig(**config_fields(spec.config)))
    start_apps(mon, list(spec.app))
    raw: list[dict[str, Any]] = []
    raw_states: list[str] = []

    def keep(record: dict[str, Any], flow: Any) -> None:
        if spec.events is None and record["event"] == "ON_PKT_IN":
            return
        raw.append(record)
        raw_states.append(_flow_states(flow))

    only = None if spec.events is None else set(spec.events)
    EventRecorder(mon, None, only=only, sink=keep).attach()
    mon.run(replay(*names))
    if mon.failures:
        raise RuntimeError(f"{len(mon.failures)} callback error(s) while tracing; first: "
                           f"{mon.failures[0]}")
    t0 = _first_timestamp(names)
    rounding = dict(spec.round)
    records: list[dict[str, Any]] = []
    states: list[str] = []
    for record, state in zip(raw, raw_states, strict=True):
        records.append(_canonify(record, t0, spec.exclude, rounding))
        states.append(state)
    return Trace(spec.header(capture_sha256(names), len(records)), records, states)


def capture_name(paths: Sequence[str | os.PathLike[str]]) -> str:
    return "+".join(Path(p).name for p in paths)
