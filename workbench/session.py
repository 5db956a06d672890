"""Session: one DuckDB database, its model catalog and its settings; the engine does the work.

A Session may be used from any number of threads at once: each call runs on a DuckDB cursor
of its own, the catalog, cache and calibration are guarded, and settings are one frozen
`Config` that a `SET` replaces whole.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import duckdb
import pyarrow as pa

from workbench import settings
from workbench.cache import InferenceCache
from workbench.db import first_line
from workbench.engine.commands import FrameNamespace, frames_of, message, run_model_statement, snapshot_params
from workbench.engine.config import Config
from workbench.engine.engine import Engine
from workbench.engine.io import Cursor, interrupts_as_errors
from workbench.engine.models import real
from workbench.errors import ExecutionError, ParameterError, SQLSyntaxError
from workbench.models.base import Model
from workbench.models.catalog import Catalog
from workbench.optimizer import hints
from workbench.optimizer.cost import CostModel
from workbench.plan.nodes import Plan
from workbench.procedures import PROCEDURES
from workbench.result import Result
from workbench.scheduler import QueryFuture, Scheduler
from workbench.sql import statements as st
from workbench.sql.params import is_table
from workbench.telemetry import Telemetry, TextProgress
from workbench.telemetry.text import at_terminal


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
        cluster: str | None = None,
    ):
        try:
            self.con = duckdb.connect(database)
        except duckdb.Error as exc:
            msg = first_line(exc)
            if "lock" in msg.lower():
                msg = f"it is open in another process ({msg})"
            raise ExecutionError(f"cannot open database {database!r}: {msg}") from None
        self.con.execute("SET enable_progress_bar = false").fetchall()
        self.database = database
        self.config = Config(batch_size=batch_size, workers=workers)
        self.catalog = Catalog(self.con)
        self.telemetry = Telemetry()
        self.catalog.telemetry = self.telemetry  # hub downloads report their progress there
        self.cache = InferenceCache(self.con)
        self.engine = Engine(self.con, self.catalog, self.cache, self.telemetry)
        self._config_lock = threading.Lock()
        self._tables: dict[str, Any] = {}  # register(): lower-case name -> DataFrame / Arrow table
        self._scheduler: Scheduler | None = None
        self.procedures: dict[str, Callable[..., Result]] = {
            name: functools.partial(proc, self) for name, proc in PROCEDURES.items()
        }
        if memory_budget is not None:
            self.set("memory_budget_cpu", memory_budget)
        if cluster is not None:  # 'ray://host:port' | 'host:port' | 'auto' | 'local'
            self.set("cluster", cluster)
        if safe:
            settings.lock_down(self.con)
        if progress is True or (progress == "auto" and at_terminal()):
            self.telemetry.subscribe(TextProgress())

    # -- running dlsql --------------------------------------------------------------------
    def sql(
        self,
        text: str,
        params: Mapping[str, Any] | None = None,
        *,
        namespace: Mapping[str, Any] | None = None,
        paradigm: str | None = None,
        batch_size: int | None = None,
    ) -> Result:
        """Run dlsql `text`; `:name` / `$name` placeholders are bound from `params`
        (`FROM :df` reads a DataFrame or Arrow table given there).

        `namespace` is where `CREATE MODEL ... FROM PYTHON var` finds `var` and where a table
        name finds a DataFrame or Arrow table of that name (the notebook's namespace in the
        magic; the caller's locals and globals by default). `paradigm` forces how every
        model call runs ('dl_centric', 'udf_centric', 'relation_centric', 'hybrid') instead
        of the optimizer's choice; `/*+ paradigm(model, NAME) */` forces one model.
        `batch_size` fixes the model batch size for this call only.
        """
        paradigm = hints.check(paradigm)
        if not isinstance(text, str):
            raise SQLSyntaxError(f"expected SQL text, got {type(text).__name__}")
        if namespace is None:  # FROM PYTHON var and DataFrames by name: the caller's frame
            namespace = FrameNamespace(getattr(inspect.currentframe(), "f_back", None))
        with interrupts_as_errors():
            statements = self._split(text)
            if not statements:
                raise SQLSyntaxError("nothing to run: the text has no SQL statement")
            result: Result | None = None
            for stmt in statements:
                result = self._run(stmt, params, namespace, paradigm, batch_size)
        assert result is not None
        return result

    def explain(
        self,
        text: str,
        params: Mapping[str, Any] | None = None,
        *,
        analyze: bool = False,
        paradigm: str | None = None,
        batch_size: int | None = None,
        namespace: Mapping[str, Any] | None = None,
    ) -> Plan:
        """The plan of one query; with `analyze=True` it runs and carries actual figures."""
        paradigm = hints.check(paradigm)
        if namespace is None:
            namespace = FrameNamespace(getattr(inspect.currentframe(), "f_back", None))
        with interrupts_as_errors():
            statements = self._split(text)
            if len(statements) != 1:
                raise SQLSyntaxError(f"explain() takes one statement, got {len(statements)}")
            stmt: st.Statement | None = statements[0]
            if isinstance(stmt, st.Explain):
                analyze, stmt = analyze or stmt.analyze, stmt.statement
            if not isinstance(stmt, st.Sql):
                raise SQLSyntaxError("only SQL queries can be explained")
            with self.engine.cursor() as cursor:
                plan = self.engine.explain(
                    self._with_frames(stmt, params, namespace, cursor),
                    params,
                    cursor,
                    self.config,
                    analyze=analyze,
                    paradigm=paradigm,
                    batch_size=batch_size,
                )
            return dataclasses.replace(plan, sql=stmt.text)  # as written (`FROM :df`, not its internal name)

    def submit(
        self, sql: str, params: Mapping[str, Any] | None = None, *, deadline_ms: float | None = None
    ) -> QueryFuture:
        """Queue `sql` for the worker pool; returns a future (status done / late / failed /
        dropped, estimated_ms, actual_ms). The policy is `SET sla_policy = ...`. The DataFrames
        it reads are taken now (by name from the caller's variables, or `FROM :df`), or when it
        runs (`register`)."""
        namespace = FrameNamespace(getattr(inspect.currentframe(), "f_back", None))
        with interrupts_as_errors():
            return self.scheduler.submit(sql, snapshot_params(self._split(sql), params, namespace), deadline_ms)

    @property
    def scheduler(self) -> Scheduler:
        with self._config_lock:
            if self._scheduler is None:
                self._scheduler = Scheduler(self, workers=self.config.workers)
                self._scheduler.policy = self.config.sla_policy
            return self._scheduler

    def set(self, name: str, value: Any) -> str:
        """Apply one setting (`SET name = value`); returns the line the user sees."""
        with self._config_lock:
            config, shown = settings.apply(self.config, name, value)
            settings.apply_to_database(self.con, self.config, config)
            if config.cluster != self.config.cluster:  # the engine owns the connection
                self.engine.use_cluster(config.cluster)
            self.config = config
            if self._scheduler is not None:
                self._scheduler.policy = config.sla_policy
        return shown

    def register(self, name: str, table: Any) -> None:
        """Let queries read the DataFrame or Arrow table `table` as table `name` (polars,
        pandas, pyarrow Table / RecordBatch / Dataset), in this session, on every thread; it
        wins over a variable of that name, and a table of the database wins over it."""
        if not isinstance(name, str) or not name:
            raise ParameterError(f"a registered table needs a name, got {name!r}")
        if not is_table(table):
            raise ParameterError(
                f"cannot register a {type(table).__name__} as table {name!r}: expected a polars or "
                "pandas DataFrame or a pyarrow Table, RecordBatch or Dataset"
            )
        self._tables[name.lower()] = table

    def unregister(self, name: str) -> None:
        """Forget the table `register` named `name` (nothing happens when there is none)."""
        self._tables.pop(name.lower(), None)

    def register_model(self, name: str, obj: Any, *, replace: bool = True, **options: Any) -> None:
        """Register a Python object (torch module, (model, tokenizer) pair) as model `name`."""
        self.catalog.create(name, obj=obj, var_name=name, options=options, replace=replace)

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A plain DuckDB cursor on this session's database, for another thread's own SQL."""
        return self.con.cursor()

    def cost_model(self) -> CostModel:
        """The cost model with this machine's calibration (measured on first use)."""
        with self.engine.cursor() as cursor:
            return self.engine.cost_model(cursor, self.config)

    def calibrate(self) -> dict[str, float]:
        """Measure the cost model's machine constants again (`CALL calibrate()`) and store them."""
        with self.engine.cursor() as cursor:
            return self.engine.recalibrate(cursor)

    # the settings, as read-only attributes
    batch_size = property(lambda self: self.config.batch_size)
    memory_budget = property(lambda self: self.config.memory_budget)
    memory_budget_cuda = property(lambda self: self.config.memory_budget_cuda)
    disabled_rules = property(lambda self: self.config.disabled_rules)
    sla_policy = property(lambda self: self.config.sla_policy)
    workers = property(lambda self: self.config.workers)
    cluster = property(lambda self: self.config.cluster)

    def model(self, name: str) -> Model:
        """Model `name` loaded, in the form queries run it (offloaded when the budget says so)."""
        return real(self.engine.models.base(name, self.config))

    def close(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        self.engine.close()
        self.cache.close()
        self.catalog.close()
        self.con.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<workbench.Session database={self.database!r} models={sorted(self.catalog.names)}>"

    # -- statements -------------------------------------------------------------------
    def _split(self, text: str) -> list[st.Statement]:
        return st.split(text, frozenset(self.procedures), settings.SETTINGS)

    def _run(
        self,
        stmt: st.Statement,
        params: Mapping[str, Any] | None,
        namespace: Mapping[str, Any],
        paradigm: str | None,
        batch_size: int | None,
    ) -> Result:
        start = time.perf_counter()
        if isinstance(stmt, st.Sql):
            with self.engine.cursor() as cursor:
                text, stmt = stmt.text, self._with_frames(stmt, params, namespace, cursor)
                defined = self.engine.define(stmt, params, cursor)
                if defined is not None:
                    return message(defined, text, start)
                plan, values = self.engine.plan(
                    stmt, params, cursor, self.config, paradigm=paradigm, batch_size=batch_size
                )
                done = self.engine.run(plan, values, cursor, self.config)
            return Result(
                done.table,
                statement=text,
                elapsed=time.perf_counter() - start,
                stats=[s.as_dict() for s in done.stats],
            )
        if isinstance(stmt, st.Explain):
            if not isinstance(stmt.statement, st.Sql):
                raise SQLSyntaxError("EXPLAIN works on SQL queries, not on model statements")
            with self.engine.cursor() as cursor:
                plan = self.engine.explain(
                    self._with_frames(stmt.statement, params, namespace, cursor),
                    params,
                    cursor,
                    self.config,
                    analyze=stmt.analyze,
                    paradigm=paradigm,
                    batch_size=batch_size,
                )
            plan = dataclasses.replace(plan, sql=stmt.statement.text)
            return Result(
                pa.table({"plan": plan.text().splitlines()}),
                statement=stmt.text,
                elapsed=time.perf_counter() - start,
                plan=plan,
            )
        if isinstance(stmt, st.Call):
            return self.procedures[stmt.procedure.lower()](*stmt.args)
        if isinstance(stmt, st.Setting):
            return message(self.set(stmt.name, stmt.value), stmt.text, start)
        return run_model_statement(self.catalog, stmt, params, namespace)

    def _with_frames(
        self, stmt: st.Sql, params: Mapping[str, Any] | None, namespace: Mapping[str, Any], cursor: Cursor
    ) -> st.Sql:
        """`stmt` as it runs, with the DataFrames it reads registered on its cursor."""
        stmt, frames = frames_of(stmt, params, namespace, dict(self._tables))
        cursor.register_frames(frames)
        return stmt


def connect(database: str = ":memory:", **options: Any) -> Session:
    """Open a session on an in-memory database (default) or a DuckDB file.

    `cluster='ray://host:port' | 'host:port' | 'auto' | 'local'` connects it to a Ray cluster
    (the optimizer may then run model operators there); the other options are `Session`'s."""
    return Session(database, **options)
