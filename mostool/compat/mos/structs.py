"""mOS's C structs as Python classes: filters, ``pkt_info`` and its headers, addresses,
buffer information, ``mtcp_conf``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
