"""Run a physical plan: each model operator through its paradigm's executor, then the
statement itself, on the call's own cursor.

Operators run in plan order (an operator another one reads runs first). A materialized
operator's outputs become its lookup function; a streaming one's lookup function is its
UDF, run by the statement. Telemetry hears the query start and end only when someone
listens; what each run measured goes back to the cost model (`learn`).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import duckdb
import psutil
import pyarrow as pa
import pyarrow.compute as pc

from workbench.engine.config import Config
from workbench.engine.io import Cursor
from workbench.engine.models import Models, for_call, real
from workbench.errors import WorkbenchError
from workbench.execution import dl_centric
from workbench.execution.lookups import Lookups
from workbench.execution.registry import EXECUTORS, Job, Outcome, Remote
from workbench.execution.udf_centric import original_error
from workbench.models import generate, variants
from workbench.models.base import Model, cached_by_value
from workbench.plan.names import for_execution, lookup_name
from workbench.plan.nodes import InputQuery, ModelOperator, Plan
from workbench.plan.stats import OperatorStats
from workbench.runtime.memory import MemoryGuard
from workbench.runtime.threads import torch_threads
from workbench.telemetry import MemorySampler, Telemetry

# DuckDB keeps a Python UDF in the database's catalog, seen by every cursor: each execution
# names its operators' lookup functions anew, so concurrent statements never collide.
_executions = itertools.count(1)


def named(plan: Plan, execution: int) -> Plan:
    """The plan with each operator's lookup function renamed `__wb_<execution>_lookup_<id>`
    (the builder's names are exact tokens, so the renaming cannot touch another name)."""
    if not plan.operators:
        return plan

    def sub(sql: str) -> str:
        return for_execution(sql, execution)

    def query(q: InputQuery) -> InputQuery:
        return replace(
            q,
            key=sub(q.key),
            source=sub(q.source) if q.source else q.source,
            with_sql=sub(q.with_sql),
            filters=tuple(map(sub, q.filters)),
            after=tuple((ids, sub(f)) for ids, f in q.after),
        )

    ops = tuple(
        replace(op, inputs=tuple(map(query, op.inputs)), sql_name=sub(lookup_name(op.id))) for op in plan.operators
    )
    return replace(plan, final_sql=sub(plan.final_sql), operators=ops)


def named_once(plan: Plan) -> Plan:
    """The plan with lookup names of a new execution of its own (EXPLAIN's stand-ins too)."""
    return named(plan, next(_executions))


@dataclass
class Run:
    """What running a plan gave: the statement's rows and one record per operator."""

    table: pa.Table
    stats: list[OperatorStats] = field(default_factory=list)
    seconds: float = 0.0
    profile: str = ""  # EXPLAIN ANALYZE: DuckDB's JSON profile of the statement
    lookups: dict[int, str] = field(default_factory=dict)  # operator id -> its lookup's name in this run


class Runner:
    def __init__(
        self,
        models: Models,
        telemetry: Telemetry,
        *,
        cache_use: Callable[[str, Model], dl_centric.CacheUse | None],
        learn: Callable[[ModelOperator, Model, OperatorStats], None],
        writes: Any,
        remote: Callable[[], Remote | None] = lambda: None,
    ):
        self.models = models
        self.telemetry = telemetry
        self.cache_use = cache_use
        self.learn = learn
        self.writes = writes  # a lock around the engine's own writes (weight tables)
        self.remote = remote  # the connected cluster, for operators placed on it

    def run(self, plan: Plan, values: dict[str, Any], cursor: Cursor, config: Config, *, profile: bool = False) -> Run:
        """`profile` (EXPLAIN ANALYZE): keep DuckDB's profile of the statement."""
        start = time.perf_counter()
        plan = named_once(plan)
        guard = MemoryGuard(config.memory_budget) if config.memory_budget else None
        cursor.plan = plan
        outcomes: list[tuple[ModelOperator, Model, Outcome]] = []
        with Lookups(cursor) as lookups, self._observed(plan, start, config, cursor) as observed:
            fallbacks: dict[int, str] = {}  # operator id -> why its planned runtime did not run
            tallies: dict[int, Generation] = {}  # operator id -> what its generator decoded
            for op in plan.operators:
                form, why = self.models.form(
                    op.model, config, op.runtime, op.precision, functools.partial(sample_inputs, cursor, op, values)
                )
                if form is not None:
                    model = form
                else:
                    if why:
                        fallbacks[op.id] = why
                    model = self.models.variant(op.model, config, functools.partial(_sample_for, cursor, op, values))
                if op.paradigm != "dl_centric":  # only dl_centric may find every input cached and never load it
                    model = real(model)
                model = for_call(model, op.options)
                job = Job(
                    op=op,
                    model=model,
                    cursor=cursor,
                    values=values,
                    telemetry=self.telemetry,
                    cache=self.cache_use(op.model, model)
                    if op.paradigm != "udf_centric" and cached_by_value(model.input_kind, op.input_type)
                    else None,
                    guard=guard,
                    memory_budget=config.memory_budget,
                    writes=self.writes,
                    remote=self.remote() if op.placement == "ray" else None,
                )
                tally = Generation(op.id, self.telemetry)
                with (
                    torch_threads(op.threads[1] if op.threads and op.paradigm != "udf_centric" else None),
                    generate.watching(tally),
                ):
                    outcome = cursor.guarded(functools.partial(EXECUTORS[op.executor].run, job))
                tallies[op.id] = tally
                if outcome.udf is not None:
                    lookups.stream(outcome.udf)
                elif outcome.lookup:
                    lookups.fill_relation(op, outcome.relation, outcome.lookup, outcome.release)
                else:
                    assert outcome.table is not None
                    lookups.fill(op, outcome.table, distinct=all(q.distinct for q in op.inputs))
                outcomes.append((op, model, outcome))
            with profiled(cursor.con, profile) as profiles:
                table = self._statement(plan, values, cursor, outcomes)
            if guard is not None:
                guard.check("the final query")
            stats = [outcome.stats() for _, _, outcome in outcomes]
            stats = [
                tallies[op.id].stats(replace(s, runtime_note=fallbacks.get(op.id)))
                for (op, _, _), s in zip(outcomes, stats)
            ]
            for (op, model, _), s in zip(outcomes, stats):
                if op.paradigm in ("dl_centric", "udf_centric") and op.placement == "local":
                    self.learn(op, model, s)
            observed(table.num_rows, stats)
        names = {op.id: op.lookup for op in plan.operators}
        return Run(table, stats, time.perf_counter() - start, "".join(profiles), names)

    def _statement(
        self, plan: Plan, values: dict[str, Any], cursor: Cursor, outcomes: list[tuple[ModelOperator, Model, Outcome]]
    ) -> pa.Table:
        """Run the statement itself (UDF operators run inside it)."""
        udfs = [o.udf for _, _, o in outcomes if o.udf is not None]
        torch_n = max((u.op.threads[1] for u in udfs if u.op.threads), default=None)
        cursor.on_interrupt = [u.cancel for u in udfs]  # Ctrl-C stops a UDF between its batches
        try:
            with torch_threads(torch_n):
                return cursor.fetch(plan.final_sql, {n: values[n] for n in plan.params if n in values})
        except WorkbenchError:
            error = original_error(udfs)
            if error is not None:
                raise error from None
            raise
        finally:
            cursor.on_interrupt = []

    @contextlib.contextmanager
    def _observed(
        self, plan: Plan, start: float, config: Config, cursor: Cursor
    ) -> Iterator[Callable[[int, list[OperatorStats]], None]]:
        """Tell the event stream a query starts and ends (and sample memory meanwhile), only
        when someone listens. Yields the function that records the result's size."""
        tele = self.telemetry
        if not tele.active:
            yield lambda rows, stats: None
            return
        # a budget bounds the growth from here (MemoryGuard), so the line sits above the start
        tele.emit(
            "query_start",
            sql=plan.sql,
            budgets={"cpu": config.memory_budget},
            baseline={"cpu": psutil.Process().memory_info().rss},
            operators=[
                {"id": op.id, "call": op.call, "paradigm": op.paradigm, "estimated_rows": op.estimated_rows}
                for op in plan.operators
            ],
        )
        done: dict[str, Any] = {}

        def record(rows: int, stats: list[OperatorStats]) -> None:
            done.update(rows=rows, stats=stats)

        error = None
        try:
            models = [self.models.base(op.model, config) for op in plan.operators]
            with MemorySampler(tele, cursor.con, models):
                yield record
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            for op, s in zip(plan.operators, done.get("stats", ())):
                tele.emit("operator_end", id=op.id, rows=s.rows, seconds=s.seconds)
            tele.emit("query_end", rows=done.get("rows"), seconds=time.perf_counter() - start, error=error)


class Generation:
    """What an operator's generator decoded (models/generate.py reports every token): its
    stats' tokens, tokens/s and KV cache bytes, and `generation` events for the live display
    (at most every `INTERVAL_S`, and each call's last), with the text of the latest row."""

    INTERVAL_S = 0.1

    def __init__(self, op_id: int, telemetry: Telemetry):
        self.op_id, self.telemetry = op_id, telemetry
        self.tokens = 0  # of the calls that ended
        self.seconds = 0.0
        self.kv_bytes = 0
        self.calls = 0
        self._last = 0.0

    def __call__(self, stats: generate.DecodeStats, row: int, text: str) -> None:
        if stats.finished:
            self.tokens += stats.tokens
            self.seconds += stats.seconds
            self.kv_bytes = max(self.kv_bytes, stats.kv_bytes)
            self.calls += 1
        if not self.telemetry.active:
            return
        now = time.perf_counter()
        if not stats.finished and now - self._last < self.INTERVAL_S:
            return
        self._last = now
        tokens = self.tokens + (0 if stats.finished else stats.tokens)
        seconds = self.seconds + (0.0 if stats.finished else stats.seconds)
        self.telemetry.emit(
            "generation",
            id=self.op_id,
            tokens=tokens,
            tokens_per_s=tokens / seconds if seconds > 0 else 0.0,
            kv_bytes=max(self.kv_bytes, stats.kv_bytes),
            rows=stats.rows,
            text=text if stats.rows == 1 and not stats.finished else None,
        )

    def stats(self, s: OperatorStats) -> OperatorStats:
        if not self.calls:
            return s
        rate = round(self.tokens / self.seconds, 2) if self.seconds > 0 else None
        return replace(s, tokens=self.tokens, tokens_per_s=rate, kv_cache_bytes=self.kv_bytes)


@contextlib.contextmanager
def profiled(con: Any, on: bool = True) -> Iterator[list[str]]:
    """DuckDB's JSON profile of the statement run inside (EXPLAIN ANALYZE only; yields a list
    that holds it afterwards). Profiling is on for that statement alone: a user who had
    turned it on keeps it, anyone else has it off again, so later queries never pay."""
    out: list[str] = []
    if not on:
        yield out
        return
    was = con.sql("SELECT current_setting('enable_profiling')").fetchall()[0][0]
    if was is None:
        con.execute("SET enable_profiling = 'no_output'")
    try:
        yield out
        try:
            out.append(con.get_profiling_information())
        except duckdb.Error:  # pragma: no cover - nothing was profiled
            pass
    finally:
        if was is None:
            con.execute("RESET enable_profiling")


def _sample_for(cursor: Cursor, op: ModelOperator, values: dict[str, Any], base: Model) -> Any:
    return sample_inputs(cursor, op, values, base, variants.SAMPLE_ROWS)


def sample_inputs(cursor: Cursor, op: ModelOperator, values: dict[str, Any], model: Model, rows: int) -> Any:
    """A reproducible sample of an operator's inputs, as the model takes them."""
    query = f"SELECT * FROM ({op.input_sql}) USING SAMPLE {rows} ROWS (reservoir, 7)"
    keys = cursor.fetch(query, {p: values[p] for p in op.params}).column(0).combine_chunks()
    keys = keys.filter(pc.is_valid(keys)) if keys.null_count else keys
    return dl_centric.to_model_inputs(op.call, op.model, model, keys)
