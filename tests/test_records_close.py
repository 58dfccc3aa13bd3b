"""The flow's end read in place (records.py condition 8: FINs without payload and the ACK that
closes a flow, ``tcp.quiet_step``, ``Engine.closed``) gives what the frame-by-frame pipeline
gives: the same records, counters, flow-end hooks, timers and stops, in both record loops."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from builders import CLI, SVR, Frame, Scenario, write_pcap
from record_loops import monitor

from mostool import HK_RCV, ON_PKT_IN, ON_TCP_STATE_CHANGE, MonitorConfig
from mostool.replay import ReplaySource
from mostool.stack.engine import Engine


def _closings() -> list[Scenario]:
    """One flow per way a TCP connection closes (or fails to close cleanly)."""
    flows: list[Scenario] = []

    def flow() -> Scenario:
        s = Scenario(client=f"10.0.0.1:{40000 + len(flows)}", server="10.0.0.2:80",
                     t0=1_700_000_000.0 + 0.0003 * len(flows))
        flows.append(s)
        s.handshake()
        s.send(CLI, b"GET / HTTP/1.1\r\n\r\n")
        s.ack(SVR)
        s.send(SVR, b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 300)
        s.ack(CLI)
        return s

    flow().close(CLI)                           # FIN, ACK, FIN, ACK
    flow().close(SVR)
    s = flow()                                  # FIN, FIN/ACK of it, last ACK
    s.fin(CLI)
    s.fin(SVR)
    s.ack(CLI)
    s = flow()                                  # simultaneous close: FINs cross
    cli_seq, svr_seq = s.next_seq(CLI), s.next_seq(SVR)
    s.raw(CLI, flags="FA", seq=cli_seq, ack=svr_seq)
    s.raw(SVR, flags="FA", seq=svr_seq, ack=cli_seq)
    s.raw(CLI, flags="A", seq=cli_seq + 1, ack=svr_seq + 1)
    s.raw(SVR, flags="A", seq=svr_seq + 1, ack=cli_seq + 1)
    s = flow()                                  # a FIN retransmitted, then the close
    s.fin(CLI)
    s.fin(CLI)
    s.ack(SVR)
    s.fin(SVR)
    s.ack(CLI)
    s.ack(CLI)                                  # and the last ACK again (lingering)
    s = flow()                                  # FINs with data
    s.fin(CLI, b"bye")
    s.fin(SVR, b"ok")
    s.ack(CLI)
    s = flow()                                  # a FIN after a hole (not in order)
    s.send(CLI, b"a" * 50)
    lost = s.frames.pop()
    s.send(CLI, b"b" * 50)
    s.fin(CLI)
    s.ack(SVR, ack_offset=len(b"GET / HTTP/1.1\r\n\r\n"))
    s.frames.append(lost)
    s.ack(SVR)
    s.fin(SVR)
    s.ack(CLI)
    s = flow()                                  # a FIN with a bad checksum, then good
    seq, ack = s.next_seq(CLI), s.next_seq(SVR)
    s.raw(CLI, flags="FA", seq=seq, ack=ack, bad_checksum=True)
    s.fin(CLI)
    s.ack(SVR)
    s.fin(SVR)
    s.ack(CLI)
    s = flow()                                  # a FIN acknowledging less than was sent
    s.send(SVR, b"y" * 100)
    s.raw(CLI, flags="FA", seq=s.next_seq(CLI), ack=s.seq(SVR, 10))
    s.ack(SVR)
    s.ack(CLI)
    s.fin(SVR)
    s.ack(CLI)
    s = flow()                                  # a FIN, then an RST
    s.fin(CLI)
    s.ack(SVR)
    s.rst(SVR)
    s = flow()                                  # half closed, data goes on, then the end
    s.fin(CLI)
    s.ack(SVR)
    s.send(SVR, b"more" * 20)
    s.ack(CLI)
    s.fin(SVR)
    s.ack(CLI)
    s = Scenario(client="10.0.0.3:41000", server="10.0.0.2:80", t0=1_700_000_000.01)
    flows.append(s)                             # a FIN in the handshake (third ACK missed)
    s.syn()
    s.synack()
    s.fin(CLI)
    s.ack(SVR)
    s.fin(SVR)
    s.ack(CLI)
    return flows


def _write(path: Path) -> Path:
    frames: list[Frame] = sorted((f for s in _closings() for f in s.frames),
                                 key=lambda f: f[0])
    write_pcap(path, frames)
    return path


CONFIGS = [MonitorConfig(), MonitorConfig(time_wait=0.0005), MonitorConfig(checksums="on"),
           MonitorConfig(mos_compat=True), MonitorConfig(rcvbuf=0, hash_streams=True)]


def _run(path: Path, config: MonitorConfig, block_size: int | None,
         stop_after: int | None = None, events: bool = False, event_timer: bool = True
         ) -> list[Any]:
    """Flow records as the flow-end hook sees them, with the packet number and clock there;
    the hook sets a timer (it fires in the trace) and may stop the run. With ``events``,
    callbacks on ON_PKT_IN and ON_TCP_STATE_CHANGE at HK_RCV record what they see (the last
    packet, the clock, the states), and the one on the fourth state change sets a timer
    (unless not ``event_timer``)."""
    mon = monitor(config, block_size)
    sock = mon.socket()
    seen: list[Any] = []
    if events:
        changes = 0

        def look(flow: Any, side: Any, event: Any) -> None:
            nonlocal changes
            pkt = flow.last_packet()
            seen.append((repr(event), flow.id, int(side), mon.engine.packet_number, mon.now,
                         pkt.number, pkt.seq, pkt.ack, pkt.flags, repr(flow.state(side))))
            if event.TYPE is ON_TCP_STATE_CHANGE:
                changes += 1
                if changes == 4 and event_timer:
                    mon.settimer(0.0001, lambda timer_id: seen.append(
                        ("timer", timer_id, mon.engine.packet_number, mon.now)))

        sock.on(ON_PKT_IN, HK_RCV, look)
        sock.on(ON_TCP_STATE_CHANGE, HK_RCV, look)

    def ended(flow: Any) -> None:
        seen.append((flow.record_json(), mon.engine.packet_number, mon.now))
        mon.settimer(0.0002, lambda timer_id: seen.append(
            ("timer", timer_id, mon.engine.packet_number, mon.now)))
        if stop_after is not None and len(seen) >= stop_after:
            mon.stop("test")

    mon.on_flow_end(ended)
    stats = mon.run(ReplaySource(path))
    stats.pop("source", None)
    stats.pop("warnings", None)
    return seen + [sorted(stats.items())]


@pytest.mark.parametrize("config", CONFIGS, ids=["default", "time_wait", "checksums_on",
                                                 "mos_compat", "hash"])
def test_closing_flows_read_in_place(config: MonitorConfig, tmp_path: Path,
                                     frame_by_frame: Callable[[], None]) -> None:
    path = _write(tmp_path / "closings.pcap")
    runs = [(block_size, stop) for block_size in (None, 64, 1 << 16) for stop in (None, 3)]
    fast = [_run(path, config, block_size, stop) for block_size, stop in runs]
    frame_by_frame()
    slow = [_run(path, config, None, stop) for _, stop in runs]
    assert fast == slow
    assert len([x for x in slow[0] if isinstance(x, tuple) and x[0] != "timer"]) == 12


@pytest.mark.parametrize("config", CONFIGS[:2] + CONFIGS[3:4],
                         ids=["default", "time_wait", "mos_compat"])
def test_closing_flows_with_events_at_hk_rcv(config: MonitorConfig, tmp_path: Path,
                                            frame_by_frame: Callable[[], None]) -> None:
    """The same closes with callbacks on ON_PKT_IN and ON_TCP_STATE_CHANGE at HK_RCV: the
    packets of condition 8 raise them in place as the general path does."""
    path = _write(tmp_path / "closings.pcap")
    runs = [(block_size, stop) for block_size in (None, 64) for stop in (None, 3)]
    fast = [_run(path, config, block_size, stop, events=True) for block_size, stop in runs]
    frame_by_frame()
    slow = [_run(path, config, None, stop, events=True) for _, stop in runs]
    assert fast == slow
    assert any(isinstance(x, tuple) and x[0].startswith("TcpStateChange") for x in slow[0])


@pytest.mark.pure_engine      # counts Engine.process calls by patching it
@pytest.mark.parametrize("block_size", [None, 64])
def test_fins_and_last_acks_skip_the_general_path(tmp_path: Path,
                                                  block_size: int | None) -> None:
    """Of a whole connection (handshake, data, FIN, ACK, FIN, ACK) only the SYN reaches
    process(): the SYN/ACK (9.) and the close (8.) are taken in place."""
    s = Scenario()
    s.handshake()
    s.send(CLI, b"hello")
    s.ack(SVR)
    s.close(CLI)
    path = tmp_path / "close.pcap"
    s.write_pcap(path)
    calls = 0
    real = Engine.process

    def counting(self: Engine, *args: Any) -> None:
        nonlocal calls
        calls += 1
        real(self, *args)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Engine, "process", counting)
        seen = _run(path, MonitorConfig(), block_size)
        assert calls == 1
        assert '"end_reason": "fin"' in seen[0][0]
        calls = 0                   # also when callbacks want ON_PKT_IN and state changes
        seen = _run(path, MonitorConfig(), block_size, events=True, event_timer=False)
        assert calls == 1
        changes = [x for x in seen if isinstance(x, tuple) and x[0].startswith("TcpState")]
        assert len(changes) == 7, changes
