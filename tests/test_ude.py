"""User-defined events: definition and dedup, lazy filters, pruning, chains, multi-outcome
filters (alloc_event/raise_event), and the man-page HTTP_REQ / HTTP_POST chain on a real capture.
"""

from __future__ import annotations

import errno
import hashlib
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import dpkt
import pytest
from builders import CLI, SVR, Frame, Scenario

import mostool as mos
from mostool.replay import ReplaySource


def exchange() -> list[Frame]:
    sc = Scenario()
    sc.handshake()
    sc.send(CLI, b"GET /a HTTP/1.1\r\n\r\n")
    sc.send(SVR, b"HTTP/1.1 200 OK\r\n\r\n")
    sc.send(CLI, b"POST /b HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi")
    sc.send(SVR, b"HTTP/1.1 204 No Content\r\n\r\n")
    sc.close()
    return sc.frames


def chunk(flow: mos.Flow, side: mos.Side, event: Any) -> bytes:
    """The first bytes of the NEW_DATA chunk behind ``event`` (a UDE or the built-in)."""
    base: Any = event.base if isinstance(event, mos.UserEvent) else event
    return flow.ppeek(side, base.offset, 8)


def client_port(flow: mos.Flow) -> int:
    return int(flow.client.rsplit(":", 1)[1])


# --------------------------------------------------------------------------------------------
# definition
# --------------------------------------------------------------------------------------------


def test_define_event_dedups() -> None:
    def f(flow: mos.Flow, side: mos.Side, event: Any) -> bool:
        return True

    a = mos.define_event(mos.ON_CONN_NEW_DATA, f)
    assert mos.define_event(mos.ON_CONN_NEW_DATA, f) is a
    assert mos.define_event(mos.ON_CONN_NEW_DATA, f, name="other name") is a
    b = mos.define_event(mos.ON_CONN_NEW_DATA, f, arg=1)
    assert b is not a
    assert mos.define_event(mos.ON_CONN_NEW_DATA, f, arg=1) is b
    assert mos.define_event(mos.ON_PKT_IN, f) is not a          # another base
    arg = [1, 2]                                                 # unhashable: by identity
    c = mos.define_event(mos.ON_CONN_NEW_DATA, f, arg=arg)
    assert mos.define_event(mos.ON_CONN_NEW_DATA, f, arg=arg) is c
    assert mos.define_event(mos.ON_CONN_NEW_DATA, f, arg=[1, 2]) is not c
    chained = mos.define_event(a, f)
    assert mos.define_event(a, f) is chained
    assert chained.path() == (mos.ON_CONN_NEW_DATA, a, chained)
    assert chained.root is mos.ON_CONN_NEW_DATA and not chained.builtin
    assert a.id >= 12 and chained.id > a.id                  # ids above mOS's built-in bits
    assert a.hooks == mos.ON_CONN_NEW_DATA.hooks


def test_define_event_errors() -> None:
    def f(flow: mos.Flow, side: mos.Side, event: Any) -> bool:
        return True

    for base, filt in ((42, f), ("ON_CONN_NEW_DATA", f), (None, f),
                       (mos.ON_CONN_NEW_DATA, None), (mos.ON_CONN_NEW_DATA, "not callable")):
        with pytest.raises(mos.MosError) as exc:
            mos.define_event(base, filt)  # type: ignore[arg-type]
        assert exc.value.errno == errno.EINVAL
    parent = mos.define_event(mos.ON_CONN_NEW_DATA, f)
    floating = mos.alloc_event(parent)
    with pytest.raises(mos.MosError) as exc:
        mos.define_event(floating, f)              # a floating event cannot be a base
    assert exc.value.errno == errno.EINVAL
    with pytest.raises(mos.MosError) as exc:
        mos.alloc_event(mos.ON_CONN_NEW_DATA)      # floating events hang under a UDE
    assert exc.value.errno == errno.EINVAL
    with pytest.raises(mos.MosError) as exc:
        mos.alloc_event("parent")  # type: ignore[arg-type]
    assert exc.value.errno == errno.EINVAL


def test_ude_hooks_follow_the_base() -> None:
    def f(flow: mos.Flow, side: mos.Side, event: Any) -> bool:
        return True

    ude = mos.define_event(mos.ON_CONN_NEW_DATA, f)
    mon = mos.Monitor()
    sock = mon.socket()
    with pytest.raises(mos.MosError):
        sock.on(ude, mos.HK_SND, lambda fl, s, e: None)
    pkt_ude = mos.define_event(mos.ON_PKT_IN, f)
    sock.on(pkt_ude, mos.HK_SND, lambda fl, s, e: None)     # PKT_IN works at any hook


# --------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------


def test_filter_runs_only_when_a_callback_waits_below_it() -> None:
    calls = {"parent": 0, "child": 0}

    def parent(flow: mos.Flow, side: mos.Side, event: Any) -> bool:
        calls["parent"] += 1
        return True

    def child(flow: mos.Flow, side: mos.Side, event: Any) -> bool:
        calls["child"] += 1
        return True

    p = mos.define_event(mos.ON_CONN_NEW_DATA, parent)
    c = mos.define_event(p, child)
    mon = mos.Monitor()
    sock = mon.socket()
    sock.on(mos.ON_CONN_NEW_DATA, callback=lambda f, s, e: None)   # the base alone
    mon.run(exchange())
    assert calls == {"parent": 0, "child": 0}

    mon = mos.Monitor()
    mon.socket().on(c, callback=lambda f, s, e: None)              # only the grandchild
    mon.run(exchange())
    assert calls == {"parent": 4, "child": 4}


def test_false_prunes_and_a_chain_is_and() -> None:
    calls: list[str] = []
    hits: dict[str, list[bytes]] = defaultdict(list)

    def from_client(flow: mos.Flow, side: mos.Side, event: Any) -> bool:
        calls.append("from_client")
        return side == mos.SVR

    def is_post(flow: mos.Flow, side: mos.Side, event: Any) -> bool:
        calls.append("is_post")
        return chunk(flow, side, event).startswith(b"POST ")

    client_data = mos.define_event(mos.ON_CONN_NEW_DATA, from_client)
    post = mos.define_event(client_data, is_post)
    mon = mos.Monitor()
    sock = mon.socket()
    sock.on(client_data, callback=lambda f, s, e: hits["client"].append(chunk(f, s, e)))
    sock.on(post, callback=lambda f, s, e: hits["post"].append(chunk(f, s, e)))
    mon.run(exchange())
    assert hits == {"client": [b"GET /a H", b"POST /b "], "post": [b"POST /b "]}
    # server data: from_client is false, is_post never runs for it
    assert calls == ["from_client", "is_post", "from_client", "from_client", "is_post",
                     "from_client"]


def test_user_event_carries_the_builtin_base() -> None:
    got: list[Any] = []

    def anything(flow: mos.Flow, side: mos.Side, event: Any) -> bool:
        got.append(("filter", type(event).__name__, event.base.name, event.hook))
        return True

    ude = mos.define_event(mos.ON_CONN_NEW_DATA, anything, name="anything")
    mon = mos.Monitor()
    sock = mon.socket()
    sock.on(ude, callback=lambda f, s, e: got.append(
        ("cb", e.type is ude, e.name, e.base.offset, e.base.length, e.details())))
    frames = exchange()[:4]
    mon.run(frames)
    assert got == [("filter", "UserEvent", "ON_CONN_NEW_DATA", mos.NULL),
                   ("cb", True, "anything", 0, 19, {"offset": 0, "length": 19})]


def test_a_raising_filter_is_counted_and_prunes() -> None:
    def broken(flow: mos.Flow, side: mos.Side, event: Any) -> bool:
        raise KeyError("oops")

    ude = mos.define_event(mos.ON_CONN_NEW_DATA, broken)
    mon = mos.Monitor()
    sock = mon.socket()
    hits: list[int] = []
    sock.on(ude, callback=lambda f, s, e: hits.append(1))
    mon.run(exchange())
    assert hits == []
    assert len(mon.failures) == 4
    assert mon.failures[0].where == "filter"

    strict = mos.Monitor(mos.MonitorConfig(strict=True))
    strict.socket().on(ude, callback=lambda f, s, e: None)
    with pytest.raises(mos.CallbackError):
        strict.run(exchange())


def test_multi_outcome_filter_with_alloc_and_raise() -> None:
    log: list[tuple[str, bytes]] = []

    def classify(flow: mos.Flow, side: mos.Side, event: Any) -> bool:
        head = chunk(flow, side, event)
        if head.startswith(b"GET "):
            mos.raise_event(flow, GET)
        elif head.startswith(b"POST "):
            mos.raise_event(flow, POST)
            flow.raise_event(ANY_BODY)               # the method form works too
        log.append(("filter", head[:4]))
        return False                                 # the parent itself never fires

    parent = mos.define_event(mos.ON_CONN_NEW_DATA, classify, name="classify")
    GET = mos.alloc_event(parent, name="get")
    POST = mos.alloc_event(parent, name="post")
    ANY_BODY = mos.alloc_event(parent, name="body")
    assert GET.floating and GET.base is parent and GET is not POST
    mon = mos.Monitor()
    sock = mon.socket()
    sock.on(parent, callback=lambda f, s, e: log.append(("parent", b"")))
    sock.on(GET, callback=lambda f, s, e: log.append((e.name, chunk(f, s, e)[:4])))
    sock.on(POST, callback=lambda f, s, e: log.append((e.name, chunk(f, s, e)[:4])))
    sock.on(ANY_BODY, callback=lambda f, s, e: log.append((e.name, chunk(f, s, e)[:4])))
    mon.run(exchange())
    assert log == [
        ("filter", b"GET "), ("get", b"GET "),
        ("filter", b"HTTP"),
        ("filter", b"POST"), ("post", b"POST"), ("body", b"POST"),
        ("filter", b"HTTP"),
    ]


def test_floating_event_without_a_callback_is_harmless() -> None:
    def classify(flow: mos.Flow, side: mos.Side, event: Any) -> bool:
        mos.raise_event(flow, NOBODY)
        return True

    parent = mos.define_event(mos.ON_CONN_NEW_DATA, classify)
    NOBODY = mos.alloc_event(parent)
    mon = mos.Monitor()
    hits: list[int] = []
    mon.socket().on(parent, callback=lambda f, s, e: hits.append(1))
    mon.run(exchange())
    assert hits == [1, 1, 1, 1]
    assert mon.failures == []


def test_raise_event_misuse() -> None:
    def f(flow: mos.Flow, side: mos.Side, event: Any) -> bool:
        return True

    parent = mos.define_event(mos.ON_CONN_NEW_DATA, f)
    child = mos.alloc_event(parent)
    mon = mos.Monitor()
    sock = mon.socket()
    errors: list[int] = []

    def cb(flow: mos.Flow, side: mos.Side, event: Any) -> None:
        for ev in (child, parent):
            try:
                mos.raise_event(flow, ev)
            except mos.MosError as exc:
                errors.append(exc.errno)
    sock.on(mos.ON_CONN_NEW_DATA, callback=cb)

    mon.run(exchange()[:4])
    assert errors == [errno.EPERM, errno.EINVAL]      # outside a filter; not a floating event


# --------------------------------------------------------------------------------------------
# the man-page chain on a real capture: HTTP_REQ = NEW_DATA & is_http_request,
# HTTP_POST = HTTP_REQ & is_post
# --------------------------------------------------------------------------------------------

METHODS = (b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"OPTIONS ", b"PATCH ")


def _client_streams(pcap: Path, port: int) -> dict[tuple[str, int], bytes]:
    """Client->server bytes of each connection to ``port``, reassembled independently with
    dpkt (by sequence number, first copy wins)."""
    segs: dict[tuple[str, int], dict[int, bytes]] = defaultdict(dict)
    isn: dict[tuple[str, int], int] = {}
    with pcap.open("rb") as fh:
        for _ts, buf in dpkt.pcap.Reader(fh):
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            if not isinstance(ip, dpkt.ip.IP) or not isinstance(ip.data, dpkt.tcp.TCP):
                continue
            tcp = ip.data
            if tcp.dport != port:
                continue
            key = (".".join(str(b) for b in ip.src), tcp.sport)
            if tcp.flags & dpkt.tcp.TH_SYN:
                isn[key] = tcp.seq
            elif tcp.data:
                segs[key].setdefault((tcp.seq - isn[key] - 1) % (1 << 32), bytes(tcp.data))
    out = {}
    for key, pieces in segs.items():
        data = bytearray()
        for off in sorted(pieces):
            piece = pieces[off]
            if off + len(piece) > len(data):
                data += piece[len(data) - off:]
        out[key] = bytes(data)
    return out


def _parse_requests(data: bytes) -> list[tuple[int, bytes]]:
    """(offset, method) of each HTTP/1.1 request in a client byte stream."""
    out = []
    pos = 0
    while pos < len(data):
        end = data.index(b"\r\n\r\n", pos)
        head = data[pos:end].decode("latin-1")
        method = head.split(" ", 1)[0].encode()
        length = 0
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        out.append((pos, method))
        pos = end + 4 + length
    return out


def test_http_request_and_post_chain(samples: Path) -> None:
    pcap = samples / "http_small.pcap"
    truth = json.loads(pcap.with_suffix(".json").read_text())
    http = [c for c in truth["connections"] if c["type"] == "http"]
    streams = _client_streams(pcap, 80)
    expected: dict[int, list[tuple[int, bytes]]] = {}
    for conn in http:
        data = streams[(conn["client"]["ip"], conn["client"]["port"])]
        # the independent reassembly is the application's truth, byte for byte
        assert hashlib.sha256(data).hexdigest() == conn["c2s"]["received_sha256"]
        requests = _parse_requests(data)
        assert len(requests) == conn["client_app"]["requests"] == conn["server_app"]["requests"]
        expected[conn["client"]["port"]] = requests
    n_requests = sum(len(r) for r in expected.values())
    n_posts = sum(1 for r in expected.values() for _o, m in r if m == b"POST")
    assert n_requests == sum(c["client_app"]["requests"] for c in http)
    assert 0 < n_posts < n_requests

    filter_calls = {"req": 0, "post": 0}

    def is_http_request(flow: mos.Flow, side: mos.Side, event: Any) -> bool:
        filter_calls["req"] += 1
        return flow.ppeek(side, event.base.offset, 8).startswith(METHODS)

    def is_post(flow: mos.Flow, side: mos.Side, event: Any) -> bool:
        filter_calls["post"] += 1
        return flow.ppeek(side, event.base.offset, 8).startswith(b"POST ")

    HTTP_REQ = mos.define_event(mos.ON_CONN_NEW_DATA, is_http_request, name="http_req")
    HTTP_POST = mos.define_event(HTTP_REQ, is_post, name="http_post")
    mon = mos.Monitor()
    sock = mon.socket()
    sock.bind_filter(syn="tcp dst port 80")
    seen: dict[str, list[tuple[int, str, int]]] = {"req": [], "post": []}
    chunk_starts: dict[int, set[int]] = defaultdict(set)

    def on_req(flow: mos.Flow, side: mos.Side, event: Any) -> None:
        seen["req"].append((client_port(flow), side.name, event.base.offset))
    sock.on(HTTP_REQ, callback=on_req)

    def on_post(flow: mos.Flow, side: mos.Side, event: Any) -> None:
        seen["post"].append((client_port(flow), side.name, event.base.offset))
    sock.on(HTTP_POST, callback=on_post)

    def new_data(flow: mos.Flow, side: mos.Side, event: Any) -> None:
        if side == mos.SVR:
            chunk_starts[client_port(flow)].add(event.offset)
    sock.on(mos.ON_CONN_NEW_DATA, callback=new_data)

    mon.run(ReplaySource([pcap]))
    # in this capture every request starts a NEW_DATA chunk, so a chunk-start filter sees all
    for port, requests in expected.items():
        assert {off for off, _m in requests} <= chunk_starts[port]
    assert len(seen["req"]) == n_requests
    assert len(seen["post"]) == n_posts
    assert {s for _p, s, _o in seen["req"]} == {"SVR"}         # client->server bytes
    assert sorted(seen["req"]) == sorted((p, "SVR", o) for p, r in expected.items()
                                         for o, _m in r)
    assert sorted(seen["post"]) == sorted((p, "SVR", o) for p, r in expected.items()
                                          for o, m in r if m == b"POST")
    assert filter_calls["post"] == n_requests                   # only under a true HTTP_REQ
    assert filter_calls["req"] > n_requests                     # responses were checked too
