"""Apply the optimizer rules in order."""

from __future__ import annotations

from collections.abc import Iterable

from workbench.errors import ParameterError
from workbench.optimizer.context import Context
from workbench.optimizer.rules import NAMES, RULES
from workbench.plan.nodes import Plan

#: rules that assign the physical plan: never disabled, or nothing could run
REQUIRED = frozenset({"choose_paradigm", "choose_batch_threads"})


def check_disabled(names: Iterable[str]) -> frozenset[str]:
    disabled = frozenset(n.strip().lower() for n in names if n.strip())
    unknown = disabled - set(NAMES)
    if unknown:
        raise ParameterError(f"unknown optimizer rule(s) {', '.join(sorted(unknown))}; rules: {', '.join(NAMES)}")
    if disabled & REQUIRED:
        raise ParameterError(f"{', '.join(sorted(disabled & REQUIRED))} cannot be disabled (they pick how to run)")
    return disabled


def optimize(plan: Plan, ctx: Context, *, disabled: frozenset[str] = frozenset()) -> Plan:
    for rule in RULES:
        if rule.NAME not in disabled:
            plan = rule.apply(plan, ctx)
    return plan
