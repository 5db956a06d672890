"""The model operator on a real two-node Ray cluster (tests/cluster/conftest.py): results equal
the local run, every node reports 127.0.0.1, a worker killed mid-query loses and duplicates no
row, Ctrl-C stops the remote work, and the stats say where each operator ran."""

from __future__ import annotations

import _thread
import os
import signal
import threading
import time

import jsonschema
import numpy as np
import psutil
import pytest

import workbench
from workbench.errors import QueryInterrupted
from workbench.plan import schema_ts

MINILM = "SELECT {hint} id, minilm(body) AS e FROM pydoc WHERE id < {n} ORDER BY id"
DIGITS = "SELECT {hint} id, digits(pixels) AS p FROM digits WHERE id < 300 ORDER BY id"
RAY2 = "/*+ placement({model}, ray, 2) */"
LOCAL = "/*+ placement({model}, local) */"


@pytest.fixture(scope="module")
def s(ray_cluster):
    s = workbench.connect(cluster=ray_cluster.address)
    s.sql("CALL load_dataset('pydoc'); CALL load_dataset('digits')")
    s.sql("ALTER MODEL minilm SET cache = 'off'")  # every row is computed where the plan says
    s.sql("ALTER MODEL digits SET cache = 'off'")
    yield s
    s.close()


def embeddings(result) -> tuple[list[int], np.ndarray]:
    frame = result.pl()
    return frame["id"].to_list(), np.array(frame["e"].to_list(), dtype=np.float32)


def test_every_node_and_the_driver_are_on_loopback(s):
    nodes = s.engine.cluster.nodes()
    assert len(nodes) == 2
    assert {n.address for n in nodes} == {"127.0.0.1"}
    assert s.engine.cluster.driver_address() == "127.0.0.1"  # the session's Ray driver process


def test_minilm_on_two_actors_equals_the_local_run(s):
    ids, local = embeddings(s.sql(MINILM.format(hint=LOCAL.format(model="minilm"), n=80)))
    result = s.sql(MINILM.format(hint=RAY2.format(model="minilm"), n=80))
    ray_ids, remote = embeddings(result)
    assert ray_ids == ids
    assert np.abs(local - remote).max() <= 1e-4
    (stats,) = result.stats
    assert stats["placement"] == "ray" and stats["actors"] == 2
    assert len(stats["nodes"]) == 2 and {n["address"] for n in stats["nodes"]} == {"127.0.0.1"}
    assert sum(n["rows"] for n in stats["nodes"]) == stats["rows"] == len(ids)


def test_explain_shows_the_cluster_alternative_and_a_valid_plan(s):
    plan = s.explain(MINILM.format(hint=RAY2.format(model="minilm"), n=80))
    assert "[dl_centric on ray (2 actors on 2 nodes) (forced)" in plan.text()
    (op,) = plan.operators
    assert dict(op.alternatives)["dl_centric on ray"] is not None
    jsonschema.validate(plan.to_dict(), schema_ts.load_schema())
    free = s.explain(MINILM.format(hint="", n=80))  # the optimizer weighs the cluster too
    assert "dl_centric on ray" in dict(free.operators[0].alternatives)


def test_a_worker_killed_mid_query_loses_and_duplicates_no_row(s):
    ids, local = embeddings(s.sql(MINILM.format(hint=LOCAL.format(model="minilm"), n=120)))
    s.sql(MINILM.format(hint=RAY2.format(model="minilm"), n=20))  # two warm actors hold minilm
    pids = s.engine.cluster.pids()
    assert len(pids) == 2
    killed: list[int] = []

    def kill_one(event) -> None:  # at the first block back, one actor's process dies
        if event.kind == "node_progress" and not killed:
            killed.append(pids[0])
            os.kill(pids[0], signal.SIGKILL)

    stop = s.telemetry.subscribe(kill_one)
    try:
        result = s.sql(MINILM.format(hint=RAY2.format(model="minilm"), n=120))
    finally:
        stop()
    assert killed and not psutil.pid_exists(killed[0])
    ray_ids, remote = embeddings(result)
    assert ray_ids == ids  # each key exactly once, in order
    assert np.abs(local - remote).max() <= 1e-4
    (stats,) = result.stats
    assert stats["retried_blocks"] >= 1
    assert sum(n["rows"] for n in stats["nodes"]) == stats["rows"]  # distinct inputs, each once


def test_ctrl_c_stops_the_remote_work(s):
    s.sql(MINILM.format(hint=RAY2.format(model="minilm"), n=20))
    pids = s.engine.cluster.pids()
    interrupted_at: list[float] = []

    def ctrl_c(event) -> None:
        if event.kind == "node_progress" and not interrupted_at:
            interrupted_at.append(time.perf_counter())
            threading.Timer(0.0, _thread.interrupt_main).start()

    stop = s.telemetry.subscribe(ctrl_c)
    try:
        with pytest.raises(QueryInterrupted):
            s.sql(MINILM.format(hint=RAY2.format(model="minilm"), n=400))
    finally:
        stop()
    # the actors (and the blocks they were running) are gone: killed, not left to finish
    deadline = time.monotonic() + 10
    while any(psutil.pid_exists(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(psutil.pid_exists(p) for p in pids)
    assert s.engine.cluster.pids() == []
    print(f"actors gone {time.perf_counter() - interrupted_at[0]:.2f} s after Ctrl-C")


def test_a_model_over_the_budget_runs_offloaded_on_each_actor(s, tmp_path_factory):
    from tests.runtime.test_offload import _text_model_dir

    d = _text_model_dir(tmp_path_factory.mktemp("big"), layers=8)  # ~11 MB of weights
    s.sql(f"CREATE MODEL big FROM '{d}' WITH (task = 'embed', batch_size = 8, cache = 'off')")
    s.sql(f"CREATE MODEL streamed FROM '{d}' WITH (task = 'embed', batch_size = 8, cache = 'off', offload = 'on')")
    query = "SELECT {hint} id, {model}(body) AS e FROM pydoc WHERE id < 40 ORDER BY id"
    _, resident = embeddings(s.sql(query.format(hint="", model="big")))
    s.sql("SET memory_budget_cpu = '40MB'")
    try:
        result = s.sql(query.format(hint="/*+ placement(streamed, ray, 1) */", model="streamed"))
    finally:
        s.sql("SET memory_budget_cpu = 'none'")
    (stats,) = result.stats
    assert stats["placement"] == "ray" and stats["memory"].startswith("offloaded")
    assert np.abs(embeddings(result)[1] - resident).max() <= 1e-4


def test_digits_on_the_cluster_equals_the_local_run(s):
    """(After Ctrl-C killed the pool: a later query starts actors afresh.)"""
    local = s.sql(DIGITS.format(hint=LOCAL.format(model="digits"))).pl()
    result = s.sql(DIGITS.format(hint=RAY2.format(model="digits")))
    remote = result.pl()
    assert remote["id"].to_list() == local["id"].to_list()
    assert [p["label"] for p in remote["p"]] == [p["label"] for p in local["p"]]
    scores = np.array([p["score"] for p in remote["p"]]) - np.array([p["score"] for p in local["p"]])
    assert np.abs(scores).max() <= 1e-4
    assert result.stats[0]["placement"] == "ray" and result.stats[0]["actors"] == 2
