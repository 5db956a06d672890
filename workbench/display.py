"""Text and HTML renderings of results and plans, from one set of facts.

Both renderings are built from `_rows` / `summary_line`, so they cannot drift apart.
"""

from __future__ import annotations

import html
from typing import Any

from workbench.plan.nodes import Plan

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
    cache = f", cache {s['cache_hits']:,} hits / {s['cache_misses']:,} misses" if (
        s.get("cache_hits") or s.get("cache_misses")) else ""
    inputs = f"{s['rows']:,} input{'' if s['rows'] == 1 else 's'}"
    if not s.get("batches", 1):
        ran = "model not run"
    elif s["paradigm"] == "relation_centric":
        ran = "in DuckDB"
    else:
        ran = f"batch {s['batch_size'] or 'auto'}, {s['device']}"
    return f"{s.get('call', s['model'])}: {s['paradigm']}, {inputs}, {ran}, {s['seconds']:.3f} s{cache}"


def summary_line(result: Any) -> str:
    n = len(result)
    parts = [f"{n:,} row{'s' if n != 1 else ''}", f"{result.elapsed:.3f} s"]
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
        out.append(f"… {len(result) - limit:,} more rows")
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
    return (f"<div class='workbench-result'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
            f"</table>{more}<div class='workbench-summary'>{html.escape(summary_line(result))}</div></div>")


#: one colour per paradigm, the same in the HTML plan and the JupyterLab renderer
PARADIGM_COLORS = {"dl_centric": "#4C78A8", "udf_centric": "#F58518", "relation_centric": "#54A24B",
                   "hybrid": "#B279A2"}


def plan_lines(plan: Plan) -> list[tuple[int, str]]:
    """The facts of a plan as (depth, line): the one source of its text and HTML forms."""
    from workbench.plan.nodes import _seconds

    lines = [(0, ("EXPLAIN ANALYZE" if plan.analyzed else "EXPLAIN") + f": {plan.sql.strip()}")]
    if plan.analyzed and plan.actual_rows is not None:
        lines.append((1, f"result: {plan.actual_rows:,} rows in {plan.actual_seconds:.3f} s"))
    for op in plan.operators:
        est = "?" if op.estimated_rows is None else f"{op.estimated_rows:,}"
        threads = f", threads duckdb {op.threads[0]}/torch {op.threads[1]}" if op.threads else ""
        line = (f"ModelOperator #{op.id} {op.call} -> {op.output_type}  [{op.paradigm}"
                f"{' (forced)' if op.forced else ''}, {op.device}, {op.precision}, "
                f"batch {op.batch_size or 'auto'}{threads}, "
                f"est. rows {est}, est. {_seconds(op.estimated_seconds)}, {op.cache_text()}")
        if op.memory != "resident":
            line += f", {op.memory}"
        if op.limit is not None:
            line += f", stops after {op.limit:,} rows"
        if op.actual_rows is not None:
            line += f", actual rows {op.actual_rows:,}, {op.actual_seconds:.3f} s"
            err = op.estimate_error()
            if err is not None:
                line += f", estimate error {err:+.0%}"
        lines.append((1, line + "]"))
        if op.alternatives:
            lines.append((2, f"costs: {op.alternatives_text()}"))
        if op.reason:
            lines.append((2, f"why: {op.reason}"))
        lines += [(2, f"part: {part}") for part in op.parts]
        lines.append((2, f"inputs: {op.input_sql}"))
    lines += [(1, f"optimizer: {note}") for note in plan.notes]
    lines.append((1, f"Relational: {plan.final_sql}"))
    return lines


def plan_html(plan: Plan) -> str:
    """The same lines as the text form, as nested lists (labels in bold, SQL as code)."""
    lines = plan_lines(plan)

    def item(text: str) -> str:
        head, sep, rest = text.partition(": ")
        if head in ("inputs", "Relational"):
            return f"<b>{html.escape(head)}</b>: <code>{html.escape(rest)}</code>"
        if head.startswith("ModelOperator"):
            return f"<b>{html.escape(text)}</b>"
        if sep and head in ("costs", "why", "part", "optimizer", "result"):
            return f"<i>{html.escape(head)}</i>: {html.escape(rest)}"
        return html.escape(text)

    out = [f"<div class='workbench-plan'><div><b>{html.escape(lines[0][1])}</b></div><ul>"]
    depth = 1
    paradigms = iter(op.paradigm for op in plan.operators)
    for d, text in lines[1:]:
        if text.startswith("ModelOperator"):  # coloured by the paradigm that runs it
            color = PARADIGM_COLORS.get(next(paradigms), "#888")
            text_html = (f"<span style='border-left: 6px solid {color}; padding-left: 4px'>"
                         f"{item(text)}</span>")
        else:
            text_html = item(text)
        while depth < d:
            out.append("<ul>")
            depth += 1
        while depth > d:
            out.append("</ul>")
            depth -= 1
        out.append(f"<li>{text_html}</li>")
    out.append("</ul>" * depth + "</div>")
    return "".join(out)
