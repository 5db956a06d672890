"""The cost model: estimated seconds of one model operator in each paradigm.

Inputs are the calibrated machine constants (calibration.py), the operator's facts
(distinct inputs, rows reaching the call, bytes per input, expected cache hits) and a cost
profile of the model: for an MLP, multiply-adds per row times the measured torch cost;
for any other model, a small probe run once per loaded model; both corrected by what real
runs of the model measured (`observe`).

    dl_centric       = fixed + transfer(distinct) + model(distinct - hits) + dedup and lookup(rows, key bytes)
    udf_centric      = vectors x call overhead + transfer(rows) + dedup within each vector(rows, key bytes)
                       + model(distinct per vector)
    relation_centric = per layer: fixed + rows x (multiply-adds x a + outputs x b)
                       (+ writing the weights once)
    hybrid           = first layer relational + hidden vectors to torch + rest in torch

Every estimate follows the plan as the rules left it: when dedup_inputs did not run (or
found that finding duplicates costs more than running the model on them), "distinct"
above is every row reaching the call, and udf_centric does not deduplicate its vectors
(`estimates(dedup=False)`). `dedup_pays` is that rule's question: is the best plan with
dedup cheaper than the best plan without it? (A FLOAT[64] key costs more to hash than a
small MLP costs to run.)

A paradigm that cannot run gets None and the reason: relation-centric needs a chain of
supported layers; the paradigms that hold the weights in process memory cannot run when the
weights exceed the session's memory budget (relation-centric leaves them to DuckDB, which
spills).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from workbench.plan.profile import ModelProfile
from workbench.telemetry.summary import count

VECTOR = 2048  # rows DuckDB hands a scalar UDF per call
NO_DEDUP_MARGIN = 0.9  # running every row must be estimated at least 10% faster to skip dedup
#: the paradigms that run layers in SQL: their estimates are the least certain, and a wrong
#: pick costs up to 100x (dense layers as joins), so they must win by this factor
RELATIONAL = ("relation_centric", "hybrid")
RELATIONAL_MARGIN = 3.0


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


def preferred(feasible: list[Estimate]) -> Estimate:
    """The estimate the optimizer takes among those that can run: the cheapest, except that a
    relational paradigm must beat the best torch paradigm by `RELATIONAL_MARGIN` (where one
    can run)."""
    best = min(feasible, key=lambda e: e.seconds or 0.0)
    torch = [e for e in feasible if e.paradigm not in RELATIONAL]
    if best.paradigm in RELATIONAL and torch:
        fallback = min(torch, key=lambda e: e.seconds or 0.0)
        if (fallback.seconds or 0.0) < RELATIONAL_MARGIN * (best.seconds or 0.0):
            return fallback
    return best


class Learned:
    """What real runs taught the cost model: per model fingerprint and paradigm, a smoothed
    ratio of measured to predicted model time. Owned by a session; shared by its threads."""

    def __init__(self) -> None:
        self._scales: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def scale(self, fingerprint: str, paradigm: str) -> float:
        with self._lock:
            scales = self._scales.get(fingerprint, {})
            return scales.get(paradigm, scales.get("dl_centric", 1.0))

    def update(self, fingerprint: str, paradigm: str, ratio: float) -> None:
        with self._lock:
            scales = self._scales.setdefault(fingerprint, {})
            old = scales.get(paradigm, scales.get("dl_centric", 1.0))
            scales[paradigm] = math.exp(0.5 * math.log(old) + 0.5 * math.log(ratio))


class CostModel:
    def __init__(
        self,
        constants: dict[str, float],
        *,
        memory_budget: int | None = None,
        weights_stored: Callable[[str], bool] | None = None,
        learned: Learned | None = None,
    ):
        self.c = constants
        self.learned = learned  # None: ignore what runs taught (fixtures need fixed costs)
        self.memory_budget = memory_budget
        self._weights_stored = weights_stored or (lambda fingerprint: False)
        self._stored: dict[str, bool] = {}  # asked once per fingerprint: one plan asks many times

    def weights_stored(self, fingerprint: str) -> bool:
        if fingerprint not in self._stored:
            self._stored[fingerprint] = self._weights_stored(fingerprint)
        return self._stored[fingerprint]

    # -- the model itself ---------------------------------------------------------------
    def row_seconds(
        self, model: ModelProfile, batch: int, facts: Facts | None = None, paradigm: str = "dl_centric"
    ) -> float:
        """Seconds per input row for torch inference at `batch` rows per call, scaled by
        what real runs of this model in this paradigm measured."""
        raw = self._raw_row_seconds(model, batch, facts)
        return raw if self.learned is None else raw * self.learned.scale(model.fingerprint, paradigm)

    def _raw_row_seconds(self, model: ModelProfile, batch: int, facts: Facts | None) -> float:
        per_row = model.row_s + model.batch_s / max(batch, 1)
        if model.char_s and facts is not None:
            per_row += model.char_s * min(facts.avg_chars, model.max_chars or facts.avg_chars)
        return per_row

    def observe(
        self,
        model: ModelProfile,
        rows: int,
        seconds: float,
        batch: int,
        facts: Facts | None = None,
        paradigm: str = "dl_centric",
    ) -> None:
        """Learn from a real run: a smoothed ratio of measured to predicted model time, per
        paradigm (a UDF pays per-vector work a materialized run does not)."""
        if rows < 8 or seconds <= 0 or self.learned is None:
            return
        predicted = self._raw_row_seconds(model, batch, facts) * rows
        self.learned.update(model.fingerprint, paradigm, seconds / max(predicted, 1e-9))

    # -- the paradigms -------------------------------------------------------------------
    def dedup_pays(
        self,
        model: ModelProfile,
        facts: Facts,
        *,
        batch: int | None = None,
        limit_rows: int | None = None,
        blocked: frozenset[str] = frozenset(),
    ) -> bool:
        """Whether running the model once per distinct input beats running it on every row,
        each side at its best feasible paradigm (dedup and lookups costed). Skipping dedup must
        win by a margin (`NO_DEDUP_MARGIN`): on a near tie the plan keeps running each input once."""
        with_dedup = self.estimates(model, facts, batch=batch, limit_rows=limit_rows)
        without = self.estimates(
            model, replace(facts, rows=facts.input_rows), batch=batch, limit_rows=limit_rows, dedup=False
        )
        best = []
        for es in (with_dedup, without):
            feasible = [e for e in es if e.seconds is not None and e.paradigm not in blocked]
            best.append(preferred(feasible).seconds or 0.0 if feasible else math.inf)
        return best[1] >= best[0] * NO_DEDUP_MARGIN

    def estimates(
        self,
        model: ModelProfile,
        facts: Facts,
        *,
        batch: int | None = None,
        limit_rows: int | None = None,
        dedup: bool = True,
    ) -> list[Estimate]:
        """Seconds per paradigm; `dedup=False`: the inputs are not deduplicated (facts.rows is
        then every row reaching the call)."""
        c = self.c
        best_batch = model.default_batch(batch)
        weights = model.weight_bytes
        over_budget = self.memory_budget is not None and weights > self.memory_budget
        budget_note = (
            f"weights {weights / 1e6:,.0f} MB exceed the memory budget {(self.memory_budget or 0) / 1e6:,.0f} MB"
        )
        misses = facts.rows * (1.0 - facts.hit_ratio)
        per_key = c["lookup_s_per_row"] + facts.key_bytes * c.get("lookup_s_per_byte", 0.0)
        cache_io = facts.rows * per_key * 2 if facts.cache_on else 0.0
        out: list[Estimate] = []

        # DL-centric
        if over_budget:
            out.append(Estimate("dl_centric", None, budget_note))
        else:
            t = (
                c["dl_fixed_s"]
                + facts.rows * facts.key_bytes * c["transfer_s_per_byte"]
                + cache_io
                + misses * self.row_seconds(model, best_batch, facts)
                + facts.input_rows * per_key
            )
            out.append(Estimate("dl_centric", t))

        # UDF-centric: DuckDB streams vectors of 2,048 rows through the model; with LIMIT and
        # no ORDER BY it stops once it has enough rows
        m = facts.input_rows if limit_rows is None else min(facts.input_rows, limit_rows)
        if over_budget:
            out.append(Estimate("udf_centric", None, budget_note))
        else:
            vectors = max(1, math.ceil(m / VECTOR))
            dup = 1.0 - facts.rows / max(facts.input_rows, 1) if dedup else 0.0  # share of rows repeating an input
            # a vector deduplicates only within itself: repeats in other vectors run again
            per_vector_unique = m * (1.0 - dup / vectors) if vectors > 1 else m * (1.0 - dup)
            # the wrapper's per-byte work is finding duplicates within the vector: none without dedup
            per_byte = c["transfer_s_per_byte"] + (c.get("udf_s_per_byte", 0.0) if dedup else 0.0)
            t = (
                vectors * c["udf_chunk_s"]
                + m * facts.key_bytes * per_byte
                + per_vector_unique * self.row_seconds(model, min(best_batch, VECTOR), facts, "udf_centric")
            )
            out.append(Estimate("udf_centric", t))

        # relation-centric and hybrid need a chain of supported layers
        layers = model.layers
        if not layers:
            note = f"no relational form: {model.no_chain}"
            out += [Estimate("relation_centric", None, note), Estimate("hybrid", None, note)]
            return out
        linears = model.linears
        embedding = layers[0] if layers[0].kind == "embedding" else None
        # an embedding lookup is a join: one row per (input, block of its vector)
        lookup = misses * -(-embedding.shape[1] // 256) * c["rel_s_per_output"] if embedding is not None else 0.0
        store = 0.0 if self.weights_stored(model.fingerprint) else weights * c["store_s_per_byte"]
        transfer = 2 * facts.rows * facts.key_bytes * c["transfer_s_per_byte"]
        # like dl_centric, every row reaching the call reads its output back through the lookup
        t = c["rel_fixed_s"] * (len(linears) + 1) + store + transfer + cache_io + lookup + facts.input_rows * per_key
        t += sum(
            misses * (lin.shape[0] * lin.shape[1] * c["rel_s_per_mac"] + lin.shape[0] * c["rel_s_per_output"])
            for lin in linears
        )
        out.append(Estimate("relation_centric", t))

        tail_bytes = model.hybrid_tail_bytes
        if tail_bytes is None:
            out.append(Estimate("hybrid", None, "needs two or more Linear layers"))
            return out
        if self.memory_budget is not None and tail_bytes > self.memory_budget:
            out.append(
                Estimate(
                    "hybrid", None, f"the torch part's weights ({tail_bytes / 1e6:,.0f} MB) exceed the memory budget"
                )
            )
            return out
        if embedding is not None:
            hidden, first_bytes, first_cost = embedding.shape[1], embedding.nbytes, lookup
            tail_linears = len(linears)
            first_text = f"Embedding lookup ({embedding.shape[0]:,} x {embedding.shape[1]}) as a join in DuckDB"
            share = 1.0
        else:
            lin = linears[0]
            hidden, first_bytes = lin.shape[0], lin.nbytes
            first_cost = misses * (lin.shape[0] * lin.shape[1] * c["rel_s_per_mac"] + hidden * c["rel_s_per_output"])
            tail_linears = max(1, len(linears) - 1)
            first_text = f"Linear {lin.shape[1]}->{lin.shape[0]} and its activation in DuckDB"
            # torch's share: the model's own per-row cost for the layers after the first
            share = 1.0 - (lin.shape[0] * lin.shape[1]) / max(model.macs, 1)
        t = (
            c["rel_fixed_s"] * 2
            + store * (first_bytes / max(weights, 1))
            + transfer
            + cache_io
            + first_cost
            + misses * hidden * 4 * c["transfer_s_per_byte"] * 2
            + misses * self.row_seconds(model, best_batch, facts) * max(share, 0.05)
            + c["dl_fixed_s"]
            + facts.input_rows * per_key
        )
        parts = (
            f"relation_centric: {first_text}",
            f"dl_centric: the other {count(tail_linears, 'Linear layer')} in torch",
        )
        out.append(Estimate("hybrid", t, parts=parts))
        return out
