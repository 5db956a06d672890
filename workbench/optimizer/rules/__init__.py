"""Optimizer rules, one per module, applied in this order. Each is `apply(plan, ctx) -> plan`
and has input/expected fixtures in tests/fixtures/rules/."""

from types import ModuleType

from workbench.optimizer.rules import (
    choose_batch_threads,
    choose_paradigm,
    dedup_inputs,
    lazy_limit,
    order_predicates,
    place_on_cluster,
    prune_outputs,
    push_filters,
)

#: each module has NAME and apply(plan, ctx) -> plan
RULES: tuple[ModuleType, ...] = (
    prune_outputs,
    push_filters,
    dedup_inputs,
    order_predicates,
    lazy_limit,
    choose_paradigm,
    choose_batch_threads,
    place_on_cluster,
)
NAMES = tuple(rule.NAME for rule in RULES)
