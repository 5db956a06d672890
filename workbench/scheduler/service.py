"""The scheduler: a bounded worker pool fed by an SLA-aware sequencer.

Policies (`SET sla_policy = ...`):
    fifo     first come, first served (the baseline)
    reorder  earliest deadline first, using nothing but the deadlines (no query is dropped)
    drop     first come, first served, but a query predicted (from the latency estimates of
             the queue ahead of it and its own) to finish after its deadline is rejected at
             admission, so it does not delay the others
    hybrid   earliest deadline first; a query is dropped only when it cannot make its deadline
             even if it ran at once: at admission (its own estimate exceeds its deadline), and
             when a worker frees up if running it would make a waiting query miss its deadline
             (otherwise it runs, late, rather than leave the worker idle)

Workers call the session itself: a session runs every call on a DuckDB cursor of its own,
so no connection is shared across threads. Futures always resolve: done, late, failed (the
query raised) or dropped (with the reason).
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from workbench.engine.config import POLICIES
from workbench.errors import ParameterError
from workbench.scheduler.estimator import LatencyEstimator, Runs
from workbench.scheduler.future import QueryFuture

__all__ = ["POLICIES", "Scheduler"]


class Scheduler:
    def __init__(self, session: Runs, workers: int = 2):
        if workers < 1:
            raise ParameterError("the worker pool needs at least one worker")
        self.session = session
        self.workers = workers
        self.policy = "fifo"
        self.estimator = LatencyEstimator(session)
        self.finished: list[QueryFuture] = []
        self.max_running = 0  # the most queries seen running at once
        self._queue: list[QueryFuture] = []
        self._running: dict[int, QueryFuture] = {}
        self._cond = threading.Condition()
        self._seq = itertools.count(1)
        self._closed = False
        self._estimate_lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._work, name=f"workbench-worker-{i}", daemon=True) for i in range(workers)
        ]
        for t in self._threads:
            t.start()

    # -- submission ---------------------------------------------------------------------
    def submit(self, sql: str, params: dict[str, Any] | None = None, deadline_ms: float | None = None) -> QueryFuture:
        if self._closed:
            raise ParameterError("the scheduler is shut down")
        if deadline_ms is not None and deadline_ms <= 0:
            raise ParameterError(f"deadline_ms must be positive, not {deadline_ms}")
        future = QueryFuture(sql, params, deadline_ms, next(self._seq))
        future.features = []
        for attempt in (1, 2):  # a second try rides out a moment of catalog contention
            try:
                with self._estimate_lock:  # estimation reads through the submitting session
                    future.features = self.estimator.features(sql, params)
                    future.estimated_ms = self.estimator.estimate_seconds(sql, future.features) * 1000
                break
            except Exception:  # a query that cannot be planned fails when it runs, with its own error
                time.sleep(0.01 * attempt)
        with self._cond:
            reason = self._admission(future)
            if reason:
                future.set_dropped(reason)
                self.finished.append(future)
                return future
            self._queue.append(future)
            self._cond.notify()
        return future

    def _admission(self, f: QueryFuture) -> str | None:
        if self.policy not in ("drop", "hybrid") or f.estimated_ms is None or f.deadline_ms is None:
            return None
        now = time.perf_counter()
        own = f.estimated_ms / 1000
        if self.policy == "hybrid":
            wait = 0.0  # the best it can do: run at once
        else:  # fifo order: everything queued or running goes first
            ahead = sum((q.estimated_ms or 0) / 1000 for q in self._queue)
            ahead += sum(
                max((r.estimated_ms or 0) / 1000 - (now - r.submitted - (r.started_at or 0)), 0)
                for r in self._running.values()
            )
            wait = ahead / self.workers
        finish = now + wait + own
        if finish > f.deadline:
            return (
                f"predicted to finish {1000 * (finish - f.submitted):,.0f} ms after submission, "
                f"after its deadline of {f.deadline_ms:,.0f} ms"
            )
        return None

    # -- dispatch -----------------------------------------------------------------------
    def _next(self) -> QueryFuture | None:
        """The next query to run under the policy (caller holds the lock)."""
        while self._queue:
            if self.policy in ("reorder", "hybrid"):
                f = min(self._queue, key=lambda q: (q.deadline, q.seq))
            else:
                f = min(self._queue, key=lambda q: q.seq)
            self._queue.remove(f)
            if self.policy == "hybrid" and self._hopeless(f) and self._would_cost_a_deadline(f):
                f.set_dropped(
                    f"cannot meet its deadline of {f.deadline_ms:,.0f} ms even if run now "
                    f"(estimated {f.estimated_ms:,.0f} ms), and running it would make a waiting "
                    "query miss its own"
                )
                self.finished.append(f)
                continue
            return f
        return None

    @staticmethod
    def _hopeless(f: QueryFuture) -> bool:
        return f.estimated_ms is not None and time.perf_counter() + f.estimated_ms / 1000 > f.deadline

    def _would_cost_a_deadline(self, f: QueryFuture) -> bool:
        """Whether running `f` now would push a waiting query that can still make its deadline
        past it. A query that is late anyway but costs nobody else runs: it completes (late)
        instead of being thrown away, so dropping never lowers throughput for nothing."""
        now = time.perf_counter()
        own = (f.estimated_ms or 0) / 1000
        for q in self._queue:
            if q.estimated_ms is None:
                continue
            run = q.estimated_ms / 1000
            if now + run <= q.deadline < now + own + run:
                return True
        return False

    def _work(self) -> None:
        while True:
            with self._cond:
                f = None
                while not self._closed and (f := self._next()) is None:
                    self._cond.wait()
                if f is None:
                    return
                f.set_running()
                self._running[f.seq] = f
                self.max_running = max(self.max_running, len(self._running))
            start = time.perf_counter()
            result, error = None, None
            try:
                self.session.catalog.refresh()  # models another process may have created
                result = self.session.sql(f.sql, f.params, namespace={})
            except BaseException as exc:  # any failure resolves the future, never the worker
                error = exc
            run_s = time.perf_counter() - start
            # Learn before resolving: whoever waits on the future sees an estimator that knows it.
            status = "failed" if error is not None else ("late" if time.perf_counter() > f.deadline else "done")
            stats = result.stats if result is not None else []
            est = f.estimated_ms / 1000 if f.estimated_ms is not None else None
            self.estimator.observe(f.sql, f.features, est, run_s, stats, status)
            with self._cond:
                self._running.pop(f.seq, None)
                f.set_finished(result, error, run_ms=run_s * 1000)
                self.finished.append(f)
                self._cond.notify_all()

    # -- life cycle ---------------------------------------------------------------------
    def pending(self) -> int:
        with self._cond:
            return len(self._queue) + len(self._running)

    def shutdown(self, wait: bool = True, cancel_pending: bool = False) -> None:
        """Stop taking queries. `wait`: let queued queries run first; `cancel_pending`: drop
        the queued ones (reason 'cancelled'). Running queries always finish."""
        with self._cond:
            if cancel_pending or not wait:  # nothing queued is left without an answer
                for f in self._queue:
                    f.set_dropped("cancelled: the scheduler was shut down")
                    self.finished.append(f)
                self._queue.clear()
            if wait:
                while self._queue or self._running:
                    self._cond.wait(0.05)
            self._closed = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=None if wait else 0.1)
