"""http: HTTP/1.x requests and responses, found with a chain of UDEs on ON_CONN_NEW_DATA.

The chain (each UDE's filter runs only when its parent's passed)::

    ON_CONN_NEW_DATA
      └─ http            the client's first bytes are an HTTP request line (decided once per flow)
           ├─ http_request    new client->server bytes complete one or more request heads
           └─ http_response   new server->client bytes complete one or more response heads

Message boundaries come from the heads (Content-Length, chunked encoding, responses without a
body); the bodies are skipped by offset, so only heads are ever read from the stream buffer.
A gap in the stream (bytes the capture missed) ends the parsing of that direction. At the end
it prints the totals by method and status, and the response body bytes per flow.

    mostool run --app http -r capture.pcap
    mostool watch --app http -r capture.pcap      # http, http_request, http_response in the view
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import IO, Any

import mostool as mos
from mostool.text import columns, printable

__all__ = ["setup", "HttpApp", "METHODS", "HTTP", "HTTP_REQUEST", "HTTP_RESPONSE"]

METHODS = (b"GET", b"POST", b"PUT", b"HEAD", b"DELETE", b"OPTIONS", b"PATCH", b"CONNECT",
           b"TRACE")
MAX_HEAD = 64 * 1024
LINE_SHOWN = 512            # characters of a start line printed
BUFFER = 256 * 1024          # per side; heads are read as soon as they are complete


class _Message:
    __slots__ = ("offset", "start_line", "headers", "body", "length", "method")

    def __init__(self, offset: int, start_line: str, headers: dict[str, str],
                 method: str = "") -> None:
        self.offset = offset
        self.start_line = start_line
        self.headers = headers
        self.body = "none"           # none, length, chunked, close
        self.length = 0              # body bytes (known at the end of the body)
        self.method = method


class _Direction:
    """Parsing state of one direction of one flow."""

    __slots__ = ("pos", "mode", "body_end", "after", "lost", "done", "current", "body_bytes")

    def __init__(self) -> None:
        self.pos = 0                 # stream offset of what to parse next
        self.mode = "head"           # head, body, chunk, trailer, close
        self.body_end = 0
        self.after = "head"          # what follows the body being skipped: head or chunk
        self.lost = False
        self.done: list[_Message] = []   # heads completed by the latest data, not yet reported
        self.current: _Message | None = None
        self.body_bytes = 0          # message body bytes (chunk framing excluded)


class _FlowState:
    __slots__ = ("is_http", "req", "resp", "methods", "requests", "responses")

    def __init__(self) -> None:
        self.is_http: bool | None = None
        self.req = _Direction()
        self.resp = _Direction()
        self.methods: list[str] = []     # request methods waiting for their response
        self.requests = 0
        self.responses = 0


def _state(flow: Any) -> _FlowState:
    st = flow.uctx
    if not isinstance(st, _FlowState):
        st = flow.uctx = _FlowState()
    return st


# -- the UDE filters ------------------------------------------------------------------------------


def is_http(flow: Any, side: mos.Side, event: Any) -> bool:
    """The client's stream starts with '<METHOD> ' (decided on its first bytes, then cached)."""
    st = _state(flow)
    if st.is_http is None:
        if flow.midstream:
            return _midstream_http(flow, st)
        first = flow.ppeek(mos.SVR, 0, 8)
        if len(first) >= 8 or (first and b" " in first):
            st.is_http = first.split(b" ", 1)[0] in METHODS
        elif flow.to_server.bytes_seen:
            st.is_http = False          # the client's first bytes are gone (a gap)
        else:
            return False                # no client bytes yet: undecided
    return st.is_http


def _midstream_http(flow: Any, st: _FlowState) -> bool:
    """A flow picked up midstream (--midstream) starts anywhere in a message: it is HTTP once
    a request line or a status line shows up in the first MAX_HEAD bytes of either direction
    (the parsers then start there); undecided until then, not HTTP after."""
    requests = flow.ppeek(mos.SVR, 0, MAX_HEAD)
    responses = flow.ppeek(mos.CLI, 0, MAX_HEAD)
    if _start_line(requests, True) >= 0 or _start_line(responses, False) >= 0:
        st.is_http = True
    elif len(requests) >= MAX_HEAD or len(responses) >= MAX_HEAD or \
            flow.to_server.bytes_seen >= MAX_HEAD or flow.to_client.bytes_seen >= MAX_HEAD:
        st.is_http = False
    return bool(st.is_http)


def _start_line(data: bytes, request: bool) -> int:
    """Offset of the first line of ``data`` that starts an HTTP request (or response), -1."""
    at = 0
    while 0 <= at < len(data):
        if request:
            word = data[at:at + 8].split(b" ", 1)
            if len(word) == 2 and word[0] in METHODS:
                return at
        elif data.startswith(b"HTTP/1.", at):
            return at
        at = data.find(b"\r\n", at)
        if at >= 0:
            at += 2
    return -1


def new_requests(flow: Any, side: mos.Side, event: Any) -> bool:
    if side != mos.SVR:
        return False
    st = _state(flow)
    _parse(flow, mos.SVR, st.req, st, request=True)
    return bool(st.req.done)


def new_responses(flow: Any, side: mos.Side, event: Any) -> bool:
    if side != mos.CLI:
        return False
    st = _state(flow)
    _parse(flow, mos.CLI, st.resp, st, request=False)
    return bool(st.resp.done)


HTTP = mos.define_event(mos.ON_CONN_NEW_DATA, is_http, name="http")
HTTP_REQUEST = mos.define_event(HTTP, new_requests, name="http_request")
HTTP_RESPONSE = mos.define_event(HTTP, new_responses, name="http_response")


# -- parsing --------------------------------------------------------------------------------------


def _parse(flow: Any, side: mos.Side, d: _Direction, st: _FlowState, *, request: bool) -> None:
    """Advance ``d`` over every complete head and skipped body in the in-order bytes."""
    if d.lost:
        return
    view = flow.to_server if side == mos.SVR else flow.to_client
    end = view.next_offset
    while d.pos < end:
        if d.mode == "close":            # the body runs until the connection closes
            if d.current is not None:
                d.current.length += end - d.pos
                d.body_bytes += end - d.pos
            d.pos = end
            return
        if d.mode == "body":
            stop = min(d.body_end, end)
            d.body_bytes += stop - d.pos
            d.pos = stop
            if d.pos == d.body_end:
                d.mode = d.after
            continue
        data = flow.ppeek(side, d.pos, MAX_HEAD)
        if not data:
            d.lost = True                # a gap, or bytes no longer buffered
            return
        if d.mode == "chunk":
            if not _chunk(d, data):
                return
            continue
        if d.mode == "trailer":
            cut = data.find(b"\r\n\r\n") if not data.startswith(b"\r\n") else -2
            if cut == -1:
                return
            d.pos += cut + 4
            d.mode = "head"
            continue
        # a head
        if d.current is None and flow.midstream:
            start = _start_line(data, request)   # picked up midstream: skip to the first head
            if start < 0:
                d.pos += max(len(data) - 8, 0)
                return
            d.pos += start
            data = data[start:]
        cut = data.find(b"\r\n\r\n")
        if cut == -1:
            if len(data) >= MAX_HEAD:
                d.lost = True
            return
        head = data[:cut].decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        method = head[0].split(" ", 1)[0] if request else (st.methods.pop(0) if st.methods
                                                            else "")
        msg = _Message(d.pos, head[0], headers, method)
        d.pos += cut + 4
        _body(msg, headers, request)
        if request:
            st.methods.append(method)
            st.requests += 1
        else:
            st.responses += 1
        d.done.append(msg)
        if msg.body == "length":
            d.mode = "body"
            d.after = "head"
            d.body_end = d.pos + msg.length
        elif msg.body == "chunked":
            d.mode = "chunk"
        elif msg.body == "close":
            d.mode = "close"
        d.current = msg


def _body(msg: _Message, headers: dict[str, str], request: bool) -> None:
    if not request:
        parts = msg.start_line.split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        if msg.method == "HEAD" or 100 <= status < 200 or status in (204, 304):
            return
    if "chunked" in headers.get("transfer-encoding", "").lower():
        msg.body = "chunked"
    elif headers.get("content-length", "").isdigit():
        msg.length = int(headers["content-length"])
        msg.body = "length" if msg.length else "none"
    elif not request:
        msg.body = "close"


def _chunk(d: _Direction, data: bytes) -> bool:
    """One chunk-size line (and the chunk it announces); False to wait for more bytes."""
    line_end = data.find(b"\r\n")
    if line_end == -1:
        if len(data) >= MAX_HEAD:
            d.lost = True
        return False
    try:
        size = int(data[:line_end].split(b";", 1)[0].strip() or b"x", 16)
    except ValueError:
        d.lost = True
        return False
    if size == 0:
        d.pos += line_end + 2
        d.mode = "trailer"
        return True
    d.pos += line_end + 2
    d.mode = "body"
    d.after = "chunk"
    d.body_end = d.pos + size + 2        # the chunk and its CRLF
    if d.current is not None:
        d.current.length += size
    d.body_bytes -= 2                   # the CRLF is no body byte
    return True


def _shown(start_line: str) -> str:
    """A request or status line as a terminal may show it: its bytes (kept as latin-1) read as
    UTF-8, controls escaped, at most ``LINE_SHOWN`` characters."""
    return printable(start_line.encode("latin-1"), LINE_SHOWN)


# -- the app --------------------------------------------------------------------------------------


class HttpApp:
    def __init__(self, mon: mos.Monitor, out: IO[str] | None = None, quiet: bool = False,
                 port: int | None = None) -> None:
        self.out = out
        self.quiet = quiet
        self.methods: dict[str, int] = {}
        self.statuses: dict[str, int] = {}
        self.flows: dict[int, tuple[str, str, int, int, int, int]] = {}
        sock = mon.socket(mos.MONITOR_STREAM)
        if port is not None:
            sock.bind_filter(syn=f"tcp dst port {port}")
        sock.setsockopt(mos.SOCKOPT_RCVBUF_CLI, BUFFER)
        sock.setsockopt(mos.SOCKOPT_RCVBUF_SVR, BUFFER)
        sock.on(HTTP_REQUEST, callback=self.request)
        sock.on(HTTP_RESPONSE, callback=self.response)
        sock.on(mos.ON_CONN_END, mos.HK_RCV, self.ended)

    def _print(self, line: str) -> None:
        if not self.quiet:
            print(line, file=self.out or sys.stdout)

    def request(self, flow: Any, side: mos.Side, event: Any) -> None:
        d = _state(flow).req
        for msg in d.done:
            m = msg.method
            self.methods[m] = self.methods.get(m, 0) + 1
            self._print(f"#{flow.id} {flow.client} > {flow.server}  {_shown(msg.start_line)}")
        d.done.clear()

    def response(self, flow: Any, side: mos.Side, event: Any) -> None:
        d = _state(flow).resp
        for msg in d.done:
            parts = msg.start_line.split(" ", 2)
            status = parts[1] if len(parts) > 1 else "?"
            self.statuses[status] = self.statuses.get(status, 0) + 1
            body = {"length": f"{msg.length} bytes", "chunked": "chunked",
                    "close": "until close", "none": "no body"}[msg.body]
            self._print(f"#{flow.id} {flow.client} < {flow.server}  {_shown(msg.start_line)} "
                        f"({body}, answers {msg.method or '?'})")
        d.done.clear()

    def ended(self, flow: Any, side: mos.Side, event: Any) -> None:
        st = flow.uctx
        if isinstance(st, _FlowState) and st.is_http:
            self.flows[flow.id] = (flow.client, flow.server, st.requests, st.responses,
                                   st.req.body_bytes, st.resp.body_bytes)

    def report(self) -> None:
        out = self.out or sys.stdout
        reqs = sum(self.methods.values())
        resps = sum(self.statuses.values())
        methods = ", ".join(f"{m} {n}" for m, n in sorted(self.methods.items()))
        statuses = ", ".join(f"{s} {n}" for s, n in sorted(self.statuses.items()))
        print(f"http: {reqs} request(s) ({methods or 'none'}), {resps} response(s) "
              f"({statuses or 'none'}) on {len(self.flows)} flow(s)", file=out)
        rows = []
        for fid in sorted(self.flows):
            client, server, nreq, nresp, req_body, resp_body = self.flows[fid]
            rows.append([f"#{fid}", client, server, f"{nreq} requests ({req_body} body bytes),",
                         f"{nresp} responses ({resp_body} body bytes)"])
        for line in columns(rows, "<<<<<"):
            print("  " + line, file=out)


def setup(mon: mos.Monitor, out: IO[str] | None = None, quiet: bool = False,
          port: int | None = None) -> Callable[[], None]:
    return HttpApp(mon, out, quiet, port).report
