"""Cross-check against netgen captures: real Linux TCP with the applications' own truth.

Every connection must be found with the right client, server and outcome ("refused" = "rst"),
and every direction the application received completely must reassemble to exactly
``received_bytes`` with ``received_sha256``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from netgen_check import compare, flows_of

ROOT = Path(__file__).resolve().parents[1]
NETGEN = ROOT.parent / "shared" / "pcaps" / "netgen"
SAMPLES = ROOT / "sample_pcaps"

netgen_pcaps = sorted(NETGEN.glob("*.pcap")) if NETGEN.is_dir() else []
sample_pcaps = sorted(p for p in SAMPLES.glob("*.pcap") if p.with_suffix(".json").exists())


@pytest.mark.skipif(not netgen_pcaps, reason=f"{NETGEN} is absent (../shared not beside repo)")
@pytest.mark.parametrize("pcap", netgen_pcaps, ids=[p.stem for p in netgen_pcaps])
def test_netgen_capture_matches_application_truth(pcap: Path) -> None:
    assert compare(pcap) == []


@pytest.mark.parametrize("pcap", sample_pcaps, ids=[p.stem for p in sample_pcaps])
def test_bundled_sample_matches_application_truth(pcap: Path) -> None:
    assert compare(pcap) == []


@pytest.mark.skipif(not netgen_pcaps, reason=f"{NETGEN} is absent")
def test_every_flow_is_a_truth_connection() -> None:
    """No spurious flows: the capture's flows are exactly the applications' connections."""
    import json
    for pcap in netgen_pcaps:
        truth = json.loads(pcap.with_suffix(".json").read_text())
        flows = flows_of(pcap)
        assert len(flows) == len(truth["connections"]), pcap.name


@pytest.mark.skipif(not netgen_pcaps, reason=f"{NETGEN} is absent")
def test_buffering_does_not_change_the_streams() -> None:
    pcap = NETGEN / "loss.pcap"
    plain = flows_of(pcap)
    buffered = flows_of(pcap, rcvbuf=1 << 16)
    assert [(f["c2s"], f["s2c"]) for f in plain] == [(f["c2s"], f["s2c"]) for f in buffered]
