"""The model catalog: which names are models, where they come from, loaded on first use.

Entries live in the DuckDB table `workbench_models`, so a file database remembers its models
across restarts. Built-in models are always present and never stored. Models registered from
a Python object live in this process only; their entry says so, and using one after a
restart asks the user to register it again instead of failing obscurely.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
import threading
from collections.abc import Callable
from typing import Any

import duckdb
import pyarrow as pa

from workbench.cache import drop_table, policy_of
from workbench.db import PerThread, run, transaction
from workbench.errors import CatalogError, ModelLoadError, UnknownModelError, shorten
from workbench.models import hub, loading, offloaded
from workbench.models.base import Model, ModelInfo
from workbench.models.builtin import BUILTINS, local_source
from workbench.storage import source as stored_source
from workbench.storage import stats as storage_stats
from workbench.storage import store

#: the catalog's source of a model built on the packaged minilm (`FROM 'minilm'`)
PACKAGED_MINILM = "builtin:minilm"

TABLE = "workbench_models"
MAX_NAME = 64
_PYTHON = "python:"
_BUILTIN_ALTERABLE = {
    "cache",
    "cache_normalize",
    "cache_threshold",
    "cache_max_mb",
    "batch_size",
    "precision",
    "max_accuracy_loss",
    "low_rank",
    "offload",
    "runtime",
}
#: options that change what a model computes or takes: a model registered from a Python
#: object cannot be rebuilt with new ones (the catalog keeps the adapter, not the recipe)
_SHAPING = {"task", "labels", "input_dim", "output_dim", "max_length", "normalize", "allow_pickle"}
# Loaded path models are shared by every session of the process (keyed by file and options).
_LOADED: dict[tuple[str, float, str], Model] = {}
_LOADING = threading.RLock()


def in_database(options: dict[str, Any]) -> bool:
    """Whether a model's weights live in the database as tensor blocks (`storage = 'database'`)."""
    return options.get("storage") == "database"


def forget_loaded(source: str) -> None:
    """Drop the process's loaded copies of the models read from `source` (every option set):
    the next session that asks loads it again; nothing keeps a dropped model's weights alive."""
    path = os.path.abspath(os.path.expanduser(source))
    with _LOADING:
        for key in [k for k in _LOADED if k[0] == path]:
            del _LOADED[key]
    offloaded.forget(path)


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    """A catalog change holds the catalog's lock (two threads never interleave changes)."""

    @functools.wraps(method)
    def locked(self: Catalog, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return locked


class Catalog:
    """Shared by a session's threads: statements run on the calling thread's own cursor, and
    changes (and loading a model) hold the catalog's lock."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self._cursors = PerThread(con)
        self._lock = threading.RLock()
        run(
            self.con,
            f"CREATE TABLE IF NOT EXISTS {TABLE} (name VARCHAR PRIMARY KEY, source VARCHAR NOT NULL, "
            "task VARCHAR, options JSON, created_at TIMESTAMP DEFAULT current_timestamp)",
        )
        store.ensure(self.con)  # models stored in the database as tensor blocks (workbench/storage)
        self._objects: dict[str, Model] = {}  # models from Python objects, this session only
        #: called with (cursor, name) when a model is dropped: the engine removes what it stored
        #: (its inference cache table always goes: a model made later under the name starts empty)
        self.on_drop: list[Callable[[duckdb.DuckDBPyConnection, str], None]] = [drop_table]
        self._stored: dict[str, ModelInfo] = {}
        self._digests: dict[str, str] = {}  # stored models: one hash over each one's blocks
        self._overrides: dict[str, dict[str, Any]] = {}
        #: the session's telemetry, when it sets one: hub downloads report `download` events there
        self.telemetry: Any = None
        self.refresh()

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        return self._cursors.get()

    def close(self) -> None:
        self._cursors.close()

    # -- lookup -------------------------------------------------------------------------
    def refresh(self) -> None:
        rows = run(self.con, f"SELECT name, source, task, options FROM {TABLE}")
        digests = store.digests(self.con)
        infos = [ModelInfo(r[0], r[1], r[2] or "", json.loads(r[3]) if r[3] else {}) for r in rows]
        # rows for built-in names only hold option overrides (ALTER MODEL minilm SET ...)
        with self._lock:  # both maps change together: a reader sees the old or the new pair
            self._overrides = {i.name: i.options for i in infos if i.name in BUILTINS}
            self._stored = {i.name: i for i in infos if i.name not in BUILTINS}
            self._digests = digests

    @property
    def names(self) -> set[str]:
        return set(BUILTINS) | set(self._stored)

    def __contains__(self, name: str) -> bool:
        return name.lower() in BUILTINS or name.lower() in self._stored

    def info(self, name: str) -> ModelInfo:
        key = name.lower()
        if key in BUILTINS:
            base = BUILTINS[key][0]
            overrides = self._overrides.get(key)
            return ModelInfo(base.name, base.source, base.task, {**base.options, **overrides}) if overrides else base
        if key in self._stored:
            return self._stored[key]
        raise UnknownModelError(f"unknown model '{name}'{self._hint()}")

    def get(self, name: str) -> Model:
        """The loaded model for `name`, loading it on first use."""
        key = name.lower()
        if key in BUILTINS:
            return BUILTINS[key][1]()
        info = self.info(name)
        if key in self._objects:
            return self._objects[key]
        if info.source.startswith(_PYTHON):
            raise ModelLoadError(
                f"model '{name}' was registered from the Python variable "
                f"'{info.source[len(_PYTHON) :]}' in an earlier session; register it again with "
                f"CREATE OR REPLACE MODEL {name} FROM PYTHON {info.source[len(_PYTHON) :]}"
            )
        if in_database(info.options):  # from its blocks: the database file carries the model
            digest = self._digests.get(key) or store.digest(self.con, key)
            cache_key = ("database:" + digest, 0.0, json.dumps(info.options, sort_keys=True))
            with _LOADING:
                if cache_key not in _LOADED:
                    _LOADED[cache_key] = self.from_blocks(key, info.options)
                return _LOADED[cache_key]
        path = self._local(name, info.source, info.options)
        mtime = os.path.getmtime(path) if os.path.exists(path) else 0.0
        cache_key = (os.path.abspath(path), mtime, json.dumps(info.options, sort_keys=True))
        with _LOADING:  # one load per file, whichever thread asks first
            if cache_key not in _LOADED:
                _LOADED[cache_key] = loading.from_path(name, path, info.options)
            return _LOADED[cache_key]

    # -- changes ------------------------------------------------------------------------
    @_locked
    def create(
        self,
        name: str,
        *,
        path: str | None = None,
        obj: Any = None,
        var_name: str | None = None,
        options: dict[str, Any] | None = None,
        replace: bool = False,
    ) -> Model | None:
        """Register a model; returns it loaded (None for one that may stream from disk)."""
        key = self.check_name(name, replace)
        options = loading.check_options(name, dict(options or {}))
        packaged = path is not None and local_source(path) != path  # FROM 'minilm'
        path = local_source(path) if path is not None else None
        ref = hub.parse(name, path, options.get("revision")) if path is not None else None
        if ref is not None:  # a hub model: its cached snapshot, and the commit the name resolved to
            snapshot, ref = hub.fetch(
                name, ref, allow_pickle=bool(options.get("allow_pickle")), telemetry=self.telemetry
            )
            path = str(snapshot)
        streamed = offloaded.directory_of(path) if path is not None and offloaded.mode_of(options) != "off" else None
        if in_database(options) and (path is None or streamed is not None):
            raise CatalogError(
                f"model '{name}': storage = 'database' takes a model FROM a path or hub name, without offload"
            )
        if path is not None and streamed is not None:
            # a model that may not fit memory is checked without loading its weights
            task = offloaded.check(name, streamed, options)
            source, model = os.path.abspath(os.path.expanduser(path)), None
        elif path is not None:
            model = loading.from_path(name, path, options)  # load now: errors show at CREATE
            policy_of(options, model)
            source = os.path.abspath(os.path.expanduser(path))
            mtime = os.path.getmtime(source)
            _LOADED[(source, mtime, json.dumps(options, sort_keys=True))] = model
        else:
            model = loading.from_python(name, obj, options)
            policy_of(options, model)
            source = _PYTHON + (var_name or type(obj).__name__)
            self._objects[key] = model
        if ref is not None:
            source = ref.source  # hf://org/name@<commit>: a reopened database loads this snapshot
        elif packaged:
            source = PACKAGED_MINILM  # not this machine's path: the file database may move
        if model is not None:
            task = model.task
        with transaction(self.con):  # replace the entry atomically, with the model's blocks when it is stored
            run(self.con, f"DELETE FROM {TABLE} WHERE name = ?", [key])
            run(
                self.con,
                f"INSERT INTO {TABLE} (name, source, task, options) VALUES (?, ?, ?, ?)",
                [key, source, task, json.dumps(options, default=str)],
            )
            if in_database(options):
                assert path is not None
                self._import(key, path, model, options)
            else:
                store.drop(self.con, key)  # (a model that replaced a stored one: its blocks go)
        self.refresh()
        if in_database(options):  # the model that serves is the one built from the blocks
            model = self.get(key)
        return model

    def _import(self, key: str, path: str, model: Model | None, options: dict[str, Any]) -> None:
        """Store the model at `path` as blocks (in the caller's transaction). With
        `max_accuracy_loss` and `validate_on`, blocks near stored ones become deltas, kept only
        if the outputs on the validation sample stay within the loss (else stored exactly)."""
        from workbench.models import mlp

        local = os.path.abspath(os.path.expanduser(path))
        is_mlp = local.endswith(".safetensors") and mlp.is_mlp_file(local)
        if not is_mlp and model is not None and model.task not in loading.STORED_TASKS:
            raise ModelLoadError(
                f"model '{key}': storage = 'database' serves tasks {', '.join(loading.STORED_TASKS)}, "
                f"not {model.task} (keep it in its file)"
            )
        near = "max_accuracy_loss" in options and bool(options.get("validate_on")) and model is not None
        src = stored_source.read(key, local, is_mlp=is_mlp)
        try:
            store.write(self.con, key, src, progress=self.on_import_progress, near_dedup=near)
            if near:
                assert model is not None
                loss = self._measured_loss(key, model, options)
                if loss > float(options["max_accuracy_loss"]):  # too lossy: store it exactly
                    store.write(self.con, key, src, progress=self.on_import_progress)
                    loss = 0.0
                store.set_accuracy_loss(self.con, key, loss)
        finally:
            src.close()

    def _measured_loss(self, key: str, model: Model, options: dict[str, Any]) -> float:
        """1 - the worst row's cosine (embedders) or 1 - label agreement (classifiers) of the
        model built from its blocks against the model from its file, on `validate_on`'s rows."""
        import numpy as np

        try:
            rows = run(self.con, str(options["validate_on"]))
        except duckdb.Error as exc:
            raise CatalogError(f"model '{key}': validate_on failed: {shorten(str(exc), 200)}") from None
        if not rows:
            raise CatalogError(f"model '{key}': validate_on returned no rows")
        sample = [r[0] for r in rows]
        batch: Any = sample if model.input_type == "VARCHAR" else np.asarray(sample, np.float32)
        ours = self.from_blocks(key, options).predict(batch)
        theirs = model.predict(batch)
        if ours.equals(theirs):  # (the cosine of equal rows may round below 1)
            return 0.0
        if pa.types.is_struct(theirs.type):  # a classifier: the share of labels that changed
            a, b = ours.field("label").to_pylist(), theirs.field("label").to_pylist()
            return 1.0 - sum(x == y for x, y in zip(a, b)) / len(a)
        x = np.asarray(ours.to_pylist(), np.float64).reshape(len(sample), -1)
        y = np.asarray(theirs.to_pylist(), np.float64).reshape(len(sample), -1)
        cos = (x * y).sum(1) / np.maximum(np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1), 1e-30)
        return float(max(0.0, 1.0 - cos.min()))

    #: called with the bytes of new blocks written so far while a model is imported
    on_import_progress: Callable[[int], None] | None = None

    def from_blocks(self, key: str, options: dict[str, Any]) -> Model:
        """Build a stored model from its blocks: tensors viewed over DuckDB's Arrow output; only
        the small files (config, tokenizer) are written, to a directory deleted after loading."""
        stored = store.load(self.con, key)
        state: dict[str, Any] = {}
        for tensors in stored.tensors.values():
            state.update(tensors)
        if stored.layout == "mlp":
            (meta,) = stored.metadata.values()
            return loading.from_mlp_state(key, meta, state, options)
        with tempfile.TemporaryDirectory(prefix="wb_stored_") as d:
            for rel, data in stored.files.items():
                target = os.path.join(d, rel)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "wb") as f:
                    f.write(data)
            return loading.from_path(key, d, options, state_dict=state)

    @_locked
    def drop(self, name: str, if_exists: bool = False) -> bool:
        key = name.lower()
        if key in BUILTINS:
            raise CatalogError(f"'{name}' is a built-in model and cannot be dropped")
        if key not in self._stored:
            if if_exists:
                return False
            raise UnknownModelError(f"unknown model '{name}'{self._hint()}")
        source = self._stored[key].source
        digest = self._digests.get(key)
        if digest is not None:  # a stored model's loaded copies go with it
            with _LOADING:
                for loaded in [k for k in _LOADED if k[0] == "database:" + digest]:
                    del _LOADED[loaded]
        with transaction(self.con):  # the entry and the blocks only this model held go together
            run(self.con, f"DELETE FROM {TABLE} WHERE name = ?", [key])
            store.drop(self.con, key)
        if not source.startswith(_PYTHON) and not hub.is_hub(source):
            forget_loaded(source)  # a dropped model's weights leave memory with it
        for forget in self.on_drop:  # what the engine keeps of the model (relation-centric weight blocks)
            forget(self.con, key)
        self._objects.pop(key, None)
        self.refresh()
        return True

    @_locked
    def alter(self, name: str, options: dict[str, Any]) -> None:
        """Change options; for a built-in model only serving options (cache, batch_size)."""
        key = name.lower()
        info = self.info(name)
        if key in BUILTINS:
            fixed = sorted(set(options) - _BUILTIN_ALTERABLE)
            if fixed:
                raise CatalogError(
                    f"'{name}' is a built-in model: {fixed[0]} cannot be changed "
                    f"(can: {', '.join(sorted(_BUILTIN_ALTERABLE))})"
                )
            merged = loading.check_options(name, {**self._overrides.get(key, {}), **options})
            policy_of(merged, self.get(name))
            with transaction(self.con):
                run(self.con, f"DELETE FROM {TABLE} WHERE name = ?", [key])
                run(
                    self.con,
                    f"INSERT INTO {TABLE} (name, source, task, options) VALUES (?, 'builtin', ?, ?)",
                    [key, info.task, json.dumps(merged, default=str)],
                )
            self.refresh()
            return
        merged = loading.check_options(name, {**info.options, **options})
        if hub.is_hub(info.source) and "revision" in options:
            raise CatalogError(
                f"model '{name}' comes from {info.source}: load another revision with CREATE OR REPLACE MODEL"
            )
        local = info.source if info.source.startswith(_PYTHON) else self._local(name, info.source, merged)
        streamed = offloaded.mode_of(merged) != "off" and offloaded.directory_of(local) is not None
        shaping = sorted(set(options) & _SHAPING)
        model = self._objects.get(key)
        if info.source.startswith(_PYTHON) and shaping:
            raise CatalogError(
                f"model '{name}' was registered from a Python object: its {shaping[0]} cannot be altered; "
                f"register it again (CREATE OR REPLACE MODEL {name} FROM PYTHON ... WITH (...))"
            )
        if not info.source.startswith(_PYTHON) and shaping and not streamed:
            # load with the new options now, so a wrong one fails here rather than in a later query
            source = local
            loaded = loading.from_path(name, source, merged)
            mtime = os.path.getmtime(source) if os.path.exists(source) else 0.0
            _LOADED[(os.path.abspath(source), mtime, json.dumps(merged, sort_keys=True))] = loaded
        if (model is not None or not info.source.startswith(_PYTHON)) and not streamed:
            policy_of(merged, self.get(name) if model is None else model)  # (a streamed model is not loaded whole)
        if model is not None and "allow_inf" in options:  # (on a copy when the object is the user's adapter)
            model = self._objects[key] = loading.from_python(name, model, {"allow_inf": merged["allow_inf"]})
        moved = "storage" in options and in_database(merged) != store.is_stored(self.con, key)
        if moved and (info.source.startswith(_PYTHON) or streamed):
            raise CatalogError(f"model '{name}': storage = 'database' takes a model FROM a path, without offload")
        if moved and not in_database(merged) and not os.path.exists(local):
            raise CatalogError(f"model '{name}': its file {local} is gone; it can only stay in the database")
        with transaction(self.con):  # the options and the model's blocks change together
            run(self.con, f"UPDATE {TABLE} SET options = ? WHERE name = ?", [json.dumps(merged, default=str), key])
            if moved and in_database(merged):
                self._import(key, local, self.get(name), merged)
            elif moved:
                store.drop(self.con, key)
        if model is not None and "batch_size" in options:
            model.batch_size = options["batch_size"]
        self.refresh()

    def batch_size(self, name: str) -> int | None:
        """A batch size the user fixed in the catalog (WITH / ALTER MODEL), if any."""
        value = self.info(name).options.get("batch_size")
        return int(value) if value else None

    # -- views --------------------------------------------------------------------------
    def show(self) -> pa.Table:
        rows = [BUILTINS[n][0] for n in sorted(BUILTINS)] + [self._stored[n] for n in sorted(self._stored)]
        return pa.table(
            {
                "name": [r.name for r in rows],
                "task": [r.task for r in rows],
                "source": [r.source for r in rows],
                "options": [json.dumps(r.options, default=str) for r in rows],
            }
        )

    def describe(self, name: str) -> pa.Table:
        info = self.info(name)
        facts: dict[str, Any] = {"name": info.name, "source": info.source}
        try:
            facts.update(self.get(name).describe())
        except ModelLoadError as exc:
            facts["status"] = str(exc)
        facts.update({f"option.{k}": v for k, v in info.options.items()})
        if in_database(info.options):  # what its blocks take, and with whom it shares them
            for row in storage_stats.table(self.con).to_pylist():
                if row["model"] == name.lower():
                    facts.update({f"storage.{k}": v for k, v in row.items() if k != "model"})
        return pa.table({"property": list(facts), "value": [str(v) for v in facts.values()]})

    def file_of(self, name: str) -> str | None:
        """The local file or directory a stored model loads from (None: built in, or
        registered from Python): what another process (a cluster's actor) loads it from."""
        key = name.lower()
        if key in BUILTINS or key in self._objects:
            return None
        info = self.info(name)
        return None if info.source.startswith(_PYTHON) else self._local(name, info.source, info.options)

    # -- helpers ------------------------------------------------------------------------
    def _local(self, name: str, source: str, options: dict[str, Any]) -> str:
        """The path a stored source loads from: a hub source's snapshot (from the cache, or
        downloaded again when the cache lost it); any other source as it is."""
        if source == PACKAGED_MINILM:
            return local_source("minilm")
        if not hub.is_hub(source):
            return source
        ref = hub.parse(name, source)
        assert ref is not None
        allow_pickle = bool(options.get("allow_pickle"))
        return str(hub.fetch(name, ref, allow_pickle=allow_pickle, telemetry=self.telemetry)[0])

    def check_name(self, name: str, replace: bool) -> str:
        key = name.lower()
        if not key.isidentifier() or len(key) > MAX_NAME:
            raise CatalogError(
                f"'{shorten(name, 80)}' is not a valid model name (letters, digits and _, at most {MAX_NAME})"
            )
        if key in BUILTINS:
            raise CatalogError(f"'{name}' is a built-in model; choose another name")
        if key in self._stored and not replace:
            raise CatalogError(f"model '{name}' already exists (use CREATE OR REPLACE MODEL)")
        clash = run(self.con, "SELECT 1 FROM duckdb_functions() WHERE lower(function_name) = ? LIMIT 1", [key])
        if clash:
            raise CatalogError(f"'{name}' is already a DuckDB function; choose another model name")
        return key

    def _hint(self) -> str:
        names = sorted(self.names)
        more = f", … {len(names) - 12} more" if len(names) > 12 else ""
        return f" (models: {', '.join(names[:12])}{more})"
