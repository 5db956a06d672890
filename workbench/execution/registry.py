"""One executor per paradigm, behind one protocol, in one registry.

The runner asks `EXECUTORS[op.paradigm]` to run an operator; the engine asks each executor
which models it can run (`unavailable`), and hands the optimizer that answer (the optimizer
never imports an executor). A materializing executor returns the operator's (input, output)
table, read by the statement through the operator's lookup function; a streaming one
(udf_centric) defines the lookup function as the model itself, run inside the statement.
Offloaded and compressed models are forms of a model, not paradigms: every executor that
runs torch runs them. `dl_centric on ray` is dl_centric whose cache misses run on a Ray
cluster (placement 'ray'); the engine hands it the cluster as the job's `remote` (this module
never imports Ray).

runs torch runs them.

A guard watches the relational executors (relation_centric, hybrid), the ones whose
estimates can be 100x off: they run a first chunk of the rows, and when its measured rate is
over `GUARD_FACTOR` (2x) the estimate and torch (dl_centric) is estimated to finish the
rest sooner, the rest of the rows run in torch; `OperatorStats.switched` says so. The other
executors are not switched (dl_centric is the fallback; udf_centric runs inside DuckDB's
pipeline, where the statement cannot change its plan).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, cast

import pyarrow as pa

from workbench.errors import ClusterError
from workbench.execution import batching, dl_centric, hybrid, relation_centric
from workbench.execution.udf_centric import UdfOperator
from workbench.models.base import Model
from workbench.models.tensor import TensorModel
from workbench.plan.nodes import ON_RAY, ModelOperator
from workbench.plan.profile import ModelProfile
from workbench.plan.stats import OperatorStats
from workbench.runtime.memory import MemoryGuard
from workbench.telemetry.stream import Telemetry


class Fetcher(Protocol):
    con: Any  # the call's DuckDB cursor

    def fetch(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table: ...


@dataclass
class Job:
    """Everything one operator's run needs."""

    op: ModelOperator
    model: Model
    cursor: Fetcher
    values: dict[str, Any]
    telemetry: Telemetry
    cache: dl_centric.CacheUse | None = None
    guard: MemoryGuard | None = None
    memory_budget: int | None = None
    writes: threading.RLock = field(default_factory=threading.RLock)  # engine writes (weight tables)
    remote: Remote | None = None  # the connected cluster (placement 'ray')


class Remote(Protocol):
    """Where a job's cache misses run off this machine (the engine's cluster)."""

    def infer(
        self, job: Job, keys: pa.Array, progress: Callable[[int, int], None] | None
    ) -> tuple[batching.BatchRun, Callable[[OperatorStats], OperatorStats]]:
        """The misses' outputs in key order, and what adds where they ran to the stats."""


@dataclass
class Outcome:
    """What an executor leaves: the materialized (k, v) table, or the UDF that the statement
    calls; `stats()` is final once the statement ran."""

    stats: Callable[[], OperatorStats]
    table: pa.Table | None = None
    udf: UdfOperator | None = None
    relation: str = ""  # the (input, output) table inside DuckDB, on the statement's cursor
    lookup: str = ""  # read inside DuckDB: the lookup macro's body over its argument `x`
    release: Callable[[], None] = lambda: None  # call once the statement has read `lookup`


class Executor(Protocol):
    paradigm: str

    def unavailable(self, profile: ModelProfile, precision: str) -> str | None:
        """Why this executor cannot run the model (None: it can)."""

    def run(self, job: Job) -> Outcome: ...


def _materialized(job: Job, infer: Callable[..., batching.BatchRun] | None) -> Outcome:
    run = dl_centric.run(
        job.cursor.fetch,
        job.op,
        job.model,
        job.values,
        batch_size=job.op.batch_size,
        cache=job.cache,
        guard=job.guard,
        infer=infer,
        telemetry=job.telemetry,
        progress=job.telemetry.progress(job.op.id),
        con=job.cursor.con,
    )
    return Outcome(
        stats=lambda: run.stats, table=run.table, relation=run.relation, lookup=run.lookup, release=run.release
    )


class DlCentric:
    paradigm = "dl_centric"

    def unavailable(self, profile: ModelProfile, precision: str) -> str | None:
        return None

    def run(self, job: Job) -> Outcome:
        return _materialized(job, None)


class UdfCentric:
    paradigm = "udf_centric"

    def unavailable(self, profile: ModelProfile, precision: str) -> str | None:
        return None

    def run(self, job: Job) -> Outcome:
        udf = UdfOperator(
            job.cursor.con, job.op, job.model, batch_size=job.op.batch_size, guard=job.guard, telemetry=job.telemetry
        )
        udf.register()
        return Outcome(stats=udf.stats, udf=udf)


def _tensor(model: Model) -> TensorModel:
    """The relational forms run torch layer chains only (`unavailable` said so at planning)."""
    return cast(TensorModel, model)


Progress = Callable[[int, int], None] | None


GUARD_ROWS = 2048  # rows of the first chunk the guard measures (at least 1/16 of the rows)
GUARD_FACTOR = 2.0  # measured seconds per row over this many times the estimate: reconsider


def _over_weight_tables(job: Job, infer: Callable[[TensorModel, pa.Array, Progress], batching.BatchRun]) -> Outcome:
    """A materialized operator whose layers (some or all) run in DuckDB over the model's weight
    tables: the tables are written once per weights version, under the engine's write lock."""
    model = _tensor(job.model)

    def run(keys: pa.Array, progress: Progress = None) -> batching.BatchRun:
        t0 = time.perf_counter()
        with job.writes:
            relation_centric.ensure_weights(job.cursor.con, job.op.model, model)
        n = len(keys)
        first = max(GUARD_ROWS, n // 16)
        if n < 2 * first:
            return replace(infer(model, keys, progress), seconds=time.perf_counter() - t0)
        head = infer(model, keys.slice(0, first), progress)
        measured = (time.perf_counter() - t0) / first
        rest = keys.slice(first)
        switch = _switch_to_torch(job.op, measured, len(rest))
        shifted: Progress = (lambda done, total: progress(first + done, n)) if progress is not None else None
        if switch:
            inputs = dl_centric.to_model_inputs(job.op.call, job.op.model, model, rest)
            tail = batching.run(model, job.op.model, inputs, batch_size=None, progress=shifted, guard=job.guard)
        else:
            tail = infer(model, rest, shifted)
        outputs = pa.concat_arrays([head.outputs, tail.outputs.cast(head.outputs.type)])
        switched = f"{job.op.paradigm} -> dl_centric after {first:,} rows: {switch}" if switch else ""
        return batching.BatchRun(
            outputs, tail.batch_size, head.batches + tail.batches, time.perf_counter() - t0, switched=switched
        )

    return _materialized(job, run)


def _switch_to_torch(op: ModelOperator, measured: float, rest: int) -> str:
    """Why the rest of the rows should run in torch (empty: stay): the first chunk ran over
    GUARD_FACTOR times slower than estimated, and torch's estimate for the rest is lower."""
    estimates = dict(op.alternatives)
    torch_total, own_total = estimates.get("dl_centric"), op.estimated_seconds
    rows = op.estimated_rows or 0
    if torch_total is None or not own_total or not rows:
        return ""
    expected = own_total / rows
    if measured <= GUARD_FACTOR * expected or measured * rest <= torch_total * rest / rows:
        return ""
    return f"{measured / expected:.0f}x slower per row than estimated"


class RelationCentric:
    paradigm = "relation_centric"

    def unavailable(self, profile: ModelProfile, precision: str) -> str | None:
        if precision != "float32":  # compressed layers are torch modules the relational forms cannot read
            return f"the {precision} variant runs in torch"
        return None if profile.layers else f"no relational form: {profile.no_chain}"

    def run(self, job: Job) -> Outcome:
        def infer(model: TensorModel, keys: pa.Array, progress: Progress) -> batching.BatchRun:
            rows = relation_centric.chunk_rows(job.memory_budget)
            out = relation_centric.infer(
                job.cursor.con, job.cursor.fetch, model, keys, progress=progress, max_rows=rows
            )
            return batching.BatchRun(out, 0, 1, 0.0)

        return _over_weight_tables(job, infer)


class Hybrid:
    paradigm = "hybrid"

    def unavailable(self, profile: ModelProfile, precision: str) -> str | None:
        reason = RelationCentric().unavailable(profile, precision)
        if reason is None and profile.hybrid_tail_bytes is None:
            return "needs two or more Linear layers"
        return reason

    def run(self, job: Job) -> Outcome:
        def infer(model: TensorModel, keys: pa.Array, progress: Progress) -> batching.BatchRun:
            rows = relation_centric.chunk_rows(job.memory_budget)
            return hybrid.infer(
                job.cursor.con,
                job.cursor.fetch,
                model,
                job.op.model,
                keys,
                batch_size=job.op.batch_size,
                guard=job.guard,
                progress=progress,
                max_rows=rows,
            )

        return _over_weight_tables(job, infer)


class OnRay:
    """dl_centric with its cache misses on the cluster's actors; lookups and the cache's
    write-back stay in DuckDB (the write-back only once every block arrived)."""

    paradigm = ON_RAY

    def unavailable(self, profile: ModelProfile, precision: str) -> str | None:
        return None if precision == "float32" else f"the {precision} variant runs on this machine"

    def run(self, job: Job) -> Outcome:
        remote = job.remote
        if remote is None:
            raise ClusterError(f"{job.op.call}: planned on a Ray cluster, but none is connected (SET cluster = ...)")
        placed: list[Callable[[OperatorStats], OperatorStats]] = []

        def infer(keys: pa.Array, progress: Progress = None) -> batching.BatchRun:
            run, where = remote.infer(job, keys, progress)
            placed.append(where)
            return run

        outcome = _materialized(job, infer)

        def stats() -> OperatorStats:
            s = outcome.stats()
            return placed[0](s) if placed else replace(s, placement="ray", actors=0)

        return replace(outcome, stats=stats)  # (with the cache on, its outcome is a lookup inside DuckDB)


EXECUTORS: dict[str, Executor] = {
    e.paradigm: e for e in (DlCentric(), UdfCentric(), RelationCentric(), Hybrid(), OnRay())
}


def unavailable(profile: ModelProfile, precision: str) -> dict[str, str]:
    """For the optimizer: the paradigms that cannot run this model, and why."""
    found = {name: e.unavailable(profile, precision) for name, e in EXECUTORS.items()}
    return {name: why for name, why in found.items() if why is not None}
