"""Coverage-guided fuzzing of the reader, decoder and engine with atheris (libFuzzer).

    .venv/bin/pip install atheris
    .venv/bin/python tests/fuzz/fuzz_engine.py --make-seeds /tmp/fuzz-corpus
    .venv/bin/python tests/fuzz/fuzz_engine.py -max_total_time=600 -rss_limit_mb=2048 \\
        -artifact_prefix=tests/fuzz/crashers/ /tmp/fuzz-corpus

Each input goes to ``harness.one_input``: byte 0 picks the target and the monitor configuration
(even: the rest is a capture file for the reader; odd: a compact frame list for the decoder and
engine), so libFuzzer's mutations reach both the file format and the packets. A Python exception
(an invariant of ``harness`` broken, or anything escaping mostool) is a crash: libFuzzer writes
the input to ``-artifact_prefix``; keep it in ``tests/fuzz/crashers/`` so that
``tests/test_fuzz.py`` replays it. ``--make-seeds DIR`` writes a starting corpus from the sample
captures (and the netgen captures when ``../shared`` is present).
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def make_seeds(out: Path) -> int:
    """Seed inputs: each small seed capture as a file input, and windows of frames as frame
    lists, under every configuration selector."""
    import harness

    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for path in harness.seed_files():
        data = path.read_bytes()
        frames = harness.load_frames(path, 400)
        for cfg in range(len(harness.CONFIGS)):
            if len(data) <= 64 << 10:
                (out / f"file-{cfg}-{path.stem}").write_bytes(bytes([cfg << 1]) + data)
                n += 1
            for start in range(0, len(frames), 40):
                body = b"".join(
                    struct.pack("!BBH", harness.LINKTYPES.index(lt) if lt in harness.LINKTYPES
                                else 1, 16, len(frame)) + frame
                    for _ts, lt, frame, _wire in frames[start:start + 40])
                (out / f"frames-{cfg}-{path.stem}-{start}").write_bytes(
                    bytes([cfg << 1 | 1]) + body)
                n += 1
    return n


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--make-seeds":
        print(f"{make_seeds(Path(sys.argv[2]))} seed inputs in {sys.argv[2]}")
        return
    import atheris

    with atheris.instrument_imports():
        import harness

    def test_one_input(data: bytes) -> None:
        harness.one_input(data)

    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
