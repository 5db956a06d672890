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
    )
    return Outcome(stats=lambda: run.stats, table=run.table)


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


def _over_weight_tables(job: Job, infer: Callable[[TensorModel, pa.Array, Progress], batching.BatchRun]) -> Outcome:
    """A materialized operator whose layers (some or all) run in DuckDB over the model's weight
    tables: the tables are written once per weights version, under the engine's write lock."""
    model = _tensor(job.model)

    def run(keys: pa.Array, progress: Progress = None) -> batching.BatchRun:
        t0 = time.perf_counter()
        with job.writes:
            relation_centric.ensure_weights(job.cursor.con, job.op.model, model)
        return replace(infer(model, keys, progress), seconds=time.perf_counter() - t0)

    return _materialized(job, run)


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

        return Outcome(stats=stats, table=outcome.table)


EXECUTORS: dict[str, Executor] = {
    e.paradigm: e for e in (DlCentric(), UdfCentric(), RelationCentric(), Hybrid(), OnRay())
}


def unavailable(profile: ModelProfile, precision: str) -> dict[str, str]:
    """For the optimizer: the paradigms that cannot run this model, and why."""
    found = {name: e.unavailable(profile, precision) for name, e in EXECUTORS.items()}
    return {name: why for name, why in found.items() if why is not None}
