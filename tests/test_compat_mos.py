"""mostool.compat.mos: every mOS monitoring call's success path and documented errors, and the
ported mOS samples (examples/mos/) on the bundled captures."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from builders import CLI, SVR, Scenario, udp_frame, write_pcap

import mostool.compat.mos as mos
from mostool.compat.mos import (
    AF_INET,
    AF_INET6,
    MOS_CLIBUF,
    MOS_CLIOVERLAP,
    MOS_FRAG_CLIBUF,
    MOS_FRAG_SVRBUF,
    MOS_FRAGINFO_SVRBUF,
    MOS_HK_RCV,
    MOS_HK_SND,
    MOS_INFO_SVRBUF,
    MOS_NULL,
    MOS_NULL_EVENT,
    MOS_ON_CONN_END,
    MOS_ON_CONN_NEW_DATA,
    MOS_ON_CONN_START,
    MOS_ON_ORPHAN,
    MOS_ON_PKT_IN,
    MOS_ON_PKT_OUT,
    MOS_ON_REXMIT,
    MOS_ON_TCP_STATE_CHANGE,
    MOS_OVERLAP_POLICY_LAST,
    MOS_SEQ_REMAP,
    MOS_SIDE_BOTH,
    MOS_SIDE_CLI,
    MOS_SIDE_SVR,
    MOS_SOCK_MONITOR_RAW,
    MOS_SOCK_MONITOR_STREAM,
    MOS_SOCK_STREAM,
    MOS_STOP_MON,
    MOS_SVRBUF,
    MOS_SVROVERLAP,
    MOS_TCP_STATE_CLI,
    MOS_TCP_STATE_SVR,
    MOS_TIMESTAMP,
    SOL_MONSOCKET,
    TCP_ESTABLISHED,
    TCP_SYN_RCVD,
    TCP_SYN_SENT,
    MtcpError,
    filter_arg,
    mctx_t,
    monitor_filter,
    mtcp_alloc_event,
    mtcp_app_join,
    mtcp_bind_monitor_filter,
    mtcp_cb_get_ts,
    mtcp_close,
    mtcp_conf,
    mtcp_core_affinitize,
    mtcp_create_context,
    mtcp_define_event,
    mtcp_destroy,
    mtcp_destroy_context,
    mtcp_errmsg,
    mtcp_errno,
    mtcp_get_uctx,
    mtcp_getconf,
    mtcp_getlastpkt,
    mtcp_getpeername,
    mtcp_getsockname,
    mtcp_getsockopt,
    mtcp_init,
    mtcp_init_rss,
    mtcp_peek,
    mtcp_perror,
    mtcp_ppeek,
    mtcp_raise_errors,
    mtcp_raise_event,
    mtcp_register_callback,
    mtcp_register_signal,
    mtcp_remove_ude,
    mtcp_reset_conn,
    mtcp_sendpkt,
    mtcp_set_uctx,
    mtcp_setconf,
    mtcp_setlastpkt,
    mtcp_setsockopt,
    mtcp_settimer,
    mtcp_socket,
    mtcp_unregister_callback,
    pkt_info,
    sockaddr_in,
    tcp_buf_info,
    timeval,
)
from mostool.events.types import TcpState

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "mos"
REQUEST = b"GET /index.html HTTP/1.1\r\nHost: example\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


@pytest.fixture(autouse=True)
def _clean_state() -> Iterator[None]:
    mtcp_destroy()
    yield
    mtcp_raise_errors(False)
    mtcp_destroy()


def http_flow(client: str = "10.0.0.1:40000", server: str = "10.0.0.2:80", **kw: Any
              ) -> Scenario:
    sc = Scenario(client, server, **kw)
    sc.handshake()
    sc.send(CLI, REQUEST)
    sc.send(SVR, RESPONSE)
    sc.close()
    return sc


def start(frames: list[Any], **conf: Any) -> mctx_t:
    assert mtcp_init({"source": frames, **conf}) == 0
    ctx = mtcp_create_context(0)
    assert ctx is not None
    return ctx


def listener(ctx: mctx_t, syn: str | None = None) -> int:
    s = mtcp_socket(ctx, AF_INET, MOS_SOCK_MONITOR_STREAM, 0)
    assert s >= 0
    if syn is not None:
        assert mtcp_bind_monitor_filter(ctx, s, monitor_filter(stream_syn_filter=syn)) == 0
    return s


def fails(result: Any, err: int, value: Any = -1) -> None:
    assert result == value
    assert mtcp_errno() == err, (mtcp_errno(), mtcp_errmsg())


def in_callback(frames: list[Any], event: int, hook: int, body: Callable[..., Any],
                **conf: Any) -> list[Any]:
    """Run ``body(mctx, sock, side, event, arg)`` for every ``event`` at ``hook`` of every flow;
    returns what it returned."""
    mtcp_destroy()
    ctx = start(frames, **conf)
    s = listener(ctx)
    out: list[Any] = []
    assert mtcp_register_callback(
        ctx, s, event, hook, lambda *a: out.append(body(*a))) == 0, mtcp_errmsg()
    assert mtcp_app_join(ctx) == 0
    return out


# ---------------------------------------------------------------------------------------------
# constants


def test_constants_have_mos_values() -> None:
    assert (mos.MOS_NULL, mos.MOS_HK_RCV, mos.MOS_HK_SND) == (1 << 29, 1 << 30, 1 << 31)
    bits = [mos.MOS_ON_PKT_IN, mos.MOS_ON_PKT_OUT, mos.MOS_ON_CONN_START, mos.MOS_ON_CONN_SETUP,
            mos.MOS_ON_CONN_NEW_DATA, mos.MOS_ON_ERROR, mos.MOS_ON_TIMEOUT,
            mos.MOS_ON_TCP_STATE_CHANGE, mos.MOS_ON_ORPHAN, mos.MOS_ON_REXMIT,
            mos.MOS_ON_CONN_END, mos.MOS_ON_DEBUG_MESSAGE]
    assert bits == [1 << i for i in range(12)]
    assert (mos.MOS_SIDE_CLI, mos.MOS_SIDE_SVR, mos.MOS_SIDE_BOTH) == (0, 1, 2)
    assert (mos.MOS_SOCK_MONITOR_STREAM, mos.MOS_SOCK_MONITOR_STREAM_ACTIVE,
            mos.MOS_SOCK_MONITOR_RAW) == (3, 6, 7)
    assert mos.SOL_MONSOCKET == 0xFFFE
    opts = [mos.MOS_FRAGINFO_CLIBUF, mos.MOS_FRAGINFO_SVRBUF, mos.MOS_INFO_CLIBUF,
            mos.MOS_INFO_SVRBUF, mos.MOS_TCP_STATE_CLI, mos.MOS_TCP_STATE_SVR, mos.MOS_TIMESTAMP,
            None, mos.MOS_CLIBUF, mos.MOS_SVRBUF, mos.MOS_SEQ_REMAP, mos.MOS_STOP_MON,
            mos.MOS_FRAG_CLIBUF, mos.MOS_FRAG_SVRBUF, mos.MOS_CLIOVERLAP, mos.MOS_SVROVERLAP]
    assert [o for o in opts if o is not None] == [i for i in range(1, 17) if i != 8]
    assert (mos.MOS_OVERLAP_POLICY_FIRST, mos.MOS_OVERLAP_POLICY_LAST) == (0, 1)
    for state in TcpState:
        assert getattr(mos, f"TCP_{state.name}") == int(state)
    assert (mos.MOS_DROP, mos.MOS_OVERWRITE, mos.MOS_INSERT) == (1 << 6, 1 << 7, 1 << 9)


def test_star_import_exports_the_api() -> None:
    namespace: dict[str, Any] = {}
    exec("from mostool.compat.mos import *", namespace)
    names = set(mos.__all__)
    assert names <= set(namespace)
    for name in ("mtcp_init", "mtcp_socket", "mtcp_peek", "MOS_ON_CONN_NEW_DATA", "pkt_info"):
        assert name in names
    assert all(hasattr(mos, n) for n in names)


# ---------------------------------------------------------------------------------------------
# init and contexts


def test_init_with_dict_maps_mos_keys(tmp_path: Path) -> None:
    path = tmp_path / "c.pcap"
    write_pcap(str(path), http_flow().frames)
    assert mtcp_init({"source": str(path), "rmem_size": 4096, "tcp_timeout": 30,
                      "tcp_tw_interval": 2, "max_concurrency": 10, "midstream": True}) == 0
    conf = mtcp_conf()
    assert mtcp_getconf(conf) == 0
    assert (conf.num_cores, conf.rcvbuf_size, conf.tcp_timeout, conf.tcp_timewait,
            conf.max_concurrency) == (1, 4096, 30, 2, 10)
    ctx = mtcp_create_context(0)
    assert ctx is not None and ctx.cpu == 0
    assert ctx.monitor.config.midstream is True
    listener(ctx)
    assert mtcp_app_join(ctx) == 0
    assert ctx.stats["flows"] == 1


def test_init_with_mos_conf_file(tmp_path: Path) -> None:
    pcap = tmp_path / "c.pcap"
    write_pcap(str(pcap), http_flow().frames)
    conf = tmp_path / "mos.conf"
    conf.write_text(f"""
############### mOS configuration ###############
application {{
    type = monitor
    run = midstat
    core_mask = 0x0001
}}
mos {{
    forward = 1
    nb_mem_channels = 4
    rmem_size = 8192          # bytes
    tcp_timeout = -1
    tcp_tw_interval = 0
    no_ring_buffers = 0
    nic_forward_table {{
        dpdk0 dpdk1
    }}
    source = {pcap}
}}
""")
    assert mtcp_init(str(conf)) == 0
    c = mtcp_conf()
    mtcp_getconf(c)
    assert (c.rcvbuf_size, c.tcp_timeout) == (8192, -1)
    ctx = mtcp_create_context(0)
    assert ctx is not None
    listener(ctx)
    assert mtcp_app_join(ctx) == 0 and ctx.stats["flows"] == 1


def test_init_netdev_names_interfaces(tmp_path: Path) -> None:
    conf = tmp_path / "mos.conf"
    conf.write_text("mos {\n netdev {\n  eth7 0x0001\n }\n no_ring_buffers = 1\n}\n")
    assert mtcp_init(conf) == 0
    assert mos._S.conf is not None
    assert mos._S.conf.interfaces == ["eth7"]
    assert mos._S.conf.config.rcvbuf == 0


def test_init_errors(tmp_path: Path) -> None:
    fails(mtcp_init(str(tmp_path / "missing.conf")), errno.ENOENT)
    fails(mtcp_init({"source": str(tmp_path / "missing.pcap")}), errno.ENOENT)
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"this is not a capture file at all")
    fails(mtcp_init({"source": str(junk)}), errno.EINVAL)
    fails(mtcp_init({"source": [], "bogus_key": 1}), errno.EINVAL)
    fails(mtcp_init({"source": [], "interface": "eth0"}), errno.EINVAL)
    fails(mtcp_init({"source": [], "rmem_size": -5}), errno.EINVAL)
    fails(mtcp_init(42), errno.EINVAL)  # type: ignore[arg-type]
    bad = tmp_path / "bad.conf"
    bad.write_text("mos {\n rmem_size 8192\n}\n")
    fails(mtcp_init(bad), errno.EINVAL)
    assert mtcp_init({"source": []}) == 0
    assert mtcp_create_context(0) is not None
    fails(mtcp_init({"source": []}), errno.EBUSY)


def test_getconf_setconf() -> None:
    c = mtcp_conf()
    fails(mtcp_getconf(c), errno.EPERM)
    fails(mtcp_setconf(c), errno.EPERM)
    assert mtcp_init({"source": []}) == 0
    fails(mtcp_getconf("conf"), errno.EINVAL)  # type: ignore[arg-type]
    fails(mtcp_setconf("conf"), errno.EINVAL)  # type: ignore[arg-type]
    assert mtcp_getconf(c) == 0
    c.rcvbuf_size, c.tcp_timeout, c.tcp_timewait = 0, -1, 3
    assert mtcp_setconf(c) == 0
    ctx = mtcp_create_context(0)
    assert ctx is not None
    cfg = ctx.monitor.config
    assert (cfg.rcvbuf, cfg.idle_timeout, cfg.time_wait) == (0, None, 3.0)
    c.num_cores = 4
    fails(mtcp_setconf(c), errno.EINVAL)
    c.num_cores, c.max_concurrency = 1, 0
    fails(mtcp_setconf(c), errno.EINVAL)


def test_create_and_destroy_context() -> None:
    fails(mtcp_create_context(0), errno.EPERM, None)
    assert mtcp_init({"source": []}) == 0
    fails(mtcp_create_context(1), errno.EINVAL, None)
    ctx = mtcp_create_context(0)
    assert isinstance(ctx, mctx_t)
    fails(mtcp_create_context(0), errno.EEXIST, None)
    assert mtcp_destroy_context(ctx) == 0
    fails(mtcp_destroy_context(ctx), errno.EACCES)
    fails(mtcp_socket(ctx, AF_INET, MOS_SOCK_MONITOR_STREAM, 0), errno.EACCES)
    assert mtcp_create_context(0) is not None          # the core is free again
    assert mtcp_destroy() == 0
    fails(mtcp_create_context(0), errno.EPERM, None)


def test_destroy_context_inside_the_run_stops_it() -> None:
    sc = http_flow()
    ctx = start(sc.frames)
    s = listener(ctx)
    seen: list[int] = []
    ends: list[int] = []

    def on_pkt(mctx: mctx_t, sock: int, side: int, ev: int, arg: Any) -> None:
        seen.append(sock)
        if len(seen) == 2:
            assert mtcp_destroy_context(mctx) == 0

    def on_end(mctx: mctx_t, sock: int, side: int, ev: int, arg: Any) -> None:
        ends.append(mtcp_get_uctx(mctx, sock) is None)  # calls still work while ending
    assert mtcp_register_callback(ctx, s, MOS_ON_PKT_IN, MOS_HK_RCV, on_pkt) == 0
    assert mtcp_register_callback(ctx, s, MOS_ON_CONN_END, MOS_HK_RCV, on_end) == 0
    assert mtcp_app_join(ctx) == 0
    assert len(seen) == 2 and ends == [True]
    assert ctx.stats["packets"] == 2
    fails(mtcp_app_join(ctx), errno.EACCES)


def test_signal_handler_can_stop_the_run() -> None:
    ctx = start(http_flow().frames)
    s = listener(ctx)
    got: list[int] = []

    def handler(signum: int) -> None:
        got.append(signum)
        mtcp_destroy_context(ctx)
    assert mtcp_register_signal(signal.SIGUSR1, handler) is handler
    packets: list[int] = []

    def on_pkt(*args: Any) -> None:
        packets.append(1)
        if len(packets) == 1:
            os.kill(os.getpid(), signal.SIGUSR1)
    mtcp_register_callback(ctx, s, MOS_ON_PKT_IN, MOS_HK_RCV, on_pkt)
    assert mtcp_app_join(ctx) == 0
    assert got == [signal.SIGUSR1]
    assert ctx.stats["packets"] < len(http_flow().frames)
    fails(mtcp_register_signal(signal.SIGUSR1, None), errno.EINVAL, None)
    fails(mtcp_register_signal(100000, handler), errno.EINVAL, None)
    mtcp_destroy()
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL


def test_mtcp_destroy_inside_the_run_takes_effect_after_it() -> None:
    ctx = start(http_flow().frames)
    s = listener(ctx)
    mtcp_register_callback(ctx, s, MOS_ON_CONN_START, MOS_HK_SND,
                           lambda *a: mtcp_destroy())
    assert mtcp_app_join(ctx) == 0
    fails(mtcp_getconf(mtcp_conf()), errno.EPERM)


def test_app_join_errors(capsys: pytest.CaptureFixture[str]) -> None:
    fails(mtcp_app_join(None), errno.EACCES)  # type: ignore[arg-type]
    assert mtcp_init({}) == 0
    ctx = mtcp_create_context(0)
    fails(mtcp_app_join(ctx), errno.EINVAL)           # no source
    mtcp_destroy()
    ctx = start(http_flow().frames)
    s = listener(ctx)

    def broken(*args: Any) -> None:
        raise RuntimeError("boom")
    mtcp_register_callback(ctx, s, MOS_ON_CONN_START, MOS_HK_SND, broken)
    assert mtcp_app_join(ctx) == 0
    assert "1 callback/filter error(s)" in capsys.readouterr().err
    fails(mtcp_app_join(ctx), errno.EALREADY)


def test_app_join_live_interface_errors() -> None:
    assert mtcp_init({"interface": ["eth0", "eth1"]}) == 0
    ctx = mtcp_create_context(0)
    fails(mtcp_app_join(ctx), errno.EINVAL)             # mostool.live takes one interface
    mtcp_destroy()
    assert mtcp_init({"interface": "mostool-no-such-if0"}) == 0
    ctx = mtcp_create_context(0)
    assert mtcp_app_join(ctx) == -1
    try:
        import mostool.live  # noqa: F401
    except ImportError:
        assert mtcp_errno() == errno.ENOSYS
    else:
        assert mtcp_errno() in (errno.ENODEV, errno.EPERM, errno.EIO), mtcp_errmsg()
    assert "\n" not in mtcp_errmsg()


def test_affinitize_and_endpoint_calls() -> None:
    assert mtcp_core_affinitize(0) == 0
    fails(mtcp_core_affinitize(3), errno.EINVAL)
    fails(mtcp_init_rss(None, 0, 1, 0, 80), errno.ENOSYS)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# sockets and filters


def test_socket_types_and_errors() -> None:
    ctx = start([])
    a = mtcp_socket(ctx, AF_INET, MOS_SOCK_MONITOR_STREAM, 0)
    b = mtcp_socket(ctx, AF_INET, MOS_SOCK_MONITOR_RAW, 0)
    c = mtcp_socket(ctx, AF_INET6, MOS_SOCK_MONITOR_STREAM, 0)
    assert len({a, b, c}) == 3 and min(a, b, c) >= 0
    fails(mtcp_socket(ctx, 17, MOS_SOCK_MONITOR_STREAM, 0), errno.EAFNOSUPPORT)
    fails(mtcp_socket(ctx, AF_INET, MOS_SOCK_STREAM, 0), errno.EINVAL)
    fails(mtcp_socket("ctx", AF_INET, MOS_SOCK_MONITOR_STREAM, 0), errno.EACCES)


def test_close_listener_and_flow_socket() -> None:
    sc = http_flow()
    ctx = start(sc.frames)
    s = listener(ctx)
    s2 = listener(ctx)
    seen: list[int] = []

    def on_pkt(mctx: mctx_t, sock: int, side: int, ev: int, arg: Any) -> None:
        seen.append(sock)
        if len(seen) == 3:
            assert mtcp_close(mctx, sock) == 0        # this flow socket: no more callbacks
            fails(mtcp_close(mctx, sock), errno.EBADF)
    mtcp_register_callback(ctx, s, MOS_ON_PKT_IN, MOS_HK_RCV, on_pkt)
    assert mtcp_close(ctx, s2) == 0
    fails(mtcp_close(ctx, s2), errno.EBADF)
    fails(mtcp_close(ctx, 999), errno.EBADF)
    fails(mtcp_close(None, s), errno.EACCES)  # type: ignore[arg-type]
    assert mtcp_app_join(ctx) == 0
    assert len(seen) == 3 and len(set(seen)) == 1 and seen[0] not in (s, s2)
    assert ctx.stats["flows"] == 1                       # the flow went on
    assert mtcp_close(ctx, s) == 0


def test_bind_monitor_filter_picks_flows() -> None:
    f80, f8080 = http_flow(), http_flow("10.0.0.1:40001", "10.0.0.2:8080")
    frames = sorted(f80.frames + f8080.frames, key=lambda f: f[0])
    ctx = start(frames)
    s = listener(ctx, syn="tcp dst port 8080")
    peers: list[int] = []

    def on_start(mctx: mctx_t, sock: int, side: int, ev: int, arg: Any) -> None:
        addr = sockaddr_in()
        assert mtcp_getpeername(mctx, sock, addr, 16, MOS_SIDE_SVR) == 0
        peers.append(addr.sin_port)
    mtcp_register_callback(ctx, s, MOS_ON_CONN_START, MOS_HK_SND, on_start)
    assert mtcp_app_join(ctx) == 0
    assert peers == [8080]


def test_bind_monitor_filter_errors() -> None:
    ctx = start(http_flow().frames)
    s = listener(ctx)
    assert mtcp_bind_monitor_filter(ctx, s, None) == 0
    fails(mtcp_bind_monitor_filter(ctx, s, monitor_filter("tcp port banana")), errno.EINVAL)
    assert "banana" in mtcp_errmsg() or mtcp_errmsg()
    fails(mtcp_bind_monitor_filter(ctx, 99, monitor_filter("tcp")), errno.EBADF)
    fails(mtcp_bind_monitor_filter(None, s, monitor_filter("tcp")), errno.EACCES)  # type: ignore[arg-type]
    results: list[int] = []
    mtcp_register_callback(ctx, s, MOS_ON_CONN_START, MOS_HK_SND, lambda m, sock, *a: (
        results.append(mtcp_bind_monitor_filter(m, sock, monitor_filter("tcp"))),
        results.append(mtcp_errno())))
    assert mtcp_app_join(ctx) == 0
    assert results == [-1, errno.ENOPROTOOPT]


def test_monitor_filter_is_a_union() -> None:
    ft = monitor_filter()
    ft.raw_pkt_filter = "udp"
    assert ft.stream_syn_filter == "udp"
    assert monitor_filter(raw_pkt_filter="icmp").stream_syn_filter == "icmp"
    with pytest.raises(ValueError):
        monitor_filter(stream_syn_filter="tcp", raw_pkt_filter="udp")


def test_orphan_filter_and_orphan_callbacks() -> None:
    sc = Scenario("10.0.0.1:40000", "10.0.0.2:80")
    sc.send(CLI, b"midstream")                          # no handshake: an orphan
    sc2 = Scenario("10.0.0.1:40001", "10.0.0.2:25")
    sc2.send(CLI, b"mail")
    ctx = start(sorted(sc.frames + sc2.frames, key=lambda f: f[0]))
    s = listener(ctx)
    assert mtcp_bind_monitor_filter(ctx, s, monitor_filter(stream_orphan_filter="port 25")) == 0
    got: list[tuple[int, int, str]] = []

    def on_orphan(mctx: mctx_t, sock: int, side: int, ev: int, arg: Any) -> None:
        p = pkt_info()
        assert mtcp_getlastpkt(mctx, sock, side, p) == 0
        assert p.tcph is not None and p.iph is not None
        got.append((sock, side, f"{p.iph.daddr}:{p.tcph.dest} {p.payload!r}"))
    assert mtcp_register_callback(ctx, s, MOS_ON_ORPHAN, MOS_NULL, on_orphan) == 0
    filtered: list[tuple[int, int]] = []

    def is_mail(mctx: mctx_t, sock: int, side: int, ev: int, arg: Any) -> bool:
        filtered.append((sock, side))
        return True
    mail = mtcp_define_event(MOS_ON_ORPHAN, is_mail, None)
    assert mtcp_register_callback(ctx, s, mail, MOS_NULL, lambda *a: None) == 0
    assert mtcp_app_join(ctx) == 0
    assert got == [(s, MOS_SIDE_BOTH, "10.0.0.2:25 b'mail'")]
    assert filtered == [(s, MOS_SIDE_BOTH)]


def test_raw_socket_sees_every_packet_l2_l3_only() -> None:
    sc = http_flow()
    dns = udp_frame("10.0.0.9:53", "10.0.0.1:5353", b"dns")
    frames = sc.frames + [(sc.now, 1, dns, len(dns))]
    ctx = start(frames)
    r = mtcp_socket(ctx, AF_INET, MOS_SOCK_MONITOR_RAW, 0)
    assert mtcp_bind_monitor_filter(ctx, r, monitor_filter(raw_pkt_filter="udp or tcp")) == 0
    got: list[tuple[int, int, int, bool]] = []

    def on_pkt(mctx: mctx_t, sock: int, side: int, ev: int, arg: Any) -> None:
        p = pkt_info()
        assert mtcp_getlastpkt(mctx, sock, side, p) == 0
        assert p.ethh is not None and p.ethh.h_proto == 0x0800 and p.iph is not None
        got.append((sock, side, p.iph.protocol, p.tcph is None))
    assert mtcp_register_callback(ctx, r, MOS_ON_PKT_IN, MOS_NULL, on_pkt) == 0
    assert mtcp_app_join(ctx) == 0
    assert len(got) == len(frames)
    assert {g[0] for g in got} == {r} and {g[1] for g in got} == {MOS_SIDE_BOTH}
    assert got[-1][2] == 17 and all(g[3] for g in got)


@pytest.mark.parametrize(("name", "versions"), [("qinq_vlan.pcap", {4}),
                                               ("raw_ip.pcap", {4}),
                                               ("ipv6_sll.pcap", {6})])
def test_raw_socket_finds_l3_behind_any_link(samples: Path, name: str,
                                             versions: set[int]) -> None:
    assert mtcp_init({"source": str(samples / "synthetic" / name)}) == 0
    ctx = mtcp_create_context(0)
    r = mtcp_socket(ctx, AF_INET, MOS_SOCK_MONITOR_RAW, 0)
    got: list[tuple[int, str, bool]] = []

    def on_pkt(mctx: mctx_t, sock: int, side: int, ev: int, arg: Any) -> None:
        p = pkt_info()
        assert mtcp_getlastpkt(mctx, sock, side, p) == 0
        assert p.iph is not None, p.frame.hex()
        got.append((p.iph.version, p.iph.saddr, p.ethh is not None))
    assert mtcp_register_callback(ctx, r, MOS_ON_PKT_IN, MOS_NULL, on_pkt) == 0
    assert mtcp_app_join(ctx) == 0
    assert got and {g[0] for g in got} == versions
    assert all(g[2] == (name == "qinq_vlan.pcap") for g in got)


# ---------------------------------------------------------------------------------------------
# callbacks and events


def test_register_callback_signature_and_hooks() -> None:
    calls: list[tuple[Any, ...]] = []
    ctx = start(http_flow().frames)
    s = listener(ctx)
    for hook in (MOS_HK_SND, MOS_HK_RCV):
        assert mtcp_register_callback(
            ctx, s, MOS_ON_CONN_START, hook,
            lambda *a, h=hook: calls.append((h, *a))) == 0
    assert mtcp_app_join(ctx) == 0
    assert [(c[0], c[3], c[4], c[5]) for c in calls] == [
        (MOS_HK_SND, MOS_SIDE_CLI, MOS_ON_CONN_START, None),
        (MOS_HK_RCV, MOS_SIDE_SVR, MOS_ON_CONN_START, None)]
    assert all(c[1] is ctx and isinstance(c[2], int) and c[2] != s for c in calls)
    assert calls[0][2] == calls[1][2]                   # one socket per flow handle


def test_register_callback_errors() -> None:
    ctx = start([])
    s = listener(ctx)
    cb = print
    fails(mtcp_register_callback(ctx, s, 0, MOS_NULL, cb), errno.EINVAL)
    fails(mtcp_register_callback(ctx, s, 3, MOS_NULL, cb), errno.EINVAL)
    fails(mtcp_register_callback(ctx, s, 1 << 20, MOS_NULL, cb), errno.EINVAL)
    fails(mtcp_register_callback(ctx, s, MOS_ON_PKT_OUT, MOS_NULL, cb), errno.ENOSYS)
    fails(mtcp_register_callback(ctx, s, MOS_ON_PKT_IN, 12345, cb), errno.EINVAL)
    fails(mtcp_register_callback(ctx, s, MOS_ON_CONN_NEW_DATA, MOS_HK_RCV, cb), errno.EINVAL)
    fails(mtcp_register_callback(ctx, s, MOS_ON_CONN_START, MOS_NULL, cb), errno.EINVAL)
    fails(mtcp_register_callback(ctx, s, MOS_ON_ORPHAN, MOS_HK_SND, cb), errno.EINVAL)
    fails(mtcp_register_callback(ctx, 42, MOS_ON_PKT_IN, MOS_HK_RCV, cb), errno.EINVAL)
    fails(mtcp_register_callback(ctx, s, MOS_ON_PKT_IN, MOS_HK_RCV, "cb"), errno.EINVAL)  # type: ignore[arg-type]
    fails(mtcp_register_callback(None, s, MOS_ON_PKT_IN, MOS_HK_RCV, cb), errno.EACCES)  # type: ignore[arg-type]
    fails(mtcp_register_callback(ctx, s, MOS_ON_PKT_IN, MOS_HK_RCV, None), errno.EINVAL)
    hev = mtcp_define_event(MOS_ON_CONN_NEW_DATA, lambda *a: True, None)
    # the man page registers the HTTP UDE at MOS_HK_RCV; mOS's code refuses it (EINVAL)
    fails(mtcp_register_callback(ctx, s, hev, MOS_HK_RCV, cb), errno.EINVAL)
    assert mtcp_register_callback(ctx, s, hev, MOS_NULL, cb) == 0


def test_deregister_with_null_callback_and_replace() -> None:
    sc = http_flow()
    ctx = start(sc.frames)
    s = listener(ctx)
    first: list[int] = []
    second: list[int] = []
    assert mtcp_register_callback(ctx, s, MOS_ON_PKT_IN, MOS_HK_RCV,
                                  lambda *a: first.append(1)) == 0
    assert mtcp_register_callback(ctx, s, MOS_ON_PKT_IN, MOS_HK_RCV,
                                  lambda *a: second.append(1)) == 0   # replaces
    assert mtcp_register_callback(ctx, s, MOS_ON_PKT_IN, MOS_HK_SND, print) == 0
    assert mtcp_register_callback(ctx, s, MOS_ON_PKT_IN, MOS_HK_SND, None) == 0
    assert mtcp_unregister_callback(ctx, s, MOS_ON_PKT_IN, MOS_HK_SND) == -1
    calls: list[int] = []

    def once(mctx: mctx_t, sock: int, *a: Any) -> None:
        calls.append(sock)
        assert mtcp_register_callback(mctx, sock, MOS_ON_TCP_STATE_CHANGE, MOS_HK_RCV,
                                      None) == 0       # de-register on this flow only
    assert mtcp_register_callback(ctx, s, MOS_ON_TCP_STATE_CHANGE, MOS_HK_RCV, once) == 0
    assert mtcp_app_join(ctx) == 0
    assert first == [] and len(second) == len(sc.frames) and len(calls) == 1


def test_per_flow_registration_affects_one_flow() -> None:
    a, b = http_flow(), http_flow("10.0.0.1:40001")
    ctx = start(sorted(a.frames + b.frames, key=lambda f: f[0]))
    s = listener(ctx)
    data_socks: list[int] = []
    first: list[int] = []

    def on_start(mctx: mctx_t, sock: int, *args: Any) -> None:
        if not first:
            first.append(sock)
            assert mtcp_register_callback(mctx, sock, MOS_ON_CONN_NEW_DATA, MOS_NULL,
                                          lambda m, k, *x: data_socks.append(k)) == 0
    mtcp_register_callback(ctx, s, MOS_ON_CONN_START, MOS_HK_SND, on_start)
    assert mtcp_app_join(ctx) == 0
    assert data_socks and set(data_socks) == set(first)


def test_define_event_ids_dedup_args_and_chains() -> None:
    def is_get(mctx: mctx_t, sock: int, side: int, ev: int, arg: Any) -> bool:
        buf = bytearray(3)
        return mtcp_ppeek(mctx, sock, side, buf, 3, 0) == 3 and bytes(buf) == arg.arg

    def has_host(mctx: mctx_t, sock: int, side: int, ev: int, arg: Any) -> bool:
        buf = bytearray(200)
        n = mtcp_ppeek(mctx, sock, side, buf, 200, 0)
        return b"Host:" in bytes(buf[:max(n, 0)])
    arg = filter_arg(b"GET", 3)
    ev = mtcp_define_event(MOS_ON_CONN_NEW_DATA, is_get, arg)
    assert ev >= 1 << 12
    assert mtcp_define_event(MOS_ON_CONN_NEW_DATA, is_get, filter_arg(b"GET", 3)) == ev
    other = mtcp_define_event(MOS_ON_CONN_NEW_DATA, is_get, filter_arg(b"PUT", 3))
    assert other not in (ev, 0)
    chained = mtcp_define_event(ev, has_host, None)
    assert chained not in (ev, other, 0)
    ctx = start(http_flow().frames)
    s = listener(ctx)
    got: list[tuple[int, Any]] = []
    for e in (ev, other, chained):
        assert mtcp_register_callback(ctx, s, e, MOS_NULL,
                                      lambda m, k, side, e_, a: got.append((e_, a))) == 0
    assert mtcp_app_join(ctx) == 0
    assert got == [(ev, arg), (chained, None)]


def test_define_event_errors() -> None:
    fails(mtcp_define_event(MOS_ON_CONN_NEW_DATA, None), errno.EINVAL, MOS_NULL_EVENT)
    fails(mtcp_define_event(MOS_ON_CONN_NEW_DATA, "f"), errno.EINVAL, 0)  # type: ignore[arg-type]
    fails(mtcp_define_event(999999, print), errno.EINVAL, 0)
    fails(mtcp_define_event(0, print), errno.EINVAL, 0)
    fails(mtcp_define_event(MOS_ON_PKT_OUT, print), errno.ENOSYS, 0)
    fails(mtcp_define_event(MOS_ON_PKT_IN, print, filter_arg(None, 4)), errno.EINVAL, 0)
    parent = mtcp_define_event(MOS_ON_PKT_IN, lambda *a: True)
    floating = mtcp_alloc_event(parent)
    fails(mtcp_define_event(floating, print), errno.EINVAL, 0)


def test_alloc_and_raise_event_multi_outcome() -> None:
    children: dict[bytes, int] = {}

    def classify(mctx: mctx_t, sock: int, side: int, ev: int, arg: Any) -> bool:
        buf = bytearray(100)
        n = mtcp_ppeek(mctx, sock, side, buf, 100, 0)
        for word, child in children.items():
            if word in bytes(buf[:max(n, 0)]):
                assert mtcp_raise_event(mctx, child) == 0
        fails(mtcp_raise_event(mctx, ev), errno.EINVAL)          # not a floating event
        return False                                               # children still run
    parent = mtcp_define_event(MOS_ON_CONN_NEW_DATA, classify)
    for word in (b"GET", b"Host", b"POST"):
        children[word] = mtcp_alloc_event(parent)
        assert children[word] >= 1 << 12
    ctx = start(http_flow().frames)
    s = listener(ctx)
    got: list[int] = []
    outside: list[int] = []

    def on_child(mctx: mctx_t, sock: int, side: int, ev: int, arg: Any) -> None:
        got.append(ev)
        outside.append(mtcp_raise_event(mctx, children[b"GET"]))   # a callback, not a filter
        outside.append(mtcp_errno())
    for child in children.values():
        assert mtcp_register_callback(ctx, s, child, MOS_NULL, on_child) == 0
    assert mtcp_app_join(ctx) == 0
    assert got == [children[b"GET"], children[b"Host"]]
    assert outside[:2] == [-1, errno.EPERM]
    fails(mtcp_alloc_event(MOS_ON_CONN_NEW_DATA), errno.EINVAL, 0)   # mostool: UDE parents
    fails(mtcp_alloc_event(123456), errno.EINVAL, 0)
    fails(mtcp_raise_event(ctx, 123456), errno.EINVAL)
    fails(mtcp_raise_event(ctx, children[b"GET"]), errno.EPERM)
    fails(mtcp_raise_event(None, children[b"GET"]), errno.EACCES)  # type: ignore[arg-type]
    fails(mtcp_remove_ude(parent), errno.ENOSYS)


# ---------------------------------------------------------------------------------------------
# per-flow calls


def test_uctx_on_flows_and_listeners() -> None:
    ctx = start(http_flow().frames)
    s = listener(ctx)
    fails(mtcp_set_uctx(ctx, s, "x"), errno.EPERM)             # not the mOS thread
    fails(mtcp_get_uctx(ctx, s), errno.EPERM, None)
    log: list[Any] = []

    def on_start(mctx: mctx_t, sock: int, *a: Any) -> None:
        assert mtcp_set_uctx(mctx, sock, {"n": 0}) == 0
        assert mtcp_set_uctx(mctx, s, "listener ctx") == 0
        fails(mtcp_set_uctx(mctx, 999, 1), errno.EBADF)
        fails(mtcp_get_uctx(mctx, 999), errno.EBADF, None)

    def on_pkt(mctx: mctx_t, sock: int, *a: Any) -> None:
        mtcp_get_uctx(mctx, sock)["n"] += 1

    def on_end(mctx: mctx_t, sock: int, *a: Any) -> None:
        log.append((mtcp_get_uctx(mctx, sock), mtcp_get_uctx(mctx, s)))
    mtcp_register_callback(ctx, s, MOS_ON_CONN_START, MOS_HK_SND, on_start)
    mtcp_register_callback(ctx, s, MOS_ON_PKT_IN, MOS_HK_RCV, on_pkt)
    mtcp_register_callback(ctx, s, MOS_ON_CONN_END, MOS_HK_RCV, on_end)
    assert mtcp_app_join(ctx) == 0
    assert log == [({"n": len(http_flow().frames)}, "listener ctx")]
    fails(mtcp_set_uctx(None, s, 1), errno.EACCES)  # type: ignore[arg-type]
    fails(mtcp_get_uctx(None, s), errno.EACCES, None)  # type: ignore[arg-type]


def test_peek_reads_and_advances() -> None:
    def body(mctx: mctx_t, sock: int, side: int, ev: int, arg: Any) -> tuple[int, bytes, int]:
        buf = bytearray(4096)
        n = mtcp_peek(mctx, sock, side, buf, len(buf))
        again = mtcp_peek(mctx, sock, side, buf)
        return side, bytes(buf[:n]), again
    out = in_callback(http_flow().frames, MOS_ON_CONN_NEW_DATA, MOS_NULL, body)
    assert (MOS_SIDE_SVR, REQUEST, 0) in out and (MOS_SIDE_CLI, RESPONSE, 0) in out


def overflow_flow() -> Scenario:
    sc = Scenario()
    sc.handshake()
    for c in b"ABCDE":
        sc.send(CLI, bytes([c]) * 4)
    return sc


def test_peek_overflow_returns_minus_lost() -> None:
    sc = overflow_flow()
    ctx = start(sc.frames)
    s = listener(ctx)
    assert mtcp_setsockopt(ctx, s, SOL_MONSOCKET, MOS_SVRBUF, 10) == 0
    results: list[Any] = []

    def on_data(mctx: mctx_t, sock: int, side: int, ev: int, arg: Any) -> None:
        if side != MOS_SIDE_SVR:
            return
        results.append("data")
        if len(results) < 5:
            return                                             # leave the bytes unread
        buf = bytearray(64)
        results.append((mtcp_peek(mctx, sock, side, buf), mtcp_errno()))
        n = mtcp_peek(mctx, sock, side, buf)
        results.append(bytes(buf[:n]))
    mtcp_register_callback(ctx, s, MOS_ON_CONN_NEW_DATA, MOS_NULL, on_data)
    assert mtcp_app_join(ctx) == 0
    assert results[:5] == ["data"] * 5
    (lost, err), rest = results[5], results[6]
    assert lost < 0 and err == errno.ENODATA
    assert -lost + len(rest) == 20 and rest == sc.stream(CLI)[-lost:]
    assert len(rest) >= 10


def test_peek_overflow_raises_with_the_switch() -> None:
    sc = overflow_flow()
    ctx = start(sc.frames, rmem_size=10)
    s = listener(ctx)
    errors: list[MtcpError] = []

    def on_data(mctx: mctx_t, sock: int, side: int, ev: int, arg: Any) -> None:
        if side != MOS_SIDE_SVR:
            return
        seen = (mtcp_get_uctx(mctx, sock) or 0) + 1
        mtcp_set_uctx(mctx, sock, seen)
        if seen == 5:
            try:
                mtcp_peek(mctx, sock, side, bytearray(16))
            except MtcpError as exc:
                errors.append(exc)
    mtcp_register_callback(ctx, s, MOS_ON_CONN_NEW_DATA, MOS_NULL, on_data)
    assert mtcp_raise_errors(True) is False
    assert mtcp_app_join(ctx) == 0
    assert len(errors) == 1 and errors[0].errno == errno.ENODATA and errors[0].lost >= 4
    assert isinstance(errors[0], OSError)


def test_peek_errors() -> None:
    ctx = start(http_flow().frames)
    s = listener(ctx)
    assert mtcp_setsockopt(ctx, s, SOL_MONSOCKET, MOS_CLIBUF, 0) == 0
    out: list[Any] = []

    def on_data(mctx: mctx_t, sock: int, side: int, ev: int, arg: Any) -> None:
        buf = bytearray(100)
        out.append((side, mtcp_peek(mctx, sock, side, buf), mtcp_errno()))
        if side == MOS_SIDE_SVR:
            out.append(("listener", mtcp_peek(mctx, s, side, buf), mtcp_errno()))
            out.append(("unknown", mtcp_peek(mctx, 999, side, buf), mtcp_errno()))
            out.append(("side", mtcp_peek(mctx, sock, MOS_SIDE_BOTH, buf), mtcp_errno()))
            out.append(("bytes", mtcp_peek(mctx, sock, side, b"readonly"), mtcp_errno()))
            out.append(("len", mtcp_peek(mctx, sock, side, buf, 500), mtcp_errno()))
    mtcp_register_callback(ctx, s, MOS_ON_CONN_NEW_DATA, MOS_NULL, on_data)
    assert mtcp_app_join(ctx) == 0
    assert out[0] == (MOS_SIDE_SVR, len(REQUEST), 0)
    assert out[1:6] == [("listener", -1, errno.EBADF), ("unknown", -1, errno.EBADF),
                        ("side", -1, errno.EINVAL), ("bytes", -1, errno.EINVAL),
                        ("len", -1, errno.EINVAL)]
    assert out[6] == (MOS_SIDE_CLI, -1, errno.EINVAL)           # buffering disabled
    fails(mtcp_peek(ctx, s, MOS_SIDE_SVR, bytearray(4)), errno.EPERM)
    fails(mtcp_peek(None, s, MOS_SIDE_SVR, bytearray(4)), errno.EACCES)  # type: ignore[arg-type]


def test_ppeek_random_access_and_errors() -> None:
    ctx = start(http_flow().frames)
    s = listener(ctx)
    assert mtcp_setsockopt(ctx, s, SOL_MONSOCKET, MOS_CLIBUF, 0) == 0
    out: list[Any] = []

    def on_data(mctx: mctx_t, sock: int, side: int, ev: int, arg: Any) -> None:
        buf = bytearray(10)
        if side == MOS_SIDE_CLI:
            out.append(("cli", mtcp_ppeek(mctx, sock, side, buf, 4, 0), mtcp_errno()))
            return
        out.append((mtcp_ppeek(mctx, sock, side, buf, 4, 4), bytes(buf[:4])))
        out.append(mtcp_peek(mctx, sock, side, bytearray(100)))        # cursor untouched
        out.append((mtcp_ppeek(mctx, sock, side, buf, 4, 10_000), mtcp_errno()))
        out.append((mtcp_ppeek(mctx, s, side, buf, 4, 0), mtcp_errno()))
        out.append((mtcp_ppeek(mctx, 999, side, buf, 4, 0), mtcp_errno()))
        out.append((mtcp_ppeek(mctx, sock, 7, buf, 4, 0), mtcp_errno()))
        out.append((mtcp_ppeek(mctx, sock, side, buf, 4, -1), mtcp_errno()))
    mtcp_register_callback(ctx, s, MOS_ON_CONN_NEW_DATA, MOS_NULL, on_data)
    assert mtcp_app_join(ctx) == 0
    assert out == [(4, b"/ind"), len(REQUEST), (-1, errno.ENODATA),
                   (-1, errno.ESOCKTNOSUPPORT), (-1, errno.EBADF), (-1, errno.EINVAL),
                   (-1, errno.EINVAL), ("cli", -1, errno.EACCES)]
    fails(mtcp_ppeek(ctx, s, MOS_SIDE_SVR, bytearray(4), 4, 0), errno.EPERM)


def test_getlastpkt_fills_pkt_info() -> None:
    sc = http_flow()
    isn_c = sc.isn(CLI)

    def body(mctx: mctx_t, sock: int, side: int, ev: int, arg: Any) -> pkt_info:
        p = pkt_info()
        assert mtcp_getlastpkt(mctx, sock, side, p) == 0
        return p
    pkts = in_callback(sc.frames, MOS_ON_PKT_IN, MOS_HK_RCV, body)
    syn, data = pkts[0], pkts[3]
    assert syn.tcph is not None and syn.iph is not None and syn.ethh is not None
    assert (syn.tcph.syn, syn.tcph.ack, syn.seq, syn.tcph.source, syn.tcph.dest) == \
        (1, 0, isn_c, 40000, 80)
    assert (syn.iph.version, syn.iph.saddr, syn.iph.daddr, syn.iph.protocol) == \
        (4, "10.0.0.1", "10.0.0.2", 6)
    assert syn.ethh.h_proto == 0x0800 and syn.eth_len == len(sc.frames[0][2])
    assert syn.cur_ts == int(sc.frames[0][0] * 1000) & 0xFFFFFFFF
    assert data.payload == REQUEST and data.payloadlen == len(REQUEST) and data.offset == 0
    assert data.ip_len == 20 + len(data.frame) - 14 - 20 and data.tcph is not None
    assert data.tcph.psh == 1
    response = next(p for p in pkts if p.payload == RESPONSE)
    assert response.offset == 0 and response.iph is not None
    assert response.iph.saddr == "10.0.0.2"
    later = [p for p in pkts if p.tcph is not None and p.tcph.fin]
    assert later and later[0].offset == len(REQUEST)


def test_getlastpkt_errors() -> None:
    ctx = start(http_flow().frames)
    s = listener(ctx)
    out: list[Any] = []

    def on_start(mctx: mctx_t, sock: int, side: int, ev: int, arg: Any) -> None:
        out.append((mtcp_getlastpkt(mctx, sock, side, "p"), mtcp_errno()))
        out.append((mtcp_getlastpkt(mctx, 999, side, pkt_info()), mtcp_errno()))
        p = pkt_info()
        out.append((mtcp_getlastpkt(mctx, s, side, p), p.tcph is not None and p.tcph.syn))

    def on_timer(mctx: mctx_t, tid: int, *a: Any) -> None:
        out.append((mtcp_getlastpkt(mctx, s, 0, pkt_info()), mtcp_errno()))
    mtcp_register_callback(ctx, s, MOS_ON_CONN_START, MOS_HK_SND, on_start)
    mtcp_settimer(ctx, 1, 0.0015, on_timer)
    assert mtcp_app_join(ctx) == 0
    assert out == [(-1, errno.EINVAL), (-1, errno.EBADF), (0, 1), (-1, errno.EACCES)]
    fails(mtcp_getlastpkt(ctx, s, 0, pkt_info()), errno.EPERM)
    fails(mtcp_getlastpkt(None, s, 0, pkt_info()), errno.EACCES)  # type: ignore[arg-type]


def test_getpeername() -> None:
    ctx = start(http_flow().frames + http_flow("[fd00::1]:40000", "[fd00::2]:443").frames)
    s = listener(ctx)
    out: list[Any] = []

    def on_start(mctx: mctx_t, sock: int, side: int, ev: int, arg: Any) -> None:
        both = [sockaddr_in(), sockaddr_in()]
        assert mtcp_getpeername(mctx, sock, both, 32, MOS_SIDE_BOTH) == 0
        one = sockaddr_in()
        assert mtcp_getpeername(mctx, sock, one, ctypes.c_int(16), MOS_SIDE_SVR) == 0
        fresh: list[sockaddr_in] = []
        assert mtcp_getpeername(mctx, sock, fresh, None, MOS_SIDE_BOTH) == 0
        out.append((str(both[MOS_SIDE_CLI]), str(both[MOS_SIDE_SVR]), str(one),
                    both[0].sin_family, [str(a) for a in fresh]))
        errs = [mtcp_getpeername(mctx, sock, both, 16, MOS_SIDE_BOTH), mtcp_errno(),
                mtcp_getpeername(mctx, sock, one, None, 5), mtcp_errno(),
                mtcp_getpeername(mctx, sock, "addr", None, MOS_SIDE_CLI), mtcp_errno(),
                mtcp_getpeername(mctx, s, one, None, MOS_SIDE_CLI), mtcp_errno(),
                mtcp_getpeername(mctx, 999, one, None, MOS_SIDE_CLI), mtcp_errno()]
        out.append(errs)
    mtcp_register_callback(ctx, s, MOS_ON_CONN_START, MOS_HK_SND, on_start)
    assert mtcp_app_join(ctx) == 0
    assert out[0] == ("10.0.0.1:40000", "10.0.0.2:80", "10.0.0.2:80", AF_INET,
                      ["10.0.0.1:40000", "10.0.0.2:80"])
    assert out[2][:4] == ("[fd00::1]:40000", "[fd00::2]:443", "[fd00::2]:443", AF_INET6)
    assert out[1] == [-1, errno.EINVAL, -1, errno.EINVAL, -1, errno.EINVAL,
                      -1, errno.ENOTCONN, -1, errno.EBADF]
    fails(mtcp_getpeername(ctx, s, sockaddr_in(), None, 0), errno.EPERM)


def test_getsockopt_states_buffers_fragments_timestamp() -> None:
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"0123456789")
    sc.drop(sc.send(CLI, b"abcde"))                      # a hole at 10..15
    sc.send(CLI, b"XYZ")                                 # held behind it: 15..18
    ctx = start(sc.frames)
    s = listener(ctx)
    out: list[Any] = []

    def on_pkt(mctx: mctx_t, sock: int, side: int, ev: int, arg: Any) -> None:
        st = ctypes.c_int()
        lst: list[int] = []
        assert mtcp_getsockopt(mctx, sock, SOL_MONSOCKET, MOS_TCP_STATE_CLI, st) == 0
        assert mtcp_getsockopt(mctx, sock, SOL_MONSOCKET, MOS_TCP_STATE_SVR, lst, None) == 0
        bi = tcp_buf_info()
        frags: list[Any] = []
        n = ctypes.c_int(10)
        ts = [0]
        assert mtcp_getsockopt(mctx, sock, SOL_MONSOCKET, MOS_INFO_SVRBUF, bi, None) == 0
        assert mtcp_getsockopt(mctx, sock, SOL_MONSOCKET, MOS_FRAGINFO_SVRBUF, frags, n) == 0
        assert mtcp_getsockopt(mctx, sock, SOL_MONSOCKET, MOS_TIMESTAMP, ts) == 0
        out.append((st.value, lst[0], bi, [(f.offset, f.len) for f in frags], n.value, ts[0],
                    mtcp_cb_get_ts(mctx)))
    mtcp_register_callback(ctx, s, MOS_ON_PKT_IN, MOS_HK_RCV, on_pkt)
    assert mtcp_app_join(ctx) == 0
    assert [(o[0], o[1]) for o in out[:3]] == [(TCP_SYN_SENT, TCP_SYN_RCVD),
                                               (TCP_ESTABLISHED, TCP_SYN_RCVD),
                                               (TCP_ESTABLISHED, TCP_ESTABLISHED)]
    last = out[-1]
    bi = last[2]
    assert bi.tcpbi_init_seq == sc.isn(CLI) + 1
    assert (bi.tcpbi_next_byte_expected, bi.tcpbi_last_byte_received) == (10, 18)
    assert last[3] == [(0, 10), (15, 3)] and last[4] == 2
    assert last[5] == last[6]                            # last packet time == now, in µs


def test_getsockopt_errors() -> None:
    ctx = start(http_flow().frames)
    s = listener(ctx)
    assert mtcp_setsockopt(ctx, s, SOL_MONSOCKET, MOS_SVRBUF, 0) == 0
    out: list[Any] = []

    def on_start(mctx: mctx_t, sock: int, side: int, ev: int, arg: Any) -> None:
        st = ctypes.c_int()
        for args in ((s, SOL_MONSOCKET, MOS_TCP_STATE_CLI, st),
                     (999, SOL_MONSOCKET, MOS_TCP_STATE_CLI, st),
                     (sock, 1, MOS_TCP_STATE_CLI, st),
                     (sock, SOL_MONSOCKET, MOS_CLIBUF, st),
                     (sock, SOL_MONSOCKET, MOS_INFO_SVRBUF, tcp_buf_info()),
                     (sock, SOL_MONSOCKET, MOS_INFO_SVRBUF, st),
                     (sock, SOL_MONSOCKET, MOS_TCP_STATE_CLI, "st"),
                     (sock, SOL_MONSOCKET, MOS_FRAGINFO_SVRBUF, st)):
            out.append((mtcp_getsockopt(mctx, *args), mtcp_errno()))
    mtcp_register_callback(ctx, s, MOS_ON_CONN_START, MOS_HK_SND, on_start)
    assert mtcp_app_join(ctx) == 0
    assert out == [(-1, errno.ENOTSOCK), (-1, errno.EBADF), (-1, errno.ENOSYS),
                   (-1, errno.ENOSYS), (-1, errno.ENODATA), (-1, errno.EINVAL),
                   (-1, errno.EINVAL), (-1, errno.EINVAL)]
    fails(mtcp_getsockopt(ctx, s, SOL_MONSOCKET, MOS_TCP_STATE_CLI, [0]), errno.EPERM)


def overlap_flow() -> Scenario:
    sc = Scenario()
    sc.handshake()
    sc.drop(sc.send(CLI, b"AAAA"))                       # lost ...
    sc.send(CLI, b"tail")                                # ... so this waits behind a hole
    sc.send(CLI, b"BBBB", seq_offset=0)                  # the hole, filled by other bytes
    sc.send(CLI, b"CCCC", seq_offset=0)                  # and again, different
    sc.close()
    return sc


@pytest.mark.parametrize(("policy", "expected"), [(None, b"BBBBtail"),
                                                  (MOS_OVERLAP_POLICY_LAST, b"CCCCtail")])
def test_setsockopt_overlap_policy(policy: int | None, expected: bytes) -> None:
    ctx = start(overlap_flow().frames)
    s = listener(ctx)
    if policy is not None:
        assert mtcp_setsockopt(ctx, s, SOL_MONSOCKET, MOS_SVROVERLAP, policy, 4) == 0
    got: list[bytes] = []

    def on_end(mctx: mctx_t, sock: int, side: int, ev: int, arg: Any) -> None:
        buf = bytearray(8)
        n = mtcp_ppeek(mctx, sock, MOS_SIDE_SVR, buf, 8, 0)
        got.append(bytes(buf[:n]))
    mtcp_register_callback(ctx, s, MOS_ON_CONN_END, MOS_HK_RCV, on_end)
    assert mtcp_app_join(ctx) == 0
    assert got == [expected]


def test_setsockopt_stop_monitoring_and_errors() -> None:
    a, b = http_flow(), http_flow("10.0.0.1:40001")
    ctx = start(sorted(a.frames + b.frames, key=lambda f: f[0]))
    s = listener(ctx)
    fails(mtcp_setsockopt(ctx, s, SOL_MONSOCKET, MOS_STOP_MON, MOS_SIDE_BOTH), errno.EPERM)
    fails(mtcp_setsockopt(ctx, s, 1, MOS_CLIBUF, 0), errno.ENOSYS)
    fails(mtcp_setsockopt(ctx, s, SOL_MONSOCKET, MOS_SEQ_REMAP, 0), errno.ENOSYS)
    fails(mtcp_setsockopt(ctx, s, SOL_MONSOCKET, 0x55, 0), errno.ENOSYS)
    fails(mtcp_setsockopt(ctx, s, SOL_MONSOCKET, MOS_CLIBUF, -1), errno.EINVAL)
    fails(mtcp_setsockopt(ctx, s, SOL_MONSOCKET, MOS_CLIBUF, "x"), errno.EINVAL)
    fails(mtcp_setsockopt(ctx, s, SOL_MONSOCKET, MOS_FRAG_CLIBUF, 5), errno.EINVAL)
    fails(mtcp_setsockopt(ctx, s, SOL_MONSOCKET, MOS_CLIOVERLAP, 7), errno.EINVAL)
    fails(mtcp_setsockopt(ctx, 999, SOL_MONSOCKET, MOS_CLIBUF, 0), errno.EBADF)
    fails(mtcp_setsockopt(None, s, SOL_MONSOCKET, MOS_CLIBUF, 0), errno.EACCES)  # type: ignore[arg-type]
    assert mtcp_setsockopt(ctx, s, SOL_MONSOCKET, MOS_FRAG_CLIBUF, 0) == 0   # no-op on a listener
    assert mtcp_setsockopt(ctx, s, SOL_MONSOCKET, MOS_CLIBUF, ctypes.c_int(4096)) == 0
    packets: dict[int, int] = {}
    out: list[Any] = []

    def on_pkt(mctx: mctx_t, sock: int, side: int, ev: int, arg: Any) -> None:
        packets[sock] = packets.get(sock, 0) + 1
        if len(packets) == 1 and packets[sock] == 1:
            out.append(mtcp_setsockopt(mctx, sock, SOL_MONSOCKET, MOS_STOP_MON, 9))
            out.append(mtcp_errno())
            out.append(mtcp_setsockopt(mctx, sock, SOL_MONSOCKET, MOS_FRAG_SVRBUF, 0))
            out.append(mtcp_setsockopt(mctx, sock, SOL_MONSOCKET, MOS_STOP_MON,
                                       [MOS_SIDE_BOTH]))
    mtcp_register_callback(ctx, s, MOS_ON_PKT_IN, MOS_HK_RCV, on_pkt)
    assert mtcp_app_join(ctx) == 0
    assert out == [-1, errno.EINVAL, 0, 0]
    assert sorted(packets.values()) == [1, len(a.frames)]


def test_setsockopt_buffer_size_follows_mos_compat() -> None:
    ctx = start([], mos_compat=True)
    s = listener(ctx)
    fails(mtcp_setsockopt(ctx, s, SOL_MONSOCKET, MOS_CLIBUF, 4096), errno.EINVAL)
    assert mtcp_setsockopt(ctx, s, SOL_MONSOCKET, MOS_CLIBUF, 0) == 0


# ---------------------------------------------------------------------------------------------
# time


def test_settimer_runs_on_packet_time_and_rearms() -> None:
    sc = Scenario(step=0.25)
    sc.handshake()
    sc.advance(2.0)
    sc.send(CLI, b"late")
    sc.close()
    t0 = sc.frames[0][0]
    ctx = start(sc.frames)
    fired: list[tuple[Any, ...]] = []

    def tick(mctx: mctx_t, tid: int, side: int, ev: int, arg: Any) -> None:
        fired.append((mctx is ctx, tid, side, ev, arg, mtcp_cb_get_ts(mctx)))
        assert mtcp_settimer(mctx, tid, timeval(0, 500_000), tick) == 0
    assert mtcp_settimer(ctx, 7, timeval(0, 500_000), tick) == 0   # set before the run
    assert mtcp_app_join(ctx) == 0
    assert [f[:5] for f in fired] == [(True, 7, 0, 0, None)] * 7   # 0.5 .. 3.5 s
    expected = [(int((t0 + 0.5 * k) * 1000) & 0xFFFFFFFF) * 1000 & 0xFFFFFFFF
                for k in range(1, 8)]
    assert [f[5] for f in fired] == expected


def test_settimer_and_cb_get_ts_errors() -> None:
    ctx = start([])
    fails(mtcp_settimer(ctx, 1, timeval(1, 0), None), errno.EINVAL)
    fails(mtcp_settimer(ctx, 1, None, print), errno.EINVAL)  # type: ignore[arg-type]
    fails(mtcp_settimer(ctx, 1, -1.0, print), errno.EINVAL)
    fails(mtcp_settimer(None, 1, 1.0, print), errno.EACCES)  # type: ignore[arg-type]
    assert mtcp_settimer(ctx, 1, 1.5, print) == 0
    fails(mtcp_cb_get_ts(ctx), errno.EPERM, 0)
    fails(mtcp_cb_get_ts(None), errno.EACCES, 0)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# errors, passive-monitor limits


def test_errno_errmsg_perror_and_raise_switch(capsys: pytest.CaptureFixture[str]) -> None:
    assert mtcp_errno() == 0 and mtcp_errmsg() == ""
    fails(mtcp_create_context(0), errno.EPERM, None)
    assert "EPERM" in mtcp_errmsg() and "mtcp_init" in mtcp_errmsg()
    mtcp_perror("create")
    assert capsys.readouterr().err.startswith("create: ")
    assert mtcp_raise_errors(True) is False
    with pytest.raises(MtcpError) as info:
        mtcp_create_context(0)
    assert info.value.errno == errno.EPERM and isinstance(info.value, OSError)
    with pytest.raises(OSError):
        mtcp_define_event(MOS_ON_PKT_IN, None)
    assert mtcp_raise_errors(False) is True
    assert mtcp_define_event(MOS_ON_PKT_IN, None) == 0


def test_packet_modification_is_not_available() -> None:
    ctx = start([])
    s = listener(ctx)
    fails(mtcp_setlastpkt(ctx, s, 0, 0, None, 0, mos.MOS_DROP), errno.ENOSYS)
    fails(mtcp_sendpkt(ctx, s, pkt_info()), errno.ENOSYS)
    fails(mtcp_reset_conn(ctx, s), errno.ENOSYS)
    fails(mtcp_getsockname(ctx, s, sockaddr_in(), 16), errno.ENOTSOCK)
    fails(mtcp_getsockname(None, s, sockaddr_in(), 16), errno.EACCES)  # type: ignore[arg-type]


def test_rexmit_and_state_change_reach_mos_callbacks() -> None:
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"hello")
    sc.send(CLI, b"hello", seq_offset=0)                # a retransmission
    sc.close()
    out = in_callback(sc.frames, MOS_ON_REXMIT, MOS_HK_RCV, lambda m, k, side, ev, a: (side, ev))
    assert out == [(MOS_SIDE_SVR, MOS_ON_REXMIT)]
    states = in_callback(sc.frames, MOS_ON_TCP_STATE_CHANGE, MOS_HK_SND,
                         lambda m, k, side, *a: side)
    assert MOS_SIDE_CLI in states and MOS_SIDE_SVR in states


# ---------------------------------------------------------------------------------------------
# the ported mOS samples


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True,
                          text=True, timeout=120, cwd=REPO)


def test_midstat_default_interval_is_one_second_of_packet_time(tmp_path: Path) -> None:
    sc = Scenario(step=0.1)
    sc.handshake()
    sc.advance(2.0)
    sc.send(CLI, b"x")
    sc.fin(CLI)
    sc.advance(0.6)
    sc.ack(SVR)
    path = tmp_path / "slow.pcap"
    write_pcap(str(path), sc.frames)
    r = run_example("midstat.py", "-r", str(path))
    assert r.returncode == 0, r.stderr
    header = "Proto CPU Client Address        Client State Server Address        Server State"
    row = "tcp   0   10.0.0.1:40000        ESTABLISHED  10.0.0.2:80           ESTABLISHED"
    fin = "tcp   0   10.0.0.1:40000        FIN_WAIT_1   10.0.0.2:80           CLOSE_WAIT"
    assert r.stdout.splitlines() == [header, row, header, row, header, fin]


def test_midstat_on_http_small(samples: Path) -> None:
    r = run_example("midstat.py", "-r", str(samples / "http_small.pcap"))
    assert r.returncode == 0 and r.stdout == "", r.stderr      # 0.1 s of traffic: no table yet
    r = run_example("midstat.py", "-r", str(samples / "http_small.pcap"),
                    "--interval", "0.0005")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    tables = [ln for ln in lines if ln.startswith("Proto CPU")]
    rows = {" ".join(ln.split()) for ln in lines if ln.startswith("tcp")}
    assert len(tables) == 202                            # 0.1015 s / 0.0005 s
    assert rows == {
        "tcp 0 10.77.1.1:35903 SYN_SENT 10.77.0.2:80 SYN_RCVD",
        "tcp 0 10.77.1.1:35903 ESTABLISHED 10.77.0.2:80 ESTABLISHED",
        "tcp 0 10.77.1.1:50723 ESTABLISHED 10.77.0.2:80 ESTABLISHED",
        "tcp 0 10.77.1.1:59429 ESTABLISHED 10.77.0.2:80 ESTABLISHED",
        "tcp 0 10.77.1.1:59429 FIN_WAIT_1 10.77.0.2:80 CLOSE_WAIT",
        "tcp 0 10.77.1.1:37055 ESTABLISHED 10.77.0.2:9002 ESTABLISHED",
        # port 7000 refused the SYN: a reset is provisional (MonitorConfig.rst_grace), so the
        # flow is still held, both stacks CLOSED, until the grace passes
        "tcp 0 10.77.1.1:56501 CLOSED 10.77.0.2:7000 CLOSED",
    }


def test_midstat_usage_errors(tmp_path: Path) -> None:
    r = run_example("midstat.py", "-r", str(tmp_path / "missing.pcap"))
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    r = run_example("midstat.py")
    assert r.returncode == 2


def test_simple_firewall_on_http_small(samples: Path) -> None:
    r = run_example("simple_firewall.py", "-r", str(samples / "http_small.pcap"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "would block (rule 1): 10.77.1.1:56501 -> 10.77.0.2:7000",
        "would block (rule 2): 10.77.1.1:37055 -> 10.77.0.2:9002",
        "-" * 71,
        "Firewall rule table",
        "idx   flows   target   client             server             port",
        "1     1       DROP     10.77.1.0/24       10.77.0.2          dport:7000",
        "2     1       DROP     0.0.0.0            10.77.0.2          dport:9002",
        "3     3       ACCEPT   10.77.1.0/24       10.77.0.0/16       dport:80",
        "-" * 71,
        "2 flow(s) would have been blocked",
    ]
    truth = json.loads((samples / "http_small.json").read_text())
    blocked = {c["server"]["port"] for c in truth["connections"]
               if c["type"] in ("refused", "abort")}
    assert blocked == {7000, 9002}


def test_simple_firewall_rules_file_and_timer(samples: Path, tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.write_text("# block everything to port 80 from one client port\n"
                     "DROP 10.77.1.1 10.77.0.2 sport:59429 dport:80\n")
    r = run_example("simple_firewall.py", "-r", str(samples / "http_small.pcap"),
                    "-f", str(rules), "--interval", "0.05")
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out.count("Firewall rule table") == 3                # 2 timer dumps + the final one
    assert out[-1] == "1 flow(s) would have been blocked"
    assert "would block (rule 1): 10.77.1.1:59429 -> 10.77.0.2:80" in out
    rules.write_text("REJECT 10.0.0.1 10.0.0.2\n")
    r = run_example("simple_firewall.py", "-r", str(samples / "http_small.pcap"),
                    "-f", str(rules))
    assert r.returncode == 1 and "unknown rule action 'REJECT'" in r.stderr


def test_http_ude_on_http_small(samples: Path) -> None:
    r = run_example("http_ude.py", "-r", str(samples / "http_small.pcap"))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[-1] == "15 HTTP request(s)"
    requests = lines[:-1]
    methods = [ln.split()[3] for ln in requests]
    assert (methods.count("GET"), methods.count("POST")) == (9, 6)
    truth = json.loads((samples / "http_small.json").read_text())
    per_port = {c["client"]["port"]: c["client_app"]["requests"]
                for c in truth["connections"] if c["type"] == "http"}
    seen = {port: sum(ln.startswith(f"10.77.1.1:{port} ") for ln in requests)
            for port in per_port}
    assert seen == per_port
    assert requests[0] == "10.77.1.1:59429 -> 10.77.0.2:80 POST /obj/0/1/0?size=749 HTTP/1.1"
