"""Memory per device, sampled in the background while a query runs.

Per sample: the process's resident memory (RSS, what the operating system charges), DuckDB's
own buffer memory (`duckdb_memory()`), the bytes of the query's torch weights on the CPU,
and on each CUDA device torch's allocated and reserved bytes. The sampler runs on its own
thread at a few hertz: a sample costs about 2 ms of one core (DuckDB's table function), so
at 4 Hz it stays far below the 2% the query may lose to observation.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

import psutil

from workbench.telemetry.stream import Telemetry

INTERVAL_S = 0.25


def torch_bytes(models: Iterable[Any]) -> dict[str, int]:
    """Bytes of the models' torch parameters and buffers, per device ('cpu', 'cuda:0')."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return {}
    out: dict[str, int] = {}
    seen: set[int] = set()
    for model in models:
        for attr in ("module", "model"):
            mod = getattr(model, attr, None)
            if isinstance(mod, torch.nn.Module) and id(mod) not in seen:
                seen.add(id(mod))
                for t in (*mod.parameters(), *mod.buffers()):
                    key = str(t.device)
                    out[key] = out.get(key, 0) + t.numel() * t.element_size()
    return out


def cuda_memory() -> dict[str, dict[str, int]]:
    """torch's allocated and reserved bytes per CUDA device (empty without CUDA)."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return {}
    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return {}  # never initialise CUDA just to look at it
    return {
        f"cuda:{i}": {"allocated": torch.cuda.memory_allocated(i), "reserved": torch.cuda.memory_reserved(i)}
        for i in range(torch.cuda.device_count())
    }


def sample(
    duckdb_bytes: Callable[[], int | None] | None = None, weights: dict[str, int] | None = None
) -> dict[str, dict[str, int]]:
    """One sample: {'cpu': {'rss', 'duckdb', 'torch'}, 'cuda:N': {'allocated', 'reserved', 'torch'}}."""
    cpu: dict[str, int] = {"rss": psutil.Process().memory_info().rss}
    if duckdb_bytes is not None:
        value = duckdb_bytes()
        if value is not None:
            cpu["duckdb"] = value
    weights = weights or {}
    cpu["torch"] = weights.get("cpu", 0)
    out = {"cpu": cpu}
    for device, figures in cuda_memory().items():
        out[device] = {**figures, "torch": weights.get(device, 0)}
    return out


def duckdb_reader(con: Any) -> Callable[[], int | None]:
    """A function that reads DuckDB's buffer memory through its own cursor (never the query's)."""
    cursor = con.cursor()
    lock = threading.Lock()

    def read() -> int | None:
        with lock:
            try:
                rows = cursor.sql("SELECT sum(memory_usage_bytes)::BIGINT FROM duckdb_memory()").fetchall()
            except Exception:  # noqa: BLE001 - a closed connection: no figure, not an error
                return None
        return int(rows[0][0] or 0)

    read.close = cursor.close  # type: ignore[attr-defined]
    return read


class MemorySampler:
    """Emits a `memory` event now, every `interval` seconds, and once more when stopped."""

    def __init__(self, telemetry: Telemetry, con: Any = None, models: Iterable[Any] = (), interval: float = INTERVAL_S):
        self.telemetry = telemetry
        self.interval = interval
        self.weights = torch_bytes(models)
        self._read = duckdb_reader(con) if con is not None else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _emit(self) -> None:
        self.telemetry.emit("memory", devices=sample(self._read, self.weights))

    def __enter__(self) -> MemorySampler:
        self._emit()
        self._thread = threading.Thread(target=self._loop, name="workbench-memory", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._emit()

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._emit()
        if self._read is not None:
            self._read.close()  # type: ignore[attr-defined]
