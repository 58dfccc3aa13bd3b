"""The pytest plugin (entry point ``pytest11: mostool``): golden event traces from captures.

- ``mos_golden`` fixture: ``check`` a capture's canonical trace against the test's golden file,
  ``expect`` counts of events, ``trace`` for assertions of your own (``mostool.testing.checker``).
- ``--mos-update`` writes missing and differing goldens and lists them; ``--mos-prune`` deletes
  unused ones. Nothing else ever deletes a golden (syrupy #963).
- ini ``mos_pcap_dirs``: every capture in those directories with a ``.mos.json`` sidecar is a
  test item (``mostool.testing.sidecar``).

Unused goldens: a golden file under ``golden/<module>/`` of a collected module that belongs to no
collected test (before ``-k``/``-m`` deselection, so deselected tests keep theirs), or a numbered
golden of a test that passed without using it. Under pytest-xdist each worker reports what it
saw through ``workeroutput``; the controller merges and prints (and prunes) once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mostool.testing.checker import GoldenChecker, GoldenFailure, Session, golden_name
from mostool.testing.sidecar import (
    CAPTURE_SUFFIXES,
    GOLDEN_SUFFIX,
    SIDECAR_SUFFIX,
    golden_path_for,
    load_sidecar,
    sidecar_path,
)

_SESSION = pytest.StashKey[Session]()
_STATE = pytest.StashKey[dict[str, Any]]()
GOLDEN_DIR = "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mostool", "mostool golden event traces")
    group.addoption("--mos-update", action="store_true", default=False,
                    help="write missing or differing golden traces (and list them)")
    group.addoption("--mos-prune", action="store_true", default=False,
                    help="delete golden traces that no collected test uses")
    parser.addini("mos_pcap_dirs", type="paths", default=[],
                  help="directories whose captures with a .mos.json sidecar are test items")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_SESSION] = Session(update=bool(config.getoption("mos_update")))
    config.stash[_STATE] = {"owners": {}, "modules": set(), "passed": set(),
                            "remote": []}


def _session(config: pytest.Config) -> Session:
    return config.stash[_SESSION]


# -- the fixture ----------------------------------------------------------------------------------


@pytest.fixture
def mos_golden(request: pytest.FixtureRequest) -> GoldenChecker:
    """Golden event traces from captures: ``mos_golden.check(pcap, app=..., events=...)``,
    ``mos_golden.expect(pcap, event=..., count=..., where=...)``."""
    node = request.node
    return GoldenChecker(_session(request.config), Path(str(node.path)), node.name,
                         GOLDEN_DIR)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    report = outcome.get_result()
    if call.excinfo is not None and call.excinfo.errisinstance(GoldenFailure):
        report.longrepr = str(call.excinfo.value)        # the report, not a traceback
    if report.when == "call" and report.passed and "mos_golden" in getattr(
            item, "fixturenames", ()):
        item.config.stash[_STATE]["passed"].add(_owner_key(item))


# -- which goldens belong to whom -----------------------------------------------------------------


def _owner_key(item: pytest.Item) -> str:
    path = Path(str(item.path))
    return f"{path.parent / GOLDEN_DIR / path.stem}::{golden_name(item.name)}"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Before deselection: every collected test owns its goldens, run or not."""
    state = config.stash[_STATE]
    for item in items:
        path = Path(str(item.path))
        if path.suffix == ".py":
            state["modules"].add(str(path.parent / GOLDEN_DIR / path.stem))
            state["owners"][_owner_key(item)] = True
        elif isinstance(item, PcapItem):
            state["modules"].add(f"pcapdir:{path.parent}")


def _golden_owner(golden: Path) -> str:
    stem = golden.name.removesuffix(".jsonl")
    base, dot, index = stem.rpartition(".")
    if dot and index.isdigit():
        stem = base
    return f"{golden.parent}::{stem}"


def _local_findings(config: pytest.Config) -> dict[str, Any]:
    state = config.stash[_STATE]
    session = _session(config)
    unowned: list[str] = []
    unused_of_passed: list[str] = []
    for module in sorted(state["modules"]):
        if module.startswith("pcapdir:"):
            folder = Path(module.removeprefix("pcapdir:"))
            for golden in sorted(folder.glob("*" + GOLDEN_SUFFIX)):
                stem = golden.name.removesuffix(GOLDEN_SUFFIX)
                if not any((folder / (stem + s)).exists() for s in CAPTURE_SUFFIXES):
                    unowned.append(str(golden))
            continue
        folder = Path(module)
        if not folder.is_dir():
            continue
        for golden in sorted(folder.glob("*.jsonl")):
            if golden.name.endswith(".obtained.jsonl"):
                continue
            owner = _golden_owner(golden)
            if owner not in state["owners"]:
                unowned.append(str(golden))
            elif owner in state["passed"] and str(golden) not in session.used:
                unused_of_passed.append(str(golden))
    return {"unowned": unowned, "unused_of_passed": unused_of_passed,
            "used": sorted(session.used), "written": session.written,
            "notes": session.notes}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:                       # an xdist worker: report, do nothing
        workeroutput["mostool_golden"] = json.dumps(_local_findings(config))


def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: a worker's findings."""
    out = getattr(node, "workeroutput", {}).get("mostool_golden")
    if out:
        node.config.stash[_STATE]["remote"].append(json.loads(out))


def _merged(config: pytest.Config) -> dict[str, Any]:
    parts = config.stash[_STATE]["remote"] or [_local_findings(config)]
    used = {u for p in parts for u in p["used"]}
    unowned = sorted({u for p in parts for u in p["unowned"]})
    unused = sorted(({u for p in parts for u in p["unused_of_passed"]} - used) | set(unowned))
    return {"unused": unused, "written": [w for p in parts for w in p["written"]],
            "notes": sorted({n for p in parts for n in p["notes"]})}


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int,
                            config: pytest.Config) -> None:
    if getattr(config, "workerinput", None) is not None:
        return
    found = _merged(config)
    tr = terminalreporter
    if found["written"]:
        tr.section("mostool golden traces written")
        for line in found["written"]:
            tr.write_line(line)
    if found["notes"]:
        tr.section("mostool golden notes")
        for line in found["notes"]:
            tr.write_line(line)
    if found["unused"]:
        if config.getoption("mos_prune"):
            tr.section("mostool golden traces pruned")
            for path in found["unused"]:
                Path(path).unlink(missing_ok=True)
                tr.write_line(f"deleted {path}")
        else:
            tr.section("mostool unused golden traces")
            for path in found["unused"]:
                tr.write_line(path)
            tr.write_line(f"{len(found['unused'])} unused golden file(s); "
                          "pytest --mos-prune deletes them")


# -- capture directories --------------------------------------------------------------------------


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix not in CAPTURE_SUFFIXES:
        return None
    dirs = [Path(d).resolve() for d in parent.config.getini("mos_pcap_dirs")]
    if not dirs:
        return None
    where = file_path.resolve()
    if not any(where.parent == d or d in where.parents for d in dirs):
        return None
    if not sidecar_path(file_path).exists():
        return None
    return PcapFile.from_parent(parent, path=file_path)


class PcapFile(pytest.File):
    def collect(self) -> list[pytest.Item]:
        return [PcapItem.from_parent(self, name=self.path.name)]


class PcapItem(pytest.Item):
    """One capture with its sidecar: the golden comparison and every expectation."""

    def runtest(self) -> None:
        capture = Path(str(self.path))
        try:
            side = load_sidecar(sidecar_path(capture))
        except ValueError as exc:
            raise GoldenFailure(str(exc)) from exc
        session = _session(self.config)
        checker = GoldenChecker(session, capture, capture.stem, GOLDEN_DIR)
        config = dict(side.config)
        if side.golden:
            trace = checker.trace(capture, app=side.app, events=side.events,
                                  exclude=side.exclude, round=side.round, **config)
            session.check_against(golden_path_for(capture), trace)
        failures = []
        for item in side.expect:
            want = dict(item)
            try:
                checker.expect(capture, event=want.pop("event"), app=side.app,
                               **want, **config)
            except GoldenFailure as exc:
                failures.append(str(exc))
            except TypeError as exc:
                failures.append(f"bad expect entry {item}: {exc}")
        if failures:
            raise GoldenFailure("\n".join(failures))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if excinfo.errisinstance(GoldenFailure):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return Path(str(self.path)), None, f"capture {self.name} ({SIDECAR_SUFFIX} sidecar)"
