"""mOS 0.3's monitoring API in Python: ``mtcp_*`` calls over mostool's Pythonic API.

Programs written against mOS (``mos_api.h`` / ``mtcp_api.h``) port line by line::

    from mostool.compat.mos import *

    mtcp_init({"source": "capture.pcap"})          # or a mos.conf path, or {"interface": "eth0"}
    mctx = mtcp_create_context(0)
    s = mtcp_socket(mctx, AF_INET, MOS_SOCK_MONITOR_STREAM, 0)
    mtcp_bind_monitor_filter(mctx, s, monitor_filter(stream_syn_filter="dst port 80"))
    hev = mtcp_define_event(MOS_ON_CONN_NEW_DATA, IsHTTPRequest, None)
    mtcp_register_callback(mctx, s, hev, MOS_NULL, OnHTTPRequest)
    mtcp_app_join(mctx)                             # runs the source to completion
    mtcp_destroy()

Conventions (as the man pages):

* Calls return integers: 0 (or a count, a descriptor, an event id) on success, -1 on failure
  with an errno readable with :func:`mtcp_errno` (and a detail with :func:`mtcp_errmsg`).
  Calls that return a pointer in C return an object or ``None``; ``mtcp_define_event`` and
  ``mtcp_alloc_event`` return ``MOS_NULL_EVENT`` (0) on failure. ``mtcp_raise_errors(True)``
  switches every failure into an :class:`MtcpError` (an ``OSError``) instead.
* Sockets are integers. A listener (``mtcp_socket``) gets one at creation; each flow handle
  (mOS's ``MOS_SOCK_MONITOR_STREAM_ACTIVE`` socket, mostool's :class:`~mostool.Flow`) gets one
  the first time it is handed to a callback or filter, and loses it when the flow ends.
* Callbacks are ``cb(mctx, sock, side, event, filter_arg)`` and UDE filters
  ``filter(mctx, sock, side, event, filter_arg) -> bool``; ``event`` is the ``event_t`` of the
  registered event, ``filter_arg`` the object given to ``mtcp_define_event`` (``None`` for
  built-in events). Timer callbacks get ``(mctx, id, 0, 0, None)`` as in mOS's core loop.
* C out-parameters are mutable Python objects: ``mtcp_peek`` fills a ``bytearray`` (or any
  writable buffer) and returns the count, ``mtcp_getlastpkt`` fills a :class:`pkt_info`,
  ``mtcp_getpeername`` fills :class:`sockaddr_in` objects, ``mtcp_getsockopt`` fills a
  ``ctypes.c_int`` (or a one-element list), a :class:`tcp_buf_info` or a list of
  :class:`tcp_ring_fragment`. Addresses are strings and ports host-order integers.
* Constants have mOS's numeric values (``core/src/include/mos_api.h`` and ``mtcp_api.h``).

Where mOS's man pages and its code disagree, this module follows the code and says so in the
function's docstring. Time is packet time: ``mtcp_settimer`` and ``mtcp_cb_get_ts`` run on the
capture's clock, not the wall clock. The facade is thin: every call maps onto the Pythonic API
(:class:`~mostool.Monitor`, :class:`~mostool.MonitorSocket`, :class:`~mostool.Flow`,
``define_event``/``alloc_event``/``raise_event``); docs/mos_to_mostool.md has the table.

mOS keeps process-wide state (``mtcp_init``'s configuration, the event forest, ``errno``); so
does this module, and ``mtcp_destroy()`` resets it. mostool runs one engine: one context
(``num_cores`` = 1), fed with every packet of the source (mOS's RSS sharding is not modelled).
"""

from __future__ import annotations

import contextlib
import errno as _errno
import ipaddress
import os
import re
import signal as _signal
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from socket import AF_INET, AF_INET6
from typing import Any, TypeVar, cast, overload

import mostool
from mostool.config import MonitorConfig
from mostool.errors import BytesLost, CallbackError, MosError
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
    Side,
)
from mostool.monitor import MONITOR_RAW, MONITOR_STREAM, Monitor, MonitorSocket
from mostool.sources import MemorySource, Source
from mostool.stack.flow import (
    SOCKOPT_OVERLAP_CLI,
    SOCKOPT_OVERLAP_SVR,
    SOCKOPT_RCVBUF_CLI,
    SOCKOPT_RCVBUF_SVR,
    SOCKOPT_STOP_MON,
    Flow,
    PacketInfo,
)

__all__ = [
    # constants: hooks, events, sides, sockets, options, states, packet-update macros
    "MOS_NULL", "MOS_HK_RCV", "MOS_HK_SND",
    "MOS_NULL_EVENT", "MOS_ON_PKT_IN", "MOS_ON_PKT_OUT", "MOS_ON_CONN_START",
    "MOS_ON_CONN_SETUP", "MOS_ON_CONN_NEW_DATA", "MOS_ON_ERROR", "MOS_ON_TIMEOUT",
    "MOS_ON_TCP_STATE_CHANGE", "MOS_ON_ORPHAN", "MOS_ON_REXMIT", "MOS_ON_CONN_END",
    "MOS_ON_DEBUG_MESSAGE",
    "MOS_SIDE_CLI", "MOS_SIDE_SVR", "MOS_SIDE_BOTH",
    "MOS_SOCK_UNUSED", "MOS_SOCK_STREAM_LISTEN", "MOS_SOCK_PROXY_LISTEN",
    "MOS_SOCK_MONITOR_STREAM", "MOS_SOCK_STREAM", "MOS_SOCK_PROXY",
    "MOS_SOCK_MONITOR_STREAM_ACTIVE", "MOS_SOCK_MONITOR_RAW", "MOS_SOCK_EPOLL",
    "MOS_SOCK_PIPE", "AF_INET", "AF_INET6",
    "SOL_MONSOCKET", "MOS_FRAGINFO_CLIBUF", "MOS_FRAGINFO_SVRBUF", "MOS_INFO_CLIBUF",
    "MOS_INFO_SVRBUF", "MOS_TCP_STATE_CLI", "MOS_TCP_STATE_SVR", "MOS_TIMESTAMP",
    "MOS_CLIBUF", "MOS_SVRBUF", "MOS_SEQ_REMAP", "MOS_STOP_MON", "MOS_FRAG_CLIBUF",
    "MOS_FRAG_SVRBUF", "MOS_CLIOVERLAP", "MOS_SVROVERLAP",
    "MOS_OVERLAP_POLICY_FIRST", "MOS_OVERLAP_POLICY_LAST", "MOS_OVERLAP_CNT",
    "TCP_CLOSED", "TCP_LISTEN", "TCP_SYN_SENT", "TCP_SYN_RCVD", "TCP_ESTABLISHED",
    "TCP_FIN_WAIT_1", "TCP_FIN_WAIT_2", "TCP_CLOSE_WAIT", "TCP_CLOSING", "TCP_LAST_ACK",
    "TCP_TIME_WAIT",
    "MOS_ETH_HDR", "MOS_IP_HDR", "MOS_TCP_HDR", "MOS_TCP_PAYLOAD", "MOS_UPDATE_IP_CHKSUM",
    "MOS_UPDATE_TCP_CHKSUM", "MOS_DROP", "MOS_OVERWRITE", "MOS_CHOMP", "MOS_INSERT",
    # types
    "mctx_t", "monitor_filter", "monitor_filter_t", "filter_arg", "filter_arg_t", "pkt_info",
    "ethhdr", "iphdr", "tcphdr", "sockaddr_in", "timeval", "tcp_buf_info",
    "tcp_ring_fragment", "mtcp_conf", "MtcpError", "event_t",
    # init
    "mtcp_init", "mtcp_getconf", "mtcp_setconf", "mtcp_create_context",
    "mtcp_destroy_context", "mtcp_destroy", "mtcp_core_affinitize", "mtcp_init_rss",
    "mtcp_register_signal", "mtcp_app_join",
    # sockets, filters, events
    "mtcp_socket", "mtcp_close", "mtcp_bind_monitor_filter", "mtcp_register_callback",
    "mtcp_unregister_callback", "mtcp_define_event", "mtcp_alloc_event", "mtcp_raise_event",
    "mtcp_remove_ude",
    # per flow
    "mtcp_set_uctx", "mtcp_get_uctx", "mtcp_peek", "mtcp_ppeek", "mtcp_getlastpkt",
    "mtcp_setlastpkt", "mtcp_sendpkt", "mtcp_reset_conn", "mtcp_getsockopt",
    "mtcp_setsockopt", "mtcp_getpeername", "mtcp_getsockname",
    # time
    "mtcp_settimer", "mtcp_cb_get_ts",
    # errors
    "mtcp_errno", "mtcp_errmsg", "mtcp_perror", "mtcp_raise_errors",
]

# ---------------------------------------------------------------------------------------------
# Constants, with the numeric values of mOS 0.3's headers.

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
_T = TypeVar("_T")


# ---------------------------------------------------------------------------------------------
# Errors


class MtcpError(OSError):
    """A failed ``mtcp_*`` call under ``mtcp_raise_errors(True)``. ``lost`` is the number of
    bytes lost for an ``mtcp_peek`` overflow (ENODATA), else 0."""

    def __init__(self, err: int, message: str, lost: int = 0) -> None:
        super().__init__(err, message)
        self.lost = lost


class _State:
    """mOS's process-wide state: configuration, contexts, the UDE id map, errno."""

    def __init__(self) -> None:
        # UDEs and floating events: event_t <-> EventType (the forest itself is mostool's);
        # they survive mtcp_destroy, as mOS's global event forest
        self.ude_by_id: dict[int, EventType] = {}
        self.ude_ids: dict[EventType, int] = {}
        self.next_ude = 1 << NUM_BEV
        self.filters: dict[Any, Callable[..., bool]] = {}
        self.reset()

    def reset(self) -> None:
        self.errno = 0
        self.errmsg = ""
        self.raise_errors = False
        self.conf: _Conf | None = None
        self.contexts: dict[int, mctx_t] = {}
        self.by_engine: dict[int, mctx_t] = {}
        self.signals: dict[int, Any] = {}
        self.destroy_pending = False


_S = _State()


@overload
def _fail(err: int, message: str) -> int: ...
@overload
def _fail(err: int, message: str, ret: _T, lost: int = 0) -> _T: ...
def _fail(err: int, message: str, ret: Any = -1, lost: int = 0) -> Any:
    """Record a failure (errno and message); raise under mtcp_raise_errors, else return ret."""
    _S.errno = err
    _S.errmsg = message
    if _S.raise_errors:
        raise MtcpError(err, message, lost)
    return ret


@overload
def _mos_fail(exc: MosError) -> int: ...
@overload
def _mos_fail(exc: MosError, ret: _T) -> _T: ...
def _mos_fail(exc: MosError, ret: Any = -1) -> Any:
    return _fail(exc.errno, str(exc.args[0]) if exc.args else str(exc), ret)


def mtcp_errno() -> int:
    """The errno of the last failed call (0 if none failed yet); errno is not cleared by
    successful calls, as in C."""
    return _S.errno


def mtcp_errmsg() -> str:
    """A one-line description of the last failure (mostool's detail, e.g. libpcap's message for
    a bad filter)."""
    if not _S.errno:
        return ""
    name = _errno.errorcode.get(_S.errno, str(_S.errno))
    return f"{os.strerror(_S.errno)} [{name}]" + (f": {_S.errmsg}" if _S.errmsg else "")


def mtcp_perror(prefix: str) -> None:
    """``perror(3)`` for this module's errno: ``prefix: description`` on stderr."""
    sys.stderr.write(f"{prefix}: {mtcp_errmsg() or 'Success'}\n")


def mtcp_raise_errors(on: bool = True) -> bool:
    """Make failing calls raise :class:`MtcpError` (an ``OSError`` with the errno) instead of
    returning -1/0/None. Returns the previous setting."""
    old = _S.raise_errors
    _S.raise_errors = bool(on)
    return old


# ---------------------------------------------------------------------------------------------
# C structures as small mutable Python objects


@dataclass(init=False)
class monitor_filter:
    """``union monitor_filter``: ``stream_syn_filter`` / ``stream_orphan_filter`` for
    MOS_SOCK_MONITOR_STREAM sockets, ``raw_pkt_filter`` for MOS_SOCK_MONITOR_RAW sockets.

    As in C, ``raw_pkt_filter`` is the same storage as ``stream_syn_filter`` (a union): setting
    one sets the other. Filters are libpcap BPF expressions; ``None`` means "all".
    """

    stream_syn_filter: str | None = None
    stream_orphan_filter: str | None = None

    def __init__(self, stream_syn_filter: str | None = None,
                 stream_orphan_filter: str | None = None,
                 raw_pkt_filter: str | None = None) -> None:
        if raw_pkt_filter is not None and stream_syn_filter not in (None, raw_pkt_filter):
            raise ValueError("raw_pkt_filter and stream_syn_filter share storage (a union): "
                             "give one of them")
        self.stream_syn_filter = raw_pkt_filter if raw_pkt_filter is not None \
            else stream_syn_filter
        self.stream_orphan_filter = stream_orphan_filter

    @property
    def raw_pkt_filter(self) -> str | None:
        return self.stream_syn_filter

    @raw_pkt_filter.setter
    def raw_pkt_filter(self, value: str | None) -> None:
        self.stream_syn_filter = value


monitor_filter_t = monitor_filter


@dataclass(frozen=True)
class filter_arg:
    """``struct filter_arg {void *arg; size_t len;}``. mOS copies the bytes at define time and
    treats two definitions with the same filter and equal argument bytes as the same event; here
    equal (hashable) values do the same."""

    arg: Any = None
    len: int = 0


filter_arg_t = filter_arg


@dataclass
class timeval:
    """``struct timeval`` for ``mtcp_settimer`` (packet time)."""

    tv_sec: int = 0
    tv_usec: int = 0


@dataclass
class sockaddr_in:
    """``struct sockaddr_in`` as filled by ``mtcp_getpeername``: the address as a string, the
    port in host order, ``sin_family`` AF_INET or AF_INET6 (mostool also tracks IPv6)."""

    sin_family: int = 0
    sin_port: int = 0
    sin_addr: str = ""

    def __str__(self) -> str:
        a = f"[{self.sin_addr}]" if ":" in self.sin_addr else self.sin_addr
        return f"{a}:{self.sin_port}"


@dataclass
class tcp_buf_info:
    """``struct tcp_buf_info`` (``MOS_INFO_CLIBUF`` / ``MOS_INFO_SVRBUF``).

    As in mOS's code (``GetBufInfo``): ``tcpbi_init_seq`` is the peer's ISN + 1 (the sequence
    number of stream offset 0); the other three are stream offsets despite the man page calling
    them sequence numbers. ``tcpbi_last_byte_read`` is this socket's ``mtcp_peek`` cursor
    (mOS reports the stream's consumed point, which for a standalone monitor equals
    ``tcpbi_next_byte_expected``).
    """

    tcpbi_init_seq: int = 0
    tcpbi_last_byte_read: int = 0
    tcpbi_next_byte_expected: int = 0
    tcpbi_last_byte_received: int = 0


@dataclass
class tcp_ring_fragment:
    """``struct tcp_ring_fragment``: a received byte range (stream offset, length)."""

    offset: int = 0
    len: int = 0


@dataclass
class ethhdr:
    """``struct ethhdr`` (addresses as ``aa:bb:..`` strings)."""

    h_dest: str = ""
    h_source: str = ""
    h_proto: int = 0


@dataclass
class iphdr:
    """``struct iphdr`` (host byte order; addresses as strings). IPv6 packets fill
    ``version`` 6, ``tot_len`` (40 + payload length), ``protocol`` (next header), ``ttl``
    (hop limit), ``saddr`` and ``daddr``."""

    version: int = 0
    ihl: int = 0
    tos: int = 0
    tot_len: int = 0
    id: int = 0
    frag_off: int = 0
    ttl: int = 0
    protocol: int = 0
    check: int = 0
    saddr: str = ""
    daddr: str = ""


@dataclass
class tcphdr:
    """``struct tcphdr`` (host byte order; flag bits as 0/1)."""

    source: int = 0
    dest: int = 0
    seq: int = 0
    ack_seq: int = 0
    doff: int = 0
    fin: int = 0
    syn: int = 0
    rst: int = 0
    psh: int = 0
    ack: int = 0
    urg: int = 0
    ece: int = 0
    cwr: int = 0
    window: int = 0
    check: int = 0
    urg_ptr: int = 0


@dataclass
class pkt_info:
    """``struct pkt_info``, filled by ``mtcp_getlastpkt`` (host byte order).

    ``cur_ts`` is the packet time in milliseconds modulo 2**32 (mTCP's tick), ``offset`` the
    stream offset of the payload in the receiving side's buffer, ``payloadlen`` the payload
    length on the wire. ``ethh``/``iph``/``tcph`` are header objects (``None`` where the frame
    has no such header, e.g. ``ethh`` for raw-IP captures; for RAW sockets only ``ethh`` and
    ``iph`` are filled, as in mOS). Two additions: ``ts`` (float seconds) and ``frame``.
    """

    cur_ts: int = 0
    in_ifidx: int = 0
    eth_len: int = 0
    ip_len: int = 0
    offset: int = 0
    payloadlen: int = 0
    seq: int = 0
    ack_seq: int = 0
    window: int = 0
    ethh: ethhdr | None = None
    iph: iphdr | None = None
    tcph: tcphdr | None = None
    payload: bytes | None = None
    ts: float = 0.0
    frame: bytes = b""


@dataclass
class mtcp_conf:
    """``struct mtcp_conf`` (``mtcp_getconf`` / ``mtcp_setconf``).

    Meaningful fields: ``num_cores`` (always 1: mostool runs one engine),
    ``max_concurrency`` (MonitorConfig.max_flows), ``rcvbuf_size`` (rcvbuf), ``tcp_timewait``
    (time_wait, seconds), ``tcp_timeout`` (idle_timeout, seconds; -1 = never). The others are
    kept for source compatibility and ignored.
    """

    num_cores: int = 1
    max_concurrency: int = 0
    cpu_mask: int = 1
    max_num_buffers: int = 0
    rcvbuf_size: int = 0
    sndbuf_size: int = 0
    tcp_timewait: float = 0
    tcp_timeout: float = 0
    app_cpu_mask: list[int] = field(default_factory=list)
    app_argv: list[list[str]] = field(default_factory=list)
    app_argc: list[int] = field(default_factory=list)
    num_app: int = 0


# ---------------------------------------------------------------------------------------------
# Configuration: mtcp_init's dict or mos.conf file

# mos.conf / dict keys of mOS -> MonitorConfig fields
_MOS_KEYS = {"rmem_size": "rcvbuf", "tcp_timeout": "idle_timeout",
             "tcp_tw_interval": "time_wait", "max_concurrency": "max_flows"}
# mos.conf keys of mOS that have no meaning for a passive replay/capture tool
_MOS_IGNORED = {"forward", "nb_mem_channels", "stat_print", "mos_log", "max_num_buffers",
                "wmem_size", "core_mask", "nic_forward_table", "num_cores", "type", "run"}
_PACING_KEYS = ("speed", "pps", "mbps", "max_gap")
_CONFIG_FIELDS = {f.name for f in fields(MonitorConfig)}


class _Conf:
    """What mtcp_init established: the MonitorConfig and where packets come from."""

    def __init__(self, config: MonitorConfig, source: Any, interfaces: list[str],
                 pacing: dict[str, Any], ignored: list[str]) -> None:
        self.config = config
        self.source = source               # paths, a Source, frames, or None
        self.interfaces = interfaces
        self.pacing = pacing
        self.ignored = ignored


_FIELD_KINDS: dict[str, str] = {
    "rcvbuf": "int", "max_flows": "int", "max_ooo_segments": "int", "max_ooo_bytes": "int",
    "time_wait": "float", "frag_timeout": "float", "idle_timeout": "timeout",
    "midstream": "bool", "hash_streams": "bool", "mos_compat": "bool", "strict": "bool",
    "overlap": "str", "checksums": "str",
}


def _config_value(key: str, value: Any) -> tuple[str, Any]:
    """A mOS or mostool configuration key and value -> (MonitorConfig field, typed value)."""
    name = _MOS_KEYS.get(key, key)
    kind = _FIELD_KINDS.get(name, "str")
    if kind == "timeout":
        if value is not None:
            v = float(value)
            value = None if v <= 0 else v
    elif kind == "int":
        value = int(value)
    elif kind == "float":
        value = float(value)
    elif kind == "bool":
        value = _bool(value)
    return name, value


def _parse_mos_conf(path: str) -> dict[str, Any]:
    """A mOS configuration file (``mos { ... }`` and ``application { ... }`` blocks) as a dict.

    ``netdev`` names become ``interface``; ``no_ring_buffers = 1`` becomes ``rcvbuf = 0``. A
    mostool extension, ``source = a.pcap b.pcap`` in the ``mos`` block, replays files instead.
    """
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    out: dict[str, Any] = {"_ignored": []}
    stack: list[str] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z_][\w]*)\s*\{", line)
        if m:
            stack.append(m.group(1))
            continue
        if line == "}":
            if not stack:
                raise ValueError(f"{path}:{lineno}: unbalanced '}}'")
            stack.pop()
            continue
        block = stack[-1] if stack else ""
        if block == "netdev":
            out.setdefault("interface", []).append(line.split()[0])
            continue
        if block in ("application", "nic_forward_table"):
            continue
        m = re.fullmatch(r"([A-Za-z_]\w*)\s*=\s*(.*)", line)
        if not m:
            raise ValueError(f"{path}:{lineno}: cannot parse {line!r}")
        key, value = m.group(1), m.group(2).strip()
        if key == "source":
            out["source"] = value.split()
        elif key == "no_ring_buffers":
            if int(value):
                out["rcvbuf"] = 0
        elif key in _MOS_KEYS or key in _CONFIG_FIELDS:
            out[key] = value
        else:
            out["_ignored"].append(key)
    if stack:
        raise ValueError(f"{path}: block {stack[-1]!r} is not closed")
    return out


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _make_conf(spec: dict[str, Any]) -> _Conf:
    values: dict[str, Any] = {}
    pacing: dict[str, Any] = {}
    ignored = list(spec.get("_ignored", []))
    source: Any = None
    interfaces: list[str] = []
    for key, value in spec.items():
        if key == "_ignored":
            continue
        if key == "source":
            source = value
        elif key == "interface":
            interfaces = [value] if isinstance(value, str) else [str(v) for v in value]
        elif key in _PACING_KEYS:
            pacing[key] = float(value)
        elif key in _MOS_IGNORED:
            ignored.append(key)
        elif key in _MOS_KEYS or key in _CONFIG_FIELDS:
            name, v = _config_value(key, value)
            values[name] = v
        else:
            raise ValueError(f"unknown configuration key {key!r}")
    if source is not None and interfaces:
        raise ValueError("give either a source (capture files) or an interface, not both")
    config = MonitorConfig(**values)
    if isinstance(source, (str, os.PathLike)):
        source = [os.fspath(source)]
    elif isinstance(source, (list, tuple)) and source and all(
            isinstance(s, (str, os.PathLike)) for s in source):
        source = [os.fspath(s) for s in source]
    if isinstance(source, list) and source and isinstance(source[0], str):
        for path in source:
            if not os.path.exists(path):
                raise FileNotFoundError(_errno.ENOENT, "no such file", path)
        from mostool.replay import ReplaySource
        ReplaySource(source, **pacing).close()       # validate every file now
    return _Conf(config, source, interfaces, pacing, ignored)


def _open_source(conf: _Conf) -> Source:
    src = conf.source
    if conf.interfaces:
        return _live_source(conf.interfaces)
    if src is None:
        raise ValueError("no packet source: mtcp_init needs a 'source' or an 'interface'")
    if isinstance(src, Source):
        return src
    if isinstance(src, list) and src and isinstance(src[0], str):
        from mostool.replay import ReplaySource
        return ReplaySource(src, **conf.pacing)
    return MemorySource(src)


_LIVE_ERRNO = {"nodev": _errno.ENODEV, "perm": _errno.EPERM, "down": _errno.ENETDOWN,
               "filter": _errno.EINVAL, "write": _errno.EIO}


def _live_source(interfaces: list[str]) -> Source:
    """mostool.live's source for the configured interface (imported lazily). mostool.live
    captures one interface; mOS's inline setups list two (one per direction)."""
    import importlib
    if len(interfaces) != 1:
        raise ValueError(f"live capture takes one interface, not {len(interfaces)} "
                         f"({' '.join(interfaces)})")
    live = importlib.import_module("mostool.live")
    try:
        return cast(Source, live.LiveSource(interfaces[0]))
    except live.LiveError as exc:
        err = _LIVE_ERRNO.get(getattr(exc, "reason", ""), _errno.EIO)
        raise OSError(err, str(exc)) from None


# ---------------------------------------------------------------------------------------------
# The context


class _Sock:
    __slots__ = ("id", "kind", "obj", "uctx")

    def __init__(self, sock_id: int, kind: int, obj: MonitorSocket | Flow) -> None:
        self.id = sock_id
        self.kind = kind
        self.obj = obj
        self.uctx: Any = None      # listeners' uctx (flows keep theirs in Flow.uctx)


class mctx_t:
    """``mctx_t``: one mOS context (``struct mtcp_context``), holding a mostool Monitor.

    ``cpu`` is the core id given to ``mtcp_create_context``; ``monitor`` the Monitor it drives;
    after ``mtcp_app_join``, ``stats`` holds the run's statistics.
    """

    def __init__(self, cpu: int, config: MonitorConfig) -> None:
        self.cpu = cpu
        self.monitor = Monitor(config)
        self.stats: dict[str, Any] = {}
        self._socks: dict[int, _Sock] = {}
        self._flow_ids: dict[Flow, int] = {}
        self._next_sock = 0
        self._running = False
        self._joined = False
        self._destroyed = False
        self._destroy_after_run = False
        self._current: list[Any] = []          # handles of the callbacks/filters running now
        self.monitor.on_flow_end(self._flow_ended)

    def __repr__(self) -> str:
        return f"<mctx_t cpu={self.cpu}{' destroyed' if self._destroyed else ''}>"

    # -- sockets ------------------------------------------------------------------------------

    def _new_sock(self, kind: int, obj: MonitorSocket | Flow) -> int:
        sock_id = self._next_sock
        self._next_sock += 1
        self._socks[sock_id] = _Sock(sock_id, kind, obj)
        return sock_id

    def _flow_sock(self, flow: Flow) -> int:
        sock_id = self._flow_ids.get(flow)
        if sock_id is None:
            sock_id = self._new_sock(MOS_SOCK_MONITOR_STREAM_ACTIVE, flow)
            self._flow_ids[flow] = sock_id
        return sock_id

    def _sock_of(self, handle: Any, listener_sock: int | None) -> int:
        """The integer for a callback's first argument: a Flow's own socket, or for orphan
        and RAW callbacks (no flow) the listener's."""
        if isinstance(handle, Flow):
            return self._flow_sock(handle)
        if listener_sock is not None:
            return listener_sock
        return self._orphan_listener()

    def _orphan_listener(self) -> int:
        # A UDE filter on ON_ORPHAN / RAW ON_PKT_IN gets the shared orphan handle, which does not
        # say for which listener it is being evaluated: use the only candidate, if unique.
        cands = [s.id for s in self._socks.values()
                 if s.kind in (MOS_SOCK_MONITOR_STREAM, MOS_SOCK_MONITOR_RAW)]
        return cands[0] if len(cands) == 1 else -1

    def _flow_ended(self, conn: Any) -> None:
        for h in conn.handles:
            sock_id = self._flow_ids.pop(h, None)
            if sock_id is not None:
                self._socks.pop(sock_id, None)

    # -- callbacks ----------------------------------------------------------------------------

    def _wrap(self, cb: Callback, ev: int, arg: Any, listener_sock: int | None
              ) -> Callable[[Any, Side, Any], None]:
        def mos_callback(handle: Any, side: Side, event: Any) -> None:
            sock = self._sock_of(handle, listener_sock)
            self._current.append(handle)
            try:
                cb(self, sock, int(side), ev, arg)
            finally:
                self._current.pop()
        mos_callback.__name__ = getattr(cb, "__name__", "callback")
        mos_callback.__qualname__ = mos_callback.__name__
        return mos_callback


def _ctx(mctx: Any) -> mctx_t | None:
    if isinstance(mctx, mctx_t) and not mctx._destroyed and _S.contexts.get(mctx.cpu) is mctx:
        return mctx
    return None


def _ctx_of_handle(handle: Any) -> mctx_t | None:
    engine = getattr(handle, "engine", None)
    return _S.by_engine.get(id(engine)) if engine is not None else None


# ---------------------------------------------------------------------------------------------
# init, contexts, running


def mtcp_init(conf: str | os.PathLike[str] | dict[str, Any]) -> int:
    """Load the configuration: a mOS config file path, or a dict.

    The dict names the packet source: ``{"source": "capture.pcap"}`` (a path, a list of paths
    merged by time, a :class:`~mostool.Source`, or a list of frame tuples) or
    ``{"interface": "eth0"}`` (live capture through ``mostool.live``), plus configuration
    keys: mOS's ``rmem_size`` (-> rcvbuf), ``tcp_timeout`` (-> idle_timeout; <= 0 = never),
    ``tcp_tw_interval`` (-> time_wait), ``max_concurrency`` (-> max_flows), any
    :class:`~mostool.MonitorConfig` field (``midstream``, ``mos_compat``, ...), and replay
    pacing (``speed``, ``pps``, ``mbps``, ``max_gap``). A mos.conf file's ``netdev`` block names
    interfaces; ``source = a.pcap b.pcap`` in its ``mos`` block (a mostool extension) replays
    files. mOS keys with no meaning here (``forward``, ``nb_mem_channels``, ...) are ignored.
    Unset values are mostool's defaults (not mOS's 8 KB buffer and 30 s timeout).

    Returns 0; -1 with ENOENT (no such file), EINVAL (bad key, value or capture file), EBUSY
    (contexts still exist; ``mtcp_destroy`` first).
    """
    if _S.contexts:
        return _fail(_errno.EBUSY, "contexts exist: call mtcp_destroy() before mtcp_init()")
    try:
        if isinstance(conf, dict):
            spec = dict(conf)
        elif isinstance(conf, (str, os.PathLike)):
            spec = _parse_mos_conf(os.fspath(conf))
        else:
            return _fail(_errno.EINVAL, f"conf must be a path or a dict, not "
                                        f"{type(conf).__name__}")
        _S.conf = _make_conf(spec)
    except FileNotFoundError as exc:
        return _fail(_errno.ENOENT, f"{exc.filename}: no such file")
    except (ValueError, TypeError) as exc:
        return _fail(_errno.EINVAL, str(exc))
    except OSError as exc:
        return _fail(exc.errno or _errno.EIO, str(exc))
    except Exception as exc:  # noqa: BLE001 - e.g. replay.CaptureError: a one-line error
        return _fail(_errno.EINVAL, str(exc))
    return 0


def mtcp_getconf(conf: mtcp_conf) -> int:
    """Fill ``conf`` from the current configuration. -1/EPERM before ``mtcp_init``, EINVAL if
    ``conf`` is not an :class:`mtcp_conf`."""
    if _S.conf is None:
        return _fail(_errno.EPERM, "call mtcp_init() first")
    if not isinstance(conf, mtcp_conf):
        return _fail(_errno.EINVAL, "conf must be an mtcp_conf")
    c = _S.conf.config
    conf.num_cores = 1
    conf.cpu_mask = 1
    conf.max_concurrency = c.max_flows
    conf.max_num_buffers = c.max_flows
    conf.rcvbuf_size = c.rcvbuf
    conf.sndbuf_size = 0
    conf.tcp_timewait = c.time_wait
    conf.tcp_timeout = -1 if c.idle_timeout is None else c.idle_timeout
    return 0


def mtcp_setconf(conf: mtcp_conf) -> int:
    """Apply ``conf`` to contexts created from now on. -1/EPERM before ``mtcp_init``; EINVAL
    for ``num_cores`` != 1 (mostool runs one engine fed with every packet; mOS's per-core RSS
    sharding is not modelled) or a bad value."""
    if _S.conf is None:
        return _fail(_errno.EPERM, "call mtcp_init() first")
    if not isinstance(conf, mtcp_conf):
        return _fail(_errno.EINVAL, "conf must be an mtcp_conf")
    if conf.num_cores != 1:
        return _fail(_errno.EINVAL, f"num_cores must be 1 (one engine), not {conf.num_cores}")
    try:
        timeout = None if conf.tcp_timeout is None or conf.tcp_timeout <= 0 \
            else float(conf.tcp_timeout)
        _S.conf.config = _S.conf.config.replace(
            max_flows=int(conf.max_concurrency), rcvbuf=int(conf.rcvbuf_size),
            time_wait=float(conf.tcp_timewait), idle_timeout=timeout)
    except (ValueError, TypeError) as exc:
        return _fail(_errno.EINVAL, str(exc))
    return 0


def mtcp_create_context(cpu: int) -> mctx_t | None:
    """A context (a :class:`~mostool.Monitor`) for core ``cpu``. ``None`` with EPERM before
    ``mtcp_init``, EINVAL for a cpu other than 0 (``num_cores`` is 1), EEXIST if that core
    already has a context."""
    if _S.conf is None:
        return _fail(_errno.EPERM, "call mtcp_init() first", None)
    if cpu != 0:
        return _fail(_errno.EINVAL, f"cpu {cpu} out of range: mostool runs one context (cpu 0)",
                     None)
    if cpu in _S.contexts:
        return _fail(_errno.EEXIST, f"cpu {cpu} already has a context", None)
    ctx = mctx_t(cpu, _S.conf.config)
    _S.contexts[cpu] = ctx
    _S.by_engine[id(ctx.monitor.engine)] = ctx
    return ctx


def mtcp_app_join(mctx: mctx_t) -> int:
    """Run the configured source to completion through this context (mOS: park the application
    thread while mOS runs). Every open flow ends (``ON_CONN_END``) when the source ends or the
    context is destroyed (e.g. from a signal handler). Returns 0; -1 with EACCES (bad
    context), EALREADY (already run), EINVAL (no source) or EIO (the source failed). mOS's
    version returns void. Callbacks that raised are reported in one line on stderr and kept
    in ``mctx.monitor.failures``."""
    ctx = _ctx(mctx)
    if ctx is None:
        return _fail(_errno.EACCES, "invalid or destroyed context")
    if ctx._joined or ctx._running:
        return _fail(_errno.EALREADY, "this context has already run")
    assert _S.conf is not None
    try:
        source = _open_source(_S.conf)
    except ImportError as exc:
        return _fail(_errno.ENOSYS, f"live capture is not available: {exc}")
    except (ValueError, TypeError) as exc:
        return _fail(_errno.EINVAL, str(exc))
    except OSError as exc:
        return _fail(exc.errno or _errno.EIO, exc.strerror or str(exc))
    except Exception as exc:  # noqa: BLE001 - capture/interface errors: a one-line error
        return _fail(_errno.EIO, str(exc))
    ctx._running = True
    try:
        ctx.stats = ctx.monitor.run(source)
    except CallbackError:
        raise
    except MosError as exc:
        return _mos_fail(exc)
    except OSError as exc:
        return _fail(exc.errno or _errno.EIO, str(exc))
    finally:
        ctx._running = False
        ctx._joined = True
        if ctx._destroy_after_run:
            _forget(ctx)
        if _S.destroy_pending and not any(c._running for c in _S.contexts.values()):
            saved = (_S.errno, _S.errmsg)
            mtcp_destroy()
            _S.errno, _S.errmsg = saved
    failures = ctx.monitor.failures
    if failures:
        sys.stderr.write(f"mostool: {len(failures)} callback/filter error(s); "
                         f"first: {failures[0]}\n")
    return 0


def _forget(ctx: mctx_t) -> None:
    ctx._destroyed = True
    if _S.contexts.get(ctx.cpu) is ctx:
        del _S.contexts[ctx.cpu]
    _S.by_engine.pop(id(ctx.monitor.engine), None)


def mtcp_destroy_context(mctx: mctx_t) -> int:
    """Destroy a context. A running one (e.g. from a signal handler) stops after the current
    packet, its open flows end with reason "stopped" (their callbacks still run) and
    ``mtcp_app_join`` returns; an idle one ends its open flows. -1/EACCES for a bad
    context."""
    ctx = _ctx(mctx)
    if ctx is None:
        return _fail(_errno.EACCES, "invalid or destroyed context")
    if ctx._running:
        ctx._destroy_after_run = True
        ctx.monitor.stop()
        return 0
    ctx.monitor.close()
    _forget(ctx)
    return 0


def mtcp_destroy() -> int:
    """Destroy every context and forget the configuration, errno, the error switch and the
    signal handlers installed here. UDE definitions survive, as mOS's global event forest.
    Called while a context runs (a signal handler), it stops the run and takes effect when
    ``mtcp_app_join`` returns."""
    running = [c for c in _S.contexts.values() if c._running]
    if running:
        for ctx in running:
            ctx._destroy_after_run = True
            ctx.monitor.stop()
        _S.destroy_pending = True
        return 0
    for ctx in list(_S.contexts.values()):
        ctx.monitor.close()
        ctx._destroyed = True
    for signum, old in _S.signals.items():
        with contextlib.suppress(ValueError, OSError, TypeError):
            _signal.signal(signum, old)
    _S.reset()
    return 0


def mtcp_core_affinitize(cpu: int) -> int:
    """Nothing to pin (one engine, the caller's thread): 0 for cpu 0, -1/EINVAL otherwise."""
    if cpu != 0:
        return _fail(_errno.EINVAL, f"cpu {cpu} out of range")
    return 0


def mtcp_init_rss(mctx: mctx_t, saddr_base: Any, num_addr: int, daddr: Any, dport: Any) -> int:
    """An endpoint (mTCP) call: -1/ENOSYS, mostool only monitors."""
    return _fail(_errno.ENOSYS, "mtcp_init_rss is for mTCP endpoints; mostool only monitors")


def mtcp_register_signal(signum: int, handler: Callable[[int], Any] | None
                         ) -> Callable[[int], Any] | None:
    """Install ``handler(signum)`` for ``signum`` (``mtcp_destroy_context`` in it stops a
    running context). Returns ``handler`` as mOS does; ``None`` with EINVAL for a bad signal
    or handler."""
    if handler is None or not callable(handler):
        return _fail(_errno.EINVAL, "handler must be callable", None)

    def on_signal(num: int, frame: Any) -> None:
        handler(num)
    try:
        old = _signal.signal(signum, on_signal)
    except (ValueError, OSError, TypeError) as exc:
        return _fail(_errno.EINVAL, str(exc), None)
    _S.signals.setdefault(signum, old)
    return handler


# ---------------------------------------------------------------------------------------------
# sockets and filters


def mtcp_socket(mctx: mctx_t, domain: int, type: int, protocol: int = 0) -> int:
    """A monitoring socket: ``MOS_SOCK_MONITOR_STREAM`` (a listener, one flow socket per
    accepted connection: :meth:`Monitor.socket` with ``MONITOR_STREAM``) or
    ``MOS_SOCK_MONITOR_RAW`` (``MONITOR_RAW``). -1 with EACCES (bad context), EAFNOSUPPORT
    (domain other than AF_INET; AF_INET6 is accepted too, mostool tracks both), EINVAL (other
    types: mTCP endpoints are out of scope)."""
    ctx = _ctx(mctx)
    if ctx is None:
        return _fail(_errno.EACCES, "invalid or destroyed context")
    if domain not in (AF_INET, AF_INET6):
        return _fail(_errno.EAFNOSUPPORT, f"domain {domain} is not supported")
    if type == MOS_SOCK_MONITOR_STREAM:
        return ctx._new_sock(type, ctx.monitor.socket(MONITOR_STREAM))
    if type == MOS_SOCK_MONITOR_RAW:
        return ctx._new_sock(type, ctx.monitor.socket(MONITOR_RAW))
    return _fail(_errno.EINVAL, f"socket type {type} is not a monitoring socket type")


def mtcp_close(mctx: mctx_t, sock: int) -> int:
    """Close a socket. A listener stops accepting flows and its callbacks leave the flows it
    holds, which go on (:meth:`MonitorSocket.close`); a flow socket drops all of its flow's
    callbacks (:meth:`Flow.off`) and its number. Neither ends a flow. -1 with EACCES (bad
    context) or EBADF (no such socket)."""
    ctx = _ctx(mctx)
    if ctx is None:
        return _fail(_errno.EACCES, "invalid or destroyed context")
    rec = ctx._socks.get(sock) if isinstance(sock, int) else None
    if rec is None:
        return _fail(_errno.EBADF, f"socket {sock!r} is not open")
    try:
        if isinstance(rec.obj, Flow):
            flow = rec.obj
            if not flow.closed:
                for ev, hook, cb in list(flow.subs.entries):
                    flow.off(ev, hook, cb)
            ctx._flow_ids.pop(flow, None)
        else:
            rec.obj.close()
    except MosError as exc:
        return _mos_fail(exc)
    del ctx._socks[sock]
    return 0


def mtcp_bind_monitor_filter(mctx: mctx_t, sock: int, ft: monitor_filter | None) -> int:
    """Bind BPF filters (:meth:`MonitorSocket.bind_filter`): ``stream_syn_filter`` picks flows
    by their first SYN and ``stream_orphan_filter`` orphan packets (MONITOR_STREAM),
    ``raw_pkt_filter`` frames (MONITOR_RAW). ``ft`` None is not an error (man page). -1 with
    EACCES (bad context), EBADF (no such socket), ENOPROTOOPT (a flow socket), EINVAL (a filter
    libpcap refuses). mOS's restricted keyword list for stream filters is a mos_compat matter
    of the engine; here any libpcap filter is accepted."""
    ctx = _ctx(mctx)
    if ctx is None:
        return _fail(_errno.EACCES, "invalid or destroyed context")
    if ft is None:
        return 0
    rec = ctx._socks.get(sock) if isinstance(sock, int) else None
    if rec is None:
        return _fail(_errno.EBADF, f"socket {sock!r} is not open")
    if not isinstance(rec.obj, MonitorSocket):
        return _fail(_errno.ENOPROTOOPT, "filters bind to MOS_SOCK_MONITOR_STREAM or "
                                         "MOS_SOCK_MONITOR_RAW sockets")
    try:
        if rec.kind == MOS_SOCK_MONITOR_RAW:
            if ft.raw_pkt_filter is not None:
                rec.obj.bind_filter(raw=ft.raw_pkt_filter)
        else:
            rec.obj.bind_filter(syn=ft.stream_syn_filter, orphan=ft.stream_orphan_filter)
    except MosError as exc:
        return _mos_fail(exc)
    return 0


# ---------------------------------------------------------------------------------------------
# events


def _event(ev: int, what: str) -> EventType | tuple[int, str]:
    """An event_t -> mostool EventType, or (errno, message)."""
    if not isinstance(ev, int) or isinstance(ev, bool) or ev <= 0:
        return (_errno.EINVAL, f"{what}: invalid event {ev!r}")
    if ev < (1 << NUM_BEV):
        if ev & (ev - 1):
            return (_errno.EINVAL, f"{what}: {ev:#x} is not a single built-in event bit")
        if ev in _UNSUPPORTED_BUILTIN:
            return (_errno.ENOSYS, f"{what}: {_UNSUPPORTED_BUILTIN[ev]} is deprecated in mOS "
                                   "and never raised")
        return _BUILTIN[ev]
    found = _S.ude_by_id.get(ev)
    if found is None:
        return (_errno.EINVAL, f"{what}: event {ev} was not defined")
    return found


def _event_id(etype: EventType) -> int:
    if etype.builtin:
        return 1 << etype.id
    ev = _S.ude_ids.get(etype)
    if ev is None:
        ev = _S.next_ude
        _S.next_ude += 1
        _S.ude_ids[etype] = ev
        _S.ude_by_id[ev] = etype
    return ev


def _filter_wrapper(filt: Callable[..., Any]) -> Callable[..., bool]:
    """One mostool filter per C-style filter, so that mostool's (base, filter, arg) dedup
    applies."""
    found = _S.filters.get(filt)
    if found is not None:
        return found

    def mos_filter(handle: Any, side: Side, event: Any) -> bool:
        ctx = _ctx_of_handle(handle)
        etype = event.type
        ev = _S.ude_ids.get(etype, 0)
        if ctx is None:
            return bool(filt(None, -1, int(side), ev, etype.arg))
        sock = ctx._sock_of(handle, None)
        ctx._current.append(handle)
        try:
            return bool(filt(ctx, sock, int(side), ev, etype.arg))
        finally:
            ctx._current.pop()
    mos_filter.__name__ = getattr(filt, "__name__", "filter")
    mos_filter.__qualname__ = mos_filter.__name__
    _S.filters[filt] = mos_filter
    return mos_filter


def mtcp_define_event(event: int, filter: Callable[..., Any] | None,
                      arg: Any = None) -> int:
    """A user-defined event under ``event`` (built-in or UDE) raised when
    ``filter(mctx, sock, side, event, arg)`` is true (:func:`mostool.define_event`). The same
    (event, filter, arg) returns the same id.

    Returns the new ``event_t`` (ids count up from ``1 << 12`` as mOS's ``g_evid``); on failure
    ``MOS_NULL_EVENT`` (0) with EINVAL (no filter, unknown base event, a floating base event, a
    ``filter_arg`` with a length but no data) or ENOSYS (a deprecated mOS event as base). The
    man page says "returns 0 on success, -1 on failure"; mOS's code returns the event id and
    0 on failure, as here.
    """
    if filter is None or not callable(filter):
        return _fail(_errno.EINVAL, "mtcp_define_event: filter must be callable", 0)
    if isinstance(arg, filter_arg) and arg.len > 0 and arg.arg is None:
        return _fail(_errno.EINVAL, "mtcp_define_event: filter_arg has a length but no data", 0)
    base = _event(event, "mtcp_define_event")
    if isinstance(base, tuple):
        return _fail(base[0], base[1], 0)
    try:
        ude = mostool.define_event(base, _filter_wrapper(filter), arg,
                                   name=getattr(filter, "__name__", None))
    except MosError as exc:
        return _mos_fail(exc, 0)
    return _event_id(ude)


def mtcp_alloc_event(event: int) -> int:
    """A floating child of ``event`` for a multi-outcome filter: raised with
    ``mtcp_raise_event`` inside ``event``'s filter (:func:`mostool.alloc_event`). Returns its
    id, or ``MOS_NULL_EVENT`` with EINVAL for an unknown event. The parent must be a UDE
    (mostool's rule: only a UDE's filter can raise it); mOS also accepts a built-in parent,
    whose children can then never be raised."""
    parent = _event(event, "mtcp_alloc_event")
    if isinstance(parent, tuple):
        return _fail(parent[0], parent[1], 0)
    try:
        child = mostool.alloc_event(parent)
    except MosError as exc:
        return _mos_fail(exc, 0)
    return _event_id(child)


def mtcp_raise_event(mctx: mctx_t, event: int) -> int:
    """Raise a floating event from inside a UDE filter (:func:`mostool.raise_event`); its
    callbacks run right after the filter. -1 with EACCES (bad context), EINVAL (not an event
    from ``mtcp_alloc_event``), EPERM (not inside a filter)."""
    ctx = _ctx(mctx)
    if ctx is None:
        return _fail(_errno.EACCES, "invalid or destroyed context")
    child = _event(event, "mtcp_raise_event")
    if isinstance(child, tuple):
        return _fail(_errno.EINVAL, child[1])
    if not ctx._current:
        return _fail(_errno.EPERM, "mtcp_raise_event works only inside a UDE filter")
    try:
        mostool.raise_event(ctx._current[-1], child)
    except MosError as exc:
        return _mos_fail(exc)
    return 0


def mtcp_remove_ude(event: int) -> int:
    """mOS's stub: UDEs cannot be removed. Always -1/ENOSYS."""
    return _fail(_errno.ENOSYS, "UDEs cannot be removed")


def _registered(obj: MonitorSocket | Flow, etype: EventType, hook: Hook) -> bool:
    if isinstance(obj, MonitorSocket) and obj.kind == MONITOR_RAW:
        hook = Hook.NULL
    return any(e[0] is etype and e[1] == hook for e in obj.subs.entries)


def mtcp_register_callback(mctx: mctx_t, sock: int, event: int, hook: int,
                           cb: Callback | None) -> int:
    """Register ``cb(mctx, sock, side, event, filter_arg)`` for ``event`` at ``hook``
    (``MOS_NULL``, ``MOS_HK_RCV``, ``MOS_HK_SND``) on a listener (every flow it accepts from
    now on: :meth:`MonitorSocket.on`) or on one flow's socket (:meth:`Flow.on`). ``cb=None``
    de-registers (:meth:`MonitorSocket.off` / :meth:`Flow.off`). One callback per (socket,
    event, hook): registering again replaces it.

    Hook rules of mOS's code (``scalable_event.c``): ``CONN_START``, ``REXMIT``,
    ``TCP_STATE_CHANGE``, ``CONN_END`` only at ``MOS_HK_SND``/``MOS_HK_RCV`` (and REXMIT only
    at ``MOS_HK_RCV`` in mostool); ``CONN_NEW_DATA``, ``ORPHAN``, ``ERROR`` (and mostool's
    ``TIMEOUT``) only at ``MOS_NULL``; UDEs follow their built-in root. RAW sockets see only
    ``ON_PKT_IN``.

    Returns 0; -1 with EACCES (bad context), EINVAL (no such socket, as the man page; invalid
    event, hook or event/hook pair; de-registering what is not registered, where mOS returns -1
    without setting errno), EBADF (a flow that ended), ENOSYS (a deprecated mOS event).
    """
    ctx = _ctx(mctx)
    if ctx is None:
        return _fail(_errno.EACCES, "invalid or destroyed context")
    etype = _event(event, "mtcp_register_callback")
    if isinstance(etype, tuple):
        return _fail(etype[0], etype[1])
    h = _HOOKS.get(hook) if isinstance(hook, int) else None
    if h is None:
        return _fail(_errno.EINVAL, f"invalid hook point {hook!r}")
    rec = ctx._socks.get(sock) if isinstance(sock, int) else None
    if rec is None:
        return _fail(_errno.EINVAL, f"socket {sock!r} is not open")
    obj = rec.obj
    try:
        if cb is None:
            if not _registered(obj, etype, h):
                return _fail(_errno.EINVAL, f"no callback registered for event {event} at "
                                            f"this hook")
            obj.off(etype, h)
            return 0
        if not callable(cb):
            return _fail(_errno.EINVAL, "callback must be callable")
        listener = rec.id if isinstance(obj, MonitorSocket) else None
        wrapper = ctx._wrap(cb, event, None if etype.builtin else etype.arg, listener)
        listener_obj = obj.listener if isinstance(obj, Flow) else obj
        listener_obj.registration(etype, h, wrapper)      # validate before replacing
        if _registered(obj, etype, h):
            obj.off(etype, h)
        obj.on(etype, h, wrapper)
    except MosError as exc:
        return _mos_fail(exc)
    return 0


def mtcp_unregister_callback(mctx: mctx_t, sock: int, event: int, hook: int) -> int:
    """``mtcp_register_callback(mctx, sock, event, hook, None)`` (implemented in mOS, commented
    out of its header)."""
    return mtcp_register_callback(mctx, sock, event, hook, None)


# ---------------------------------------------------------------------------------------------
# callback-only calls: per-flow context, bytes, packets, names, options


def _running_ctx(mctx: Any) -> mctx_t | int:
    """The context if it can serve callback-only calls, else -1 (errno set): EACCES for a bad
    context, EPERM outside ``mtcp_app_join`` (mOS: not the mOS thread)."""
    ctx = _ctx(mctx)
    if ctx is None:
        return _fail(_errno.EACCES, "invalid or destroyed context")
    if not ctx._running:
        return _fail(_errno.EPERM,
                     "callback-only call outside mtcp_app_join (mOS: not the mOS thread)")
    return ctx


def mtcp_set_uctx(mctx: mctx_t, sock: int, uctx: Any) -> int:
    """Attach a user context to a flow socket (:attr:`Flow.uctx`) or a listener. mOS's version
    is void and silently ignores bad calls; this one returns 0, or -1 with EACCES (bad
    context), EPERM (outside ``mtcp_app_join``), EBADF (no such socket)."""
    ctx = _running_ctx(mctx)
    if isinstance(ctx, int):
        return ctx
    rec = ctx._socks.get(sock) if isinstance(sock, int) else None
    if rec is None:
        return _fail(_errno.EBADF, f"socket {sock!r} is not open")
    if isinstance(rec.obj, Flow):
        rec.obj.uctx = uctx
    else:
        rec.uctx = uctx
    return 0


def mtcp_get_uctx(mctx: mctx_t, sock: int) -> Any:
    """The user context of a flow socket or listener (``None`` if unset). The man page says
    ``int``; mOS's code returns ``void *``, as here. ``None`` with EACCES, EPERM (outside
    ``mtcp_app_join``) or EBADF on failure."""
    ctx = _running_ctx(mctx)
    if isinstance(ctx, int):
        return None
    rec = ctx._socks.get(sock) if isinstance(sock, int) else None
    if rec is None:
        return _fail(_errno.EBADF, f"socket {sock!r} is not open", None)
    return rec.obj.uctx if isinstance(rec.obj, Flow) else rec.uctx


def _flow_rec(ctx: mctx_t, sock: Any, wrong_type: int) -> Flow | int:
    rec = ctx._socks.get(sock) if isinstance(sock, int) else None
    if rec is None:
        return _fail(_errno.EBADF, f"socket {sock!r} is not open")
    if not isinstance(rec.obj, Flow):
        return _fail(wrong_type,
                     f"socket {sock} is a listener, not a flow (MOS_SOCK_MONITOR_STREAM_ACTIVE)")
    return rec.obj


def _side(side: Any) -> Side | None:
    if isinstance(side, int) and side in (MOS_SIDE_CLI, MOS_SIDE_SVR):
        return Side(side)
    return None


def _buffering(flow: Flow, side: Side) -> bool:
    return bool(flow.getsockopt(SOCKOPT_RCVBUF_CLI if side == Side.CLI else SOCKOPT_RCVBUF_SVR))


def _writable(buf: Any, length: int | None) -> tuple[memoryview, int] | None:
    try:
        mv = memoryview(buf).cast("B")
    except TypeError:
        return None
    if mv.readonly:
        return None
    n = len(mv) if length is None else length
    if not isinstance(n, int) or n < 0 or n > len(mv):
        return None
    return mv, n


def _peek_target(mctx: mctx_t, sock: int, side: Any, buf: Any, length: int | None,
                 listener_errno: int, name: str) -> int | tuple[Flow, Side, memoryview, int]:
    """What mtcp_peek and mtcp_ppeek check first: a running context, a flow socket (a listener
    fails with ``listener_errno``), a side, and a writable buffer of ``length`` bytes. Returns
    -1 (errno set) or (flow, side, buffer view, bytes wanted)."""
    ctx = _running_ctx(mctx)
    if isinstance(ctx, int):
        return ctx
    flow = _flow_rec(ctx, sock, listener_errno)
    if isinstance(flow, int):
        return flow
    s = _side(side)
    if s is None:
        return _fail(_errno.EINVAL, f"side must be MOS_SIDE_CLI or MOS_SIDE_SVR, not {side!r}")
    target = _writable(buf, length)
    if target is None:
        return _fail(_errno.EINVAL, f"buf must be a writable buffer of at least {name} bytes")
    return flow, s, target[0], target[1]


def mtcp_peek(mctx: mctx_t, sock: int, side: int, buf: Any, length: int | None = None
              ) -> int:
    """Copy up to ``length`` (default ``len(buf)``) in-order bytes of ``side``'s receive buffer
    (``MOS_SIDE_SVR`` = bytes the client sent) into ``buf`` from this socket's cursor, and
    advance the cursor (:meth:`Flow.peek`). Returns the count (0 when nothing new).

    When unread bytes were pushed out of the buffer it returns ``-(bytes lost)`` with ENODATA
    and moves the cursor to the oldest byte still held; the next call continues there (man
    page NOTES; mostool raises :class:`~mostool.BytesLost`). Other failures return -1 with
    EACCES (bad context), EPERM (outside ``mtcp_app_join``), EBADF (no such socket, a
    listener, a flow that ended), EINVAL (buffering disabled for that side, a side other than
    CLI/SVR, where mOS exits the process, or ``buf`` not a writable buffer of ``length``
    bytes).
    """
    target = _peek_target(mctx, sock, side, buf, length, _errno.EBADF, "length")
    if isinstance(target, int):
        return target
    flow, s, mv, n = target
    try:
        if not _buffering(flow, s):
            return _fail(_errno.EINVAL, "buffering is disabled for this side")
        data = flow.peek(s, n)
    except BytesLost as exc:
        return _fail(_errno.ENODATA, str(exc.args[0]), -exc.lost, exc.lost)
    except MosError as exc:
        return _mos_fail(exc)
    k = len(data)
    mv[:k] = data
    return k


def mtcp_ppeek(mctx: mctx_t, sock: int, side: int, buf: Any, count: int | None = None,
               off: int = 0) -> int:
    """Copy up to ``count`` bytes of ``side``'s receive buffer at stream offset ``off`` (0 = the
    first byte after the SYN) into ``buf``, moving no cursor (:meth:`Flow.ppeek`). Returns the
    count.

    -1 with EACCES (bad context; and, following mOS's code rather than its man page, buffering
    disabled for that side), EPERM (outside ``mtcp_app_join``), EBADF (no such socket or a
    flow that ended), ESOCKTNOSUPPORT (a listener), EINVAL (bad side, offset or buffer),
    ENODATA (no received byte at ``off``; mOS's code returns -1 there without setting errno).
    """
    target = _peek_target(mctx, sock, side, buf, count, _errno.ESOCKTNOSUPPORT, "count")
    if isinstance(target, int):
        return target
    flow, s, mv, n = target
    if not isinstance(off, int) or off < 0:
        return _fail(_errno.EINVAL, f"offset must be >= 0, not {off!r}")
    try:
        if not _buffering(flow, s):
            return _fail(_errno.EACCES, "buffering is disabled for this side")
        data = flow.ppeek(s, off, n)
    except MosError as exc:
        return _mos_fail(exc)
    if not data and n:
        return _fail(_errno.ENODATA, f"no received byte at offset {off}")
    k = len(data)
    mv[:k] = data
    return k


def _ethhdr(frame: bytes) -> ethhdr:
    def mac(b: bytes) -> str:
        return ":".join(f"{x:02x}" for x in b)
    return ethhdr(mac(frame[0:6]), mac(frame[6:12]), int.from_bytes(frame[12:14], "big"))


def _iphdr(data: bytes) -> iphdr | None:
    if not data:
        return None
    version = data[0] >> 4
    if version == 4 and len(data) >= 20:
        (vihl, tos, tot_len, ident, frag, ttl, proto, check, src, dst
         ) = struct.unpack_from("!BBHHHBBH4s4s", data)
        return iphdr(4, vihl & 15, tos, tot_len, ident, frag, ttl, proto, check,
                     str(ipaddress.IPv4Address(src)), str(ipaddress.IPv4Address(dst)))
    if version == 6 and len(data) >= 40:
        plen, nxt, hops = struct.unpack_from("!HBB", data, 4)
        return iphdr(6, 0, 0, 40 + plen, 0, 0, hops, nxt, 0,
                     str(ipaddress.IPv6Address(data[8:24])),
                     str(ipaddress.IPv6Address(data[24:40])))
    return None


def _tcphdr(data: bytes) -> tcphdr | None:
    if len(data) < 20:
        return None
    sport, dport, seq, ack, off_flags, window, check, urg = struct.unpack_from(
        "!HHIIHHHH", data)
    f = off_flags & 0xFF
    return tcphdr(sport, dport, seq, ack, off_flags >> 12, f & 1, f >> 1 & 1, f >> 2 & 1,
                  f >> 3 & 1, f >> 4 & 1, f >> 5 & 1, f >> 6 & 1, f >> 7 & 1, window, check, urg)


def _l3_offset(linktype: int, frame: bytes) -> int | None:
    """Where the IP header starts in a frame (Ethernet with VLAN tags, Linux SLL, raw IP)."""
    if linktype == 1:
        off, et = 14, int.from_bytes(frame[12:14], "big")
        while et in (0x8100, 0x88A8, 0x9100) and len(frame) >= off + 4:
            et = int.from_bytes(frame[off + 2:off + 4], "big")
            off += 4
        return off if et in (0x0800, 0x86DD) else None
    if linktype in (101, 228, 229, 12, 14):
        return 0
    if linktype == 113:
        return 16 if int.from_bytes(frame[14:16], "big") in (0x0800, 0x86DD) else None
    return None


def _fill_from_frame(p: pkt_info, linktype: int, frame: bytes, ts: float) -> None:
    """L2/L3 fields of a frame without a decoded TCP segment (RAW sockets, non-TCP orphans)."""
    p.ts = ts
    p.cur_ts = int(ts * 1000) & _M32
    p.in_ifidx = 0
    p.frame = bytes(frame)
    p.eth_len = len(frame)
    p.ethh = _ethhdr(frame) if linktype == 1 and len(frame) >= 14 else None
    off = _l3_offset(linktype, frame)
    p.iph = _iphdr(bytes(frame[off:])) if off is not None else None
    p.ip_len = p.iph.tot_len if p.iph else 0
    p.tcph = None
    p.payload = None
    p.offset = p.payloadlen = p.seq = p.ack_seq = p.window = 0


def _fill_from_packet(p: pkt_info, info: PacketInfo, flow: Flow | None) -> None:
    seg = info.seg
    frame = seg.buf
    p.ts = info.ts
    p.cur_ts = int(info.ts * 1000) & _M32
    p.in_ifidx = 0
    p.frame = bytes(frame)
    p.eth_len = len(frame)
    p.ethh = _ethhdr(frame) if seg.linktype == 1 and seg.ip_off >= 14 else None
    p.iph = _iphdr(info.ip_header)
    p.ip_len = p.iph.tot_len if p.iph else 0
    p.tcph = _tcphdr(info.tcp_header)
    p.payload = info.payload
    p.payloadlen = seg.wire_len
    p.seq, p.ack_seq, p.window = seg.seq, seg.ack, seg.window
    p.offset = 0
    if flow is not None and not flow.closed:
        rcv = Side(1 - int(info.direction)) if info.direction != Side.BOTH else None
        if rcv is not None:
            isn = flow.buf_info(rcv).init_seq
            if isn is not None:
                p.offset = (seg.seq - isn - 1 + (1 if seg.flags & 0x02 else 0)) & _M32


def mtcp_getlastpkt(mctx: mctx_t, sock: int, side: int, pinfo: pkt_info) -> int:
    """Fill ``pinfo`` with the packet that triggered the current callback
    (:meth:`Flow.last_packet`; for a listener or RAW socket, the orphan or raw frame being
    delivered). As mOS's code (without ``RECORDPKT_PER_STREAM``) the side argument does not
    select the packet. Returns 0; -1 with EACCES (bad context; and, following mOS's code,
    no packet at hand for a listener/RAW socket), EPERM (outside ``mtcp_app_join``), EBADF (no
    such socket, a flow that ended), ENODATA (no packet recorded for the flow), EINVAL (pinfo
    is not a :class:`pkt_info`)."""
    ctx = _running_ctx(mctx)
    if isinstance(ctx, int):
        return ctx
    rec = ctx._socks.get(sock) if isinstance(sock, int) else None
    if rec is None:
        return _fail(_errno.EBADF, f"socket {sock!r} is not open")
    if not isinstance(pinfo, pkt_info):
        return _fail(_errno.EINVAL, "pinfo must be a pkt_info")
    obj = rec.obj
    try:
        if isinstance(obj, Flow):
            _fill_from_packet(pinfo, obj.last_packet(), obj)
            return 0
        handle = ctx._current[-1] if ctx._current else None
        if handle is None:
            return _fail(_errno.EACCES, "no packet is being delivered to this socket")
        if isinstance(handle, Flow):                  # a flow callback asking its listener
            _fill_from_packet(pinfo, handle.last_packet(), handle)
            return 0
        pkt = handle.last_packet()
        if isinstance(pkt, PacketInfo):
            if rec.kind == MOS_SOCK_MONITOR_RAW:
                _fill_from_frame(pinfo, pkt.seg.linktype, pkt.seg.buf, pkt.ts)
            else:
                _fill_from_packet(pinfo, pkt, None)
        else:
            linktype, frame = pkt
            _fill_from_frame(pinfo, linktype, frame, ctx.monitor.now)
    except MosError as exc:
        return _mos_fail(exc)
    return 0


def mtcp_setlastpkt(mctx: mctx_t, sock: int, side: int, offset: int, data: bytes | None,
                    datalen: int, option: int) -> int:
    """Packet modification (``MOS_DROP``, ``MOS_OVERWRITE`` ...): mostool is a passive
    monitor. Always -1/ENOSYS."""
    return _fail(_errno.ENOSYS, "mostool never modifies or drops packets (passive monitor)")


def mtcp_sendpkt(mctx: mctx_t, sock: int, pkt: pkt_info) -> int:
    """Packet injection: -1/ENOSYS (passive monitor)."""
    return _fail(_errno.ENOSYS, "mostool never sends packets (passive monitor)")


def mtcp_reset_conn(mctx: mctx_t, sock: int) -> int:
    """Resetting a connection: -1/ENOSYS (passive monitor)."""
    return _fail(_errno.ENOSYS, "mostool never sends packets (passive monitor)")


def _fill_addr(addr: Any, index: int, value: sockaddr_in) -> bool:
    """Store ``value`` into ``addr`` (a sockaddr_in for index 0, or a list)."""
    if isinstance(addr, sockaddr_in) and index == 0:
        addr.sin_family, addr.sin_port, addr.sin_addr = \
            value.sin_family, value.sin_port, value.sin_addr
        return True
    if isinstance(addr, list):
        while len(addr) <= index:
            addr.append(sockaddr_in())
        if isinstance(addr[index], sockaddr_in):
            return _fill_addr(addr[index], 0, value)
        addr[index] = value
        return True
    return False


def _length(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int):
        return value
    if hasattr(value, "value"):
        return int(value.value)
    if isinstance(value, list) and value:
        return int(value[0])
    return None


def _store(out: Any, value: Any) -> bool:
    """Write an int through a C-style out-parameter (ctypes object or one-element list)."""
    if out is None:
        return False
    if hasattr(out, "value"):
        out.value = value
        return True
    if isinstance(out, list):
        if out:
            out[0] = value
        else:
            out.append(value)
        return True
    return False


def mtcp_getpeername(mctx: mctx_t, sock: int, addr: Any, addrlen: Any, side: int) -> int:
    """Fill ``addr`` with the endpoint of ``side`` (:meth:`Flow.peername`): a
    :class:`sockaddr_in` (or a list, whose first item is filled) for ``MOS_SIDE_CLI`` /
    ``MOS_SIDE_SVR``; for ``MOS_SIDE_BOTH`` a list that gets ``addr[MOS_SIDE_CLI]`` and
    ``addr[MOS_SIDE_SVR]``. ``addrlen`` may be ``None``; if given (int, ctypes or list) it must
    be ``16`` (``2 * 16`` for BOTH) as mOS checks. Returns 0; -1 with EACCES (bad context),
    EPERM (outside ``mtcp_app_join``), EBADF (no such socket or a flow that ended), ENOTCONN (a
    listener: no stream), EINVAL (bad side, ``addrlen`` or ``addr``)."""
    ctx = _running_ctx(mctx)
    if isinstance(ctx, int):
        return ctx
    flow = _flow_rec(ctx, sock, _errno.ENOTCONN)
    if isinstance(flow, int):
        return flow
    if side not in (MOS_SIDE_CLI, MOS_SIDE_SVR, MOS_SIDE_BOTH):
        return _fail(_errno.EINVAL, f"invalid side {side!r}")
    want = SOCKADDR_LEN * (2 if side == MOS_SIDE_BOTH else 1)
    given = _length(addrlen)
    if given is not None and given != want:
        return _fail(_errno.EINVAL, f"addrlen must be {want}, not {given}")
    try:
        names = cast(tuple[tuple[str, int], tuple[str, int]], flow.peername(Side.BOTH))
    except MosError as exc:
        return _mos_fail(exc)
    out = []
    for host, port in names:
        family = AF_INET6 if ":" in str(host) else AF_INET
        out.append(sockaddr_in(family, int(port), str(host)))
    if side == MOS_SIDE_BOTH:
        ok = isinstance(addr, list) and _fill_addr(addr, 0, out[0]) and \
            _fill_addr(addr, 1, out[1])
    else:
        ok = _fill_addr(addr, 0, out[side])
    if not ok:
        return _fail(_errno.EINVAL, "addr must be a sockaddr_in (or a list for MOS_SIDE_BOTH)")
    return 0


def mtcp_getsockname(mctx: mctx_t, sock: int, addr: Any, addrlen: Any) -> int:
    """Only for mTCP endpoint sockets in mOS: -1/ENOTSOCK for monitoring sockets, EACCES for
    a bad context."""
    if _ctx(mctx) is None:
        return _fail(_errno.EACCES, "invalid or destroyed context")
    return _fail(_errno.ENOTSOCK, "mtcp_getsockname works on mTCP endpoint sockets only")


def mtcp_getsockopt(mctx: mctx_t, sock: int, level: int, optname: int, optval: Any,
                    optlen: Any = None) -> int:
    """Read a ``SOL_MONSOCKET`` option of a flow socket into the out-parameter ``optval``:

    * ``MOS_TCP_STATE_CLI``/``_SVR``: the emulated TCP state (``TCP_*``; :meth:`Flow.state`)
      into a ``ctypes.c_int`` or one-element list;
    * ``MOS_INFO_CLIBUF``/``_SVRBUF``: a :class:`tcp_buf_info` (:meth:`Flow.buf_info`);
    * ``MOS_FRAGINFO_CLIBUF``/``_SVRBUF``: a list, filled with :class:`tcp_ring_fragment`
      (:meth:`Flow.frag_info`); ``optlen`` (ctypes or list) caps the count and receives it;
    * ``MOS_TIMESTAMP``: the flow's last packet time, microseconds mod 2**32.

    ``optlen`` may be ``None`` otherwise. Returns 0; -1 with EACCES (bad context), EPERM
    (outside ``mtcp_app_join``), EBADF (no such socket or a flow that ended), ENOTSOCK (a
    listener: mOS's code serves these options on flow sockets only), ENOSYS (another level or
    option, as the man page; mOS's code asserts), ENODATA (buffer info with buffering off, as
    mOS's code), EINVAL (``optval`` of the wrong kind).
    """
    ctx = _running_ctx(mctx)
    if isinstance(ctx, int):
        return ctx
    if not isinstance(sock, int) or sock not in ctx._socks:
        return _fail(_errno.EBADF, f"socket {sock!r} is not open")
    if level != SOL_MONSOCKET:
        return _fail(_errno.ENOSYS, f"level {level!r} is not implemented (use SOL_MONSOCKET)")
    flow = _flow_rec(ctx, sock, _errno.ENOTSOCK)
    if isinstance(flow, int):
        return flow
    side = Side.CLI if optname in (MOS_TCP_STATE_CLI, MOS_INFO_CLIBUF,
                                   MOS_FRAGINFO_CLIBUF) else Side.SVR
    try:
        if optname in (MOS_TCP_STATE_CLI, MOS_TCP_STATE_SVR):
            if not _store(optval, int(flow.state(side))):
                return _fail(_errno.EINVAL, "optval must be a ctypes int or a list")
            _store(optlen, 4)
        elif optname in (MOS_INFO_CLIBUF, MOS_INFO_SVRBUF):
            if not isinstance(optval, tcp_buf_info):
                return _fail(_errno.EINVAL, "optval must be a tcp_buf_info")
            if not _buffering(flow, side):
                return _fail(_errno.ENODATA, "buffering is disabled for this side")
            bi = flow.buf_info(side)
            optval.tcpbi_init_seq = ((bi.init_seq or 0) + 1) & _M32 \
                if bi.init_seq is not None else 0
            optval.tcpbi_last_byte_read = bi.last_byte_read
            optval.tcpbi_next_byte_expected = bi.next_byte_expected
            optval.tcpbi_last_byte_received = bi.last_byte_received
            _store(optlen, 16)
        elif optname in (MOS_FRAGINFO_CLIBUF, MOS_FRAGINFO_SVRBUF):
            if not isinstance(optval, list):
                return _fail(_errno.EINVAL, "optval must be a list")
            cap = _length(optlen)
            frags = flow.frag_info(side)
            if cap is not None:
                frags = frags[:max(cap, 0)]
            optval[:] = [tcp_ring_fragment(o, n) for o, n in frags]
            _store(optlen, len(optval))
        elif optname == MOS_TIMESTAMP:
            last = flow.conn.last_ts
            if not _store(optval, (int(last * 1000) & _M32) * 1000 & _M32):
                return _fail(_errno.EINVAL, "optval must be a ctypes int or a list")
            _store(optlen, 4)
        else:
            return _fail(_errno.ENOSYS, f"option {optname!r} cannot be read")
    except MosError as exc:
        return _mos_fail(exc)
    return 0


def mtcp_setsockopt(mctx: mctx_t, sock: int, level: int, optname: int, optval: Any,
                    optlen: Any = None) -> int:
    """Set a ``SOL_MONSOCKET`` option on a listener (flows accepted from now on) or a flow:

    * ``MOS_CLIBUF``/``MOS_SVRBUF``: receive-buffer size of that side, 0 = no buffering
      (:meth:`Flow.setsockopt` with ``SOCKOPT_RCVBUF_*``). The man page says it resizes;
      mOS 0.3's code only accepts 0 (``DISABLE_DYN_RESIZE``). mostool accepts any size, except
      under ``MonitorConfig(mos_compat=True)`` where a non-zero size fails with EINVAL as mOS.
    * ``MOS_FRAG_CLIBUF``/``_SVRBUF`` (suppressed in mOS): 0 only, same effect on a flow;
      a no-op on a listener (mOS's code).
    * ``MOS_CLIOVERLAP``/``MOS_SVROVERLAP``: ``MOS_OVERLAP_POLICY_FIRST`` or ``_LAST``.
    * ``MOS_STOP_MON``: stop monitoring ``MOS_SIDE_CLI``/``_SVR``/``_BOTH`` of a flow
      (:meth:`Flow.stop_monitoring`); EPERM on a listener.
    * ``MOS_SEQ_REMAP``: as mOS's code, -1/ENOSYS.

    ``optval`` is an int (or a ctypes int / one-element list); ``optlen`` is ignored. Returns
    0; -1 with EACCES (bad context), EBADF (no such socket or a flow that ended), ENOSYS
    (another level or option), EPERM, EINVAL (bad value).
    """
    ctx = _ctx(mctx)
    if ctx is None:
        return _fail(_errno.EACCES, "invalid or destroyed context")
    rec = ctx._socks.get(sock) if isinstance(sock, int) else None
    if rec is None:
        return _fail(_errno.EBADF, f"socket {sock!r} is not open")
    if level != SOL_MONSOCKET:
        return _fail(_errno.ENOSYS, f"level {level!r} is not implemented (use SOL_MONSOCKET)")
    value = _length(optval)
    if value is None:
        return _fail(_errno.EINVAL, f"optval must be an int, not {optval!r}")
    obj = rec.obj
    try:
        if optname in (MOS_CLIBUF, MOS_SVRBUF):
            if value < 0 or (value and ctx.monitor.config.mos_compat):
                return _fail(_errno.EINVAL, f"buffer size {value} refused"
                             + (" (mOS only accepts 0)" if value > 0 else ""))
            obj.setsockopt(_RCVBUF_OPT[optname], value)
        elif optname in (MOS_FRAG_CLIBUF, MOS_FRAG_SVRBUF):
            if value != 0:
                return _fail(_errno.EINVAL, "only 0 is accepted (suppressed option)")
            if isinstance(obj, Flow):
                obj.setsockopt(_RCVBUF_OPT[optname], 0)
        elif optname in (MOS_CLIOVERLAP, MOS_SVROVERLAP):
            if value not in (MOS_OVERLAP_POLICY_FIRST, MOS_OVERLAP_POLICY_LAST):
                return _fail(_errno.EINVAL, f"overlap policy {value} is not FIRST or LAST")
            obj.setsockopt(_OVERLAP_OPT[optname],
                           "first" if value == MOS_OVERLAP_POLICY_FIRST else "last")
        elif optname == MOS_STOP_MON:
            if value not in (MOS_SIDE_CLI, MOS_SIDE_SVR, MOS_SIDE_BOTH):
                return _fail(_errno.EINVAL, f"invalid side {value}")
            obj.setsockopt(SOCKOPT_STOP_MON, Side(value))
        else:
            return _fail(_errno.ENOSYS, f"option {optname!r} is not implemented")
    except MosError as exc:
        return _mos_fail(exc)
    return 0


# ---------------------------------------------------------------------------------------------
# time


def _seconds(timeout: Any) -> float | None:
    if isinstance(timeout, timeval):
        return timeout.tv_sec + timeout.tv_usec / 1e6
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        return float(timeout)
    return None


def mtcp_settimer(mctx: mctx_t, id: int, timeout: timeval | float,
                  cb: Callback | None) -> int:
    """Call ``cb(mctx, id, 0, 0, None)`` once, ``timeout`` (a :class:`timeval` or seconds) of
    packet time from now (:meth:`Monitor.settimer`); re-arm inside the callback for periodic
    work. Timers set before the run count from the first packet's time. mOS uses the wall
    clock. Returns 0; -1 with EACCES (bad context) or EINVAL (no timeout or callback, a
    negative timeout)."""
    ctx = _ctx(mctx)
    if ctx is None:
        return _fail(_errno.EACCES, "invalid or destroyed context")
    delay = _seconds(timeout)
    if delay is None or delay < 0 or cb is None or not callable(cb):
        return _fail(_errno.EINVAL, "mtcp_settimer needs a timeout >= 0 and a callback")

    def fire(timer_id: int) -> None:
        cb(ctx, id, 0, 0, None)
    fire.__name__ = getattr(cb, "__name__", "timer")
    try:
        ctx.monitor.settimer(delay, fire)
    except MosError as exc:
        return _mos_fail(exc)
    return 0


def mtcp_cb_get_ts(mctx: mctx_t) -> int:
    """The current packet time in microseconds, modulo 2**32 with mTCP's millisecond
    resolution (``TS_TO_USEC(cur_ts)``). 0 with EACCES (bad context) or EPERM (outside
    ``mtcp_app_join``)."""
    ctx = _running_ctx(mctx)
    if isinstance(ctx, int):
        return 0
    return (int(ctx.monitor.now * 1000) & _M32) * 1000 & _M32

