"""The `corpus` marker, and the agreement line at the end of a run that included the corpus."""

from __future__ import annotations

import corpus
import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "corpus: runs mostool over the public capture corpus in ../shared/pcaps "
                   "and compares it with tshark's ground truth (about a minute)")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    if corpus.SUMMARY_LINES:
        terminalreporter.write_sep("-", "corpus")
        for line in corpus.SUMMARY_LINES:
            terminalreporter.write_line(line)
