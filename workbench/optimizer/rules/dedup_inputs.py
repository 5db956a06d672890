"""Run a model once per distinct input.

Input queries become SELECT DISTINCT, so repeated values (the same text in many rows, the
same key in a join) are inferred once and every row reads the shared result. Without this
rule every row's input runs through the model.
"""

from __future__ import annotations

from dataclasses import replace

from workbench.optimizer.context import Context
from workbench.plan.nodes import Plan

NAME = "dedup_inputs"


def apply(plan: Plan, ctx: Context | None = None) -> Plan:
    if not plan.operators:
        return plan
    ops = tuple(replace(op, inputs=tuple(replace(q, distinct=True) for q in op.inputs)) for op in plan.operators)
    return replace(plan, operators=ops, notes=(*plan.notes, f"{NAME}: each model runs once per distinct input"))
