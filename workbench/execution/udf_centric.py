"""UDF-centric execution: the model as a vectorized DuckDB function inside the pipeline.

The operator's function is registered with `create_function(type='arrow')`: DuckDB hands
it one vector of inputs at a time (up to 2,048 rows) wherever the statement calls it, so a
LIMIT without ORDER BY stops inference early and no input is computed ahead.
DuckDB passes NULL inputs through as NULL outputs
itself (default null handling). Errors are not swallowed: a model error stops the query,
and the original error is kept so the session can report it instead of DuckDB's wrapper.
Each vector is deduplicated only when the plan deduplicates the operator's inputs
(dedup_inputs found it pays); the model seconds it reports exclude waits for the model's
lock (a text model's calls take turns), so concurrent vectors never count one wait twice.

The function object stays referenced by the executor until the statement finished, then
the function is removed. The inference cache is not used here (the statement is running;
writing to the database from inside it is not possible).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from workbench.errors import WorkbenchError
from workbench.execution import batching
from workbench.execution.dl_centric import to_model_inputs
from workbench.models import generate
from workbench.models.base import ARGUMENTS, Model
from workbench.plan.nodes import ModelOperator
from workbench.plan.stats import OperatorStats
from workbench.runtime.memory import MemoryGuard
from workbench.telemetry.stream import Telemetry


class UdfOperator:
    def __init__(
        self,
        con: Any,
        op: ModelOperator,
        model: Model,
        *,
        batch_size: int | None = None,
        guard: MemoryGuard | None = None,
        telemetry: Telemetry | None = None,
    ):
        self.con, self.op, self.model = con, op, model
        self.telemetry = telemetry if telemetry is not None and telemetry.active else None
        self.batch_size = batch_size
        self.guard = guard
        self.name = op.lookup
        self.error: BaseException | None = None
        self.rows = self.calls = self.inferred = 0
        self.seconds = 0.0
        self._started, self._reported, self._batches = False, 0, 0  # telemetry's running counts
        self._stats_lock = threading.Lock()
        self.dedup = all(q.distinct for q in op.inputs)  # find repeats within each vector
        self._cancelled = threading.Event()  # Ctrl-C: DuckDB cannot stop a call in progress
        self.watcher = generate.current_watcher()  # the engine's, taken to DuckDB's threads

    def register(self) -> None:
        self.con.create_function(
            self.name,
            self,
            [self.op.input_type],
            self.model.output_type,
            type="arrow",
            # a call of several arguments answers NULL when one of them is NULL (the packed
            # STRUCT itself is not NULL, so DuckDB's default handling would refuse that NULL)
            null_handling="special" if self.model.input_kind in ARGUMENTS else "default",
        )

    def cancel(self) -> None:
        """Stop every call of this function at its next batch (the statement was interrupted)."""
        self._cancelled.set()

    def remove(self) -> None:
        try:
            self.con.remove_function(self.name)
        except Exception:  # noqa: BLE001 - already gone with the connection
            pass

    def __call__(self, column: pa.ChunkedArray | pa.Array) -> pa.Array:
        try:
            return self._run(column)
        except BaseException as exc:
            self.error = exc  # DuckDB wraps it; the session re-raises this one
            raise

    def _run(self, column: pa.ChunkedArray | pa.Array) -> pa.Array:
        start = time.perf_counter()
        keys = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        n = len(keys)
        valid = pc.is_valid(keys)
        if keys.null_count:  # only with non-default null handling; kept for safety
            present = keys.filter(valid)
        else:
            present = keys
        unique, inverse = _unique(present) if self.dedup else (present, None)
        inputs = to_model_inputs(self.op.call, self.op.model, self.model, unique)
        step = self._stoppable(self._progress() if self.telemetry is not None else None)
        # (a text model's calls take turns inside batching: its tokenizer is not thread-safe)
        with generate.watching(self.watcher) if self.watcher is not None else contextlib.nullcontext():
            result = batching.run(
                self.model, self.op.model, inputs, batch_size=self.batch_size, guard=self.guard, progress=step
            )
        out = result.outputs.take(pa.array(inverse)) if inverse is not None else result.outputs
        if keys.null_count:
            positions = np.cumsum(np.asarray(valid.to_numpy(zero_copy_only=False), dtype=np.int64)) - 1
            mask = ~np.asarray(valid.to_numpy(zero_copy_only=False))
            out = out.take(pa.array(np.where(mask, 0, positions), mask=mask))
        with self._stats_lock:
            self.rows += n
            self.inferred += len(unique)
            self.calls += 1
            self.seconds += time.perf_counter() - start - result.waited
        if self.telemetry is not None:
            self.telemetry.emit("bytes", source="duckdb", target="cpu", bytes=present.nbytes)
            self.telemetry.emit("bytes", source="cpu", target="duckdb", bytes=out.nbytes)
        return out

    def _stoppable(self, step: Callable[[int, int], None] | None) -> Callable[[int, int], None]:
        """The batch-level callback, raising KeyboardInterrupt once the statement was cancelled
        (a vector of 2,048 prompts to generate from would otherwise run to its end)."""

        def check(pos: int, total: int) -> None:
            if self._cancelled.is_set():
                raise KeyboardInterrupt
            if step is not None:
                step(pos, total)

        return check

    def _progress(self) -> Callable[[int, int], None]:
        """A batch-level progress callback for one vector. DuckDB's threads call the function
        at once, so the rows done are one shared counter, reported as it grows."""
        emit = self.telemetry.emit  # type: ignore[union-attr]
        with self._stats_lock:
            first = not self._started
            self._started = True
        if first:
            emit(
                "operator_start",
                id=self.op.id,
                call=self.op.call,
                paradigm="udf_centric",
                rows_total=self.op.estimated_rows or 0,
            )
        last = [0]

        def step(pos: int, _total: int) -> None:
            with self._stats_lock:
                self._reported += pos - last[0]
                self._batches += 1
                done, batches = self._reported, self._batches
            last[0] = pos
            emit(
                "progress",
                id=self.op.id,
                rows_done=done,
                rows_total=max(done, self.op.estimated_rows or 0),
                batches=batches,
            )

        return step

    def stats(self) -> OperatorStats:
        return OperatorStats(
            model=self.op.model,
            call=self.op.call,
            paradigm="udf_centric",
            rows=self.inferred,
            input_rows=self.rows,
            seconds=round(self.seconds, 6),
            batch_size=self.batch_size,
            batches=self.calls,
            device=self.model.device,
            precision=getattr(self.model, "precision", "float32"),
            runtime=getattr(self.model, "runtime", "torch"),
            memory=getattr(self.model, "memory", "resident"),
            cache_hits=0,
            cache_misses=0,
            cache_policy="bypassed (udf_centric)" if self.op.cache_policy != "off" else "off",
        )


def _unique(keys: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Distinct values of a vector and, per row, the index of its value."""
    if pa.types.is_string(keys.type) or pa.types.is_large_string(keys.type) or pa.types.is_primitive(keys.type):
        unique = pc.unique(keys)
        return unique, pc.index_in(keys, value_set=unique).to_numpy(zero_copy_only=False)
    if not (pa.types.is_list(keys.type) or pa.types.is_fixed_size_list(keys.type)):
        return keys, np.arange(len(keys))  # structs, binary: each row as it is
    flat = keys.flatten().to_numpy(zero_copy_only=False)
    width = len(flat) // max(len(keys), 1)
    if width * len(keys) != len(flat) or not len(keys):  # ragged lists: leave them to the model's checks
        return keys, np.arange(len(keys))
    rows = np.ascontiguousarray(flat.reshape(len(keys), width))
    view = rows.view(np.dtype((np.void, rows.dtype.itemsize * width)))
    _, first, inverse = np.unique(view, return_index=True, return_inverse=True)
    return keys.take(pa.array(first)), inverse.reshape(-1)


def original_error(udfs: list[UdfOperator]) -> BaseException | None:
    """The model error behind DuckDB's 'Python exception occurred while executing the UDF'."""
    for udf in udfs:
        if isinstance(udf.error, (WorkbenchError, KeyboardInterrupt, MemoryError)):
            return udf.error
    return None
