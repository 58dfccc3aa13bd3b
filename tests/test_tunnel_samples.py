"""The tunnel and link-type sample captures (sample_pcaps/tunnels/, made by
tools/make_tunnel_pcaps.py from the real connection in sample_pcaps/http_small.pcap):
reproducible, small, decoded by real tshark to the inner TCP, and walked by
mostool.stack.tunnels / linktypes to exactly the original inner IP packets.
"""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from tunnel_walk import check_against_tshark, walk

from mostool.cli import main
from mostool.replay import read_capture
from mostool.stack.tunnels import describe, tunnel_key

REPO = Path(__file__).resolve().parent.parent
TUNNELS = REPO / "sample_pcaps" / "tunnels"
EXPECTED = json.loads((TUNNELS / "expected.json").read_text())
FILES = sorted(EXPECTED["files"])


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_tunnel_pcaps", REPO / "tools" / "make_tunnel_pcaps.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_tunnel_pcaps"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def built() -> dict[str, object]:
    return dict(_tool().build_all())


def test_the_generator_reproduces_the_committed_files() -> None:
    tool = _tool()
    files = tool.render(tool.build_all())
    assert sorted(files) == sorted([*FILES, "expected.json"])
    for name, data in files.items():
        assert (TUNNELS / name).read_bytes() == data, f"{name}: run tools/make_tunnel_pcaps.py"


def test_files_are_small() -> None:
    sizes = {p.name: p.stat().st_size for p in TUNNELS.iterdir()}
    assert all(s < 60_000 for s in sizes.values()), sizes
    assert sum(sizes.values()) < 1_000_000


@pytest.mark.parametrize("name", FILES)
def test_tshark_shows_the_inner_tcp(name: str) -> None:
    path = TUNNELS / name
    kinds, matched = check_against_tshark(path)  # skips without tshark
    assert matched == EXPECTED["files"][name]["frames"]
    tshark = shutil.which("tshark")
    assert tshark is not None
    expert = subprocess.run([tshark, "-r", str(path), "-q", "-z", "expert,error"],
                            capture_output=True, text=True, check=True).stdout
    assert "Malformed" not in expert and "Errors" not in expert, expert


@pytest.mark.parametrize("name", FILES)
def test_walking_every_frame_yields_the_original_ip_packets(
    name: str, built: dict[str, object]
) -> None:
    b = built[name.removesuffix(".pcap")]
    exp = EXPECTED["files"][name]
    frames = list(read_capture(TUNNELS / name))
    assert len(frames) == exp["frames"] == len(b.originals)  # type: ignore[attr-defined]
    # the copies of the connection (two only in vxlan_two_vni) are told apart by VNI
    keys: dict[tuple[int, ...], set[bytes]] = {}
    first_hops: dict[tuple[int, ...], list[dict[str, object]]] = {}
    for (_, linktype, buf, _), orig in zip(frames, b.originals, strict=True):  # type: ignore[attr-defined]
        assert linktype == exp["linktype"]
        w = walk(linktype, buf)
        assert not w.refused
        assert w.proto == 6
        assert w.ip == orig[14:]
        copy = tuple(h.ident for h in w.hops if h.kind == "vxlan")
        keys.setdefault(copy, set()).add(tunnel_key(tuple(w.hops)))
        first_hops.setdefault(copy, [describe(h) for h in w.hops])
    # one tunnel key per copy, the same from both directions, and different per copy
    assert all(len(k) == 1 for k in keys.values()), keys
    assert len(set().union(*keys.values())) == len(exp["flows"])
    assert list(first_hops.values()) == [f["tunnel"] for f in exp["flows"]]


def _flows(path: Path) -> list[dict[str, object]]:
    out, err = io.StringIO(), io.StringIO()
    assert main(["flows", "--hash", "-r", str(path)], out=out, err=err) == 0, err.getvalue()
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.mark.parametrize("name", FILES)
def test_mostool_flows_finds_the_expected_flows(name: str) -> None:
    """The acceptance test of the decoder's tunnel hook: `mostool flows --hash` on every
    sample gives exactly its flows (endpoints, bytes and SHA-256 each way, the tunnel)."""
    got = [
        {"client": r["client"], "server": r["server"],
         "c2s": {"bytes": r["c2s"]["bytes"], "sha256": r["c2s"]["sha256"]},  # type: ignore[index]
         "s2c": {"bytes": r["s2c"]["bytes"], "sha256": r["s2c"]["sha256"]},  # type: ignore[index]
         "tunnel": r.get("tunnel", [])}
        for r in _flows(TUNNELS / name)
    ]
    assert got == EXPECTED["files"][name]["flows"]
