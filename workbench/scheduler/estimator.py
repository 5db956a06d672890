"""Predict a query's latency before it runs, and learn from every query that ran.

    latency = overhead(statement) + sum over model operators of misses x seconds-per-input(model)

`misses` comes from the plan: the exact count of distinct inputs times (1 - the expected
cache hit ratio read from the cache table). Seconds per input start from a small probe run of
the model (the calibration) and then follow the median of the last measured per-operator
rates; the overhead of each statement shape (its text with parameters as placeholders)
follows the median of its last measured remainders. Medians, not means: a query slowed once
by a busy machine should not move the next estimates much. Every observation is stored in `workbench_query_history`, and
a new estimator starts from that history, so estimates improve across restarts.
"""

from __future__ import annotations

import json
import re
import statistics
import threading
from collections import deque
from collections.abc import Mapping
from typing import Any, Protocol

import duckdb
import numpy as np

from workbench.db import run
from workbench.engine.models import profile_of
from workbench.models.base import Model
from workbench.models.catalog import Catalog
from workbench.optimizer.cost import CostModel, Facts
from workbench.plan.nodes import Plan
from workbench.result import Result

HISTORY = "workbench_query_history"
WINDOW = 15  # observations a median is taken over
DEFAULT_OVERHEAD = 0.003  # seconds, before any history
_PROBE = ("The quick brown fox jumps over the lazy dog while the database plans a query. " * 6)[:480]


def statement_key(sql: str) -> str:
    """The shape of a statement: whitespace collapsed, literals and parameters kept as written."""
    return re.sub(r"\s+", " ", sql.strip()).lower()[:500]


class Runs(Protocol):
    """What the scheduler and its estimator use of a session."""

    catalog: Catalog

    def sql(
        self, text: str, params: Mapping[str, Any] | None = None, *, namespace: Mapping[str, Any] | None = None
    ) -> Result: ...

    def explain(self, text: str, params: Mapping[str, Any] | None = None) -> Plan: ...

    def model(self, name: str) -> Model: ...

    def cursor(self) -> duckdb.DuckDBPyConnection: ...

    def cost_model(self) -> CostModel: ...


class LatencyEstimator:
    def __init__(self, session: Runs):
        self.session = session
        self._rates: dict[str, deque[float]] = {}  # model -> recent seconds per computed input
        self._overheads: dict[str, deque[float]] = {}  # statement shape -> recent seconds besides models
        self.errors: list[float] = []  # relative errors of finished queries
        self._lock = threading.Lock()
        run(
            session.cursor(),
            f"CREATE TABLE IF NOT EXISTS {HISTORY} (finished_at TIMESTAMP DEFAULT current_timestamp, "
            "shape VARCHAR, operators JSON, estimated_ms DOUBLE, actual_ms DOUBLE, status VARCHAR)",
        )
        self._learn_history()

    # -- estimating ---------------------------------------------------------------------
    def features(self, sql: str, params: dict[str, Any] | None) -> list[dict[str, Any]]:
        """Per model operator: model and expected misses (from the plan, no model runs)."""
        plan = self.session.explain(sql, params)
        feats = []
        for op in plan.operators:
            rows = op.estimated_rows or 0
            misses = rows * (1 - (op.expected_hit_ratio or 0.0))
            feats.append({"model": op.model, "misses": float(misses)})
        return feats

    @property
    def rates(self) -> dict[str, float]:
        return {m: statistics.median(v) for m, v in self._rates.items()}

    @property
    def overheads(self) -> dict[str, float]:
        return {k: statistics.median(v) for k, v in self._overheads.items()}

    def estimate_seconds(self, sql: str, feats: list[dict[str, Any]]) -> float:
        recent = self._overheads.get(statement_key(sql))
        total = statistics.median(recent) if recent else self._default_overhead()
        for f in feats:
            total += f["misses"] * self.rate(f["model"])
        return total

    def rate(self, model: str) -> float:
        if model not in self._rates:
            self._add(self._rates, model, self._calibrate(model))
        return statistics.median(self._rates[model])

    def _default_overhead(self) -> float:
        values = [statistics.median(v) for v in self._overheads.values()]
        return statistics.median(values) if values else DEFAULT_OVERHEAD

    @staticmethod
    def _add(table: dict[str, deque[float]], key: str, value: float) -> None:
        table.setdefault(key, deque(maxlen=WINDOW)).append(value)

    def _calibrate(self, name: str) -> float:
        """Seconds per input before any history: the cost model's own estimate for the model
        (one probe of it per process, shared with the optimizer), at a typical text length."""
        profile = profile_of(name, self.session.model(name), self.session.cost_model().c)
        facts = Facts(rows=1, input_rows=1, avg_chars=float(len(_PROBE)))
        return CostModel(self.session.cost_model().c).row_seconds(profile, profile.default_batch(), facts)

    # -- learning -----------------------------------------------------------------------
    def observe(
        self,
        sql: str,
        feats: list[dict[str, Any]],
        estimated_s: float | None,
        run_s: float,
        stats: list[dict[str, Any]],
        status: str,
    ) -> None:
        with self._lock:
            model_s = 0.0
            for s in stats:
                computed = s.get("cache_misses") or (s["rows"] if s.get("cache_policy", "off") == "off" else 0)
                if computed:
                    self._add(self._rates, s["model"], s["seconds"] / computed)
                model_s += s["seconds"]
            self._add(self._overheads, statement_key(sql), max(run_s - model_s, 0.0))
            if estimated_s is not None and run_s > 0:
                self.errors.append(abs(estimated_s - run_s) / run_s)
        try:
            ops = [
                {"model": s["model"], "computed": s.get("cache_misses") or s["rows"], "seconds": s["seconds"]}
                for s in stats
            ]
            run(
                self.session.cursor(),
                f"INSERT INTO {HISTORY} (shape, operators, estimated_ms, actual_ms, status) VALUES (?, ?, ?, ?, ?)",
                [
                    statement_key(sql),
                    json.dumps(ops),
                    None if estimated_s is None else estimated_s * 1000,
                    run_s * 1000,
                    status,
                ],
            )
        except Exception:  # history is a help, never a reason for a query to fail
            pass

    def _learn_history(self) -> None:
        rows = run(self.session.cursor(), f"SELECT shape, operators, actual_ms FROM {HISTORY} ORDER BY finished_at")
        for shape, ops_json, actual_ms in rows:
            ops = json.loads(ops_json) if ops_json else []
            model_s = 0.0
            for op in ops:
                if op.get("computed"):
                    self._add(self._rates, op["model"], op["seconds"] / op["computed"])
                model_s += op["seconds"]
            self._add(self._overheads, shape, max(actual_ms / 1000 - model_s, 0.0))

    def error(self) -> dict[str, float | int]:
        """Median and p90 relative error of estimates against actual execution time."""
        with self._lock:
            errs = list(self.errors)
        if not errs:
            return {"queries": 0, "median": float("nan"), "p90": float("nan")}
        return {"queries": len(errs), "median": float(np.median(errs)), "p90": float(np.percentile(errs, 90))}
