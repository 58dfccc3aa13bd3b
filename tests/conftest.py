"""Shared test set-up: the scenario builder on sys.path, and where the captures live."""

from __future__ import annotations

import sys
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
