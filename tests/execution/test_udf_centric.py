"""UDF-centric execution inside DuckDB's pipeline: errors surface, LIMIT stops early,
unused outputs are never computed, NULLs pass through, repeated inputs run once per vector."""

import pytest
import torch

import workbench


@pytest.fixture(scope="module")
def s(digits_session):
    digits_session.sql("ALTER MODEL digits SET cache = 'off'")
    return digits_session


def test_limit_without_order_stops_early(s):
    r = s.sql("SELECT id, digits(pixels).label FROM digits LIMIT 3")
    assert r.stats[0]["paradigm"] == "udf_centric" and r.stats[0]["input_rows"] <= 2048
    assert len(r) == 3


def test_unused_output_is_not_computed(s):
    r = s.sql("SELECT count(*) AS n FROM (SELECT id, digits(pixels) AS d FROM digits)", paradigm="udf_centric")
    assert r.pl()["n"][0] == 1797


def test_model_errors_surface_unchanged(s):
    class Broken(torch.nn.Module):
        def forward(self, x):
            raise ValueError("model bug")

    s.register_model("broken", Broken(), task="regress", input_dim=64, output_dim=1, cache="off")
    with pytest.raises(workbench.ModelError, match="model 'broken' failed on batch 1.*ValueError: model bug"):
        s.sql("SELECT broken(pixels) FROM digits", paradigm="udf_centric")
    assert s.sql("SELECT 1 AS ok").pl()["ok"][0] == 1  # the session goes on


def test_nulls_pass_through_and_repeats_run_once(s):
    r = s.sql(
        "SELECT digits(p).label AS l FROM (SELECT CASE WHEN id % 2 = 0 THEN pixels END AS p "
        "FROM digits, range(3) t(i) WHERE id < 10 ORDER BY id)",
        paradigm="udf_centric",
    )
    labels = r.pl()["l"].to_list()
    # NULLs never reach the model; 15 rows hold 5 distinct inputs
    assert labels.count(None) == 15 and r.stats[0]["input_rows"] == 15 and r.stats[0]["rows"] == 5
