"""Session: one DuckDB connection, its model catalog, and the engine that runs dlsql on it."""

from __future__ import annotations

import contextlib
import functools
import itertools
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

import duckdb
import psutil
import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute

from workbench import settings
from workbench.cache import InferenceCache, policy_of
from workbench.db import first_line, translate_error
from workbench.errors import (
    ExecutionError,
    ModelLoadError,
    QueryInterrupted,
    SQLSyntaxError,
    WorkbenchError,
)
from workbench.execution import batching, dl_centric, hybrid, relation_centric
from workbench.execution.lookups import Lookups
from workbench.execution.udf_centric import UdfOperator, original_error
from workbench.models import offloaded, variants
from workbench.models.base import Model
from workbench.models.catalog import Catalog
from workbench.optimizer import calibration, hints
from workbench.optimizer.context import Context
from workbench.optimizer.cost import CostModel, Facts
from workbench.optimizer.optimize import optimize
from workbench.plan.builder import PlanBuilder, parse
from workbench.plan.nodes import ModelOperator, Plan, union_sql
from workbench.procedures import PROCEDURES
from workbench.result import Result
from workbench.runtime.memory import MemoryGuard
from workbench.runtime.threads import torch_threads
from workbench.scheduler import QueryFuture, Scheduler
from workbench.sql import params as sql_params
from workbench.sql import statements as st
from workbench.telemetry import MemorySampler, Telemetry, TextProgress

_session_ids = itertools.count(1)


class Session:
    """A workbench session. Use `workbench.connect()` to make one.

    `sql(text, params)` runs one or more dlsql statements and returns the last one's
    `Result`; `explain(text)` returns the `Plan` of a query without running its models.
    """

    def __init__(
        self,
        database: str = ":memory:",
        *,
        batch_size: int | None = None,
        memory_budget: str | int | None = None,
        safe: bool = False,
        workers: int = 2,
        progress: bool | str = "auto",
    ):
        try:
            con = duckdb.connect(database)
        except duckdb.Error as exc:
            msg = first_line(exc)
            if "lock" in msg.lower():
                msg = f"it is open in another process ({msg})"
            raise ExecutionError(f"cannot open database {database!r}: {msg}") from None
        self._setup(con, database, Catalog(con), batch_size)
        self.workers = workers
        if memory_budget is not None:
            settings.set_memory_budget(self, memory_budget)
        if safe:
            settings.lock_down(self.con)
        if progress is True or (progress == "auto" and _terminal()):
            self.telemetry.subscribe(TextProgress())

    def _setup(self, con: duckdb.DuckDBPyConnection, database: str, catalog: Catalog,
               batch_size: int | None) -> None:
        self.con = con
        # DuckDB's own progress bar becomes an ipywidget in a kernel that outlives the cell
        # as a blank box once saved; the engine's telemetry and live widget report instead.
        con.sql("SET enable_progress_bar = false")
        self.database = database
        self.batch_size = batch_size
        self.memory_budget: int | None = None
        self.memory_budget_cuda: int | None = None  # for models placed on a GPU (offloading's window)
        self.catalog = catalog
        self.cache = InferenceCache(con, self._fetch)
        self.telemetry = Telemetry()
        self.sla_policy = "fifo"
        self.disabled_rules: frozenset[str] = frozenset()
        self._constants: dict[str, float] | None = None
        self.workers = 2
        self._scheduler: Scheduler | None = None
        self._id = next(_session_ids)
        self._temp = itertools.count(1)
        self.procedures: dict[str, Callable[..., Result]] = {
            name: functools.partial(proc, self) for name, proc in PROCEDURES.items()}

    def _cursor_session(self) -> Session:
        """A session on its own DuckDB cursor of the same database, for a worker thread.
        It shares the catalog's loaded Python models with this session."""
        child = object.__new__(Session)
        cursor = self.con.cursor()
        child._setup(cursor, self.database, self.catalog.on_connection(cursor), self.batch_size)
        child.memory_budget = self.memory_budget
        child.memory_budget_cuda = self.memory_budget_cuda
        child.disabled_rules = self.disabled_rules
        return child

    # -- public API ---------------------------------------------------------------------
    def submit(
        self, sql: str, params: Mapping[str, Any] | None = None, *, deadline_ms: float | None = None
    ) -> QueryFuture:
        """Queue `sql` for the worker pool; returns a future (status done / late / failed /
        dropped, estimated_ms, actual_ms). The policy is `SET sla_policy = ...`."""
        values = self._snapshot_params(sql, params)
        return self.scheduler.submit(sql, values, deadline_ms)

    @property
    def scheduler(self) -> Scheduler:
        if self._scheduler is None:
            self._scheduler = Scheduler(self, workers=self.workers)
            self._scheduler.policy = self.sla_policy
        return self._scheduler

    def _snapshot_params(self, sql: str, params: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """The values the statements use, taken now (a notebook variable may change later)."""
        names: list[str] = []
        for stmt in st.split(sql, frozenset(self.procedures), settings.SETTINGS):
            inner = stmt.statement if isinstance(stmt, st.Explain) else stmt
            if isinstance(inner, st.Sql):
                names += sql_params.rewrite(inner.text, inner.start, inner.tokens)[1]
        return sql_params.bind(list(dict.fromkeys(names)), params) or None

    def sql(
        self,
        text: str,
        params: Mapping[str, Any] | None = None,
        *,
        namespace: Mapping[str, Any] | None = None,
        paradigm: str | None = None,
    ) -> Result:
        """Run dlsql `text`; `:name` / `$name` placeholders are bound from `params`.

        `namespace` is where `CREATE MODEL ... FROM PYTHON var` finds `var` (the notebook's
        namespace in the magic; the caller's globals by default). `paradigm` forces how every
        model call runs ('dl_centric', 'udf_centric', 'relation_centric', 'hybrid') instead
        of the optimizer's choice; `/*+ paradigm(model, NAME) */` forces one model.
        """
        paradigm = hints.check(paradigm)
        if not isinstance(text, str):
            raise SQLSyntaxError(f"expected SQL text, got {type(text).__name__}")
        if namespace is None:  # CREATE MODEL ... FROM PYTHON var looks in the caller's frame
            namespace = _FrameNamespace(sys._getframe(1))
        statements = st.split(text, frozenset(self.procedures), settings.SETTINGS)
        if not statements:
            raise SQLSyntaxError("nothing to run: the text has no SQL statement")
        result: Result | None = None
        for stmt in statements:
            result = self._run(stmt, params, namespace, paradigm)
        assert result is not None
        return result

    def explain(self, text: str, params: Mapping[str, Any] | None = None, *, analyze: bool = False,
                paradigm: str | None = None) -> Plan:
        """The plan of one query; with `analyze=True` it runs and carries actual figures."""
        paradigm = hints.check(paradigm)
        statements = st.split(text, frozenset(self.procedures), settings.SETTINGS)
        if len(statements) != 1:
            raise SQLSyntaxError(f"explain() takes one statement, got {len(statements)}")
        stmt = statements[0]
        if isinstance(stmt, st.Explain):
            analyze, stmt = analyze or stmt.analyze, stmt.statement
        if not isinstance(stmt, st.Sql):
            raise SQLSyntaxError("only SQL queries can be explained")
        return self._explain(stmt, params, analyze, paradigm)

    def register_model(self, name: str, obj: Any, *, replace: bool = True, **options: Any) -> None:
        """Register a Python object (torch module, (model, tokenizer) pair) as model `name`."""
        self.catalog.create(name, obj=obj, var_name=name, options=options, replace=replace)

    def close(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        self.con.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<workbench.Session database={self.database!r} models={sorted(self.catalog.names)}>"

    # -- statements -------------------------------------------------------------------
    def _run(self, stmt: st.Statement, params: Mapping[str, Any] | None, namespace: Mapping[str, Any],
             paradigm: str | None = None) -> Result:
        start = time.perf_counter()
        if isinstance(stmt, st.Sql):
            return self._run_sql(stmt, params, start, paradigm)
        if isinstance(stmt, st.Explain):
            inner = stmt.statement
            if not isinstance(inner, st.Sql):
                raise SQLSyntaxError("EXPLAIN works on SQL queries, not on model statements")
            plan = self._explain(inner, params, stmt.analyze, paradigm)
            return Result(pa.table({"plan": plan.text().splitlines()}), statement=stmt.text,
                          elapsed=time.perf_counter() - start, plan=plan)
        if isinstance(stmt, st.CreateModel):
            self.catalog.check_name(stmt.name, stmt.replace)
            if stmt.path is not None:
                model = self.catalog.create(stmt.name, path=stmt.path, options=stmt.options, replace=stmt.replace)
            else:
                obj = _lookup_var(stmt.python_var or "", params, namespace)
                model = self.catalog.create(stmt.name, obj=obj, var_name=stmt.python_var,
                                            options=stmt.options, replace=stmt.replace)
            if model is None:  # may stream from disk: nothing was loaded
                info = self.catalog.info(stmt.name)
                return self._message(f"model {stmt.name} created ({info.task}: VARCHAR; offload = "
                                     f"{info.options.get('offload')}, weights stay on disk until needed)", stmt, start)
            return self._message(f"model {stmt.name} created ({model.task}: {model.input_type} -> "
                                 f"{model.output_type})", stmt, start)
        if isinstance(stmt, st.DropModel):
            dropped = self.catalog.drop(stmt.name, stmt.if_exists)
            return self._message(f"model {stmt.name} {'dropped' if dropped else 'did not exist'}", stmt, start)
        if isinstance(stmt, st.ShowModels):
            return Result(self.catalog.show(), statement=stmt.text, elapsed=time.perf_counter() - start)
        if isinstance(stmt, st.DescribeModel):
            return Result(self.catalog.describe(stmt.name), statement=stmt.text,
                          elapsed=time.perf_counter() - start)
        if isinstance(stmt, st.AlterModel):
            self.catalog.alter(stmt.name, stmt.options)
            return self._message(f"model {stmt.name} altered", stmt, start)
        if isinstance(stmt, st.Call):
            return self.procedures[stmt.procedure.lower()](*stmt.args)
        if isinstance(stmt, st.Setting):
            return self._message(settings.apply(self, stmt.name, stmt.value), stmt, start)
        raise SQLSyntaxError(f"unsupported statement: {stmt.text}")  # pragma: no cover

    def _message(self, text: str, stmt: st.Statement, start: float) -> Result:
        return Result(pa.table({"status": [text]}), statement=stmt.text,
                      elapsed=time.perf_counter() - start, message=text)

    def _bind(self, stmt: st.Sql, params: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
        text, names = sql_params.rewrite(stmt.text, stmt.start, stmt.tokens)
        return text, sql_params.bind(names, params)

    def _calls_models(self, stmt: st.Sql) -> bool:
        names = self.catalog.names
        toks = stmt.tokens
        return any(
            toks[i].text.lower() in names and toks[i + 1].text == "(" for i in range(len(toks) - 1)
        )

    def _run_sql(self, stmt: st.Sql, params: Mapping[str, Any] | None, start: float,
                 paradigm: str | None = None) -> Result:
        text, values = self._bind(stmt, params)
        if not self._calls_models(stmt):
            table = self._duckdb(text, values)
            return Result(table, statement=stmt.text, elapsed=time.perf_counter() - start)
        guard = MemoryGuard(self.memory_budget) if self.memory_budget else None
        with Lookups(self) as temp:
            plan = self._plan(text, temp, values, self._hints(stmt, paradigm))
            with self._observed(plan, start) as observed:
                stats, udfs = self._run_operators(plan, values, temp, guard)
                table = self._final(plan, values, udfs)
                if guard is not None:
                    guard.check("the final query")
                stats = self._udf_stats(stats, udfs)
                observed(table.num_rows, stats)
        return Result(table, statement=stmt.text, elapsed=time.perf_counter() - start, stats=stats)

    @contextlib.contextmanager
    def _observed(self, plan: Plan, start: float) -> Iterator[Callable[[int, list[dict[str, Any]]], None]]:
        """Tell the event stream a query starts and ends (and sample memory meanwhile), only
        when someone listens. Yields the function that records the result's size."""
        tele = self.telemetry
        if not tele.active:
            yield lambda rows, stats: None
            return
        # a budget bounds the growth from here (MemoryGuard), so the line sits above the start
        tele.emit("query_start", sql=plan.sql, budgets={"cpu": self.memory_budget},
                  baseline={"cpu": psutil.Process().memory_info().rss},
                  operators=[{"id": op.id, "call": op.call, "paradigm": op.paradigm,
                              "estimated_rows": op.estimated_rows} for op in plan.operators])
        done: dict[str, Any] = {}

        def record(rows: int, stats: list[dict[str, Any]]) -> None:
            done.update(rows=rows, stats=stats)

        error = None
        try:
            with MemorySampler(tele, self.con, [self._base_model(op.model) for op in plan.operators]):
                yield record
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            for op, st_ in zip(plan.operators, done.get("stats", ())):
                tele.emit("operator_end", id=op.id, rows=st_["rows"], seconds=st_["seconds"])
            tele.emit("query_end", rows=done.get("rows"), seconds=time.perf_counter() - start, error=error)

    def _explain(self, stmt: st.Sql, params: Mapping[str, Any] | None, analyze: bool,
                 paradigm: str | None = None) -> Plan:
        text, values = self._bind(stmt, params)
        with Lookups(self) as temp:
            if not self._calls_models(stmt):
                plan = Plan(sql=stmt.text, final_sql=text, params=tuple(values))
            else:
                plan = self._plan(text, temp, values, self._hints(stmt, paradigm))
            ops = plan.operators
            rows = seconds = None
            if analyze:
                start = time.perf_counter()
                with self._observed(plan, start) as observed:
                    stats, udfs = self._run_operators(plan, values, temp)
                    rows = self._final(plan, values, udfs).num_rows  # ANALYZE runs the whole statement
                    stats = self._udf_stats(stats, udfs)
                    observed(rows, stats)
                seconds = round(time.perf_counter() - start, 6)
                ops = tuple(op.with_actuals(s) for op, s in zip(ops, stats))
            relational = self._relational_plan(plan, values)
        return replace(plan, sql=stmt.text, operators=ops, analyzed=analyze, relational_plan=relational,
                       actual_rows=rows, actual_seconds=seconds)

    def _hints(self, stmt: st.Sql, paradigm: str | None) -> hints.Hints:
        return hints.parse((c for tok in stmt.tokens for c in (tok.comments or ())), paradigm)

    # -- engine steps -----------------------------------------------------------------
    def _plan(self, text: str, temp: Lookups, values: dict[str, Any], hint: hints.Hints | None = None) -> Plan:
        """Build the logical plan, then let the optimizer rules rewrite it and pick how each
        model operator runs."""
        try:
            logical = self._build_plan(text, temp, values)
        except RecursionError:
            raise SQLSyntaxError("the statement is nested too deeply to plan") from None
        return optimize(logical, self._context(values, hint or hints.Hints()), disabled=self.disabled_rules)

    def _build_plan(self, text: str, temp: Lookups, values: dict[str, Any]) -> Plan:
        tree = parse(text)
        models: dict[str, Model] = {}
        for name in self.catalog.names:
            if re.search(rf"\b{re.escape(name)}\s*\(", text, re.IGNORECASE):
                models[name] = self._base_model(name)

        def input_type_of(query: str, names: tuple[str, ...]) -> str:
            rel = self._guard(lambda: self.con.sql(f"SELECT * FROM ({query}) LIMIT 0",
                                                   params=_subset(values, names) or None))
            return str(rel.types[0])

        builder = PlanBuilder(models, self._columns_of, input_type_of, temp.declare)
        return builder.build(text, tree)

    def cost_model(self) -> CostModel:
        """The cost model with this machine's calibration (measured on first use)."""
        if self._constants is None:
            self._constants = self._guard(lambda: calibration.constants(self.con))
        return CostModel(self._constants, memory_budget=self.memory_budget,
                         weights_stored=lambda fp: relation_centric.stored(self.con, fp))

    def _context(self, values: dict[str, Any], hint: hints.Hints) -> Context:
        return Context(cost=self.cost_model(), facts=self._facts_of(values), model=self._base_model, hints=hint,
                       batch_size=lambda name: self.catalog.batch_size(name) or self.batch_size,
                       precision=self._precision, memory=self._memory)

    def _precision(self, name: str) -> str:
        spec = variants.spec_of(self.catalog.info(name).options)
        return "float32" if spec is None else spec.label

    def _base_model(self, name: str) -> Model:
        """The catalog's model, or its offloaded form when its options and the budget say so."""
        info = self.catalog.info(name)
        device = str(info.options.get("device", "cpu"))
        budget = self.memory_budget_cuda if device.startswith("cuda") else self.memory_budget
        directory = offloaded.should_offload(info.options, info.source, budget)
        if directory is None:
            return self.catalog.get(name)
        model = offloaded.load(name, directory, info.options, budget, device=device)
        model.offloaded.telemetry = self.telemetry  # type: ignore[attr-defined]
        return model

    def _memory(self, name: str) -> str:
        """How a model's weights are held, for EXPLAIN (offloading is decided here, no weight read)."""
        info = self.catalog.info(name)
        cuda = str(info.options.get("device", "cpu")).startswith("cuda")
        try:
            directory = offloaded.should_offload(info.options, info.source,
                                                 self.memory_budget_cuda if cuda else self.memory_budget)
        except WorkbenchError:
            return "resident"
        if directory is None:
            return "resident"
        return self._base_model(name).memory  # type: ignore[attr-defined]

    def _model(self, op: ModelOperator, values: dict[str, Any]) -> Model:
        """The model an operator runs: the catalog's (offloaded when it must be), or the
        compressed variant its options ask for (built and validated on a sample of this
        operator's inputs the first time)."""
        base = self._base_model(op.model)
        spec = variants.spec_of(self.catalog.info(op.model).options)
        if spec is None:
            return base

        def sample() -> Any:
            query = f"SELECT * FROM ({op.input_sql}) USING SAMPLE {variants.SAMPLE_ROWS} ROWS (reservoir, 7)"
            keys = self._fetch(query, {p: values[p] for p in op.params}).column(0).combine_chunks()
            keys = keys.filter(pa.compute.is_valid(keys)) if keys.null_count else keys
            return dl_centric.to_model_inputs(op.call, op.model, base, keys)

        model, _report = variants.VARIANTS.get(base, spec, sample)
        return model

    def _facts_of(self, values: dict[str, Any]) -> Callable[[ModelOperator], Facts]:
        """Facts per operator for one statement, each counted once."""
        known: dict[str, Facts] = {}

        def facts(op: ModelOperator) -> Facts:
            if op.lookup not in known:
                known[op.lookup] = self._facts(op, values, known)
            return known[op.lookup]

        return facts

    def _facts(self, op: ModelOperator, values: dict[str, Any], known: dict[str, Facts]) -> Facts:
        """Exact counts of an operator's inputs (its input query runs no model, so counting
        is cheap); a call nested in another's input, or filtered by another's output, is
        estimated from that operator's figures since its outputs do not exist yet."""
        model = self._base_model(op.model)
        text = model.input_kind == "text"
        params = _subset(values, op.params)
        others = [lk for lk in known if lk != op.lookup]
        nested = [known[lk] for lk in others if any(lk in q.key for q in op.inputs)]
        stripped = 0
        inputs = []
        for q in op.inputs:
            keep = tuple(f for f in q.filters if not any(lk in f for lk in others))
            stripped += len(q.filters) - len(keep)
            inputs.append(replace(q, filters=keep))
        share = 0.5 ** stripped
        policy = policy_of(self.catalog.info(op.model).options, model)
        width = model.input_dim or 1
        if nested:
            rows, total, chars = nested[0].rows, nested[0].rows, 0.0
        else:
            length = ", avg(length(k)) AS c" if text else ", 0 AS c"
            try:
                counted = self._fetch(f"SELECT count(k) AS n, count(DISTINCT k) AS d{length} "
                                      f"FROM ({union_sql(tuple(inputs), distinct=False)})", params)
                total, rows, chars = (counted.column(i)[0].as_py() or 0 for i in range(3))
            except (duckdb.Error, WorkbenchError):
                total, rows, chars = 1000, 1000, 200.0
        rows, total = max(1, int(rows * share)), max(1, int(total * share))
        ratio = 0.0
        if policy.kind != "off" and not any(lk in op.input_sql for lk in others):
            try:
                ratio = self._guard(lambda: self.cache.expected_hit_ratio(
                    op.model, model, policy, model.fingerprint(), op.input_sql, params)) or 0.0
            except WorkbenchError:  # e.g. another session is creating the cache table right now
                ratio = 0.0
        key_bytes = float(chars or 1.0) if text else 8.0 if model.input_kind == "ids" else 4.0 * width
        return Facts(rows=rows, input_rows=total, key_bytes=key_bytes,
                     avg_chars=float(chars or 0.0), hit_ratio=ratio, cache_on=policy.kind != "off",
                     cache_policy=policy.describe())

    def _run_operators(
        self, plan: Plan, values: dict[str, Any], temp: Lookups, guard: MemoryGuard | None = None
    ) -> tuple[list[dict[str, Any] | None], list[UdfOperator]]:
        """Run the materializing operators in order; register the UDF ones (they run inside
        the final statement). Returns per-operator stats (None for UDFs, filled later)."""
        stats: list[dict[str, Any] | None] = []
        udfs: list[UdfOperator] = []
        for op in plan.operators:
            model = self._model(op, values)
            batch = self.catalog.batch_size(op.model) or self.batch_size or op.batch_size
            if op.paradigm == "udf_centric":
                udf = UdfOperator(self.con, op, model, batch_size=batch, guard=guard, telemetry=self.telemetry)
                udf.register()
                temp.keep(udf)
                udfs.append(udf)
                stats.append(None)
                continue
            use = self._cache_use(op.model, model)
            infer = self._infer(op, model, batch, guard)
            progress = self.telemetry.progress(op.id)
            with torch_threads(op.threads[1] if op.threads else None):
                run = self._guard(lambda op=op, model=model, use=use, batch=batch, infer=infer, progress=progress:
                                  dl_centric.run(self._fetch, op, model, values, batch_size=batch, cache=use,
                                                 guard=guard, infer=infer, progress=progress,
                                                 telemetry=self.telemetry), plan)
            distinct = all(q.distinct for q in op.inputs)
            temp.fill(op, run.table, distinct=distinct)
            if op.paradigm == "dl_centric":
                self._observe(op, model, run.stats)
            stats.append(run.stats)
        return stats, udfs

    def _observe(self, op: ModelOperator, model: Model, stats: dict[str, Any]) -> None:
        """Teach the cost model what this run of the model measured."""
        rows = stats["rows"] - stats["cache_hits"]
        facts = Facts(rows=rows, input_rows=stats.get("input_rows", rows), avg_chars=op.avg_input_chars)
        self.cost_model().observe(model, rows, stats["seconds"], stats["batch_size"] or max(model.batch_candidates),
                                  facts, op.paradigm)

    def _infer(self, op: ModelOperator, model: Model, batch: int | None,
               guard: MemoryGuard | None) -> Callable[..., batching.BatchRun] | None:
        if op.paradigm == "relation_centric":
            def rel(keys: pa.Array, progress: Callable[[int, int], None] | None = None) -> batching.BatchRun:
                t0 = time.perf_counter()
                relation_centric.ensure_weights(self.con, op.model, model)
                out = relation_centric.infer(self.con, self._fetch, model, keys, progress=progress,
                                             max_rows=relation_centric.chunk_rows(self.memory_budget))
                return batching.BatchRun(out, 0, 1, time.perf_counter() - t0)
            return rel
        if op.paradigm == "hybrid":
            def mixed(keys: pa.Array, progress: Callable[[int, int], None] | None = None) -> batching.BatchRun:
                t0 = time.perf_counter()
                relation_centric.ensure_weights(self.con, op.model, model)
                run = hybrid.infer(self.con, self._fetch, model, op.model, keys, batch_size=batch, guard=guard,
                                   progress=progress,
                                   max_rows=relation_centric.chunk_rows(self.memory_budget))
                return replace(run, seconds=time.perf_counter() - t0)
            return mixed
        return None

    def _final(self, plan: Plan, values: dict[str, Any], udfs: list[UdfOperator]) -> pa.Table:
        """Run the statement itself (UDF operators run inside it)."""
        torch_n = max((u.op.threads[1] for u in udfs if u.op.threads), default=None)
        try:
            with torch_threads(torch_n):
                return self._duckdb(plan.final_sql, _subset(values, plan.params), plan)
        except WorkbenchError:
            error = original_error(udfs)
            if error is not None:
                raise error from None
            raise

    def _udf_stats(self, stats: list[dict[str, Any] | None], udfs: list[UdfOperator]) -> list[dict[str, Any]]:
        for udf in udfs:
            self._observe(udf.op, udf.model, udf.stats())
        filled = iter(u.stats() for u in udfs)
        return [s if s is not None else next(filled) for s in stats]

    def _cache_use(self, name: str, model: Model) -> dl_centric.CacheUse | None:
        policy = policy_of(self.catalog.info(name).options, model)
        if policy.kind == "off":
            return None
        embed = None
        if policy.kind == "semantic":
            embed = self._semantic_embedder(model)
        return dl_centric.CacheUse(self.cache, policy, model.fingerprint(), embed)

    def _semantic_embedder(self, model: Model) -> Callable[[pa.Array], Any]:
        """Vectors for nearest-input reuse: minilm embeddings of text, or the input arrays."""
        if model.input_kind == "text":
            embedder = self.catalog.get("minilm")

            def embed(keys: pa.Array) -> Any:
                vectors = batching.run(embedder, "minilm", keys.to_pylist()).outputs
                return vectors.flatten().to_numpy().reshape(len(keys), -1)

            return embed
        return lambda keys: dl_centric.to_model_inputs("semantic cache", "input vectors", model, keys)

    def _fetch(self, sql: str, values: dict[str, Any] | None) -> pa.Table:
        return self._interruptible(lambda: self.con.sql(sql, params=values or None).to_arrow_table())

    def _columns_of(self, from_item: str) -> set[str] | None:
        try:
            return {c.lower() for c in self.con.sql(f"SELECT * FROM {from_item} LIMIT 0").columns}
        except duckdb.Error:
            return None

    def _relational_plan(self, plan: Plan, values: dict[str, Any]) -> str:
        try:
            rows = self.con.sql(f"EXPLAIN {plan.final_sql}", params=_subset(values, plan.params) or None).fetchall()
        except duckdb.Error:
            return ""
        return "\n".join(str(r[1]) for r in rows)

    def _duckdb(self, text: str, values: dict[str, Any], plan: Plan | None = None) -> pa.Table:
        def go() -> pa.Table:
            rel = self.con.sql(text, params=values or None)
            if rel is None:
                return pa.table({})
            return rel.to_arrow_table()

        return self._guard(lambda: self._interruptible(go), plan)

    def _interruptible(self, fn: Callable[[], Any]) -> Any:
        """Run a DuckDB call in a worker thread so Ctrl-C stops it at once.

        DuckDB notices a SIGINT only between result chunks (an Arrow fetch of a long
        aggregate can run on for many seconds); here the main thread waits, and on a
        KeyboardInterrupt asks DuckDB to interrupt the running query.
        """
        box: dict[str, Any] = {}
        done = threading.Event()

        def work() -> None:
            try:
                box["value"] = fn()
            except BaseException as exc:  # handed to the caller's thread below
                box["error"] = exc
            finally:
                done.set()

        threading.Thread(target=work, name="workbench-duckdb", daemon=True).start()
        try:
            while not done.wait(0.1):
                pass
        except KeyboardInterrupt:
            self.con.interrupt()
            done.wait()
            raise
        if "error" in box:
            raise box["error"]
        return box["value"]

    def _guard(self, fn: Callable[[], Any], plan: Plan | None = None) -> Any:
        """Run `fn`, turning DuckDB errors and interrupts into short workbench errors."""
        try:
            return fn()
        except KeyboardInterrupt:
            raise QueryInterrupted("query interrupted; nothing was saved") from None
        except RuntimeError as exc:  # DuckDB reports an interrupted query as RuntimeError
            if "interrupted" in str(exc).lower():
                raise QueryInterrupted("query interrupted; nothing was saved") from None
            raise
        except duckdb.Error as exc:
            raise translate_error(exc, plan, self.catalog.names) from None

def connect(database: str = ":memory:", **options: Any) -> Session:
    """Open a session on an in-memory database (default) or a DuckDB file."""
    return Session(database, **options)


# -- helpers -------------------------------------------------------------------------------

def _terminal() -> bool:
    """Plain Python at a terminal (not a notebook kernel, not a pipe): a text progress bar helps."""
    if "ipykernel" in sys.modules:
        return False
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def _subset(values: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {n: values[n] for n in names if n in values}


class _FrameNamespace(Mapping):
    """The caller's locals then globals, read only when a statement needs a variable."""

    def __init__(self, frame: Any):
        self.frame = frame

    def __getitem__(self, name: str) -> Any:
        for scope in (self.frame.f_locals, self.frame.f_globals):
            if name in scope:
                return scope[name]
        raise KeyError(name)

    def __iter__(self):
        return iter({**self.frame.f_globals, **self.frame.f_locals})

    def __len__(self) -> int:
        return len({**self.frame.f_globals, **self.frame.f_locals})


def _lookup_var(name: str, params: Mapping[str, Any] | None, namespace: Mapping[str, Any]) -> Any:
    for scope in (params or {}, namespace):
        if name in scope:
            return scope[name]
    raise ModelLoadError(f"no Python variable '{name}' (define it, or use session.register_model)")


