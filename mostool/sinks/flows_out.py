"""``--flows-out FILE``: the flow records `mostool flows` prints, to a file.

The format follows the file name: ``.csv`` (one flat row per flow), ``.parquet`` (needs
pyarrow, an optional extra; flat columns as the CSV), anything else JSON lines.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any

from mostool.sinks.flowlog import FlowLog, flatten

if TYPE_CHECKING:
    from mostool.monitor import Monitor

__all__ = ["FlowsOut", "parquet_available"]


def parquet_available() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


class FlowsOut:
    """Collects flow records as flows end and writes them to ``path`` in first-packet order."""

    def __init__(self, mon: Monitor, path: str) -> None:
        self.path = path
        self.format = ("csv" if path.lower().endswith(".csv") else
                       "parquet" if path.lower().endswith((".parquet", ".pq")) else "jsonl")
        if self.format == "parquet" and not parquet_available():
            raise ValueError("--flows-out FILE.parquet needs pyarrow "
                             "(pip install pyarrow); use .csv or .jsonl")
        self._rows: list[dict[str, Any]] = []
        self._file: IO[str] | None = None
        if self.format == "parquet":
            self.log = FlowLog(self._rows.append)
        else:
            self._file = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115
            self.log = (FlowLog(FlowLog.csv_writer(self._file)) if self.format == "csv"
                        else FlowLog.jsonl(self._file))
        mon.on_flow_end(self.log.flow_ended)

    @property
    def count(self) -> int:
        return self.log.count

    def close(self) -> None:
        self.log.close()
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.format == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq
            pq.write_table(pa.Table.from_pylist([flatten(r) for r in self._rows]), self.path)
