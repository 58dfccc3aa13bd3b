"""Case 2: `mostool flows` plus a counting callback on ON_PKT_IN and one on ON_TCP_STATE_CHANGE.

    .venv/bin/python benchmarks/cases/callbacks.py TRACE [--rcvbuf BYTES] [--checksums MODE]

Default configuration of the Python API (MonitorConfig(): buffering on, 1 MiB per side); both
callbacks at their default hook (HK_RCV). Prints the counts on stderr.
"""

from __future__ import annotations

import sys
from typing import Any

from _common import case_args, run_flows

import mostool as mos


def main() -> int:
    trace, config = case_args(__doc__ or "")
    counts = [0, 0]

    def on_packet(flow: Any, side: Any, event: Any) -> None:
        counts[0] += 1

    def on_state(flow: Any, side: Any, event: Any) -> None:
        counts[1] += 1

    def setup(sock: mos.MonitorSocket) -> None:
        sock.on(mos.ON_PKT_IN, callback=on_packet)
        sock.on(mos.ON_TCP_STATE_CHANGE, callback=on_state)

    mon = run_flows(trace, config, setup)
    st = mon.stats()
    print(f"check: pkt_in={counts[0]} state_change={counts[1]} flows={st['flows']} "
          f"callback_errors={st['callback_errors']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
