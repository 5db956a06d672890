"""The cost model: estimated seconds of one model operator in each paradigm.

Inputs are the calibrated machine constants (calibration.py), the operator's facts
(distinct inputs, rows reaching the call, bytes per input, expected cache hits) and a cost
profile of the model: for an MLP, multiply-adds per row times the measured torch cost;
for any other model, a small probe run once per loaded model; both corrected by what real
runs of the model measured (`observe`).

    dl_centric       = fixed + transfer(distinct) + model(distinct - hits) + dedup and lookup(rows, key bytes)
    udf_centric      = vectors x call overhead + transfer(rows) + model(distinct per vector)
    relation_centric = per layer: fixed + rows x (multiply-adds x a + outputs x b)
                       (+ writing the weights once)
    hybrid           = first layer relational + hidden vectors to torch + rest in torch

A paradigm that cannot run gets None and the reason: relation-centric needs a chain of
supported layers; the paradigms that hold the weights in process memory cannot run when the
weights exceed the session's memory budget (relation-centric leaves them to DuckDB, which
spills).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from workbench.models.base import Model
from workbench.models.layers import Embedding, Linear, chain_of, macs, split_after_first_linear, weight_bytes

VECTOR = 2048  # rows DuckDB hands a scalar UDF per call


@dataclass(frozen=True)
class Facts:
    """What the optimizer knows about an operator's inputs before it runs."""

    rows: int  # distinct inputs: what DL- and relation-centric run on
    input_rows: int  # rows reaching the call: what a UDF sees
    key_bytes: float = 4.0  # bytes per input value
    avg_chars: float = 0.0  # text inputs: mean length
    hit_ratio: float = 0.0  # expected inference-cache hits
    cache_on: bool = False
    cache_policy: str = "off"


@dataclass(frozen=True)
class Estimate:
    paradigm: str
    seconds: float | None  # None: cannot run
    note: str = ""
    parts: tuple[str, ...] = ()


class CostModel:
    def __init__(self, constants: dict[str, float], *, memory_budget: int | None = None,
                 weights_stored: Any = None, learned: bool = True):
        self.c = constants
        self.learned = learned  # False: ignore what runs taught (fixtures need fixed costs)
        self.memory_budget = memory_budget
        self.weights_stored = weights_stored or (lambda fingerprint: False)

    # -- the model itself ---------------------------------------------------------------
    def row_seconds(self, model: Model, batch: int, facts: Facts | None = None,
                    paradigm: str = "dl_centric") -> float:
        """Seconds per input row for torch inference at `batch` rows per call, scaled by
        what real runs of this model in this paradigm measured."""
        if not self.learned:
            return self._raw_row_seconds(model, batch, facts)
        return self._raw_row_seconds(model, batch, facts) * _scales(model).get(paradigm, _scales(model)["dl_centric"])

    def _raw_row_seconds(self, model: Model, batch: int, facts: Facts | None) -> float:
        profile = _profile(model, self.c)
        per_row = profile["row_s"] + profile["batch_s"] / max(batch, 1)
        if "char_s" in profile and facts is not None:
            chars = min(facts.avg_chars, profile.get("max_chars", facts.avg_chars))
            per_row += profile["char_s"] * chars
        return per_row

    def observe(self, model: Model, rows: int, seconds: float, batch: int, facts: Facts | None = None,
                paradigm: str = "dl_centric") -> None:
        """Learn from a real run: a smoothed ratio of measured to predicted model time, per
        paradigm (a UDF pays per-vector work a materialized run does not)."""
        if rows < 8 or seconds <= 0:
            return
        scales = _scales(model)
        predicted = self._raw_row_seconds(model, batch, facts) * rows
        ratio = seconds / max(predicted, 1e-9)
        old = scales.get(paradigm, scales["dl_centric"])
        scales[paradigm] = math.exp(0.5 * math.log(old) + 0.5 * math.log(ratio))

    # -- the paradigms -------------------------------------------------------------------
    def estimates(self, model: Model, facts: Facts, *, batch: int | None = None,
                  limit_rows: int | None = None) -> list[Estimate]:
        c = self.c
        best_batch = batch or model.batch_size or model.tuned_batch_size or max(model.batch_candidates)
        module = getattr(model, "module", None)
        weights = getattr(model, "resident_bytes", None)  # offloaded: only its window is held
        if weights is None:
            weights = weight_bytes(module) if module is not None else _param_bytes(model)
        over_budget = self.memory_budget is not None and weights > self.memory_budget
        budget_note = (f"weights {weights / 2**20:,.0f} MB exceed the memory budget "
                       f"{(self.memory_budget or 0) / 2**20:,.0f} MB")
        misses = facts.rows * (1.0 - facts.hit_ratio)
        per_key = c["lookup_s_per_row"] + facts.key_bytes * c.get("lookup_s_per_byte", 0.0)
        cache_io = facts.rows * per_key * 2 if facts.cache_on else 0.0
        out: list[Estimate] = []

        # DL-centric
        if over_budget:
            out.append(Estimate("dl_centric", None, budget_note))
        else:
            t = (c["dl_fixed_s"] + facts.rows * facts.key_bytes * c["transfer_s_per_byte"] + cache_io
                 + misses * self.row_seconds(model, best_batch, facts) + facts.input_rows * per_key)
            out.append(Estimate("dl_centric", t))

        # UDF-centric: DuckDB streams vectors of 2,048 rows through the model; with LIMIT and
        # no ORDER BY it stops once it has enough rows
        m = facts.input_rows if limit_rows is None else min(facts.input_rows, limit_rows)
        if over_budget:
            out.append(Estimate("udf_centric", None, budget_note))
        else:
            vectors = max(1, math.ceil(m / VECTOR))
            dup = 1.0 - facts.rows / max(facts.input_rows, 1)  # share of rows repeating an input
            # a vector deduplicates only within itself: repeats in other vectors run again
            per_vector_unique = m * (1.0 - dup / vectors) if vectors > 1 else m * (1.0 - dup)
            per_byte = c["transfer_s_per_byte"] + c.get("udf_s_per_byte", 0.0)
            t = (vectors * c["udf_chunk_s"] + m * facts.key_bytes * per_byte
                 + per_vector_unique * self.row_seconds(model, min(best_batch, VECTOR), facts, "udf_centric"))
            out.append(Estimate("udf_centric", t))

        # relation-centric and hybrid need a chain of supported layers
        layers, why = chain_of(model)
        if not layers:
            note = f"no relational form: {why}"
            out += [Estimate("relation_centric", None, note), Estimate("hybrid", None, note)]
            return out
        linears = [layer for layer in layers if isinstance(layer, Linear)]
        embedding = layers[0] if isinstance(layers[0], Embedding) else None
        # an embedding lookup is a join: one row per (input, block of its vector)
        lookup = misses * -(-embedding.shape[1] // 256) * c["rel_s_per_output"] if embedding is not None else 0.0
        store = 0.0 if self.weights_stored(model.fingerprint()) else weights * c["store_s_per_byte"]
        transfer = 2 * facts.rows * facts.key_bytes * c["transfer_s_per_byte"]
        t = c["rel_fixed_s"] * (len(linears) + 1) + store + transfer + cache_io + lookup
        t += sum(misses * (lin.shape[0] * lin.shape[1] * c["rel_s_per_mac"] + lin.shape[0] * c["rel_s_per_output"])
                 for lin in linears)
        out.append(Estimate("relation_centric", t))

        split = split_after_first_linear(module) if module is not None else None
        if split is None:
            out.append(Estimate("hybrid", None, "needs two or more Linear layers"))
            return out
        first, tail = split
        tail_bytes = weight_bytes(tail)
        if self.memory_budget is not None and tail_bytes > self.memory_budget:
            out.append(Estimate("hybrid", None, f"the torch part's weights ({tail_bytes / 2**20:,.0f} MB) "
                                                f"exceed the memory budget"))
            return out
        if embedding is not None:
            hidden, first_bytes, first_cost = embedding.shape[1], embedding.weight.nbytes, lookup
            tail_linears = len(linears)
            first_text = f"Embedding lookup ({embedding.shape[0]:,} x {embedding.shape[1]}) as a join in DuckDB"
            share = 1.0
        else:
            lin = linears[0]
            hidden, first_bytes = lin.shape[0], lin.weight.nbytes
            first_cost = misses * (lin.shape[0] * lin.shape[1] * c["rel_s_per_mac"] + hidden * c["rel_s_per_output"])
            tail_linears = max(1, len(linears) - 1)
            first_text = f"Linear {lin.shape[1]}->{lin.shape[0]} and its activation in DuckDB"
            # torch's share: the model's own per-row cost for the layers after the first
            share = 1.0 - (lin.shape[0] * lin.shape[1]) / max(macs(layers), 1)
        t = (c["rel_fixed_s"] * 2 + store * (first_bytes / max(weights, 1)) + transfer + cache_io + first_cost
             + misses * hidden * 4 * c["transfer_s_per_byte"] * 2
             + misses * self.row_seconds(model, best_batch, facts) * max(share, 0.05)
             + c["dl_fixed_s"] + facts.input_rows * per_key)
        parts = (f"relation_centric: {first_text}",
                 f"dl_centric: the other {tail_linears} Linear layer(s) in torch")
        out.append(Estimate("hybrid", t, parts=parts))
        return out


def _scales(model: Model) -> dict[str, float]:
    scales = getattr(model, "_wb_cost_scale", None)
    if scales is None:
        scales = {"dl_centric": 1.0}
        model._wb_cost_scale = scales  # type: ignore[attr-defined]
    return scales


def _param_bytes(model: Model) -> int:
    inner = getattr(model, "model", None)
    if inner is not None and hasattr(inner, "parameters"):
        return sum(p.numel() * p.element_size() for p in inner.parameters())
    return 0


def _profile(model: Model, c: dict[str, float]) -> dict[str, float]:
    """Per-row and per-batch seconds of a model (cached on the loaded model)."""
    cached = getattr(model, "_wb_profile", None)
    if cached is not None:
        return cached
    layers = chain_of(model)[0]
    if layers:
        n_linear = sum(isinstance(layer, Linear) for layer in layers)
        # per batch: each layer's launch, plus the Python/Arrow work of one predict call
        profile = {"row_s": macs(layers) * c["torch_s_per_mac"], "batch_s": c["torch_batch_s"] * (n_linear + 10)}
    else:
        try:
            profile = _probe(model)
        except Exception:  # noqa: BLE001 - a model that fails here fails clearly when it runs
            profile = {"row_s": 1e-4, "batch_s": 0.0}
    model._wb_profile = profile  # type: ignore[attr-defined]
    return profile


def _probe(model: Model) -> dict[str, float]:
    """Time a few predictions on synthetic inputs (once per loaded model)."""
    if model.input_kind == "text":
        def timed(texts: list[str]) -> float:
            model.predict(texts[:2])  # warm-up
            t0 = time.perf_counter()
            model.predict(texts)
            return time.perf_counter() - t0

        short, long_ = 40, 400
        n = 16
        t_short = timed(["word " * (short // 5)] * n)
        t_long = timed(["word " * (long_ // 5)] * n)
        char_s = max(t_long - t_short, 0.0) / n / (long_ - short)
        max_len = getattr(model, "max_length", 128) or 128
        return {"row_s": max(t_short / n - char_s * short, 0.0), "batch_s": 0.0, "char_s": char_s,
                "max_chars": float(max_len * 4)}
    width = model.input_dim or 1
    x = np.zeros(64, dtype=np.int64) if model.input_kind == "ids" else np.zeros((64, width), dtype=np.float32)
    model.predict(x[:2])
    t0 = time.perf_counter()
    model.predict(x)
    return {"row_s": (time.perf_counter() - t0) / 64, "batch_s": 0.0}
