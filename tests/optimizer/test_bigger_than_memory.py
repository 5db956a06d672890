"""A model whose weights exceed DuckDB's memory limit runs relation-centric without running
out of memory: the weight blocks live in the database and DuckDB's join and aggregates
spill. The optimizer picks relation_centric by itself because the weights exceed the
session's memory budget, and the outputs match torch."""

import numpy as np
import torch

import workbench


def test_model_over_the_memory_limit_runs_relation_centric(tmp_path):
    s = workbench.connect(str(tmp_path / "big.duckdb"))
    s.sql("SET memory_budget_cpu = '64MB'")  # DuckDB's own memory_limit becomes 32 MB
    limit = s.sql("SELECT current_setting('memory_limit') AS m").pl()["m"][0]
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(64, 4096),
        torch.nn.ReLU(),
        torch.nn.Linear(4096, 4096),
        torch.nn.ReLU(),
        torch.nn.Linear(4096, 1024),
        torch.nn.ReLU(),
        torch.nn.Linear(1024, 8),
    )
    weights_mb = sum(p.numel() * 4 for p in net.parameters()) / 2**20
    assert weights_mb > 80  # over the budget, and more than twice DuckDB's limit
    s.register_model("big", net, task="embed", cache="off")
    s.sql(
        "CREATE TABLE xs AS SELECT i AS id, list_transform(range(64), lambda j: ((i * 13 + j) % 17) / 17.0)"
        "::FLOAT[64] AS x FROM range(6) t(i)"
    )
    plan = s.explain("SELECT id, big(x) AS y FROM xs ORDER BY id")
    (op,) = plan.operators
    assert op.paradigm == "relation_centric" and not op.forced, plan.text()
    assert "exceed the memory budget" in op.reason
    result = s.sql("SELECT id, big(x) AS y FROM xs ORDER BY id")
    assert result.stats[0]["paradigm"] == "relation_centric"
    got = np.array(result.pl()["y"].to_list(), dtype=np.float32)
    xs = np.array(s.sql("SELECT x FROM xs ORDER BY id").pl()["x"].to_list(), dtype=np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(xs)).numpy()
    assert np.allclose(got, want, rtol=1e-3, atol=1e-4), np.abs(got - want).max()
    stored = s.sql("SELECT count(*) AS n FROM workbench_weights WHERE model = 'big'").pl()["n"][0]
    assert stored > 0 and limit.startswith("30")  # 30.5 MiB: the limit really was below the weights
    # forcing a paradigm that holds the weights in process memory is refused, not run over budget
    try:
        s.sql("SELECT big(x) FROM xs", paradigm="dl_centric")
        raise AssertionError("dl_centric ran over the memory budget")
    except workbench.OutOfMemoryBudget as exc:
        assert "exceed the memory budget" in str(exc)
    s.close()
