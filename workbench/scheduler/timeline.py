"""A timeline of scheduled queries (plotly): waiting and running spans, deadlines, estimates."""

from __future__ import annotations

from typing import Any

from workbench.scheduler.future import QueryFuture

COLORS = {"done": "#2e7d32", "late": "#ef6c00", "failed": "#c62828", "dropped": "#9e9e9e"}
#: what each status means, as the legend names it
NAMES = {
    "done": "ran, on time",
    "late": "ran, late",
    "failed": "ran, failed",
    "dropped": "dropped (not run)",
}
WAITING = "waiting in the queue"
DEADLINE = "deadline"


def timeline(futures: list[QueryFuture], title: str = "queries over time") -> Any:
    """One row per query: a thin line while it waits in the queue, a thick bar while it runs,
    coloured by how it ended; a tick at its deadline; dropped queries as crosses at their
    submission. Each kind of mark has one legend entry."""
    import plotly.graph_objects as go

    if not futures:
        return go.Figure()
    t0 = min(f.submitted for f in futures)
    fig = go.Figure()
    shown: set[str] = set()

    def first(name: str) -> bool:
        """True the first time a legend entry is drawn: the one trace that shows it."""
        new = name not in shown
        shown.add(name)
        return new

    for row, f in enumerate(sorted(futures, key=lambda q: q.seq)):
        sub = f.submitted - t0
        label = getattr(f, "kind", f.sql[:30])
        color = COLORS.get(f.status, "#1565c0")
        name = NAMES.get(f.status, f.status)
        if f.status == "dropped":
            fig.add_trace(
                go.Scatter(
                    x=[sub],
                    y=[row],
                    mode="markers",
                    marker={"symbol": "x", "color": color},
                    name=name,
                    legendgroup=name,
                    showlegend=first(name),
                    hovertext=f"#{f.seq} {label}: {f.reason}",
                )
            )
            continue
        start = sub + (f.started_at or 0)
        end = sub + (f.finished_at or f.started_at or 0)
        fig.add_trace(
            go.Scatter(
                x=[sub, start],
                y=[row, row],
                mode="lines",
                line={"color": "#90a4ae", "width": 1},
                name=WAITING,
                legendgroup=WAITING,
                showlegend=first(WAITING),
                hovertext=f"#{f.seq} {label}: waited {start - sub:,.3f} s",
                hoverinfo="text",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=[start, end],
                y=[row, row],
                mode="lines",
                line={"color": color, "width": 6},
                name=name,
                legendgroup=name,
                showlegend=first(name),
                hovertext=(
                    f"#{f.seq} {label}: estimated {f.estimated_ms or 0:,.0f} ms, actual {f.actual_ms or 0:,.0f} ms"
                ),
            )
        )
        if f.deadline_ms is not None:
            fig.add_trace(
                go.Scatter(
                    x=[sub + f.deadline_ms / 1000],
                    y=[row],
                    mode="markers",
                    marker={"symbol": "line-ns-open", "size": 10, "color": "#000"},
                    name=DEADLINE,
                    legendgroup=DEADLINE,
                    showlegend=first(DEADLINE),
                    hovertext=f"#{f.seq} deadline {f.deadline_ms:,.0f} ms",
                )
            )
    fig.update_layout(
        title=title,
        xaxis_title="seconds",
        yaxis_title="query (arrival order)",
        height=max(300, 12 * len(futures)),
        template="plotly_white",
    )
    return fig
