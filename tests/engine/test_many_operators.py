"""A statement with 12 model operators, nested (up to 4 deep) and side by side, in the SELECT
list and in WHERE, gives the rows the torch modules give when run directly in Python, in
every paradigm and in the optimizer's own choice.

Twelve operators means operator ids 10 and 11 exist, and some of them read the output of
another (ids that share a prefix: 1 and 10, 1 and 11).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import workbench
from workbench.models import mlp as saved_mlp
from workbench.models.train_digits import WEIGHTS

MODES = (None, "dl_centric", "udf_centric", "relation_centric", "hybrid")
LIMIT = 200


def mlp(seed: int, out: int, hidden: int = 16) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(64, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, out)).eval()


DIGITS = saved_mlp.load(WEIGHTS)[0].eval()

# embedders FLOAT[64] -> FLOAT[64] (so they nest), classifiers FLOAT[64] -> 10 classes, a regressor
MODULES = {
    **{f"e{i}": (mlp(i, 64), "embed") for i in range(1, 7)},
    **{f"c{i}": (mlp(10 + i, 10), "classify") for i in range(1, 4)},
    "r1": (mlp(20, 1, hidden=8), "regress"),
}

# the 12 distinct model calls of the query (digits is the built-in MLP)
QUERY = f"""
SELECT id,
       c1(e2(e1(pixels))).label AS l1,
       c1(e2(e1(pixels))).score AS s1,
       e2(e1(pixels))[3] AS x2,
       c2(e3(pixels)).label AS l2,
       c3(e5(e4(e3(pixels)))).label AS l3,
       c3(e5(e4(e3(pixels)))).score AS s3,
       r1(e6(pixels)) AS r,
       digits(pixels).label AS d,
       c1(pixels).label AS l4
FROM digits
WHERE id < {LIMIT} AND digits(pixels).label <> 5 AND c2(e3(pixels)).score > 0.0
ORDER BY id
"""
CALLS = [
    "e1(pixels)",
    "e2(e1(pixels))",
    "c1(e2(e1(pixels)))",
    "e3(pixels)",
    "c2(e3(pixels))",
    "e4(e3(pixels))",
    "e5(e4(e3(pixels)))",
    "c3(e5(e4(e3(pixels))))",
    "e6(pixels)",
    "r1(e6(pixels))",
    "digits(pixels)",
    "c1(pixels)",
]


@pytest.fixture(scope="module")
def s():
    s = workbench.connect(progress=False)
    s.sql("CALL load_dataset('digits'); ALTER MODEL digits SET cache = 'off'")
    for name, (module, task) in MODULES.items():
        s.register_model(name, module, task=task, cache="off")
    yield s
    s.close()


def expected_rows(s: workbench.Session) -> list[dict]:
    """The query's rows computed by the torch modules themselves."""
    data = s.sql(f"SELECT id, pixels FROM digits WHERE id < {LIMIT} ORDER BY id").pl()
    ids = data["id"].to_list()
    x = torch.from_numpy(np.asarray(data["pixels"].to_list(), dtype=np.float32))
    m = {name: module for name, (module, _) in MODULES.items()}
    with torch.inference_mode():
        digits = DIGITS(x).argmax(-1).tolist()  # the built-in model's own weights
        e1 = m["e1"](x)
        e2 = m["e2"](e1)
        c1 = m["c1"](e2).softmax(-1).max(-1)
        e3 = m["e3"](x)
        c2 = m["c2"](e3).softmax(-1).max(-1)
        e5 = m["e5"](m["e4"](e3))
        c3 = m["c3"](e5).softmax(-1).max(-1)
        r = m["r1"](m["e6"](x))[:, 0]
        c1x = m["c1"](x).softmax(-1).max(-1)
    rows = []
    for i, id_ in enumerate(ids):
        if digits[i] == 5 or not float(c2.values[i]) > 0.0:
            continue
        rows.append(
            {
                "id": id_,
                "l1": int(c1.indices[i]),
                "s1": float(c1.values[i]),
                "x2": float(e2[i, 2]),
                "l2": int(c2.indices[i]),
                "l3": int(c3.indices[i]),
                "s3": float(c3.values[i]),
                "r": float(r[i]),
                "d": digits[i],
                "l4": int(c1x.indices[i]),
            }
        )
    return rows


def close(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-5)
    return a == b


def test_the_query_has_twelve_operators(s):
    plan = s.explain(QUERY)
    assert len(plan.operators) == 12, [op.call for op in plan.operators]
    assert sorted(op.model for op in plan.operators) == sorted(c.split("(")[0] for c in CALLS)
    assert max(op.id for op in plan.operators) - min(op.id for op in plan.operators) == 11


@pytest.mark.parametrize("mode", MODES, ids=[m or "optimizer" for m in MODES])
def test_twelve_operators_give_the_torch_rows(s, mode):
    expected = expected_rows(s)
    assert len(expected) > 100  # the filters keep most rows: a real comparison
    result = s.sql(QUERY, paradigm=mode)
    got = result.arrow().to_pylist()
    assert len(result.stats) == 12
    if mode is not None:
        assert {st["paradigm"] for st in result.stats} == {mode}
    assert [r["id"] for r in got] == [r["id"] for r in expected]
    bad = [(g, e) for g, e in zip(got, expected) if not all(close(g[k], e[k]) for k in e)]
    assert not bad, f"{len(bad)} of {len(got)} rows differ from torch, e.g.\n{bad[0][0]}\n{bad[0][1]}"
