"""The compiled engine against the pure-Python one: byte-identical CLI output on every capture.

    .venv/bin/python tests/engine_parity.py [--allow-pure]

Runs ``mostool flows --hash`` and ``mostool events`` on every bundled capture (sample_pcaps/)
and every netgen capture (../shared/pcaps/netgen/) twice, in two processes: as installed (the
compiled engine when the build has one) and with ``MOSTOOL_PURE=1``. Each process runs all the
captures through ``mostool.cli.main`` (one interpreter start per mode, not per capture) and
writes each output to a file; the files are then compared byte for byte. Exit status 1 on any
difference (the first differing line of each is printed), 2 when the first run is not compiled
(unless --allow-pure), 0 otherwise. tests/test_build.py runs it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NETGEN = REPO.parent / "shared" / "pcaps" / "netgen"
COMMANDS = {"flows": ["flows", "--hash"], "events": ["events"]}


def captures() -> list[Path]:
    found = sorted((REPO / "sample_pcaps").glob("*.pcap*"))
    if NETGEN.is_dir():
        found += sorted(NETGEN.glob("*.pcap*"))
    return found


def dump(out_dir: Path) -> int:
    """In this process: every command on every capture, each output to its own file."""
    import mostool
    from mostool.cli import main

    (out_dir / "engine.txt").write_text(mostool.version_text() + "\n")
    for cap in captures():
        for cmd, argv in COMMANDS.items():
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    rc = main([*argv, "-r", str(cap)])
                except SystemExit as exc:
                    rc = exc.code if isinstance(exc.code, int) else 1
            name = f"{cap.parent.name}__{cap.name}.{cmd}"
            (out_dir / f"{name}.out").write_bytes(out.getvalue().encode())
            (out_dir / f"{name}.rc").write_text(f"{rc}\n{err.getvalue()}")
    return 0


def _run_mode(out_dir: Path, pure: bool) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MOSTOOL_PURE"}
    if pure:
        env["MOSTOOL_PURE"] = "1"
    out_dir.mkdir()
    subprocess.run([sys.executable, __file__, "--dump", str(out_dir)], env=env, cwd=REPO,
                   check=True)


def compare(allow_pure: bool = False) -> tuple[int, str]:
    """(exit status, report)."""
    with tempfile.TemporaryDirectory(prefix="mostool-parity-") as tmp:
        built, pure = Path(tmp) / "built", Path(tmp) / "pure"
        _run_mode(built, pure=False)
        _run_mode(pure, pure=True)
        engines = ((built / "engine.txt").read_text().strip(),
                   (pure / "engine.txt").read_text().strip())
        lines = [f"as installed: {engines[0]}; forced pure: {engines[1]}"]
        if "compiled" not in engines[0] and not allow_pure:
            return 2, "\n".join(lines + ["the installed engine is not compiled: nothing to "
                                         "compare (build it, or pass --allow-pure)"])
        names = sorted(p.name for p in built.iterdir() if p.name != "engine.txt")
        bad = 0
        for name in names:
            a, b = (built / name).read_bytes(), (pure / name).read_bytes()
            if a != b:
                bad += 1
                al, bl = a.splitlines(), b.splitlines()
                i = next((k for k, (x, y) in enumerate(zip(al, bl, strict=False)) if x != y),
                         min(len(al), len(bl)))
                lines.append(f"DIFFERS {name} at line {i + 1}:\n  compiled: "
                             f"{al[i][:300] if i < len(al) else b'(end)'!r}\n  pure:     "
                             f"{bl[i][:300] if i < len(bl) else b'(end)'!r}")
        failed = [n for n in names if n.endswith(".rc")
                  and (built / n).read_text().split("\n", 1)[0] != "0"]
        if failed:
            bad += len(failed)
            lines.append(f"non-zero exit (both builds alike) for: {', '.join(failed)}")
        n_caps = len(names) // (2 * len(COMMANDS))
        lines.append(f"{n_caps} captures x {len(COMMANDS)} commands: "
                     f"{'all identical' if not bad else f'{bad} outputs differ'}")
        return (1 if bad else 0), "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dump", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--allow-pure", action="store_true",
                    help="compare even when the installed engine is not compiled")
    args = ap.parse_args(argv)
    if args.dump:
        return dump(args.dump)
    status, report = compare(args.allow_pure)
    print(report)
    return status


if __name__ == "__main__":
    sys.exit(main())
