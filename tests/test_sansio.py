"""The engine (mostool/stack, mostool/events) does no I/O and never reads the wall clock."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINE_DIRS = [ROOT / "mostool" / "stack", ROOT / "mostool" / "events"]
# Modules the engine may not import at all: I/O, clocks, threads, randomness, UI, capture.
FORBIDDEN = {"os", "io", "sys", "time", "datetime", "socket", "select", "selectors",
             "threading", "multiprocessing", "subprocess", "asyncio", "signal", "random",
             "secrets", "pathlib", "shutil", "tempfile", "logging", "pcapy", "rich", "pandas",
             "dpkt", "pyshark", "mmap"}
FORBIDDEN_MOSTOOL = {"mostool.replay", "mostool.live", "mostool.bpf", "mostool.cli",
                     "mostool.monitor", "mostool.sinks", "mostool.view"}
FORBIDDEN_CALLS = {"open", "print", "input", "exec", "eval", "__import__"}


def _engine_files() -> list[Path]:
    return sorted(p for d in ENGINE_DIRS for p in d.rglob("*.py"))


def test_engine_imports_no_io_clock_or_ui_module() -> None:
    offenders = []
    for path in _engine_files():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in FORBIDDEN or any(name == m or name.startswith(m + ".")
                                           for m in FORBIDDEN_MOSTOOL):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in FORBIDDEN_CALLS):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} calls {node.func.id}")
    assert not offenders, "\n".join(offenders)


def _dir_of(module: str) -> str:
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None
    return str(Path(spec.origin).parent)


def test_importing_the_engine_loads_no_io_or_ui_module() -> None:
    # -S: no site module, so nothing but what the engine itself pulls in is loaded
    # (plus mypy_extensions, the one dependency the engine's source imports: mypyc's types)
    code = (
        f"import sys; sys.path[:0] = [{str(ROOT)!r}, {_dir_of('mypy_extensions')!r}]; "
        "before = set(sys.modules)\n"
        "import mostool.stack.engine, mostool.events.dispatch, mostool.events.ude, "
        "mostool.events.trace\n"
        "print('\\n'.join(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    loaded = set(out)
    bad = {m for m in loaded if m.split(".")[0] in FORBIDDEN - {"os", "sys"}}
    bad |= {m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN_MOSTOOL
                                     if f != "mostool.monitor")}
    assert not bad, f"the engine pulled in {sorted(bad)}"
