"""The emulated TCP endpoint state machine, as a table.

Theory of operation. Each flow carries two emulated stacks, the client's and the server's (mOS's
dual-stack model). A captured segment is an *output* of its sender's stack and an *input* of its
receiver's stack, so one segment becomes one or more symbolic inputs for each:

    sender side   SND_SYN, SND_SYNACK, SND_FIN, SND_RST, SND_ACK (any other segment)
    receiver side RCV_SYN, RCV_SYNACK, RCV_ACK_SYN (acknowledges our SYN), RCV_ACK_FIN
                  (acknowledges our FIN), RCV_FIN, RCV_RST

A receiver may get several inputs from one segment (an ACK of its SYN and a FIN), applied in
that order. ``TRANSITIONS[(state, input)]`` is the next state; a pair not in the table leaves the
state as it is (a retransmission, or an input that does not apply): the tables are total and
never raise. Captures lose packets, so the table also accepts what a lossy capture implies: an
ACK from a client still in SYN_SENT means the SYN/ACK was missed; a FIN from a stack still in
SYN_RCVD means the handshake's last ACK was.
"""

from __future__ import annotations

from enum import IntEnum

from mostool.events.types import TcpState

__all__ = ["TcpInput", "TRANSITIONS", "TcpState", "TERMINAL", "step", "sender_input"]

S = TcpState


class TcpInput(IntEnum):
    SND_SYN = 0
    SND_SYNACK = 1
    SND_FIN = 2
    SND_RST = 3
    SND_ACK = 4
    RCV_SYN = 5
    RCV_SYNACK = 6
    RCV_ACK_SYN = 7
    RCV_ACK_FIN = 8
    RCV_FIN = 9
    RCV_RST = 10


I = TcpInput

_OPEN = (S.SYN_SENT, S.SYN_RCVD, S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSE_WAIT,
         S.CLOSING, S.LAST_ACK, S.TIME_WAIT, S.LISTEN)

TRANSITIONS: dict[tuple[TcpState, TcpInput], TcpState] = {
    # what the endpoint sends
    (S.CLOSED, I.SND_SYN): S.SYN_SENT,
    (S.LISTEN, I.SND_SYN): S.SYN_SENT,
    (S.LISTEN, I.SND_SYNACK): S.SYN_RCVD,         # picked up at the SYN/ACK (SYN missed)
    (S.CLOSED, I.SND_SYNACK): S.SYN_RCVD,
    (S.SYN_SENT, I.SND_SYNACK): S.SYN_RCVD,       # simultaneous open
    (S.SYN_SENT, I.SND_ACK): S.ESTABLISHED,       # it got a SYN/ACK the capture missed
    (S.SYN_SENT, I.SND_FIN): S.FIN_WAIT_1,
    (S.SYN_RCVD, I.SND_FIN): S.FIN_WAIT_1,
    (S.ESTABLISHED, I.SND_FIN): S.FIN_WAIT_1,
    (S.CLOSE_WAIT, I.SND_FIN): S.LAST_ACK,
    # what the endpoint receives
    (S.LISTEN, I.RCV_SYN): S.SYN_RCVD,
    (S.CLOSED, I.RCV_SYN): S.SYN_RCVD,
    (S.SYN_SENT, I.RCV_SYN): S.SYN_RCVD,          # simultaneous open
    (S.SYN_SENT, I.RCV_SYNACK): S.ESTABLISHED,
    (S.SYN_SENT, I.RCV_ACK_SYN): S.ESTABLISHED,   # an ACK standing in for a missed SYN/ACK
    (S.SYN_RCVD, I.RCV_ACK_SYN): S.ESTABLISHED,
    (S.SYN_RCVD, I.RCV_SYNACK): S.ESTABLISHED,    # simultaneous open completes
    (S.SYN_RCVD, I.RCV_FIN): S.CLOSE_WAIT,
    (S.ESTABLISHED, I.RCV_FIN): S.CLOSE_WAIT,
    (S.FIN_WAIT_1, I.RCV_ACK_FIN): S.FIN_WAIT_2,
    (S.FIN_WAIT_1, I.RCV_FIN): S.CLOSING,
    (S.FIN_WAIT_2, I.RCV_FIN): S.TIME_WAIT,
    (S.CLOSING, I.RCV_ACK_FIN): S.TIME_WAIT,
    (S.LAST_ACK, I.RCV_ACK_FIN): S.CLOSED,
}
for _state in _OPEN:
    TRANSITIONS[(_state, I.SND_RST)] = S.CLOSED
    TRANSITIONS[(_state, I.RCV_RST)] = S.CLOSED

# A flow is over when both stacks are in one of these.
TERMINAL = frozenset({S.CLOSED, S.TIME_WAIT})


def step(state: TcpState, event: TcpInput) -> TcpState:
    """The state after ``event``; unchanged when the table has no entry."""
    return TRANSITIONS.get((state, event), state)


SYN, ACK, FIN, RST = 0x02, 0x10, 0x01, 0x04


def sender_input(flags: int) -> TcpInput:
    """The single sender-side input a segment with these TCP flags is."""
    if flags & RST:
        return I.SND_RST
    if flags & SYN:
        return I.SND_SYNACK if flags & ACK else I.SND_SYN
    if flags & FIN:
        return I.SND_FIN
    return I.SND_ACK
