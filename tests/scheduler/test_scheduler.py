"""The SLA scheduler: futures always resolve, order and pool bounds hold, policies do what they say."""

import pytest

import workbench
from tests.conftest import run
from workbench.errors import CatalogError, ParameterError
from workbench.scheduler import QueryDropped, QueryFuture

SLOW = "SELECT count(*) AS n FROM range(:n) t(i) WHERE i % 7 = 3"


@pytest.fixture
def s():
    s = workbench.connect(workers=1)
    s.sql("CREATE TABLE log (k INTEGER)")
    yield s
    s.close()


def test_futures_resolve_done_failed_and_dropped(s):
    ok = s.submit("SELECT 41 + 1 AS x", deadline_ms=60_000)
    bad = s.submit("SELECT * FROM no_such_table")
    assert ok.result(timeout=30).pl()["x"][0] == 42 and ok.status == "done"
    assert ok.estimated_ms is not None and ok.actual_ms is not None
    with pytest.raises(CatalogError, match="no_such_table"):
        bad.result(timeout=30)
    assert bad.status == "failed" and "no_such_table" in bad.reason
    s.sql("SET sla_policy = 'hybrid'")
    hopeless = s.submit(SLOW, {"n": 50_000_000}, deadline_ms=0.01)
    with pytest.raises(QueryDropped, match="deadline"):
        hopeless.result(timeout=30)
    assert hopeless.status == "dropped" and "deadline" in hopeless.reason


def test_fifo_order_is_exact_and_no_query_runs_twice(s):
    s.sql("SET sla_policy = 'fifo'")
    futures = [s.submit("INSERT INTO log VALUES (:k)", {"k": k}, deadline_ms=1) for k in range(25)]
    for f in futures:
        f.result(timeout=60)
    starts = [f.started_at + f.submitted for f in futures]
    assert starts == sorted(starts)
    assert s.sql("SELECT list(k ORDER BY rowid) AS ks FROM log").pl()["ks"][0].to_list() == list(range(25))
    assert all(f.status in ("done", "late") for f in futures)


def test_pool_never_exceeds_its_size():
    s = workbench.connect(workers=2)
    futures = [s.submit(SLOW, {"n": 3_000_000}) for _ in range(12)]
    [f.result(timeout=120) for f in futures]
    assert s.scheduler.max_running <= 2
    s.close()


def test_reorder_runs_the_earliest_deadline_first(s):
    s.sql("SET sla_policy = 'reorder'")
    blocker = s.submit(SLOW, {"n": 60_000_000})
    relaxed = s.submit("SELECT 1", deadline_ms=60_000)
    urgent = s.submit("SELECT 2", deadline_ms=30_000)
    for f in (blocker, relaxed, urgent):
        f.result(timeout=60)
    assert urgent.started_at + urgent.submitted <= relaxed.started_at + relaxed.submitted


def test_drop_policy_rejects_what_the_backlog_makes_late(s):
    s.sql("SET sla_policy = 'drop'")
    for _ in range(3):  # teach the estimator what the slow shape costs
        s.submit(SLOW, {"n": 20_000_000}).result(timeout=60)
    backlog = [s.submit(SLOW, {"n": 20_000_000}) for _ in range(4)]
    est = backlog[0].estimated_ms
    tight = s.submit("SELECT 3", deadline_ms=max(est, 1.0))  # cannot wait behind four slow ones
    assert tight.wait(60) and tight.status == "dropped" and "after its deadline" in tight.reason
    [f.result(timeout=60) for f in backlog]


def test_shutdown_cancels_or_waits_and_every_future_resolves():
    s = workbench.connect(workers=1)
    futures = [s.submit(SLOW, {"n": 20_000_000}) for _ in range(6)]
    s.scheduler.shutdown(wait=False, cancel_pending=True)
    for f in futures:
        assert f.wait(60)
    statuses = {f.status for f in futures}
    assert "dropped" in statuses and statuses <= {"done", "late", "dropped"}
    assert all("cancelled" in f.reason for f in futures if f.status == "dropped")
    with pytest.raises(ParameterError, match="shut down"):
        s.scheduler.submit("SELECT 1")
    s.close()
    waited = workbench.connect(workers=1)
    futures = [waited.submit(SLOW, {"n": 5_000_000}) for _ in range(4)]
    waited.scheduler.shutdown(wait=True)
    assert all(f.status in ("done", "late") for f in futures)
    waited.close()


def test_estimator_learns_and_reports_its_error(s):
    s.sql("CALL load_dataset('digits')")
    for k in range(8):
        s.submit("SELECT count(digits(pixels)) FROM digits WHERE id % 8 = :k", {"k": k}).result(timeout=60)
    err = s.scheduler.estimator.error()
    assert err["queries"] == 8 and err["median"] >= 0 and err["p90"] >= err["median"]
    assert "digits" in s.scheduler.estimator.rates
    # the history is in the database, so a new estimator starts from what this one learned
    assert s.sql("SELECT count(*) AS n FROM workbench_query_history").pl()["n"][0] == 8
    from workbench.scheduler.estimator import LatencyEstimator

    assert "digits" in LatencyEstimator(s).rates


def test_params_are_taken_at_submission(s):
    values = {"k": 1}
    f = s.submit("SELECT :k AS k", values)
    values["k"] = 2
    assert f.result(timeout=30).pl()["k"][0] == 1
    with pytest.raises(ParameterError, match="sla_policy"):
        s.sql("SET sla_policy = 'random'")


def test_magic_async_and_deadline(shell):
    ok, fut = run(shell, "%%dlsql --async --deadline 30s\nSELECT 5 AS five")
    assert ok and isinstance(fut, QueryFuture)
    assert fut.result(timeout=30).pl()["five"][0] == 5 and fut.status == "done"
    ok, res = run(shell, "%%dlsql --deadline 30s -o got\nSELECT 6 AS six")
    assert ok and shell.user_ns["got"]["six"][0] == 6
    ok, err = run(shell, "%%dlsql --deadline soon\nSELECT 1")
    assert not ok and "duration" in str(err)
