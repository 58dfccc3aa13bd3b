"""The handshake's SYN/ACK read in place (records.py condition 9, ``tcp.quiet_synack``) gives
what the frame-by-frame pipeline gives, in both record loops: the same ISNs, window scales,
start sequences, states, events at HK_RCV, records and counters; and every SYN/ACK that is
not the plain answer to one SYN is left to the general path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from builders import CLI, SVR, Frame, Scenario, syn_options, write_pcap
from record_loops import monitor

from mostool import (
    HK_RCV,
    HK_SND,
    ON_PKT_IN,
    ON_TCP_STATE_CHANGE,
    MonitorConfig,
)
from mostool.replay import ReplaySource
from mostool.stack.engine import Engine


def _exchange(s: Scenario) -> None:
    s.ack(CLI)
    s.send(CLI, b"GET / HTTP/1.1\r\n\r\n")
    s.ack(SVR)
    s.send(SVR, b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 700)
    s.ack(CLI)
    s.close(CLI)


def _handshakes() -> list[tuple[str, Scenario]]:
    """One flow per kind of SYN/ACK, named; ``plain`` is the only one condition 9 takes."""
    flows: list[tuple[str, Scenario]] = []

    def flow(name: str, **kw: Any) -> Scenario:
        s = Scenario(client=f"10.0.0.1:{40000 + len(flows)}", server="10.0.0.2:80",
                     t0=1_700_000_000.0 + 0.0003 * len(flows), **kw)
        flows.append((name, s))
        return s

    s = flow("plain")
    s.syn()
    s.synack()
    _exchange(s)
    s = flow("plain, no timestamps", timestamps=False)
    s.syn()
    s.synack()
    _exchange(s)
    s = flow("retransmitted SYN/ACK")
    s.syn()
    s.synack()
    s.synack()
    _exchange(s)
    s = flow("second SYN with another ISN")
    s.syn()
    s.syn(isn=777_777)
    s.synack()
    _exchange(s)
    s = flow("SYN/ACK with a new ISN")
    s.syn()
    s.synack()
    s.synack(isn=888_888)
    _exchange(s)
    s = flow("timestamp echo its SYN never sent")
    s.syn()
    s.raw(SVR, flags="SA", seq=s.isn(SVR), ack=s.next_seq(CLI),
          options=syn_options(tsval=5, tsecr=123_456_789))
    s.synack()
    _exchange(s)
    s = flow("plain, window scale over 14")
    s.syn()
    s.raw(SVR, flags="SA", seq=s.isn(SVR), ack=s.next_seq(CLI),
          options=syn_options(wscale=15, tsval=None))
    _exchange(s)
    s = flow("SYN/ACK acknowledging more than the SYN")
    s.syn()
    s.raw(SVR, flags="SA", seq=s.isn(SVR), ack=(s.next_seq(CLI) + 50) & 0xFFFFFFFF,
          options=syn_options(tsval=None))
    _exchange(s)
    s = flow("SYN/ACK with data")
    s.syn()
    s.raw(SVR, flags="SA", seq=s.isn(SVR), ack=s.next_seq(CLI), data=b"early",
          options=syn_options(tsval=None))
    s.ack(CLI)
    s = flow("SYN/ACK with a bad checksum, then good")
    s.syn()
    s.raw(SVR, flags="SA", seq=s.isn(SVR), ack=s.next_seq(CLI),
          options=syn_options(tsval=None), bad_checksum=True)
    s.synack()
    _exchange(s)
    s = flow("simultaneous open")
    s.syn()
    s.raw(SVR, flags="S", seq=s.isn(SVR), options=syn_options(tsval=None))
    s.synack()
    _exchange(s)
    s = flow("SYN/ACK without its SYN")
    s.synack()
    _exchange(s)
    s = flow("SYN/ACK with FIN")
    s.syn()
    s.raw(SVR, flags="SAF", seq=s.isn(SVR), ack=s.next_seq(CLI),
          options=syn_options(tsval=None))
    s.ack(CLI)
    s = flow("a SYN/ACK from the client")
    s.syn()
    s.raw(CLI, flags="SA", seq=s.isn(CLI), ack=s.isn(SVR), options=syn_options(tsval=None))
    s.synack()
    _exchange(s)
    return flows


def _write(path: Path) -> Path:
    frames: list[Frame] = sorted((f for _, s in _handshakes() for f in s.frames),
                                 key=lambda f: f[0])
    write_pcap(path, frames)
    return path


def _inside(flow: Any) -> tuple[Any, ...]:
    """What a SYN or SYN/ACK sets, read off the connection (of a Flow or a FlowSummary)."""
    c = flow.conn if hasattr(flow, "conn") else flow._conn
    return (c.isn, c.wscale, c.base, c.syn_ts_first, c.syn_ts_latest, c.alt_isn,
            c.control_rexmit, c.state, c.bad_checksums, c.packets)


def _run(path: Path, config: MonitorConfig, block_size: int | None, events: bool = False,
         hk_snd: bool = False) -> list[Any]:
    mon = monitor(config, block_size)
    sock = mon.socket()
    seen: list[Any] = []

    def look(flow: Any, side: Any, event: Any) -> None:
        pkt = flow.last_packet()
        seen.append((repr(event), flow.id, int(side), mon.engine.packet_number, mon.now,
                     pkt.number, pkt.seq, pkt.ack, pkt.flags, repr(flow.state(side)),
                     repr(flow.buf_info(side)), _inside(flow)))

    if events:
        sock.on(ON_PKT_IN, HK_RCV, look)
        sock.on(ON_TCP_STATE_CHANGE, HK_RCV, look)
    if hk_snd:
        sock.on(ON_TCP_STATE_CHANGE, HK_SND, look)
    mon.on_flow_end(lambda flow: seen.append((flow.record_json(), _inside(flow))))
    stats = mon.run(ReplaySource(path))
    assert stats["callback_errors"] == 0, mon.failures[0].error
    stats.pop("source", None)
    stats.pop("warnings", None)
    return seen + [sorted(stats.items())]


CONFIGS = [MonitorConfig(), MonitorConfig(checksums="on"), MonitorConfig(mos_compat=True),
           MonitorConfig(rcvbuf=0, hash_streams=True)]


@pytest.mark.parametrize("config", CONFIGS, ids=["default", "checksums_on", "mos_compat",
                                                 "hash"])
@pytest.mark.parametrize("events", [False, True], ids=["plain", "hk_rcv_events"])
def test_handshakes_read_in_place(config: MonitorConfig, events: bool, tmp_path: Path,
                                  frame_by_frame: Callable[[], None]) -> None:
    path = _write(tmp_path / "handshakes.pcap")
    fast = [_run(path, config, block_size, events) for block_size in (None, 64, 1 << 16)]
    fast.append(_run(path, config, None, events, hk_snd=True))
    frame_by_frame()
    slow = _run(path, config, None, events)
    assert fast[:3] == [slow] * 3
    assert fast[3] == _run(path, config, None, events, hk_snd=True)
    # every flow ends, but the one whose SYN is missing (not tracked without --midstream)
    ended = [x for x in slow if isinstance(x, tuple) and len(x) == 2]
    assert len(ended) == len(_handshakes()) - 1


@pytest.mark.pure_engine      # counts Engine.process calls by patching it
@pytest.mark.parametrize("block_size", [None, 64])
def test_only_the_plain_synacks_skip_the_general_path(tmp_path: Path,
                                                      block_size: int | None) -> None:
    """Each handshake alone: the plain ones reach process() with their SYN only; every other
    kind of SYN/ACK is the general path's."""
    real = Engine.process
    synacks: list[int] = []

    def counting(self: Engine, ts: float, linktype: int, frame: bytes, *rest: Any) -> None:
        if frame[47] & 0x12 == 0x12:
            synacks.append(1)
        real(self, ts, linktype, frame, *rest)

    for name, s in _handshakes():
        path = tmp_path / "one.pcap"
        s.write_pcap(path)
        synacks.clear()
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(Engine, "process", counting)
            _run(path, MonitorConfig(), block_size)
            if name.startswith("plain"):
                assert not synacks, name
            else:
                assert synacks, name
            synacks.clear()         # a handle on HK_SND keeps it off the path too
            _run(path, MonitorConfig(), block_size, hk_snd=True)
            assert synacks, name
