"""The block tables, and a model's import, load and drop over them.

    workbench_blocks(hash, nbytes, data)          one row per distinct block (exact dedup)
    workbench_tensors(model, file, tensor, block_index, hash, dtype, shape)
                                                  which blocks, in order, make each tensor
    workbench_stored(model, layout, metadata, logical_bytes, accuracy_loss)
                                                  one row per stored model

`write` and `drop` run inside the caller's transaction (the catalog's entry changes in the
same one), so a kill mid-import leaves no half model and no orphan block. Loading reads a
model's blocks in one query as Arrow and views each tensor over Arrow's buffer (no
intermediate file; a copy only where a tensor's bytes are split across Arrow chunks or
misaligned for its dtype).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import torch

from workbench.db import run
from workbench.errors import ModelLoadError
from workbench.storage import blocks, near
from workbench.storage.source import FILE_DTYPE, Source

BLOCKS = "workbench_blocks"
TENSORS = "workbench_tensors"
STORED = "workbench_stored"
SKETCHES = "workbench_block_sketches"
#: bytes of new blocks inserted per statement (a bounded Arrow batch; progress is reported per batch)
BATCH_BYTES = 16 << 20
TORCH_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool, "U16": torch.uint16, "U32": torch.uint32, "U64": torch.uint64,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}  # fmt: skip


@dataclass
class Loaded:
    """A stored model read back: its tensors per .safetensors file, its other files' bytes."""

    layout: str
    metadata: dict[str, dict[str, str]]
    tensors: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    bytes_read: int = 0


def ensure(con: duckdb.DuckDBPyConnection) -> None:
    # base/scale: a delta block (accuracy-aware dedup, near.py) is `base` plus data (int8) * scale
    run(
        con,
        f"CREATE TABLE IF NOT EXISTS {BLOCKS} (hash VARCHAR PRIMARY KEY, nbytes BIGINT NOT NULL, data BLOB, "
        "base VARCHAR, scale DOUBLE)",
    )
    run(con, f"CREATE TABLE IF NOT EXISTS {SKETCHES} (hash VARCHAR PRIMARY KEY, nbytes BIGINT NOT NULL, code INTEGER)")
    run(
        con,
        f"CREATE TABLE IF NOT EXISTS {TENSORS} (model VARCHAR NOT NULL, file VARCHAR NOT NULL, "
        "tensor VARCHAR NOT NULL, block_index INTEGER NOT NULL, hash VARCHAR NOT NULL, dtype VARCHAR NOT NULL, "
        "shape BIGINT[] NOT NULL)",
    )
    run(
        con,
        f"CREATE TABLE IF NOT EXISTS {STORED} (model VARCHAR PRIMARY KEY, layout VARCHAR NOT NULL, "
        "metadata JSON, logical_bytes BIGINT NOT NULL, accuracy_loss DOUBLE NOT NULL DEFAULT 0)",
    )


def is_stored(con: duckdb.DuckDBPyConnection, model: str) -> bool:
    return bool(run(con, f"SELECT 1 FROM {STORED} WHERE model = ?", [model]))


def digests(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """`digest` of every stored model."""
    rows = run(
        con,
        f"SELECT model, sha256(string_agg(file || '/' || tensor || '/' || hash, ',' "
        f"ORDER BY file, tensor, block_index)) FROM {TENSORS} GROUP BY model",
    )
    return {str(r[0]): str(r[1]) for r in rows}


def digest(con: duckdb.DuckDBPyConnection, model: str) -> str:
    """One hash over a stored model's block list: equal digests, equal weights and files."""
    rows = run(
        con,
        f"SELECT sha256(string_agg(file || '/' || tensor || '/' || hash, ',' ORDER BY file, tensor, block_index)) "
        f"FROM {TENSORS} WHERE model = ?",
        [model],
    )
    return str(rows[0][0] or "")


def write(
    con: duckdb.DuckDBPyConnection,
    model: str,
    source: Source,
    progress: Callable[[int], None] | None = None,
    *,
    near_dedup: bool = False,
) -> None:
    """Store `source` as model `model` (replacing a stored model of that name). Runs in the
    caller's transaction; `progress` is called with the bytes of new blocks written so far.
    `near_dedup`: a float32 block close to a stored one becomes a delta to it (near.py)."""
    ensure(con)
    run(con, f"DELETE FROM {TENSORS} WHERE model = ?", [model])
    run(con, f"DELETE FROM {STORED} WHERE model = ?", [model])
    rows: dict[str, list[Any]] = {k: [] for k in ("file", "tensor", "block_index", "hash", "dtype", "shape")}
    pending: dict[str, memoryview] = {}
    pending_bytes = written = 0
    deltas: dict[str, near.Delta] = {}
    sketches: dict[str, tuple[int, int]] = {}
    for entry in source.entries:
        itemsize = 1 if entry.dtype == FILE_DTYPE else _itemsize(entry.dtype)
        for index, block in enumerate(blocks.split(entry.data, entry.shape, itemsize)):
            stored_as: str = block.hash
            if entry.dtype in near.NEAR_DTYPES and block.hash not in pending:
                values = np.frombuffer(block.data, np.float32)
                code = near.sketch(values)
                delta = _near(con, block.hash, values, code) if near_dedup else None
                if delta is not None:
                    stored_as = delta.hash
                    deltas[delta.hash] = delta
                else:
                    sketches[block.hash] = (len(block.data), code)
            for key, value in zip(rows, (entry.file, entry.tensor, index, stored_as, entry.dtype, list(entry.shape))):
                rows[key].append(value)
            if stored_as == block.hash and block.hash not in pending:
                pending[block.hash] = block.data
                pending_bytes += len(block.data)
            if pending_bytes >= BATCH_BYTES:
                written += _insert_blocks(con, pending)
                pending, pending_bytes = {}, 0
                if progress is not None:
                    progress(written)
    written += _insert_blocks(con, pending)
    written += _insert_deltas(con, deltas)
    _insert_sketches(con, sketches)
    table = pa.table({"model": pa.array([model] * len(rows["hash"]), pa.string()), **rows})
    con.register("__wb_new_tensors", table)
    try:
        run(
            con,
            f"INSERT INTO {TENSORS} SELECT model, file, tensor, block_index, hash, dtype, shape FROM __wb_new_tensors",
        )
    finally:
        con.unregister("__wb_new_tensors")
    run(
        con,
        f"INSERT INTO {STORED} (model, layout, metadata, logical_bytes) VALUES (?, ?, ?, ?)",
        [model, source.layout, json.dumps(source.metadata), source.logical_bytes],
    )
    collect_garbage(con)
    if progress is not None:
        progress(written)


def _near(con: duckdb.DuckDBPyConnection, own: str, values: np.ndarray, code: int) -> near.Delta | None:
    """A delta to a stored raw block with the same sketch and size, if one rebuilds `values`
    within the block tolerance (the first that does)."""
    if run(con, f"SELECT 1 FROM {BLOCKS} WHERE hash = ?", [own]):
        return None  # stored exactly already: sharing it costs nothing
    candidates = run(
        con,
        f"SELECT b.hash, b.data FROM {SKETCHES} s JOIN {BLOCKS} b ON b.hash = s.hash "
        "WHERE s.code = ? AND s.nbytes = ? AND b.base IS NULL LIMIT 4",
        [code, values.nbytes],
    )
    for base_hash, data in candidates:
        delta = near.encode(values, base_hash, np.frombuffer(data, np.float32))
        if delta is not None:
            return delta
    return None


def _insert_deltas(con: duckdb.DuckDBPyConnection, deltas: dict[str, near.Delta]) -> int:
    if not deltas:
        return 0
    items = list(deltas.values())
    table = pa.table(
        {
            "hash": pa.array([d.hash for d in items], pa.string()),
            "nbytes": pa.array([len(d.data) for d in items], pa.int64()),
            "data": pa.array([d.data for d in items], pa.binary()),
            "base": pa.array([d.base for d in items], pa.string()),
            "scale": pa.array([d.scale for d in items], pa.float64()),
        }
    )
    con.register("__wb_new_deltas", table)
    try:
        new = run(
            con,
            f"INSERT INTO {BLOCKS} SELECT n.hash, n.nbytes, n.data, n.base, n.scale FROM __wb_new_deltas n "
            f"WHERE NOT EXISTS (SELECT 1 FROM {BLOCKS} b WHERE b.hash = n.hash) RETURNING nbytes",
        )
    finally:
        con.unregister("__wb_new_deltas")
    return sum(int(r[0]) for r in new)


def _insert_sketches(con: duckdb.DuckDBPyConnection, sketches: dict[str, tuple[int, int]]) -> None:
    if not sketches:
        return
    hashes = list(sketches)
    table = pa.table(
        {
            "hash": pa.array(hashes, pa.string()),
            "nbytes": pa.array([sketches[h][0] for h in hashes], pa.int64()),
            "code": pa.array([sketches[h][1] for h in hashes], pa.int32()),
        }
    )
    con.register("__wb_new_sketches", table)
    try:
        run(
            con,
            f"INSERT INTO {SKETCHES} SELECT n.hash, n.nbytes, n.code FROM __wb_new_sketches n "
            f"WHERE NOT EXISTS (SELECT 1 FROM {SKETCHES} s WHERE s.hash = n.hash)",
        )
    finally:
        con.unregister("__wb_new_sketches")


def set_accuracy_loss(con: duckdb.DuckDBPyConnection, model: str, loss: float) -> None:
    run(con, f"UPDATE {STORED} SET accuracy_loss = ? WHERE model = ?", [loss, model])


def _insert_blocks(con: duckdb.DuckDBPyConnection, pending: dict[str, memoryview]) -> int:
    """Insert the blocks not stored yet; returns the bytes written."""
    if not pending:
        return 0
    hashes = list(pending)
    table = pa.table(
        {
            "hash": pa.array(hashes, pa.string()),
            "nbytes": pa.array([len(pending[h]) for h in hashes], pa.int64()),
            "data": pa.array([pending[h] for h in hashes], pa.binary()),
        }
    )
    con.register("__wb_new_blocks", table)
    try:
        new = run(
            con,
            f"INSERT INTO {BLOCKS} SELECT n.hash, n.nbytes, n.data, NULL, NULL FROM __wb_new_blocks n "
            f"WHERE NOT EXISTS (SELECT 1 FROM {BLOCKS} b WHERE b.hash = n.hash) RETURNING nbytes",
        )
    finally:
        con.unregister("__wb_new_blocks")
    return sum(int(r[0]) for r in new)


def drop(con: duckdb.DuckDBPyConnection, model: str) -> None:
    """Forget a stored model, and every block no other model holds (in the caller's transaction)."""
    ensure(con)
    run(con, f"DELETE FROM {TENSORS} WHERE model = ?", [model])
    run(con, f"DELETE FROM {STORED} WHERE model = ?", [model])
    collect_garbage(con)


def collect_garbage(con: duckdb.DuckDBPyConnection) -> None:
    """Remove the blocks no tensor holds: deltas first, then raw blocks no remaining delta is based on."""
    unused = f"NOT EXISTS (SELECT 1 FROM {TENSORS} t WHERE t.hash = b.hash)"
    run(con, f"DELETE FROM {BLOCKS} b WHERE b.base IS NOT NULL AND {unused}")
    run(con, f"DELETE FROM {BLOCKS} b WHERE {unused} AND NOT EXISTS (SELECT 1 FROM {BLOCKS} d WHERE d.base = b.hash)")
    run(con, f"DELETE FROM {SKETCHES} s WHERE NOT EXISTS (SELECT 1 FROM {BLOCKS} b WHERE b.hash = s.hash)")


def load(con: duckdb.DuckDBPyConnection, model: str) -> Loaded:
    """A stored model's tensors and files, built from its blocks (the tables exist: the
    catalog makes them when a session opens; a read-only database is read as it is)."""
    head = run(con, f"SELECT layout, metadata FROM {STORED} WHERE model = ?", [model])
    if not head:
        raise ModelLoadError(f"model '{model}' is not stored in the database")
    loaded = Loaded(head[0][0], json.loads(head[0][1]) if head[0][1] else {})
    table = con.sql(
        f"SELECT t.file, t.tensor, t.dtype, t.shape, b.scale, b.data, r.data AS base_data FROM {TENSORS} t "
        f"JOIN {BLOCKS} b ON b.hash = t.hash LEFT JOIN {BLOCKS} r ON r.hash = b.base "
        # widest dtypes first, files last: each tensor starts aligned for its dtype in Arrow's buffer
        "WHERE t.model = $model ORDER BY CASE WHEN t.dtype IN ('F64', 'I64', 'U64') THEN 0 "
        "WHEN t.dtype IN ('F32', 'I32', 'U32') THEN 1 WHEN t.dtype IN ('F16', 'BF16', 'I16', 'U16') THEN 2 "
        f"WHEN t.dtype = '{FILE_DTYPE}' THEN 4 ELSE 3 END, t.file, t.tensor, t.block_index",
        params={"model": model},
    ).to_arrow_table()
    keys = table.select(["file", "tensor", "dtype", "shape", "scale"]).to_pylist()
    # tensors with a delta block (accuracy-aware dedup) are rebuilt block by block
    rebuilt = {(k["file"], k["tensor"]) for k in keys if k["scale"] is not None}
    parts: dict[tuple[str, str], list[_Part]] = {}
    row = 0
    for chunk in table.column("data").chunks:
        offsets_type = np.int64 if pa.types.is_large_binary(chunk.type) else np.int32
        buffers = chunk.buffers()
        offsets = np.frombuffer(buffers[1], offsets_type)[chunk.offset : chunk.offset + len(chunk) + 1]
        start = 0
        while start < len(chunk):  # a run of one tensor's blocks: contiguous in the values buffer
            key = keys[row + start]
            end = start + 1
            while end < len(chunk) and _same(keys[row + end], key):
                end += 1
            parts.setdefault((key["file"], key["tensor"]), []).append(
                _Part(key, buffers[2], int(offsets[start]), int(offsets[end]))
            )
            start = end
        row += len(chunk)
    for (file, tensor), runs in parts.items():
        if (file, tensor) in rebuilt:
            continue
        if runs[0].key["dtype"] == FILE_DTYPE:
            loaded.files[file] = b"".join(p.values[p.begin : p.end].to_pybytes() for p in runs)
        else:
            loaded.tensors.setdefault(file, {})[tensor] = _tensor(runs)
    if rebuilt:
        _rebuild(loaded, table, keys, rebuilt)
    loaded.bytes_read = table.column("data").nbytes + table.column("base_data").nbytes
    return loaded


def _rebuild(loaded: Loaded, table: pa.Table, keys: list[dict[str, Any]], rebuilt: set[tuple[str, str]]) -> None:
    """The tensors holding delta blocks: each block rebuilt (base + int8 delta * scale), one copy."""
    data, bases = table.column("data"), table.column("base_data")
    pieces: dict[tuple[str, str], list[bytes]] = {}
    for i, key in enumerate(keys):
        name = (key["file"], key["tensor"])
        if name not in rebuilt:
            continue
        raw = data[i].as_py()
        if key["scale"] is not None:
            raw = near.decode(np.frombuffer(bases[i].as_py(), np.float32), raw, key["scale"]).tobytes()
        pieces.setdefault(name, []).append(raw)
    for (file, tensor), chunks in pieces.items():
        key = next(k for k in keys if (k["file"], k["tensor"]) == (file, tensor))
        buffer = bytearray(b"".join(chunks))
        flat = torch.frombuffer(buffer, dtype=TORCH_DTYPES[key["dtype"]]) if buffer else torch.empty(0)
        loaded.tensors.setdefault(file, {})[tensor] = flat.reshape(tuple(key["shape"]))


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return bool(a["file"] == b["file"] and a["tensor"] == b["tensor"])


@dataclass(frozen=True)
class _Part:
    key: dict[str, Any]
    values: pa.Buffer
    begin: int
    end: int


def _tensor(runs: list[_Part]) -> torch.Tensor:
    """A tensor of its shape over its runs of bytes: a view over Arrow's buffer when they are
    one run aligned for the dtype, else one copy."""
    key = runs[0].key
    dtype = TORCH_DTYPES[key["dtype"]]
    shape = tuple(key["shape"])
    itemsize = _itemsize(key["dtype"])
    one = runs[0]
    buffer: Any
    if len(runs) == 1 and (one.values.address + one.begin) % itemsize == 0:
        buffer, offset, count = memoryview(one.values), one.begin, (one.end - one.begin) // itemsize
    else:  # one copy, into memory of our own
        buffer = bytearray(sum(p.end - p.begin for p in runs))
        at = 0
        for p in runs:
            buffer[at : at + p.end - p.begin] = memoryview(p.values)[p.begin : p.end]
            at += p.end - p.begin
        offset, count = 0, len(buffer) // itemsize
    if count == 0:
        return torch.empty(shape, dtype=dtype)
    with warnings.catch_warnings():  # Arrow's buffer is read-only to Python: the weights are never written
        warnings.simplefilter("ignore", UserWarning)
        flat = torch.frombuffer(buffer, dtype=dtype, count=count, offset=offset)
    return flat.reshape(shape)


def _itemsize(dtype: str) -> int:
    from workbench.storage.source import ITEMSIZE

    return ITEMSIZE[dtype]
