"""Units of mostool.testing: canonical records, where-matching, sidecars, the golden command."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from mostool.cli import main
from mostool.testing.checker import GoldenFailure, golden_name, match_where
from mostool.testing.golden import compare, read_golden, write_golden
from mostool.testing.sidecar import load_sidecar
from mostool.testing.trace import CheckSpec, _canonify, run_trace

SAMPLES = Path(__file__).resolve().parents[1] / "sample_pcaps"


def test_canonify_makes_time_relative_rounds_and_excludes() -> None:
    rec = {"packet": 3, "ts": 100.0000004, "flow": 1, "side": "CLI", "offset": 7}
    out = _canonify(rec, 100.0, ["offset"], {"t": 6})
    assert out == {"packet": 3, "t": 0.0, "flow": 1, "side": "CLI"}
    assert json.dumps(_canonify({"ts": 99.9999999}, 100.0, [], {"t": 6})) == '{"t": 0.0}'
    assert list(_canonify(rec, 100.0, [], {}))[:2] == ["packet", "t"]      # order kept


def test_match_where_operators() -> None:
    rec = {"side": "SVR", "length": 10, "reason": "fin", "event": "http_request"}
    assert match_where(rec, {"side": "SVR", "length__gt": 5, "length__lte": 10})
    assert not match_where(rec, {"length__lt": 10})
    assert match_where(rec, {"reason__in": ["fin", "rst"], "event__startswith": "http"})
    assert match_where(rec, {"missing__ne": 1}) and not match_where(rec, {"missing__gt": 1})
    with pytest.raises(ValueError, match="unknown operator"):
        match_where(rec, {"length__between": 1})


def test_golden_names_are_file_safe() -> None:
    assert golden_name("test_x[a/b: c]") == "test_x[a_b__c]"


def test_sidecar_is_validated(tmp_path: Path) -> None:
    bad = tmp_path / "x.mos.json"
    bad.write_text('{"app": "http", "expcet": []}')
    with pytest.raises(ValueError, match="unknown key.*expcet"):
        load_sidecar(bad)
    bad.write_text('{"expect": [{"count": 1}]}')
    with pytest.raises(ValueError, match='needs an "event"'):
        load_sidecar(bad)
    bad.write_text("not json")
    with pytest.raises(ValueError, match="not a readable JSON sidecar"):
        load_sidecar(bad)
    bad.write_text('{"app": "http"}')
    assert load_sidecar(bad).app == ["http"]


def test_compare_reports_another_check_and_mentions_another_version(tmp_path: Path) -> None:
    pcap = SAMPLES / "http_small.pcap"
    spec = CheckSpec(capture=pcap.name, events=("ON_CONN_END",))
    trace = run_trace([pcap], spec)
    golden = tmp_path / "g.jsonl"
    write_golden(golden, trace)
    assert compare(golden, trace).equal
    header, lines = read_golden(golden)
    header["version"] = "0.0.1"
    golden.write_text("\n".join([json.dumps(header)] + lines) + "\n")
    result = compare(golden, trace)
    assert result.equal and "0.0.1" in result.notes
    other = run_trace([pcap], CheckSpec(capture=pcap.name, events=("ON_CONN_START",)))
    result = compare(golden, other)
    assert not result.equal and "another check" in result.report and "events" in result.report
    golden.write_text("")
    with pytest.raises(ValueError, match="empty golden"):
        read_golden(golden)


def test_an_unknown_config_field_is_one_clear_failure(tmp_path: Path) -> None:
    from mostool.testing.checker import GoldenChecker, Session
    checker = GoldenChecker(Session(update=False), tmp_path / "test_x.py", "test_y")
    with pytest.raises(GoldenFailure, match="unknown MonitorConfig field.*overlpa"):
        checker.check(SAMPLES / "http_small.pcap", overlpa="last")
    with pytest.raises(GoldenFailure, match="capture not found"):
        checker.check(tmp_path / "nothing.pcap")


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_golden_command_errors_are_one_line(tmp_path: Path) -> None:
    code, _, err = _cli("golden", "new", str(tmp_path / "none.pcap"))
    assert code == 2 and "no such capture" in err
    code, _, err = _cli("golden", "trace", str(SAMPLES / "http_small.pcap"), "--set", "x")
    assert code == 2 and "FIELD=VALUE" in err
    code, _, err = _cli("golden", "trace", str(SAMPLES / "http_small.pcap"),
                        "--set", "overlap=middle")
    assert code == 2 and "overlap" in err
    code, _, err = _cli("golden", "trace", str(SAMPLES / "http_small.pcap"), "--app", "nope")
    assert code == 2 and "nope" in err
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all")
    code, _, err = _cli("golden", "trace", str(junk))
    assert code == 2 and "junk.pcap" in err and "Traceback" not in err


def test_golden_new_refuses_a_wrong_expectation(tmp_path: Path) -> None:
    pcap = tmp_path / "h.pcap"
    pcap.write_bytes((SAMPLES / "http_small.pcap").read_bytes())
    code, _, err = _cli("golden", "new", str(pcap), "--expect", "ON_CONN_START=1")
    assert code == 2 and "gives 10" in err
    assert not (tmp_path / "h.mos.json").exists()
