"""Hybrid execution: the first Linear layer (and its activation) relation-centric in
DuckDB, the rest of the model DL-centric in torch, joined by the hidden vectors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from workbench.execution import batching, relation_centric
from workbench.models.base import Model
from workbench.models.layers import split_after_first_linear
from workbench.models.tensor import TensorModel


class _Tail(Model):
    """The model from its second Linear layer on, with the same output head."""

    input_kind = "tensor"

    def __init__(self, model: TensorModel, tail: Any, width: int):
        self.model, self.tail = model, tail
        self.input_dim = width
        self.batch_candidates = model.batch_candidates
        self.small_run_batch = model.small_run_batch
        self.batch_size, self.tuned_batch_size = model.batch_size, model.tuned_batch_size
        self.device = model.device
        self.allow_inf = model.allow_inf

    @property
    def output_type(self) -> str:
        return self.model.output_type

    def arrow_output_type(self) -> pa.DataType:
        return self.model.arrow_output_type()

    def predict(self, batch: np.ndarray) -> pa.Array:
        return self.model.predict_with(self.tail, batch)


def infer(
    con: Any,
    fetch: Any,
    model: TensorModel,
    name: str,
    keys: pa.Array,
    *,
    batch_size: int | None = None,
    guard: Any = None,
    max_rows: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> batching.BatchRun:
    split = split_after_first_linear(model.module)
    if split is None:  # pragma: no cover - the cost model offers hybrid only with a split
        raise ValueError("no hybrid split")
    _, tail = split
    if not len(keys):
        return batching.BatchRun(pa.array([], type=model.arrow_output_type()), batch_size or 0, 0, 0.0)
    # chunk by chunk (DuckDB's part, then torch's), so only one chunk of hidden vectors is
    # ever held: under a memory budget the whole set may not fit
    step = max_rows or len(keys)
    outputs, batches, chosen = [], 0, batch_size or 0
    for start in range(0, len(keys), step):
        hidden = relation_centric.infer(con, fetch, model, keys.slice(start, step), hidden_only=True)
        width = len(hidden[0])
        matrix = hidden.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        run = batching.run(
            _Tail(model, tail, width), name, matrix.reshape(len(hidden), width), batch_size=batch_size, guard=guard
        )
        outputs.append(run.outputs)
        batches += run.batches
        chosen = run.batch_size
        if progress is not None:
            progress(min(start + step, len(keys)), len(keys))
    return batching.BatchRun(pa.concat_arrays(outputs) if len(outputs) > 1 else outputs[0], chosen, batches, 0.0)
