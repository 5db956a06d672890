"""The future a submitted query returns: it always resolves, with a status and the reason."""

from __future__ import annotations

import threading
import time
from typing import Any

from workbench.errors import QueryDropped

__all__ = ["QueryDropped", "QueryFuture"]


class QueryFuture:
    """A submitted query.

    status: 'queued', 'running', then one of 'done' (finished by its deadline), 'late'
    (finished after it), 'failed' (the query raised; `.result()` raises the error) or
    'dropped' (never ran; `.reason` says why, `.result()` raises QueryDropped).
    """

    def __init__(self, sql: str, params: dict[str, Any] | None, deadline_ms: float | None, seq: int):
        self.sql = sql
        self.params = params
        self.deadline_ms = deadline_ms
        self.seq = seq  # arrival order
        self.submitted = time.perf_counter()
        self.status = "queued"
        self.reason: str | None = None
        self.estimated_ms: float | None = None
        self.actual_ms: float | None = None  # submission to completion
        self.run_ms: float | None = None  # execution alone
        self.started_at: float | None = None  # seconds after submission
        self.finished_at: float | None = None
        self.features: list[dict[str, Any]] = []  # what the latency estimate was made from
        self._result: Any = None
        self._error: BaseException | None = None
        self._event = threading.Event()

    # -- for callers --------------------------------------------------------------------
    @property
    def deadline(self) -> float:
        """Absolute deadline (perf_counter seconds); +inf without one."""
        return self.submitted + self.deadline_ms / 1000 if self.deadline_ms is not None else float("inf")

    def done(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)

    def result(self, timeout: float | None = None) -> Any:
        if not self._event.wait(timeout):
            raise TimeoutError(f"query #{self.seq} still {self.status} after {timeout} s")
        if self.status == "dropped":
            raise QueryDropped(f"query #{self.seq} was dropped: {self.reason}")
        if self._error is not None:
            raise self._error
        return self._result

    def __repr__(self) -> str:
        parts = [f"#{self.seq} {self.status}"]
        if self.estimated_ms is not None:
            parts.append(f"estimated {self.estimated_ms:,.0f} ms")
        if self.actual_ms is not None:
            parts.append(f"actual {self.actual_ms:,.0f} ms")
        if self.deadline_ms is not None:
            parts.append(f"deadline {self.deadline_ms:,.0f} ms")
        if self.reason:
            parts.append(self.reason)
        return f"<QueryFuture {', '.join(parts)}>"

    # -- for the scheduler --------------------------------------------------------------
    def set_running(self) -> None:
        self.status = "running"
        self.started_at = time.perf_counter() - self.submitted

    def set_finished(self, result: Any = None, error: BaseException | None = None, run_ms: float | None = None) -> None:
        now = time.perf_counter()
        self.finished_at = now - self.submitted
        self.actual_ms = self.finished_at * 1000
        self.run_ms = run_ms
        self._result, self._error = result, error
        if error is not None:
            self.status = "failed"
            self.reason = f"{type(error).__name__}: {error}"[:300]
        else:
            self.status = "late" if now > self.deadline else "done"
        self._event.set()

    def set_dropped(self, reason: str) -> None:
        self.status = "dropped"
        self.reason = reason
        self.finished_at = time.perf_counter() - self.submitted
        self._event.set()
