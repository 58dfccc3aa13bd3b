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

from socket import AF_INET, AF_INET6

from mostool.compat.mos.constants import (
    MOS_CHOMP,
    MOS_CLIBUF,
    MOS_CLIOVERLAP,
    MOS_DROP,
    MOS_ETH_HDR,
    MOS_FRAG_CLIBUF,
    MOS_FRAG_SVRBUF,
    MOS_FRAGINFO_CLIBUF,
    MOS_FRAGINFO_SVRBUF,
    MOS_HK_RCV,
    MOS_HK_SND,
    MOS_INFO_CLIBUF,
    MOS_INFO_SVRBUF,
    MOS_INSERT,
    MOS_IP_HDR,
    MOS_NULL,
    MOS_NULL_EVENT,
    MOS_ON_CONN_END,
    MOS_ON_CONN_NEW_DATA,
    MOS_ON_CONN_SETUP,
    MOS_ON_CONN_START,
    MOS_ON_DEBUG_MESSAGE,
    MOS_ON_ERROR,
    MOS_ON_ORPHAN,
    MOS_ON_PKT_IN,
    MOS_ON_PKT_OUT,
    MOS_ON_REXMIT,
    MOS_ON_TCP_STATE_CHANGE,
    MOS_ON_TIMEOUT,
    MOS_OVERLAP_CNT,
    MOS_OVERLAP_POLICY_FIRST,
    MOS_OVERLAP_POLICY_LAST,
    MOS_OVERWRITE,
    MOS_SEQ_REMAP,
    MOS_SIDE_BOTH,
    MOS_SIDE_CLI,
    MOS_SIDE_SVR,
    MOS_SOCK_EPOLL,
    MOS_SOCK_MONITOR_RAW,
    MOS_SOCK_MONITOR_STREAM,
    MOS_SOCK_MONITOR_STREAM_ACTIVE,
    MOS_SOCK_PIPE,
    MOS_SOCK_PROXY,
    MOS_SOCK_PROXY_LISTEN,
    MOS_SOCK_STREAM,
    MOS_SOCK_STREAM_LISTEN,
    MOS_SOCK_UNUSED,
    MOS_STOP_MON,
    MOS_SVRBUF,
    MOS_SVROVERLAP,
    MOS_TCP_HDR,
    MOS_TCP_PAYLOAD,
    MOS_TCP_STATE_CLI,
    MOS_TCP_STATE_SVR,
    MOS_TIMESTAMP,
    MOS_UPDATE_IP_CHKSUM,
    MOS_UPDATE_TCP_CHKSUM,
    SOL_MONSOCKET,
    TCP_CLOSE_WAIT,
    TCP_CLOSED,
    TCP_CLOSING,
    TCP_ESTABLISHED,
    TCP_FIN_WAIT_1,
    TCP_FIN_WAIT_2,
    TCP_LAST_ACK,
    TCP_LISTEN,
    TCP_SYN_RCVD,
    TCP_SYN_SENT,
    TCP_TIME_WAIT,
    event_t,
)
from mostool.compat.mos.context import mctx_t
from mostool.compat.mos.errors import _S as _S  # the process-wide state (tests read it)
from mostool.compat.mos.errors import (
    MtcpError,
    mtcp_errmsg,
    mtcp_errno,
    mtcp_perror,
    mtcp_raise_errors,
)
from mostool.compat.mos.events import (
    mtcp_alloc_event,
    mtcp_define_event,
    mtcp_raise_event,
    mtcp_register_callback,
    mtcp_remove_ude,
    mtcp_unregister_callback,
)
from mostool.compat.mos.flowcalls import (
    mtcp_get_uctx,
    mtcp_peek,
    mtcp_ppeek,
    mtcp_set_uctx,
)
from mostool.compat.mos.packets import (
    mtcp_getlastpkt,
    mtcp_reset_conn,
    mtcp_sendpkt,
    mtcp_setlastpkt,
)
from mostool.compat.mos.runtime import (
    mtcp_app_join,
    mtcp_core_affinitize,
    mtcp_create_context,
    mtcp_destroy,
    mtcp_destroy_context,
    mtcp_getconf,
    mtcp_init,
    mtcp_init_rss,
    mtcp_register_signal,
    mtcp_setconf,
)
from mostool.compat.mos.sockets import (
    mtcp_bind_monitor_filter,
    mtcp_close,
    mtcp_socket,
)
from mostool.compat.mos.sockopts import (
    mtcp_getpeername,
    mtcp_getsockname,
    mtcp_getsockopt,
    mtcp_setsockopt,
)
from mostool.compat.mos.structs import (
    ethhdr,
    filter_arg,
    filter_arg_t,
    iphdr,
    monitor_filter,
    monitor_filter_t,
    mtcp_conf,
    pkt_info,
    sockaddr_in,
    tcp_buf_info,
    tcp_ring_fragment,
    tcphdr,
    timeval,
)
from mostool.compat.mos.timers import (
    mtcp_cb_get_ts,
    mtcp_settimer,
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
