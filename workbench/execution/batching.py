"""Run a model over many inputs in batches whose size is chosen by measurement.

Inputs are sorted by a model-given key (text length) so each batch holds inputs of similar
size and little work is wasted on padding; outputs are put back in input order. Unless the
user fixed a batch size, the first batches try each candidate size once and the one with the
best measured throughput (work units per second: tokens for text) is kept for the rest of
the run and remembered on the model for later queries.
"""

from __future__ import annotations

import time
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
    if isinstance(inputs, np.ndarray):
        return inputs[idx]
    return [inputs[i] for i in idx]


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
        if len(out) != len(idx):
            raise ModelError(f"model '{name}' returned {len(out)} outputs for {len(idx)} inputs in batch {batches + 1}")
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
                f"model '{name}' returned NaN in batch {batches + 1} (rows {pos + 1}-{pos + len(idx)}); "
                "NaN outputs are not stored or returned"
            )
        if bad is not None:
            raise ModelError(
                f"model '{name}' returned {bad} in batch {batches + 1} (rows {pos + 1}-{pos + len(idx)}); "
                "infinite outputs are not stored or returned unless the model allows them (WITH (allow_inf = true))"
            )
        if guard is not None:
            guard.check(f"model '{name}', batch {batches + 1}")
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
    ordered = pa.concat_arrays(outputs)
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.arange(n)
    return BatchRun(ordered.take(pa.array(inverse)), chosen, batches, time.perf_counter() - start - waited, waited)


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


def _predict(model: Model, name: str, batch: Any, number: int, first_row: int) -> tuple[pa.Array, float]:
    """The batch's outputs and the seconds spent waiting for the model's lock."""
    try:
        asked = time.perf_counter()
        with exclusive(model):
            waited = time.perf_counter() - asked
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
