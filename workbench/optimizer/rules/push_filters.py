"""Push filters that do not depend on a model below the model call.

The builder records, for each call's input query, the model-free conjuncts of its WHERE
that read only the call's own source (`pushable`). Applying them to the input query means
the model runs only on rows the query keeps: a 1%-selective filter on a plain column makes
inference 100x smaller. Without this rule the model runs on every row of the source.
"""

from __future__ import annotations

from dataclasses import replace

from workbench.optimizer.context import Context
from workbench.plan.nodes import Plan

NAME = "push_filters"


def apply(plan: Plan, ctx: Context | None = None) -> Plan:
    ops, notes = [], []
    for op in plan.operators:
        pushed = [f for q in op.inputs for f in q.pushable]
        if pushed:
            inputs = tuple(replace(q, filters=(*q.filters, *q.pushable), pushable=()) for q in op.inputs)
            op = replace(op, inputs=inputs)
            notes.append(f"{NAME}: {op.call} runs only on rows where {' AND '.join(dict.fromkeys(pushed))}")
        ops.append(op)
    return replace(plan, operators=tuple(ops), notes=(*plan.notes, *notes))
