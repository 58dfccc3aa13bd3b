"""mOS 0.3's constants (``mos_api.h``, ``mtcp_api.h``) with their numeric values, and
the maps from them to mostool's hooks, events and socket options."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mostool.events.types import (
    ON_CONN_END,
    ON_CONN_NEW_DATA,
    ON_CONN_START,
    ON_ERROR,
    ON_ORPHAN,
    ON_PKT_IN,
    ON_REXMIT,
    ON_TCP_STATE_CHANGE,
    ON_TIMEOUT,
    EventType,
    Hook,
)
from mostool.stack.flow import (
    SOCKOPT_OVERLAP_CLI,
    SOCKOPT_OVERLAP_SVR,
    SOCKOPT_RCVBUF_CLI,
    SOCKOPT_RCVBUF_SVR,
)

# enum mtcp_hook_point (mos_api.h)
MOS_NULL = 1 << 29
MOS_HK_RCV = 1 << 30
MOS_HK_SND = 1 << 31

# enum mos_event_type (mos_api.h)
MOS_NULL_EVENT = 0
MOS_ON_PKT_IN = 1 << 0
MOS_ON_PKT_OUT = 1 << 1          # deprecated in mOS (debug only); never raised here
MOS_ON_CONN_START = 1 << 2
MOS_ON_CONN_SETUP = 1 << 3       # deprecated in mOS; never raised here
MOS_ON_CONN_NEW_DATA = 1 << 4
MOS_ON_ERROR = 1 << 5
MOS_ON_TIMEOUT = 1 << 6
MOS_ON_TCP_STATE_CHANGE = 1 << 7
MOS_ON_ORPHAN = 1 << 8
MOS_ON_REXMIT = 1 << 9
MOS_ON_CONN_END = 1 << 10
MOS_ON_DEBUG_MESSAGE = 1 << 11   # only with ENABLE_DEBUG_EVENT in mOS; never raised here

NUM_BEV = 12                      # built-in event bits; UDE ids start at 1 << NUM_BEV

# sides (mos_api.h)
MOS_SIDE_CLI = 0
MOS_SIDE_SVR = 1
MOS_SIDE_BOTH = 2

# enum socket_type (mtcp_api.h)
MOS_SOCK_UNUSED = 0
MOS_SOCK_STREAM_LISTEN = 1
MOS_SOCK_PROXY_LISTEN = 2
MOS_SOCK_MONITOR_STREAM = 3
MOS_SOCK_STREAM = 4
MOS_SOCK_PROXY = 5
MOS_SOCK_MONITOR_STREAM_ACTIVE = 6
MOS_SOCK_MONITOR_RAW = 7
MOS_SOCK_EPOLL = 8
MOS_SOCK_PIPE = 9

# socket option level and names (mos_api.h, enum mos_socket_opts)
SOL_MONSOCKET = 0xFFFE
MOS_FRAGINFO_CLIBUF = 0x01
MOS_FRAGINFO_SVRBUF = 0x02
MOS_INFO_CLIBUF = 0x03
MOS_INFO_SVRBUF = 0x04
MOS_TCP_STATE_CLI = 0x05
MOS_TCP_STATE_SVR = 0x06
MOS_TIMESTAMP = 0x07
MOS_CLIBUF = 0x09
MOS_SVRBUF = 0x0A
MOS_SEQ_REMAP = 0x0B
MOS_STOP_MON = 0x0C
MOS_FRAG_CLIBUF = 0x0D
MOS_FRAG_SVRBUF = 0x0E
MOS_CLIOVERLAP = 0x0F
MOS_SVROVERLAP = 0x10

# overlap policies (mos_api.h)
MOS_OVERLAP_POLICY_FIRST = 0
MOS_OVERLAP_POLICY_LAST = 1
MOS_OVERLAP_CNT = 2

# enum tcpstate (mos_api.h)
TCP_CLOSED = 0
TCP_LISTEN = 1
TCP_SYN_SENT = 2
TCP_SYN_RCVD = 3
TCP_ESTABLISHED = 4
TCP_FIN_WAIT_1 = 5
TCP_FIN_WAIT_2 = 6
TCP_CLOSE_WAIT = 7
TCP_CLOSING = 8
TCP_LAST_ACK = 9
TCP_TIME_WAIT = 10

# packet-update macros of mtcp_setlastpkt (mos_api.h); mostool never modifies packets
MOS_ETH_HDR = 1 << 0
MOS_IP_HDR = 1 << 1
MOS_TCP_HDR = 1 << 2
MOS_TCP_PAYLOAD = 1 << 3
MOS_UPDATE_IP_CHKSUM = 1 << 4
MOS_UPDATE_TCP_CHKSUM = 1 << 5
MOS_DROP = 1 << 6
MOS_OVERWRITE = 1 << 7
MOS_CHOMP = 1 << 8
MOS_INSERT = 1 << 9

SOCKADDR_LEN = 16                 # sizeof(struct sockaddr): what mtcp_getpeername checks
_M32 = 0xFFFFFFFF

event_t = int

_BUILTIN: dict[int, EventType] = {
    MOS_ON_PKT_IN: ON_PKT_IN,
    MOS_ON_CONN_START: ON_CONN_START,
    MOS_ON_CONN_NEW_DATA: ON_CONN_NEW_DATA,
    MOS_ON_ERROR: ON_ERROR,
    MOS_ON_TIMEOUT: ON_TIMEOUT,
    MOS_ON_TCP_STATE_CHANGE: ON_TCP_STATE_CHANGE,
    MOS_ON_ORPHAN: ON_ORPHAN,
    MOS_ON_REXMIT: ON_REXMIT,
    MOS_ON_CONN_END: ON_CONN_END,
}
_UNSUPPORTED_BUILTIN = {MOS_ON_PKT_OUT: "MOS_ON_PKT_OUT", MOS_ON_CONN_SETUP: "MOS_ON_CONN_SETUP",
                        MOS_ON_DEBUG_MESSAGE: "MOS_ON_DEBUG_MESSAGE"}
_HOOKS = {MOS_NULL: Hook.NULL, MOS_HK_RCV: Hook.HK_RCV, MOS_HK_SND: Hook.HK_SND}
_RCVBUF_OPT = {MOS_CLIBUF: SOCKOPT_RCVBUF_CLI, MOS_SVRBUF: SOCKOPT_RCVBUF_SVR,
               MOS_FRAG_CLIBUF: SOCKOPT_RCVBUF_CLI, MOS_FRAG_SVRBUF: SOCKOPT_RCVBUF_SVR}
_OVERLAP_OPT = {MOS_CLIOVERLAP: SOCKOPT_OVERLAP_CLI, MOS_SVROVERLAP: SOCKOPT_OVERLAP_SVR}

Callback = Callable[..., Any]
