"""Text and HTML renderings of results and plans, from one set of facts.

Both renderings are built from `_rows` / `summary_line`, so they cannot drift apart.
"""

from __future__ import annotations

import html
from typing import Any

from workbench.plan.render import PARADIGM_COLORS, plan_html, plan_lines  # noqa: F401 - re-exported
from workbench.telemetry.summary import count

DEFAULT_LIMIT = 20


def _fmt(value: Any, width: int = 60) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, (list, tuple)) and len(value) > 6:
        head = ", ".join(_fmt(v, 12) for v in value[:4])
        text = f"[{head}, … {len(value)} values]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k}: {_fmt(v, 20)}" for k, v in value.items()) + "}"
    else:
        text = str(value)
    text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def _rows(result: Any, limit: int) -> tuple[list[str], list[list[str]]]:
    table = result.arrow()
    head = table.slice(0, limit).to_pylist()
    cols = table.column_names
    return cols, [[_fmt(row[c]) for c in cols] for row in head]


def operator_line(s: dict[str, Any]) -> str:
    cache = (
        f", cache {count(s['cache_hits'], 'hit')} / {count(s['cache_misses'], 'miss', 'misses')}"
        if (s.get("cache_hits") or s.get("cache_misses"))
        else ""
    )
    inputs = count(s["rows"], "input")
    if not s.get("batches", 1):
        ran = "model not run"
    elif s["paradigm"] == "relation_centric":
        ran = "in DuckDB"
    else:
        ran = f"batch {s['batch_size'] or 'auto'}, {s['device']}"
    return f"{s.get('call', s['model'])}: {s['paradigm']}, {inputs}, {ran}, {s['seconds']:.3f} s{cache}"


def summary_line(result: Any) -> str:
    n = len(result)
    parts = [count(n, "row"), f"{result.elapsed:.3f} s"]
    parts += [operator_line(s) for s in result.stats]
    return " · ".join(parts)


def result_text(result: Any, limit: int = DEFAULT_LIMIT) -> str:
    if result.plan is not None:
        return result.plan.text()
    if result.message is not None:
        return result.message
    cols, rows = _rows(result, limit)
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(cols)]
    line = lambda cells: " | ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    out = [line(cols), "-+-".join("-" * w for w in widths)] + [line(r) for r in rows]
    if len(result) > limit:
        out.append(f"… {count(len(result) - limit, 'more row')}")
    out.append(summary_line(result))
    return "\n".join(out)


def result_html(result: Any, limit: int = DEFAULT_LIMIT) -> str:
    if result.plan is not None:
        return plan_html(result.plan)
    if result.message is not None:
        return f"<div class='workbench-message'>{html.escape(result.message)}</div>"
    cols, rows = _rows(result, limit)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r) + "</tr>" for r in rows)
    more = f"<div>… {len(result) - limit:,} more rows</div>" if len(result) > limit else ""
    return (
        f"<div class='workbench-result'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
        f"</table>{more}<div class='workbench-summary'>{html.escape(summary_line(result))}</div></div>"
    )
