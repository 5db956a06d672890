"""Run a model once per distinct input, where finding the duplicates costs less than running
the model on them.

Input queries become SELECT DISTINCT, so repeated values (the same text in many rows, the
same key in a join) are inferred once and every row reads the shared result. Finding
duplicates is not free: hashing a FLOAT[64] key costs more than running a small MLP on it,
so the rule asks the cost model (`CostModel.dedup_pays`) whether the best plan with dedup
beats the best plan without it, and leaves an operator's inputs as they are when it does
not (its executor then runs every row, and a streaming UDF skips its per-vector dedup).
Without this rule every row's input runs through the model.

    SELECT minilm(body) FROM pydoc          -> op minilm(body): SELECT DISTINCT body AS k FROM pydoc
    SELECT cheap(v) FROM big  (50,000 rows of FLOAT[4], 210 distinct; a 600-MAC MLP)
                                            -> op cheap(v): SELECT v AS k FROM big   (no dedup: cheaper)
"""

from __future__ import annotations

from dataclasses import replace

from workbench.optimizer.context import Context
from workbench.plan.nodes import Plan

NAME = "dedup_inputs"


def apply(plan: Plan, ctx: Context | None = None) -> Plan:
    if not plan.operators:
        return plan
    ops, notes = [], []
    for op in plan.operators:
        if ctx is None or ctx.dedup_pays(op):
            op = replace(op, inputs=tuple(replace(q, distinct=True) for q in op.inputs))
        else:
            notes.append(f"{NAME}: {op.call} runs on every row (finding duplicates costs more than the model)")
        ops.append(op)
    if len(notes) < len(ops):
        notes.insert(0, f"{NAME}: each model runs once per distinct input")
    return replace(plan, operators=tuple(ops), notes=(*plan.notes, *notes))
