"""The ``mos_golden`` fixture's object: whole-trace checks and counted expectations.

``check`` runs a capture, canonifies its trace and compares it with the test's golden file
(``golden/<test module>/<test name>.jsonl`` beside the test module; a second check in the same
test uses ``<test name>.2.jsonl`` unless it is given a ``name``). ``expect`` asserts on a part of
the trace (suricata-verify's ``filter`` checks: an event name, field matches, a count) and needs
no golden. Both raise ``GoldenFailure`` with a readable message; the plugin turns it into a
test failure without a Python traceback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mostool.testing.golden import compare, obtained_path, write_golden
from mostool.testing.trace import DEFAULT_ROUND, CheckSpec, Trace, capture_name, run_trace

__all__ = ["GoldenFailure", "GoldenChecker", "match_where", "golden_name", "Session"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\[\]\-=+,]")


class GoldenFailure(AssertionError):
    """A check or an expectation failed; the message is the whole report."""


def golden_name(test_name: str) -> str:
    """A test's name as a file name (parametrize ids may hold '/', ':' or spaces)."""
    return _UNSAFE.sub("_", test_name)


class Session:
    """What one pytest process records across tests: traces run, goldens used and written."""

    def __init__(self, update: bool) -> None:
        self.update = update
        self.cache: dict[tuple[Any, ...], Trace] = {}
        self.used: set[str] = set()
        self.written: list[str] = []
        self.notes: list[str] = []

    def trace(self, paths: Sequence[Path], spec: CheckSpec) -> Trace:
        key = (tuple(str(p) for p in paths), spec.capture, spec.app, spec.events,
               tuple(sorted(spec.config.items())), spec.exclude,
               tuple(sorted(spec.round.items())))
        if key not in self.cache:
            self.cache[key] = run_trace(paths, spec)
        return self.cache[key]

    def check_against(self, golden: Path, trace: Trace) -> None:
        """Compare (or, updating, write) one golden file."""
        self.used.add(str(golden))
        obtained = obtained_path(golden)
        if not golden.exists():
            if self.update:
                write_golden(golden, trace)
                self.written.append(f"{golden} (new)")
                return
            obtained.parent.mkdir(parents=True, exist_ok=True)
            obtained.write_text(trace.text(), encoding="utf-8")
            raise GoldenFailure(f"no golden file {golden}: run pytest --mos-update to create "
                                f"it (this run's trace: {obtained})")
        try:
            result = compare(golden, trace)
        except ValueError as exc:
            if not self.update:
                raise GoldenFailure(str(exc)) from exc
            result = None
        if result is not None and result.notes:
            self.notes.append(f"{golden}: {result.notes}")
        if result is not None and result.equal:
            if obtained.exists():
                obtained.unlink()
            return
        if self.update:
            write_golden(golden, trace)
            self.written.append(f"{golden} (changed)")
            if obtained.exists():
                obtained.unlink()
            return
        obtained.write_text(trace.text(), encoding="utf-8")
        assert result is not None
        raise GoldenFailure(result.report)


def _as_tuple(value: str | Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def make_spec(paths: Sequence[Path], *, app: str | Iterable[str] | None,
              events: Iterable[str] | None, exclude: Iterable[str] | None,
              round: Mapping[str, int] | None, config: Mapping[str, Any],
              base: Path) -> CheckSpec:
    apps = tuple(_resolve_app(a, base) for a in _as_tuple(app))
    rounding = dict(DEFAULT_ROUND)
    rounding.update(round or {})
    return CheckSpec(capture=capture_name(paths), app=apps,
                     events=None if events is None else tuple(events),
                     config=dict(config), exclude=tuple(exclude or ()), round=rounding)


def _resolve_app(spec: str, base: Path) -> str:
    """An app path relative to the test file works from any working directory; a shipped app
    name or a module stays as it is."""
    target, sep, func = spec.partition(":") if not os.path.isabs(spec) else (spec, "", "")
    if target.endswith(".py") and not os.path.isabs(target):
        candidate = base / target
        if candidate.exists():
            return str(candidate) + (sep + func if sep else "")
    return spec


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a is not None and a > b,
    "gte": lambda a, b: a is not None and a >= b,
    "lt": lambda a, b: a is not None and a < b,
    "lte": lambda a, b: a is not None and a <= b,
    "in": lambda a, b: a in b,
    "contains": lambda a, b: a is not None and b in a,
    "startswith": lambda a, b: isinstance(a, str) and a.startswith(b),
}


def match_where(record: Mapping[str, Any], where: Mapping[str, Any]) -> bool:
    """``where={"side": "SVR", "length__gt": 0}``: every condition holds for the record.
    Operators after ``__``: eq (default), ne, gt, gte, lt, lte, in, contains, startswith."""
    for key, want in where.items():
        name, _, op = key.partition("__")
        test = _OPS.get(op or "eq")
        if test is None:
            raise ValueError(f"unknown operator {op!r} in where key {key!r} "
                             f"(known: {', '.join(_OPS)})")
        if not test(record.get(name), want):
            return False
    return True


class GoldenChecker:
    """The object ``mos_golden`` gives a test."""

    def __init__(self, session: Session, test_file: Path, test_name: str,
                 golden_dir: str = "golden") -> None:
        self._session = session
        self._base = test_file.parent
        self._dir = self._base / golden_dir / test_file.stem
        self._name = golden_name(test_name)
        self._checks = 0

    def golden_path(self, name: str | None = None) -> Path:
        if name is not None:
            return self._dir / f"{golden_name(name)}.jsonl"
        n = self._checks + 1
        return self._dir / (f"{self._name}.jsonl" if n == 1 else f"{self._name}.{n}.jsonl")

    def _paths(self, capture: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
               ) -> list[Path]:
        items = [capture] if isinstance(capture, (str, os.PathLike)) else list(capture)
        paths = []
        for item in items:
            path = Path(item)
            if not path.is_absolute():
                path = self._base / path
            if not path.exists():
                raise GoldenFailure(f"capture not found: {path}")
            paths.append(path)
        return paths

    def trace(self, capture: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *,
              app: str | Iterable[str] | None = None, events: Iterable[str] | None = None,
              exclude: Iterable[str] | None = None, round: Mapping[str, int] | None = None,
              **config: Any) -> Trace:
        """The canonical trace of a capture (for assertions of your own)."""
        paths = self._paths(capture)
        try:
            spec = make_spec(paths, app=app, events=events, exclude=exclude, round=round,
                             config=config, base=self._base)
            return self._session.trace(paths, spec)
        except GoldenFailure:
            raise
        except Exception as exc:  # noqa: BLE001 - an app or config error: one clear line
            raise GoldenFailure(f"tracing {', '.join(p.name for p in paths)} failed: "
                                f"{type(exc).__name__}: {exc}") from exc

    def check(self, capture: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *,
              app: str | Iterable[str] | None = None, events: Iterable[str] | None = None,
              exclude: Iterable[str] | None = None, round: Mapping[str, int] | None = None,
              name: str | None = None, **config: Any) -> Trace:
        """Run ``capture`` (a path, or several merged by time) and compare its canonical trace
        with this test's golden file. ``events``: the event names to keep (built-in and UDE
        names; default every event but ON_PKT_IN); ``exclude``: fields to leave out;
        ``round``: ``{field: digits}``; any other keyword is a MonitorConfig field."""
        trace = self.trace(capture, app=app, events=events, exclude=exclude, round=round,
                           **config)
        golden = self.golden_path(name)
        self._checks += 1
        self._session.check_against(golden, trace)
        return trace

    def expect(self, capture: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *,
               event: str, count: int | None = None, where: Mapping[str, Any] | None = None,
               min_count: int | None = None, max_count: int | None = None,
               app: str | Iterable[str] | None = None, **config: Any) -> list[dict[str, Any]]:
        """Assert how often ``event`` occurs (with fields matching ``where``): exactly
        ``count`` times, or between ``min_count`` and ``max_count``; with none of them, at
        least once. Returns the matching canonical records."""
        events = None if event != "ON_PKT_IN" else ["ON_PKT_IN"]
        trace = self.trace(capture, app=app, events=events, **config)
        where = dict(where or {})
        try:
            found = [r for r in trace.records
                     if r.get("event") == event and match_where(r, where)]
        except ValueError as exc:
            raise GoldenFailure(str(exc)) from exc
        lo = count if count is not None else (min_count if min_count is not None else 1)
        hi = count if count is not None else max_count
        if len(found) < lo or (hi is not None and len(found) > hi):
            want = (f"exactly {count}" if count is not None else
                    f"between {lo} and {hi}" if hi is not None else f"at least {lo}")
            names = sorted({str(r.get("event")) for r in trace.records})
            same = [r for r in trace.records if r.get("event") == event]
            lines = [f"expected {want} {event} event(s)"
                     + (f" where {where}" if where else "") + f", found {len(found)}",
                     f"  {len(same)} {event} event(s) in all; events in this trace: "
                     + ", ".join(names)]
            for rec in (found or same)[:5]:
                lines.append(f"  e.g. {rec}")
            raise GoldenFailure("\n".join(lines))
        return found
