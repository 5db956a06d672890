"""A cluster that vanishes mid-query (every process of its two nodes ended) fails that query
with one clear ClusterUnavailable; the session's process lives on (Ray's driver is a process
of its own), nothing of the query is written, local queries still run, and the session
reaches a cluster again. Its own cluster: the shared one of conftest.py must survive."""

from __future__ import annotations

import os
import sys
import threading

import psutil
import pytest

import workbench
from tests.cluster import local_cluster
from workbench.errors import ClusterUnavailable

QUERY = "CREATE TABLE {table} AS SELECT {hint} id, minilm(body) AS e FROM pydoc WHERE id < {n}"
RAY2 = "/*+ placement(minilm, ray, 2) */"


@pytest.fixture
def doomed():
    """A two-node cluster of this test alone (stopped by the test, and at the end anyway)."""
    local_cluster.use_in_this_process()
    try:
        cluster = local_cluster.start()
    except Exception as exc:
        pytest.fail(f"cannot start a two-node Ray cluster: {exc}", pytrace=False)
    try:
        yield cluster
    finally:
        local_cluster.stop(cluster)


def cached_minilm(s) -> int:
    stats = s.sql("CALL cache_stats()").pl()
    return int(stats.filter(stats["model"] == "minilm")["entries"].sum()) if len(stats) else 0


def test_a_vanished_cluster_is_one_error_and_the_session_goes_on(doomed, ray_cluster):
    with workbench.connect(cluster=doomed.address, progress=False) as s:
        s.sql("CALL load_dataset('pydoc')")
        s.sql("ALTER MODEL minilm SET cache = 'exact'")
        s.sql(QUERY.format(table="warm", hint=RAY2, n=4))  # two actors hold minilm
        before = cached_minilm(s)
        driver = s.engine.cluster.driver_pid()
        assert driver is not None and driver != os.getpid()
        stopper: list[threading.Thread] = []

        def vanish(event) -> None:  # at the first block back, every process of the cluster ends
            if event.kind == "node_progress" and not stopper:
                stopper.append(threading.Thread(target=local_cluster.stop, args=(doomed,)))
                stopper[0].start()

        stop = s.telemetry.subscribe(vanish)
        try:
            with pytest.raises(ClusterUnavailable) as failed:
                s.sql(QUERY.format(table="half", hint=RAY2, n=600))
        finally:
            stop()
        stopper[0].join()
        message = str(failed.value)
        assert "\n" not in message and doomed.address in message and "vanished" in message
        print(message, file=sys.stderr)
        # this process lives; the driver that Ray ended is gone, and so is every node's process
        assert not psutil.pid_exists(driver) or psutil.Process(driver).status() == psutil.STATUS_ZOMBIE
        assert local_cluster.processes(doomed.temp_dir) == []
        # nothing half-written: no table, no cache entry beyond the warm-up's
        assert "half" not in s.sql("SHOW TABLES").pl()["name"].to_list()
        assert cached_minilm(s) == before
        # the session goes on: the optimizer sees a cluster with no CPU and keeps minilm here
        local = s.sql("SELECT id, minilm(body) AS e FROM pydoc WHERE id < 10 ORDER BY id")
        assert len(local.pl()) == 10 and local.stats[0].get("placement", "local") != "ray"
        # ... and reaches a cluster again
        s.sql(f"SET cluster = '{ray_cluster.address}'")
        again = s.sql("SELECT /*+ placement(minilm, ray, 1) */ id, minilm(body) AS e FROM pydoc WHERE id < 10")
        assert len(again.pl()) == 10 and again.stats[0]["placement"] == "ray"
