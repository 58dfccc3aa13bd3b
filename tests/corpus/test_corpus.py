"""mostool over the public capture corpus, against tshark's ground truth (issue 5).

Every capture in /work/shared/pcaps/MANIFEST.tsv runs through the engine (in a child process,
as `mostool flows --hash` does) and through the real command line. Definitions and rules:
README.md beside this file; every accepted difference: KNOWN_DIFFERENCES.md. Engine bugs make
these tests fail until fixed: that is intended.
"""

from __future__ import annotations

import corpus
import pytest

pytestmark = pytest.mark.corpus

MIN_AGREEMENT = 0.99

if not corpus.available():
    pytest.skip(f"public capture corpus not found at {corpus.CORPUS}", allow_module_level=True)


@pytest.fixture(scope="module")
def results() -> list[corpus.FileResult]:
    res = corpus.evaluate()
    corpus.SUMMARY_LINES.append(corpus.totals(res).line())
    return res


@pytest.fixture(scope="module")
def known() -> list[corpus.Known]:
    rows = corpus.known_differences()
    assert rows, f"no table rows parsed from {corpus.KNOWN_DIFFERENCES}"
    return rows


def test_every_capture_ran(results: list[corpus.FileResult]) -> None:
    assert len(results) == 398, "MANIFEST.tsv should list 398 captures"


def test_no_crash_hang_or_traceback(results: list[corpus.FileResult]) -> None:
    bad = [f"{r.capture.path}: {r.status}: {r.error.strip().splitlines()[-1:]}"
           for r in results if r.status in ("crash", "hang")]
    bad += [f"{r.capture.path}: CLI: {'; '.join(r.cli_problems)}"
            for r in results if r.cli_problems]
    assert not bad, f"{len(bad)} problem(s):\n" + "\n".join(bad)


@pytest.mark.parametrize("name", ["README.md", "MANIFEST.tsv", "no-such-capture.pcap"])
def test_unusable_input_is_one_line_and_status_2(name: str) -> None:
    # no capture of the corpus is unusable (every damaged one has a valid header), so the
    # contract for unusable input is checked on the corpus's own non-capture files
    out = corpus.run_cli(corpus.CORPUS / name)
    assert out["returncode"] == 2, out
    assert not out["problems"], out["problems"]
    assert out["stderr"].startswith("mostool: error: "), out["stderr"]


def test_cli_prints_what_the_engine_ends(results: list[corpus.FileResult]) -> None:
    bad = [f"{r.capture.path}: {r.cli_mismatch}" for r in results if r.cli_mismatch]
    assert not bad, "\n".join(bad)


def test_agreement_rate(results: list[corpus.FileResult], known: list[corpus.Known]) -> None:
    t = corpus.totals(results, known)
    print(t.line())
    assert t.eligible > 2000, f"only {t.eligible} eligible directions: the matching broke"
    assert t.rate >= MIN_AGREEMENT, (
        f"{t.agreed}/{t.eligible - t.truth_wrong} = {100 * t.rate:.2f}% < "
        f"{100 * MIN_AGREEMENT:.0f}%; "
        "disagreements:\n" + "\n".join(d.describe() for r in results
                                         for d in r.disagreements))


def test_every_disagreement_is_known(results: list[corpus.FileResult],
                                     known: list[corpus.Known]) -> None:
    diffs = corpus.unlisted([d for r in results for d in r.disagreements], known)
    assert not diffs, (f"{len(diffs)} disagreement(s) not in KNOWN_DIFFERENCES.md "
                       "(diagnose: a/b/d go there, engine bugs get fixed):\n"
                       + "\n".join(d.describe() for d in diffs))


def test_streams_not_decoded_are_known(results: list[corpus.FileResult],
                                       known: list[corpus.Known]) -> None:
    missing = corpus.unlisted_not_decoded(results, known)
    assert not missing, "\n".join(f"{c} stream {s}: {why}" for c, s, why in missing)


def test_orphan_and_flow_counts(results: list[corpus.FileResult],
                                known: list[corpus.Known]) -> None:
    compared = [r for r in results if corpus.counts_comparable(r) is None]
    assert len(compared) > 250, f"only {len(compared)} files with comparable counts"
    diffs = corpus.unlisted_counts([c for r in compared for c in corpus.count_differences(r)],
                                   known)
    assert not diffs, (f"{len(diffs)} count difference(s) not in KNOWN_DIFFERENCES.md:\n"
                       + "\n".join(d.describe() for d in diffs))


def test_known_differences_are_current(results: list[corpus.FileResult],
                                       known: list[corpus.Known]) -> None:
    gone = corpus.stale(results, known)
    assert not gone, ("rows of KNOWN_DIFFERENCES.md that match nothing any more (delete "
                      "them):\n" + "\n".join(f"{k.capture} {k.stream} {k.direction}"
                                             for k in gone))
