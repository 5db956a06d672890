"""The facts of a query's snapshot, in words: one source for the text progress bar, the live
widget (which shows these strings) and the static summary it freezes into."""

from __future__ import annotations

import html

from workbench.telemetry.tracker import Download, Snapshot, resident


def size(n: float | None) -> str:
    if n is None:
        return "n/a"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:,.0f} B"


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
        return f"downloaded {d.repo}: {d.files_done} files, {d.bytes_done / scale:.1f} {unit} in {duration(d.seconds)}"
    counts = f"{d.files_done}/{d.files_total} files, {d.bytes_done / scale:.1f}/{d.bytes_total / scale:.1f} {unit}"
    return f"download of {d.repo} stopped at {counts}" if stopped else f"downloading {d.repo}: {counts}"


def progress_text(s: Snapshot) -> str:
    if s.activity == "download":
        if s.download is None:
            return "downloading"
        text = download_text(s.download, stopped=s.finished)
        return text + (f" · failed: {s.error}" if s.error else "")
    if s.finished:
        head = f"{s.rows_done:,} model rows in {duration(s.elapsed)}"
        if s.result_rows is not None:
            head += f" · {s.result_rows:,} result rows"
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
    out.append(("batches", f"{s.batches:,} ({s.batches_per_second:,.1f}/s)"))
    ratio = s.hit_ratio
    out.append(
        (
            "cache",
            "not used" if ratio is None else f"{s.cache_hits:,} hits / {s.cache_misses:,} misses ({ratio:.0%} hits)",
        )
    )
    return out


def summary_text(s: Snapshot) -> str:
    return "\n".join([progress_text(s)] + [f"  {k}: {v}" for k, v in facts(s)])


def memory_svg(s: Snapshot, width: int = 360, height: int = 90) -> str:
    """A static line chart of resident memory per device, the budget as a dashed line."""
    series = memory_series(s)
    if not series:
        return ""
    t_max = max((p[0] for pts in series.values() for p in pts), default=0) or 1.0
    limits = s.limits()
    top = max([v for pts in series.values() for _, v in pts] + list(limits.values())) * 1.1 or 1.0
    x = lambda t: 4 + (width - 8) * t / t_max
    y = lambda v: height - 14 - (height - 22) * v / top
    colours = ["#4C78A8", "#E45756", "#72B7B2", "#F58518"]
    parts = [
        f"<svg class='wb-memory-chart' width='{width}' height='{height}' role='img' aria-label='memory per device'>"
    ]
    for i, (device, pts) in enumerate(series.items()):
        line = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts)
        parts.append(f"<polyline fill='none' stroke='{colours[i % 4]}' stroke-width='1.5' points='{line}'/>")
        parts.append(
            f"<text x='6' y='{12 + 11 * i}' font-size='10' fill='{colours[i % 4]}'>"
            f"{html.escape(device)} peak {size(s.peak.get(device))}</text>"
        )
        budget = limits.get(device.split(":")[0])
        if budget:
            parts.append(
                f"<line x1='4' x2='{width - 4}' y1='{y(budget):.1f}' y2='{y(budget):.1f}' "
                f"stroke='{colours[i % 4]}' stroke-dasharray='4 3'/>"
                f"<text x='{width - 4}' y='{y(budget) - 2:.1f}' font-size='10' text-anchor='end'>"
                f"budget (limit {size(budget)})</text>"
            )
    parts.append(
        f"<text x='{width - 4}' y='{height - 2}' font-size='10' text-anchor='end'>{duration(t_max)}</text></svg>"
    )
    return "".join(parts)


def summary_html(s: Snapshot) -> str:
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
        f"<table>{rows}</table></div>{memory_svg(s)}</div>"
    )
