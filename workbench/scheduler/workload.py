"""A reproducible mixed workload on the real datasets, and its replay under a policy.

Kinds of query (weights are their share of arrivals):
    lookup    a row by id from pydoc (milliseconds)
    classify  a digits-model count over a slice of the digits table (tens of ms)
    search    a minilm semantic search inside one pydoc topic (a fraction of a second)
    bulk      minilm over 60 paragraphs (about half a second to a second)

Arrivals are a Poisson process at `load` times the pool's capacity (workers / mean service
time, measured first). Each query's deadline is its kind's mean service time times a slack,
plus the longest kind's mean service time: a worker cannot be taken from a query mid-way, so
any deadline shorter than the longest query could be missed by a query that arrived at the
wrong moment, whatever the policy.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.scheduler.future import QueryFuture
    from workbench.session import Session


@dataclass(frozen=True)
class QueryKind:
    name: str
    sql: str
    params: Callable[[random.Random], dict[str, Any]]
    weight: float
    slack: float


def kinds(session: Session) -> list[QueryKind]:
    topics = [
        r[0]
        for r in session.cursor()
        .sql("SELECT topic FROM pydoc GROUP BY topic HAVING count(*) BETWEEN 15 AND 40 ORDER BY topic")
        .fetchall()
    ]
    questions = [
        "how do I open a file",
        "what is a generator",
        "exceptions and errors",
        "loop over a list",
        "import a module",
        "define a class",
        "string formatting",
        "integer division",
    ]
    return [
        QueryKind(
            "lookup", "SELECT topic, body FROM pydoc WHERE id = $id", lambda r: {"id": r.randrange(2000)}, 0.45, 4.0
        ),
        QueryKind(
            "classify",
            "SELECT count(*) AS n FROM digits WHERE digits(pixels).label = $d AND id % 7 = $m",
            lambda r: {"d": r.randrange(10), "m": r.randrange(7)},
            0.25,
            4.0,
        ),
        QueryKind(
            "search",
            "SELECT id FROM pydoc WHERE topic = $topic AND list_cosine_similarity(minilm(body), minilm($q)) > 0.3",
            lambda r: {"topic": r.choice(topics), "q": r.choice(questions)},
            0.2,
            3.0,
        ),
        QueryKind(
            "bulk",
            "SELECT count(minilm(body)) AS n FROM pydoc WHERE id >= $a AND id < $a + 60",
            lambda r: {"a": r.randrange(0, 2200)},
            0.1,
            3.0,
        ),
    ]


def prepare(session: Session) -> None:
    """Datasets, and model caches off so every query's cost is its real inference cost."""
    session.sql("CALL load_dataset('pydoc'); CALL load_dataset('digits')")
    session.sql("ALTER MODEL minilm SET cache = 'off'; ALTER MODEL digits SET cache = 'off'")


def measure(session: Session, query_kinds: list[QueryKind], runs: int = 4, seed: int = 0) -> dict[str, float]:
    """Mean service seconds per kind, measured through the pool (this also teaches the estimator)."""
    rng = random.Random(seed)
    means = {}
    for k in query_kinds:
        times = []
        for _ in range(runs):
            f = session.submit(k.sql, k.params(rng))
            f.result(timeout=300)
            assert f.run_ms is not None  # set when the query finished
            times.append(f.run_ms / 1000)
        means[k.name] = statistics.mean(times)
    return means


@dataclass
class Arrival:
    at: float  # seconds after the start
    kind: str
    sql: str
    params: dict[str, Any]
    deadline_ms: float


def generate(
    query_kinds: list[QueryKind], service: dict[str, float], n: int, load: float, workers: int, seed: int = 1
) -> list[Arrival]:
    rng = random.Random(seed)
    total_w = sum(k.weight for k in query_kinds)
    mean_service = sum(k.weight / total_w * service[k.name] for k in query_kinds)
    rate = load * workers / mean_service  # arrivals per second
    floor_ms = max(service.values()) * 1000
    t, arrivals = 0.0, []
    for _ in range(n):
        t += rng.expovariate(rate)
        k = rng.choices(query_kinds, weights=[q.weight for q in query_kinds])[0]
        arrivals.append(Arrival(t, k.name, k.sql, k.params(rng), k.slack * service[k.name] * 1000 + floor_ms))
    return arrivals


@dataclass
class Report:
    policy: str
    load: float
    queries: int
    violations: int  # late + dropped + failed
    drops: int
    throughput: float  # completed queries (on time or late) per second
    goodput: float  # queries completed by their deadline per second
    p50_ms: float
    p99_ms: float
    est_median: float
    est_p90: float
    futures: list[QueryFuture] = field(default_factory=list, repr=False)


def replay(session: Session, arrivals: list[Arrival], policy: str, load: float) -> Report:
    session.sql(f"SET sla_policy = '{policy}'")
    errors_before = len(session.scheduler.estimator.errors)
    start = time.perf_counter()
    futures = []
    for a in arrivals:
        delay = start + a.at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        f = session.submit(a.sql, a.params, deadline_ms=a.deadline_ms)
        f.kind = a.kind  # type: ignore[attr-defined]
        futures.append(f)
    for f in futures:
        f.wait(600)
    makespan = max(f.submitted + (f.finished_at or 0) for f in futures) - start
    completed = [f for f in futures if f.status in ("done", "late")]
    latencies = sorted(f.actual_ms for f in completed if f.actual_ms is not None) or [float("nan")]
    errors = session.scheduler.estimator.errors[errors_before:] or [float("nan")]
    return Report(
        policy=policy,
        load=load,
        queries=len(futures),
        violations=sum(f.status in ("late", "dropped", "failed") for f in futures),
        drops=sum(f.status == "dropped" for f in futures),
        throughput=len(completed) / makespan if makespan > 0 else float("nan"),
        goodput=sum(f.status == "done" for f in futures) / makespan if makespan > 0 else float("nan"),
        p50_ms=statistics.median(latencies),
        p99_ms=latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        est_median=statistics.median(errors),
        est_p90=sorted(errors)[int(0.9 * (len(errors) - 1))],
        futures=futures,
    )
