"""Prune model outputs nobody reads.

A model call in a CTE or a derived table whose column the rest of the statement never reads
(no reference by name, no `*` or `COLUMNS(...)` over it, no read of the whole row) is
removed with its column, and an operator no statement part reads any more is dropped: its
model never runs. DuckDB prunes unused
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
        if isinstance(holder, exp.Subquery) and not isinstance(holder.parent, (exp.From, exp.Join)):
            continue  # COPY's, INSERT's or an expression's query: every column is its output
        if _star_outside(tree, body) or _row_read(tree, holder):
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
    """A `SELECT *` (or `t.*`, or `COLUMNS(...)`: a star, a regex or a lambda over column
    names) anywhere but in `body` itself may read every column of it."""
    for node in tree.find_all(exp.Star, exp.Columns):
        if node.find_ancestor(exp.Select) is body:
            continue
        if isinstance(node, exp.Columns) or isinstance(node.parent, (exp.Select, exp.Column)):
            return True
    return False


def _row_read(tree: exp.Expr, holder: exp.Expr) -> bool:
    """Whether the statement reads the derived table's whole row by its alias (`SELECT t
    FROM (...) t` is a struct of every column)."""
    alias = holder.alias_or_name.lower()
    return bool(alias) and any(not c.table and c.name.lower() == alias for c in tree.find_all(exp.Column))
