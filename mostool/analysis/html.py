"""Rich notebook display of the engine's live objects: a ``Flow`` handle and event values.

The engine stays free of display code: when ``mostool.analysis`` is imported inside IPython,
``register()`` adds HTML formatters for these types to the running shell, so a live flow (a
stepper's ``hit.flow``, a flow kept from a callback) shows both stacks' states, the bytes each
way and the buffers, and an event shows its name, hook and fields. Every value is escaped:
addresses and names can come from the capture.
"""

from __future__ import annotations

import html
from typing import Any

__all__ = ["flow_html", "event_html", "register"]


def _row(cells: list[Any], tag: str = "td") -> str:
    return "<tr>" + "".join(f"<{tag}>{html.escape(str(c))}</{tag}>" for c in cells) + "</tr>"


def flow_html(flow: Any) -> str:
    """A compact table: both stacks' states, bytes and buffer offsets, per side."""
    from mostool.events.types import Side
    head = (f"<b>flow {flow.id}</b> {html.escape(flow.client)} &gt; "
            f"{html.escape(flow.server)}" + (" (ended)" if flow.ended else ""))
    rows = [_row(["side", "state", "receives", "bytes seen", "next expected", "buffer head",
                  "last read"], "th")]
    for side, label in ((Side.CLI, "CLI (client's stack)"), (Side.SVR, "SVR (server's stack)")):
        try:
            info = flow.buf_info(side)
            state = flow.state(side).name
        except Exception:  # noqa: BLE001 - a closed flow: show what is left
            rows.append(_row([label, "-", "-", "-", "-", "-", "-"]))
            continue
        receives = "server > client" if side == Side.CLI else "client > server"
        rows.append(_row([label, state, receives, info.last_byte_received,
                          info.next_byte_expected, info.head, info.last_byte_read]))
    return f"<div>{head}<table>{''.join(rows)}</table></div>"


def event_html(event: Any) -> str:
    details = event.details() if hasattr(event, "details") else {}
    fields = ", ".join(f"{html.escape(str(k))}={html.escape(str(v))}"
                       for k, v in details.items())
    return (f"<code>{html.escape(str(event.type.name))}</code> at "
            f"{html.escape(event.hook.name)}" + (f" ({fields})" if fields else ""))


def register() -> bool:
    """Add the formatters to the running IPython shell; False outside IPython."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    from mostool.events.types import Event, UserEvent
    from mostool.stack.flow import Flow
    formatter = shell.display_formatter.formatters["text/html"]
    formatter.for_type(Flow, flow_html)
    formatter.for_type(Event, event_html)
    formatter.for_type(UserEvent, event_html)
    return True
