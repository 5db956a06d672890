"""DL-centric execution of one model operator (and the frame the other materializing
paradigms share: relation-centric and hybrid plug in their own `infer`).

DuckDB (through `fetch`) computes the operator's distinct inputs, Arrow hands them to torch (numeric arrays
without a copy), the model runs in tuned batches, and the outputs come back as an Arrow
table (input -> output) that the final SQL reads through the operator's lookup function.

With an exact or normalized inference cache and the statement's cursor at hand, the
operator's (input, output) table is built inside DuckDB instead (`InferenceCache.split_in_db`):
the join with the cache fills the hits' outputs in a temporary table, only the misses' inputs
come to Python, and only their outputs go back; the final SQL reads that table. A warm
query moves no model output through Python.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from workbench.cache import InferenceCache, Lookup, Policy
from workbench.errors import InputTypeError
from workbench.execution import batching
from workbench.models.base import OBJECT_KINDS, Model
from workbench.plan.nodes import ModelOperator
from workbench.plan.stats import OperatorStats
from workbench.runtime.memory import MemoryGuard
from workbench.telemetry.stream import Telemetry

#: the columns of an operator's (input, output) table in DuckDB: names no user table has,
#: since the lookup macro's argument (the user's expression) is substituted into its body
KEY, VALUE = "__wb_key", "__wb_value"


@dataclass
class OperatorRun:
    table: pa.Table | None  # columns k (input), v (output); None: read inside DuckDB (`lookup`)
    stats: OperatorStats
    relation: str = ""  # a temporary table (KEY, VALUE, ...) on the statement's cursor, or ""
    lookup: str = ""  # in-database path: the lookup macro's body over its argument `x`
    release: Callable[[], None] = lambda: None  # call once the statement has read `lookup`


@dataclass
class CacheUse:
    """How an operator uses the inference cache."""

    cache: InferenceCache
    policy: Policy
    fingerprint: str
    embed: Callable[[pa.Array], np.ndarray] | None = None  # for the semantic policy


def run(
    fetch: Callable[[str, dict[str, Any] | None], pa.Table],
    op: ModelOperator,
    model: Model,
    params: dict[str, Any],
    *,
    batch_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    cache: CacheUse | None = None,
    guard: MemoryGuard | None = None,
    infer: Callable[..., batching.BatchRun] | None = None,
    telemetry: Telemetry | None = None,
    con: Any = None,
) -> OperatorRun:
    """Run one operator: fetch its inputs, split cache hits from misses, run the misses
    (torch in tuned batches, or `infer` for the relation-centric and hybrid paradigms),
    store them in the cache, and return (input, output) in input order.

    `progress(rows_done, rows_total)` hears after the cache lookup and after every batch
    (rows counted over distinct inputs, hits included); `telemetry` also hears cache hits and
    misses and the bytes handed between DuckDB and the model's device. `con`: the statement's
    cursor (where `fetch` runs), for the in-database cache path."""
    if cache is not None and con is not None and cache.policy.kind != "semantic":
        return _run_in_db(fetch, con, op, model, params, cache, batch_size, progress, guard, infer, telemetry)
    keys = fetch(op.input_sql, {p: params[p] for p in op.params}).column(0).combine_chunks()
    keys = keys.filter(pc.is_valid(keys)) if keys.null_count else keys
    n = len(keys)
    emit = telemetry.emit if telemetry is not None and telemetry.active else None
    if emit is not None:
        emit("operator_start", id=op.id, call=op.call, paradigm=op.paradigm, rows_total=n)
    if cache is not None:  # one set-based join splits the inputs into hits and misses
        found = cache.cache.lookup(op.model, model, cache.policy, cache.fingerprint, keys, cache.embed)
    else:
        found = Lookup(np.arange(0), pa.array([], type=model.arrow_output_type()), np.arange(n))
    misses = keys.take(pa.array(found.miss_index)) if len(found.miss_index) != n else keys
    hits = len(found.hit_index)
    step = None
    if progress is not None:
        progress(hits, n)
        step = lambda done, _total: progress(hits + done, n)
    if emit is not None:
        if cache is not None:
            emit("cache", id=op.id, hits=hits, misses=len(misses))
        emit("bytes", source="duckdb", target="cpu", bytes=misses.nbytes)
    result = _compute(op, model, misses, batch_size, step, guard, infer, emit)
    if emit is not None:
        emit("bytes", source="cpu", target="duckdb", bytes=result.outputs.nbytes)
    if cache is not None:
        vectors = found.miss_vectors if cache.policy.kind == "semantic" else None
        cache.cache.store(
            op.model,
            model,
            cache.policy,
            cache.fingerprint,
            misses,
            result.outputs,
            vectors=vectors,
            hit_keys=keys.take(pa.array(found.hit_index)),
        )
    outputs = _merge(found, result.outputs, n)
    stats = _stats(op, model, result, n, len(misses), len(found.hit_index), cache, found.semantic_hits)
    return OperatorRun(pa.table({"k": keys, "v": outputs}), stats)


def _compute(
    op: ModelOperator,
    model: Model,
    misses: pa.Array,
    batch_size: int | None,
    step: Callable[[int, int], None] | None,
    guard: MemoryGuard | None,
    infer: Callable[..., batching.BatchRun] | None,
    emit: Callable[..., None] | None,
) -> batching.BatchRun:
    """The model over the inputs the cache did not answer."""
    if infer is not None:
        return infer(misses, step)
    inputs = to_model_inputs(op.call, op.model, model, misses)
    if emit is not None and model.device != "cpu" and isinstance(inputs, np.ndarray):
        emit("bytes", source="cpu", target=model.device, bytes=inputs.nbytes)
    return batching.run(model, op.model, inputs, batch_size=batch_size or op.batch_size, progress=step, guard=guard)


def _stats(
    op: ModelOperator,
    model: Model,
    result: batching.BatchRun,
    n: int,
    misses: int,
    hits: int,
    cache: CacheUse | None,
    semantic_hits: int = 0,
) -> OperatorStats:
    return OperatorStats(
        model=op.model,
        call=op.call,
        paradigm=op.paradigm,
        rows=n,
        seconds=round(result.seconds, 6),
        batch_size=(min(result.batch_size, misses) if misses else result.batch_size) or None,
        batches=result.batches,
        device=model.device,
        precision=getattr(model, "precision", "float32"),
        runtime=getattr(model, "runtime", "torch"),
        memory=getattr(model, "memory", "resident"),
        cache_hits=hits,
        cache_misses=misses if cache is not None else 0,
        cache_policy=cache.policy.describe() if cache is not None else "off",
        cache_semantic_hits=semantic_hits or None,
        switched=result.switched or None,
    )


def _run_in_db(
    fetch: Callable[[str, dict[str, Any] | None], pa.Table],
    con: Any,
    op: ModelOperator,
    model: Model,
    params: dict[str, Any],
    cache: CacheUse,
    batch_size: int | None,
    progress: Callable[[int, int], None] | None,
    guard: MemoryGuard | None,
    infer: Callable[..., batching.BatchRun] | None,
    telemetry: Telemetry | None,
) -> OperatorRun:
    """The cached path inside DuckDB: hits joined into the operator's temporary table, the
    misses computed in Python and appended to it (and written to the cache)."""
    out = f"{op.lookup}_cached"
    split = cache.cache.split_in_db(
        fetch,
        op.model,
        model,
        cache.policy,
        cache.fingerprint,
        op.input_sql,
        {p: params[p] for p in op.params},
        out,
        (KEY, VALUE),
        direct=not op.in_lambda,  # a lookup inside a lambda is a Python function over a table
    )
    try:
        misses, n = split.misses, split.rows
        emit = telemetry.emit if telemetry is not None and telemetry.active else None
        if emit is not None:
            emit("operator_start", id=op.id, call=op.call, paradigm=op.paradigm, rows_total=n)
            emit("cache", id=op.id, hits=split.hits, misses=len(misses))
            emit("bytes", source="duckdb", target="cpu", bytes=misses.nbytes)
        step = None
        if progress is not None:
            progress(split.hits, n)
            step = lambda done, _total: progress(split.hits + done, n)
        result = _compute(op, model, misses, batch_size, step, guard, infer, emit)
        if len(misses):
            if emit is not None:
                emit("bytes", source="cpu", target="duckdb", bytes=result.outputs.nbytes)
            view = f"{out}_new"
            con.register(view, pa.table({"k": misses, "v": result.outputs}))
            try:
                fetch(f"DELETE FROM {out} WHERE NOT hit", None)
                fetch(f"INSERT INTO {out} SELECT k, v, true FROM {view}", None)
            finally:
                con.unregister(view)
        if len(misses) or len(split.stale):
            cache.cache.store(
                op.model, model, cache.policy, cache.fingerprint, misses, result.outputs, hit_keys=split.stale
            )
    except BaseException:
        split.release()  # the statement will not read the cache table
        raise
    stats = _stats(op, model, result, n, len(misses), split.hits, cache)
    return OperatorRun(None, stats, relation=split.table, lookup=split.body, release=split.release)


def _merge(found: Lookup, computed: pa.Array, n: int) -> pa.Array:
    """Outputs in input order from cached hits and freshly computed misses."""
    if not len(found.hit_index):
        return computed
    if not len(found.miss_index):
        values = found.hit_values
        index = found.hit_index
    else:
        values = pa.concat_arrays([found.hit_values, computed.cast(found.hit_values.type)])
        index = np.concatenate([found.hit_index, found.miss_index])
    inverse = np.empty(n, dtype=np.int64)
    inverse[index] = np.arange(n)
    return values.take(pa.array(inverse))


def to_model_inputs(call: str, name: str, model: Model, keys: pa.Array) -> Any:
    """Distinct inputs as the model takes them: a list (texts, image bytes or paths, dicts
    of arguments), or a 2-D float32 array."""
    if model.input_kind in OBJECT_KINDS:
        return keys.to_pylist()
    if model.input_kind == "ids":
        return keys.cast(pa.int64()).to_numpy(zero_copy_only=False)
    if isinstance(keys.type, pa.FixedSizeListType):
        width = keys.type.list_size
        flat = keys.flatten()
    else:  # variable-length lists: every row must have the model's width
        lengths = pc.list_value_length(keys).to_numpy(zero_copy_only=False)
        width = int(lengths[0]) if len(lengths) else (model.input_dim or 0)
        if len(lengths) and (lengths != width).any():
            raise InputTypeError(f"{call}: inputs have different lengths; '{name}' needs {model.input_dim}")
        flat = keys.flatten()
    if model.input_dim and width != model.input_dim and len(keys):
        raise InputTypeError(f"{call}: '{name}' expects {model.input_dim} values per input, got {width}")
    if flat.null_count:
        raise InputTypeError(f"{call}: an input array holds NULL values; '{name}' needs numbers")
    if flat.type != pa.float32():
        flat = flat.cast(pa.float32())
    values = flat.to_numpy(zero_copy_only=False)  # zero-copy for FLOAT[n] without nulls
    return values.reshape(len(keys), width)
