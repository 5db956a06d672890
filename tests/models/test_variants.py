"""Compressed variants: accuracy within the user's tolerance on real data, their own
fingerprint (so the cache never mixes them up), and visible in EXPLAIN and the stats."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import workbench
from workbench.errors import WorkbenchError
from workbench.models import compress

PARAGRAPHS = "SELECT id, minilm(body) AS e FROM pydoc WHERE id < 200 ORDER BY id"


@pytest.fixture(scope="module")
def s():
    s = workbench.connect()
    s.sql("CALL load_dataset('pydoc'); CALL load_dataset('digits')")
    yield s
    s.close()


def test_int8_minilm_keeps_cosine_and_gets_its_own_fingerprint(s):
    fp32 = np.array(s.sql(PARAGRAPHS).pl()["e"].to_list())
    base_fp = s.catalog.get("minilm").fingerprint()
    s.sql("ALTER MODEL minilm SET precision = 'int8', max_accuracy_loss = 0.01")
    try:
        plan = s.explain(PARAGRAPHS)
        assert plan.operators[0].precision == "int8"
        result = s.sql(PARAGRAPHS)
        (stats,) = result.stats
        assert stats["precision"].startswith("int8") and stats["cache_hits"] == 0, "not the fp32 cache entries"
        int8 = np.array(result.pl()["e"].to_list())
        cosine = (fp32 * int8).sum(axis=1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(int8, axis=1)
        assert cosine.mean() >= 0.99
        assert not np.allclose(fp32, int8, atol=1e-6), "the variant really runs"
        again = s.sql(PARAGRAPHS).stats[0]
        assert again["cache_hits"] == again["rows"] > 0, "the variant's outputs are cached under its own fingerprint"
    finally:
        s.sql("ALTER MODEL minilm SET precision = 'float32'")
    assert s.catalog.get("minilm").fingerprint() == base_fp
    assert s.sql(PARAGRAPHS).stats[0]["cache_misses"] == 0  # the fp32 entries are still there


def test_int8_digits_loses_at_most_one_point_and_leaves_the_relational_forms(s):
    query = "SELECT avg((digits(pixels).label = label)::DOUBLE) AS acc FROM digits"
    fp32 = s.sql(query).pl()["acc"][0]
    s.sql("ALTER MODEL digits SET precision = 'int8', max_accuracy_loss = 0.01")
    try:
        op = s.explain(query).operators[0]
        alternatives = dict(op.alternatives)
        assert alternatives["relation_centric"] is None and alternatives["hybrid"] is None
        assert "runs in torch" in op.reason
        with pytest.raises(WorkbenchError, match="runs in torch"):
            s.sql(query, paradigm="relation_centric")
        int8 = s.sql(query).pl()["acc"][0]
    finally:
        s.sql("ALTER MODEL digits SET precision = 'float32'")
    assert fp32 - int8 <= 0.01


def test_bad_options_are_refused_before_anything_changes(s):
    with pytest.raises(WorkbenchError, match="precision must be one of"):
        s.sql("ALTER MODEL minilm SET precision = 'int3'")
    with pytest.raises(WorkbenchError, match="max_accuracy_loss"):
        s.sql("ALTER MODEL minilm SET max_accuracy_loss = 2")
    options = s.catalog.info("minilm").options
    assert options.get("precision", "float32") == "float32" and options.get("max_accuracy_loss", 0.01) == 0.01


def test_weight_only_int4_and_int8_round_trip_closely():
    torch.manual_seed(0)
    layer = torch.nn.Linear(37, 11)
    x = torch.randn(5, 37)
    for bits, tol in ((8, 0.01), (4, 0.2)):
        q = compress.WeightOnlyLinear(layer, bits)
        err = (q(x) - layer(x)).norm() / layer(x).norm()
        assert err < tol
    assert (
        compress.size_bytes(compress.quantize(torch.nn.Sequential(layer), "int4"))
        < compress.size_bytes(torch.nn.Sequential(layer)) / 3
    )


def test_low_rank_at_full_rank_is_exact_and_the_chosen_ranks_meet_the_tolerance():
    torch.manual_seed(0)
    # a layer of true rank 4 inside a small network: the search finds that rank
    u, v = torch.randn(64, 4), torch.randn(4, 48)
    net = torch.nn.Sequential(torch.nn.Linear(48, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8))
    with torch.no_grad():
        net[0].weight.copy_(u @ v)
    x = torch.randn(100, 48)
    full = compress.low_rank(net, {"0": 48})
    assert torch.allclose(full(x), net(x), atol=1e-4)
    ref = net(x).detach().numpy()
    choice = compress.choose_ranks(
        net, lambda m: 1 - compress.accuracy(ref, m(x).detach().numpy(), "embed"), 1e-4, names=["0"]
    )
    assert choice.ranks == {"0": 4} and choice.loss <= 1e-4 and choice.params_kept < 0.2
