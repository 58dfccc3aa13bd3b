"""Half-streams made on demand (mostool/stack/stream_spec.py): a side that never receives
anything has no HalfStream, and every reader answers for it as for an empty stream."""

from __future__ import annotations

import hashlib
import json

from builders import CLI, SVR, Scenario

import mostool as mos
from mostool.stack.connection import Connection
from mostool.stack.stream_spec import StreamSpec


def _only_flow(mon: mos.Monitor) -> Connection:
    conns = {id(c): c for c in mon.engine.table.values()}
    assert len(conns) == 1
    return next(iter(conns.values()))


def test_an_idle_flow_has_no_half_stream_and_reads_as_empty() -> None:
    sc = Scenario()
    sc.handshake()
    mon = mos.Monitor(mos.MonitorConfig(hash_streams=True, rcvbuf=8192))
    mon.socket(mos.MONITOR_STREAM)
    for frame in sc.frames:
        mon.feed(*frame)
    conn = _only_flow(mon)
    assert conn.made_streams() == [] and conn.stream(0).shared and conn.stream(1).shared
    # the start sequences are the connection's: each side's ISN + 1, as the peer sent it
    assert conn.base == ((sc.isn(SVR) + 1) & 0xFFFFFFFF, (sc.isn(CLI) + 1) & 0xFFFFFFFF)
    flow = conn.handles[0]
    assert flow.peek(mos.SVR) == b"" and flow.ppeek(mos.CLI, 0, 10) == b""
    assert flow.frag_info(mos.SVR) == []
    info = flow.buf_info(mos.SVR)
    assert (info.head, info.next_byte_expected, info.last_byte_received) == (0, 0, 0)
    assert flow.getsockopt(mos.SOCKOPT_RCVBUF_CLI) == 8192
    assert flow.to_server.next_offset == 0 and flow.to_client.bytes_seen == 0
    rec = conn.record()
    empty = hashlib.sha256().hexdigest()
    assert rec["c2s"]["sha256"] == rec["s2c"]["sha256"] == empty
    assert rec["c2s"]["bytes"] == rec["s2c"]["gaps"] == 0
    assert json.loads(conn.record_json()) == rec
    assert conn.made_streams() == []            # reading made none


def test_only_a_side_that_receives_gets_a_stream() -> None:
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"hello")                      # received by the server's stack (side SVR)
    mon = mos.Monitor(mos.MonitorConfig(hash_streams=True))
    mon.socket(mos.MONITOR_STREAM)
    for frame in sc.frames:
        mon.feed(*frame)
    conn = _only_flow(mon)
    assert conn.made_streams() == [conn.stream(1)]
    assert conn.handles[0].ppeek(mos.SVR, 0, 5) == b"hello"
    assert conn.record()["c2s"]["sha256"] == hashlib.sha256(b"hello").hexdigest()
    # a per-flow socket option writes: it gets the side its own stream
    flow = conn.handles[0]
    flow.setsockopt(mos.SOCKOPT_RCVBUF_CLI, 100)
    assert len(conn.made_streams()) == 2
    assert flow.getsockopt(mos.SOCKOPT_RCVBUF_CLI) == 100


def test_a_write_to_a_shared_empty_stream_is_reported() -> None:
    spec = StreamSpec(4096, 4096, False, False, False, 16, 65536, False)   # (not shared)
    assert spec.written() is None
    spec.empty1.receive(0, b"x", 1)
    assert spec.written() is not None
