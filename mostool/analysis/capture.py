"""``mos.analyze(paths)``: a capture as DataFrames, plots, streams and tshark dissections.

Everything is computed on first use and kept: ``flows`` needs one pass with nothing subscribed
(the engine's fast path), ``events`` one pass with a recorder (it also fills ``flows``),
``packets(id)``/``stream(id, ...)`` one pass that watches that flow only and stops once it has
ended. Every pass runs the user's apps first on a fresh Monitor, so flow ids are those of
`mostool flows` and the apps see what they see on the command line.
"""

from __future__ import annotations

import dataclasses
import html
import os
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from mostool.analysis.runs import AppSpec, FlowDetail, Runner
from mostool.analysis.tables import FlowColumns
from mostool.config import MonitorConfig
from mostool.events.types import EventType
from mostool.monitor import Monitor

__all__ = ["analyze", "Capture", "FlowView", "StreamBytes"]

PACKET_COLUMNS = ("number", "time", "ts", "direction", "seq", "ack", "len", "flags",
                  "window", "rwnd", "new_data", "rexmit", "overlap", "gap", "anomalies")
_DIRS = ("c2s", "s2c")


class StreamBytes(bytes):
    """One direction's reassembled bytes; ``gaps`` lists what the capture missed, each as
    ``{"offset": stream offset, "file_offset": where it would sit in these bytes, "length"}``
    (as `mostool streams` writes them in index.jsonl)."""

    gaps: list[dict[str, int]]

    def __new__(cls, data: bytes, gaps: list[dict[str, int]]) -> StreamBytes:
        obj = super().__new__(cls, data)
        obj.gaps = gaps
        return obj

    @property
    def missing(self) -> int:
        return sum(g["length"] for g in self.gaps)


def analyze(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *,
            app: AppSpec = None, events: Iterable[str | EventType] | None = None,
            cluster: Any = None, **config: Any) -> Capture:
    """Analyse one capture or several (merged by time, as ``-r a -r b``). ``app``: an app spec
    (shipped name, path, module[:func]) or a ``setup(mon)`` function, or a list of them;
    ``events``: which events ``cap.events`` holds (names or event types; default every event
    but ON_PKT_IN); any other keyword is a ``MonitorConfig`` field."""
    files = [os.fspath(paths)] if isinstance(paths, (str, os.PathLike)) else [
        os.fspath(p) for p in paths]
    if not files:
        raise ValueError("analyze needs at least one capture file")
    for f in files:
        if not os.path.isfile(f):
            raise FileNotFoundError(f"no such capture file: {f}")
    names = {f.name for f in dataclasses.fields(MonitorConfig)}
    unknown = sorted(set(config) - names)
    if unknown:
        raise TypeError(f"unknown MonitorConfig field(s): {', '.join(unknown)}")
    return Capture(files, MonitorConfig(**config), app, events, cluster)


def _event_names(events: Iterable[str | EventType] | None) -> set[str] | None:
    """Event names (built-in or the apps' UDEs) from names or event types."""
    if events is None:
        return None
    return {item.name if isinstance(item, EventType) else str(item) for item in events}


class Capture:
    """The result of ``mos.analyze``: see the module docstring."""

    def __init__(self, files: list[str], config: MonitorConfig, app: AppSpec,
                 events: Iterable[str | EventType] | None, cluster: Any = None) -> None:
        self.files = files
        self.config = config
        self.app = app
        self.cluster = cluster
        self._wanted = _event_names(events)
        self._runner = Runner(files, config, app)
        self._flows: pd.DataFrame | None = None
        self._events: pd.DataFrame | None = None
        self._details: dict[tuple[int, bool], FlowDetail] = {}
        self.plot = _plots(self)

    # -- tables -----------------------------------------------------------------------------------

    @property
    def flows(self) -> pd.DataFrame:
        """One row per flow: the fields of `mostool flows` (c2s/s2c flattened), start and end
        as datetime64[ns, UTC], the flow id as index."""
        if self._flows is None:
            if self.cluster is not None:
                self._flows = self._flows_on_cluster()
            else:
                self._flows = self._runner.flows_pass().frame()
        return self._flows

    def _flows_on_cluster(self) -> pd.DataFrame:
        try:
            from mostool.dist import run_partitions
        except ImportError as exc:
            raise RuntimeError("cluster= needs the Dask backend (mostool[dask])") from exc
        records, _events = run_partitions(self.files, self.config, self.app, self.cluster,
                                            monitor_class=Monitor)
        cols = FlowColumns()
        for rec in records:
            cols.add_record(rec)
        return cols.frame()

    @property
    def events(self) -> pd.DataFrame:
        """The event trace: packet, time, flow, side, hook, event (built-in and UDE names) and
        what each event carries. One row per raise."""
        if self._events is None:
            flows = FlowColumns() if self._flows is None else None
            cols = self._runner.events_pass(self._wanted, flows)
            self._events = cols.frame()
            if flows is not None:
                self._flows = flows.frame()
        return self._events

    @property
    def warnings(self) -> list[str]:
        return list(self._runner.warnings)

    def _detail(self, flow_id: int, with_bytes: bool) -> FlowDetail:
        key = (flow_id, with_bytes)
        if key not in self._details:
            cached = self._details.get((flow_id, True))
            if cached is not None:
                return cached
            detail = self._runner.flow_pass(flow_id, with_bytes)
            if not detail.found:
                raise KeyError(f"no flow {flow_id} in {', '.join(self.files)} "
                               f"(flows: 1..{len(self.flows)})")
            self._details[key] = detail
        return self._details[key]

    def packets(self, flow_id: int) -> pd.DataFrame:
        """One row per packet of the flow: capture number, time, direction, relative seq/ack,
        length on the wire, flags, window (raw and scaled), and what the engine made of it:
        new in-order bytes, retransmitted bytes, conflicting overlap bytes, bytes given up as a
        gap, other anomalies."""
        rows = self._detail(int(flow_id), False).rows
        frame = pd.DataFrame({
            "number": pd.array(rows["number"], dtype="int64"),
            "time": _times(rows["ts"]),
            "ts": pd.array(rows["ts"], dtype="float64"),
            "direction": pd.Categorical([_DIRS[d] for d in rows["direction"]],
                                        categories=list(_DIRS)),
            "seq": pd.array(rows["seq"], dtype="int64"),
            "ack": pd.array(rows["ack"], dtype="int64"),
            "len": pd.array(rows["len"], dtype="int64"),
            "flags": pd.array(rows["flags"], dtype="string"),
            "window": pd.array(rows["window"], dtype="int64"),
            "rwnd": pd.array(rows["rwnd"], dtype="int64"),
            "new_data": pd.array(rows["new_data"], dtype="int64"),
            "rexmit": pd.array(rows["rexmit"], dtype="int64"),
            "overlap": pd.array(rows["overlap"], dtype="int64"),
            "gap": pd.array(rows["gap"], dtype="int64"),
            "anomalies": pd.array(rows["anomalies"], dtype="string"),
        }, columns=list(PACKET_COLUMNS))
        return frame

    def anomalies(self, flow_id: int) -> pd.DataFrame:
        """The flow's ON_REXMIT and ON_ERROR events with the packet that raised them."""
        e = self._detail(int(flow_id), False).errors
        return pd.DataFrame({
            "number": pd.array(e["number"], dtype="Int64"),
            "time": _times(e["ts"]),
            "direction": pd.Categorical([_DIRS[d] for d in e["direction"]],
                                        categories=list(_DIRS)),
            "event": pd.array(e["event"], dtype="string"),
            "kind": pd.array(e["kind"], dtype="string"),
            "offset": pd.array(e["offset"], dtype="int64"),
            "length": pd.array(e["length"], dtype="int64")})

    def stream(self, flow_id: int, direction: str = "c2s") -> StreamBytes:
        """The reassembled bytes of one direction ("c2s" or "s2c"); gaps in ``.gaps``."""
        if direction not in _DIRS:
            raise ValueError(f"direction is 'c2s' or 's2c', not {direction!r}")
        detail = self._detail(int(flow_id), True)
        d = _DIRS.index(direction)
        return StreamBytes(bytes(detail.data[d]), list(detail.gaps[d]))

    def flow(self, flow_id: int) -> FlowView:
        flows = self.flows
        if int(flow_id) not in flows.index:
            raise KeyError(f"no flow {flow_id} (flows: {list(flows.index[:10])}...)")
        return FlowView(self, int(flow_id))

    # -- dissection -------------------------------------------------------------------------------

    def dissect(self, numbers: int | Iterable[int]) -> Any:
        """Packet ``numbers`` (the capture's numbering, as ``packet`` in the tables) dissected
        by tshark through pyshark: one pyshark packet for a number, a list for several. Works
        inside a running Jupyter kernel (its own event loop in a worker thread)."""
        from mostool.analysis.dissect import dissect
        single = isinstance(numbers, int)
        wanted = [int(numbers)] if isinstance(numbers, int) else [int(n) for n in numbers]
        packets = dissect(self.files, wanted)
        return packets[0] if single else packets

    # -- export -----------------------------------------------------------------------------------

    def to_arrow(self, what: str = "flows") -> Any:
        """``flows`` or ``events`` as a pyarrow Table (needs pyarrow)."""
        import pyarrow as pa
        frame = self.flows.reset_index() if what == "flows" else self.events
        return pa.Table.from_pandas(frame, preserve_index=False)

    def to_parquet(self, path: str | os.PathLike[str], what: str = "flows") -> None:
        import pyarrow.parquet as pq
        pq.write_table(self.to_arrow(what), os.fspath(path))

    # -- display ------------------------------------------------------------------------------

    def _repr_html_(self) -> str:
        names = ", ".join(html.escape(os.path.basename(f)) for f in self.files)
        flows = self.flows
        head = (f"<b>mostool capture</b> {names}: {len(flows)} flow(s), "
                f"{int(flows['c2s_bytes'].sum() + flows['s2c_bytes'].sum()) if len(flows) else 0}"
                f" bytes reassembled")
        table = _flow_summary(flows.head(20))
        more = f"<br>... {len(flows) - 20} more" if len(flows) > 20 else ""
        return f"<div>{head}{table}{more}</div>"

    def __repr__(self) -> str:
        return f"<mostool Capture {', '.join(self.files)}>"


class FlowView:
    """One flow of a ``Capture``: its record, packets, streams, plots and dissection."""

    def __init__(self, cap: Capture, flow_id: int) -> None:
        self.cap = cap
        self.id = flow_id

    @property
    def record(self) -> pd.Series:
        return self.cap.flows.loc[self.id]

    def packets(self) -> pd.DataFrame:
        return self.cap.packets(self.id)

    def stream(self, direction: str = "c2s") -> StreamBytes:
        return self.cap.stream(self.id, direction)

    def dissect(self, number: int | None = None) -> Any:
        """One packet of the flow (its capture number) or, without one, the whole flow."""
        if number is not None:
            return self.cap.dissect(number)
        return self.cap.dissect(list(self.packets()["number"]))

    def _repr_html_(self) -> str:
        return _flow_summary(self.cap.flows.loc[[self.id]])


def _times(ts: Sequence[float]) -> Any:
    from mostool.analysis.tables import to_datetime
    return to_datetime(list(ts))


def _flow_summary(flows: pd.DataFrame) -> str:
    cols = [c for c in ("client", "server", "client_state", "server_state", "end_reason",
                        "c2s_bytes", "s2c_bytes", "c2s_gaps", "s2c_gaps", "c2s_rexmit",
                        "s2c_rexmit") if c in flows.columns]
    return str(flows[cols].to_html(escape=True, max_rows=40))


def _plots(cap: Capture) -> Any:
    from mostool.analysis.plots import Plots
    return Plots(cap)

