"""The engine a `Session` delegates to: plans and runs one SQL statement with model calls
on a cursor of its own, under a given config. Shared by every thread of a session: what it
keeps (the calibration, what runs taught the cost model) is guarded."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import duckdb
import pyarrow as pa

from workbench.cache import InferenceCache, policy_of
from workbench.cluster.actors import Recipe
from workbench.cluster.client import ClusterClient
from workbench.cluster.remote import OnCluster
from workbench.db import PerThread
from workbench.engine import calibration
from workbench.engine.config import Config, effective_batch_size
from workbench.engine.definitions import Definitions
from workbench.engine.io import Cursor
from workbench.engine.models import Models, for_call, profile_of, real, torch_form
from workbench.engine.planner import Catalog, Planner, bind, calls_models, hints_of, with_actuals
from workbench.engine.runner import Run, Runner, named_once, profiled
from workbench.execution import batching, dl_centric, registry, relation_centric
from workbench.models import offloaded
from workbench.models.base import Model
from workbench.models.builtin import BUILTINS
from workbench.models.call_options import CallOptions
from workbench.models.catalog import Catalog as ModelCatalog
from workbench.optimizer.cost import CostModel, Facts, Learned
from workbench.plan.nodes import ModelOperator, Plan
from workbench.plan.profile import ModelProfile, runtime_key
from workbench.plan.relational import RelationalPlan, parse_plan, parse_profile, place
from workbench.plan.stats import OperatorStats
from workbench.sql import statements as st
from workbench.telemetry import Telemetry


class Engine:
    def __init__(
        self, con: duckdb.DuckDBPyConnection, catalog: ModelCatalog, cache: InferenceCache, telemetry: Telemetry
    ):
        self.con = con
        self.catalog = catalog
        self.cache = cache
        self.telemetry = telemetry
        self.models = Models(catalog, telemetry)
        catalog.on_drop.append(relation_centric.drop_weights)  # a dropped model's weight blocks go too
        catalog.on_drop.append(self.models.forget)  # ... and every form of it held in memory
        self.learned = Learned()
        self.definitions = Definitions()
        self._connections = PerThread(con)  # each thread's own, so its TEMP tables live on
        self.writes = threading.RLock()
        self._constants: dict[str, float] | None = None
        self._constants_lock = threading.Lock()
        self.cluster: ClusterClient | None = None  # the Ray cluster of `SET cluster` (None: this machine only)
        self.runner = Runner(
            self.models, telemetry, cache_use=self.cache_use, learn=self.learn, writes=self.writes, remote=self._remote
        )

    def cursor(self) -> Cursor:
        """A cursor over the calling thread's own connection (kept between its calls)."""
        return Cursor(self._connections.get(), lambda: self.catalog.names, shared=True)

    def close(self) -> None:
        self.use_cluster(None)
        self._connections.close()

    # -- the cluster ----------------------------------------------------------------------
    def use_cluster(self, spec: str | None) -> None:
        """Connect to the cluster `spec` names (Ray is imported only now), or let it go (None)."""
        if self.cluster is not None and self.cluster.spec == spec:
            return
        old, self.cluster = self.cluster, None
        if old is not None:
            old.close()
        if spec is not None:  # a Ray driver process of this session's own (workbench/cluster/client.py)
            self.cluster = ClusterClient(spec)

    def _remote(self) -> OnCluster | None:
        return None if self.cluster is None else OnCluster(self.cluster, self._recipe)

    def _recipe(self, name: str, model: Model) -> Recipe:
        """How the cluster's actors get model `name`: a built-in by name, a stored model from
        its file with its options, one registered from Python shipped once as the object."""
        fingerprint = model.fingerprint()
        info = self.catalog.info(name)
        if getattr(model, "memory", "resident") != "resident":  # offloaded here: offloaded on each actor too
            directory = offloaded.directory_of(info.source)
            if directory is not None:
                budget = getattr(model, "resident_bytes", None)
                options = json.dumps(info.options)
                return Recipe(name, fingerprint, options=options, offload_dir=str(directory), budget=budget)
        if name.lower() in BUILTINS:
            return Recipe(name.lower(), fingerprint, builtin=True)
        path = self.catalog.file_of(name)
        if path is not None:
            return Recipe(name, fingerprint, path=path, options=json.dumps(info.options))
        assert self.cluster is not None
        return self.cluster.ship(Recipe(name, fingerprint), real(model))

    # -- the cost model -------------------------------------------------------------------
    def constants(self, cursor: Cursor) -> dict[str, float]:
        """This machine's calibration (stored in the database; measured once if missing)."""
        with self._constants_lock:
            if self._constants is None:
                self._constants = cursor.guarded(lambda: calibration.constants(cursor.con))
            return self._constants

    def recalibrate(self, cursor: Cursor) -> dict[str, float]:
        values = cursor.guarded(lambda: calibration.calibrate(cursor.con))
        with self._constants_lock:
            self._constants = dict(values)
        return values

    def cost_model(self, cursor: Cursor, config: Config) -> CostModel:
        return CostModel(
            self.constants(cursor),
            memory_budget=config.memory_budget,
            learned=self.learned,
            weights_stored=lambda fp: relation_centric.stored(cursor.con, fp),
        )

    def learn(self, op: ModelOperator, model: Model, stats: OperatorStats) -> None:
        """Teach the cost model what this run of the model measured."""
        constants = self._constants
        if constants is None or not stats.computed:
            return  # nothing ran (every input came from the cache): nothing to learn
        model = real(model)
        if not op.options:  # (a call's options are not the model's: its record stays the model's own)
            with self.writes:  # (what a later process plans with is the torch model's record)
                self.models.remember(op.model, torch_form(model), constants, self.catalog.con)
        profile = profile_of(op.model, model, constants)
        if torch_form(model) is not model:  # an ONNX Runtime form learns on its own
            profile = replace(profile, fingerprint=runtime_key(profile.fingerprint, stats.runtime, stats.precision))
        facts = Facts(rows=stats.computed, input_rows=stats.input_rows or stats.computed, avg_chars=op.avg_input_chars)
        CostModel(constants, learned=self.learned).observe(
            profile, stats.computed, stats.seconds, stats.batch_size or profile.max_batch, facts, op.paradigm
        )

    # -- planning -----------------------------------------------------------------------
    def planner(self, cursor: Cursor, config: Config, values: dict[str, Any], batch_size: int | None = None) -> Planner:
        constants = self.constants(cursor)
        profiles: dict[str, ModelProfile] = {}

        def profile(name: str) -> ModelProfile:
            if name not in profiles:
                profiles[name] = self.models.profile(name, config, constants)
            return profiles[name]

        def cache_policy(name: str, options: CallOptions = ()) -> str:
            model = for_call(self.models.base(name, config), options)
            policy = policy_of(self.catalog.info(name).options, model)
            return "off" if policy.kind == "off" else policy.describe()

        catalog = Catalog(
            names=frozenset(self.catalog.names),
            profile=profile,
            batch_size=lambda name: effective_batch_size(
                call=batch_size, model_option=self.catalog.batch_size(name), session=config.batch_size
            ),
            precision=self.models.precision,
            memory=lambda name: self.models.memory(name, config),
            cache_policy=cache_policy,
            unavailable=registry.unavailable,
            cluster=self.cluster.facts if config.cluster is not None and self.cluster is not None else None,
            runtimes=lambda name: self.models.runtime_options(name, config, constants, profile(name)),
        )
        schema = _Schema(cursor, values)
        return Planner(
            catalog, schema, _Counter(self, cursor, config), self.cost_model(cursor, config), cores=os.cpu_count() or 1
        )

    def plan(
        self,
        stmt: st.Sql,
        params: Mapping[str, Any] | None,
        cursor: Cursor,
        config: Config,
        *,
        paradigm: str | None = None,
        batch_size: int | None = None,
    ) -> tuple[Plan, dict[str, Any]]:
        text, values = bind(stmt, params)
        expanded = self.definitions.expand(text, cursor)
        if expanded != text:  # its parameters are those of the text written out
            shown, stmt = stmt.text, st.Sql(expanded, 0, tuple(st.tokenize(expanded)))
            text, values = bind(stmt, params)
            stmt = st.Sql(shown, 0, stmt.tokens)
        if not calls_models(stmt, self.catalog.names):
            return Plan(sql=stmt.text, final_sql=text, params=tuple(values)), values
        planner = self.planner(cursor, config, values, batch_size)
        plan = planner.plan(text, values, hints_of(stmt, paradigm), config.disabled_rules)
        return plan, values

    def define(self, stmt: st.Sql, params: Mapping[str, Any] | None, cursor: Cursor) -> str | None:
        """Run `stmt` if it creates or drops a view, macro or prepared statement the engine
        keeps (one that calls models; any PREPARE); the line the user sees, else None."""
        # a prepared statement keeps its `$1` / `$name` parameters for EXECUTE to bind
        text = stmt.text if stmt.text.lstrip()[:7].upper() == "PREPARE" else bind(stmt, params)[0]
        names = self.catalog.names

        def calls(sql: str) -> bool:
            return calls_models(st.Sql(sql, 0, tuple(st.tokenize(sql))), names)

        with self.writes:
            return self.definitions.define(text, cursor, calls)

    # -- running ------------------------------------------------------------------------
    def run(self, plan: Plan, values: dict[str, Any], cursor: Cursor, config: Config, *, profile: bool = False) -> Run:
        """`profile` (EXPLAIN ANALYZE only): keep DuckDB's profile of the statement."""
        if not plan.operators:
            start = time.perf_counter()
            with profiled(cursor.con, profile) as profiles:
                table = cursor.fetch(plan.final_sql, values)
            return Run(table, [], time.perf_counter() - start, "".join(profiles))
        return self.runner.run(plan, values, cursor, config, profile=profile)

    def explain(
        self,
        stmt: st.Sql,
        params: Mapping[str, Any] | None,
        cursor: Cursor,
        config: Config,
        *,
        analyze: bool = False,
        paradigm: str | None = None,
        batch_size: int | None = None,
    ) -> Plan:
        plan, values = self.plan(stmt, params, cursor, config, paradigm=paradigm, batch_size=batch_size)
        tree: RelationalPlan | None
        if analyze:  # ANALYZE runs the whole statement, profiled by DuckDB
            done = self.run(plan, values, cursor, config, profile=True)
            plan = with_actuals(plan, done.stats, done.table.num_rows, round(done.seconds, 6))
            tree = _profiled_tree(plan, done)
        else:
            tree = duckdb_plan(plan, {n: values[n] for n in plan.params if n in values}, cursor)
        relational = cursor.relational_plan(plan.final_sql, {n: values[n] for n in plan.params if n in values})
        return replace(plan, sql=stmt.text, relational_plan=relational, relational=tree)

    # -- the inference cache --------------------------------------------------------------
    def cache_use(self, name: str, model: Model) -> dl_centric.CacheUse | None:
        policy = policy_of(self.catalog.info(name).options, model)
        if policy.kind == "off":
            return None
        embed = self._semantic_embedder(model) if policy.kind == "semantic" else None
        return dl_centric.CacheUse(self.cache, policy, model.fingerprint(), embed)

    def _semantic_embedder(self, model: Model) -> Any:
        """Vectors for nearest-input reuse: minilm embeddings of text, or the input arrays."""
        if model.input_kind == "text":
            embedder = self.catalog.get("minilm")

            def embed(keys: pa.Array) -> Any:
                vectors = batching.run(embedder, "minilm", keys.to_pylist()).outputs
                return vectors.flatten().to_numpy().reshape(len(keys), -1)

            return embed
        return lambda keys: dl_centric.to_model_inputs("semantic cache", "input vectors", model, keys)


def duckdb_plan(plan: Plan, params: dict[str, Any], cursor: Cursor) -> RelationalPlan | None:
    """DuckDB's plan of the final statement before any model ran (EXPLAIN). Its lookup
    functions do not exist yet, so each becomes, for this one EXPLAIN, a stand-in function of
    the operator's input and output types (named for this execution, removed at once): DuckDB
    then plans the statement as it will run it, the lookups named where their outputs enter.
    (Typed NULLs instead would let DuckDB fold the filters on them away.) None: DuckDB
    cannot explain it."""
    named_plan = named_once(plan)
    con, made = cursor.con, []
    try:
        for op in named_plan.operators:
            if op.input_type and op.output_type:
                con.create_function(op.lookup, _stand_in, [op.input_type], op.output_type, side_effects=True)
                made.append(op.lookup)
        rows = con.execute(f"EXPLAIN (FORMAT JSON) {named_plan.final_sql}", params or None).fetchall()
    except (duckdb.Error, ValueError, TypeError):
        return None
    finally:
        for name in made:
            with contextlib.suppress(duckdb.Error):
                con.remove_function(name)
    root = parse_plan(str(rows[0][1])) if rows else None
    if root is None:
        return None
    return RelationalPlan(place(root, _read_directly(named_plan)), "explain")


def _profiled_tree(plan: Plan, done: Run) -> RelationalPlan | None:
    """DuckDB's profile of the statement EXPLAIN ANALYZE ran, with the model operators."""
    root = parse_profile(done.profile) if done.profile else None
    if root is None:
        return None
    lookups = {i: name for i, name in done.lookups.items() if i in _read_directly(plan)}
    keys = {op.id: op.inputs[0].key for op in plan.operators if op.inputs}
    return RelationalPlan(place(root, lookups, keys), "profile")


def _read_directly(plan: Plan) -> dict[int, str]:
    """The operators the final statement reads (those nested in another's inputs hang under
    that one), by the name of their lookup."""
    consumed = plan.consumed()
    ids = plan.reads or tuple(op.id for op in plan.operators if op.id not in consumed)
    return {op.id: op.lookup for op in plan.operators if op.id in ids}


def _stand_in(x: Any) -> None:  # pragma: no cover - EXPLAIN never runs it
    return None


class _Schema:
    """Column names and types, read through the statement's cursor."""

    def __init__(self, cursor: Cursor, values: dict[str, Any]):
        self.cursor = cursor
        self.values = values

    def columns_of(self, from_item: str) -> set[str] | None:
        return self.cursor.columns_of(from_item)

    def type_of(self, query: str, params: tuple[str, ...]) -> str:
        return self.cursor.type_of(query, {p: self.values.get(p) for p in params})


class _Counter:
    """Input counts and expected cache hits, read through the statement's cursor."""

    def __init__(self, engine: Engine, cursor: Cursor, config: Config):
        self.engine, self.cursor, self.config = engine, cursor, config

    def count(self, query: str, params: dict[str, Any], text: bool) -> tuple[int, int, float]:
        # (several text arguments: the length of all of them, as the STRUCT's text)
        length = ", avg(length(CAST(k AS VARCHAR))) AS c" if text else ", 0 AS c"
        # distinct inputs counted by their 64-bit hashes: a hash table of 8-byte keys instead
        # of the keys themselves (a FLOAT[64] key is 256 bytes) makes this count 3-5x cheaper
        # on wide inputs, and a collision among a million keys has odds of about 1e-8
        counted = self.cursor.fetch(
            f"SELECT count(k) AS n, count(DISTINCT hash(k)) AS d{length} FROM ({query})", params
        )
        total, rows, chars = (counted.column(i)[0].as_py() or 0 for i in range(3))
        return int(total), int(rows), float(chars)

    def count_and_hits(
        self, op: ModelOperator, query: str, params: dict[str, Any], text: bool
    ) -> tuple[int, int, float, float]:
        model = for_call(self.engine.models.base(op.model, self.config), op.options)
        policy = policy_of(self.engine.catalog.info(op.model).options, model)
        return self.cursor.guarded(
            lambda: self.engine.cache.counts(
                op.model, model, policy, model.fingerprint(), query, params, text, self.cursor.con
            )
        )

    def hit_ratio(self, op: ModelOperator, params: dict[str, Any]) -> float:
        model = for_call(self.engine.models.base(op.model, self.config), op.options)
        policy = policy_of(self.engine.catalog.info(op.model).options, model)
        return (
            self.cursor.guarded(
                lambda: self.engine.cache.expected_hit_ratio(
                    op.model, model, policy, model.fingerprint(), op.input_sql, params, self.cursor.con
                )
            )
            or 0.0
        )
