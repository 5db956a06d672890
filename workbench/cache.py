"""The inference cache: model outputs stored in DuckDB, keyed by (fingerprint, input hash).

One table per model, `workbench_cache_<model>`:

    fp VARCHAR, h UHUGEINT, k <input type>, v <output type>, e FLOAT[],
    bytes INTEGER, last_used TIMESTAMP, PRIMARY KEY (fp, h)

`fp` is the model fingerprint (weights, config, tokenizer, preprocessing, engine format),
so a changed model never reads an old entry. `h` is md5 of the policy tag and the (possibly
normalised) input, computed by DuckDB. Lookups are one set-based join of the operator's
distinct inputs against the table; misses are written back in one transaction, and entries
are evicted by last use when the model's table grows past its size bound. With a file
database the cache survives restarts.

Exact and normalized lookups stay inside DuckDB (`split_in_db`): one statement joins the
operator's inputs with the cache table into a temporary table of (input, output) on the
statement's own cursor, which the final SQL then reads; only the misses' inputs come to
Python, and only the misses' outputs go back. A warm query moves no output through Python.
When every input is cached, the statement reads the cache table itself (no copy at all);
while such a statement runs, evictions in this process wait for the next write (`reading`),
so no entry it found can vanish under it. Hits refresh their `last_used` at most once per
`REFRESH_AFTER` (eviction is least recently used at that granularity), so a warm query
writes nothing.

Policies (`cache` option of a model):
    off         never read or write
    exact       the same input (default for deterministic models)
    normalized  the same input after trim / case folding / whitespace collapsing
                (`cache_normalize = 'trim,case,whitespace'`, any subset)
    semantic    an exact hit, else the stored input whose embedding (minilm for text, the
                input vector itself for arrays) is nearest, if its cosine similarity is at
                least `cache_threshold` (default 0.95): faster, approximate, opt-in.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa

from workbench.db import PerThread, run, transaction
from workbench.errors import CacheError, WorkbenchError

if TYPE_CHECKING:  # the cache stores any model's outputs; models validate their cache options here
    from workbench.models.base import Model

POLICIES = ("off", "exact", "normalized", "semantic")
NORMALIZERS = {"trim": "trim({})", "whitespace": "regexp_replace({}, '\\s+', ' ', 'g')", "case": "lower({})"}
DEFAULT_MAX_MB = 1024
DEFAULT_THRESHOLD = 0.95
REFRESH_AFTER = "10 minutes"  # a hit older than this refreshes its last use
_views = itertools.count(1)
_readers = 0  # statements of this process reading a cache table directly right now
_readers_lock = threading.Lock()


def reading() -> Callable[[], None]:
    """Count a statement that reads a cache table directly until the returned function is
    called: meanwhile no eviction runs (a write skips it; the next write catches up), so
    the entries it found stay. Within one process, the only one that can write the file."""
    global _readers
    with _readers_lock:
        _readers += 1
    done = threading.Event()

    def release() -> None:
        global _readers
        if done.is_set():
            return
        done.set()
        with _readers_lock:
            _readers -= 1

    return release


def _eviction_allowed() -> bool:
    with _readers_lock:
        return _readers == 0


@dataclass(frozen=True)
class Policy:
    kind: str = "exact"
    normalize: tuple[str, ...] = ("trim", "whitespace", "case")
    threshold: float = DEFAULT_THRESHOLD
    max_bytes: int = DEFAULT_MAX_MB * 2**20

    @property
    def tag(self) -> str:
        """Part of every key hash: entries written under one policy never answer another."""
        if self.kind == "normalized":
            return "normalized:" + ",".join(self.normalize) + "|"
        return "exact|"

    def describe(self) -> str:
        if self.kind == "semantic":
            return f"semantic (cosine >= {self.threshold:g})"
        if self.kind == "normalized":
            return f"normalized ({', '.join(self.normalize)})"
        return self.kind


def policy_of(options: dict[str, Any], model: Model) -> Policy:
    kind = str(options.get("cache", "exact" if model.deterministic else "off")).lower()
    if kind not in POLICIES:
        raise CacheError(f"cache must be one of {', '.join(POLICIES)}, not {kind!r}")
    if kind != "off" and not model.deterministic:
        kind = "off"  # a sampling model's outputs are never reused
    if kind == "normalized" and model.input_kind != "text":
        raise CacheError("cache = 'normalized' applies to text models only")
    if kind == "semantic" and model.input_kind not in ("text", "tensor"):
        # nearest-input reuse needs inputs in one vector space: a text's embedding or the array itself
        raise CacheError("cache = 'semantic' applies to text and array inputs only")
    steps = options.get("cache_normalize", "trim,whitespace,case")
    normalize = tuple(s.strip() for s in str(steps).split(",") if s.strip())
    unknown = [s for s in normalize if s not in NORMALIZERS]
    if unknown:
        raise CacheError(f"cache_normalize: unknown step {unknown[0]!r} (steps: trim, whitespace, case)")
    threshold = float(options.get("cache_threshold", DEFAULT_THRESHOLD))
    if not -1 <= threshold <= 1:
        raise CacheError(f"cache_threshold must be a cosine similarity in [-1, 1], not {threshold}")
    max_mb = float(options.get("cache_max_mb", DEFAULT_MAX_MB))
    if max_mb < 0:
        raise CacheError(f"cache_max_mb must be >= 0, not {max_mb}")
    return Policy(kind, normalize, threshold, int(max_mb * 2**20))


@dataclass
class Lookup:
    """Distinct inputs split into hits (with their outputs) and misses."""

    hit_index: np.ndarray  # positions of hits among the inputs
    hit_values: pa.Array
    miss_index: np.ndarray
    semantic_hits: int = 0
    miss_vectors: np.ndarray | None = None  # semantic policy: embeddings of the misses


@dataclass
class InDatabase:
    """Inputs split inside DuckDB, and how the statement reads their outputs: `body`, the
    lookup macro's body over its argument `x`, reads the temporary table `table` (key,
    value, hit per distinct input: the misses' rows wait for their outputs) or, when every
    input was cached, the cache table itself (`table` is then "")."""

    table: str
    body: str
    rows: int
    hits: int
    misses: pa.Array  # the inputs to compute
    stale: pa.Array  # hits whose last use should be refreshed
    release: Callable[[], None] = lambda: None  # call once the statement reading `body` ended


def table_name(model_name: str) -> str:
    return f"workbench_cache_{model_name.lower()}"


def drop_table(con: duckdb.DuckDBPyConnection, model_name: str) -> None:
    """Forget a dropped model's outputs: a new model of the same name starts with an empty
    cache, and `cache_stats()` no longer lists it (the catalog calls this on DROP MODEL)."""
    run(con, f'DROP TABLE IF EXISTS "{table_name(model_name)}"')


class InferenceCache:
    """Cache tables of one database, read and written on the calling thread's own cursor."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self._cursors = PerThread(con)  # every thread reads and writes on its own cursor
        # tables seen to exist: a warm lookup need not ask the catalog again (a table dropped
        # meanwhile, by clear() or another session, is found missing and asked about anew)
        self._tables: set[str] = set()

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        return self._cursors.get()

    def query(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        return self.con.sql(sql, params=params or None).to_arrow_table()

    def close(self) -> None:
        self._cursors.close()

    def ensure_table(self, model_name: str, model: Model) -> str:
        table = table_name(model_name)
        key_type = model.input_type
        rows = run(
            self.con,
            "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? AND schema_name = 'main'",
            [table],
        )
        types = dict(rows)
        if types and (
            types.get("v") != self._canonical(model.output_type) or types.get("k") != self._canonical(key_type)
        ):
            run(self.con, f'DROP TABLE "{table}"')  # the model's shape changed: old entries are stale
            types = {}
        if not types:
            for attempt in range(3):  # another session may be creating the same table
                try:
                    run(
                        self.con,
                        f'CREATE TABLE IF NOT EXISTS "{table}" (fp VARCHAR NOT NULL, '
                        f"h UHUGEINT NOT NULL, k {key_type}, v {model.output_type}, e FLOAT[], "
                        "bytes INTEGER, last_used TIMESTAMP, PRIMARY KEY (fp, h))",
                    )
                    break
                except duckdb.TransactionException:
                    if attempt == 2:
                        raise
                    time.sleep(0.05)
        self._tables.add(table)
        return table

    def _exists(self, table: str, *, ask: bool = False) -> bool:
        if table in self._tables and not ask:
            return True
        found = bool(
            run(self.con, "SELECT 1 FROM duckdb_tables() WHERE table_name = ? AND schema_name = 'main'", [table])
        )
        if found:
            self._tables.add(table)
        else:
            self._tables.discard(table)
        return found

    def _canonical(self, type_sql: str) -> str:
        """DuckDB's own spelling of a type, as duckdb_columns() reports it."""
        return run(self.con, f"SELECT typeof(NULL::{type_sql})")[0][0]

    def _key_sql(self, column: str, model: Model, policy: Policy) -> str:
        expr = column
        if model.input_kind == "text":
            if policy.kind == "normalized":
                for step in policy.normalize:
                    expr = NORMALIZERS[step].format(expr)
        else:
            expr = f"CAST({column} AS VARCHAR)"
        return f"md5_number('{policy.tag}' || {expr})"

    # -- lookup ------------------------------------------------------------------------
    def split_in_db(
        self,
        fetch: Callable[[str, dict[str, Any] | None], pa.Table],
        model_name: str,
        model: Model,
        policy: Policy,
        fp: str,
        inputs_sql: str,
        params: dict[str, Any],
        out: str,
        columns: tuple[str, str],
        *,
        direct: bool = True,
    ) -> InDatabase:
        """Split the distinct non-NULL inputs of `inputs_sql` into hits and misses with one
        join on the cursor `fetch` runs on, and say how the statement reads the outputs:
        when every input is cached (and `direct`), straight from the cache table; else from
        the temporary table `out` (`columns` = key, value, plus `hit`), which holds the hits'
        outputs and waits for the misses'. Exact and normalized policies only (a semantic hit
        needs the inputs' embeddings, computed in Python)."""
        key, value = columns
        table = table_name(model_name)
        distinct = f"SELECT DISTINCT k FROM ({inputs_sql}) WHERE k IS NOT NULL"
        args = {**params, "__wb_fp": fp}
        join = (
            f'FROM ({distinct}) i LEFT JOIN "{table}" c '
            f"ON c.fp = $__wb_fp AND c.h = {self._key_sql('i.k', model, policy)}"
        )
        if not self._exists(table):
            return self._all_missing(fetch, model, out, columns, distinct, params)
        release = reading()  # from the moment hits are counted, until the statement has read them
        try:
            counts = fetch(
                f"SELECT count(*) AS n, count(c.h) AS hits, list(i.k) FILTER (WHERE c.h IS NULL) AS misses, "
                f"list(i.k) FILTER (WHERE c.last_used < now() - INTERVAL '{REFRESH_AFTER}') AS stale {join}",
                args,
            )
        except WorkbenchError:
            release()
            if self._exists(table, ask=True):
                raise  # the statement itself failed
            return self._all_missing(fetch, model, out, columns, distinct, params)  # dropped meanwhile
        n, hits = counts.column("n")[0].as_py(), counts.column("hits")[0].as_py()
        misses, stale = _listed(counts, "misses"), _listed(counts, "stale")
        if not len(misses) and direct and re.fullmatch(r"\w+", fp):
            # Every input is cached: the statement reads the cache table itself (the engine's
            # own fingerprint, checked to be a plain word, stands in the macro: a macro
            # takes no bound parameter). An exact key is the stored input itself.
            # Its columns are renamed to the lookup's own names: the argument `x` (the user's
            # expression) must not bind to a cache column such as `k` or `v`.
            # An exact text key is the stored input itself (comparing strings beats hashing
            # them again); any other key by its hash (comparing FLOAT[64] lists is dearer).
            exact_text = policy.kind == "exact" and model.input_kind == "text"
            stored, match = ("k", "x") if exact_text else ("h", self._key_sql("x", model, policy))
            body = (
                f'(SELECT {value} FROM (SELECT {stored} AS {key}, v AS {value} FROM "{table}" '
                f"WHERE fp = '{fp}') WHERE {key} = {match})"
            )
            return InDatabase("", body, int(n), int(hits), misses, stale, release)
        release()  # the temporary table below is the statement's own copy
        fetch(
            f"CREATE OR REPLACE TEMP TABLE {out} AS SELECT i.k AS {key}, CAST(c.v AS {model.output_type}) AS {value}, "
            f"c.h IS NOT NULL AS hit {join}",
            args,
        )
        # the misses as this table has them: another writer may have stored some since the count
        split = fetch(
            f"SELECT count(*) FILTER (WHERE hit) AS hits, list({key}) FILTER (WHERE NOT hit) AS misses FROM {out}", None
        )
        hits, misses = split.column("hits")[0].as_py(), _listed(split, "misses")
        return InDatabase(out, _lookup_body(out, columns), int(n), int(hits), misses, stale)

    def _all_missing(
        self,
        fetch: Callable[[str, dict[str, Any] | None], pa.Table],
        model: Model,
        out: str,
        columns: tuple[str, str],
        distinct: str,
        params: dict[str, Any],
    ) -> InDatabase:
        """No cache table: every input is a miss."""
        fetch(
            f"CREATE OR REPLACE TEMP TABLE {out} AS SELECT k AS {columns[0]}, "
            f"NULL::{model.output_type} AS {columns[1]}, false AS hit FROM ({distinct})",
            params,
        )
        misses = fetch(f"SELECT {columns[0]} FROM {out}", None).column(0).combine_chunks()
        return InDatabase(out, _lookup_body(out, columns), len(misses), 0, misses, misses.slice(0, 0))

    def lookup(
        self,
        model_name: str,
        model: Model,
        policy: Policy,
        fp: str,
        keys: pa.Array,
        embed: Callable[[Any], np.ndarray] | None = None,
    ) -> Lookup:
        n = len(keys)
        if n == 0:
            return Lookup(np.array([], np.int64), pa.array([], type=model.arrow_output_type()), np.arange(0))
        table = self.ensure_table(model_name, model)
        view = f"__wb_cache_in_{next(_views)}"
        self.con.register(view, pa.table({"i": pa.array(np.arange(n)), "k": keys}))
        try:
            found = self.query(
                f'SELECT i.i, c.v FROM {view} i JOIN "{table}" c '
                f"ON c.fp = $fp AND c.h = {self._key_sql('i.k', model, policy)}",
                {"fp": fp},
            )
        finally:
            self.con.unregister(view)
        hit_index = found.column("i").to_numpy().astype(np.int64)
        values = found.column("v").combine_chunks() if found.num_rows else pa.array([], model.arrow_output_type())
        is_hit = np.zeros(n, bool)
        is_hit[hit_index] = True
        miss_index = np.flatnonzero(~is_hit)
        result = Lookup(hit_index, values, miss_index)
        if policy.kind == "semantic" and len(miss_index) and embed is not None:
            result = self._nearest(table, model, policy, fp, keys, result, embed)
        return result

    def _nearest(
        self,
        table: str,
        model: Model,
        policy: Policy,
        fp: str,
        keys: pa.Array,
        found: Lookup,
        embed: Callable[[Any], np.ndarray],
    ) -> Lookup:
        vectors = embed(keys.take(pa.array(found.miss_index)))
        view = f"__wb_cache_near_{next(_views)}"
        self.con.register(
            view,
            pa.table(
                {
                    "i": pa.array(found.miss_index),
                    "e": pa.array(list(np.asarray(vectors, np.float32)), type=pa.list_(pa.float32())),
                }
            ),
        )
        try:
            near = self.query(
                f"SELECT m.i, arg_max(c.v, list_cosine_similarity(c.e, m.e)) AS v, "
                f'max(list_cosine_similarity(c.e, m.e)) AS sim FROM {view} m, "{table}" c '
                f"WHERE c.fp = $fp AND c.e IS NOT NULL GROUP BY m.i HAVING sim >= $t",
                {"fp": fp, "t": policy.threshold},
            )
        finally:
            self.con.unregister(view)
        if not near.num_rows:
            return Lookup(found.hit_index, found.hit_values, found.miss_index, miss_vectors=vectors)
        extra = near.column("i").to_numpy().astype(np.int64)
        hit_index = np.concatenate([found.hit_index, extra])
        values = pa.concat_arrays([found.hit_values, near.column("v").combine_chunks().cast(found.hit_values.type)])
        keep = ~np.isin(found.miss_index, extra)
        return Lookup(
            hit_index, values, found.miss_index[keep], semantic_hits=len(extra), miss_vectors=np.asarray(vectors)[keep]
        )

    # -- writes ------------------------------------------------------------------------
    def store(
        self,
        model_name: str,
        model: Model,
        policy: Policy,
        fp: str,
        keys: pa.Array,
        values: pa.Array,
        vectors: np.ndarray | None = None,
        hit_keys: pa.Array | None = None,
    ) -> None:
        """Write misses back and refresh the last use of hits, in one transaction."""
        table = self.ensure_table(model_name, model)
        hit_keys = hit_keys if hit_keys is not None else keys.slice(0, 0)
        if not len(keys) and not len(hit_keys):
            return
        columns = {"k": keys, "v": values, "bytes": pa.array(np.full(len(keys), _row_bytes(keys, values), np.int32))}
        if vectors is not None:
            columns["e"] = pa.array(list(np.asarray(vectors, np.float32)), type=pa.list_(pa.float32()))
        else:
            columns["e"] = pa.nulls(len(keys), pa.list_(pa.float32()))
        view = f"__wb_cache_new_{next(_views)}"
        self.con.register(view, pa.table(columns))
        touched = f"__wb_cache_hit_{next(_views)}"
        self.con.register(touched, pa.table({"k": hit_keys}))
        try:
            for attempt in (1, 2):  # a concurrent writer of the same keys: retry once
                try:
                    with transaction(self.con):
                        run(
                            self.con,
                            f'INSERT INTO "{table}" SELECT DISTINCT ON (h) $fp AS fp, '
                            f"{self._key_sql('n.k', model, policy)} AS h, n.k, n.v, n.e, n.bytes, "
                            f"now() AS last_used FROM {view} n ON CONFLICT DO NOTHING",
                            {"fp": fp},
                        )
                        if len(hit_keys):
                            run(
                                self.con,
                                f'UPDATE "{table}" SET last_used = now() WHERE fp = $fp AND h IN '
                                f"(SELECT {self._key_sql('t.k', model, policy)} FROM {touched} t)",
                                {"fp": fp},
                            )
                        if _eviction_allowed():
                            self._evict(table, policy.max_bytes)
                    break
                except (duckdb.TransactionException, duckdb.ConstraintException):
                    # Another session wrote the same keys at the same moment. Its entries are
                    # as good as ours, so after a second conflict skip this write-back; the
                    # query's answer does not depend on it.
                    if attempt == 2:
                        break
        finally:
            self.con.unregister(view)
            self.con.unregister(touched)

    def _evict(self, table: str, max_bytes: int) -> None:
        run(
            self.con,
            f'DELETE FROM "{table}" WHERE rowid IN (SELECT rowid FROM (SELECT rowid, sum(bytes) OVER '
            f'(ORDER BY last_used DESC, rowid DESC) AS running FROM "{table}") WHERE running > ?)',
            [max_bytes],
        )

    # -- views -------------------------------------------------------------------------
    def expected_hit_ratio(
        self,
        model_name: str,
        model: Model,
        policy: Policy,
        fp: str,
        input_sql: str,
        params: dict[str, Any],
        con: duckdb.DuckDBPyConnection | None = None,
    ) -> float | None:
        """Share of the inputs cached now; `con`: the statement's own connection (which sees
        what it registered, such as the DataFrames it reads)."""
        table = table_name(model_name)
        if policy.kind == "off":
            return None
        if not self._exists(table):
            return 0.0
        try:
            t = (
                (con or self.con)
                .sql(
                    f'SELECT count(*) AS n, count(c.h) AS hits FROM ({input_sql}) i LEFT JOIN "{table}" c '
                    f"ON c.fp = $__fp AND c.h = {self._key_sql('i.k', model, policy)} WHERE i.k IS NOT NULL",
                    params={**params, "__fp": fp},
                )
                .to_arrow_table()
            )
        except duckdb.CatalogException:
            if self._exists(table, ask=True):
                raise
            return 0.0  # dropped meanwhile
        n, hits = t.column("n")[0].as_py(), t.column("hits")[0].as_py()
        return hits / n if n else None

    def counts(
        self,
        model_name: str,
        model: Model,
        policy: Policy,
        fp: str,
        query: str,
        params: dict[str, Any],
        text: bool,
        con: duckdb.DuckDBPyConnection | None = None,
    ) -> tuple[int, int, float, float]:
        """Planning's facts in one pass: (rows, distinct rows, mean text length, share of the
        distinct inputs cached now) of the single column `k` of `query`."""
        table = table_name(model_name)
        length = "avg(length(CAST(i.k AS VARCHAR)))" if text else "0"
        cached = self._exists(table)
        hits = "count(DISTINCT hash(i.k)) FILTER (WHERE c.h IS NOT NULL)" if cached else "0"
        join = (
            f' LEFT JOIN "{table}" c ON c.fp = $__fp AND c.h = {self._key_sql("i.k", model, policy)}' if cached else ""
        )
        args = {**params, "__fp": fp} if cached else params
        row = (
            (con or self.con)
            .sql(
                f"SELECT count(i.k), count(DISTINCT hash(i.k)), {length}, {hits} FROM ({query}) i{join}",
                params=args or None,
            )
            .fetchall()[0]
        )
        total, distinct, chars, found = (x or 0 for x in row)
        return int(total), int(distinct), float(chars), found / distinct if distinct else 0.0

    def stats(self) -> pa.Table:
        tables = [
            r[0]
            for r in run(
                self.con,
                "SELECT table_name FROM duckdb_tables() WHERE table_name LIKE "
                "'workbench_cache_%' AND schema_name = 'main' ORDER BY 1",
            )
        ]
        rows = []
        for t in tables:
            n, size, fps, last = run(
                self.con, f'SELECT count(*), coalesce(sum(bytes), 0), count(DISTINCT fp), max(last_used) FROM "{t}"'
            )[0]
            rows.append((t[len("workbench_cache_") :], n, size, fps, last))
        return pa.table(
            {
                "model": [r[0] for r in rows],
                "entries": pa.array([r[1] for r in rows], pa.int64()),
                "bytes": pa.array([r[2] for r in rows], pa.int64()),
                "fingerprints": pa.array([r[3] for r in rows], pa.int64()),
                "last_used": pa.array([r[4] for r in rows], pa.timestamp("us")),
            }
        )

    def clear(self, model_name: str | None = None) -> int:
        if model_name is not None and not re.fullmatch(r"\w+", model_name):
            raise CacheError(f"not a model name: {model_name!r}")
        names = (
            [table_name(model_name)]
            if model_name
            else [
                r[0]
                for r in run(
                    self.con,
                    "SELECT table_name FROM duckdb_tables() WHERE table_name LIKE "
                    "'workbench_cache_%' AND schema_name = 'main'",
                )
            ]
        )
        removed = 0
        for t in names:
            if run(self.con, "SELECT 1 FROM duckdb_tables() WHERE table_name = ? AND schema_name = 'main'", [t]):
                removed += run(self.con, f'SELECT count(*) FROM "{t}"')[0][0]
                run(self.con, f'DROP TABLE "{t}"')
            self._tables.discard(t)
        return removed


def _listed(counts: pa.Table, column: str) -> pa.Array:
    """The values of a one-row `list(...) FILTER (...)` column (NULL when none matched)."""
    found = counts.column(column).combine_chunks()
    if found.null_count:
        return pa.array([], found.type.value_type)
    return found.flatten()


def _lookup_body(table: str, columns: tuple[str, str]) -> str:
    key, value = columns
    return f"(SELECT {value} FROM {table} WHERE {key} = x)"


def _row_bytes(keys: pa.Array, values: pa.Array) -> int:
    n = max(len(keys), 1)
    return int((keys.nbytes + values.nbytes) / n) + 48
