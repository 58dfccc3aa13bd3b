#!/usr/bin/env python3
"""midstat: the table of TCP connections in progress, with both emulated stacks' states.

A line-by-line port of mOS's samples/midstat/midstat.c to mostool's mOS facade. A monitoring
socket with buffering disabled tracks each connection from its first SYN (ON_CONN_START at
MOS_HK_SND) to its end (ON_CONN_END), follows both sides' state changes, and a timer prints
the table every second of packet time and re-arms itself.

    python examples/mos/midstat.py -r capture.pcap [-r more.pcap] [--interval 0.5]
    python examples/mos/midstat.py -i eth0
    python examples/mos/midstat.py -f mos.conf
"""

from __future__ import annotations

import argparse
import ctypes
import signal
import sys
from dataclasses import dataclass, field

from mostool.compat.mos import (
    AF_INET,
    MOS_CLIBUF,
    MOS_HK_RCV,
    MOS_HK_SND,
    MOS_ON_CONN_END,
    MOS_ON_CONN_START,
    MOS_ON_TCP_STATE_CHANGE,
    MOS_SIDE_BOTH,
    MOS_SIDE_CLI,
    MOS_SIDE_SVR,
    MOS_SOCK_MONITOR_STREAM,
    MOS_SVRBUF,
    MOS_TCP_STATE_CLI,
    MOS_TCP_STATE_SVR,
    SOL_MONSOCKET,
    mctx_t,
    mtcp_app_join,
    mtcp_conf,
    mtcp_create_context,
    mtcp_destroy,
    mtcp_destroy_context,
    mtcp_errmsg,
    mtcp_getconf,
    mtcp_getpeername,
    mtcp_getsockopt,
    mtcp_init,
    mtcp_perror,
    mtcp_register_callback,
    mtcp_register_signal,
    mtcp_setconf,
    mtcp_setsockopt,
    mtcp_settimer,
    mtcp_socket,
    sockaddr_in,
    timeval,
)

STATES = ("CLOSED", "LISTEN", "SYN_SENT", "SYN_RCVD", "ESTABLISHED", "FIN_WAIT_1",
          "FIN_WAIT_2", "CLOSE_WAIT", "CLOSING", "LAST_ACK", "TIME_WAIT")


@dataclass
class Connection:
    sock: int                                           # socket ID
    addrs: list[sockaddr_in] = field(default_factory=list)  # client and server addresses
    cli_state: int = 0                                  # TCP state of the client
    svr_state: int = 0                                  # TCP state of the server


g_max_cores = 1                                         # mostool runs one context
g_mctx: list[mctx_t] = []
g_sockq: list[list[Connection]] = [[]]                  # connections, per core
g_interval = timeval(1, 0)                              # printing period (packet time)


def sigint_handler(signum: int) -> None:
    for mctx in g_mctx:
        mtcp_destroy_context(mctx)


def find_connection(cpu: int, sock: int) -> Connection | None:
    for c in g_sockq[cpu]:
        if c.sock == sock:
            return c
    return None


def cb_creation(mctx: mctx_t, sock: int, side: int, events: int, arg: object) -> None:
    """A new connection: remember both endpoints."""
    c = Connection(sock)
    c.addrs = [sockaddr_in(), sockaddr_in()]
    if mtcp_getpeername(mctx, c.sock, c.addrs, 2 * 16, MOS_SIDE_BOTH) < 0:
        mtcp_perror("mtcp_getpeername")
        sys.exit(1)                                     # better to stop here and debug
    g_sockq[mctx.cpu].append(c)


def cb_destroy(mctx: mctx_t, sock: int, side: int, events: int, arg: object) -> None:
    c = find_connection(mctx.cpu, sock)
    if c is not None:
        g_sockq[mctx.cpu].remove(c)


def cb_st_chg(mctx: mctx_t, sock: int, side: int, events: int, arg: object) -> None:
    """A state change on either side: read that side's state."""
    c = find_connection(mctx.cpu, sock)
    if c is None:
        return
    state = ctypes.c_int()
    opt = MOS_TCP_STATE_CLI if side == MOS_SIDE_CLI else MOS_TCP_STATE_SVR
    if mtcp_getsockopt(mctx, c.sock, SOL_MONSOCKET, opt, state, ctypes.c_int(4)) < 0:
        mtcp_perror("mtcp_getsockopt")
        sys.exit(1)
    if side == MOS_SIDE_CLI:
        c.cli_state = state.value
    else:
        c.svr_state = state.value


def strstate(state: int) -> str:
    return STATES[state] if 0 <= state < len(STATES) else "-"


def cb_printstat(mctx: mctx_t, sock: int, side: int, events: int, arg: object) -> None:
    """Print the table, then set the timer for the next one."""
    print("Proto CPU Client Address        Client State Server Address        Server State")
    for i in range(g_max_cores):
        for c in g_sockq[i]:
            cli, svr = c.addrs[MOS_SIDE_CLI], c.addrs[MOS_SIDE_SVR]
            print(f"{'tcp':<5} {i:<3} {str(cli):<21} {strstate(c.cli_state):<12} "
                  f"{str(svr):<21} {strstate(c.svr_state):<12}".rstrip())
    sys.stdout.flush()
    if mtcp_settimer(mctx, sock, g_interval, cb_printstat):
        sys.stderr.write("Failed to register print timer\n")
        sys.exit(1)


def register_callbacks(mctx: mctx_t, sock: int) -> None:
    for event, hook, cb in ((MOS_ON_CONN_START, MOS_HK_SND, cb_creation),
                            (MOS_ON_CONN_END, MOS_HK_SND, cb_destroy),
                            (MOS_ON_TCP_STATE_CHANGE, MOS_HK_SND, cb_st_chg),
                            (MOS_ON_TCP_STATE_CHANGE, MOS_HK_RCV, cb_st_chg)):
        if mtcp_register_callback(mctx, sock, event, hook, cb):
            sys.stderr.write(f"Failed to register {cb.__name__}(): {mtcp_errmsg()}\n")
            sys.exit(1)
    # CPU 0 is in charge of printing stats
    if mctx.cpu == 0 and mtcp_settimer(mctx, sock, g_interval, cb_printstat):
        sys.stderr.write("Failed to register print timer\n")
        sys.exit(1)


def init_monitor(mctx: mctx_t) -> None:
    g_sockq[mctx.cpu] = []
    sock = mtcp_socket(mctx, AF_INET, MOS_SOCK_MONITOR_STREAM, 0)
    if sock < 0:
        sys.stderr.write(f"Failed to create monitor listening socket: {mtcp_errmsg()}\n")
        sys.exit(1)
    # disable socket buffers: midstat reads no bytes
    for opt, name in ((MOS_CLIBUF, "CLIBUF"), (MOS_SVRBUF, "SVRBUF")):
        if mtcp_setsockopt(mctx, sock, SOL_MONSOCKET, opt, 0, 4) == -1:
            sys.stderr.write(f"Could not disable {name}!\n")
    register_callbacks(mctx, sock)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Print the table of monitored TCP connections "
                                "(port of mOS's samples/midstat).")
    p.add_argument("-r", dest="files", action="append", metavar="FILE",
                   help="capture file to replay (repeat to merge several)")
    p.add_argument("-i", dest="interface", metavar="IFACE", help="capture live on IFACE")
    p.add_argument("-f", dest="conf", metavar="MOS_CONF", help="mOS configuration file")
    p.add_argument("-c", dest="cores", type=int, default=1, metavar="N",
                   help="number of cores (mostool runs one)")
    p.add_argument("--interval", type=float, default=1.0, metavar="SECONDS",
                   help="seconds of packet time between tables (default 1, as mOS)")
    args = p.parse_args(argv)
    if sum(x is not None for x in (args.files, args.interface, args.conf)) != 1:
        p.error("give one of -r FILE, -i IFACE, -f MOS_CONF")
    if args.interval <= 0:
        p.error("--interval must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    global g_max_cores, g_interval
    args = parse_args(argv)
    g_interval = timeval(int(args.interval), round(args.interval % 1 * 1_000_000))
    conf: object = args.conf if args.conf else (
        {"source": args.files} if args.files else {"interface": args.interface})
    if mtcp_init(conf):  # type: ignore[arg-type]
        sys.stderr.write(f"midstat: failed to initialize mtcp: {mtcp_errmsg()}\n")
        return 1
    # set the core limit
    g_max_cores = args.cores
    mcfg = mtcp_conf()
    mtcp_getconf(mcfg)
    mcfg.num_cores = g_max_cores
    if mtcp_setconf(mcfg):
        sys.stderr.write(f"midstat: {mtcp_errmsg()}\n")
        return 1
    mtcp_register_signal(signal.SIGINT, sigint_handler)
    for i in range(g_max_cores):
        mctx = mtcp_create_context(i)
        if mctx is None:
            sys.stderr.write(f"Failed to create mtcp context: {mtcp_errmsg()}\n")
            return 1
        g_mctx.append(mctx)
        init_monitor(mctx)
    # wait until mOS finishes (here: the end of the capture)
    status = 0
    for mctx in g_mctx:
        if mtcp_app_join(mctx):
            sys.stderr.write(f"midstat: {mtcp_errmsg()}\n")
            status = 1
    mtcp_destroy()
    return status


if __name__ == "__main__":
    sys.exit(main())
