"""Run a model over many inputs in batches whose size is chosen by measurement.

Inputs are sorted by a model-given key (text length) so each batch holds inputs of similar
size and little work is wasted on padding; outputs are put back in input order. Unless the
user fixed a batch size, the first batches try each candidate size once and the one with the
best measured throughput (work units per second: tokens for text) is kept for the rest of
the run and remembered on the model for later queries.

Text is sorted by its real token count and cut into length buckets (up to 16, 32, 64, 128...
tokens), so no batch pads short texts to a long one's length, whichever paradigm calls (a
UDF's vector of 2,048 rows as much as a materialized run). Each (model form, bucket) has its
own batch size: every candidate is measured on real batches of that bucket (tokens per
second) until each has been tried twice, then the best is used; the measurements live as
long as the model form (torch and ONNX Runtime forms are different objects, so each runtime
tunes its own).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from workbench.errors import InputTypeError, ModelError
from workbench.models.base import Model, exclusive
from workbench.runtime.memory import MemoryGuard


@dataclass
class BatchRun:
    outputs: pa.Array
    batch_size: int
    batches: int
    seconds: float  # wall time, waits for a shared model's lock excluded
    waited: float = 0.0  # seconds spent waiting for the model's lock (another thread ran it)
    switched: str = ""  # the executor changed between chunks, and why (see registry.py)


def _take(inputs: Any, idx: np.ndarray) -> Any:
    consecutive = len(idx) and idx[-1] - idx[0] == len(idx) - 1 and bool(np.all(idx[1:] > idx[:-1]))
    if isinstance(inputs, np.ndarray):
        if consecutive and inputs.flags.writeable:  # a view, not a copy
            return inputs[idx[0] : idx[-1] + 1]
        # (a read-only array, as Arrow's buffers give: torch warns on a tensor over one)
        return inputs[idx]
    if consecutive:
        return inputs[idx[0] : idx[-1] + 1]
    return [inputs[i] for i in idx]


def _in_input_order(outputs: list[pa.Array], order: np.ndarray) -> pa.Array:
    """Outputs of batches taken in `order`, put back in input order (no reordering copy when
    the order was the inputs' own: a vector of pixels has no sort key)."""
    ordered = pa.concat_arrays(outputs) if len(outputs) != 1 else outputs[0]
    if bool(np.all(order[1:] > order[:-1])):
        return ordered
    inverse = np.empty(len(order), dtype=np.int64)
    inverse[order] = np.arange(len(order))
    return ordered.take(pa.array(inverse))


def run(
    model: Model,
    name: str,
    inputs: Any,
    *,
    batch_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    guard: MemoryGuard | None = None,
) -> BatchRun:
    n = len(inputs)
    start = time.perf_counter()
    if n == 0:
        return BatchRun(pa.array([], type=model.arrow_output_type()), batch_size or 0, 0, 0.0)
    if model.input_kind == "text" and hasattr(model, "token_lengths"):
        return _bucketed(model, name, inputs, batch_size=batch_size, progress=progress, guard=guard)
    keys = model.sort_keys(inputs)
    order = np.argsort(keys, kind="stable") if keys is not None else np.arange(n)
    fixed = batch_size or model.batch_size or model.tuned_batch_size
    top = max(model.batch_candidates)
    # Each candidate runs on about `top` inputs (8 batches of 16, 1 of 128...), so every
    # measurement covers the same work and one noisy batch cannot decide.
    trial_rows = top * len(model.batch_candidates)
    trials = [] if fixed else [c for c in model.batch_candidates if c * max(1, top // c) <= n // 2]
    # A decision from a run too small to try every candidate is used once, not remembered.
    remember = len(trials) == len(model.batch_candidates) and n >= 2 * trial_rows
    untuned = model.batch_candidates[-1] if model.small_run_batch == "largest" else model.batch_candidates[0]
    chosen = fixed or (trials[-1] if trials else max(1, min(n, untuned)))
    plan: list[int] = []
    if trials:
        # Trial batches come from the middle of the length-sorted inputs, so every
        # candidate is measured on typical inputs rather than on the shortest ones.
        mid = max(0, n // 2 - min(trial_rows, n) // 2)
        order = np.concatenate([order[mid:], order[:mid]])
        plan = [min(trials[0], n)]  # warm-up batch: its time is not a measurement
        for c in trials:
            plan += [c] * max(1, top // c)
    work: dict[int, float] = {}
    spent: dict[int, float] = {}
    waited = 0.0
    outputs: list[pa.Array] = []
    pos = batches = 0
    expected = model.arrow_output_type()
    while pos < n:
        trial = batches < len(plan)
        size = plan[batches] if trial else chosen
        idx = order[pos : pos + size]
        batch = _take(inputs, idx)
        t0 = time.perf_counter()
        out, wait = _predict(model, name, batch, batches, pos)
        waited += wait
        elapsed = time.perf_counter() - t0 - wait
        out = _checked(model, name, out, expected, len(idx), batches, pos, guard)
        outputs.append(out)
        if trial and batches > 0:
            work[size] = work.get(size, 0.0) + model.work_units(batch)
            spent[size] = spent.get(size, 0.0) + elapsed
            if batches == len(plan) - 1:
                chosen = max(work, key=lambda c: work[c] / max(spent[c], 1e-9))
                if remember:
                    model.tuned_batch_size = chosen
        pos += len(idx)
        batches += 1
        if progress is not None:
            progress(pos, n)
    return BatchRun(_in_input_order(outputs, order), chosen, batches, time.perf_counter() - start - waited, waited)


def _checked(
    model: Model,
    name: str,
    out: pa.Array,
    expected: pa.DataType,
    rows: int,
    batches: int,
    pos: int,
    guard: MemoryGuard | None,
) -> pa.Array:
    """A batch's outputs, checked: one per input, of the model's type, finite (unless allowed),
    and the memory budget still kept."""
    if len(out) != rows:
        raise ModelError(f"model '{name}' returned {len(out)} outputs for {rows} inputs in batch {batches + 1}")
    if out.type != expected:
        try:
            out = out.cast(expected)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise ModelError(
                f"model '{name}' returned {out.type} in batch {batches + 1}, expected {expected}"
            ) from None
    bad = _non_finite(out, allow_inf=model.allow_inf)
    if bad == "NaN":
        raise ModelError(
            f"model '{name}' returned NaN in batch {batches + 1} (rows {pos + 1}-{pos + rows}); "
            "NaN outputs are not stored or returned"
        )
    if bad is not None:
        raise ModelError(
            f"model '{name}' returned {bad} in batch {batches + 1} (rows {pos + 1}-{pos + rows}); "
            "infinite outputs are not stored or returned unless the model allows them (WITH (allow_inf = true))"
        )
    if guard is not None:
        guard.check(f"model '{name}', batch {batches + 1}")
    return out


#: token-length buckets: a text of L tokens goes to the first bound >= L
BUCKET_BOUNDS = (16, 32, 64, 128, 256, 512)
#: a generator's predict call holds this many rows per decoding slot: while they last, a
#: sequence that ends hands its slot to the next row (continuous batching)
CONTINUOUS_WAVES = 4
#: real batches each candidate size runs in a bucket before the best is chosen
TRIES = 2


class Tuner:
    """Measured throughput (tokens per second) per (model form, length bucket, batch size)."""

    def __init__(self) -> None:
        # model -> bucket -> batch size -> [tokens, seconds, batches]
        self._seen: weakref.WeakKeyDictionary[Model, dict[int, dict[int, list[float]]]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def choose(self, model: Model, bucket: int, remaining: int) -> int:
        """The batch size for the next batch of `bucket`: a candidate not yet measured enough
        (that fits the rows left), else the best measured."""
        with self._lock:
            seen = self._seen.get(model, {}).get(bucket, {})
            candidates = model.batch_candidates
            untried = [c for c in candidates if seen.get(c, [0, 0, 0])[2] < TRIES and c <= remaining]
            if untried:
                return untried[0]
            tried = [c for c in candidates if seen.get(c, [0, 0, 0])[2] >= TRIES]
            if not tried:  # fewer rows left than any untried candidate: one batch of them
                return max(1, remaining)
            return max(tried, key=lambda c: seen[c][0] / max(seen[c][1], 1e-9))

    def record(self, model: Model, bucket: int, size: int, tokens: float, seconds: float) -> None:
        if size not in model.batch_candidates:
            return
        with self._lock:
            entry = self._seen.setdefault(model, {}).setdefault(bucket, {}).setdefault(size, [0.0, 0.0, 0])
            entry[0] += tokens
            entry[1] += seconds
            entry[2] += 1

    def best(self, model: Model, bucket: int) -> int | None:
        """The best size measured for a bucket (None until every candidate was tried)."""
        with self._lock:
            seen = self._seen.get(model, {}).get(bucket, {})
        if any(seen.get(c, [0, 0, 0])[2] < TRIES for c in model.batch_candidates):
            return None
        return max(seen, key=lambda c: seen[c][0] / max(seen[c][1], 1e-9))


TUNER = Tuner()
_WARM: weakref.WeakSet[Model] = weakref.WeakSet()  # forms that ran a batch (the first one is not measured)


def _bucketed(
    model: Model,
    name: str,
    inputs: list[Any],
    *,
    batch_size: int | None,
    progress: Callable[[int, int], None] | None,
    guard: MemoryGuard | None,
) -> BatchRun:
    """Text by token length, in buckets, each batch sized for its bucket (module docstring)."""
    start = time.perf_counter()
    n = len(inputs)
    with exclusive(model):  # (the tokenizer is not thread-safe)
        lengths = np.asarray(model.token_lengths(inputs), dtype=np.int64)  # type: ignore[attr-defined]
    order = np.argsort(lengths, kind="stable")
    buckets = np.searchsorted(np.asarray(BUCKET_BOUNDS), lengths[order])
    fixed = batch_size or model.batch_size
    expected = model.arrow_output_type()
    outputs: list[pa.Array] = []
    sizes: dict[int, int] = {}
    pos = batches = 0
    waited = 0.0
    while pos < n:
        bucket = int(buckets[pos])
        end = int(np.searchsorted(buckets, bucket, side="right"))
        size = fixed or TUNER.choose(model, bucket, end - pos)
        slots = None
        if model.continuous:  # `size` sequences decode at once; the next rows wait for a free slot
            slots, end = size, n
            size = size * CONTINUOUS_WAVES
        idx = order[pos : min(pos + size, end)]
        batch = [inputs[i] for i in idx]
        t0 = time.perf_counter()
        out, wait = _predict(model, name, batch, batches, pos, slots)
        waited += wait
        elapsed = time.perf_counter() - t0 - wait
        out = _checked(model, name, out, expected, len(idx), batches, pos, guard)
        outputs.append(out)
        if model in _WARM and not fixed and len(idx) == size:
            TUNER.record(model, bucket, size, float(lengths[idx].sum()), elapsed)
        _WARM.add(model)
        sizes[len(idx)] = sizes.get(len(idx), 0) + 1
        pos += len(idx)
        batches += 1
        if progress is not None:
            progress(pos, n)
    used = fixed or max(sizes, key=lambda k: sizes[k] * k)
    return BatchRun(_in_input_order(outputs, order), used, batches, time.perf_counter() - start - waited, waited)


def _non_finite(arr: pa.Array, *, allow_inf: bool) -> str | None:
    """'NaN', 'inf' or '-inf' when a float output (or a float field/element of one) holds
    one (NaN first; ±inf only when not allowed), else None."""
    t = arr.type
    if pa.types.is_floating(t):
        if pc.any(pc.is_nan(arr)).as_py():
            return "NaN"
        if not allow_inf and pc.any(pc.is_inf(arr)).as_py():
            return "inf" if pc.filter(arr, pc.is_inf(arr))[0].as_py() > 0 else "-inf"
        return None
    if pa.types.is_list(t) or pa.types.is_fixed_size_list(t) or pa.types.is_large_list(t):
        return _non_finite(arr.flatten(), allow_inf=allow_inf)
    if pa.types.is_struct(t):
        found = [_non_finite(arr.field(i), allow_inf=allow_inf) for i in range(t.num_fields)]
        return "NaN" if "NaN" in found else next((f for f in found if f), None)
    return None


def _predict(
    model: Model, name: str, batch: Any, number: int, first_row: int, slots: int | None = None
) -> tuple[pa.Array, float]:
    """The batch's outputs and the seconds spent waiting for the model's lock (`slots`: a
    generator's sequences decoding at once, the rest of the batch joining as slots free up)."""
    try:
        asked = time.perf_counter()
        with exclusive(model):
            waited = time.perf_counter() - asked
            if slots is not None:
                return model.predict_continuous(batch, slots), waited
            return model.predict(batch), waited
    except InputTypeError:
        raise  # the adapter named the value at fault (an unreadable image, a path outside the roots)
    except ModelError as exc:
        raise ModelError(f"model '{name}' failed on batch {number + 1}: {exc}") from None
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:
        msg = str(exc).strip().splitlines()
        raise ModelError(
            f"model '{name}' failed on batch {number + 1} (rows {first_row + 1}-{first_row + len(batch)}): "
            f"{type(exc).__name__}: {msg[0] if msg else ''}"[:400]
        ) from None
