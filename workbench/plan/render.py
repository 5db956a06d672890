"""Text and HTML renderings of a plan, from one list of facts (`plan_lines`).

Nodes (workbench/plan/nodes.py) are pure data; this module turns them into what people read.
`Displayable` gives `Plan` its text, HTML and MIME-bundle forms without nodes.py importing
any rendering code at run time.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from workbench.plan import schema_ts
from workbench.plan.names import public_sql

if TYPE_CHECKING:
    from workbench.plan.nodes import Plan

MIME_TYPE = schema_ts.load_schema()["x-mime-type"]  # the plan's JSON schema owns it


def seconds_text(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x * 1000:.3g} ms" if x < 1 else f"{x:.3g} s"


#: one colour per paradigm, the same in the HTML plan and the JupyterLab renderer (from the schema)
PARADIGM_COLORS = schema_ts.paradigm_colours()


def plan_lines(plan: Plan) -> list[tuple[int, str]]:
    """The facts of a plan as (depth, line): the one source of its text and HTML forms."""
    lines = [(0, ("EXPLAIN ANALYZE" if plan.analyzed else "EXPLAIN") + f": {plan.sql.strip()}")]
    if plan.analyzed and plan.actual_rows is not None:
        lines.append((1, f"result: {plan.actual_rows:,} rows in {plan.actual_seconds:.3f} s"))
    for op in plan.operators:
        est = "?" if op.estimated_rows is None else f"{op.estimated_rows:,}"
        threads = f", threads duckdb {op.threads[0]}/torch {op.threads[1]}" if op.threads else ""
        line = (
            f"ModelOperator #{op.id} {op.call} -> {op.output_type}  [{op.paradigm}"
            f"{' (forced)' if op.forced else ''}, {op.device}, {op.precision}, "
            f"batch {op.batch_size or 'auto'}{threads}, "
            f"est. rows {est}, est. {seconds_text(op.estimated_seconds)}, {op.cache_text()}"
        )
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
        lines.append((2, f"inputs: {public_sql(op.input_sql)}"))
    lines += [(1, f"optimizer: {note}") for note in plan.notes]
    lines.append((1, f"Relational: {public_sql(plan.final_sql)}"))
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
            text_html = f"<span style='border-left: 6px solid {color}; padding-left: 4px'>{item(text)}</span>"
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


def plan_text(plan: Plan) -> str:
    return "\n".join("  " * depth + line for depth, line in plan_lines(plan))


class Displayable:
    """What a front end calls on a plan: text, static HTML, and the MIME bundle whose vendor
    JSON the JupyterLab renderer draws."""

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover - Plan defines it
        raise NotImplementedError

    def text(self) -> str:
        return plan_text(self)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        return plan_html(self)  # type: ignore[arg-type]

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """The plan for any front end: the JSON tree under a vendor MIME type (for a
        renderer that draws it), static HTML of the same facts, and text."""
        return {MIME_TYPE: self.to_dict(), "text/html": self._repr_html_(), "text/plain": self.text()}
