"""TCP plots of a ``Capture``: matplotlib figures returned to the caller (``cap.plot.*``).

Every method takes an optional ``ax`` to draw into and returns the figure, which renders in a
notebook and saves with ``fig.savefig("x.png")``. Figures are made with ``matplotlib.figure
.Figure`` (not pyplot), so nothing global changes and a notebook shows each figure once.

- ``time_sequence(flow)``: the Stevens/tcptrace graph of one direction: each data segment as a
  vertical bar from its relative sequence number to its end, the peer's ACK line and the receive
  window's right edge (ACK + scaled window) as steps, retransmissions in red, bytes given up as a
  gap and conflicting overlaps marked.
- ``throughput(flow)``: new in-order bytes per time bin, both directions, in bits/s.
- ``timeline()``: every event of ``cap.events`` on a time axis, one lane per flow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mostool.analysis.capture import Capture

__all__ = ["Plots"]

_OTHER = {"c2s": "s2c", "s2c": "c2s"}
_FLOW_TIME = "seconds since the flow's first packet"


def _axes(ax: Any, size: tuple[float, float] = (9.0, 4.5)) -> Any:
    if ax is not None:
        return ax
    from matplotlib.figure import Figure
    fig = Figure(figsize=size, layout="constrained")
    return fig.add_subplot()


class Plots:
    def __init__(self, cap: Capture) -> None:
        self._cap = cap

    def time_sequence(self, flow_id: int, direction: str = "c2s", ax: Any = None) -> Any:
        """Stevens/tcptrace time-sequence graph of ``direction`` ("c2s": the client's data)."""
        if direction not in _OTHER:
            raise ValueError(f"direction is 'c2s' or 's2c', not {direction!r}")
        pk = self._cap.packets(flow_id)
        ax = _axes(ax)
        if len(pk) == 0:
            ax.set_title(f"flow {flow_id}: no packets")
            return ax.figure
        t0 = float(pk["ts"].iloc[0])
        mine = pk[pk["direction"] == direction]
        peer = pk[pk["direction"] == _OTHER[direction]]
        data = mine[mine["len"] > 0]
        t = data["ts"].to_numpy(float) - t0
        seq = data["seq"].to_numpy(np.int64)
        end = seq + data["len"].to_numpy(np.int64)
        re = data["rexmit"].to_numpy(np.int64) > 0
        ax.vlines(t[~re], seq[~re], end[~re], colors="tab:blue", linewidth=1.5,
                  label="segments")
        if re.any():             # a bar and a dot: a short bar is lost among thousands
            ax.vlines(t[re], seq[re], end[re], colors="tab:red", linewidth=2.0)
            ax.scatter(t[re], seq[re], s=16, color="tab:red", zorder=3,
                       label="retransmissions")
        ackers = peer[peer["flags"].str.contains("A", regex=False).fillna(False)]
        if len(ackers):
            ta = ackers["ts"].to_numpy(float) - t0
            ack = ackers["ack"].to_numpy(np.int64)
            ax.step(ta, ack, where="post", color="tab:green", linewidth=1, label="ACK")
            edge = ack + ackers["rwnd"].to_numpy(np.int64)
            ax.step(ta, edge, where="post", color="tab:olive", linewidth=1, linestyle="--",
                    label="receive window")
        gaps = mine[mine["gap"] > 0]
        if len(gaps):
            ax.scatter(gaps["ts"].to_numpy(float) - t0, gaps["seq"].to_numpy(np.int64),
                       marker="x", color="black", zorder=3, label="gap given up")
        conflicts = mine[mine["overlap"] > 0]
        if len(conflicts):
            ax.scatter(conflicts["ts"].to_numpy(float) - t0,
                       conflicts["seq"].to_numpy(np.int64), marker="D", color="tab:purple",
                       zorder=3, label="conflicting overlap")
        rec = self._cap.flows.loc[flow_id]
        src, dst = (rec["client"], rec["server"]) if direction == "c2s" else (
            rec["server"], rec["client"])
        return _finish(ax, f"flow {flow_id}: {src} > {dst}", _FLOW_TIME,
                       "relative sequence number", loc="upper left")

    def throughput(self, flow_id: int, bin: float | None = None, ax: Any = None) -> Any:
        """New in-order bytes per ``bin`` seconds (default: the flow's duration / 50) in
        bits/s, one line per direction."""
        pk = self._cap.packets(flow_id)
        ax = _axes(ax)
        if len(pk) == 0:
            ax.set_title(f"flow {flow_id}: no packets")
            return ax.figure
        t = pk["ts"].to_numpy(float)
        t = t - t[0]
        span = float(t[-1]) if len(t) else 0.0
        width = bin if bin and bin > 0 else max(span / 50, 1e-3)
        edges = np.arange(0.0, span + width, width)
        if len(edges) < 2:
            edges = np.array([0.0, width])
        for direction, color in (("c2s", "tab:blue"), ("s2c", "tab:orange")):
            sel = (pk["direction"] == direction).to_numpy()
            sums, _ = np.histogram(t[sel], bins=edges,
                                   weights=pk["new_data"].to_numpy(float)[sel])
            ax.step(edges[:-1], sums * 8 / width, where="post", color=color, label=direction)
        return _finish(ax, f"flow {flow_id}: throughput ({width:.3g} s bins)", _FLOW_TIME,
                       "bits/s", loc="upper right")

    def timeline(self, ax: Any = None, events: list[str] | None = None,
                 max_flows: int = 50) -> Any:
        """Events on a time axis, one lane per flow (the first ``max_flows`` flows)."""
        ev = self._cap.events
        ax = _axes(ax, (10.0, 5.0))
        if events is not None:
            ev = ev[ev["event"].isin(events)]
        ev = ev[(ev["flow"] > 0) & (ev["flow"] <= max_flows)]
        if len(ev) == 0:
            ax.set_title("no events")
            return ax.figure
        t0 = float(self._cap.events["ts"].min())
        names = [str(n) for n in ev["event"].astype(str).unique()]
        cmap = _colors(len(names))
        for i, name in enumerate(sorted(names)):
            sel = ev[ev["event"].astype(str) == name]
            ax.scatter(sel["ts"].to_numpy(float) - t0, sel["flow"].to_numpy(), s=14,
                       color=cmap[i], label=name, alpha=0.8)
        return _finish(ax, f"events of {ev['flow'].nunique()} flow(s)",
                       "seconds since the capture's first event", "flow", loc="upper left",
                       bbox_to_anchor=(1.01, 1.0))


def _finish(ax: Any, title: str, xlabel: str, ylabel: str, **legend: Any) -> Any:
    """Title, axis labels, a small legend and a light grid; the figure."""
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize="small", **legend)
    ax.grid(True, alpha=0.3)
    return ax.figure


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps
    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]
