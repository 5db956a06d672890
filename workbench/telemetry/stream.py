"""One in-process event stream per session.

Executors call `emit(kind, **data)`; subscribers get an `Event`. With nobody subscribed an
emit is one attribute check, so an unobserved query pays nothing. Subscribers run on the
thread that emitted (the main thread, a DuckDB thread running a UDF, or the memory sampler),
so they must be quick and thread-safe; one that raises is dropped rather than let a display
problem stop a query.

Kinds and their data:
    query_start     sql, operators [{id, call, paradigm, estimated_rows}], budgets {device: bytes}
    operator_start  id, call, paradigm, rows_total (known inputs, or the estimate)
    progress        id, rows_done, rows_total, batches (this operator's, cumulative)
    cache           id, hits, misses
    bytes           source, target, bytes (e.g. 'duckdb' -> 'cpu'; 'disk' -> 'cpu' when offloading)
    memory          {'cpu': {...}, 'cuda:0': {...}}: bytes per device (see memory.sample)
    generation      id, tokens, tokens_per_s, kv_bytes (a generator's totals so far), rows (of its
                    current call), text (that call's text so far when it decodes one row, else None)
    operator_end    id, rows, seconds
    query_end       rows (result rows), seconds, error (None or a short message)
    download        repo ('org/name@abc1234'), files_done, files_total, bytes_done, bytes_total,
                    finished: a hub download (models/hub.py), from its first file to a last
                    event with finished=True. `CREATE MODEL m FROM 'hf://...'` sends these with
                    no query_start around them (Tracker makes such a download an activity of its
                    own); a query that re-downloads a lost hub model sends them inside its
                    query_start .. query_end. A listener that draws them itself says so with a
                    `draws_downloads = True` attribute, and hub.py then prints no stderr line.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    kind: str
    t: float  # perf_counter seconds
    data: dict[str, Any] = field(default_factory=dict)


Listener = Callable[[Event], None]


class Telemetry:
    def __init__(self) -> None:
        self._listeners: tuple[Listener, ...] = ()
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return bool(self._listeners)

    @property
    def listeners(self) -> tuple[Listener, ...]:
        """Who listens now (e.g. to ask whether one of them draws downloads)."""
        return self._listeners

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Add a listener; returns the function that removes it."""
        with self._lock:
            self._listeners = (*self._listeners, listener)
        return lambda: self.unsubscribe(listener)

    def unsubscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners = tuple(x for x in self._listeners if x is not listener)

    def emit(self, kind: str, **data: Any) -> None:
        listeners = self._listeners  # a tuple: subscribing during an emit is safe
        if not listeners:
            return
        event = Event(kind, time.perf_counter(), data)
        for listener in listeners:
            try:
                listener(event)
            except Exception as exc:  # noqa: BLE001 - a broken display never stops a query
                self.unsubscribe(listener)
                warnings.warn(f"workbench: a telemetry listener failed and was removed: {exc!r}", stacklevel=2)

    def progress(self, op_id: int) -> Callable[[int, int], None] | None:
        """A (rows_done, rows_total) callback for one operator, or None when unobserved."""
        if not self._listeners:
            return None
        batches = [0]

        def report(done: int, total: int) -> None:
            batches[0] += 1
            self.emit("progress", id=op_id, rows_done=done, rows_total=total, batches=batches[0])

        return report
