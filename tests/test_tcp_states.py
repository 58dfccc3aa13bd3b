"""The emulated TCP state machine: the table itself, then both stacks driven frame by frame.

The table tests go over every (state, input) pair. The scenario tests feed builder frames one at
a time and assert the joint state of both stacks after every frame, and what each hook saw:
HK_SND runs after the sender's update only, HK_RCV after the receiver's too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from builders import CLI, SVR, Scenario
from hypothesis import given
from hypothesis import strategies as st
from pair import Pair, States
from pair import states as _states

import mostool as mos
from mostool.stack.tcp import TERMINAL, TRANSITIONS, TcpInput, TcpState, sender_input, step

S = TcpState
I = TcpInput
ALL_STATES = list(TcpState)
ALL_INPUTS = list(TcpInput)
OPEN_STATES = [s for s in TcpState if s != S.CLOSED]

# --------------------------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------------------------


@given(st.sampled_from(ALL_STATES), st.sampled_from(ALL_INPUTS))
def test_step_is_total(state: TcpState, inp: TcpInput) -> None:
    nxt = step(state, inp)
    assert isinstance(nxt, TcpState)
    assert nxt == TRANSITIONS.get((state, inp), state)


@given(st.lists(st.sampled_from(ALL_INPUTS), max_size=40))
def test_any_input_sequence_stays_in_the_state_space(inputs: list[TcpInput]) -> None:
    state = S.LISTEN
    for inp in inputs:
        new = step(state, inp)
        assert isinstance(new, TcpState)
        assert new != S.LISTEN or state == S.LISTEN, "nothing goes back to LISTEN"
        state = new


@pytest.mark.parametrize("state", ALL_STATES, ids=lambda s: s.name)
@pytest.mark.parametrize("inp", ALL_INPUTS, ids=lambda i: i.name)
def test_every_pair_is_defined_or_a_no_op(state: TcpState, inp: TcpInput) -> None:
    if (state, inp) in TRANSITIONS:
        assert step(state, inp) == TRANSITIONS[(state, inp)]
    else:
        assert step(state, inp) == state


@pytest.mark.parametrize("state", OPEN_STATES, ids=lambda s: s.name)
@pytest.mark.parametrize("inp", [I.SND_RST, I.RCV_RST], ids=lambda i: i.name)
def test_rst_from_every_open_state_closes(state: TcpState, inp: TcpInput) -> None:
    assert step(state, inp) == S.CLOSED


@pytest.mark.parametrize("inp", [I.SND_RST, I.RCV_RST], ids=lambda i: i.name)
def test_rst_on_closed_is_a_no_op(inp: TcpInput) -> None:
    assert step(S.CLOSED, inp) == S.CLOSED


KNOWN = [
    # RFC 793 opening
    (S.LISTEN, I.SND_SYN, S.SYN_SENT),
    (S.LISTEN, I.RCV_SYN, S.SYN_RCVD),
    (S.SYN_SENT, I.RCV_SYNACK, S.ESTABLISHED),
    (S.SYN_RCVD, I.RCV_ACK_SYN, S.ESTABLISHED),
    # simultaneous open
    (S.SYN_SENT, I.RCV_SYN, S.SYN_RCVD),
    (S.SYN_RCVD, I.RCV_SYNACK, S.ESTABLISHED),
    # closing
    (S.ESTABLISHED, I.SND_FIN, S.FIN_WAIT_1),
    (S.ESTABLISHED, I.RCV_FIN, S.CLOSE_WAIT),
    (S.FIN_WAIT_1, I.RCV_ACK_FIN, S.FIN_WAIT_2),
    (S.FIN_WAIT_1, I.RCV_FIN, S.CLOSING),
    (S.FIN_WAIT_2, I.RCV_FIN, S.TIME_WAIT),
    (S.CLOSING, I.RCV_ACK_FIN, S.TIME_WAIT),
    (S.CLOSE_WAIT, I.SND_FIN, S.LAST_ACK),
    (S.LAST_ACK, I.RCV_ACK_FIN, S.CLOSED),
    # what a lossy capture implies
    (S.SYN_SENT, I.SND_ACK, S.ESTABLISHED),      # its SYN/ACK was not captured
    (S.SYN_SENT, I.RCV_ACK_SYN, S.ESTABLISHED),  # an ACK standing in for the SYN/ACK
    (S.SYN_RCVD, I.SND_FIN, S.FIN_WAIT_1),       # the handshake's ACK was not captured
    (S.SYN_RCVD, I.RCV_FIN, S.CLOSE_WAIT),
    (S.LISTEN, I.SND_SYNACK, S.SYN_RCVD),        # picked up at the SYN/ACK
]


@pytest.mark.parametrize(("state", "inp", "new"), KNOWN,
                         ids=[f"{s.name}-{i.name}" for s, i, _ in KNOWN])
def test_known_transitions(state: TcpState, inp: TcpInput, new: TcpState) -> None:
    assert step(state, inp) == new


@pytest.mark.parametrize("inp", [i for i in ALL_INPUTS if i not in (I.SND_RST, I.RCV_RST)],
                         ids=lambda i: i.name)
def test_time_wait_only_leaves_on_rst(inp: TcpInput) -> None:
    assert step(S.TIME_WAIT, inp) == S.TIME_WAIT


def test_retransmissions_do_not_move_the_state() -> None:
    assert step(S.SYN_RCVD, I.RCV_SYN) == S.SYN_RCVD
    assert step(S.ESTABLISHED, I.RCV_SYNACK) == S.ESTABLISHED
    assert step(S.CLOSE_WAIT, I.RCV_FIN) == S.CLOSE_WAIT
    assert step(S.FIN_WAIT_1, I.SND_FIN) == S.FIN_WAIT_1
    assert step(S.ESTABLISHED, I.SND_ACK) == S.ESTABLISHED


def test_terminal_states() -> None:
    assert frozenset({S.CLOSED, S.TIME_WAIT}) == TERMINAL


@pytest.mark.parametrize(("flags", "inp"), [
    (0x02, I.SND_SYN), (0x12, I.SND_SYNACK), (0x11, I.SND_FIN), (0x19, I.SND_FIN),
    (0x04, I.SND_RST), (0x14, I.SND_RST), (0x16, I.SND_RST), (0x10, I.SND_ACK),
    (0x18, I.SND_ACK), (0x00, I.SND_ACK),
])
def test_sender_input(flags: int, inp: TcpInput) -> None:
    assert sender_input(flags) == inp


# --------------------------------------------------------------------------------------------
# both stacks, frame by frame
# --------------------------------------------------------------------------------------------



EST = ("ESTABLISHED", "ESTABLISHED")


def _run(build: Callable[[Scenario], Any], config: mos.MonitorConfig | None = None
         ) -> tuple[Pair, list[States | None]]:
    sc = Scenario()
    build(sc)
    d = Pair(config)
    after = d.feed(sc.frames)
    d.finish()
    return d, after


def test_normal_handshake() -> None:
    d, after = _run(lambda sc: sc.handshake())
    assert after == [("SYN_SENT", "SYN_RCVD"), ("ESTABLISHED", "SYN_RCVD"), EST]
    assert d.hook_states("HK_SND") == [("SYN_SENT", "LISTEN"), ("SYN_SENT", "SYN_RCVD"),
                                       ("ESTABLISHED", "SYN_RCVD")]
    assert d.hook_states("HK_RCV") == after
    assert [(e[1], e[2], e[4]) for e in d.of("ON_TCP_STATE_CHANGE")] == [
        ("HK_SND", "CLI", {"old": "LISTEN", "new": "SYN_SENT"}),
        ("HK_RCV", "SVR", {"old": "LISTEN", "new": "SYN_RCVD"}),
        ("HK_RCV", "CLI", {"old": "SYN_SENT", "new": "ESTABLISHED"}),
        ("HK_RCV", "SVR", {"old": "SYN_RCVD", "new": "ESTABLISHED"}),
    ]
    assert [(e[0], e[1], e[2]) for e in d.of("ON_CONN_START")] == [(1, "HK_SND", "CLI"),
                                                                  (1, "HK_RCV", "SVR")]
    assert d.records[0]["end_reason"] == "eof"


def test_active_close_by_client() -> None:
    d, after = _run(lambda sc: (sc.handshake(), sc.send(CLI, b"req"), sc.send(SVR, b"resp"),
                                sc.close(CLI)))
    assert after[3:] == [
        EST, EST,                                   # data both ways
        ("FIN_WAIT_1", "CLOSE_WAIT"),               # client FIN
        ("FIN_WAIT_2", "CLOSE_WAIT"),               # server ACK
        ("TIME_WAIT", "LAST_ACK"),                  # server FIN
        ("TIME_WAIT", "CLOSED"),                    # client ACK
    ]
    assert d.hook_states("HK_SND")[5:] == [
        ("FIN_WAIT_1", "ESTABLISHED"), ("FIN_WAIT_1", "CLOSE_WAIT"),
        ("FIN_WAIT_2", "LAST_ACK"), ("TIME_WAIT", "LAST_ACK"),
    ]
    assert d.hook_states("HK_RCV") == after
    rec = d.records[0]
    assert (rec["end_reason"], rec["client_state"], rec["server_state"]) == (
        "fin", "TIME_WAIT", "CLOSED")
    # the last packet (client's ACK) ended it: HK_SND side = sender, HK_RCV side = receiver
    assert [(e[0], e[1], e[2], e[4]) for e in d.of("ON_CONN_END")] == [
        (9, "HK_SND", "CLI", {"reason": "fin"}), (9, "HK_RCV", "SVR", {"reason": "fin"})]


def test_active_close_by_server() -> None:
    d, after = _run(lambda sc: (sc.handshake(), sc.send(CLI, b"req"), sc.close(SVR)))
    assert after[4:] == [
        ("CLOSE_WAIT", "FIN_WAIT_1"),
        ("CLOSE_WAIT", "FIN_WAIT_2"),
        ("LAST_ACK", "TIME_WAIT"),
        ("CLOSED", "TIME_WAIT"),
    ]
    assert d.hook_states("HK_SND")[4:] == [
        ("ESTABLISHED", "FIN_WAIT_1"), ("CLOSE_WAIT", "FIN_WAIT_1"),
        ("LAST_ACK", "FIN_WAIT_2"), ("LAST_ACK", "TIME_WAIT"),
    ]
    rec = d.records[0]
    assert (rec["end_reason"], rec["client_state"], rec["server_state"]) == (
        "fin", "CLOSED", "TIME_WAIT")
    assert [(e[1], e[2]) for e in d.of("ON_CONN_END")] == [("HK_SND", "SVR"),
                                                          ("HK_RCV", "CLI")]


def test_lost_synack_an_ack_stands_in() -> None:
    def build(sc: Scenario) -> None:
        sc.syn()
        sc.drop(sc.synack())
        sc.ack(CLI)
        sc.send(CLI, b"hello")
        sc.send(SVR, b"world")
        sc.close()

    d, after = _run(build)
    assert after[:2] == [("SYN_SENT", "SYN_RCVD"), EST]
    # the client's own ACK moves it (HK_SND), the server's stack follows at HK_RCV
    assert d.hook_states("HK_SND")[1] == ("ESTABLISHED", "SYN_RCVD")
    assert after[-1] == ("TIME_WAIT", "CLOSED")
    rec = d.records[0]
    assert rec["end_reason"] == "fin"
    assert (rec["c2s"]["bytes"], rec["s2c"]["bytes"]) == (5, 5)
    assert rec["c2s"]["gaps"] == rec["s2c"]["gaps"] == 0


def test_lost_handshake_ack_server_sends_data_then_fin() -> None:
    def build(sc: Scenario) -> None:
        sc.syn()
        sc.synack()
        sc.drop(sc.ack(CLI))
        sc.send(SVR, b"banner\r\n")                 # server talks first, still SYN_RCVD
        sc.close(SVR)

    d, after = _run(build)
    assert after == [
        ("SYN_SENT", "SYN_RCVD"),
        ("ESTABLISHED", "SYN_RCVD"),
        ("ESTABLISHED", "SYN_RCVD"),                # data from SYN_RCVD: no ACK of its SYN yet
        ("CLOSE_WAIT", "FIN_WAIT_1"),               # FIN from SYN_RCVD
        ("CLOSE_WAIT", "FIN_WAIT_2"),
        ("LAST_ACK", "TIME_WAIT"),
        ("CLOSED", "TIME_WAIT"),
    ]
    assert d.records[0]["end_reason"] == "fin"
    assert d.records[0]["s2c"]["bytes"] == 8


def test_lost_handshake_ack_client_data_completes_it() -> None:
    d, after = _run(lambda sc: (sc.syn(), sc.synack(), sc.drop(sc.ack(CLI)),
                                sc.send(CLI, b"GET /"), sc.close(CLI)))
    assert after[2] == EST
    assert after[-1] == ("TIME_WAIT", "CLOSED")


def test_lost_handshake_ack_client_fin_two_inputs_in_one_segment() -> None:
    d, after = _run(lambda sc: (sc.syn(), sc.synack(), sc.drop(sc.ack(CLI)), sc.close(CLI)))
    assert after[2] == ("FIN_WAIT_1", "CLOSE_WAIT")
    # one segment, two receiver inputs: ACK of its SYN, then the FIN
    changes = [(e[0], e[1], e[4]["old"], e[4]["new"]) for e in d.of("ON_TCP_STATE_CHANGE")]
    assert (3, "HK_RCV", "SYN_RCVD", "ESTABLISHED") in changes
    assert (3, "HK_RCV", "ESTABLISHED", "CLOSE_WAIT") in changes
    assert changes.index((3, "HK_RCV", "SYN_RCVD", "ESTABLISHED")) < changes.index(
        (3, "HK_RCV", "ESTABLISHED", "CLOSE_WAIT"))
    assert d.records[0]["end_reason"] == "fin"


def test_simultaneous_close() -> None:
    def build(sc: Scenario) -> None:
        sc.handshake()
        c, s = sc.next_seq(CLI), sc.next_seq(SVR)
        sc.raw(CLI, flags="FA", seq=c, ack=s)          # the FINs cross: neither acknowledges
        sc.raw(SVR, flags="FA", seq=s, ack=c)          # the other's FIN
        sc.raw(SVR, flags="A", seq=s + 1, ack=c + 1)
        sc.raw(CLI, flags="A", seq=c + 1, ack=s + 1)

    d, after = _run(build)
    assert after[3:] == [
        ("FIN_WAIT_1", "CLOSE_WAIT"),
        ("CLOSING", "LAST_ACK"),     # the client got a FIN that does not ack its own
        ("TIME_WAIT", "LAST_ACK"),
        ("TIME_WAIT", "CLOSED"),
    ]
    rec = d.records[0]
    assert (rec["end_reason"], rec["client_state"], rec["server_state"]) == (
        "fin", "TIME_WAIT", "CLOSED")
    assert d.of("ON_ORPHAN") == []


def test_half_close_with_data_flowing_the_other_way() -> None:
    def build(sc: Scenario) -> None:
        sc.handshake()
        sc.send(CLI, b"upload done")
        sc.fin(CLI)                                  # shutdown(SHUT_WR)
        sc.ack(SVR)
        sc.send(SVR, b"part 1;")
        sc.ack(CLI)
        sc.send(SVR, b"part 2;")
        sc.ack(CLI)
        sc.fin(SVR)
        sc.ack(CLI)

    sc = Scenario()
    build(sc)
    d = Pair()
    new_data: list[tuple[str, int, int, str, bytes]] = []
    sock = d.mon.socket()   # a second listener, reading the bytes as they arrive

    def data(flow: mos.Flow, side: mos.Side, event: Any) -> None:
        new_data.append((side.name, event.offset, event.length, flow.state(side).name,
                         flow.ppeek(side, event.offset, event.length)))
    sock.on(mos.ON_CONN_NEW_DATA, callback=data)

    after = d.feed(sc.frames)
    d.finish()
    assert after[4:] == [
        ("FIN_WAIT_1", "CLOSE_WAIT"), ("FIN_WAIT_2", "CLOSE_WAIT"),
        ("FIN_WAIT_2", "CLOSE_WAIT"), ("FIN_WAIT_2", "CLOSE_WAIT"),
        ("FIN_WAIT_2", "CLOSE_WAIT"), ("FIN_WAIT_2", "CLOSE_WAIT"),
        ("TIME_WAIT", "LAST_ACK"), ("TIME_WAIT", "CLOSED"),
    ]
    # data to a half-closed client is still signalled (mOS: only while ESTABLISHED)
    assert new_data == [
        ("SVR", 0, 11, "ESTABLISHED", b"upload done"),
        ("CLI", 0, 7, "FIN_WAIT_2", b"part 1;"),
        ("CLI", 7, 7, "FIN_WAIT_2", b"part 2;"),
    ]
    rec = d.records[0]
    assert rec["end_reason"] == "fin"
    assert rec["s2c"]["bytes"] == 14


@pytest.mark.parametrize("who", [CLI, SVR], ids=["client", "server"])
def test_rst_from_either_side(who: int) -> None:
    d, after = _run(lambda sc: (sc.handshake(), sc.send(CLI, b"x" * 10), sc.rst(who)))
    assert after[-1] == ("CLOSED", "CLOSED")
    snd_view = d.hook_states("HK_SND")[-1]
    assert snd_view is not None
    assert snd_view[who] == "CLOSED" and snd_view[1 - who] == "ESTABLISHED"
    rec = d.records[0]
    assert (rec["end_reason"], rec["client_state"], rec["server_state"]) == (
        "rst", "CLOSED", "CLOSED")
    sender, receiver = ("CLI", "SVR") if who == CLI else ("SVR", "CLI")
    assert [(e[1], e[2], e[4]) for e in d.of("ON_CONN_END")] == [
        ("HK_SND", sender, {"reason": "rst"}), ("HK_RCV", receiver, {"reason": "rst"})]


def test_refused_connection() -> None:
    d, after = _run(lambda sc: (sc.syn(), sc.rst(SVR)))
    assert after == [("SYN_SENT", "SYN_RCVD"), ("CLOSED", "CLOSED")]
    rec = d.records[0]
    assert (rec["end_reason"], rec["client_state"], rec["server_state"]) == (
        "rst", "CLOSED", "CLOSED")


def test_out_of_window_rst_is_ignored_and_counted() -> None:
    def build(sc: Scenario) -> None:
        sc.handshake()
        sc.send(CLI, b"hello")
        sc.rst(SVR, seq_offset=50_000_000)           # far outside the client's window
        sc.send(SVR, b"still here")
        sc.close()

    d, after = _run(build)
    assert after[4] == EST                              # the RST changed nothing
    assert d.hook_states("HK_SND")[4] == EST
    errors = d.of("ON_ERROR")
    assert [(e[0], e[1], e[2], e[4]["kind"]) for e in errors] == [(5, "NULL", "CLI", "bad_rst")]
    assert d.mon.engine.counters["bad_rst"] == 1
    assert d.flows[0].conn.bad_rst == 1
    assert [e for e in d.of("ON_TCP_STATE_CHANGE") if e[0] == 5] == []
    rec = d.records[0]
    assert rec["end_reason"] == "fin"
    assert rec["s2c"]["bytes"] == 10


def test_out_of_window_rst_is_accepted_in_mos_compat() -> None:
    # mos_compat accepts every RST, as mOS did
    def build(sc: Scenario) -> None:
        sc.handshake()
        sc.rst(SVR, seq_offset=50_000_000)

    d, after = _run(build, mos.MonitorConfig(mos_compat=True))
    assert after[-1] == ("CLOSED", "CLOSED")
    assert d.records[0]["end_reason"] == "rst"


def test_time_wait_linger() -> None:
    sc = Scenario()
    sc.handshake()
    sc.close(CLI)
    fin_again = sc.fin(SVR)                      # a retransmitted FIN while lingering
    d = Pair(mos.MonitorConfig(time_wait=30.0))
    clock_at_end: list[float] = []
    d.mon.socket().on(mos.ON_CONN_END, callback=lambda f, s, e: clock_at_end.append(d.mon.now))
    d.feed(sc.frames[:7])
    assert d.records == []                       # both stacks closed, but the flow lingers
    assert d.mon.active_flows == 1
    d.feed(fin_again)
    assert [(e[0], e[1], e[2]) for e in d.of("ON_REXMIT")] == [(8, "HK_RCV", "CLI")]
    t_closed = sc.frames[6][0]
    d.mon.engine.advance(t_closed + 29.0)        # not yet
    assert d.records == []
    d.mon.engine.advance(t_closed + 31.0)        # the linger ran out
    assert [r["end_reason"] for r in d.records] == ["fin"]
    ends = d.of("ON_CONN_END")
    assert [(e[1], e[2], e[4]) for e in ends] == [("HK_SND", "CLI", {"reason": "fin"}),
                                                 ("HK_RCV", "SVR", {"reason": "fin"})]
    assert clock_at_end == [t_closed + 30.0]     # it ended at its deadline, not at the tick


def test_time_wait_linger_cut_by_the_end_of_the_capture_still_ends_fin() -> None:
    d, _ = _run(lambda sc: (sc.handshake(), sc.close(SVR)), mos.MonitorConfig(time_wait=60))
    assert [r["end_reason"] for r in d.records] == ["fin"]
    assert [e[4]["reason"] for e in d.of("ON_CONN_END")] == ["fin", "fin"]


@pytest.mark.parametrize("time_wait", [0.0, 60.0])
def test_port_reuse_after_close_is_a_new_flow(time_wait: float) -> None:
    first = Scenario()
    first.handshake()
    first.send(CLI, b"one")
    first.close(CLI)
    again = Scenario(t0=first.now + 1.0, client_isn=900_000, server_isn=700_000)
    again.handshake()
    again.send(CLI, b"two")
    again.close(SVR)
    d = Pair(mos.MonitorConfig(time_wait=time_wait))
    after = d.feed(first.frames + again.frames)
    d.finish()
    assert [f.id for f in d.flows] == [1, 2]
    assert after[len(first.frames)] == ("SYN_SENT", "SYN_RCVD")   # the new flow's SYN
    assert after[-1] == ("CLOSED", "TIME_WAIT")
    assert [(r["id"], r["end_reason"]) for r in d.records] == [(1, "fin"), (2, "fin")]
    assert [r["c2s"]["bytes"] for r in d.records] == [3, 3]
    assert d.flows[0].ended and d.flows[1].ended
    assert d.of("ON_ORPHAN") == []


def test_syn_retransmission_is_the_same_flow() -> None:
    d, after = _run(lambda sc: (sc.syn(), sc.syn(), sc.synack(), sc.ack(CLI),
                                sc.send(CLI, b"x"), sc.close()))
    assert len(d.flows) == 1
    assert after[:2] == [("SYN_SENT", "SYN_RCVD"), ("SYN_SENT", "SYN_RCVD")]
    assert [(e[0], e[1], e[2]) for e in d.of("ON_REXMIT")] == [(2, "HK_RCV", "SVR")]
    assert len(d.of("ON_CONN_START")) == 2          # once per hook, not again for the rexmit
    rec = d.records[0]
    assert rec["end_reason"] == "fin"
    assert rec["c2s"]["rexmit"] == 1 and rec["s2c"]["rexmit"] == 0


def test_synack_retransmission() -> None:
    d, _ = _run(lambda sc: (sc.syn(), sc.synack(), sc.synack(), sc.ack(CLI), sc.close()))
    assert [(e[0], e[1], e[2]) for e in d.of("ON_REXMIT")] == [(3, "HK_RCV", "CLI")]
    rec = d.records[0]
    assert rec["s2c"]["rexmit"] == 1 and rec["c2s"]["rexmit"] == 0
    assert rec["end_reason"] == "fin"


def test_fin_retransmission() -> None:
    d, after = _run(lambda sc: (sc.handshake(), sc.fin(CLI), sc.fin(CLI), sc.ack(SVR),
                                sc.fin(SVR), sc.ack(CLI)))
    assert after[4] == ("FIN_WAIT_1", "CLOSE_WAIT")
    assert [(e[0], e[1], e[2]) for e in d.of("ON_REXMIT")] == [(5, "HK_RCV", "SVR")]
    assert d.records[0]["end_reason"] == "fin"


def test_states_are_readable_after_the_end() -> None:
    d, _ = _run(lambda sc: (sc.handshake(), sc.close()))
    flow = d.flows[0]
    assert flow.ended
    assert _states(flow) == ("TIME_WAIT", "CLOSED")
    with pytest.raises(mos.MosError):
        flow.peek(mos.SVR)


def test_stray_ack_during_the_handshake_gives_up_no_hole() -> None:
    """A stale ACK answering a SYN (not acking it) and the client's RST to it must not skip the
    client's stream forward, end the flow, or split the SYN retry into a second flow
    (suricata-verify base64-decode-5885 stream 11)."""
    sc = Scenario(client_isn=255601861, server_isn=9000)
    sc.syn()
    sc.raw(SVR, flags="A", seq=77, ack=1116180385)          # stale: does not ack the SYN
    sc.raw(CLI, flags="R", seq=1116180385)                  # the client's answer to it
    sc.syn()                                                # retry, same ISN
    sc.synack()
    sc.ack(CLI)
    sc.send(CLI, b"GET / HTTP/1.1\r\n\r\n")
    sc.send(SVR, b"HTTP/1.1 200 OK\r\n\r\n")
    sc.close()
    mon = mos.Monitor(mos.MonitorConfig(hash_streams=True))
    mon.socket(mos.MONITOR_STREAM)
    records: list[dict[str, object]] = []
    mon.on_flow_end(lambda conn: records.append(conn.record()))
    mon.run(sc.frames)
    assert len(records) == 1
    (rec,) = records
    assert rec["end_reason"] == "fin"
    c2s = rec["c2s"]
    assert isinstance(c2s, dict) and c2s["bytes"] == 18 and c2s["gap_bytes"] == 0
