"""What one model operator measured when it ran: the record every executor returns.

`Result.stats` keeps its public form, one dict per operator (`OperatorStats.as_dict`); the
engine, the cost model, the scheduler and EXPLAIN ANALYZE read the typed record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class NodeShare:
    """What one cluster node did for an operator (placement 'ray')."""

    node_id: str
    address: str
    actors: int
    rows: int
    blocks: int
    seconds: float  # its actors' model seconds, summed


@dataclass(frozen=True)
class OperatorStats:
    model: str
    call: str
    paradigm: str
    rows: int  # distinct inputs the operator answered (hits included)
    seconds: float  # model time (waits for a shared model's lock excluded)
    batch_size: int | None
    batches: int
    device: str = "cpu"
    precision: str = "float32"
    memory: str = "resident"
    cache_hits: int = 0
    cache_misses: int = 0
    cache_policy: str = "off"
    input_rows: int | None = None  # rows reaching the call (udf_centric: before its per-vector dedup)
    cache_semantic_hits: int | None = None
    placement: str = "local"  # or 'ray': where its model ran
    actors: int | None = None  # placement 'ray': actors that answered blocks
    nodes: tuple[NodeShare, ...] = ()  # placement 'ray': per node
    retried_blocks: int = 0  # placement 'ray': blocks sent again after their actor died
    runtime: str = "torch"  # 'torch' or 'onnx' (onnxruntime): what really ran the model
    runtime_note: str | None = None  # why the planned runtime did not run (export or check failed)
    switched: str | None = None  # the guard moved the rest of the rows to another executor, and why
    tokens: int | None = None  # a generator: new tokens it decoded (cache hits decode none)
    tokens_per_s: float | None = None  # ... per second of decoding
    kv_cache_bytes: int | None = None  # ... the largest its KV cache grew

    @property
    def computed(self) -> int:
        """Inputs the model actually ran on (cache hits excluded)."""
        return self.rows - self.cache_hits

    def as_dict(self) -> dict[str, Any]:
        """The public `Result.stats` form (optional fields only when set)."""
        d = asdict(self)
        for key in (
            "input_rows",
            "cache_semantic_hits",
            "runtime_note",
            "switched",
            "tokens",
            "tokens_per_s",
            "kv_cache_bytes",
        ):
            if d[key] is None:
                del d[key]
        if self.placement == "local":  # where it ran: said only for a cluster run
            for key in ("placement", "actors", "nodes", "retried_blocks"):
                del d[key]
        else:
            d["nodes"] = [dict(n) for n in d["nodes"]]
        return d
