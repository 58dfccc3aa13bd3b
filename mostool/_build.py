"""Which engine runs: the mypyc-compiled modules or the ``.py`` files they were compiled from.

Theory of operation. There is one source: the engine's ``.py`` files. ``pip install .`` (and
``pip install -e .``) compiles the modules named by :func:`engine_modules` with mypyc when a C
compiler and the Python headers are there (``setup.py``), and writes a manifest,
``mostool/_compiled.json``, beside them: the compiled modules, the C extensions, and a hash of
every ``.py`` file the compiled code was built from (the compiled modules and every ``mostool``
module they import, transitively, since mypyc may inline what it learns from them).

The compiled extension modules sit beside their ``.py`` files, where CPython's own finder would
prefer them. So ``mostool/__init__.py`` calls :func:`install` before importing anything else,
and this module decides once per process, for all compiled modules together (mypyc's modules
share one library and cannot be mixed with interpreted ones):

* ``MOSTOOL_PURE=1`` in the environment: interpreted.
* no manifest, or a missing extension file: interpreted (a pure install; silently).
* a manifest whose hashes no longer match the ``.py`` files, or an engine ``.py`` file the
  build did not see: interpreted, with a ``RuntimeWarning`` naming the files and the command
  that rebuilds. A development checkout therefore never runs compiled code older than its
  source; the warning (and ``mostool --version``) says so.

Otherwise compiled. In the interpreted case a meta-path finder placed first on ``sys.meta_path``
hands out the ``.py`` file for every compiled module and refuses the C extensions, so the
compiled files are never loaded; in the compiled case it does the same for the modules the
build left interpreted (an older build's extension file may still lie beside them).
:data:`COMPILED` holds the decision, :data:`REASON` why, and :func:`version_text` is the line
``mostool --version`` prints.

This module is never compiled and imports only the standard library: ``setup.py`` loads it by
path (the package's dependencies need not be installed at build time).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import Union

# paths are handled with os.path: pathlib is not among what importing the engine may load
StrPath = Union[str, "os.PathLike[str]"]

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
MANIFEST = "_compiled.json"
VERSION = "0.1.0"
# what mypyc compiles: every module of these packages (so that new files join the build)
COMPILED_PACKAGES = ("stack", "events")
# modules of those packages left interpreted: user-facing registration, off the per-packet path
# (compiled, a wrong argument type would raise mypyc's TypeError before the API's own MosError)
INTERPRETED: frozenset[str] = frozenset({"mostool.events.ude"})
# small C extensions of the same build (name -> C file under mostool/); each has a pure
# fallback chosen by the module that imports it
C_EXTENSIONS = {"mostool.stack._csum": "stack/_csum.c"}

COMPILED = False
REASON = "not decided"


def engine_modules(root: StrPath = PACKAGE_DIR) -> list[str]:
    """The dotted names of the modules mypyc compiles, from the files under ``root``."""
    root = os.fspath(root)
    names = []
    for pkg in COMPILED_PACKAGES:
        folder = os.path.join(root, pkg)
        files = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
        for file in files:
            stem, ext = os.path.splitext(file)
            name = f"mostool.{pkg}.{stem}"
            if ext == ".py" and stem != "__init__" and name not in INTERPRETED:
                names.append(name)
    return names


def module_path(name: str, root: StrPath = PACKAGE_DIR) -> str:
    return os.path.join(os.fspath(root), *name.split(".")[1:]) + ".py"


def _package_init(name: str, root: StrPath) -> str:
    return os.path.join(os.fspath(root), *name.split(".")[1:], "__init__.py")


def _rel(path: StrPath, root: StrPath) -> str:
    return os.path.relpath(path, os.fspath(root)).replace(os.sep, "/")


def _imports(path: StrPath) -> set[str]:
    """The ``mostool`` modules ``path`` imports (names only; from-imports of a package's
    submodules count as the submodule)."""
    with open(path, "rb") as f:
        tree = ast.parse(f.read(), path)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mostool"))
        elif (isinstance(node, ast.ImportFrom) and node.module and node.level == 0
              and node.module.startswith("mostool")):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def build_sources(modules: Sequence[str], root: StrPath = PACKAGE_DIR) -> list[str]:
    """The ``.py`` files (relative to ``root``) compiled code built from ``modules`` depends
    on: the modules themselves and the ``mostool`` modules they import, transitively."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_path(name, root)
        if not os.path.isfile(path):
            path = _package_init(name, root)
            if not os.path.isfile(path):
                seen.discard(name)          # a name imported from a module, not a module
                continue
        todo.extend(_imports(path) - seen)
    files = set()
    for name in seen:
        path = module_path(name, root)
        if not os.path.isfile(path):
            path = _package_init(name, root)
        files.add(_rel(path, root))
    return sorted(files)


def digest(path: StrPath) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def write_manifest(out_dir: StrPath, modules: Sequence[str], root: StrPath = PACKAGE_DIR) -> str:
    """Record what was compiled, from which sources (called by ``setup.py``)."""
    data = {
        "version": VERSION,
        "python": sys.implementation.cache_tag,
        "modules": list(modules),
        "extensions": sorted(C_EXTENSIONS),
        "interpreted": sorted(INTERPRETED),
        "sources": {rel: digest(os.path.join(os.fspath(root), rel))
                    for rel in build_sources(modules, root)},
    }
    out = os.path.join(os.fspath(out_dir), MANIFEST)
    with open(out, "w") as f:
        f.write(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return out


def _extension_file(name: str, root: StrPath) -> str | None:
    base = os.path.join(os.fspath(root), *name.split(".")[1:])
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        if os.path.isfile(base + suffix):
            return base + suffix
    return None


def decide(root: StrPath = PACKAGE_DIR, environ: dict[str, str] | None = None
           ) -> tuple[bool, str, list[str]]:
    """(compiled?, why, the modules whose ``.py`` file must be loaded whatever lies beside it:
    every module the build compiled when running pure, the ones it left interpreted when
    compiled). Warns when the build is stale."""
    env = os.environ if environ is None else environ
    try:
        with open(os.path.join(os.fspath(root), MANIFEST)) as f:
            manifest = json.loads(f.read())
        modules: list[str] = list(manifest["modules"])
        extensions: list[str] = list(manifest["extensions"])
        sources: dict[str, str] = dict(manifest["sources"])
        interpreted: list[str] = list(manifest.get("interpreted", []))
    except FileNotFoundError:
        return False, "no compiled build", []
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return False, f"unreadable {MANIFEST}: {exc}", []
    if env.get("MOSTOOL_PURE", "") not in ("", "0"):
        return False, "MOSTOOL_PURE is set", modules + extensions
    missing = [m for m in modules + extensions if _extension_file(m, root) is None]
    if missing:
        return False, f"compiled build incomplete for this Python ({missing[0]})", \
            modules + extensions
    changed = []
    for rel, want in sorted(sources.items()):
        path = os.path.join(os.fspath(root), rel)
        if not os.path.isfile(path) or digest(path) != want:
            changed.append(rel)
    changed += [_rel(module_path(m, root), root) for m in engine_modules(root)
                if m not in modules]
    if changed:
        why = (f"compiled build is stale: {', '.join(changed)} changed since it was built; "
               "running the pure-Python engine (rebuild: pip install -e . or make build; "
               "set MOSTOOL_PURE=1 to silence)")
        warnings.warn(f"mostool: {why}", RuntimeWarning, stacklevel=3)
        return False, why, modules + extensions
    return True, "compiled with mypyc", interpreted


class _PureFinder:
    # a sys.meta_path finder (not an importlib.abc subclass: that module loads pathlib and
    # tempfile, which importing the engine must not)
    """Hands out the ``.py`` file of the modules it is given; refuses the C extensions."""

    def __init__(self, root: StrPath, names: Sequence[str]) -> None:
        self.root = root
        self.names = frozenset(names)

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
            return None
        if fullname in C_EXTENSIONS:
            raise ModuleNotFoundError(f"{fullname} is not used by the pure-Python engine",
                                      name=fullname)
        return importlib.util.spec_from_file_location(fullname, module_path(fullname, self.root))


def install(root: StrPath = PACKAGE_DIR) -> bool:
    """Decide compiled or interpreted for this process (once) and arrange the imports."""
    global COMPILED, REASON
    if REASON != "not decided":
        return COMPILED
    COMPILED, REASON, names = decide(root)
    if names:
        sys.meta_path.insert(0, _PureFinder(root, names))
    return COMPILED


def version_text() -> str:
    """``mostool 0.1.0 (compiled with mypyc)`` or ``mostool 0.1.0 (pure Python[: why])``."""
    if COMPILED:
        return f"mostool {VERSION} (compiled with mypyc)"
    quiet = REASON in ("no compiled build", "not decided")
    return f"mostool {VERSION} (pure Python)" if quiet else \
        f"mostool {VERSION} (pure Python: {REASON})"


if __name__ == "mostool._build":        # imported by the package, not loaded by setup.py
    install()
