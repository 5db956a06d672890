"""Pick the paradigm of each model operator by estimated cost (or by the user's hint).

Every paradigm's estimate is kept on the operator (`alternatives`) with the reason for the
choice, so EXPLAIN shows why. A hint forces a paradigm; a forced paradigm that cannot run
(no relational form, weights over the memory budget) is an error, not a silent fallback.
With the inference cache on, udf_centric is taken only when forced or when a LIMIT lets it
stop early: it runs inside DuckDB's pipeline where the cache is neither read nor filled.

A udf_centric operator is called by the statement itself: the runner defines its lookup
function as the UDF instead of a read of materialized outputs, so the SQL does not change.
"""

from __future__ import annotations

from dataclasses import replace

from workbench.errors import OutOfMemoryBudget, ParadigmUnavailable
from workbench.optimizer.context import Context
from workbench.optimizer.cost import Estimate
from workbench.optimizer.rules.lazy_limit import in_where
from workbench.plan.nodes import Plan

NAME = "choose_paradigm"
#: LIMIT over a model predicate: share of rows assumed to pass it
PREDICATE_SELECTIVITY = 0.5


def apply(plan: Plan, ctx: Context) -> Plan:
    ops = list(plan.operators)
    for i, op in enumerate(ops):
        model = ctx.profile(op.model)
        facts = ctx.facts(op)
        limit_rows = None
        if op.limit is not None:
            share = PREDICATE_SELECTIVITY if in_where(plan.final_sql, op.id) else 1.0
            limit_rows = min(facts.input_rows, int(op.limit / share) + 1)
        estimates = ctx.cost.estimates(
            model, facts, batch=ctx.batch_size(op.model) or model.batch_size, limit_rows=limit_rows
        )
        precision = ctx.precision(op.model)
        blocked = ctx.unavailable(model, precision)  # the executors' own answer
        estimates = [
            replace(e, seconds=None, parts=(), note=blocked[e.paradigm])
            if e.paradigm in blocked and e.seconds is not None
            else e
            for e in estimates
        ]
        by_name = {e.paradigm: e for e in estimates}
        forced = ctx.hints.forced(op.model)
        if op.streaming_only:  # the call runs where it stands, or not at all
            if forced not in (None, "udf_centric"):
                raise ParadigmUnavailable(f"{op.call}: cannot run {forced}: {op.streaming_only}")
            estimates = [
                e if e.paradigm == "udf_centric" else replace(e, seconds=None, parts=(), note="only udf_centric")
                for e in estimates
            ]
            by_name = {e.paradigm: e for e in estimates}
            forced = forced or "udf_centric"
        if forced is not None:
            chosen = by_name[forced]
            if chosen.seconds is None:
                error = OutOfMemoryBudget if "memory budget" in chosen.note else ParadigmUnavailable
                raise error(f"{op.call}: cannot run {forced}: {chosen.note}")
            reason = f"only udf_centric: {op.streaming_only}" if op.streaming_only else f"forced by a hint ({forced})"
        else:
            # with the cache on, inference stays materialized so its results are kept, unless
            # a LIMIT lets a streaming UDF stop early
            eligible = [
                e
                for e in estimates
                if e.seconds is not None and not (facts.cache_on and op.limit is None and e.paradigm == "udf_centric")
            ]
            if not eligible:  # every paradigm is blocked: by the memory budget, or cannot run it
                raise _none_can_run(op.call, op.model, estimates)
            chosen = min(eligible, key=_seconds)
            reason = _why(chosen, eligible, estimates, facts.cache_on, op.limit)
        ops[i] = replace(
            op,
            paradigm=chosen.paradigm,
            forced=forced is not None and not op.streaming_only,
            parts=chosen.parts,
            alternatives=tuple((e.paradigm, e.seconds) for e in estimates),
            reason=reason,
            estimated_seconds=chosen.seconds,
            estimated_rows=facts.rows,
            estimated_input_rows=facts.input_rows,
            avg_input_chars=facts.avg_chars,
            expected_hit_ratio=facts.hit_ratio if facts.cache_on else None,
            cache_policy=facts.cache_policy,
            precision=precision,
            memory=ctx.memory(op.model),
        )
    return replace(plan, operators=tuple(ops))


def _none_can_run(call: str, model: str, estimates: list[Estimate]) -> Exception:
    """One line for a call no paradigm can run: each reason once, and what to do."""
    notes = list(dict.fromkeys(e.note for e in estimates if e.note))
    text = f"{call}: no way to run it: {'; '.join(notes) or 'no paradigm can run this model'}"
    if any("memory budget" in n for n in notes):
        return OutOfMemoryBudget(
            f"{text} (raise memory_budget_cpu, or ALTER MODEL {model} SET offload = 'auto' to stream a "
            "transformers model's layers from disk)"
        )
    return ParadigmUnavailable(text)


def _why(
    chosen: Estimate, eligible: list[Estimate], estimates: list[Estimate], cache_on: bool, limit: int | None
) -> str:
    runner_up = sorted((e for e in eligible if e is not chosen), key=_seconds)
    text = "cheapest estimate"
    if runner_up:
        text += f" ({_seconds(runner_up[0]) / max(_seconds(chosen), 1e-9):.1f}x faster than {runner_up[0].paradigm})"
    if limit is not None and chosen.paradigm == "udf_centric":
        text += "; streams and stops at the LIMIT"
    if cache_on and chosen.paradigm == "udf_centric":
        text += "; its results bypass the inference cache"
    elif cache_on and limit is None:
        text += "; udf_centric not considered: it bypasses the inference cache"
    blocked = [f"{e.paradigm}: {e.note}" for e in estimates if e.seconds is None and e.note]
    if blocked:
        text += "; " + "; ".join(dict.fromkeys(blocked))
    return text


def _seconds(e: Estimate) -> float:
    """The estimate of a paradigm that can run (the others never reach a comparison)."""
    assert e.seconds is not None
    return e.seconds
