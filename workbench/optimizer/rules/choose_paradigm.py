"""Pick the paradigm of each model operator by estimated cost (or by the user's hint).

Every paradigm's estimate is kept on the operator (`alternatives`) with the reason for the
choice, so EXPLAIN shows why. A hint forces a paradigm; a forced paradigm that cannot run
(no relational form, weights over the memory budget) is an error, not a silent fallback.
With the inference cache on, udf_centric is taken only when forced or when a LIMIT lets it
stop early: it runs inside DuckDB's pipeline where the cache is neither read nor filled.

Estimates follow the rules that ran: an operator whose inputs were not deduplicated
(dedup_inputs off, or skipped as not worth it) is costed on every row reaching the call.
The relational paradigms (relation_centric, hybrid) are taken only where they are the
only ones that can run, or where their estimate beats the best torch paradigm by
`RELATIONAL_MARGIN` (cost.py): their estimates are the least certain, and a wrong pick costs up to
100x (dense layers in SQL), while a wrong torch pick costs little.

Runtimes (eager torch, ONNX Runtime float32 or int8: `ctx.runtimes`) are weighed with the
paradigms: each runtime is costed in every paradigm that runs torch-like batches (dl_centric,
udf_centric), its one-off setup (export, loading, the check against torch on the query's own
inputs) added, and the cheapest (paradigm, runtime) wins. Each paradigm's alternative is its
best runtime; each runtime's estimate in the chosen paradigm is kept for EXPLAIN too.

A udf_centric operator is called by the statement itself: the runner defines its lookup
function as the UDF instead of a read of materialized outputs, so the SQL does not change.
"""

from __future__ import annotations

from dataclasses import replace

from workbench.errors import OutOfMemoryBudget, ParadigmUnavailable, WorkbenchError
from workbench.optimizer.context import Context
from workbench.optimizer.cost import RELATIONAL, RELATIONAL_MARGIN, Estimate, Facts, preferred
from workbench.optimizer.rules.lazy_limit import in_where
from workbench.plan.nodes import ModelOperator, Plan
from workbench.plan.profile import ModelProfile, RuntimeOption

#: the paradigms an ONNX Runtime form can run in (the relational ones compile torch layers)
RUNTIME_PARADIGMS = ("dl_centric", "udf_centric")
#: batch the check against torch runs in (its cost per row is estimated at that batch)
CHECK_BATCH = 32

NAME = "choose_paradigm"
#: LIMIT over a model predicate: share of rows assumed to pass it
PREDICATE_SELECTIVITY = 0.5


def apply(plan: Plan, ctx: Context) -> Plan:
    ops = list(plan.operators)
    for i, op in enumerate(ops):
        try:
            ops[i] = _choose(plan, op, ctx)
        except WorkbenchError:
            raise
        except Exception as exc:  # noqa: BLE001 - a bug or a model's own error: one line, never a raw traceback
            first = (str(exc).splitlines() or [""])[0][:200]
            raise ParadigmUnavailable(f"{op.call}: cannot plan it: {type(exc).__name__}: {first}") from exc
    return replace(plan, operators=tuple(ops))


def _choose(plan: Plan, op: ModelOperator, ctx: Context) -> ModelOperator:
    """The operator with its paradigm, runtime and the estimates behind the choice."""
    model = ctx.profile(op.model)
    facts = ctx.facts(op)
    dedup = all(q.distinct for q in op.inputs)
    if not dedup:  # every row reaching the call runs the model
        facts = replace(facts, rows=facts.input_rows)
    limit_rows = None
    if op.limit is not None:
        share = PREDICATE_SELECTIVITY if in_where(plan.final_sql, op.id) else 1.0
        limit_rows = min(facts.input_rows, int(op.limit / share) + 1)
    estimates = ctx.cost.estimates(
        model, facts, batch=ctx.batch_size(op.model) or model.batch_size, limit_rows=limit_rows, dedup=dedup
    )
    precision = ctx.precision(op.model)
    options = ctx.runtimes(op.model)
    torch_label = f"torch {precision}"
    by_runtime = {torch_label: estimates}
    for o in options:
        if not o.blocked:
            by_runtime[o.label] = _runtime_estimates(ctx, o, model, facts, limit_rows)
    forced_runtime = any(o.forced and not o.blocked for o in options)
    runtime_of = {e.paradigm: torch_label for e in estimates}
    if len(by_runtime) > 1:
        estimates, runtime_of = _best_per_paradigm(by_runtime, torch_label, exclude_torch=forced_runtime)
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
        cheapest = min(eligible, key=_seconds)
        chosen = preferred(eligible)
        reason = _why(chosen, eligible, estimates, facts.cache_on, op.limit)
        if chosen is not cheapest:
            torch_only = [e for e in eligible if e.paradigm not in RELATIONAL]
            reason = (
                f"{cheapest.paradigm} estimated {_seconds(chosen) / max(_seconds(cheapest), 1e-9):.1f}x faster, "
                f"under the {RELATIONAL_MARGIN:g}x a relational plan must win by; "
                + _why(chosen, torch_only, estimates, facts.cache_on, op.limit)
            )
    runtime, runtime_precision = runtime_of.get(chosen.paradigm, torch_label).split(" ", 1)
    runtime_alternatives: tuple[tuple[str, float | None], ...] = ()
    if options:
        runtime_alternatives = tuple(
            (label, next((e.seconds for e in found if e.paradigm == chosen.paradigm), None))
            for label, found in by_runtime.items()
        ) + tuple((o.label, None) for o in options if o.blocked)
    return replace(
        op,
        runtime=runtime,
        runtime_alternatives=runtime_alternatives,
        runtime_reason=_runtime_why(options, runtime, forced_runtime),
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
        precision=runtime_precision if runtime != "torch" else precision,
        memory=ctx.memory(op.model),
    )


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


def _runtime_estimates(
    ctx: Context, option: RuntimeOption, torch_profile: ModelProfile, facts: Facts, limit_rows: int | None
) -> list[Estimate]:
    """The paradigms' estimates for a runtime form: its own per-row cost plus its one-off
    setup, which includes checking it against torch on a sample of the inputs."""
    profile = option.profile
    found = ctx.cost.estimates(
        profile, facts, batch=ctx.batch_size(profile.name) or profile.batch_size, limit_rows=limit_rows
    )
    check_rows = min(option.check_rows, facts.rows)
    reference = option.reference or torch_profile
    setup = option.setup_s + check_rows * (
        ctx.cost.row_seconds(reference, CHECK_BATCH, facts) + ctx.cost.row_seconds(profile, CHECK_BATCH, facts)
    )
    return [
        replace(e, seconds=e.seconds + setup) if e.seconds is not None else e
        for e in found
        if e.paradigm in RUNTIME_PARADIGMS
    ]


def _best_per_paradigm(
    by_runtime: dict[str, list[Estimate]], torch_label: str, *, exclude_torch: bool
) -> tuple[list[Estimate], dict[str, str]]:
    """Each paradigm's estimate in its cheapest runtime (torch's order and notes kept), and
    which runtime that is. A forced runtime leaves torch out of the dl/udf paradigms."""
    out: list[Estimate] = []
    runtime_of: dict[str, str] = {}
    for base in by_runtime[torch_label]:
        best, label = (
            (None, torch_label) if exclude_torch and base.paradigm in RUNTIME_PARADIGMS else (base, torch_label)
        )
        for name, found in by_runtime.items():
            if name == torch_label:
                continue
            e = next((x for x in found if x.paradigm == base.paradigm), None)
            if (
                e is not None
                and e.seconds is not None
                and (best is None or best.seconds is None or e.seconds < best.seconds)
            ):
                best, label = e, name
        if best is None:
            best = base
        out.append(best)
        runtime_of[base.paradigm] = label
    return out, runtime_of


def _runtime_why(options: tuple[RuntimeOption, ...], runtime: str, forced: bool) -> str:
    if not options:
        return ""
    text = "forced by the model's runtime option" if forced and runtime != "torch" else "cheapest estimate"
    blocked = [f"{o.label}: {o.blocked}" for o in options if o.blocked]
    return "; ".join([text, *blocked])
