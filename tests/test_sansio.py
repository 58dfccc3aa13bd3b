"""The engine (mostool/stack, mostool/events) does no I/O and never reads the wall clock, and it
imports only itself: not the public face (``mostool.config``, ``mostool.monitor`` ...) nor a shell,
not even for type checking (``TYPE_CHECKING`` imports are walked like the others)."""

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
# The only mostool modules the engine may import: itself and the shared error vocabulary.
ENGINE_MOSTOOL = ("mostool.stack", "mostool.events", "mostool.errors")
FORBIDDEN_CALLS = {"open", "print", "input", "exec", "eval", "__import__"}


def _engine_files() -> list[Path]:
    return sorted(p for d in ENGINE_DIRS for p in d.rglob("*.py"))


def _outside_engine(module: str) -> bool:
    return (module == "mostool" or module.startswith("mostool.")) and not any(
        module == m or module.startswith(m + ".") for m in ENGINE_MOSTOOL)


def _relative_to_absolute(path: Path, node: ast.ImportFrom) -> str | None:
    """``from .x import y`` in an engine file, as the absolute module name."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    if node.level > len(package):
        return None
    base = ".".join(package[:len(package) - node.level + 1])
    return f"{base}.{node.module}" if node.module else base


def test_the_check_catches_the_public_face_and_shells() -> None:
    for module in ("mostool.config", "mostool.monitor", "mostool", "mostool.cli.common",
                   "mostool.sinks.flowlog", "mostool.flow", "mostool.testing"):
        assert _outside_engine(module), module
    for module in ("mostool.stack.config", "mostool.events.types", "mostool.errors",
                   "mostoolbox", "heapq"):
        assert not _outside_engine(module), module


def test_engine_imports_no_io_clock_or_ui_module() -> None:
    offenders = []
    for path in _engine_files():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level:
                name = _relative_to_absolute(path, node)
                names = [name] if name else []
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
                if node.module == "mostool":
                    names = [f"mostool.{a.name}" for a in node.names]
            for name in names:
                top = name.split(".")[0]
                if top in FORBIDDEN or _outside_engine(name):
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
    # -S: no site module, so nothing but what the engine itself pulls in is loaded (plus
    # mypy_extensions, the one dependency the engine's source imports: mypyc's types); and an
    # empty ``mostool`` package in place of mostool/__init__.py, which imports the public face
    code = (
        f"import sys, types; sys.path[:0] = [{_dir_of('mypy_extensions')!r}]; "
        f"pkg = types.ModuleType('mostool'); "
        f"pkg.__path__ = [{str(ROOT / 'mostool')!r}]; sys.modules['mostool'] = pkg\n"
        "before = set(sys.modules)\n"
        "import mostool.stack.engine, mostool.stack.records, mostool.stack.zeek, "
        "mostool.events.dispatch, mostool.events.ude, mostool.events.trace\n"
        "print('\\n'.join(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    loaded = set(out)
    bad = {m for m in loaded if m.split(".")[0] in FORBIDDEN - {"os", "sys"}}
    # the compiled build's one extension module holds the engine's own (compiled) modules
    bad |= {m for m in loaded if _outside_engine(m) and not m.startswith("mostool._engine__")}
    assert not bad, f"the engine pulled in {sorted(bad)}"

