"""Case 3: `mostool flows` plus a UDE on ON_CONN_NEW_DATA whose filter ppeeks every new chunk.

    .venv/bin/python benchmarks/cases/ude_ppeek.py TRACE [--rcvbuf BYTES] [--checksums MODE]

The filter reads the first 4 bytes of each new in-order chunk with ``flow.ppeek`` and is true
for an HTTP request or response head; a counting callback hangs below the UDE. Default
configuration of the Python API (buffering on, 1 MiB per side: ppeek needs it). Prints the
counts on stderr.
"""

from __future__ import annotations

import sys
from typing import Any

from _common import case_args, run_flows

import mostool as mos

HEADS = (b"GET ", b"HTTP", b"POST", b"HEAD")


def main() -> int:
    trace, config = case_args(__doc__ or "")
    counts = [0, 0]

    def message_head(flow: Any, side: Any, event: Any) -> bool:
        counts[0] += 1
        return flow.ppeek(side, event.base.offset, 4) in HEADS

    def on_head(flow: Any, side: Any, event: Any) -> None:
        counts[1] += 1

    http_head = mos.define_event(mos.ON_CONN_NEW_DATA, message_head, name="http_head")

    def setup(sock: mos.MonitorSocket) -> None:
        sock.on(http_head, callback=on_head)

    mon = run_flows(trace, config, setup)
    st = mon.stats()
    print(f"check: filter_calls={counts[0]} heads={counts[1]} flows={st['flows']} "
          f"callback_errors={st['callback_errors']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
