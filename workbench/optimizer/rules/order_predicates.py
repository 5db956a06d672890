"""Order conjunctive model predicates by cost and selectivity.

When a WHERE holds several model predicates on the same rows (`WHERE cheap(x) = 3 AND
expensive(x).score > 0.9`), the operators run in ascending rank, rank = seconds per row /
(1 - selectivity) (the classic ordering of expensive predicates), and each later operator
runs only on the rows the earlier predicates kept: its input query gains those conjuncts,
which read the earlier operators' finished outputs. Dependencies (a call nested in
another's input) keep their order. Model predicate selectivity is unknown before running;
it is taken as 1/2, so the rank is decided by cost.
"""

from __future__ import annotations

from dataclasses import replace

from workbench.optimizer.context import Context
from workbench.plan.nodes import ModelOperator, Plan

NAME = "order_predicates"
SELECTIVITY = 0.5


def apply(plan: Plan, ctx: Context) -> Plan:
    ops = list(plan.operators)
    if not any(q.model_filters for op in ops for q in op.inputs):
        return plan
    needs = {op.id: set(op.reads) for op in ops}
    rank = {op.id: ctx.row_seconds(op) / (1 - SELECTIVITY) for op in ops}
    order: list[ModelOperator] = []
    while len(order) < len(ops):
        placed = {o.id for o in order}
        ready = [op for op in ops if op.id not in placed and needs[op.id] <= placed]
        order.append(min(ready, key=lambda op: (rank[op.id], op.id)))
    ran: set[int] = set()
    result, notes = [], []
    for op in order:
        inputs = []
        reads = set(op.reads)
        for q in op.inputs:
            usable = [(ids, sql) for ids, sql in q.model_filters if set(ids) <= ran]
            if usable:
                q = replace(
                    q, after=(*q.after, *usable), model_filters=tuple(m for m in q.model_filters if m not in usable)
                )
                reads.update(i for ids, _ in usable for i in ids)
                notes.append(f"{NAME}: {op.call} runs after cheaper model predicates, on the rows they keep")
            inputs.append(q)
        result.append(replace(op, inputs=tuple(inputs), reads=tuple(sorted(reads))))
        ran.add(op.id)
    if [op.id for op in order] != [op.id for op in ops] and not notes:
        notes.append(f"{NAME}: model operators reordered by cost")
    return replace(plan, operators=tuple(result), notes=(*plan.notes, *dict.fromkeys(notes)))
