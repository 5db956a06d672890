"""Optimizer rules, one per module, applied in this order. Each is `apply(plan, ctx) -> plan`
and has input/expected fixtures in tests/fixtures/rules/."""

from workbench.optimizer.rules import (
    choose_batch_threads,
    choose_paradigm,
    dedup_inputs,
    lazy_limit,
    order_predicates,
    prune_outputs,
    push_filters,
)

RULES = (prune_outputs, push_filters, dedup_inputs, order_predicates, lazy_limit, choose_paradigm,
         choose_batch_threads)
NAMES = tuple(rule.NAME for rule in RULES)
