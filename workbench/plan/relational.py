"""DuckDB's own operator tree of a plan's final statement, with the model operators in it.

EXPLAIN reads DuckDB's JSON plan of the final SQL (`EXPLAIN (FORMAT JSON) ...`: operator
names, details and estimated rows); EXPLAIN ANALYZE reads DuckDB's JSON profile of the run
(the same plus actual rows and each operator's own time). Both become `RelationalNode`
records. `place` then hangs each model operator under the DuckDB node where its output
enters the relational plan: the deepest node whose details name its lookup function (a
streaming UDF, or a stand-in function while explaining), else a scan of its materialized
outputs (a temporary macro is inlined by DuckDB, so only its output table is seen there).

Pure parsing: no engine, no database (tests feed it DuckDB's JSON as text).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from workbench.plan.names import public_sql

#: DuckDB's details that carry the point of each kind of operator (first found wins)
_KEY_DETAILS = (
    ("JOIN", ("Join Type", "Conditions")),
    ("GROUP_BY", ("Groups", "Aggregates")),
    ("AGGREGATE", ("Groups", "Aggregates")),
    ("FILTER", ("Expression",)),
    ("ORDER", ("Order By",)),
    ("TOP_N", ("Top", "Order By")),
    ("LIMIT", ("Limit",)),
    ("WINDOW", ("Projections",)),
    ("PROJECTION", ("Projections",)),
)
_SCAN_DETAILS = ("Table", "Function", "Filters")
#: where DuckDB reads a materialized operator's outputs (the lookup macro's table)
_OUTPUT_COLUMNS = re.compile(r"\b__wb_(?:key|value)\b")
DETAIL_CHARS = 80


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return str(value)


def shorten(text: str, limit: int = DETAIL_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class RelationalNode:
    """One DuckDB physical operator. `seconds` is its own time (DuckDB times each operator
    apart from its children); `models` are the model operators whose outputs enter here."""

    name: str
    extra_info: tuple[tuple[str, str], ...] = ()
    estimated_rows: int | None = None
    actual_rows: int | None = None
    seconds: float | None = None
    models: tuple[int, ...] = ()
    children: tuple[RelationalNode, ...] = ()

    @property
    def detail(self) -> str:
        """The key detail: table, filter, join condition, group keys (shortened)."""
        info = dict(self.extra_info)
        keys: tuple[str, ...] = ()
        if "SCAN" in self.name:
            keys = _SCAN_DETAILS
        else:
            keys = next((k for word, k in _KEY_DETAILS if word in self.name), ())
        parts = [info[k].removeprefix("memory.main.") for k in keys if info.get(k) and info[k] != self.name]
        if not parts and not keys:
            parts = [v for k, v in self.extra_info[:1] if v]
        return shorten(public_sql(" · ".join(parts)))

    def walk(self) -> Iterator[RelationalNode]:
        yield self
        for child in self.children:
            yield from child.walk()

    def mentions(self, name: str) -> bool:
        pattern = re.compile(rf"\b{re.escape(name)}\b", re.IGNORECASE)
        return any(pattern.search(v) for _, v in self.extra_info)


@dataclass(frozen=True)
class RelationalPlan:
    """DuckDB's tree of the final statement. `source`: 'explain' (estimates only) or
    'profile' (EXPLAIN ANALYZE: actual rows and time per node)."""

    root: RelationalNode
    source: str = "explain"
    model_seconds: Mapping[int, float] = field(default_factory=dict, compare=False)
    #: streaming operators (udf_centric): DuckDB ran them inside an operator, whose time has theirs
    inside: frozenset[int] = frozenset()

    @property
    def analyzed(self) -> bool:
        return self.source == "profile"

    def total_seconds(self) -> float | None:
        """DuckDB's operators' time plus the placed model operators' (ANALYZE), else None."""
        if not self.analyzed:
            return None
        own = sum(n.seconds or 0.0 for n in self.root.walk())
        models = (i for n in self.root.walk() for i in n.models if i not in self.inside)
        return own + sum(self.model_seconds.get(i, 0.0) for i in models)

    def share(self, seconds: float | None) -> float | None:
        total = self.total_seconds()
        if not total or seconds is None:
            return None
        return seconds / total

    def hottest(self) -> tuple[str, int | RelationalNode] | None:
        """The node that took the most time: ('model', id) or ('node', the node)."""
        if not self.analyzed:
            return None
        best: tuple[float, tuple[str, Any]] | None = None
        for node in self.root.walk():
            candidates: list[tuple[float, tuple[str, Any]]] = [(node.seconds or 0.0, ("node", node))]
            candidates += [(self.model_seconds.get(i, 0.0), ("model", i)) for i in node.models]
            for c in candidates:
                if best is None or c[0] > best[0]:
                    best = c
        return None if best is None or best[0] <= 0 else best[1]

    def with_model_seconds(self, seconds: Mapping[int, float], inside: frozenset[int] = frozenset()) -> RelationalPlan:
        """With the model operators' measured time; `inside`: those DuckDB's operators ran."""
        return replace(self, model_seconds=dict(seconds), inside=inside)

    def to_dict(self) -> dict[str, Any]:
        """The `relational` field of `Plan.to_dict()`: model operators by id (their nodes are
        in `root`); timings, shares and the hottest flag only when analyzed."""
        hot = self.hottest()

        def node(n: RelationalNode) -> dict[str, Any]:
            d: dict[str, Any] = {
                "name": n.name,
                "detail": n.detail,
                "extra_info": {k: public_sql(v) for k, v in n.extra_info},
                "estimated_rows": n.estimated_rows,
            }
            if self.analyzed:
                d.update(actual_rows=n.actual_rows, seconds=n.seconds, share=_round(self.share(n.seconds)))
                d["hottest"] = hot is not None and hot[0] == "node" and hot[1] is n
            d["models"] = list(n.models)
            d["children"] = [node(c) for c in n.children]
            return d

        d: dict[str, Any] = {"source": self.source, "root": node(self.root)}
        if self.analyzed:
            d["total_seconds"] = self.total_seconds()
            d["model_shares"] = {
                str(i): _round(self.share(self.model_seconds.get(i))) for n in self.root.walk() for i in n.models
            }
            d["hottest_model"] = hot[1] if hot is not None and hot[0] == "model" else None
        return d


def _round(x: float | None) -> float | None:
    return None if x is None else float(f"{x:.3g}")


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return int(value)
    digits = re.sub(r"[^\d]", "", str(value))
    return int(digits) if digits else None


def _node(d: Mapping[str, Any], analyzed: bool) -> RelationalNode:
    info = d.get("extra_info") or {}
    if not isinstance(info, Mapping):  # older DuckDBs: one string of 'key: value' lines
        info = {"Details": str(info)}
    estimated = _int(info.get("Estimated Cardinality"))
    extra = tuple((str(k), _text(v)) for k, v in info.items() if k != "Estimated Cardinality")
    actual = seconds = None
    if analyzed:
        for key in ("operator_cardinality", "rows", "intermediate_rows", "cardinality"):
            if key in d:
                actual = _int(d[key])
                break
        for key in ("operator_timing", "timing"):
            if key in d:
                seconds = float(d[key])
                break
    name = str(d.get("name") or d.get("operator_name") or d.get("operator_type") or d.get("type") or "?")
    children = tuple(_node(c, analyzed) for c in d.get("children") or ())
    return RelationalNode(name.strip(), extra, estimated, actual, seconds, (), children)


def parse_plan(text: str) -> RelationalNode | None:
    """DuckDB's `EXPLAIN (FORMAT JSON)` (the second column of its row) as nodes."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    roots = data if isinstance(data, list) else [data]
    nodes = [_node(r, analyzed=False) for r in roots if isinstance(r, Mapping)]
    return nodes[0] if len(nodes) == 1 else (RelationalNode("QUERY", children=tuple(nodes)) if nodes else None)


def parse_profile(text: str) -> RelationalNode | None:
    """DuckDB's JSON profile (`get_profiling_information()`) as nodes, without the result
    collector DuckDB puts on top (EXPLAIN shows none)."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, Mapping):
        return None
    roots = [r for r in (data.get("operator") or data.get("children") or ()) if isinstance(r, Mapping)]
    while len(roots) == 1 and str(roots[0].get("name", "")).strip() in ("RESULT_COLLECTOR", "QUERY"):
        roots = [r for r in roots[0].get("children") or () if isinstance(r, Mapping)]
    nodes = [_node(r, analyzed=True) for r in roots]
    return nodes[0] if len(nodes) == 1 else (RelationalNode("QUERY", children=tuple(nodes)) if nodes else None)


def place(root: RelationalNode, lookups: Mapping[int, str], keys: Mapping[int, str] | None = None) -> RelationalNode:
    """`root` with each operator of `lookups` (id -> its lookup function's name in SQL) hung
    under the deepest node that names its lookup; an operator no node names is matched to a
    scan of materialized outputs (`__wb_key`, `__wb_value`), preferring the one joined on
    its input column (`keys`: id -> the call's argument). Any left over is read in the
    SELECT list, whose projection DuckDB shows by the columns' aliases: it goes under the
    topmost projection (else the root)."""
    keys = keys or {}
    found: dict[int, int] = {}  # operator id -> position of its node in walk order
    nodes = list(root.walk())
    depth = {id(n): d for n, d in _depths(root)}
    for op_id, name in lookups.items():
        named = [i for i, n in enumerate(nodes) if n.mentions(name)]
        if named:
            found[op_id] = max(named, key=lambda i: (depth[id(nodes[i])], i))
    scans = [
        i for i, n in enumerate(nodes) if "SCAN" in n.name and any(_OUTPUT_COLUMNS.search(v) for _, v in n.extra_info)
    ]
    parents = _parents(root)
    free = [i for i in scans if i not in found.values()]
    for op_id in (i for i in lookups if i not in found):
        if not free:
            break
        column = (keys.get(op_id) or "").split(".")[-1].strip('"')
        pick = next((i for i in free if column and _joined_on(parents.get(id(nodes[i])), column)), free[0])
        found[op_id] = pick
        free.remove(pick)
    leftover = [i for i in lookups if i not in found]
    top = next((i for i, n in enumerate(nodes) if n.name == "PROJECTION"), 0)
    for op_id in leftover:
        found[op_id] = top
    at: dict[int, list[int]] = {}
    for op_id, i in found.items():
        at.setdefault(i, []).append(op_id)

    counter = iter(range(len(nodes)))

    def rebuild(n: RelationalNode) -> RelationalNode:
        i = next(counter)
        children = tuple(rebuild(c) for c in n.children)
        models = tuple(sorted(at.get(i, ())))
        return replace(n, models=n.models + models, children=children)

    return rebuild(root)


def _depths(root: RelationalNode, d: int = 0) -> Iterator[tuple[RelationalNode, int]]:
    yield root, d
    for c in root.children:
        yield from _depths(c, d + 1)


def _parents(root: RelationalNode) -> dict[int, RelationalNode]:
    out: dict[int, RelationalNode] = {}
    for n in root.walk():
        for c in n.children:
            out[id(c)] = n
    return out


def _joined_on(parent: RelationalNode | None, column: str) -> bool:
    if parent is None:
        return False
    conditions = dict(parent.extra_info).get("Conditions", "")
    return bool(re.search(rf"\b{re.escape(column)}\b", conditions, re.IGNORECASE))
