"""Builds mostool's engine with mypyc when it can (the metadata is in pyproject.toml).

``pip install .`` / ``pip install -e .`` compile the modules ``mostool._build.engine_modules()``
lists, plus the C checksum, and write ``mostool/_compiled.json`` (what was compiled from which
sources; ``mostool/_build.py`` checks it at import). Without a C compiler or the Python headers,
or with ``MOSTOOL_PURE=1``, the package installs as pure Python. MOSTOOL_MYPYC_OPT sets the C
optimisation level (default 3).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import sysconfig
import time
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
PKG = HERE / "mostool"


def _load_build_module():  # type: ignore[no-untyped-def]
    # by path: importing the package would need its dependencies, absent at build time
    spec = importlib.util.spec_from_file_location("mostool_build", PKG / "_build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _why_pure() -> str | None:
    if os.environ.get("MOSTOOL_PURE", "") not in ("", "0"):
        return "MOSTOOL_PURE is set"
    if sys.implementation.name != "cpython":
        return f"{sys.implementation.name} is not CPython"
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(os.environ.get("CC", cc).split()[0]) is None:
        return f"no C compiler ({cc})"
    include = sysconfig.get_paths()["include"]
    if not (Path(include) / "Python.h").is_file():
        return f"no Python headers ({include}/Python.h; Debian: apt-get install python3-dev)"
    return None


class BuildWithManifest(build_ext):
    """build_ext that times the build and writes the manifest beside the built modules."""

    def run(self) -> None:
        t0 = time.perf_counter()
        super().run()
        out = PKG if self.inplace else Path(self.build_lib) / "mostool"
        out.mkdir(parents=True, exist_ok=True)
        build = _load_build_module()
        # extension files of modules this build no longer compiles (an older build's, in the
        # tree or in build/lib)
        built = {e.name for e in self.extensions}
        for name in build.INTERPRETED:
            old = build._extension_file(name, out)
            if old is not None and name not in built:
                os.unlink(old)
        build.write_manifest(out, build.engine_modules(PKG), PKG)
        print(f"mostool: compiled engine built in {time.perf_counter() - t0:.0f} s "
              f"({len(build.engine_modules(PKG))} modules)", file=sys.stderr)


def _extensions() -> tuple[list[Extension], dict[str, type]]:
    why = _why_pure()
    if why is not None:
        print(f"mostool: building pure Python ({why})", file=sys.stderr)
        stale = PKG / "_compiled.json"
        if stale.exists():      # an in-place build from before: no longer what the tree holds
            stale.unlink()
        return [], {}
    from mypyc.build import mypycify

    build = _load_build_module()
    sources = [os.path.relpath(build.module_path(m, PKG), HERE) for m in build.engine_modules(PKG)]
    exts = mypycify(sources, opt_level=os.environ.get("MOSTOOL_MYPYC_OPT", "3"),
                    debug_level="0", group_name="mostool._engine")
    for name, c_file in build.C_EXTENSIONS.items():
        exts.append(Extension(name, [f"mostool/{c_file}"], extra_compile_args=["-O3"]))
    return exts, {"build_ext": BuildWithManifest}


ext_modules, cmdclass = _extensions()
setup(ext_modules=ext_modules, cmdclass=cmdclass)
