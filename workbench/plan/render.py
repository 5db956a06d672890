"""Text and HTML renderings of a plan, from one list of facts (`plan_facts`).

Nodes (workbench/plan/nodes.py) are pure data; this module turns them into what people read.
`Displayable` gives `Plan` its text, HTML and MIME-bundle forms without nodes.py importing
any rendering code at run time.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.plan import schema_ts
from workbench.plan.names import public_sql
from workbench.telemetry.summary import count

if TYPE_CHECKING:
    from workbench.plan.nodes import Plan
    from workbench.plan.relational import RelationalNode

MIME_TYPE = schema_ts.load_schema()["x-mime-type"]  # the plan's JSON schema owns it


def seconds_text(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x * 1000:.3g} ms" if x < 1 else f"{x:.3g} s"


#: one colour per paradigm, the same in the HTML plan and the JupyterLab renderer (from the schema)
PARADIGM_COLORS = schema_ts.paradigm_colours()


#: characters of the time bar in the text form
BAR_WIDTH = 20
HOTTEST = "hottest"


@dataclass(frozen=True)
class Fact:
    """One line of a plan: its text, and for a node of DuckDB's tree, its share of the time
    (the text form draws it as a bar of characters, the HTML form as a CSS bar)."""

    depth: int
    text: str
    share: float | None = None
    hottest: bool = False
    node: str = ""  # "relational" or "model" for a node of the tree; "" otherwise


#: estimated and actual rows further apart than this mark a misestimate (as in the JupyterLab tree)
MISESTIMATE_FACTOR = 2


def misestimate(estimated: int | None, actual: int | None) -> float | None:
    if estimated is None or actual is None:
        return None
    e, a = max(estimated, 1), max(actual, 1)
    return max(e, a) / min(e, a)


def rows_text(x: int | None) -> str:
    return "?" if x is None else f"{x:,}"


def bar_text(share: float) -> str:
    filled = round(share * BAR_WIDTH)
    return "█" * filled + "·" * (BAR_WIDTH - filled)


def relational_facts(plan: Plan, depth: int) -> list[Fact]:
    """DuckDB's operator tree with the model operators where their outputs enter it: per
    node its detail, estimated rows, and under ANALYZE actual rows, time and share."""
    tree = plan.relational_tree()
    if tree is None:
        return []
    hot = tree.hottest()
    by_id = {op.id: op for op in plan.operators}
    facts = [Fact(depth, "DuckDB plan" + (" (profiled)" if tree.analyzed else ""))]

    def model(op_id: int, d: int) -> None:
        op = by_id.get(op_id)
        if op is None:
            return
        text = f"ModelOperator #{op.id} {op.call} [{op.where}, est. rows {rows_text(op.estimated_rows)}"
        share = tree.share(op.actual_seconds) if tree.analyzed else None
        if tree.analyzed:
            text += f", actual rows {rows_text(op.actual_rows)}, {seconds_text(op.actual_seconds)}"
        hottest = hot == ("model", op_id)
        facts.append(Fact(d, text + "]", share, hottest, "model"))
        for i in op.reads:  # calls nested in its inputs
            model(i, d + 1)

    def node(n: RelationalNode, d: int) -> None:
        text = n.name + (f" {n.detail}" if n.detail else "") + f"  [est. rows {rows_text(n.estimated_rows)}"
        if tree.analyzed:
            text += f", actual rows {rows_text(n.actual_rows)}, {seconds_text(n.seconds)}"
            factor = misestimate(n.estimated_rows, n.actual_rows)
            if factor is not None and factor > MISESTIMATE_FACTOR:
                text += f", rows est. vs actual {factor:.1f}x"
        hottest = hot is not None and hot[0] == "node" and hot[1] is n
        facts.append(Fact(d, text + "]", tree.share(n.seconds), hottest, "relational"))
        for i in n.models:
            model(i, d + 1)
        for c in n.children:
            node(c, d + 1)

    node(tree.root, depth + 1)
    return facts


def fact_text(f: Fact) -> str:
    if f.share is None:
        return f.text
    return f"{f.text} {bar_text(f.share)} {f.share:.0%}" + (f" <- {HOTTEST}" if f.hottest else "")


def plan_facts(plan: Plan) -> list[Fact]:
    """The facts of a plan: the one source of its text and HTML forms."""
    facts = [Fact(d, t) for d, t in _plan_lines(plan)]
    return facts + relational_facts(plan, 1)


def plan_lines(plan: Plan) -> list[tuple[int, str]]:
    """The facts of a plan as (depth, line), as the text form prints them."""
    return [(f.depth, fact_text(f)) for f in plan_facts(plan)]


def _plan_lines(plan: Plan) -> list[tuple[int, str]]:
    lines = [(0, ("EXPLAIN ANALYZE" if plan.analyzed else "EXPLAIN") + f": {plan.sql.strip()}")]
    if plan.analyzed and plan.actual_rows is not None:
        lines.append((1, f"result: {count(plan.actual_rows, 'row')} in {plan.actual_seconds:.3f} s"))
    for op in plan.operators:
        est = "?" if op.estimated_rows is None else f"{op.estimated_rows:,}"
        threads = f", threads duckdb {op.threads[0]}/torch {op.threads[1]}" if op.threads else ""
        line = (
            f"ModelOperator #{op.id} {op.call} -> {op.output_type}  [{op.where}"
            f"{' (forced)' if op.forced else ''}, {op.device}, {op.precision}, "
            f"batch {op.batch_size or 'auto'}{threads}, "
            f"est. rows {est}, est. {seconds_text(op.estimated_seconds)}, {op.cache_text()}"
        )
        if op.memory != "resident":
            line += f", {op.memory}"
        if op.limit is not None:
            line += f", stops after {count(op.limit, 'row')}"
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
        if op.runtime_alternatives or op.runtime != "torch":
            why = f"; {op.runtime_reason}" if op.runtime_reason else ""
            lines.append((2, f"runtime: {op.runtime_text()}{why}"))
        if op.decoding:
            lines.append((2, f"decoding: {op.decoding}"))
        lines += [(2, f"part: {part}") for part in op.parts]
        lines.append((2, f"inputs: {public_sql(op.input_sql)}"))
    lines += [(1, f"optimizer: {note}") for note in plan.notes]
    lines.append((1, f"Relational: {public_sql(plan.final_sql)}"))
    return lines


def plan_html(plan: Plan) -> str:
    """The same lines as the text form, as nested lists (labels in bold, SQL as code)."""
    facts = plan_facts(plan)
    lines = [(f.depth, f.text) for f in facts]

    def item(text: str) -> str:
        head, sep, rest = text.partition(": ")
        if head in ("inputs", "Relational"):
            return f"<b>{html.escape(head)}</b>: <code>{html.escape(rest)}</code>"
        if head.startswith("ModelOperator"):
            return f"<b>{html.escape(text)}</b>"
        if sep and head in ("costs", "why", "runtime", "part", "optimizer", "result"):
            return f"<i>{html.escape(head)}</i>: {html.escape(rest)}"
        return html.escape(text)

    out = [f"<div class='workbench-plan'><div><b>{html.escape(lines[0][1])}</b></div><ul>"]
    depth = 1
    paradigms = iter(op.paradigm for op in plan.operators)
    for f in facts[1:]:
        d, text = f.depth, f.text
        if f.node:
            text_html = _node_html(plan, f)
        elif text.startswith("ModelOperator"):  # coloured by the paradigm that runs it
            color = PARADIGM_COLORS.get(next(paradigms), "#888")
            text_html = f"<span style='border-left: 6px solid {color}; padding-left: 4px'>{item(text)}</span>"
        elif text.startswith("DuckDB plan"):
            text_html = f"<b>{html.escape(text)}</b>"
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


def _node_html(plan: Plan, f: Fact) -> str:
    """A node of DuckDB's tree: its line, and under ANALYZE a bar of its share of the time
    (the hottest node in the warning colour)."""
    style = "font-weight: bold; background: #fde2c4;" if f.hottest else ""
    out = f"<span class='wb-rel-{f.node}' style='{style}'>{html.escape(f.text)}</span>"
    if f.share is not None:
        color = "#E45756" if f.hottest else "#4C78A8"
        width = max(0.0, min(100.0, f.share * 100))
        out += (
            "<span style='display: inline-block; width: 120px; height: 8px; margin-left: 6px; "
            "background: #eee; vertical-align: middle'>"
            f"<span style='display: block; height: 8px; width: {width:.1f}%; background: {color}'></span></span>"
            f" {f.share:.0%}" + (f" <b>{HOTTEST}</b>" if f.hottest else "")
        )
    return out


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
