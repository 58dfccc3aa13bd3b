#!/usr/bin/env python3
"""The HTTP-request UDE of mOS's ``mtcp_define_event`` man page, runnable on a capture.

The man page's fragment, with the two functions it leaves to the reader::

    s = mtcp_socket(m, AF_INET, MOS_SOCK_MONITOR_STREAM, 0);
    ft.stream_syn_filter = "dst net 216.58 and dst port 80";
    mtcp_bind_monitor_filter(m, s, &ft);
    hev = mtcp_define_event(MOS_ON_CONN_NEW_DATA, IsHTTPRequest, NULL);

``IsHTTPRequest`` reads the bytes the client just sent (``mtcp_peek`` on MOS_SIDE_SVR: the
server's receive buffer holds client->server bytes) and is true when they start with an HTTP
method; ``OnHTTPRequest`` prints the request line. The callback is registered at MOS_NULL:
examples elsewhere register this event at MOS_HK_RCV, but mOS's code
(``mtcp_register_callback`` in core/src/scalable_event.c) refuses ON_CONN_NEW_DATA and its UDEs
at MOS_HK_SND/MOS_HK_RCV with EINVAL; new data is a MOS_NULL event. This port follows the code.

    python examples/mos/http_ude.py -r capture.pcap [--filter "dst port 80"]
"""

from __future__ import annotations

import argparse
import sys

from mostool.compat.mos import (
    AF_INET,
    MOS_NULL,
    MOS_NULL_EVENT,
    MOS_ON_CONN_NEW_DATA,
    MOS_SIDE_BOTH,
    MOS_SIDE_CLI,
    MOS_SIDE_SVR,
    MOS_SOCK_MONITOR_STREAM,
    mctx_t,
    monitor_filter,
    mtcp_app_join,
    mtcp_bind_monitor_filter,
    mtcp_create_context,
    mtcp_define_event,
    mtcp_destroy,
    mtcp_errmsg,
    mtcp_get_uctx,
    mtcp_getpeername,
    mtcp_init,
    mtcp_peek,
    mtcp_register_callback,
    mtcp_set_uctx,
    mtcp_socket,
    sockaddr_in,
)
from mostool.text import printable

METHODS = (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS", b"TRACE",
           b"PATCH")
g_requests: list[str] = []


def IsHTTPRequest(mctx: mctx_t, sock: int, side: int, event: int, arg: object) -> bool:
    """UDE filter: the new client->server bytes start with an HTTP method."""
    if side != MOS_SIDE_SVR:
        return False
    buf = bytearray(65536)
    data = b""
    while True:                                        # read everything new
        n = mtcp_peek(mctx, sock, side, buf, len(buf))
        if n <= 0:                                     # 0: nothing more; < 0: bytes lost
            break
        data += bytes(buf[:n])
    if not data:
        return False
    mtcp_set_uctx(mctx, sock, data)                    # for the callback
    method = data.split(b" ", 1)[0]
    return method in METHODS


def OnHTTPRequest(mctx: mctx_t, sock: int, side: int, event: int, arg: object) -> None:
    addrs = [sockaddr_in(), sockaddr_in()]
    if mtcp_getpeername(mctx, sock, addrs, 2 * 16, MOS_SIDE_BOTH) < 0:
        sys.stderr.write(f"mtcp_getpeername: {mtcp_errmsg()}\n")
        return
    data: bytes = mtcp_get_uctx(mctx, sock) or b""
    line = printable(data.split(b"\r\n", 1)[0], 512)   # capture bytes: never raw to a tty
    g_requests.append(line)
    print(f"{addrs[MOS_SIDE_CLI]} -> {addrs[MOS_SIDE_SVR]} {line}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Print every HTTP request line with a UDE "
                                "(the mtcp_define_event man page's example).")
    p.add_argument("-r", dest="files", action="append", metavar="FILE",
                   help="capture file to replay (repeat to merge several)")
    p.add_argument("-i", dest="interface", metavar="IFACE", help="capture live on IFACE")
    p.add_argument("-f", dest="conf", metavar="MOS_CONF", help="mOS configuration file")
    p.add_argument("--filter", default="dst port 80", metavar="BPF",
                   help='stream_syn_filter (default "dst port 80")')
    args = p.parse_args(argv)
    if sum(x is not None for x in (args.files, args.interface, args.conf)) != 1:
        p.error("give one of -r FILE, -i IFACE, -f MOS_CONF")
    conf: object = args.conf if args.conf else (
        {"source": args.files} if args.files else {"interface": args.interface})
    if mtcp_init(conf):  # type: ignore[arg-type]
        sys.stderr.write(f"http_ude: failed to initialize mtcp: {mtcp_errmsg()}\n")
        return 1
    m = mtcp_create_context(0)
    if m is None:
        sys.stderr.write(f"http_ude: {mtcp_errmsg()}\n")
        return 1

    # creates a passive monitoring socket with its scope
    s = mtcp_socket(m, AF_INET, MOS_SOCK_MONITOR_STREAM, 0)
    ft = monitor_filter()
    ft.stream_syn_filter = args.filter
    if mtcp_bind_monitor_filter(m, s, ft) < 0:
        sys.stderr.write(f"http_ude: bad filter: {mtcp_errmsg()}\n")
        return 1

    # defines a user-defined event that detects an HTTP request
    hev = mtcp_define_event(MOS_ON_CONN_NEW_DATA, IsHTTPRequest, None)
    if hev == MOS_NULL_EVENT:
        sys.stderr.write(f"mtcp_define_event: {mtcp_errmsg()}\n")
        return 1
    # ON_CONN_NEW_DATA (and UDEs on it) can be hooked only at MOS_NULL in mOS's code
    if mtcp_register_callback(m, s, hev, MOS_NULL, OnHTTPRequest) < 0:
        sys.stderr.write(f"mtcp_register_callback: {mtcp_errmsg()}\n")
        return 1

    status = 0 if mtcp_app_join(m) == 0 else 1
    if status:
        sys.stderr.write(f"http_ude: {mtcp_errmsg()}\n")
    mtcp_destroy()
    print(f"{len(g_requests)} HTTP request(s)")
    return status


if __name__ == "__main__":
    sys.exit(main())
