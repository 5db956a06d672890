"""Relation-centric execution: layers as SQL over weight blocks, checked against torch."""

import numpy as np
import pytest
import torch

import workbench
from workbench.execution import relation_centric as rc
from workbench.models.layers import chain, split_after_first_linear


@pytest.fixture(scope="module")
def s():
    s = workbench.connect()
    s.sql(
        "CREATE TABLE xs AS SELECT i AS id, list_transform(range(300), lambda j: sin(i * 7 + j)::FLOAT)::FLOAT[300] "
        "AS x FROM range(20) t(i)"
    )
    yield s
    s.close()


@pytest.mark.parametrize("act", [torch.nn.ReLU(), torch.nn.GELU(), torch.nn.GELU(approximate="tanh"), torch.nn.Tanh()])
def test_activations_and_blocks_match_torch(s, act):
    """300 inputs span two 256-wide blocks; 600 hidden units span three."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(300, 600), act, torch.nn.Linear(600, 7, bias=False), act)
    s.register_model("m", net, task="embed", cache="off")
    got = np.array(s.sql("SELECT m(x) AS y FROM xs ORDER BY id", paradigm="relation_centric").pl()["y"].to_list())
    xs = torch.tensor(s.sql("SELECT x FROM xs ORDER BY id").pl()["x"].to_list())
    with torch.no_grad():
        want = net(xs).numpy()
    assert np.allclose(got, want, atol=1e-4, rtol=1e-4), np.abs(got - want).max()


def test_weights_are_stored_once_and_old_versions_removed(s):
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(300, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    s.register_model("w", net, task="classify", cache="off")
    model = s.catalog.get("w")
    assert rc.ensure_weights(s.con, "w", model) > 0
    assert rc.ensure_weights(s.con, "w", model) == 0.0  # same fingerprint: nothing written
    rows = s.sql("SELECT count(*) AS n FROM workbench_weights WHERE model = 'w'").pl()["n"][0]
    assert rows == 4 * 2 + 2 * 1  # (outputs x blocks) per layer
    with torch.no_grad():
        net[0].weight.add_(1.0)  # a new version of the weights
    rc.ensure_weights(s.con, "w", model)
    fps = s.sql("SELECT count(DISTINCT fp) AS n FROM workbench_weights WHERE model = 'w'").pl()["n"][0]
    assert fps == 1


def test_unsupported_layers_say_why():
    assert chain(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4)))[1].startswith(
        "layer LayerNorm has no relational form"
    )

    class Custom(torch.nn.Module):
        def forward(self, x):
            return x * 2

    class Wrapper(torch.nn.Module):  # a forward of its own around children: order unknown
        def __init__(self):
            super().__init__()
            self.inner = torch.nn.Linear(4, 4)

        def forward(self, x):
            return self.inner(x) + x

    assert chain(Custom())[1].startswith("layer Custom has no relational form")
    assert "is not a Sequential chain" in chain(Wrapper())[1]
    assert split_after_first_linear(torch.nn.Sequential(torch.nn.Linear(4, 2))) is None


def test_forcing_relation_centric_on_an_unsupported_model_is_a_clear_error(s):
    s.register_model("norm", torch.nn.Sequential(torch.nn.Linear(300, 4), torch.nn.LayerNorm(4)), task="embed")
    with pytest.raises(workbench.WorkbenchError, match="relation_centric: no relational form: layer LayerNorm"):
        s.sql("SELECT norm(x) FROM xs", paradigm="relation_centric")
    assert s.sql("SELECT count(norm(x)) AS n FROM xs").pl()["n"][0] == 20  # the optimizer runs it another way


def test_a_relational_run_far_slower_than_estimated_moves_to_torch_between_chunks():
    s = workbench.connect()
    try:
        s.sql("CALL load_dataset('digits'); ALTER MODEL digits SET cache = 'off'")
        s.sql("CREATE TABLE many AS SELECT d.id * 10 + r.i AS id, d.pixels FROM digits d, range(3) r(i)")
        sql = "SELECT id, digits(pixels).label AS y FROM many ORDER BY id"
        expected = s.sql(sql, paradigm="dl_centric").pl()
        # a machine where relational layers look nearly free: the estimate is far too low
        constants = s.engine.constants(s.engine.cursor())
        constants.update(rel_s_per_mac=1e-16, rel_s_per_output=1e-16, rel_fixed_s=1e-9, store_s_per_byte=1e-16)
        s.sql("SET disabled_rules = 'dedup_inputs'")
        r = s.sql(sql, paradigm="relation_centric")
        assert r.pl().equals(expected)
        (stats,) = r.stats
        assert stats["switched"].startswith("relation_centric -> dl_centric after")
    finally:
        s.close()
