"""Monitoring apps: user code that `mostool run` and `mostool watch` load with ``--app``.

The app protocol. An app is a function that receives the ``Monitor`` before the run::

    def setup(mon: mostool.Monitor) -> Callable[[], None] | None:
        sock = mon.socket(mostool.MONITOR_STREAM)
        sock.on(mostool.ON_REXMIT, callback=...)      # sockets, callbacks, UDEs, timers
        return report                                  # optional: called once after the run

``--app SPEC`` names it:

* ``midstat``, ``rexmit``, ``http``, ``early_stop`` - the apps shipped in this package;
* ``path/to/app.py`` or ``path/to/app.py:func`` - a file (``func`` defaults to ``setup``,
  then ``main``);
* ``package.module`` or ``package.module:func`` - an importable module.

Several ``--app`` options load several apps into one monitor, in order (their listeners see a
client->server packet in that order, as a chain of middleboxes). Whatever an app prints goes to
standard output; UDEs it registers appear by name in the watch view.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = ["SHIPPED", "AppError", "App", "load_app", "start_apps"]

SHIPPED = ("midstat", "rexmit", "http", "early_stop")
Setup = Callable[..., Any]


class AppError(Exception):
    """An app could not be loaded or its setup failed (one line, for the command line)."""


class App:
    """A loaded app: its name, its setup function and, once set up, its report function."""

    def __init__(self, spec: str, name: str, setup: Setup) -> None:
        self.spec = spec
        self.name = name
        self.setup = setup
        self.finish: Callable[[], Any] | None = None

    def start(self, mon: Any) -> None:
        try:
            result = self.setup(mon)
        except Exception as exc:  # noqa: BLE001 - user code: one clear line
            raise AppError(f"app {self.spec!r} failed in {self.name}(): "
                           f"{type(exc).__name__}: {exc}{_where(exc)}") from exc
        self.finish = result if callable(result) else None

    def report(self) -> None:
        if self.finish is None:
            return
        try:
            self.finish()
        except Exception as exc:  # noqa: BLE001 - user code: one clear line
            raise AppError(f"app {self.spec!r} failed in its report: "
                           f"{type(exc).__name__}: {exc}{_where(exc)}") from exc


def _where(exc: BaseException) -> str:
    """' (file.py, line N)' of the innermost frame of the traceback."""
    tb = traceback.extract_tb(exc.__traceback__)
    if not tb:
        return ""
    last = tb[-1]
    return f" ({os.path.basename(last.filename)}, line {last.lineno})"


def _split(spec: str) -> tuple[str, str | None]:
    """'path/app.py:func' -> ('path/app.py', 'func'); a Windows drive letter is no function."""
    target, sep, func = spec.rpartition(":")
    if not sep or not target or "/" in func or "\\" in func or (
            len(target) == 1 and target.isalpha()):
        return spec, None
    return target, func or None


def _load_file(path: str, spec: str) -> ModuleType:
    if not os.path.exists(path):
        raise AppError(f"app file not found: {path}")
    if os.path.isdir(path):
        raise AppError(f"app {spec!r} is a directory; give a .py file or a module name")
    stem = os.path.splitext(os.path.basename(path))[0] or "app"
    mod_name = f"mostool_app_{stem}_{abs(hash(os.path.abspath(path))):x}"
    mspec = importlib.util.spec_from_file_location(mod_name, path)
    if mspec is None or mspec.loader is None:
        raise AppError(f"cannot load app {spec!r}: not a Python file")
    module = importlib.util.module_from_spec(mspec)
    sys.modules[mod_name] = module
    try:
        mspec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(mod_name, None)
        raise AppError(f"cannot load app {spec!r}: SyntaxError: {exc.msg} "
                       f"({os.path.basename(exc.filename or path)}, line {exc.lineno})") from exc
    except Exception as exc:  # noqa: BLE001 - user code: one clear line
        sys.modules.pop(mod_name, None)
        raise AppError(f"cannot load app {spec!r}: {type(exc).__name__}: {exc}"
                       f"{_where(exc)}") from exc
    return module


def _load_module(name: str, spec: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            shipped = ", ".join(SHIPPED)
            raise AppError(f"no app named {name!r} (not a file, not an importable module; "
                           f"shipped apps: {shipped})") from exc
        raise AppError(f"cannot load app {spec!r}: ModuleNotFoundError: {exc}") from exc
    except SyntaxError as exc:
        raise AppError(f"cannot load app {spec!r}: SyntaxError: {exc.msg} "
                       f"({os.path.basename(exc.filename or name)}, line {exc.lineno})") from exc
    except Exception as exc:  # noqa: BLE001 - user code: one clear line
        raise AppError(f"cannot load app {spec!r}: {type(exc).__name__}: {exc}"
                       f"{_where(exc)}") from exc


def load_app(spec: str) -> App:
    """Resolve ``--app SPEC`` to an App (not started yet). Raises AppError with one line."""
    spec = spec.strip()
    if not spec:
        raise AppError("empty --app")
    target, func = _split(spec)
    if target.endswith(".py") or os.sep in target or "/" in target:
        module = _load_file(target, spec)
    elif target in SHIPPED:
        module = importlib.import_module(f"mostool.apps.{target}")
    else:
        module = _load_module(target, spec)
    names = [func] if func else ["setup", "main"]
    for name in names:
        fn = getattr(module, name, None)
        if callable(fn):
            return App(spec, name, fn)
    wanted = func or "setup (or main)"
    raise AppError(f"app {spec!r} has no function {wanted}")


def start_apps(mon: Any, specs: list[str] | None) -> list[App]:
    """Load and set up every app, in order, on ``mon``."""
    apps = [load_app(s) for s in specs or []]
    for app in apps:
        app.start(mon)
    return apps
