"""Rich renderables for the watch view and its final summary (pure functions of a Snapshot)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rich import box
from rich.console import Group, RenderableType
from rich.layout import Layout
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from mostool.text import printable
from mostool.view.model import FeedEntry, FlowRow, Snapshot

__all__ = ["render_screen", "render_summary", "layout_sizes", "fmt_bytes", "fmt_count",
           "fmt_duration", "KIND_STYLES"]

KIND_STYLES = {
    "start": "green",
    "end": "blue",
    "state": "cyan",
    "error": "bold red",
    "rexmit": "yellow",
    "timeout": "magenta",
    "ude": "bold bright_magenta",
    "data": "dim",
    "orphan": "dim",
    "failure": "bold white on red",
    "event": "white",
}
HEADER_SIZE = 4
FOOTER_SIZE = 1
KEYS = "q quit  s sort  p pause"


def _scaled(n: float, units: tuple[tuple[str, float], ...], big: str,
            small: Callable[[float], str]) -> str:
    """``n`` in the largest of ``units`` (largest first) it reaches, formatted by ``big``
    (value, unit); below the smallest, ``small(n)``."""
    for unit, scale in units:
        if n >= scale:
            return big.format(n / scale, unit)
    return small(n)


def fmt_count(n: float) -> str:
    """12,345 below a million, then 1.23M / 4.5G."""
    return _scaled(n, (("G", 1e9), ("M", 1e6)), "{:.3g}{}", lambda v: f"{int(v):,}")


def fmt_rate(n: float) -> str:
    return _scaled(n, (("G", 1e9), ("M", 1e6), ("k", 1e3)), "{:.1f}{}", lambda v: f"{v:.0f}")


def fmt_bytes(n: float) -> str:
    """Bytes in decimal units: 950 B, 71.9 kB, 3.2 MB."""
    return _scaled(n, (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)), "{:.1f} {}",
                   lambda v: f"{int(v)} B")


def fmt_duration(s: float) -> str:
    """0.101s, 12.3s, 5m02s, 2h03m, 9d00h."""
    if s < 10:
        return f"{s:.3f}s"
    if s < 60:
        return f"{s:.1f}s"
    if s < 3600:
        m, sec = divmod(int(s), 60)
        return f"{m}m{sec:02d}s"
    if s < 86400:
        h, rest = divmod(int(s), 3600)
        return f"{h}h{rest // 60:02d}m"
    d, rest = divmod(int(s), 86400)
    return f"{d}d{rest // 3600:02d}h"


def layout_sizes(height: int) -> tuple[int, int]:
    """(flow rows, bottom section height) for a terminal ``height`` lines tall."""
    room = max(height - HEADER_SIZE - FOOTER_SIZE, 12)
    bottom = max(min(room // 2, 14), 8)
    flows = max(room - bottom - 4, 3)          # panel borders, header row and its rule
    return flows, bottom


# -- the live screen ------------------------------------------------------------------------------


def render_header(snap: Snapshot) -> RenderableType:
    grid = Table.grid(expand=True, padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(ratio=1)
    grid.add_column(no_wrap=True, justify="right")
    kind = snap.kind
    if snap.progress is not None:
        pos, total = snap.progress
        pct = 100.0 if snap.finished else (100.0 * pos / total if total else 0.0)
        eta = "done" if snap.finished else (
            f"ETA {fmt_duration(snap.eta)}" if snap.eta is not None else "ETA -")
        grid.add_row(Text.assemble((f"{kind} ", "bold"), (printable(snap.source), "bold cyan")),
                     ProgressBar(total=100.0, completed=pct),
                     f"{pct:5.1f}%  {eta}")
    else:
        extra = ""
        if snap.capture:
            parts = [f"{label} {fmt_count(snap.capture[k])}" for k, label in
                     (("packets", "captured"), ("received", "received by filter"),
                      ("kernel_drops", "dropped by kernel"), ("ifdrops", "by interface"))
                     if isinstance(snap.capture.get(k), int | float)]
            extra = "  ".join(parts)
        status = "finished" if snap.finished else ("paused" if snap.paused else "running")
        if snap.waiting is not None and not snap.finished:
            status = f"waiting {fmt_duration(snap.waiting)} for the next packet"
        grid.add_row(Text.assemble((f"{kind} ", "bold"), (printable(snap.source), "bold cyan")),
                     Text(extra), status)
    wait = ([(f"waiting {fmt_duration(snap.waiting)} for the next packet (a gap in the "
              "recorded time)  ", "bold yellow")]
            if snap.waiting is not None and snap.waiting >= 1.0 and not snap.finished else [])
    line = Text.assemble(
        *wait,
        ("packets ", "dim"), (fmt_count(snap.packets), "bold"), (f" ({fmt_rate(snap.pps)}/s)  ",
                                                                 "dim"),
        ("bytes ", "dim"), (fmt_bytes(snap.bytes), "bold"),
        (f" ({fmt_bytes(snap.bps)}/s)  ", "dim"),
        ("flows ", "dim"), (fmt_count(snap.flows), "bold"),
        ("  active ", "dim"), (fmt_count(snap.active), "bold"),
        ("  packet time ", "dim"), (fmt_duration(snap.packet_time), "bold"),
        ("  wall ", "dim"), (fmt_duration(snap.wall), "bold"),
        no_wrap=True, overflow="ellipsis",
    )
    return Panel(Group(grid, line), title="[bold]mostool watch[/]", title_align="left",
                 box=box.ROUNDED, padding=(0, 1))


def fixed_table(headers: list[str], aligns: str, rows: list[list[Text | str]], width: int,
                flexible: int, drop: tuple[int, ...] = (), shrink: tuple[int, ...] = ()
                ) -> Text:
    """A table as plain fixed-width lines (a rich Table costs ~10x more to lay out, and this
    one is drawn several times a second). ``aligns`` has one "<" or ">" per column; column
    ``flexible`` takes the room left; when there is too little, the ``drop`` columns go (the
    flexible one first), then the ``shrink`` columns are cut with an ellipsis, then the line is
    cropped."""
    cells = [[c if isinstance(c, Text) else Text(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            if c.cell_len > widths[i]:
                widths[i] = c.cell_len
    sep = 2

    def over() -> int:
        shown = [w for w in widths if w]
        return sum(shown) + sep * (len(shown) - 1) - width

    room = -over()
    if room >= 0 or widths[flexible] + room >= 5:
        widths[flexible] += room
    else:
        for i in (flexible, *drop):
            if over() <= 0:
                break
            widths[i] = 0                    # no room: the column goes
        for i in shrink:
            excess = over()
            if excess <= 0:
                break
            widths[i] -= min(excess, max(widths[i] - 8, 0))
    cols = [i for i, w in enumerate(widths) if w]
    out = Text(no_wrap=True, overflow="crop")
    header = Text(style="bold")
    for n, i in enumerate(cols):
        header.append(_fit(Text(headers[i]), widths[i], aligns[i]))
        if n < len(cols) - 1:
            header.append(" " * sep)
    out.append(header)
    out.append("\n" + "─" * min(sum(widths[i] for i in cols) + sep * (len(cols) - 1), width),
               style="dim")
    for row in cells:
        out.append("\n")
        for n, i in enumerate(cols):
            out.append(_fit(row[i], widths[i], aligns[i]))
            if n < len(cols) - 1:
                out.append(" " * sep)
    return out


def _fit(t: Text, width: int, align: str) -> Text:
    if t.cell_len > width:
        t = t.copy()
        t.truncate(max(width - 1, 0))
        t.append("…")
    pad = width - t.cell_len
    if pad <= 0:
        return t
    return Text(" " * pad) + t if align == ">" else t + Text(" " * pad)


def render_flows(snap: Snapshot, rows: int, width: int = 120) -> RenderableType:
    body: list[list[Text | str]] = []
    for r in snap.rows[:rows]:
        dim = "dim" if r.ended else ""
        last = f"END {r.ended}" if r.ended else r.last_event.removeprefix("ON_")
        body.append([Text(str(r.id), style=dim or "bold"), Text(r.client, style=dim),
                     _state(r.client_state, r.ended), Text(r.server, style=dim),
                     _state(r.server_state, r.ended), Text(f"{r.c2s:,}", style=dim),
                     Text(f"{r.s2c:,}", style=dim), Text(f"{r.packets:,}", style=dim),
                     Text(fmt_duration(r.age), style=dim),
                     Text(printable(last), style="dim" if r.ended else _last_style(last))])
    table = fixed_table(["id", "client", "state", "server", "state", "→ bytes", "← bytes",
                         "pkts", "age", "last event"], "><<<<>>>><",
                        body, width - 4, 9, drop=(8, 7), shrink=(2, 4, 3, 1))
    active = f"{snap.active} active" if snap.active else "none active"
    title = f"[bold]flows[/] ({active}, sorted by {snap.sort})"
    return Panel(table, title=title, title_align="left", box=box.ROUNDED, padding=(0, 1))


def _last_style(name: str) -> str:
    if name.startswith(("ERROR", "REXMIT", "TIMEOUT", "stopped")):
        return KIND_STYLES.get(name.split("_")[0].lower(), "yellow")
    if name in ("CONN_START", "TCP_STATE_CHANGE"):
        return ""
    return KIND_STYLES["ude"]


def _state(name: str, ended: str) -> Text:
    if ended:
        return Text(name, style="dim")
    style = {"ESTABLISHED": "green", "CLOSED": "dim", "TIME_WAIT": "dim"}.get(
        name, "yellow" if name.startswith("SYN") else "cyan")
    return Text(name, style=style)


def feed_line(e: FeedEntry, first_ts: float | None) -> Text:
    rel = e.ts - first_ts if first_ts is not None and e.ts >= first_ts else 0.0
    style = KIND_STYLES.get(e.kind, "white")
    if e.kind == "end" and "rst" in e.detail:
        style = "red"
    flow = f"#{e.flow}" if e.flow else "-"
    return Text.assemble((f"{rel:9.4f} ", "dim"), (f"{flow:>5} ", "bold"),
                         (f"{e.side:<4} ", "dim"), (printable(e.name), style),
                         (f" {printable(e.detail)}" if e.detail else "", "dim"), no_wrap=True,
                         overflow="ellipsis")


def render_feed(snap: Snapshot, lines: int) -> RenderableType:
    entries = snap.feed[-lines:] if lines > 0 else []
    body = Group(*(feed_line(e, snap.first_ts) for e in entries)) if entries else Text(
        "no events yet", style="dim")
    return Panel(body, title="[bold]events[/] (latest)", title_align="left", box=box.ROUNDED)


def counter_table(items: Iterable[tuple[str, int, str]]) -> Table:
    t = Table.grid(padding=(0, 1), expand=True)
    t.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
    t.add_column(justify="right", no_wrap=True)
    for name, n, style in items:
        t.add_row(Text(printable(name), style=style), Text(fmt_count(n), style=style or "bold"))
    return t


def _event_items(snap: Snapshot) -> list[tuple[str, int, str]]:
    items: list[tuple[str, int, str]] = []
    for name, n in snap.events.items():
        items.append((name, n, ""))
    for kind, n in sorted(snap.errors.items()):
        items.append((f"  error {kind}", n, "red"))
    for name, n in snap.udes.items():
        items.append((f"{name} (UDE)", n, KIND_STYLES["ude"]))
    return items


_MILD = frozenset({"orphans", "gap bytes", "retransmissions", "gaps", "untracked TCP"})


_SHORT = {"retransmissions": "rexmits", "overlap conflicts": "conflicts",
          "callback errors": "cb errors", "interface drops": "if drops"}


def _anomaly_items(snap: Snapshot, short: bool = False) -> list[tuple[str, int, str]]:
    return [(_SHORT.get(name, name) if short else name, n,
             ("dim" if not n else "yellow" if name in _MILD else "red"))
            for name, n in snap.anomalies.items()]


def render_screen(snap: Snapshot, width: int, height: int) -> RenderableType:
    rows, bottom = layout_sizes(height)
    layout = Layout()
    layout.split_column(
        Layout(render_header(snap), name="header", size=HEADER_SIZE),
        Layout(render_flows(snap, rows, width), name="flows", ratio=1),
        Layout(name="bottom", size=bottom),
        Layout(render_footer(snap), name="footer", size=FOOTER_SIZE),
    )
    layout["bottom"].split_row(
        Layout(render_feed(snap, bottom - 2), name="feed", ratio=6),
        Layout(Panel(counter_table(_event_items(snap)), title="[bold]counters[/]",
                     title_align="left", box=box.ROUNDED), name="counts", ratio=3),
        Layout(Panel(counter_table(_anomaly_items(snap, short=True)),
                     title="[bold]anomalies[/]",
                     title_align="left", box=box.ROUNDED), name="anomalies", ratio=2),
    )
    return layout


def render_footer(snap: Snapshot) -> RenderableType:
    status = ("finished - press q to quit" if snap.finished
              else "paused - press p to resume" if snap.paused else "")
    grid = Table.grid(expand=True)
    grid.add_column()
    grid.add_column(justify="right")
    grid.add_row(Text(KEYS, style="dim"), Text(status, style="bold reverse" if status else ""))
    return grid


# -- the summary printed at exit ------------------------------------------------------------------


def render_summary(snap: Snapshot, top: list[FlowRow], title: str = "mostool watch"
                   ) -> RenderableType:
    head = Text.assemble(
        (f"{title}: ", "bold"), (printable(snap.source or "-"), "bold cyan"),
        f"\n{snap.packets:,} packets, {snap.bytes:,} bytes, {snap.flows:,} "
        f"flow{'' if snap.flows == 1 else 's'} "
        f"in {fmt_duration(snap.packet_time)} of packet time "
        f"({fmt_duration(snap.wall)} wall"
        + (f", {fmt_count(snap.packets / snap.wall)} packets/s)" if snap.wall > 0 else ")"))
    parts: list[RenderableType] = [head]
    flows = Table(title=f"busiest flows (top {len(top)} by bytes)" if top else "no TCP flows",
                  box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    for col, just in (("id", "right"), ("client", "left"), ("server", "left"),
                      ("end", "left"), ("states", "left"), ("c2s bytes", "right"),
                      ("s2c bytes", "right"), ("pkts", "right"), ("duration", "right")):
        flows.add_column(col, justify=just, no_wrap=True)  # type: ignore[arg-type]
    for r in top:
        flows.add_row(*(Text(cell) for cell in (
            str(r.id), r.client, r.server, r.ended or "open",
            f"{r.client_state}/{r.server_state}", f"{r.c2s:,}", f"{r.s2c:,}",
            f"{r.packets:,}", fmt_duration(r.age))))
    if top:
        parts.append(flows)
    counts = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="events", title_justify="left")
    counts.add_column("event", no_wrap=True)
    counts.add_column("count", justify="right")
    for name, n, _style in _event_items(snap):
        counts.add_row(Text(printable(name)), f"{n:,}")
    anomalies = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="anomalies",
                      title_justify="left")
    anomalies.add_column("anomaly", no_wrap=True)
    anomalies.add_column("count", justify="right")
    for name, n, _style in _anomaly_items(snap):
        anomalies.add_row(Text(name), f"{n:,}")
    ends = Table(box=box.SIMPLE_HEAD, pad_edge=False, title="flow ends", title_justify="left")
    ends.add_column("reason", no_wrap=True)
    ends.add_column("flows", justify="right")
    for reason, n in sorted(snap.end_reasons.items(), key=lambda kv: (-kv[1], kv[0])):
        ends.add_row(Text(printable(reason)), f"{n:,}")
    side = Table.grid(padding=(0, 4))
    side.add_row(counts, anomalies, ends)
    parts.append(side)
    for failure in snap.failures:
        parts.append(Text(f"callback error: {printable(str(failure))}", style="red"))
    return Group(*parts)
