"""Every notebook in notebooks/ runs top to bottom in a real Jupyter kernel (nbclient +
ipykernel), its cells' assertions included; committed notebooks carry no outputs; and
``dissect`` works inside a kernel whose event loop is running."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook extra is not installed")
nbclient = pytest.importorskip("nbclient", reason="the notebook extra is not installed")
pytest.importorskip("ipykernel", reason="the notebook extra is not installed")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _execute(book: object, where: Path) -> object:
    client = nbclient.NotebookClient(book, timeout=180, kernel_name="python3",
                                     resources={"metadata": {"path": str(where)}})
    client.execute()
    return book


def test_there_are_the_four_notebooks() -> None:
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_a_kernel(path: Path) -> None:
    book = nbformat.read(path, as_version=4)
    try:
        _execute(book, path.parent)
    except nbclient.exceptions.CellExecutionError as exc:
        pytest.fail(f"{path.name}: a cell failed:\n{exc}", pytrace=False)
    code = [c for c in book.cells if c.cell_type == "code"]
    assert all(c.get("outputs") is not None for c in code)
    errors = [o for c in code for o in c.outputs if o.get("output_type") == "error"]
    assert not errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebooks_carry_no_outputs(path: Path) -> None:
    book = json.loads(path.read_text())
    for cell in book["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None, (
                f"{path.name}: strip the outputs before committing (jupyter nbconvert "
                "--clear-output --inplace)")


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_dissect_inside_a_kernel_with_a_running_event_loop(tmp_path: Path) -> None:
    pcap = ROOT / "sample_pcaps" / "http_small.pcap"
    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell(
        "import asyncio\n"
        "loop = asyncio.get_event_loop()\n"
        "assert loop.is_running(), 'the kernel runs cells inside its event loop'\n"
        "import mostool as mos\n"
        f"cap = mos.analyze({str(pcap)!r})\n"
        "pkt = cap.dissect(3)\n"
        "assert int(pkt.number) == 3 and pkt.tcp.flags_syn in ('1', 'True')\n"
        "flow = cap.flow(1).dissect()\n"
        "assert len(flow) == len(cap.packets(1))\n"
        "print('dissected', len(flow))")]
    _execute(book, tmp_path)
    out = "".join(o.get("text", "") for o in book.cells[0].outputs)
    assert "dissected" in out


def test_live_flows_and_events_display_as_html_in_a_kernel(tmp_path: Path) -> None:
    pcap = ROOT / "sample_pcaps" / "http_small.pcap"
    book = nbformat.v4.new_notebook()
    book.cells = [
        nbformat.v4.new_code_cell(
            "import mostool as mos\n"
            "mon = mos.Monitor(); mon.socket(mos.MONITOR_STREAM)\n"
            f"st = mon.stepper(mos.replay({str(pcap)!r}))\n"
            "hit = st.run_until('ON_CONN_NEW_DATA')"),
        nbformat.v4.new_code_cell("hit.flow"),
        nbformat.v4.new_code_cell("hit.event"),
    ]
    _execute(book, tmp_path)
    flow_out = book.cells[1].outputs[0]["data"]
    event_out = book.cells[2].outputs[0]["data"]
    assert "SVR (server" in flow_out["text/html"] and "ESTABLISHED" in flow_out["text/html"]
    assert "ON_CONN_NEW_DATA" in event_out["text/html"]
