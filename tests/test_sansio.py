"""The engine (mostool/stack, mostool/events) does no I/O and never reads the wall clock, and it
imports only itself: the layer rule is that mostool.stack and mostool.events may import
mostool.stack, mostool.events and mostool.errors (the shared vocabulary), nothing else from
mostool (not the public face: mostool.config, mostool.monitor, mostool.flow; not a shell: cli,
sources, replay, live, sinks, view, apps, compat, parallel), at any level: at the top, inside a
function, or under ``if TYPE_CHECKING:``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENGINE_DIRS = [ROOT / "mostool" / "stack", ROOT / "mostool" / "events"]
# Modules the engine may not import at all: I/O, clocks, threads, randomness, UI, capture.
FORBIDDEN = {"os", "io", "sys", "time", "datetime", "socket", "select", "selectors",
             "threading", "multiprocessing", "subprocess", "asyncio", "signal", "random",
             "secrets", "pathlib", "shutil", "tempfile", "logging", "pcapy", "rich", "pandas",
             "dpkt", "pyshark", "mmap"}
ENGINE_MAY_IMPORT = ("mostool.stack", "mostool.events", "mostool.errors")
FORBIDDEN_CALLS = {"open", "print", "input", "exec", "eval", "__import__"}


def _engine_files() -> list[Path]:
    return sorted(p for d in ENGINE_DIRS for p in d.rglob("*.py"))


def _outside_the_engine(name: str) -> bool:
    return name.split(".")[0] == "mostool" and not any(
        name == m or name.startswith(m + ".") for m in ENGINE_MAY_IMPORT)


def _offenders(source: str, where: str, package: str) -> list[str]:
    """What one engine module imports or calls that it may not (every import in the file,
    whatever block it is in, TYPE_CHECKING included; relative imports resolved)."""
    out = []
    for node in ast.walk(ast.parse(source, where)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names] if base == "mostool" \
                else [base]
        for name in names:
            if name.split(".")[0] in FORBIDDEN or _outside_the_engine(name):
                out.append(f"{where}:{node.lineno} imports {name}")
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in FORBIDDEN_CALLS):
            out.append(f"{where}:{node.lineno} calls {node.func.id}")
    return out


def test_engine_imports_only_the_engine_and_no_io_clock_or_ui_module() -> None:
    offenders = []
    for path in _engine_files():
        package = ".".join(path.relative_to(ROOT).parent.parts)
        offenders += _offenders(path.read_text(), str(path.relative_to(ROOT)), package)
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("line", [
    "from mostool.config import MonitorConfig",
    "import mostool.monitor",
    "from mostool import replay",
    "from ... import sinks",
    "from ...cli import main",
    "from mostool.sources import Source",
    "import time",
])
def test_the_layer_rule_catches_a_forbidden_import(line: str) -> None:
    source = f"from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    {line}\n"
    assert _offenders(source, "mostool/stack/x.py", "mostool.stack.sub")
    assert _offenders(f"def f():\n    {line}\n", "mostool/stack/x.py", "mostool.stack.sub")


def test_the_layer_rule_allows_the_engine_itself() -> None:
    source = ("from mostool.stack.config import MonitorConfig\n"
              "from mostool.errors import MosError\nfrom mostool.events import types\n"
              "from . import tcp\nfrom ..events import ude\n")
    assert not _offenders(source, "mostool/stack/x.py", "mostool.stack")


def test_importing_the_engine_loads_no_io_or_ui_module() -> None:
    # -S: no site module, so nothing but what the engine itself pulls in is loaded
    code = (
        f"import sys, types; sys.path.insert(0, {str(ROOT)!r}); before = set(sys.modules)\n"
        # the package without its __init__ (which loads the public face): only what the
        # engine's own modules import gets loaded
        f"pkg = types.ModuleType('mostool'); pkg.__path__ = [{str(ROOT / 'mostool')!r}]\n"
        "sys.modules['mostool'] = pkg\n"
        "import mostool.stack.engine, mostool.events.dispatch, mostool.events.ude, "
        "mostool.events.trace\n"
        "print('\\n'.join(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    loaded = set(out)
    bad = {m for m in loaded if m.split(".")[0] in FORBIDDEN - {"os", "sys"}}
    bad |= {m for m in loaded if _outside_the_engine(m) and m != "mostool"}
    assert "mostool.stack.engine" in loaded
    assert not bad, f"the engine pulled in {sorted(bad)}"
