"""Statement -> logical plan -> optimized physical plan.

Planning reads (the catalog's model profiles, column names and types, input counts, the
cache's expected hits) and writes nothing: the `Schema` and `Counter` it reads through are
protocols, so the same planner runs on a live cursor or on a schema dict in tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from workbench.errors import SQLSyntaxError, WorkbenchError
from workbench.models.base import TEXT_KINDS, cached_by_value
from workbench.models.call_options import CallOptions
from workbench.optimizer import hints
from workbench.optimizer.cluster_cost import ClusterFacts
from workbench.optimizer.context import Context
from workbench.optimizer.cost import CostModel, Facts
from workbench.optimizer.optimize import optimize
from workbench.plan.builder import PlanBuilder, Schema, parse, with_nulls
from workbench.plan.nodes import ModelOperator, Plan, union_sql
from workbench.plan.profile import ModelProfile, RuntimeOption
from workbench.sql import params as sql_params
from workbench.sql import statements as st
from workbench.telemetry.summary import size as size_text

#: what planning assumes when it cannot count an operator's inputs
UNCOUNTED = (1000, 1000, 200.0)


class Counter(Protocol):
    """Counts planning reads from the database."""

    def count(self, query: str, params: dict[str, Any], text: bool) -> tuple[int, int, float]:
        """(rows, distinct rows, mean length for text) of the single column of `query`."""

    def hit_ratio(self, op: ModelOperator, params: dict[str, Any]) -> float:
        """Share of the operator's inputs the inference cache holds now."""

    def count_and_hits(
        self, op: ModelOperator, query: str, params: dict[str, Any], text: bool
    ) -> tuple[int, int, float, float]:
        """`count` and `hit_ratio` in one pass (a cached operator's planning reads)."""


@dataclass(frozen=True)
class Catalog:
    """What planning reads of the model catalog, as functions of a model name."""

    names: frozenset[str]
    profile: Callable[[str], ModelProfile]
    batch_size: Callable[[str], int | None]  # the user's (call, model option, session)
    precision: Callable[[str], str]
    memory: Callable[[str], str]
    cache_policy: Callable[[str, CallOptions], str]  # 'off' or the policy's description (of a call's options)
    unavailable: Callable[[ModelProfile, str], dict[str, str]] = lambda profile, precision: {}
    cluster: Callable[[ModelProfile], ClusterFacts] | None = None  # the connected Ray cluster's facts
    runtimes: Callable[[str], tuple[RuntimeOption, ...]] = lambda name: ()  # ONNX Runtime forms


def bind(stmt: st.Sql, params: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """The statement with `:name` placeholders as DuckDB parameters, and their values."""
    text, names = sql_params.rewrite(stmt.text, stmt.start, stmt.tokens)
    return text, sql_params.bind(names, params)


def hints_of(stmt: st.Sql, paradigm: str | None) -> hints.Hints:
    return hints.parse((c for tok in stmt.tokens for c in (tok.comments or ())), paradigm)


def calls_models(stmt: st.Sql, names: set[str] | frozenset[str]) -> bool:
    toks = stmt.tokens
    return any(toks[i].text.lower() in names and toks[i + 1].text == "(" for i in range(len(toks) - 1))


class Planner:
    def __init__(
        self, catalog: Catalog, schema: Schema, counter: Counter, cost: CostModel, *, cores: int | None = None
    ):
        self.catalog = catalog
        self.schema = schema
        self.counter = counter
        self.cost = cost
        self.cores = cores

    def logical(self, text: str) -> Plan:
        """The plan before any optimizer rule."""
        try:
            tree = parse(text)
            called = {n for n in self.catalog.names if re.search(rf"\b{re.escape(n)}\s*\(", text, re.IGNORECASE)}
            return PlanBuilder({n: self.catalog.profile(n) for n in called}, self.schema).build(text, tree)
        except RecursionError:
            raise SQLSyntaxError("the statement is nested too deeply to plan") from None

    def physical(
        self, logical: Plan, values: dict[str, Any], hint: hints.Hints, disabled: frozenset[str] = frozenset()
    ) -> Plan:
        """The optimizer's rules over the logical plan, then how each operator runs."""
        ctx = self.context(logical, values, hint)
        plan = optimize(logical, ctx, disabled=disabled)
        ops = tuple(replace(op, decoding=self.decoding(op, ctx)) for op in plan.operators)
        return replace(plan, operators=ops)

    def decoding(self, op: ModelOperator, ctx: Context) -> str:
        """A generator's decoding plan, for EXPLAIN: sequences at once, new tokens, and the
        KV cache that holds (each sequence's prompt, estimated from its characters, plus its
        new tokens, within the context); '' for other models."""
        profile = self.catalog.profile(op.model)
        if profile.task != "generate" or "kv_bytes_per_token" not in profile.extra:
            return ""
        facts = ctx.facts(op)
        new = int(dict(op.options).get("max_new_tokens", profile.extra["max_new_tokens"]))
        context = int(profile.extra["context"])
        slots = max(1, min(op.batch_size or profile.default_batch(), facts.rows or 1))
        tokens = min(context, int(facts.avg_chars / 4) + 2 + new)
        per_token = int(profile.extra["kv_bytes_per_token"])
        return (
            f"{slots} sequence{'s' * (slots != 1)} at once (continuous batching), up to {new} new tokens each, "
            f"KV cache ~{size_text(slots * tokens * per_token)} ({size_text(per_token)} per token)"
        )

    def plan(
        self, text: str, values: dict[str, Any], hint: hints.Hints, disabled: frozenset[str] = frozenset()
    ) -> Plan:
        return self.physical(self.logical(text), values, hint, disabled)

    def context(self, logical: Plan, values: dict[str, Any], hint: hints.Hints) -> Context:
        c = self.catalog
        ctx = Context(
            cost=self.cost,
            facts=self.facts_of(logical, values),
            profile=c.profile,
            hints=hint,
            batch_size=c.batch_size,
            precision=c.precision,
            memory=c.memory,
            unavailable=c.unavailable,
            cluster=c.cluster,
            runtimes=c.runtimes,
        )
        if self.cores is not None:
            ctx.cores = self.cores
        return ctx

    # -- facts --------------------------------------------------------------------------
    def facts_of(self, logical: Plan, values: dict[str, Any]) -> Callable[[ModelOperator], Facts]:
        """Facts per operator of one statement, each counted once (an operator another one
        nests is counted first, whatever order the rules ask in)."""
        known: dict[int, Facts] = {}
        output_types = {op.id: op.output_type for op in logical.operators}
        by_id = {op.id: op for op in logical.operators}

        def facts(op: ModelOperator) -> Facts:
            if op.id not in known:
                nested = [facts(by_id[i]) for i in op.nested_in if i in by_id]
                known[op.id] = self._facts(op, values, nested, output_types)
            return known[op.id]

        return facts

    def _facts(
        self, op: ModelOperator, values: dict[str, Any], nested: list[Facts], output_types: dict[int, str]
    ) -> Facts:
        """Exact counts of an operator's inputs (its input query runs no model, so counting
        is cheap); a call nested in another's input is estimated from that operator's facts,
        and each filter on another's output is taken to keep half the rows (its outputs do
        not exist before it ran)."""
        profile = self.catalog.profile(op.model)
        text = profile.input_kind in TEXT_KINDS
        params = {n: values[n] for n in op.params if n in values}
        share = 0.5 ** sum(len(q.after) for q in op.inputs)
        policy = (
            self.catalog.cache_policy(op.model, op.options)
            if cached_by_value(profile.input_kind, op.input_type)
            else "off"
        )
        ratio, counted_hits = 0.0, False
        if nested:
            rows, total, chars = nested[0].rows, nested[0].rows, 0.0
        else:
            query = with_nulls(union_sql(tuple(q.without_after() for q in op.inputs), distinct=False), output_types)
            try:
                if policy != "off" and not op.reads:
                    total, rows, chars, ratio = self.counter.count_and_hits(op, query, params, text)
                    counted_hits = True
                else:
                    total, rows, chars = self.counter.count(query, params, text)
            except WorkbenchError:
                total, rows, chars = UNCOUNTED
        rows, total = max(1, int(rows * share)), max(1, int(total * share))
        if policy != "off" and not op.reads and not counted_hits:
            try:
                ratio = self.counter.hit_ratio(op, params) or 0.0
            except WorkbenchError:  # e.g. another session is creating the cache table right now
                ratio = 0.0
        width = profile.input_dim or 1
        key_bytes = float(chars or 1.0) if text else 8.0 if profile.input_kind == "ids" else 4.0 * width
        return Facts(
            rows=rows,
            input_rows=total,
            key_bytes=key_bytes,
            avg_chars=float(chars or 0.0),
            hit_ratio=ratio,
            cache_on=policy != "off",
            cache_policy=policy,
        )


def with_actuals(plan: Plan, stats: list[Any], rows: int, seconds: float) -> Plan:
    """The plan after EXPLAIN ANALYZE ran it."""
    ops = tuple(op.with_actuals(s) for op, s in zip(plan.operators, stats))
    return replace(plan, operators=ops, analyzed=True, actual_rows=rows, actual_seconds=seconds)
