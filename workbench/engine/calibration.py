"""Calibrate the cost model on this machine with micro-benchmarks, and keep the results.

What is measured (each a small query or a torch call, timed):

- `transfer_s_per_byte`: DuckDB -> Arrow -> numpy for a FLOAT[64] column;
- `dl_fixed_s`: the fixed cost of a DL-centric operator (fetch a few inputs, register the
  output table, read it back through a lookup);
- `lookup_s_per_row`, `lookup_s_per_byte`: deduplicating inputs and reading each row's
  output back through the lookup, per row and per byte of its key (a FLOAT[64] key costs
  far more to hash than an integer);
- `udf_chunk_s`, `udf_s_per_byte`: calling a vectorized Arrow UDF on one DuckDB vector
  (2,048 rows), and the engine's UDF wrapper's work per input byte (deduplicating a vector);
- `rel_s_per_mac`, `rel_s_per_output`, `rel_fixed_s`: a relational layer (block join,
  list_inner_product, aggregate) per multiply-add, per output value, per layer;
- `store_s_per_byte`: writing weight blocks into the database;
- `torch_s_per_mac`, `torch_batch_s`: a torch Linear layer per multiply-add and per batch.

Results live in the `workbench_calibration` table (name, value, unit, measured_at) and in
the process, so the first model query of a session waits for a quick calibration (well
under a second) at most once per machine; `CALL calibrate()` measures again, longer.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import torch

from workbench.db import run

if TYPE_CHECKING:
    import duckdb

TABLE = "workbench_calibration"
UNITS = {
    "transfer_s_per_byte": "s/byte",
    "dl_fixed_s": "s",
    "lookup_s_per_row": "s/row",
    "lookup_s_per_byte": "s/(row x key byte)",
    "udf_chunk_s": "s/vector",
    "udf_s_per_byte": "s/input byte",
    "rel_s_per_mac": "s/multiply-add",
    "rel_s_per_output": "s/value",
    "rel_fixed_s": "s/layer",
    "store_s_per_byte": "s/byte",
    "torch_s_per_mac": "s/multiply-add",
    "torch_batch_s": "s/batch",
}
_process: dict[str, float] | None = None
_lock = threading.Lock()  # guards _process: measured once per process
_save_lock = threading.Lock()


def _time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: first runs pay for plan caches and allocation
    return statistics.median(_once(fn) for _ in range(repeats))


def _once(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(con: duckdb.DuckDBPyConnection, *, thorough: bool = False) -> dict[str, float]:
    """Run the micro-benchmarks on a cursor of `con` (temporary objects only)."""
    from workbench.execution import relation_centric as rc
    from workbench.models.layers import Linear

    cur = con.cursor()
    scale, repeats = (4, 5) if thorough else (1, 3)
    n = 10_000 * scale
    out: dict[str, float] = {}
    run(
        cur,
        f"CREATE OR REPLACE TEMP TABLE __wb_cal AS SELECT i, list_transform(range(64), "
        f"lambda j: ((i * 7 + j) % 13)::FLOAT)::FLOAT[64] AS k FROM range({n}) t(i)",
    )
    try:
        t = _time(
            lambda: cur.sql("SELECT k FROM __wb_cal").to_arrow_table().column(0).combine_chunks().flatten().to_numpy(),
            repeats,
        )
        out["transfer_s_per_byte"] = t / (n * 64 * 4)

        def glue(column: str) -> float:
            """What a materialized operator adds around the model: its distinct inputs out of
            DuckDB, then every row reading its output back through the lookup."""

            def once() -> None:
                keys = cur.sql(f"SELECT DISTINCT {column} AS k FROM __wb_cal").to_arrow_table()
                out = pa.table({"k": keys.column(0), "v": pa.array(np.ones(len(keys), np.float32))})
                cur.register("__wb_cal_out", out)
                run(cur, "CREATE OR REPLACE TEMP MACRO __wb_cal_lookup(x) AS (SELECT v FROM __wb_cal_out WHERE k = x)")
                run(cur, f"SELECT count(__wb_cal_lookup({column})) FROM __wb_cal")

            return _time(once, repeats)

        narrow, wide = glue("i"), glue("k")  # 8-byte keys, 256-byte keys
        out["lookup_s_per_row"] = narrow / n
        out["lookup_s_per_byte"] = max(wide - narrow, 0.0) / n / (256 - 8)

        def tiny_operator() -> None:
            keys = cur.sql("SELECT DISTINCT i AS k FROM __wb_cal WHERE i < 10").to_arrow_table()
            cur.register("__wb_cal_small", keys)
            run(cur, "SELECT count(*) FROM __wb_cal c JOIN __wb_cal_small s ON s.k = c.i")
            cur.unregister("__wb_cal_small")

        out["dl_fixed_s"] = _time(tiny_operator, repeats)

        # the engine's own UDF wrapper (dedup within the vector, batching, a tiny model), on
        # 8-byte id keys and on 256-byte FLOAT[64] keys: what grows with the key is the dedup
        by_id = _time(lambda: _wrapped_udf(cur, "i", "BIGINT", n), repeats)
        by_vector = _time(lambda: _wrapped_udf(cur, "k", "FLOAT[64]", n), repeats)
        base = _time(lambda: run(cur, "SELECT count(i) FROM __wb_cal"), repeats)
        vectors = n / 2048
        out["udf_chunk_s"] = max(by_id - base, 1e-6) / vectors
        out["udf_s_per_byte"] = max(by_vector - by_id, 0.0) / vectors / (2048 * (256 - 8))

        rng = np.random.default_rng(0)

        def layer(width: int, outs: int) -> Linear:
            return Linear(
                rng.standard_normal((outs, width)).astype(np.float32), rng.standard_normal(outs).astype(np.float32)
            )

        def rel_time(width: int, outs: int, rows: int) -> float:
            layers = [layer(width, outs)]
            fp = f"__calibration_{width}_{outs}"
            t0 = time.perf_counter()
            rc.store_weights(cur, "__calibration__", fp, layers)
            store = time.perf_counter() - t0
            keys = pa.table(
                {"rid": np.arange(rows), "k": pa.array(list(rng.standard_normal((rows, width)).astype(np.float32)))}
            )
            cur.register("__wb_cal_keys", keys)
            ctes, last = rc.layers_sql("__wb_cal_keys", rc.stages(layers))
            # the outputs must be consumed, or DuckDB prunes the sums away
            sql = (
                "WITH " + ", ".join(ctes) + f" SELECT sum(len(x)) FROM (SELECT rid, list(y ORDER BY o) AS x "
                f"FROM {last} GROUP BY rid)"
            )
            t = _time(lambda: run(cur, sql, {"wb_fp": fp}), repeats)
            cur.unregister("__wb_cal_keys")
            if width * outs >= 256 * 256:
                out["store_s_per_byte"] = store / (width * outs * 4)
            return t

        fixed = rel_time(8, 8, 10)
        macs_heavy = rel_time(256, 256, 200 * scale)  # mostly multiply-adds
        outputs_heavy = rel_time(8, 256, 400 * scale)  # mostly per-output work (join, aggregate)
        # solve t - fixed = a * macs + b * outputs for the two measurements
        m = np.array(
            [[256 * 256 * 200 * scale, 256 * 200 * scale], [8 * 256 * 400 * scale, 256 * 400 * scale]], dtype=float
        )
        a, b = np.linalg.lstsq(m, np.array([macs_heavy - fixed, outputs_heavy - fixed]), rcond=None)[0]
        out["rel_fixed_s"] = fixed
        out["rel_s_per_mac"] = max(float(a), 1e-11)
        out["rel_s_per_output"] = max(float(b), 1e-10)
        rc.drop_weights(cur, "__calibration__")

        lin = torch.nn.Linear(256, 256)
        with torch.inference_mode():
            x1, xb = torch.randn(1, 256), torch.randn(1024, 256)
            single = _time(lambda: lin(x1), repeats * 5)
            big = _time(lambda: lin(xb), repeats)
        out["torch_batch_s"] = single
        out["torch_s_per_mac"] = max(big - single, 1e-6) / (1024 * 256 * 256)
    finally:
        run(cur, "DROP TABLE IF EXISTS __wb_cal")
        for name in ("__wb_cal_out",):
            try:
                cur.unregister(name)
            except Exception:  # noqa: BLE001 - not registered
                pass
        cur.close()
    return out


def _wrapped_udf(cur: duckdb.DuckDBPyConnection, column: str, input_type: str, n: int) -> None:
    from workbench.execution.udf_centric import UdfOperator
    from workbench.models.tensor import TensorModel
    from workbench.plan.nodes import ModelOperator

    if input_type == "BIGINT":
        module = torch.nn.Sequential(torch.nn.Embedding(n, 4), torch.nn.Linear(4, 1))
    else:
        module = torch.nn.Sequential(torch.nn.Linear(64, 1))
    model = TensorModel(module, task="regress")
    op = ModelOperator(
        id=0, model="__calibration__", call="__calibration__(k)", inputs=(), input_type=input_type, output_type="FLOAT"
    )
    udf = UdfOperator(cur, op, model, batch_size=2048)
    udf.register()
    try:
        run(cur, f"SELECT count({op.lookup}({column})) FROM __wb_cal")
    finally:
        udf.remove()


def load(con: duckdb.DuckDBPyConnection) -> dict[str, float] | None:
    try:
        rows = run(con, f"SELECT name, value FROM {TABLE}")
    except Exception:  # noqa: BLE001 - no table yet
        return None
    found = {name: float(value) for name, value in rows}
    return found if set(UNITS) <= set(found) else None


def save(con: duckdb.DuckDBPyConnection, values: dict[str, float]) -> None:
    """Store `values` at once, in one transaction of a cursor of its own: committed before
    the caller's statement goes on (and whatever becomes of it), all or nothing. Never
    raises: a read-only database, or a concurrent writer that wins twice, leaves the
    figures in the process only."""
    with _save_lock:  # one writer per process: threads never conflict with each other
        for attempt in (1, 2):
            try:
                cur = con.cursor()
            except Exception:  # noqa: BLE001 - a closed connection: nothing to store into
                return
            try:
                run(cur, "BEGIN TRANSACTION")
                run(
                    cur,
                    f"CREATE TABLE IF NOT EXISTS {TABLE} (name VARCHAR PRIMARY KEY, value DOUBLE, "
                    "unit VARCHAR, measured_at TIMESTAMP)",
                )
                for name, value in values.items():
                    run(
                        cur,
                        f"INSERT OR REPLACE INTO {TABLE} VALUES ($n, $v, $u, now()::TIMESTAMP)",
                        {"n": name, "v": value, "u": UNITS.get(name, "")},
                    )
                run(cur, "COMMIT")
                return
            except Exception:  # noqa: BLE001 - read-only database, or a conflicting writer
                try:
                    run(cur, "ROLLBACK")
                except Exception:  # noqa: BLE001 - no transaction left to roll back
                    pass
                if attempt == 2:
                    return
            finally:
                try:
                    cur.close()
                except Exception:  # noqa: BLE001 - already closed with the database
                    pass


def constants(con: duckdb.DuckDBPyConnection) -> dict[str, float]:
    """The calibration for this database: stored, else this process's, else measured now.

    Safe to call from many threads at once (each with a cursor of its own): the process
    measures at most once, under the lock, and a calibration the database lacks is stored
    (committed) before this returns, so before the caller's query does any work."""
    global _process
    found = load(con)
    if found is not None:
        return found
    with _lock:
        found = load(con)  # another thread may have stored it while this one waited
        if found is not None:
            return found
        if _process is None:
            _process = measure(con)
        values = dict(_process)
        save(con, values)
    return values


def calibrate(con: duckdb.DuckDBPyConnection) -> dict[str, float]:
    """Measure again (thoroughly) and store; `CALL calibrate()`."""
    global _process
    values = measure(con, thorough=True)
    with _lock:
        _process = dict(values)
        save(con, values)
    return values
