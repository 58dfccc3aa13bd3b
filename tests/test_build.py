"""The compiled engine's build and selection (mostool/_build.py, setup.py).

The selection logic runs on a fake tree (always); the real compiled build, when this checkout
has one, is copied and edited to show that a stale build falls back to the edited source,
loudly; the pure build is checked against the compiled one on every capture.
"""

from __future__ import annotations

import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import pytest

import mostool
from mostool import _build

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def _fake_tree(root: Path) -> Path:
    """A package tree shaped like mostool's: two engine modules, one shell module they use."""
    pkg = root / "mostool"
    for sub in ("stack", "events"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "config.py").write_text("LIMIT = 3\n")
    (pkg / "cli.py").write_text("print('shell')\n")
    (pkg / "stack" / "engine.py").write_text(
        "from mostool.config import LIMIT\nfrom mostool.events import types\n")
    (pkg / "events" / "types.py").write_text("X = 1\n")
    for name in ("stack/engine", "events/types"):
        (pkg / f"{name}{SUFFIX}").write_bytes(b"")
    for name in _build.C_EXTENSIONS:
        (pkg.joinpath(*name.split(".")[1:]).with_suffix(SUFFIX)).write_bytes(b"")
    return pkg


def _decide(pkg: Path, **env: str) -> tuple[bool, str, list[str]]:
    return _build.decide(pkg, environ=env)


def test_fake_build_is_selected_when_fresh(tmp_path: Path) -> None:
    pkg = _fake_tree(tmp_path)
    assert _build.engine_modules(pkg) == ["mostool.stack.engine", "mostool.events.types"]
    _build.write_manifest(pkg, _build.engine_modules(pkg), pkg)
    # the sources hashed: the engine modules and what they import, not the shell
    sources = json.loads((pkg / _build.MANIFEST).read_text())["sources"]
    assert set(sources) == {"stack/engine.py", "events/types.py", "config.py",
                            "events/__init__.py"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compiled, why, names = _decide(pkg)
    assert compiled and why == "compiled with mypyc"
    assert names == sorted(_build.INTERPRETED)      # the .py of those, whatever lies beside
    assert _decide(pkg, MOSTOOL_PURE="1")[:2] == (False, "MOSTOOL_PURE is set")
    assert _decide(pkg, MOSTOOL_PURE="0")[0]
    (pkg / "cli.py").write_text("print('edited shell')\n")    # not a source of the build
    assert _decide(pkg)[0]


@pytest.mark.parametrize("edit", ["stack/engine.py", "config.py", "stack/new_module.py",
                                  "events/types.py"])
def test_fake_build_edited_source_is_stale_and_loud(tmp_path: Path, edit: str) -> None:
    pkg = _fake_tree(tmp_path)
    _build.write_manifest(pkg, _build.engine_modules(pkg), pkg)
    with open(pkg / edit, "a") as f:
        f.write("Y = 2\n")
    with pytest.warns(RuntimeWarning, match=f"stale: .*{edit}.*pure-Python") as rec:
        compiled, why, names = _decide(pkg)
    assert not compiled and "stale" in why and edit in why
    assert "mostool.stack.engine" in names and "mostool.stack._csum" in names   # to the .py
    assert "pip install -e ." in str(rec[0].message)


def test_fake_build_without_manifest_or_extension_is_quietly_pure(tmp_path: Path) -> None:
    pkg = _fake_tree(tmp_path)
    assert _decide(pkg) == (False, "no compiled build", [])
    _build.write_manifest(pkg, _build.engine_modules(pkg), pkg)
    (pkg / f"stack/engine{SUFFIX}").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compiled, why, _ = _decide(pkg)
    assert not compiled and "incomplete" in why
    (pkg / _build.MANIFEST).write_text("{not json")
    assert _decide(pkg)[1].startswith("unreadable")


def _run(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("MOSTOOL_PURE", "PYTHONPATH")}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=cwd, env=full, timeout=120)


PROBE = ("import mostool, mostool.stack.engine as e, mostool.stack.csum as c; "
         "print(mostool.version_text()); print(mostool.COMPILED, e.__file__, c.VARIANT)")


def test_pure_forced_at_run_time() -> None:
    r = _run(PROBE, REPO, MOSTOOL_PURE="1")
    assert r.returncode == 0, r.stderr
    text, state = r.stdout.splitlines()
    assert text.startswith("mostool 0.1.0 (pure Python")
    assert state.split()[0] == "False" and state.split()[1].endswith("engine.py")
    assert state.endswith("big int")


def test_version_text_matches_the_build() -> None:
    if mostool.COMPILED:
        assert mostool.version_text() == "mostool 0.1.0 (compiled with mypyc)"
        assert mostool.stack.engine.__file__.endswith(SUFFIX)   # type: ignore[attr-defined]
    else:
        assert mostool.version_text().startswith("mostool 0.1.0 (pure Python")


needs_build = pytest.mark.skipif(not mostool.COMPILED,
                                 reason="this checkout has no (fresh) compiled engine")


@needs_build
def test_real_build_edited_copy_runs_the_edit_and_warns(tmp_path: Path) -> None:
    """Copy the compiled package, edit one engine source: the copy must run the edited .py
    (never the stale compiled module), say so on stderr and in the version text."""
    shutil.copytree(REPO / "mostool", tmp_path / "mostool",
                    ignore=shutil.ignore_patterns("__pycache__"))
    probe = PROBE + "; import mostool.stack.tcp as t; print(getattr(t, 'EDITED', None))"
    fresh = _run(probe, tmp_path, PYTHONPATH=str(tmp_path))
    assert fresh.returncode == 0, fresh.stderr
    assert "compiled with mypyc" in fresh.stdout and SUFFIX in fresh.stdout
    assert fresh.stdout.splitlines()[-1] == "None" and fresh.stderr == ""

    with open(tmp_path / "mostool" / "stack" / "tcp.py", "a") as f:
        f.write("\nEDITED = 'the edit runs'\n")
    stale = _run(probe, tmp_path, PYTHONPATH=str(tmp_path))
    assert stale.returncode == 0, stale.stderr
    assert "RuntimeWarning" in stale.stderr and "stack/tcp.py" in stale.stderr
    lines = stale.stdout.splitlines()
    assert lines[0].startswith("mostool 0.1.0 (pure Python: compiled build is stale")
    assert lines[1].split()[0] == "False" and lines[1].split()[1].endswith("engine.py")
    assert lines[-1] == "the edit runs"


@needs_build
def test_pure_and_compiled_give_identical_output_on_every_capture() -> None:
    sys.path.insert(0, str(TESTS))
    try:
        import engine_parity
    finally:
        sys.path.remove(str(TESTS))
    status, report = engine_parity.compare()
    assert status == 0, report
    assert "all identical" in report


@needs_build
def test_pure_engine_tests_on_the_pure_engine() -> None:
    """The tests marked pure_engine (skipped in-process on a compiled build) pass there."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    env["MOSTOOL_PURE"] = "1"
    r = subprocess.run([sys.executable, "-m", "pytest", "-o", "addopts=", "-q", "-p",
                        "no:cacheprovider",
                        "-m", "pure_engine", str(TESTS)], capture_output=True, text=True,
                       cwd=REPO, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert " passed" in r.stdout      # (some skip where ../shared's captures are absent)


def test_build_without_c_compiler_makes_a_pure_wheel(tmp_path: Path) -> None:
    """setup.py with no usable C compiler: a pure wheel, no extension, no manifest."""
    env = {k: v for k, v in os.environ.items() if k != "MOSTOOL_PURE"}
    env["CC"] = str(tmp_path / "no-such-cc")
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "*.so", "_compiled.json", "__pycache__", "tests",
        "benchmarks", "sample_pcaps", "*.egg-info", ".*_cache"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                        "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"), str(src)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    wheels = list((tmp_path / "dist").glob("*.whl"))
    assert len(wheels) == 1 and wheels[0].name.endswith("py3-none-any.whl")
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert "mostool/stack/engine.py" in names
    assert not [n for n in names if n.endswith(".so") or n.endswith(_build.MANIFEST)]
