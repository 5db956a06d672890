"""DL-centric execution of one model operator.

DuckDB (through `fetch`) computes the operator's distinct inputs, Arrow hands them to torch (numeric arrays
without a copy), the model runs in tuned batches, and the outputs come back as an Arrow
table (input -> output) that the final SQL reads through the operator's lookup function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from workbench.errors import InputTypeError
from workbench.execution import batching
from workbench.models.base import Model
from workbench.plan.nodes import ModelOperator


@dataclass
class OperatorRun:
    table: pa.Table  # columns k (input), v (output)
    stats: dict[str, Any]


def run(
    fetch: Callable[[str, dict[str, Any] | None], pa.Table],
    op: ModelOperator,
    model: Model,
    params: dict[str, Any],
    *,
    batch_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> OperatorRun:
    keys = fetch(op.input_sql, {p: params[p] for p in op.params}).column(0).combine_chunks()
    keys = keys.filter(pc.is_valid(keys)) if keys.null_count else keys
    inputs = to_model_inputs(op, model, keys)
    result = batching.run(model, op.model, inputs, batch_size=batch_size or op.batch_size, progress=progress)
    stats = {
        "model": op.model,
        "call": op.call,
        "paradigm": op.paradigm,
        "rows": len(keys),
        "seconds": round(result.seconds, 6),
        "batch_size": min(result.batch_size, len(keys)) if len(keys) else result.batch_size,
        "batches": result.batches,
        "device": model.device,
        "cache_hits": 0,
        "cache_misses": 0,
    }
    return OperatorRun(pa.table({"k": keys, "v": result.outputs}), stats)


def to_model_inputs(op: ModelOperator, model: Model, keys: pa.Array) -> Any:
    if model.input_kind == "text":
        return keys.to_pylist()
    if isinstance(keys.type, pa.FixedSizeListType):
        width = keys.type.list_size
        flat = keys.flatten()
    else:  # variable-length lists: every row must have the model's width
        lengths = pc.list_value_length(keys).to_numpy(zero_copy_only=False)
        width = int(lengths[0]) if len(lengths) else (model.input_dim or 0)
        if len(lengths) and (lengths != width).any():
            raise InputTypeError(f"{op.call}: inputs have different lengths; '{op.model}' needs {model.input_dim}")
        flat = keys.flatten()
    if model.input_dim and width != model.input_dim and len(keys):
        raise InputTypeError(f"{op.call}: '{op.model}' expects {model.input_dim} values per input, got {width}")
    if flat.null_count:
        raise InputTypeError(f"{op.call}: an input array holds NULL values; '{op.model}' needs numbers")
    if flat.type != pa.float32():
        flat = flat.cast(pa.float32())
    values = flat.to_numpy(zero_copy_only=False)  # zero-copy for FLOAT[n] without nulls
    return values.reshape(len(keys), width)
