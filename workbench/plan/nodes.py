"""Immutable plan nodes: the one intermediate representation of a dlsql query.

A query with model calls becomes a `Plan`. Its relational parts stay SQL text that DuckDB
executes (the final statement, and each operator's input queries); each model call becomes
a `ModelOperator` (model, input queries, output type, options). The builder produces the
logical plan; optimizer rules (workbench/optimizer/rules/) rewrite it and then assign the
physical choices: paradigm, device, batch size, threads, precision, with the estimated
cost of every alternative kept for EXPLAIN. `actual_*` fields are filled by ANALYZE.

Operators are named by id. Where SQL reads an operator's output it calls the function
`lookup_name(id)`; which operators a piece of the plan reads is recorded as ids
(`ModelOperator.reads`, `Plan.reads`, the ids of each model filter), found in the syntax
tree by the builder, so no rule ever searches SQL text for another operator's name.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from workbench.plan.names import lookup_name, operator_id, public_sql
from workbench.plan.relational import RelationalPlan
from workbench.plan.render import Displayable, seconds_text
from workbench.plan.stats import OperatorStats
from workbench.telemetry.summary import count

__all__ = ["InputQuery", "ModelOperator", "Plan", "lookup_name", "operator_id", "union_sql"]

PARADIGMS = ("dl_centric", "udf_centric", "relation_centric", "hybrid")
#: the alternative of running dl_centric's model part on a Ray cluster (placement 'ray')
ON_RAY = "dl_centric on ray"
#: a model filter: (ids of the operators it reads, the conjunct's SQL)
ModelFilter = tuple[tuple[int, ...], str]


@dataclass(frozen=True)
class InputQuery:
    """Where one model call's inputs come from: `SELECT key AS k FROM source WHERE filters`.

    `pushable` holds the model-free conjuncts of the call's WHERE that the push_filters rule
    may move into `filters`; `model_filters` holds conjuncts on other model operators'
    outputs that order_predicates may apply (`after`) once those operators ran first.
    """

    key: str
    source: str | None = None  # FROM clause; None: a constant or scalar-subquery input
    with_sql: str = ""
    filters: tuple[str, ...] = ()
    pushable: tuple[str, ...] = ()
    model_filters: tuple[ModelFilter, ...] = ()
    after: tuple[ModelFilter, ...] = ()  # model filters applied: they read operators that run first
    group: str = ""
    distinct: bool = False
    aggregated: bool = False  # the key holds an aggregate: it sees exactly the filtered rows
    subquery_key: bool = False  # a bare key with a subquery may yield many rows
    in_lambda: bool = False  # the call is inside a lambda, where SQL can read it only through a function

    def widest(self) -> InputQuery:
        """This query with every candidate filter applied (to find all its parameters)."""
        return replace(
            self,
            filters=(*self.filters, *self.pushable),
            pushable=(),
            after=(*self.after, *self.model_filters),
            model_filters=(),
        )

    def without_after(self) -> InputQuery:
        """This query without the filters on other operators' outputs (which do not exist
        before those operators ran: planning counts rows without them)."""
        return replace(self, after=())

    def sql(self, *, distinct: bool | None = None) -> str:
        d = self.distinct if distinct is None else distinct
        prefix = f"{self.with_sql} " if self.with_sql else ""
        if self.source is None:
            return f"{prefix}SELECT {'DISTINCT ' if d and self.subquery_key else ''}{self.key} AS k"
        conditions = (*self.filters, *(sql for _, sql in self.after))
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        if self.aggregated:
            group = f" {self.group}" if self.group else ""
            inner = f"{prefix}SELECT {self.key} AS k FROM {self.source}{where}{group}"
            return f"SELECT {'DISTINCT ' if d else ''}k FROM ({inner}) WHERE k IS NOT NULL"
        return f"{prefix}SELECT {'DISTINCT ' if d else ''}{self.key} AS k FROM {self.source}{where}"


def union_sql(inputs: tuple[InputQuery, ...], *, distinct: bool | None = None) -> str:
    if len(inputs) == 1:
        return inputs[0].sql(distinct=distinct)
    d = inputs[0].distinct if distinct is None else distinct
    glue = " UNION " if d else " UNION ALL "
    return glue.join(f"SELECT k FROM ({q.sql(distinct=distinct)})" for q in inputs)


@dataclass(frozen=True)
class ModelOperator:
    id: int
    model: str
    call: str  # the call as the user wrote it, e.g. "minilm(body)"
    inputs: tuple[InputQuery, ...]
    #: the call's named options, ((name, value), ...): `gen(p, seed := 1)` (models/call_options.py)
    options: tuple[tuple[str, Any], ...] = ()
    reads: tuple[int, ...] = ()  # operators whose outputs its input queries read (they run first)
    input_type: str = ""
    output_type: str = ""
    paradigm: str = "dl_centric"
    forced: bool = False  # the paradigm came from a hint, not from the cost model
    alternatives: tuple[tuple[str, float | None], ...] = ()  # paradigm -> estimated seconds (None: cannot)
    reason: str = ""  # why this paradigm (or why the others cannot run)
    parts: tuple[str, ...] = ()  # for hybrid: what runs where
    device: str = "cpu"
    batch_size: int | None = None  # None: tuned by measurement at run time
    threads: tuple[int, int] | None = None  # (DuckDB threads, torch threads)
    precision: str = "float32"
    memory: str = "resident"  # or how it is offloaded: streamed layer by layer within a budget
    limit: int | None = None  # LIMIT without ORDER BY: inference may stop after this many rows
    estimated_rows: int | None = None  # distinct inputs the model sees
    estimated_input_rows: int | None = None  # rows reaching the call (before dedup)
    avg_input_chars: float = 0.0  # text inputs: what the cost per row depends on
    estimated_seconds: float | None = None
    params: tuple[str, ...] = ()
    cache_policy: str = "off"
    expected_hit_ratio: float | None = None  # from the cache table, before running
    actual_rows: int | None = None
    actual_seconds: float | None = None
    actual_cache_hits: int | None = None
    runtime: str = "torch"  # 'torch' (eager) or 'onnx' (onnxruntime, at `precision`)
    #: (runtime and precision, estimated seconds in the chosen paradigm; None: cannot run)
    runtime_alternatives: tuple[tuple[str, float | None], ...] = ()
    runtime_reason: str = ""  # why this runtime (and why the others cannot run)
    streaming_only: str = ""  # why only a streaming UDF (udf_centric) can run it where it stands
    decoding: str = ""  # a generator: sequences at once, new tokens, KV cache estimate (EXPLAIN)
    placement: str = "local"  # or 'ray': its cache misses run on the connected cluster's actors
    actors: int | None = None  # placement 'ray': how many actors ...
    nodes: int | None = None  # ... on how many nodes
    sql_name: str = field(default="", compare=False)  # the lookup's name in one execution (the runner's)

    @property
    def lookup(self) -> str:
        """The function through which SQL reads this operator's output."""
        return self.sql_name or lookup_name(self.id)

    @property
    def executor(self) -> str:
        """The registry's name of what runs it: its paradigm, or `dl_centric on ray`."""
        return ON_RAY if self.placement == "ray" else self.paradigm

    @property
    def where(self) -> str:
        """How and where it runs, as EXPLAIN says it: `dl_centric on ray (2 actors on 2 nodes)`."""
        if self.placement != "ray":
            return self.paradigm
        return f"{ON_RAY} ({count(self.actors or 0, 'actor')} on {count(self.nodes or 0, 'node')})"

    @property
    def input_sql(self) -> str:
        """DuckDB query yielding the operator's inputs (distinct when dedup_inputs ran)."""
        return union_sql(self.inputs)

    @property
    def in_lambda(self) -> bool:
        """Whether a call of it stands inside a lambda: DuckDB allows no subquery there, so
        its lookup must be a function over the outputs, not a query of them."""
        return any(q.in_lambda for q in self.inputs)

    @property
    def nested_in(self) -> tuple[int, ...]:
        """Operators its input values come from (a call nested in this one's argument or
        source), as opposed to those that only filter its rows."""
        filtering = {i for q in self.inputs for ids, _ in q.after for i in ids}
        return tuple(i for i in self.reads if i not in filtering)

    def with_actuals(self, stats: OperatorStats) -> ModelOperator:
        return replace(
            self,
            actual_rows=stats.rows,
            actual_seconds=stats.seconds,
            batch_size=stats.batch_size,
            actual_cache_hits=stats.cache_hits,
            paradigm=stats.paradigm,
            runtime=stats.runtime,
            runtime_reason=f"{stats.runtime_note}; ran in torch" if stats.runtime_note else self.runtime_reason,
        )

    def estimate_error(self) -> float | None:
        """Relative error of the estimated seconds against the actual ones (ANALYZE)."""
        if self.estimated_seconds is None or not self.actual_seconds:
            return None
        return (self.estimated_seconds - self.actual_seconds) / self.actual_seconds

    def hit_ratio(self) -> float | None:
        """Share of the inputs the cache answered (ANALYZE)."""
        if self.actual_cache_hits is None or not self.actual_rows:
            return None
        return self.actual_cache_hits / self.actual_rows

    def cache_text(self) -> str:
        if self.cache_policy == "off":
            return "cache off"
        text = f"cache {self.cache_policy}"
        if self.expected_hit_ratio is not None:
            text += f", expected hits {self.expected_hit_ratio:.0%}"
        if self.hit_ratio() is not None:
            text += f", actual hits {self.hit_ratio():.0%}"
        return text

    def alternatives_text(self) -> str:
        return ", ".join(f"{p} {seconds_text(s)}" for p, s in self.alternatives)

    def runtime_text(self) -> str:
        """The runtime and precision, with the other runtimes' estimates (when any)."""
        text = f"{self.runtime} {self.precision}"
        others = [(r, s) for r, s in self.runtime_alternatives if r != f"{self.runtime} {self.precision}"]
        if others:
            text += " (vs " + ", ".join(f"{r} {seconds_text(s)}" for r, s in others) + ")"
        return text

    def node(self, children: list[dict[str, Any]], analyzed: bool) -> dict[str, Any]:
        """This operator as a node of `Plan.to_dict()['root']`."""
        d: dict[str, Any] = {
            "operator": "ModelOperator",
            "id": self.id,
            "model": self.model,
            "call": self.call,
            "reads": list(self.reads),
            "paradigm": self.paradigm,
            "forced": self.forced,
            "alternatives": {p: _round(s) for p, s in self.alternatives},
            "estimated_seconds": _round(self.estimated_seconds),
            "reason": self.reason,
            "batch_size": self.batch_size,
            "device": self.device,
            "threads": {"duckdb": self.threads[0], "torch": self.threads[1]} if self.threads else None,
            "precision": self.precision,
            "runtime": self.runtime,
            "runtime_alternatives": {r: _round(s) for r, s in self.runtime_alternatives},
            "runtime_reason": self.runtime_reason,
            "memory": self.memory,
            "estimated_rows": self.estimated_rows,
            "cache": self.cache_policy,
            "expected_hit_ratio": _round(self.expected_hit_ratio),
            "output_type": self.output_type,
        }
        if self.parts:
            d["parts"] = list(self.parts)
        if self.placement != "local":
            d["placement"] = {"on": self.placement, "actors": self.actors, "nodes": self.nodes, "text": self.where}
        if self.limit is not None:
            d["limit"] = self.limit
        if self.decoding:
            d["decoding"] = self.decoding
        if analyzed:
            d.update(
                actual_rows=self.actual_rows,
                actual_seconds=self.actual_seconds,
                actual_cache_hits=self.actual_cache_hits,
                actual_cache_hit_ratio=_round(self.hit_ratio()),
                estimate_error=_round(self.estimate_error()),
            )
        inputs: dict[str, Any] = {"operator": "Inputs", "sql": self.input_sql, "estimated_rows": self.estimated_rows}
        if analyzed:
            inputs["actual_rows"] = self.actual_rows
        d["children"] = children + [{**inputs, "children": []}]
        return d


def _round(x: float | None) -> float | None:
    """Three significant digits: estimates are not precise, and a stable form diffs well."""
    return None if x is None else float(f"{x:.3g}")


@dataclass(frozen=True, repr=False)
class Plan(Displayable):
    sql: str  # the statement as written
    final_sql: str  # the statement DuckDB runs once the operators have run
    operators: tuple[ModelOperator, ...] = ()
    reads: tuple[int, ...] = ()  # operators the final statement reads directly
    analyzed: bool = False
    params: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # what the optimizer rules did, in order
    relational_plan: str = field(default="", compare=False)
    actual_rows: int | None = field(default=None, compare=False)  # ANALYZE: the statement's result rows
    actual_seconds: float | None = field(default=None, compare=False)  # ANALYZE: the whole statement
    relational: RelationalPlan | None = field(default=None, compare=False)  # DuckDB's tree of final_sql

    def relational_tree(self) -> RelationalPlan | None:
        """DuckDB's operator tree with the model operators' measured time (ANALYZE), for
        the time shares of every node."""
        if self.relational is None:
            return None
        seconds = {op.id: op.actual_seconds for op in self.operators if op.actual_seconds is not None}
        inside = frozenset(op.id for op in self.operators if op.paradigm == "udf_centric")
        return self.relational.with_model_seconds(seconds, inside)

    def operator(self, op_id: int) -> ModelOperator:
        return next(op for op in self.operators if op.id == op_id)

    def consumed(self) -> set[int]:
        """Operators whose output another operator's inputs read (nested calls)."""
        return {i for op in self.operators for i in op.reads}

    def root(self) -> dict[str, Any]:
        """The plan as a tree: the final query reads the top model operators; an operator
        reads the operators its inputs call, and its input query."""
        by_id = {op.id: op for op in self.operators}

        def node(op: ModelOperator) -> dict[str, Any]:
            return op.node([node(by_id[i]) for i in op.reads if i in by_id], self.analyzed)

        consumed = self.consumed()
        tops = [op for op in self.operators if op.id not in consumed]
        root: dict[str, Any] = {"operator": "Query", "sql": self.final_sql}
        if self.analyzed:
            root.update(actual_rows=self.actual_rows, actual_seconds=self.actual_seconds)
        root["children"] = [node(op) for op in tops]
        return root

    def to_dict(self) -> dict[str, Any]:
        """Deterministic JSON form (no timings unless analyzed; estimates to 3 digits).

        The engine's lookup functions (`__wb_lookup_<id>`) appear as `lookup_<id>`, so the
        same query gives the same dict in any session."""
        d = asdict(replace(self, relational=None))
        tree = self.relational_tree()
        d["relational"] = tree.to_dict() if tree is not None else None
        d["operators"] = [asdict(op) | {"input_sql": op.input_sql} for op in self.operators]
        for op in d["operators"]:
            op.pop("sql_name")
        if not self.analyzed:
            d.pop("actual_rows"), d.pop("actual_seconds")
            for op in d["operators"]:
                for key in ("actual_rows", "actual_seconds", "actual_cache_hits"):
                    op.pop(key, None)
        d["root"] = self.root()
        return json.loads(public_sql(json.dumps(d)))
