"""libpcap BPF filters applied to frames of any link type (through pcapy-ng).

A :class:`BpfFilter` holds one filter expression in tcpdump syntax. It is compiled eagerly for
Ethernet, so a bad expression fails where it is written (:class:`BpfError`, with libpcap's own
message), and lazily for every other link type the first time a frame of that type is tested.
The compiled program is libpcap's: ``matches`` answers exactly what tcpdump would for that frame.

pcap files name link layers by ``LINKTYPE_*`` value, while libpcap's compiler wants the
platform's ``DLT_*`` value. They are equal except for a few historical types; raw IP
(``LINKTYPE_RAW`` 101) is the one that matters, compiled as ``DLT_RAW`` (12 on Linux).

Where libpcap cannot compile the expression for a link type at all (an unknown link type, or
``vlan`` on raw IP), frames of that type never match and the type is recorded in
``uncompilable_linktypes``, with libpcap's reason available from :meth:`BpfFilter.compile_error`.
An expression libpcap proves can never match on that link type (``ip6`` on raw IPv4) simply
matches nothing.

Note: libpcap resolves host and network names (``host example.org``) while compiling, which may
query DNS.
"""

from __future__ import annotations

import re
from typing import Final, Protocol

import pcapy

__all__ = ["BpfError", "BpfFilter", "compile_filter", "DEFAULT_SNAPLEN"]

DEFAULT_SNAPLEN: Final = 262144

# LINKTYPE_* (pcap file header) -> DLT_* (pcap_compile) where the two differ on this platform.
_LINKTYPE_TO_DLT: Final[dict[int, int]] = {
    100: pcapy.DLT_ATM_RFC1483,  # LINKTYPE_ATM_RFC1483
    101: pcapy.DLT_RAW,  # LINKTYPE_RAW
    108: pcapy.DLT_LOOP,  # LINKTYPE_LOOP
}

_PARSE_PREFIX: Final = "can't parse filter expression: "
_REJECTS_ALL: Final = "expression rejects all packets"


class BpfError(ValueError):
    """A filter expression libpcap does not accept; the message is libpcap's, on one line."""


class _Program(Protocol):
    def filter(self, packet: bytes, /) -> int: ...


def _one_line(message: str) -> str:
    message = " ".join(message.split())
    if message.startswith(_PARSE_PREFIX):
        message = message[len(_PARSE_PREFIX) :]
    return message


class BpfFilter:
    """One BPF expression, compiled by libpcap for each link type it is applied to."""

    __slots__ = ("expression", "snaplen", "uncompilable_linktypes", "_programs", "_errors")

    def __init__(self, expression: str, *, snaplen: int = DEFAULT_SNAPLEN) -> None:
        if not isinstance(expression, str):
            raise TypeError(f"filter expression must be a str, not {type(expression).__name__}")
        if snaplen <= 0:
            raise ValueError(f"snaplen must be positive, got {snaplen}")
        self.expression: str = expression
        self.snaplen: int = snaplen
        self.uncompilable_linktypes: set[int] = set()
        # linktype -> compiled program, or None for "matches nothing on this link type"
        self._programs: dict[int, _Program | None] = {}
        self._errors: dict[int, str] = {}
        try:
            self._programs[1] = self._compile(1)
        except pcapy.PcapError as exc:
            raise BpfError(f"bad filter {expression!r}: {_one_line(str(exc))}") from None

    def _compile(self, linktype: int) -> _Program:
        dlt = _LINKTYPE_TO_DLT.get(linktype, linktype)
        program: _Program = pcapy.compile(dlt, self.snaplen, self.expression, 1, 0)
        return program

    def _program_for(self, linktype: int) -> _Program | None:
        try:
            program: _Program | None = self._compile(linktype)
        except pcapy.PcapError as exc:
            message = _one_line(str(exc))
            program = None
            if message != _REJECTS_ALL:
                self.uncompilable_linktypes.add(linktype)
                self._errors[linktype] = message
        self._programs[linktype] = program
        return program

    def matches(self, linktype: int, frame: bytes) -> bool:
        """Whether libpcap's program for ``linktype`` accepts ``frame`` (the captured bytes)."""
        try:
            program = self._programs[linktype]
        except KeyError:
            program = self._program_for(linktype)
        if program is None:
            return False
        if type(frame) is not bytes:
            frame = bytes(frame)
        return program.filter(frame) != 0

    def compile_error(self, linktype: int) -> str | None:
        """libpcap's reason why this expression could not be compiled for ``linktype``, if any."""
        return self._errors.get(linktype)

    def __repr__(self) -> str:
        return f"BpfFilter({self.expression!r})"


def compile_filter(expression: str | None, *, snaplen: int = DEFAULT_SNAPLEN) -> BpfFilter | None:
    """A :class:`BpfFilter`, or None when there is nothing to filter (None or a blank string)."""
    if expression is None or not expression.strip():
        return None
    return BpfFilter(expression, snaplen=snaplen)


# mOS 0.3 accepts only these words in a stream SYN or orphan filter (IsValidFlowRule)
MOS_FLOW_RULE_WORDS = frozenset({"tcp", "host", "src", "dst", "net", "mask", "port",
                                 "portrange", "and", "or", "not"})
_TOKEN = re.compile(r"\s*(&&|\|\||!|\(|\)|[^\s()!&|]+)")
_VALUE = re.compile(r"^[0-9A-Fa-f:./-]+$")


def check_mos_flow_rule(expression: str) -> None:
    """Refuse what mOS's restricted SYN/orphan filter grammar refuses (raises BpfError)."""
    tokens = _TOKEN.findall(expression)
    words = [t.lower() for t in tokens if t not in ("(", ")", "&&", "||", "!")]
    for word in words:
        if word not in MOS_FLOW_RULE_WORDS and not _VALUE.match(word):
            raise BpfError(f"bad filter {expression!r}: mOS flow filters do not take {word!r}")
    for a, b in zip(tokens, tokens[1:], strict=False):
        if a.lower() in ("not", "!") and b.lower() == "tcp":
            raise BpfError(f"bad filter {expression!r}: mOS flow filters refuse 'not tcp'")
