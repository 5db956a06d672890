"""Prune model outputs nobody reads.

A model call in a CTE or a derived table whose column the rest of the statement never reads
(no reference by name, no `*` over it) is removed with its column, and an operator no
statement part reads any more is dropped: its model never runs. DuckDB prunes unused
columns of its own plan, but model operators run before the statement, so the engine must
prune them itself. Bodies with DISTINCT, GROUP BY or set operations keep every column (a
column there changes which rows come out).
"""

from __future__ import annotations

from dataclasses import replace

from sqlglot import exp

from workbench.optimizer.context import Context
from workbench.plan.builder import is_inside, parsed, reads_of
from workbench.plan.nodes import Plan

NAME = "prune_outputs"


def apply(plan: Plan, ctx: Context | None = None) -> Plan:
    if not plan.operators:
        return plan
    tree = parsed(plan.final_sql).copy()
    removed: list[str] = []
    for holder in list(tree.find_all(exp.CTE, exp.Subquery)):
        body = holder.this
        if not isinstance(body, exp.Select) or body.args.get("distinct") or body.args.get("group"):
            continue
        if _star_outside(tree, body):
            continue
        for proj in list(body.expressions):
            if len(body.expressions) == 1:
                break
            if not reads_of(proj):
                continue
            name = proj.alias_or_name.lower()
            # `c.label` may be field `label` of column `c`: every part of a reference counts
            read = {part.name.lower() for c in tree.find_all(exp.Column) if not is_inside(c, proj) for part in c.parts}
            if name in read:
                continue
            removed.append(proj.sql(dialect="duckdb"))
            proj.pop()
    if not removed:
        return plan
    final = tree.sql(dialect="duckdb", normalize_functions=False)
    reads = reads_of(tree)
    kept = list(plan.operators)
    while True:  # drop operators nothing reads, then the ones only they read
        still = [op for op in kept if op.id in reads or any(op.id in o.reads for o in kept if o is not op)]
        if len(still) == len(kept):
            break
        kept = still
    dropped = [op.call for op in plan.operators if op not in kept]
    note = f"{NAME}: removed unread column(s) {', '.join(removed)}"
    if dropped:
        note += f"; {', '.join(dropped)} will not run"
    return replace(plan, final_sql=final, operators=tuple(kept), reads=reads, notes=(*plan.notes, note))


def _star_outside(tree: exp.Expr, body: exp.Expr) -> bool:
    """A `SELECT *` (or `t.*`) anywhere but in `body` itself may read every column of it."""
    for star in tree.find_all(exp.Star):
        select = star.find_ancestor(exp.Select)
        if select is body:
            continue
        if isinstance(star.parent, (exp.Select, exp.Column)):
            return True
    return False
