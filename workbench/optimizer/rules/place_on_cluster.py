"""Place a model operator on the connected Ray cluster when that is cheaper ("dl_centric on ray").

Runs after the paradigm and batch are chosen. With a cluster set (`SET cluster = ...`), every
operator that dl_centric could run gets the estimate of running its cache misses on the
cluster's actors (workbench/optimizer/cluster_cost.py) added to its alternatives; the operator
moves there when that estimate beats the local choice, or when a hint asks for it:

    SELECT /*+ placement(minilm, ray) */ ...       on the cluster (the cost model picks actors)
    SELECT /*+ placement(minilm, ray, 2) */ ...    on the cluster with 2 actors
    SELECT /*+ placement(minilm, local) */ ...     on this machine

A model offloaded here (bigger than the memory budget) runs offloaded on each actor, within
the same budget per actor. Without this rule nothing runs on a cluster. Lookups and the cache stay in DuckDB: only the
misses travel, so the operator keeps paradigm dl_centric with placement 'ray'.
"""

from __future__ import annotations

from dataclasses import replace

from workbench.errors import ParadigmUnavailable
from workbench.optimizer import cluster_cost
from workbench.optimizer.context import Context
from workbench.plan.nodes import ON_RAY, Plan

NAME = "place_on_cluster"


def apply(plan: Plan, ctx: Context) -> Plan:
    ops = []
    for op in plan.operators:
        asked = ctx.hints.placement(op.model)
        if ctx.cluster is None:
            if asked is not None and asked[0] == "ray":
                raise ParadigmUnavailable(f"{op.call}: cannot run on ray: no cluster (SET cluster = 'local' | ...)")
            ops.append(op)
            continue
        profile = ctx.profile(op.model)
        facts = ctx.facts(op)
        cluster = ctx.cluster(profile)
        why_not = _why_not(op.streaming_only, op.forced and op.paradigm != "dl_centric", ctx.precision(op.model))
        local = dict(op.alternatives).get("dl_centric")
        found = None
        if not why_not and local is not None:
            batch = op.batch_size or profile.default_batch(ctx.batch_size(op.model))
            wanted = asked[1] if asked is not None and asked[0] == "ray" else None
            found = cluster_cost.estimate(
                ctx.cost, profile, facts, cluster, local_seconds=local, batch=batch, cores=ctx.cores, actors=wanted
            )
        alternatives = (*op.alternatives, (ON_RAY, found.seconds if found else None))
        on_ray = found is not None and (
            (asked is not None and asked[0] == "ray")
            or (asked is None and not op.forced and found.seconds < (op.estimated_seconds or 0.0))
        )
        if asked is not None and asked[0] == "ray" and found is None:
            raise ParadigmUnavailable(f"{op.call}: cannot run on ray: {why_not or 'the cluster has no free CPU'}")
        if not on_ray or found is None:
            ops.append(replace(op, alternatives=alternatives))
            continue
        if asked is not None:
            reason = "forced by a hint (placement ray)"
        else:
            ratio = (op.estimated_seconds or 0.0) / max(found.seconds, 1e-9)
            reason = f"cheapest estimate ({ratio:.1f}x faster than {op.paradigm} here)"
        if not cluster.measured:
            reason += "; cluster costs are priors until a run measures them"
        ops.append(
            replace(
                op,
                paradigm="dl_centric",
                placement="ray",
                actors=found.actors,
                nodes=found.nodes,
                parts=(),
                alternatives=alternatives,
                reason=reason,
                estimated_seconds=found.seconds,
                threads=(ctx.cores, 1),
                forced=asked is not None or op.forced,
            )
        )
    return replace(plan, operators=tuple(ops))


def _why_not(streaming_only: str, other_paradigm_forced: bool, precision: str) -> str:
    if streaming_only:
        return "only udf_centric"
    if other_paradigm_forced:
        return "another paradigm is forced"
    if precision != "float32":
        return f"the {precision} variant runs on this machine"
    return ""
