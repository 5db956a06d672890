"""The facts of a query's snapshot, in words: one source for the text progress bar, the live
widget (which shows these strings) and the static summary it freezes into."""

from __future__ import annotations

import html
import math
from typing import Any

from workbench.telemetry.tracker import Download, Snapshot, resident


def size(n: float | None) -> str:
    if n is None:
        return "n/a"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:,.0f} B"


def count(n: int, noun: str, plural: str | None = None) -> str:
    """'1 result row', '2 result rows', '1 miss', '3 misses'."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def duration(s: float | None) -> str:
    if s is None:
        return "n/a"
    return f"{s * 1000:,.0f} ms" if s < 1 else f"{s:,.1f} s"


def download_text(d: Download, stopped: bool = False) -> str:
    """A hub download in one line: 'downloading org/name@abc1234: 3/7 files, 12.3/90.1 MB',
    'downloaded org/name@abc1234: 7 files, 90.1 MB in 4.2 s' at the end, and where it stopped
    when its activity ended without it (an error)."""
    scale, unit = (1e9, "GB") if d.bytes_total >= 1e9 else (1e6, "MB")
    if d.finished:
        done = f"{count(d.files_done, 'file')}, {d.bytes_done / scale:.1f} {unit}"
        return f"downloaded {d.repo}: {done} in {duration(d.seconds)}"
    counts = (
        f"{d.files_done}/{count(d.files_total, 'file')}, {d.bytes_done / scale:.1f}/{d.bytes_total / scale:.1f} {unit}"
    )
    return f"download of {d.repo} stopped at {counts}" if stopped else f"downloading {d.repo}: {counts}"


def progress_text(s: Snapshot) -> str:
    if s.activity == "download":
        if s.download is None:
            return "downloading"
        text = download_text(s.download, stopped=s.finished)
        return text + (f" · failed: {s.error}" if s.error else "")
    if s.finished:
        head = f"{count(s.rows_done, 'model row')} in {duration(s.elapsed)}"
        if s.result_rows is not None:
            head += f" · {count(s.result_rows, 'result row')}"
        return head + (f" · failed: {s.error}" if s.error else "")
    total = f"{s.rows_total:,}" if s.rows_total else "?"
    text = f"{s.rows_done:,} / {total} rows · {duration(s.elapsed)}"
    if s.eta is not None:
        text += f" · ETA {duration(s.eta)}"
    return text


def memory_series(s: Snapshot) -> dict[str, list[tuple[float, int]]]:
    """Per device, (seconds, resident bytes): RSS on the CPU, reserved memory on a GPU."""
    out: dict[str, list[tuple[float, int]]] = {}
    for t, devices in s.memory:
        for device, figures in devices.items():
            out.setdefault(device, []).append((t, resident(device, figures)))
    return out


def facts(s: Snapshot) -> list[tuple[str, str]]:
    if s.activity == "download":
        return []  # its one line (progress_text) says it all
    out: list[tuple[str, str]] = []
    if s.operator:
        out.append(("running", s.operator))
    if s.download is not None:  # a hub model this query downloads (its cached copy was lost)
        out.append(("download", download_text(s.download, stopped=s.finished)))
    last = s.memory[-1][1] if s.memory else {}
    for device, figures in last.items():
        kind = device.split(":")[0]
        budget = s.budgets.get(kind)
        text = f"{size(resident(device, figures))} now, peak {size(s.peak.get(device))}"
        if budget:
            text += f", budget {size(budget)} above the {size(s.baseline.get(kind, 0))} at the start"
        parts = [f"{k} {size(v)}" for k, v in figures.items() if k not in ("rss", "reserved")]
        out.append((f"memory {device}", text + (f" ({', '.join(parts)})" if parts else "")))
    if s.moved:
        out.append(("bytes moved", ", ".join(f"{k.replace('->', ' → ')} {size(v)}" for k, v in s.moved.items())))
    if s.tokens:
        out.append(("generated", f"{count(s.tokens, 'token')} ({s.tokens_per_s:,.1f}/s), KV cache {size(s.kv_bytes)}"))
    if s.stream is not None and not s.finished:  # the final result replaces the streamed text
        out.append(("text so far", s.stream))
    out.append(("batches", f"{s.batches:,} ({s.batches_per_second:,.1f}/s)"))
    for node, done in s.nodes.items():  # a cluster run: each node's share so far
        out.append(
            (
                f"node {node}",
                f"{count(done['rows'], 'row')}, {count(done['blocks'], 'block')}, {count(done['actors'], 'actor')}",
            )
        )
    ratio = s.hit_ratio
    out.append(
        (
            "cache",
            "not used"
            if ratio is None
            else f"{count(s.cache_hits, 'hit')} / {count(s.cache_misses, 'miss', 'misses')} ({ratio:.0%} hits)",
        )
    )
    return out


def summary_text(s: Snapshot) -> str:
    return "\n".join([progress_text(s)] + [f"  {k}: {v}" for k, v in facts(s)])


#: an offloaded model's layer, for the chart's lane: (seconds since the start, name, read s, compute s)
Layer = tuple[float, str, float, float]

COLOURS = ("#4C78A8", "#E45756", "#72B7B2", "#F58518")
X_LABEL = "seconds since the query started"
_M = {
    "left": 72,
    "right": 10,
    "top": 22,
    "bottom": 34,
}  # legend above, axes left and below  # room for the axes' ticks and labels


def _ticks(top: float, n: int = 4) -> list[float]:
    """Round tick values from 0 to about `top` (1, 2 or 5 times a power of ten apart)."""
    if top <= 0:
        return [0.0]
    raw = top / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    return [i * step for i in range(int(top / step) + 1)]


def _axes(width: int, height: int, t_max: float, top: float, y_label: str, y_text: Any) -> list[str]:
    """The frame of a static chart: grid, ticks with their values, and both axis labels."""
    left, right, up, down = _M["left"], width - _M["right"], _M["top"], height - _M["bottom"]
    x = lambda t: left + (right - left) * t / t_max
    y = lambda v: down - (down - up) * v / top
    out = ["<g class='wb-axes' font-size='10' fill='#555'>"]
    for v in _ticks(top, 4):
        out.append(
            f"<line x1='{left}' x2='{right}' y1='{y(v):.1f}' y2='{y(v):.1f}' stroke='#e3e3e3'/>"
            f"<text x='{left - 4}' y='{y(v) + 3:.1f}' text-anchor='end'>{html.escape(y_text(v))}</text>"
        )
    for t in _ticks(t_max, 5):
        out.append(
            f"<line x1='{x(t):.1f}' x2='{x(t):.1f}' y1='{down}' y2='{down + 3}' stroke='#999'/>"
            f"<text x='{x(t):.1f}' y='{down + 13}' text-anchor='middle'>{t:g}</text>"
        )
    out.append(
        f"<line x1='{left}' x2='{right}' y1='{down}' y2='{down}' stroke='#999'/>"
        f"<line x1='{left}' x2='{left}' y1='{up}' y2='{down}' stroke='#999'/>"
        f"<text class='wb-x-label' x='{(left + right) / 2:.0f}' y='{height - 3}' text-anchor='middle'>{X_LABEL}</text>"
        f"<text class='wb-y-label' x='0' y='0' text-anchor='middle' "
        f"transform='translate(11 {(up + down) / 2:.0f}) rotate(-90)'>{html.escape(y_label)}</text></g>"
    )
    return out


def memory_svg(s: Snapshot, width: int = 420, height: int = 170) -> str:
    """A static line chart of resident memory per device over time, with labelled axes and
    each device's budget as a dashed line (what the live widget's uPlot chart shows)."""
    series = memory_series(s)
    if not series:
        return ""
    t_max = max((p[0] for pts in series.values() for p in pts), default=0) or 1.0
    limits = s.limits()
    top = max([v for pts in series.values() for _, v in pts] + list(limits.values())) * 1.1 or 1.0
    left, right, up, down = _M["left"], width - _M["right"], _M["top"], height - _M["bottom"]
    x = lambda t: left + (right - left) * t / t_max
    y = lambda v: down - (down - up) * v / top
    parts = [
        f"<svg class='wb-memory-chart' width='{width}' height='{height}' viewBox='0 0 {width} {height}' role='img' "
        f"aria-label='resident memory per device over time, with its budget' font-family='sans-serif'>",
        *_axes(width, height, t_max, top, "resident memory", size),
    ]
    legend = []
    for i, (device, pts) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        line = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts)
        parts.append(f"<polyline fill='none' stroke='{colour}' stroke-width='1.5' points='{line}'/>")
        legend.append((colour, f"{device} peak {size(s.peak.get(device))}", ""))
        budget = limits.get(device.split(":")[0])
        if budget:
            parts.append(
                f"<line class='wb-budget' x1='{left}' x2='{right}' y1='{y(budget):.1f}' y2='{y(budget):.1f}' "
                f"stroke='{colour}' stroke-dasharray='5 4'/>"
            )
            legend.append((colour, f"{device.split(':')[0]} budget (limit {size(budget)})", "5 4"))
    lx = left
    for colour, text, dash in legend:  # one row above the plot
        parts.append(
            f"<line x1='{lx}' x2='{lx + 14}' y1='7' y2='7' stroke='{colour}' "
            f"stroke-width='1.5' stroke-dasharray='{dash or 'none'}'/>"
            f"<text x='{lx + 18}' y='10' font-size='10' fill='{colour}'>{html.escape(text)}</text>"
        )
        lx += 30 + 6 * len(text)
    parts.append("</svg>")
    return "".join(parts)


def layers_svg(layers: list[Layer], t_max: float, width: int = 420, height: int = 120) -> str:
    """An offloaded model's lane: per layer, at the moment it finished, the seconds spent
    reading its weights (disk) and computing it, as two bars side by side."""
    if not layers:
        return ""
    t_max = max([t_max] + [t for t, *_ in layers]) or 1.0
    top = max(max(r, c) for _, _, r, c in layers) * 1.1 or 1e-3
    left, right, up, down = _M["left"], width - _M["right"], _M["top"], height - _M["bottom"]
    x = lambda t: left + (right - left) * t / t_max
    h = lambda v: (down - up) * v / top
    bar = max(1.0, min(5.0, (right - left) / (2.5 * len(layers))))
    parts = [
        f"<svg class='wb-layer-chart' width='{width}' height='{height}' viewBox='0 0 {width} {height}' role='img' "
        f"aria-label='layers read and computed over time' font-family='sans-serif'>",
        *_axes(width, height, t_max, top, "seconds per layer", lambda v: f"{v:.2g}"),
    ]
    for t, name, read_s, compute_s in layers:
        for dx, v, colour, what in ((-bar, read_s, "#F58518", "read"), (0.0, compute_s, "#54A24B", "computed")):
            parts.append(
                f"<rect x='{x(t) + dx:.1f}' y='{down - h(v):.1f}' width='{bar:.1f}' height='{h(v):.1f}' "
                f"fill='{colour}'><title>{html.escape(name)} {what} in {duration(v)}</title></rect>"
            )
    for k, (colour, text) in enumerate((("#F58518", "layer read (disk)"), ("#54A24B", "layer computed"))):
        parts.append(
            f"<rect x='{left + 120 * k}' y='2' width='10' height='8' fill='{colour}'/>"
            f"<text x='{left + 14 + 120 * k}' y='10' font-size='10' fill='#555'>{text}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def summary_html(s: Snapshot, layers: list[Layer] | None = None) -> str:
    """The static summary: the facts as a table beside the memory chart (and an offloaded
    model's lane of layers) as inline SVG: it renders without a kernel or any script."""
    stopped = s.activity == "download" and (s.download is None or not s.download.finished)
    state = "failed" if s.error or stopped else "done"
    rows = "".join(
        f"<tr><th style='text-align:left;padding-right:8px'>{html.escape(k)}</th>"
        f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
        for k, v in facts(s)
    )
    return (
        f"<div class='wb-live-summary' data-state='{state}' style='font-size:12px;display:flex;gap:16px;"
        f"align-items:flex-start'><div><div><b>{html.escape(progress_text(s))}</b></div>"
        f"<table>{rows}</table></div>"
        f"<div style='flex:none'>{memory_svg(s)}{layers_svg(layers or [], s.elapsed)}</div></div>"
    )
