"""The pytest plugin, run on small generated test projects (pytester), as a user would run it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[1] / "sample_pcaps"
HTTP = SAMPLES / "http_small.pcap"
IMPAIRED = SAMPLES / "impaired_small.pcap"

pytest_plugins = ["pytester"]

TESTS = """
def test_http(mos_golden):
    mos_golden.check("caps/http.pcap", events=["ON_CONN_START", "ON_CONN_END",
                                                 "ON_TCP_STATE_CHANGE"])

def test_impaired(mos_golden):
    mos_golden.check("caps/impaired.pcap", exclude=["hook"])
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    caps = pytester.path / "caps"
    caps.mkdir()
    shutil.copy(HTTP, caps / "http.pcap")
    shutil.copy(IMPAIRED, caps / "impaired.pcap")
    pytester.makepyfile(test_caps=TESTS)
    return pytester


def _golden(p: pytest.Pytester, name: str) -> Path:
    return p.path / "golden" / "test_caps" / f"{name}.jsonl"


def test_update_writes_goldens_and_the_next_run_passes(project: pytest.Pytester) -> None:
    first = project.runpytest("--mos-update")
    first.assert_outcomes(passed=2)
    first.stdout.fnmatch_lines(["*golden traces written*", "*test_http.jsonl (new)*"])
    golden = _golden(project, "test_http")
    header, *events = golden.read_text().splitlines()
    head = json.loads(header)
    assert head["capture"] == "http.pcap" and len(head["sha256"]) == 64
    assert head["events"] == ["ON_CONN_START", "ON_CONN_END", "ON_TCP_STATE_CHANGE"]
    kinds = {json.loads(e)["event"] for e in events}
    assert kinds == {"ON_CONN_START", "ON_CONN_END", "ON_TCP_STATE_CHANGE"}
    assert json.loads(events[0])["t"] >= 0 and json.loads(events[0])["flow"] >= 1
    assert all("hook" not in json.loads(e)
               for e in _golden(project, "test_impaired").read_text().splitlines()[1:])
    again = project.runpytest()
    again.assert_outcomes(passed=2)
    assert "written" not in again.stdout.str()


def test_an_edited_golden_fails_with_a_readable_report(project: pytest.Pytester) -> None:
    project.runpytest("--mos-update").assert_outcomes(passed=2)
    golden = _golden(project, "test_http")
    lines = golden.read_text().splitlines()
    victim = next(i for i, line in enumerate(lines[1:], 1) if "ON_TCP_STATE_CHANGE" in line
                  and '"ESTABLISHED"' in line)
    rec = json.loads(lines[victim])
    rec["new"] = "CLOSE_WAIT"
    lines[victim] = json.dumps(rec, separators=(", ", ": "))
    golden.write_text("\n".join(lines) + "\n")
    result = project.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert f"at event {victim} of" in out
    assert f"packet={rec['packet']}" in out and f"flow={rec['flow']}" in out
    assert "client " in out and "server " in out          # both stacks' states at that packet
    assert "golden:" in out and "now:" in out and "more after this one" in out
    assert "Traceback" not in out
    obtained = golden.with_name("test_http.obtained.jsonl")
    assert obtained.read_text().splitlines()[victim] != lines[victim]
    project.runpytest("--mos-update").assert_outcomes(passed=2)
    assert not obtained.exists()
    project.runpytest().assert_outcomes(passed=2)


def test_a_missing_golden_fails_and_says_how_to_create_it(project: pytest.Pytester) -> None:
    result = project.runpytest("-k", "http")
    result.assert_outcomes(failed=1, deselected=1)
    result.stdout.fnmatch_lines(["*no golden file*test_http.jsonl*--mos-update*"])
    assert not _golden(project, "test_http").exists()


def test_a_golden_of_another_capture_says_so(project: pytest.Pytester) -> None:
    project.runpytest("--mos-update").assert_outcomes(passed=2)
    shutil.copy(IMPAIRED, project.path / "caps" / "http.pcap")
    result = project.runpytest("-k", "http")
    result.assert_outcomes(failed=1, deselected=1)
    result.stdout.fnmatch_lines(["*golden was made from another capture*"])


def test_prune_removes_only_unused_goldens(project: pytest.Pytester) -> None:
    project.runpytest("--mos-update").assert_outcomes(passed=2)
    folder = project.path / "golden" / "test_caps"
    (folder / "test_gone.jsonl").write_text(_golden(project, "test_http").read_text())
    (folder / "test_http.2.jsonl").write_text(_golden(project, "test_http").read_text())
    listed = project.runpytest()
    listed.assert_outcomes(passed=2)
    listed.stdout.fnmatch_lines(["*unused golden traces*", "*test_gone.jsonl*",
                                 "*2 unused golden file(s)*--mos-prune*"])
    # -k deselects test_impaired: its golden is kept; test_http passed without a second check
    pruned = project.runpytest("--mos-prune", "-k", "http")
    pruned.assert_outcomes(passed=1, deselected=1)
    assert not (folder / "test_gone.jsonl").exists()
    assert not (folder / "test_http.2.jsonl").exists()
    assert _golden(project, "test_http").exists() and _golden(project, "test_impaired").exists()


def test_parametrized_ids_name_the_goldens(pytester: pytest.Pytester) -> None:
    shutil.copy(HTTP, pytester.path / "http.pcap")
    pytester.makepyfile(test_param="""
import pytest
@pytest.mark.parametrize("overlap", ["first", "last"])
def test_policy(mos_golden, overlap):
    mos_golden.check("http.pcap", overlap=overlap, events=["ON_CONN_END"])
""")
    pytester.runpytest("--mos-update").assert_outcomes(passed=2)
    names = sorted(p.name for p in (pytester.path / "golden" / "test_param").iterdir())
    assert names == ["test_policy[first].jsonl", "test_policy[last].jsonl"]
    head = json.loads((pytester.path / "golden" / "test_param" / names[1]).read_text()
                      .splitlines()[0])
    assert head["config"] == {"overlap": "last"}


def test_expect_counts_events_and_explains_a_miss(pytester: pytest.Pytester) -> None:
    shutil.copy(HTTP, pytester.path / "http.pcap")
    pytester.makepyfile(test_expect="""
def test_ok(mos_golden):
    # seen at both hooks: the client's stack sends the SYN, the server's receives it
    found = mos_golden.expect("http.pcap", event="ON_CONN_START", count=5,
                              where={"hook": "HK_SND"})
    assert all(r["side"] == "CLI" for r in found)

def test_where(mos_golden):
    mos_golden.expect("http.pcap", event="ON_CONN_NEW_DATA", min_count=1,
                      where={"side": "SVR", "length__gte": 100})

def test_miss(mos_golden):
    mos_golden.expect("http.pcap", event="ON_CONN_END", count=1, where={"reason": "rst"})
""")
    result = pytester.runpytest()
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*expected exactly 1 ON_CONN_END event(s) where "
                                 "{'reason': 'rst'}, found 4*"])


def test_stops_at_first_failure_with_x(project: pytest.Pytester) -> None:
    result = project.runpytest("-x")
    result.assert_outcomes(failed=1)


def test_xdist_two_workers(project: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    project.runpytest_subprocess("--mos-update", "-n", "2").assert_outcomes(passed=2)
    folder = project.path / "golden" / "test_caps"
    (folder / "test_gone.jsonl").write_text("{}\n")
    result = project.runpytest_subprocess("-n", "2")
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    assert out.count("test_gone.jsonl") == 1 and "1 unused golden file(s)" in out


def test_capture_directory_as_a_test_suite(pytester: pytest.Pytester) -> None:
    caps = pytester.path / "pcaps"
    caps.mkdir()
    shutil.copy(HTTP, caps / "http.pcap")
    shutil.copy(IMPAIRED, caps / "plain.pcap")            # no sidecar: not a test
    pytester.makeini("[pytest]\nmos_pcap_dirs = pcaps\n")
    made = subprocess.run([sys.executable, "-m", "mostool", "golden", "new",
                           str(caps / "http.pcap"), "--app", "http",
                           "--events", "http_request,ON_CONN_END",
                           "--expect", "ON_CONN_END=10"],
                          capture_output=True, text=True, cwd=pytester.path)
    assert made.returncode == 0, made.stderr
    assert "wrote" in made.stdout and "http.golden.jsonl" in made.stdout
    side = json.loads((caps / "http.mos.json").read_text())
    assert side["app"] == ["http"] and side["expect"] == [{"event": "ON_CONN_END", "count": 10}]
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*pcaps/http.pcap::http.pcap PASSED*"])
    side["expect"][0]["count"] = 3
    (caps / "http.mos.json").write_text(json.dumps(side))
    failing = pytester.runpytest()
    failing.assert_outcomes(failed=1)
    failing.stdout.fnmatch_lines(["*expected exactly 3 ON_CONN_END*found 10*"])
    again = subprocess.run([sys.executable, "-m", "mostool", "golden", "new",
                            str(caps / "http.pcap")], capture_output=True, text=True)
    assert again.returncode == 2 and "--force" in again.stderr
