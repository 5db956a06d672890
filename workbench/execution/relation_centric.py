"""Relation-centric execution: a model's layers compiled to SQL over weight tables.

Each Linear layer is stored in `workbench_weights` in block form: one row per (output
neuron o, input block c) holding that block of the weight row as a FLOAT[] list, so a layer
is a join of the input blocks with the weight blocks on c, `list_inner_product` per pair
and a sum per (input row, o). The next layer's input blocks are the activated outputs
regrouped by `o // block`. DuckDB runs all of it with its own operators, so a model whose
weights do not fit in DuckDB's memory limit still runs: the join and the aggregates spill.

A leading Embedding is stored the same way (layer 0, one row per id and block) and its
lookup is a join on the input id. The hybrid paradigm runs only the first Linear layer (and
its activation), or the embedding lookup, this way and hands the vectors to torch.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from workbench.db import run as run_sql
from workbench.db import transaction
from workbench.errors import ExecutionError
from workbench.models.layers import Embedding, Layer, Linear, chain_of

if TYPE_CHECKING:
    import duckdb

    from workbench.models.tensor import TensorModel

#: widest weight block: long enough that list_inner_product runs vectorized, short enough
#: that a block row stays small (a 4096-wide layer is 16 blocks per output neuron)
BLOCK = 256
TABLE = "workbench_weights"
_views = itertools.count(1)

_SQRT_HALF = 0.7071067811865476


def _erf(x: str) -> str:
    """erf(x) by Abramowitz & Stegun 7.1.26 (error below 1.5e-7); DuckDB has no erf."""
    t = f"(1.0 / (1.0 + 0.3275911 * abs({x})))"
    poly = (
        f"({t} * (0.254829592 + {t} * (-0.284496736 + {t} * (1.421413741 + {t} * (-1.453152027 + {t} * 1.061405429)))))"
    )
    return f"(sign({x}) * (1.0 - {poly} * exp(-({x}) * ({x}))))"


def activation_sql(name: str, y: str) -> str:
    if name == "relu":
        return f"greatest({y}, 0.0)"
    if name == "tanh":
        return f"tanh({y})"
    if name == "gelu":
        return f"(0.5 * {y} * (1.0 + {_erf(f'{y} * {_SQRT_HALF}')}))"
    if name == "gelu_tanh":
        return f"(0.5 * {y} * (1.0 + tanh(0.7978845608028654 * ({y} + 0.044715 * {y} * {y} * {y}))))"
    raise ValueError(f"unknown activation {name!r}")


def _block(width: int) -> int:
    return min(width, BLOCK)


@dataclass(frozen=True)
class Stage:
    """One Linear layer with the activations that follow it."""

    linear: Linear
    activations: tuple[str, ...]

    def activate(self, y: str) -> str:
        for name in self.activations:
            y = activation_sql(name, y)
        return y


def stages(layers: Sequence[Layer]) -> list[Stage]:
    """The Linear layers with their activations (a leading Embedding is not a stage)."""
    out: list[Stage] = []
    pending: list[str] = []
    for layer in layers:
        if isinstance(layer, Embedding):
            continue
        if isinstance(layer, Linear):
            if out:
                out[-1] = Stage(out[-1].linear, tuple(pending))
            out.append(Stage(layer, ()))
            pending = []
        else:
            pending.append(layer.name)  # activations before the first Linear are refused by chain()
    out[-1] = Stage(out[-1].linear, tuple(pending))
    return out


# -- weights in the database -------------------------------------------------------------


def ensure_weights(con: duckdb.DuckDBPyConnection, model_name: str, model: TensorModel) -> float:
    """Store the model's weights unless this version of them is stored already."""
    fingerprint = model.fingerprint()
    if stored(con, fingerprint):
        return 0.0
    return store_weights(con, model_name, fingerprint, chain_of(model)[0])


def store_weights(con: duckdb.DuckDBPyConnection, model_name: str, fingerprint: str, layers: Sequence[Layer]) -> float:
    """Write the model's Linear layers in block form unless this fingerprint is stored;
    returns the seconds spent (0 when already there). Old versions of the model are removed."""
    run_sql(
        con,
        f"CREATE TABLE IF NOT EXISTS {TABLE} (model VARCHAR, fp VARCHAR, layer INTEGER, "
        "o INTEGER, c INTEGER, w FLOAT[], b FLOAT)",
    )
    if run_sql(con, f"SELECT count(*) FROM {TABLE} WHERE fp = $fp LIMIT 1", {"fp": fingerprint})[0][0]:
        return 0.0
    start = time.perf_counter()
    with transaction(con):
        run_sql(con, f"DELETE FROM {TABLE} WHERE model = $m", {"m": model_name})
        tables = [(number, _blocks(stage.linear)) for number, stage in enumerate(stages(layers), 1)]
        if layers and isinstance(layers[0], Embedding):  # layer 0: row o is the vector of id o
            tables.insert(0, (0, _blocks(Linear(layers[0].weight, np.zeros(len(layers[0].weight), np.float32)))))
        for number, blocks in tables:
            view = f"__wb_weights_{next(_views)}"
            con.register(view, blocks)
            try:
                run_sql(
                    con,
                    f"INSERT INTO {TABLE} SELECT $m, $fp, $layer, o, c, w, b FROM {view}",
                    {"m": model_name, "fp": fingerprint, "layer": number},
                )
            finally:
                try:
                    con.unregister(view)
                except Exception:  # noqa: BLE001 - the aborted transaction's own error is the one to report
                    pass
    return time.perf_counter() - start


def stored(con: duckdb.DuckDBPyConnection, fingerprint: str) -> bool:
    try:
        return bool(run_sql(con, f"SELECT count(*) FROM {TABLE} WHERE fp = $fp", {"fp": fingerprint})[0][0])
    except Exception:  # noqa: BLE001 - no table yet
        return False


def drop_weights(con: duckdb.DuckDBPyConnection, model_name: str) -> None:
    try:
        run_sql(con, f"DELETE FROM {TABLE} WHERE model = $m", {"m": model_name})
    except Exception:  # noqa: BLE001 - no table yet
        pass


def _blocks(layer: Linear) -> pa.Table:
    out, width = layer.shape
    b = _block(width)
    parts_o, parts_c, parts_w, parts_b = [], [], [], []
    for c in range(-(-width // b)):
        block = np.ascontiguousarray(layer.weight[:, c * b : (c + 1) * b], dtype=np.float32)
        n = block.shape[1]
        offsets = pa.array(np.arange(0, (out + 1) * n, n, dtype=np.int32))
        parts_w.append(pa.ListArray.from_arrays(offsets, pa.array(block.reshape(-1))))
        parts_o.append(np.arange(out, dtype=np.int32))
        parts_c.append(np.full(out, c, dtype=np.int32))
        parts_b.append(layer.bias.astype(np.float32))
    return pa.table(
        {
            "o": np.concatenate(parts_o),
            "c": np.concatenate(parts_c),
            "w": pa.chunked_array(parts_w),
            "b": np.concatenate(parts_b),
        }
    )


# -- the query ----------------------------------------------------------------------------


def layers_sql(
    inputs: str, stage_list: list[Stage], *, fp_param: str = "wb_fp", embedding: bool = False
) -> tuple[list[str], str]:
    """CTEs computing the stages over `inputs` (columns rid, k); returns (ctes, last) where
    `last` has columns rid, o, y (pre-activation of the last stage). With `embedding`, the
    input k is an id and its vector's blocks come from a join with the embedding table."""
    if embedding:
        ctes = [
            f"x0 AS (SELECT i.rid, w.c, w.w AS x FROM {inputs} i JOIN {TABLE} w ON w.o = i.k "
            f"WHERE w.fp = ${fp_param} AND w.layer = 0)"
        ]
    else:
        first_width = stage_list[0].linear.shape[1]
        b0 = _block(first_width)
        ctes = [
            f"x0 AS (SELECT i.rid, ch.c, list_slice(i.k::FLOAT[], ch.c * {b0} + 1, (ch.c + 1) * {b0}) AS x "
            f"FROM {inputs} i, range({-(-first_width // b0)}) ch(c))"
        ]
    for n, stage in enumerate(stage_list, 1):
        ctes.append(
            f"y{n} AS (SELECT x.rid, w.o, sum(list_inner_product(x.x, w.w)) + any_value(w.b) AS y "
            f"FROM x{n - 1} x JOIN {TABLE} w ON w.c = x.c WHERE w.fp = ${fp_param} AND w.layer = {n} "
            f"GROUP BY x.rid, w.o)"
        )
        if n < len(stage_list):
            b = _block(stage_list[n].linear.shape[1])
            ctes.append(
                f"x{n} AS (SELECT rid, o // {b} AS c, list({stage.activate('y')} ORDER BY o) AS x "
                f"FROM y{n} GROUP BY rid, o // {b})"
            )
    return ctes, f"y{len(stage_list)}"


def head_sql(model: TensorModel, stage: Stage, last: str) -> str:
    """The model's output per rid from the last stage's outputs."""
    y = stage.activate("y")
    if model.task == "classify":
        label = "list_extract($wb_labels, arg_max(o, y) + 1)" if model.labels else "arg_max(o, y)::INTEGER"
        return (
            f"SELECT rid, struct_pack(label := {label}, score := (1.0 / sum(exp(y - top)))::FLOAT) AS v "
            f"FROM (SELECT rid, o, {y} AS y, max({y}) OVER (PARTITION BY rid) AS top FROM {last}) "
            "GROUP BY rid"
        )
    if model.task == "regress":
        return f"SELECT rid, (first({y}) FILTER (WHERE o = 0))::FLOAT AS v FROM {last} GROUP BY rid"
    return f"SELECT rid, list({y}::FLOAT ORDER BY o) AS v FROM {last} GROUP BY rid"


def model_sql(model: TensorModel, keys_view: str, *, hidden_only: bool = False) -> tuple[str, dict[str, Any]]:
    """A query of (rid, v): the model's output for each (rid, k) row of `keys_view` (or, for
    `hidden_only`, the activated output of the first stage as FLOAT[])."""
    layers, why = chain_of(model)
    if not layers:
        raise ExecutionError(f"cannot run relation-centric: {why}")
    stage_list = stages(layers)
    embedding = isinstance(layers[0], Embedding)
    if hidden_only:
        stage_list = stage_list[:1]
    ctes, last = layers_sql(keys_view, stage_list, embedding=embedding)
    if hidden_only and isinstance(layers[0], Embedding):  # the hybrid's relational part is the embedding lookup
        ctes = ctes[:1]
        if layers[0].shape[1] <= BLOCK:  # one block per id: no regrouping (no aggregate to hold)
            head = "SELECT rid, x AS v FROM x0"
        else:
            head = "SELECT rid, flatten(list(x ORDER BY c)) AS v FROM x0 GROUP BY rid"
    elif hidden_only:
        head = f"SELECT rid, list({stage_list[0].activate('y')}::FLOAT ORDER BY o) AS v FROM {last} GROUP BY rid"
    else:
        head = head_sql(model, stage_list[-1], last)
    ctes.append(f"head AS ({head})")
    sql = "WITH " + ",\n".join(ctes) + "\nSELECT rid, v FROM head ORDER BY rid"
    params: dict[str, Any] = {"wb_fp": model.fingerprint()}
    if model.labels and not hidden_only:
        params["wb_labels"] = list(model.labels)
    return sql, params


def infer(
    con: duckdb.DuckDBPyConnection,
    fetch: Any,
    model: TensorModel,
    keys: pa.Array,
    *,
    hidden_only: bool = False,
    max_rows: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> pa.Array:
    """Outputs for `keys` (one per key, same order) computed by DuckDB, `max_rows` inputs per
    query when given (under a memory budget a query's result and intermediates must fit
    DuckDB's limit: a chunk bounds them)."""
    if not len(keys):
        return pa.array([], type=model.arrow_output_type())
    step = max_rows or len(keys)
    parts = []
    for i in range(0, len(keys), step):
        parts.append(_infer_chunk(con, fetch, model, keys.slice(i, step), hidden_only))
        if progress is not None:
            progress(min(i + step, len(keys)), len(keys))
    return parts[0] if len(parts) == 1 else pa.concat_arrays(parts)


def _infer_chunk(
    con: duckdb.DuckDBPyConnection, fetch: Any, model: TensorModel, keys: pa.Array, hidden_only: bool
) -> pa.Array:
    view = f"__wb_rel_keys_{next(_views)}"
    con.register(view, pa.table({"rid": np.arange(len(keys), dtype=np.int64), "k": keys}))
    try:
        sql, params = model_sql(model, view, hidden_only=hidden_only)
        table = fetch(sql, params)
    finally:
        con.unregister(view)
    if table.num_rows != len(keys):
        if model.input_kind == "ids":
            raise ExecutionError(f"an input id is outside the embedding's range 0..{model.vocabulary - 1}")
        raise ExecutionError(f"relation-centric run returned {table.num_rows} outputs for {len(keys)} inputs")
    out = table.column("v").combine_chunks()
    if hidden_only:
        return out
    return out.cast(model.arrow_output_type())


def chunk_rows(memory_budget: int | None) -> int | None:
    """Inputs per relational query under a memory budget (None: all at once)."""
    return None if memory_budget is None else 8192
