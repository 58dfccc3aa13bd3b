"""Capture bytes made safe for a person's terminal: one function for every human-facing output.

A capture is attacker-controlled. A request line, a file name, a UDE detail or an address read
from it must never move the cursor, retitle the window or recolour the screen, and must never be
read as ``rich`` markup. Every text output meant for a person (apps, the watch view, tables,
summaries, warnings) passes such values through ``printable``: control characters, invalid
UTF-8 and other non-printable code points come out as backslash escapes (``\\x1b``, ``\\r``,
``\\u202e``), as tcpdump and tshark show them. Machine outputs (JSON, CSV, Parquet, Zeek logs)
stay exact and do not use it. Rich renderables take data as ``rich.text.Text``, never markup.
"""

from __future__ import annotations

__all__ = ["printable", "columns", "ELLIPSIS"]

ELLIPSIS = "…"
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(ch: str) -> str:
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(value: str | bytes | bytearray | memoryview, limit: int | None = None) -> str:
    """``value`` with every non-printable character escaped; bytes are read as UTF-8 (an invalid
    byte shows as ``\\xNN``). With ``limit``, at most that many characters of the escaped text
    are kept, the cut marked with an ellipsis (a long request line stays one line)."""
    if isinstance(value, bytes | bytearray | memoryview):
        text = bytes(value).decode("utf-8", "backslashreplace")
    else:
        text = value
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else _escape_char(ch) for ch in text)
    if limit is not None and len(text) > limit:
        text = text[:max(limit - 1, 0)] + ELLIPSIS
    return text


def columns(rows: list[list[str]], aligns: str, gap: int = 2,
            min_widths: tuple[int, ...] | None = None) -> list[str]:
    """Rows of cells as text lines in columns as wide as their widest cell (at least
    ``min_widths``), ``gap`` spaces apart; with ``gap=0`` a column is one wider than its widest
    cell, so an IPv6 address never runs into the next column. ``aligns`` has one "<" or ">"
    per column. Cells are shown as given: pass data through ``printable`` first."""
    widths = list(min_widths) if min_widths else [0] * len(aligns)
    pad = 0 if gap else 1
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell) + (pad if i < len(row) - 1 else 0))
    sep = " " * gap
    return [sep.join(f"{cell:{aligns[i]}{widths[i]}}" for i, cell in enumerate(row)).rstrip()
            for row in rows]
