"""Shared test set-up: the scenario builder on sys.path, and where the captures live."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SAMPLES = REPO / "sample_pcaps"
SHARED_PCAPS = REPO.parent / "shared" / "pcaps"

if str(TESTS) not in sys.path:  # `from builders import ...` under any import mode
    sys.path.insert(0, str(TESTS))


@pytest.fixture
def samples() -> Path:
    """The bundled sample captures (sample_pcaps/)."""
    if not SAMPLES.is_dir():
        pytest.skip(f"bundled sample captures not found at {SAMPLES}")
    return SAMPLES


@pytest.fixture
def shared_pcaps() -> Path:
    """The shared real-capture corpus (../shared/pcaps), read in place; skipped when absent."""
    if not SHARED_PCAPS.is_dir():
        pytest.skip(f"shared capture corpus not found at {SHARED_PCAPS}")
    return SHARED_PCAPS


@pytest.fixture
def frame_by_frame(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Calling it makes every ReplaySource hand out frames: the pipeline without the in-place
    record loops (mostool/stack/records.py), to compare both ways."""
    from mostool.replay import ReplaySource

    def off() -> None:
        monkeypatch.setattr(ReplaySource, "pcap_records", lambda self: None)
    return off


@pytest.fixture(autouse=True)
def _shared_empty_streams_untouched() -> Iterator[None]:
    """After every test: no writer took a side's shared empty half-stream for its own
    (mostool/stack/stream_spec.py)."""
    yield
    from mostool.stack.stream_spec import check_empties
    check_empties()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "pure_engine: needs the interpreted engine (patches engine classes, or "
        "checks what only interpreted code passes through); with a compiled build they run "
        "in a MOSTOOL_PURE=1 subprocess (test_build.py)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import mostool

    if not mostool.COMPILED:
        return
    skip = pytest.mark.skip(reason="compiled engine: run on the pure engine by "
                            "test_build.py::test_pure_engine_tests_on_the_pure_engine")
    for item in items:
        if "pure_engine" in item.keywords:
            item.add_marker(skip)
