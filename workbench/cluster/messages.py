"""What the session's process and its Ray driver process (workbench/cluster/driver.py) say to
each other over their private socket: one record per message, inputs and outputs as Arrow IPC.

Requests go from the session to the driver; every request gets exactly one final answer
(`Answer` or `Failed`), and an `Infer` may send `Progress` records before its answer. `Cancel`
may arrive while an `Infer` runs (Ctrl-C in the session): the driver kills the pool's actors
and answers the `Infer` with `Failed(interrupted=True)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from workbench.plan.stats import NodeShare


def to_ipc(values: pa.Array) -> bytes:
    """One array as an Arrow IPC stream (one column, one batch)."""
    batch = pa.record_batch([values], names=["v"])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return bytes(sink.getvalue())


def from_ipc(data: bytes) -> pa.Array:
    table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    column = table.column(0)
    return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)


# -- requests ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Nodes:
    """The alive nodes (a list of `connection.Node`)."""


@dataclass(frozen=True)
class Facts:
    """The cluster's `ClusterFacts` for one model."""

    fingerprint: str


@dataclass(frozen=True)
class Ship:
    """A model registered from Python, pickled by value (cloudpickle), for the object store."""

    fingerprint: str
    model: bytes


@dataclass(frozen=True)
class Infer:
    recipe: Any  # actors.Recipe (its `shipped` names a `Ship`ped fingerprint, never an object)
    call: str
    keys: bytes  # Arrow IPC
    actors: int
    batch_size: int | None
    output_type: pa.DataType
    per_node: bool  # send a Progress with each block's node share (telemetry listens)


@dataclass(frozen=True)
class Cancel:
    """Stop the running Infer now (Ctrl-C): its actors are killed."""


@dataclass(frozen=True)
class Pids:
    """The warm actors' process ids."""


@dataclass(frozen=True)
class Where:
    """The driver's own address as Ray sees it (the tests check it is 127.0.0.1)."""


# -- answers -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Ready:
    """The driver connected to the cluster."""

    pid: int


@dataclass(frozen=True)
class Progress:
    done_rows: int
    total_rows: int
    share: NodeShare | None


@dataclass(frozen=True)
class Answer:
    value: Any


@dataclass(frozen=True)
class Inferred:
    outputs: bytes  # Arrow IPC, in key order
    batch_size: int
    batches: int
    seconds: float
    report: Any  # executor.Report


@dataclass(frozen=True)
class Failed:
    """The request failed: `error` is the WorkbenchError to raise in the session (or None)."""

    error: Exception | None
    message: str
    interrupted: bool = False
    gone: bool = False  # the cluster vanished: this driver exits after saying so
