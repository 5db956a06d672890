"""Immutable plan nodes: the one intermediate representation of a dlsql query.

A query with model calls becomes a `Plan`. Its relational parts stay SQL text that DuckDB
executes (the final statement, and each operator's input queries); each model call becomes
a `ModelOperator` (model, input queries, output type, options). The builder produces the
logical plan; optimizer rules (workbench/optimizer/rules/) rewrite it and then assign the
physical choices: paradigm, device, batch size, threads, precision, with the estimated
cost of every alternative kept for EXPLAIN. `actual_*` fields are filled by ANALYZE.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

PARADIGMS = ("dl_centric", "udf_centric", "relation_centric", "hybrid")
MIME_TYPE = "application/vnd.workbench.plan+json"
_SESSION_NAMES = re.compile(r"__wb_\d+_(lookup|udf)_(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class InputQuery:
    """Where one model call's inputs come from: `SELECT key AS k FROM source WHERE filters`.

    `pushable` holds the model-free conjuncts of the call's WHERE that the push_filters rule
    may move into `filters`; `model_filters` holds conjuncts on other model operators'
    outputs (lookup function, SQL) that order_predicates may add once those ran first.
    """

    key: str
    source: str | None = None  # FROM clause; None: a constant or scalar-subquery input
    with_sql: str = ""
    filters: tuple[str, ...] = ()
    pushable: tuple[str, ...] = ()
    model_filters: tuple[tuple[str, str], ...] = ()
    group: str = ""
    distinct: bool = False
    aggregated: bool = False  # the key holds an aggregate: it sees exactly the filtered rows
    subquery_key: bool = False  # a bare key with a subquery may yield many rows

    def widest(self) -> InputQuery:
        """This query with every candidate filter applied (to find all its parameters)."""
        return replace(self, filters=(*self.filters, *self.pushable, *(f for _, f in self.model_filters)),
                       pushable=(), model_filters=())

    def sql(self, *, distinct: bool | None = None) -> str:
        d = self.distinct if distinct is None else distinct
        prefix = f"{self.with_sql} " if self.with_sql else ""
        if self.source is None:
            return f"{prefix}SELECT {'DISTINCT ' if d and self.subquery_key else ''}{self.key} AS k"
        where = f" WHERE {' AND '.join(self.filters)}" if self.filters else ""
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
    lookup: str  # the function the final SQL calls instead of the model
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

    @property
    def input_sql(self) -> str:
        """DuckDB query yielding the operator's inputs (distinct when dedup_inputs ran)."""
        return union_sql(self.inputs)

    def with_actuals(self, stats: dict[str, Any]) -> ModelOperator:
        return replace(self, actual_rows=stats["rows"], actual_seconds=stats["seconds"],
                       batch_size=stats["batch_size"], actual_cache_hits=stats["cache_hits"],
                       paradigm=stats.get("paradigm", self.paradigm))

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
        return ", ".join(f"{p} {_seconds(s)}" for p, s in self.alternatives)

    def node(self, children: list[dict[str, Any]], analyzed: bool) -> dict[str, Any]:
        """This operator as a node of `Plan.to_dict()['root']`."""
        d: dict[str, Any] = {
            "operator": "ModelOperator", "id": self.id, "model": self.model, "call": self.call,
            "paradigm": self.paradigm, "forced": self.forced,
            "alternatives": {p: _round(s) for p, s in self.alternatives},
            "estimated_seconds": _round(self.estimated_seconds), "reason": self.reason,
            "batch_size": self.batch_size, "device": self.device,
            "threads": {"duckdb": self.threads[0], "torch": self.threads[1]} if self.threads else None,
            "precision": self.precision, "memory": self.memory, "estimated_rows": self.estimated_rows,
            "cache": self.cache_policy, "expected_hit_ratio": _round(self.expected_hit_ratio),
            "output_type": self.output_type,
        }
        if self.parts:
            d["parts"] = list(self.parts)
        if self.limit is not None:
            d["limit"] = self.limit
        if analyzed:
            d.update(actual_rows=self.actual_rows, actual_seconds=self.actual_seconds,
                     actual_cache_hits=self.actual_cache_hits, actual_cache_hit_ratio=_round(self.hit_ratio()),
                     estimate_error=_round(self.estimate_error()))
        inputs: dict[str, Any] = {"operator": "Inputs", "sql": self.input_sql, "estimated_rows": self.estimated_rows}
        if analyzed:
            inputs["actual_rows"] = self.actual_rows
        d["children"] = children + [{**inputs, "children": []}]
        return d


def _round(x: float | None) -> float | None:
    """Three significant digits: estimates are not precise, and a stable form diffs well."""
    return None if x is None else float(f"{x:.3g}")


def _seconds(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x * 1000:.3g} ms" if x < 1 else f"{x:.3g} s"


@dataclass(frozen=True)
class Plan:
    sql: str  # the statement as written
    final_sql: str  # the statement DuckDB runs once the operators have run
    operators: tuple[ModelOperator, ...] = ()
    analyzed: bool = False
    params: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # what the optimizer rules did, in order
    relational_plan: str = field(default="", compare=False)
    actual_rows: int | None = field(default=None, compare=False)  # ANALYZE: the statement's result rows
    actual_seconds: float | None = field(default=None, compare=False)  # ANALYZE: the whole statement

    def consumers(self) -> dict[str, list[ModelOperator]]:
        """For each lookup function, the operators whose inputs read it (nested calls)."""
        out: dict[str, list[ModelOperator]] = {}
        for op in self.operators:
            for other in self.operators:
                if other is not op and op.lookup and op.lookup in other.input_sql:
                    out.setdefault(op.lookup, []).append(other)
        return out

    def root(self) -> dict[str, Any]:
        """The plan as a tree: the final query reads the top model operators; an operator
        reads the operators its inputs call, and its input query."""
        consumed = self.consumers()

        def node(op: ModelOperator) -> dict[str, Any]:
            inner = [o for o in self.operators if o is not op and o.lookup and o.lookup in op.input_sql]
            return op.node([node(o) for o in inner], self.analyzed)

        tops = [op for op in self.operators if op.lookup not in consumed]
        root: dict[str, Any] = {"operator": "Query", "sql": self.final_sql}
        if self.analyzed:
            root.update(actual_rows=self.actual_rows, actual_seconds=self.actual_seconds)
        root["children"] = [node(op) for op in tops]
        return root

    def to_dict(self) -> dict[str, Any]:
        """Deterministic JSON form (no timings unless analyzed; estimates to 3 digits).

        The engine's per-session function names (`__wb_<session>_lookup_<n>`) appear as
        `lookup_<n>` / `udf_<n>`, so the same query gives the same dict in any session."""
        d = asdict(self)
        d["operators"] = [asdict(op) | {"input_sql": op.input_sql} for op in self.operators]
        if not self.analyzed:
            d.pop("actual_rows"), d.pop("actual_seconds")
            for op in d["operators"]:
                for key in ("actual_rows", "actual_seconds", "actual_cache_hits"):
                    op.pop(key, None)
        d["root"] = self.root()
        return json.loads(_SESSION_NAMES.sub(r"\1_\2", json.dumps(d)))

    def text(self) -> str:
        from workbench.display import plan_lines

        return "\n".join("  " * depth + line for depth, line in plan_lines(self))

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        from workbench.display import plan_html

        return plan_html(self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """The plan for any front end: the JSON tree under a vendor MIME type (for a
        renderer that draws it), static HTML of the same facts, and text."""
        return {MIME_TYPE: self.to_dict(), "text/html": self._repr_html_(), "text/plain": self.text()}
