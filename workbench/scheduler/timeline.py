"""A timeline of scheduled queries (plotly): queued and running spans, deadlines, estimates."""

from __future__ import annotations

from typing import Any

from workbench.scheduler.future import QueryFuture

COLORS = {"done": "#2e7d32", "late": "#ef6c00", "failed": "#c62828", "dropped": "#9e9e9e"}


def timeline(futures: list[QueryFuture], title: str = "queries over time") -> Any:
    """One row per query: a thin bar while queued, a thick one while running, coloured by
    status; a tick at its deadline; dropped queries as crosses at their submission."""
    import plotly.graph_objects as go

    if not futures:
        return go.Figure()
    t0 = min(f.submitted for f in futures)
    fig = go.Figure()
    shown: set[str] = set()
    for row, f in enumerate(sorted(futures, key=lambda q: q.seq)):
        sub = f.submitted - t0
        label = getattr(f, "kind", f.sql[:30])
        color = COLORS.get(f.status, "#1565c0")
        legend = f.status not in shown
        shown.add(f.status)
        if f.status == "dropped":
            fig.add_trace(
                go.Scatter(
                    x=[sub],
                    y=[row],
                    mode="markers",
                    marker={"symbol": "x", "color": color},
                    name=f.status,
                    legendgroup=f.status,
                    showlegend=legend,
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
                line={"color": color, "width": 1},
                showlegend=False,
                hoverinfo="skip",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=[start, end],
                y=[row, row],
                mode="lines",
                line={"color": color, "width": 6},
                name=f.status,
                legendgroup=f.status,
                showlegend=legend,
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
                    showlegend=False,
                    hovertext=f"deadline {f.deadline_ms:,.0f} ms",
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
