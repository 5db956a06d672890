"""Apply the optimizer rules in order."""

from __future__ import annotations

from workbench.optimizer.context import Context
from workbench.optimizer.rules import RULES
from workbench.plan.nodes import Plan

#: rules that assign the physical plan: never disabled, or nothing could run
REQUIRED = frozenset({"choose_paradigm", "choose_batch_threads"})


def optimize(plan: Plan, ctx: Context, *, disabled: frozenset[str] = frozenset()) -> Plan:
    for rule in RULES:
        if rule.NAME not in disabled:
            plan = rule.apply(plan, ctx)
    return plan
