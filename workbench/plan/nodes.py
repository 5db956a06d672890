"""Immutable plan nodes.

A query with model calls becomes a `Plan`: one `ModelOperator` per distinct (model, input)
pair, in the order they must run, and the final SQL in which every call reads the
operator's output. Physical choices (paradigm, batch size, device) are fields of the
operator so EXPLAIN can show them; `actual_*` fields are filled by EXPLAIN ANALYZE.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class ModelOperator:
    id: int
    model: str
    call: str  # the call as the user wrote it, e.g. "minilm(body)"
    input_sql: str  # DuckDB query yielding the distinct inputs
    lookup: str  # name of the function the final SQL calls instead of the model
    input_type: str = ""
    output_type: str = ""
    paradigm: str = "dl_centric"
    device: str = "cpu"
    batch_size: int | None = None  # None: tuned by measurement at run time
    estimated_rows: int | None = None
    params: tuple[str, ...] = ()
    cache_policy: str = "off"
    expected_hit_ratio: float | None = None  # from the cache table, before running
    actual_rows: int | None = None
    actual_seconds: float | None = None
    actual_cache_hits: int | None = None

    def with_actuals(self, stats: dict[str, Any]) -> ModelOperator:
        return replace(self, actual_rows=stats["rows"], actual_seconds=stats["seconds"],
                       batch_size=stats["batch_size"], actual_cache_hits=stats["cache_hits"])

    def cache_text(self) -> str:
        if self.cache_policy == "off":
            return "cache off"
        text = f"cache {self.cache_policy}"
        if self.expected_hit_ratio is not None:
            text += f", expected hits {self.expected_hit_ratio:.0%}"
        if self.actual_cache_hits is not None and self.actual_rows:
            text += f", actual hits {self.actual_cache_hits / self.actual_rows:.0%}"
        return text


@dataclass(frozen=True)
class Plan:
    sql: str  # the statement as written
    final_sql: str  # the statement DuckDB runs once the operators have run
    operators: tuple[ModelOperator, ...] = ()
    analyzed: bool = False
    params: tuple[str, ...] = ()
    relational_plan: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["operators"] = [asdict(op) for op in self.operators]
        return d

    def text(self) -> str:
        lines = [("EXPLAIN ANALYZE" if self.analyzed else "EXPLAIN") + f": {self.sql.strip()}"]
        for op in self.operators:
            est = "?" if op.estimated_rows is None else f"{op.estimated_rows:,}"
            line = (
                f"  ModelOperator #{op.id} {op.call} -> {op.output_type}  [{op.paradigm}, "
                f"{op.device}, batch {op.batch_size or 'auto'}, est. rows {est}, {op.cache_text()}"
            )
            if op.actual_rows is not None:
                line += f", actual rows {op.actual_rows:,}, {op.actual_seconds:.3f} s"
            lines.append(line + "]")
            lines.append(f"    inputs: {op.input_sql}")
        lines.append(f"  Relational: {self.final_sql}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        from workbench.display import plan_html

        return plan_html(self)
