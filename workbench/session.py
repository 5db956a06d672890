"""Session: one DuckDB connection, its model catalog, and the engine that runs dlsql on it."""

from __future__ import annotations

import functools
import itertools
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import duckdb
import pyarrow as pa

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
from workbench.execution import batching, dl_centric
from workbench.execution.lookups import Lookups
from workbench.models.base import Model
from workbench.models.catalog import Catalog
from workbench.plan.builder import PlanBuilder, parse
from workbench.plan.nodes import ModelOperator, Plan
from workbench.procedures import PROCEDURES
from workbench.result import Result
from workbench.runtime.memory import MemoryGuard
from workbench.scheduler import QueryFuture, Scheduler
from workbench.sql import params as sql_params
from workbench.sql import statements as st

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

    def _setup(self, con: duckdb.DuckDBPyConnection, database: str, catalog: Catalog,
               batch_size: int | None) -> None:
        self.con = con
        self.database = database
        self.batch_size = batch_size
        self.memory_budget: int | None = None
        self.catalog = catalog
        self.cache = InferenceCache(con, self._fetch)
        self.sla_policy = "fifo"
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
    ) -> Result:
        """Run dlsql `text`; `:name` / `$name` placeholders are bound from `params`.

        `namespace` is where `CREATE MODEL ... FROM PYTHON var` finds `var` (the notebook's
        namespace in the magic; the caller's globals by default).
        """
        if not isinstance(text, str):
            raise SQLSyntaxError(f"expected SQL text, got {type(text).__name__}")
        if namespace is None:  # CREATE MODEL ... FROM PYTHON var looks in the caller's frame
            namespace = _FrameNamespace(sys._getframe(1))
        statements = st.split(text, frozenset(self.procedures), settings.SETTINGS)
        if not statements:
            raise SQLSyntaxError("nothing to run: the text has no SQL statement")
        result: Result | None = None
        for stmt in statements:
            result = self._run(stmt, params, namespace)
        assert result is not None
        return result

    def explain(self, text: str, params: Mapping[str, Any] | None = None, *, analyze: bool = False) -> Plan:
        """The plan of one query; with `analyze=True` it runs and carries actual figures."""
        statements = st.split(text, frozenset(self.procedures), settings.SETTINGS)
        if len(statements) != 1:
            raise SQLSyntaxError(f"explain() takes one statement, got {len(statements)}")
        stmt = statements[0]
        if isinstance(stmt, st.Explain):
            analyze, stmt = analyze or stmt.analyze, stmt.statement
        if not isinstance(stmt, st.Sql):
            raise SQLSyntaxError("only SQL queries can be explained")
        return self._explain(stmt, params, analyze)

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
    def _run(self, stmt: st.Statement, params: Mapping[str, Any] | None, namespace: Mapping[str, Any]) -> Result:
        start = time.perf_counter()
        if isinstance(stmt, st.Sql):
            return self._run_sql(stmt, params, start)
        if isinstance(stmt, st.Explain):
            inner = stmt.statement
            if not isinstance(inner, st.Sql):
                raise SQLSyntaxError("EXPLAIN works on SQL queries, not on model statements")
            plan = self._explain(inner, params, stmt.analyze)
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

    def _run_sql(self, stmt: st.Sql, params: Mapping[str, Any] | None, start: float) -> Result:
        text, values = self._bind(stmt, params)
        if not self._calls_models(stmt):
            table = self._duckdb(text, values)
            return Result(table, statement=stmt.text, elapsed=time.perf_counter() - start)
        guard = MemoryGuard(self.memory_budget) if self.memory_budget else None
        with Lookups(self) as temp:
            plan = self._plan(text, temp, values)
            stats = self._run_operators(plan, values, temp, guard)
            table = self._duckdb(plan.final_sql, _subset(values, plan.params), plan)
            if guard is not None:
                guard.check("the final query")
        return Result(table, statement=stmt.text, elapsed=time.perf_counter() - start, stats=stats)

    def _explain(self, stmt: st.Sql, params: Mapping[str, Any] | None, analyze: bool) -> Plan:
        text, values = self._bind(stmt, params)
        with Lookups(self) as temp:
            if not self._calls_models(stmt):
                plan = Plan(sql=stmt.text, final_sql=text, params=tuple(values))
            else:
                plan = self._plan(text, temp, values)
            ops = tuple(self._estimated(op, values) for op in plan.operators)
            if analyze:
                stats = self._run_operators(plan, values, temp)
                ops = tuple(op.with_actuals(s) for op, s in zip(ops, stats))
            relational = self._relational_plan(plan, values)
        return replace(plan, sql=stmt.text, operators=ops, analyzed=analyze, relational_plan=relational)

    # -- engine steps -----------------------------------------------------------------
    def _plan(self, text: str, temp: Lookups, values: dict[str, Any]) -> Plan:
        try:
            return self._build_plan(text, temp, values)
        except RecursionError:
            raise SQLSyntaxError("the statement is nested too deeply to plan") from None

    def _build_plan(self, text: str, temp: Lookups, values: dict[str, Any]) -> Plan:
        tree = parse(text)
        models: dict[str, Model] = {}
        for name in self.catalog.names:
            if re.search(rf"\b{re.escape(name)}\s*\(", text, re.IGNORECASE):
                models[name] = self.catalog.get(name)

        def input_type_of(query: str, names: tuple[str, ...]) -> str:
            rel = self._guard(lambda: self.con.sql(f"SELECT * FROM ({query}) LIMIT 0",
                                                   params=_subset(values, names) or None))
            return str(rel.types[0])

        builder = PlanBuilder(models, self._columns_of, input_type_of, temp.declare)
        return builder.build(text, tree)

    def _run_operators(
        self, plan: Plan, values: dict[str, Any], temp: Lookups, guard: MemoryGuard | None = None
    ) -> list[dict[str, Any]]:
        stats = []
        for op in plan.operators:
            model = self.catalog.get(op.model)
            use = self._cache_use(op.model, model)
            batch = self.catalog.batch_size(op.model) or self.batch_size or op.batch_size
            run = self._guard(lambda op=op, model=model, use=use, batch=batch: dl_centric.run(
                self._fetch, op, model, values, batch_size=batch, cache=use, guard=guard), plan)
            temp.fill(op, run.table)
            stats.append(run.stats)
        return stats

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

    def _estimated(self, op: ModelOperator, values: dict[str, Any]) -> ModelOperator:
        model = self.catalog.get(op.model)
        policy = policy_of(self.catalog.info(op.model).options, model)
        ratio = None
        if policy.kind != "off":
            try:
                ratio = self._guard(lambda: self.cache.expected_hit_ratio(
                    op.model, model, policy, model.fingerprint(), op.input_sql, _subset(values, op.params)))
            except WorkbenchError:  # e.g. another session is creating the cache table right now
                ratio = None
        return replace(op, estimated_rows=self._estimate(op.input_sql, _subset(values, op.params)),
                       cache_policy=policy.describe(), expected_hit_ratio=ratio)

    def _estimate(self, query: str, values: dict[str, Any]) -> int | None:
        """Rows a model operator will see: an exact count, since its input query runs no model
        and DuckDB's own estimate for filtered scans can be far off (it says 1 for `id % 5 = 0`)."""
        try:
            return int(self._fetch(f"SELECT count(*) AS n FROM ({query}) WHERE k IS NOT NULL",
                                   values).column(0)[0].as_py())
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


