"""LIMIT without ORDER BY on a model result runs inference lazily and stops early.

`SELECT m(x) FROM t LIMIT 10` needs ten outputs, not one per row of t. When the top-level
query has a LIMIT, no ORDER BY, no grouping, aggregate, window or DISTINCT, each model
operator it calls directly gets `limit`: the cost model then prices udf_centric (DuckDB
streams vectors through the model and stops pulling once the limit is met) on those rows
only, and the operator's EXPLAIN line says where inference stops.
"""

from __future__ import annotations

from dataclasses import replace

from sqlglot import exp

from workbench.optimizer.context import Context
from workbench.plan.builder import parsed, reads_of
from workbench.plan.nodes import Plan, operator_id

NAME = "lazy_limit"


def apply(plan: Plan, ctx: Context | None = None) -> Plan:
    if not plan.operators:
        return plan
    tree = parsed(plan.final_sql)
    n = limit_of(tree)
    if n is None or not isinstance(tree, exp.Select):
        return plan
    direct = _direct_calls(tree)
    consumed = plan.consumed()
    ops, notes = [], []
    for op in plan.operators:
        if op.id in direct and op.id not in consumed:
            op = replace(op, limit=n)
            notes.append(f"{NAME}: {op.call} may stop after {n:,} rows (LIMIT without ORDER BY)")
        ops.append(op)
    return replace(plan, operators=tuple(ops), notes=(*plan.notes, *notes))


def limit_of(tree: exp.Expr) -> int | None:
    """The row limit of a streamable top-level SELECT, or None."""
    if not isinstance(tree, exp.Select):
        return None
    limit = tree.args.get("limit")
    if limit is None or tree.args.get("order") or tree.args.get("group") or tree.args.get("distinct"):
        return None
    if tree.args.get("having") or tree.args.get("qualify"):
        return None
    if any(isinstance(n, (exp.AggFunc, exp.Window)) for p in tree.expressions for n in p.walk()):
        return None
    value = limit.expression
    if not isinstance(value, exp.Literal) or not value.is_int:
        return None
    offset = tree.args.get("offset")
    extra = 0
    if offset is not None:
        if not isinstance(offset.expression, exp.Literal) or not offset.expression.is_int:
            return None
        extra = int(offset.expression.name)
    return int(value.name) + extra


def _direct_calls(select: exp.Select) -> set[int]:
    """Operators called by the top-level SELECT list and WHERE (not in a subquery)."""
    parts = list(select.expressions)
    if select.args.get("where") is not None:
        parts.append(select.args["where"])
    found = set()
    for part in parts:
        for f in part.find_all(exp.Anonymous):
            inner = f.find_ancestor(exp.Select)
            op_id = operator_id(f.name)
            if inner is select and op_id is not None:
                found.add(op_id)
    return found


def in_where(sql: str, op_id: int) -> bool:
    """Whether the top-level WHERE reads operator `op_id` (a model predicate: rows may not pass)."""
    tree = parsed(sql)
    where = tree.args.get("where") if isinstance(tree, exp.Select) else None
    return where is not None and op_id in reads_of(where)
