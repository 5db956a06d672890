"""A schema dict and a fake model catalog: the optimizer's rules and the plan builder run on
these, without DuckDB, torch or a session (as sqlglot's optimizer tests run on a schema).

Row counts follow simple rules a reader can check by hand: a table's rows, times the share
each WHERE conjunct keeps (`id < N`: N rows; `id % M = R`: 1/M; anything else: 1/2).
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

from workbench.engine.planner import Catalog, Planner
from workbench.execution.registry import unavailable
from workbench.optimizer.cluster_cost import ClusterFacts
from workbench.optimizer.cost import CostModel
from workbench.plan.profile import LayerShape, ModelProfile

#: fixed machine constants (a reference machine), so choices do not depend on the machine
REFERENCE_MACHINE = {
    "transfer_s_per_byte": 1e-9,
    "dl_fixed_s": 4e-3,
    "lookup_s_per_row": 1e-7,
    "lookup_s_per_byte": 9e-9,
    "udf_s_per_byte": 1e-9,
    "udf_chunk_s": 1e-4,
    "rel_s_per_mac": 1.5e-9,
    "rel_s_per_output": 1e-7,
    "rel_fixed_s": 3e-3,
    "store_s_per_byte": 3e-8,
    "torch_s_per_mac": 1.5e-11,
    "torch_batch_s": 1e-5,
}

#: a cluster of two nodes with two CPUs each, whose block and transfer costs were measured
CLUSTER = ClusterFacts(spec="fake", nodes=2, slots=4, block_s=0.01, byte_s=1e-8, startup_s=2.0, measured=True)

SCHEMA = {
    "digits": {
        "columns": {"id": "INTEGER", "pixels": "FLOAT[64]", "label": "INTEGER"},
        "rows": 1797,
        "distinct": {"pixels": 1797, "label": 10},
    },
    "pydoc": {
        "columns": {"id": "INTEGER", "topic": "VARCHAR", "body": "VARCHAR"},
        "rows": 2331,
        "distinct": {"body": 1912, "topic": 79},
        "chars": {"body": 189.0, "topic": 8.0},
    },
    "big": {"columns": {"id": "BIGINT", "v": "FLOAT[4]"}, "rows": 50000, "distinct": {"v": 210}},
    # the digits repeated to ~100,000 rows: a wide key repeated 56 times
    "bigdigits": {
        "columns": {"id": "INTEGER", "pixels": "FLOAT[64]", "label": "INTEGER"},
        "rows": 100632,
        "distinct": {"pixels": 1797, "label": 10},
    },
    "notes": {
        "columns": {"id": "INTEGER", "topic": "VARCHAR", "txt": "VARCHAR"},
        "rows": 2,
        "distinct": {},
        "chars": {"txt": 10.0},
    },
}
LABEL = "STRUCT(label INTEGER, score FLOAT)"


def mlp(name: str, widths: list[int], activation: str = "relu", output: str = LABEL) -> ModelProfile:
    """The profile of a Linear/activation chain, as the engine builds it from a torch MLP."""
    layers: list[LayerShape] = []
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layers.append(LayerShape("linear", (b, a)))
        if i < len(widths) - 2:
            layers.append(LayerShape("activation"))
    weights = sum((a * b + b) * 4 for a, b in zip(widths, widths[1:]))
    first = (widths[0] * widths[1] + widths[1]) * 4
    macs = sum(a * b for a, b in zip(widths, widths[1:]))
    c = REFERENCE_MACHINE
    return ModelProfile(
        name=name,
        input_kind="tensor",
        output_type=output,
        input_dim=widths[0],
        max_batch=4096,
        weight_bytes=weights,
        layers=tuple(layers),
        hybrid_tail_bytes=weights - first if len(widths) > 2 else None,
        row_s=macs * c["torch_s_per_mac"],
        batch_s=c["torch_batch_s"] * (len(widths) - 1 + 10),
        fingerprint=name,
    )


PROFILES = {
    "digits": mlp("digits", [64, 128, 64, 10]),
    "cheap": mlp("cheap", [64, 8, 10]),
    "wide": mlp("wide", [64, 2048, 2048, 10]),
    "small": mlp("small", [4, 16, 2], "tanh"),
    "minilm": ModelProfile(
        name="minilm",
        input_kind="text",
        output_type="FLOAT[384]",
        max_batch=128,
        weight_bytes=90_852_864,
        no_chain="it is not a torch layer chain",
        row_s=0.032,
        char_s=1.1e-4,
        max_chars=512.0,
        fingerprint="minilm",
    ),
    "rerank": ModelProfile(  # a cross-encoder: score(query, document), two arguments in one STRUCT
        name="rerank",
        input_kind="text_pair",
        output_type="FLOAT",
        max_batch=64,
        weight_bytes=90_852_864,
        no_chain="it is not a torch layer chain",
        row_s=0.032,
        char_s=1.1e-4,
        max_chars=512.0,
        fingerprint="rerank",
    ),
}
BATCH_SIZES = {"digits": 256, "cheap": 512, "wide": 512, "small": 512}
CACHE = {"digits": "off"}  # the others: exact


class Schema:
    def columns_of(self, from_item: str) -> set[str] | None:
        node = sqlglot.parse_one(f"SELECT * FROM {from_item}", read="duckdb").args["from_"].this
        if isinstance(node, exp.Table) and node.name.lower() in SCHEMA:
            return set(SCHEMA[node.name.lower()]["columns"])
        return None

    def type_of(self, query: str, params: tuple[str, ...]) -> str:
        tree = sqlglot.parse_one(query, read="duckdb")
        return self._type(next(p for p in tree.find_all(exp.Alias) if p.alias == "k").this)

    def _type(self, key: exp.Expression) -> str:
        if isinstance(key, exp.Struct):  # several arguments, packed: STRUCT(name type, ...)
            fields = [f"{f.this.name} {self._type(f.expression)}" for f in key.expressions]
            return f"STRUCT({', '.join(fields)})"
        if isinstance(key, exp.Literal) and key.is_string:
            return "VARCHAR"
        if isinstance(key, exp.Cast):
            return key.to.sql(dialect="duckdb").upper()
        if isinstance(key, (exp.Placeholder, exp.Parameter, exp.GroupConcat)):
            return "VARCHAR"  # the tests' parameters are text, and string_agg is text
        if isinstance(key, exp.Column):
            for table in SCHEMA.values():
                if key.name.lower() in table["columns"]:
                    return table["columns"][key.name.lower()]
        return "UNKNOWN"


class Counter:
    def count(self, query: str, params: dict, text: bool) -> tuple[int, int, float]:
        tree = sqlglot.parse_one(query, read="duckdb")
        table = SCHEMA[next(tree.find_all(exp.Table)).name.lower()]
        share = 1.0
        for where in tree.find_all(exp.Where):
            conjuncts = where.this.flatten() if isinstance(where.this, exp.And) else [where.this]
            for c in conjuncts:
                share *= _share(c, table["rows"])
        key = next(p for p in tree.find_all(exp.Alias) if p.alias == "k").this
        column = key.name.lower() if isinstance(key, exp.Column) else ""
        rows = max(1, int(table["rows"] * share))
        distinct = min(rows, table["distinct"].get(column, rows))
        return rows, distinct, table.get("chars", {}).get(column, 0.0)

    def hit_ratio(self, op, params) -> float:
        return 0.0

    def count_and_hits(self, op, query: str, params: dict, text: bool) -> tuple[int, int, float, float]:
        return (*self.count(query, params, text), self.hit_ratio(op, params))


def _share(c: exp.Expression, rows: int) -> float:
    if isinstance(c, (exp.LT, exp.LTE)) and isinstance(c.expression, exp.Literal):
        return min(1.0, int(c.expression.name) / rows)
    if isinstance(c, exp.EQ) and isinstance(c.this, exp.Mod) and isinstance(c.this.expression, exp.Literal):
        return 1 / int(c.this.expression.name)
    return 0.5


def catalog() -> Catalog:
    return Catalog(
        names=frozenset(PROFILES),
        profile=PROFILES.__getitem__,
        batch_size=BATCH_SIZES.get,
        precision=lambda name: "float32",
        memory=lambda name: "resident",
        cache_policy=lambda name, options=(): CACHE.get(name, "exact"),
        unavailable=unavailable,
    )


def planner() -> Planner:
    return Planner(catalog(), Schema(), Counter(), CostModel(REFERENCE_MACHINE), cores=2)
