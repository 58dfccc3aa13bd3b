"""mostool: the mOS TCP monitoring programming model over pcap replay and live capture.

    import mostool as mos
    mon = mos.Monitor()
    sock = mon.socket(mos.MONITOR_STREAM)
    sock.bind_filter(syn="tcp port 80")

    @sock.on(mos.ON_CONN_NEW_DATA)
    def data(flow, side, event):
        print(flow.client, flow.server, flow.ppeek(side, event.offset, event.length))

    mon.run(mos.replay("capture.pcap"))
"""

# first: decides compiled or pure before any engine module loads (see _build.py)
from mostool._build import COMPILED as COMPILED
from mostool._build import version_text as version_text
from mostool.config import MonitorConfig
from mostool.errors import BytesLost, CallbackError, MosError
from mostool.events.types import (
    BUILTIN_EVENTS,
    ON_CONN_END,
    ON_CONN_NEW_DATA,
    ON_CONN_START,
    ON_ERROR,
    ON_ORPHAN,
    ON_PKT_IN,
    ON_REXMIT,
    ON_TCP_STATE_CHANGE,
    ON_TIMEOUT,
    ConnEnd,
    ConnNewData,
    ConnStart,
    ErrorEvent,
    Event,
    EventType,
    Hook,
    Orphan,
    PktIn,
    Rexmit,
    Side,
    TcpState,
    TcpStateChange,
    Timeout,
    UserEvent,
)
from mostool.events.ude import alloc_event, define_event
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
from mostool.summary import DirectionSummary, FlowSummary

HK_SND = Hook.HK_SND
HK_RCV = Hook.HK_RCV
NULL = Hook.NULL
CLI = Side.CLI
SVR = Side.SVR
BOTH = Side.BOTH


def __getattr__(name: str) -> object:
    # mos.replay("x.pcap") and mos.live("eth0"): callable modules, imported on first use so
    # that importing the engine loads no capture or I/O module
    if name in ("replay", "live"):
        import importlib
        return importlib.import_module(f"mostool.{name}")
    if name == "analyze":           # the notebook extra (pandas, matplotlib): on first use
        from mostool.analysis import analyze
        return analyze
    raise AttributeError(f"module 'mostool' has no attribute {name!r}")


def raise_event(flow: Flow, child: EventType) -> None:
    """Raise a floating event (from ``alloc_event``) inside a UDE filter."""
    flow.raise_event(child)


__all__ = [
    "Monitor", "MonitorSocket", "MonitorConfig", "Flow", "FlowSummary", "DirectionSummary",
    "PacketInfo", "MONITOR_STREAM",
    "MONITOR_RAW", "Hook", "Side", "TcpState", "HK_SND", "HK_RCV", "NULL", "CLI", "SVR", "BOTH",
    "EventType", "Event", "UserEvent", "PktIn", "ConnStart", "ConnNewData", "ErrorEvent",
    "Timeout", "TcpStateChange", "Orphan", "Rexmit", "ConnEnd", "BUILTIN_EVENTS",
    "ON_PKT_IN", "ON_CONN_START", "ON_CONN_NEW_DATA", "ON_ERROR", "ON_TIMEOUT",
    "ON_TCP_STATE_CHANGE", "ON_ORPHAN", "ON_REXMIT", "ON_CONN_END",
    "define_event", "alloc_event", "raise_event", "MosError", "BytesLost", "CallbackError",
    "SOCKOPT_RCVBUF_CLI", "SOCKOPT_RCVBUF_SVR", "SOCKOPT_OVERLAP_CLI", "SOCKOPT_OVERLAP_SVR",
    "SOCKOPT_STOP_MON", "replay", "live", "MemorySource", "Source", "analyze",
]
