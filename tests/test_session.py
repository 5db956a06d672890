"""The Python API: connect, sql, results, stats, explain, errors, persistence."""

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
import torch

import workbench
from workbench.errors import (
    CatalogError,
    ExecutionError,
    InputTypeError,
    ModelError,
    ModelLoadError,
    ParameterError,
    SQLSyntaxError,
    UnknownModelError,
)

STATS_KEYS = {"model", "paradigm", "rows", "seconds", "batch_size", "device", "cache_hits", "cache_misses"}


def test_result_shapes_and_stats(data_session):
    r = data_session.sql("SELECT id, digits(pixels) AS p FROM digits WHERE id < 7 ORDER BY id")
    assert isinstance(r.pl(), pl.DataFrame) and isinstance(r.arrow(), pa.Table)
    assert r.pl().shape == (7, 2)
    (stat,) = r.stats
    assert STATS_KEYS <= set(stat)
    assert stat["model"] == "digits" and stat["paradigm"] == "dl_centric" and stat["rows"] == 7
    assert stat["cache_hits"] + stat["cache_misses"] == 7 and stat["device"] == "cpu" and stat["batch_size"] >= 0
    assert set(r.pl()["p"].struct.fields) == {"label", "score"}


def test_multiple_statements_return_the_last(session):
    r = session.sql("CREATE TABLE t AS SELECT 1 AS x; INSERT INTO t VALUES (2); SELECT sum(x) AS s FROM t")
    assert r.pl()["s"][0] == 3


def test_params_are_bound_not_formatted(session):
    evil = "x'); DROP TABLE t; --"
    session.sql("CREATE TABLE t AS SELECT 1 AS x")
    r = session.sql("SELECT :v AS v, $w AS w", {"v": evil, "w": np.int64(3)})
    assert r.pl().row(0) == (evil, 3)
    assert session.sql("SELECT count(*) AS n FROM t").pl()["n"][0] == 1
    with pytest.raises(ParameterError, match=":missing"):
        session.sql("SELECT :missing")


def test_model_in_where_order_by_group_by_join_and_nested_function(data_session):
    s = data_session
    by_where = s.sql("SELECT id FROM digits WHERE digits(pixels).label = 3 AND id < 200 ORDER BY id").pl()
    by_group = s.sql(
        "SELECT digits(pixels).label AS l, count(*) AS n FROM digits WHERE id < 200 GROUP BY digits(pixels).label"
    ).pl()
    assert by_group.filter(pl.col("l") == 3)["n"][0] == by_where.height
    ordered = s.sql("SELECT id FROM digits WHERE id < 20 ORDER BY digits(pixels).score DESC, id").pl()
    assert ordered.height == 20
    joined = s.sql(
        "SELECT count(*) AS n FROM digits a JOIN digits b ON digits(a.pixels).label = b.label "
        "WHERE a.id < 5 AND b.id < 50"
    ).pl()
    assert joined["n"][0] > 0
    sim = s.sql(
        "SELECT list_cosine_similarity(minilm(body), minilm(:q)) AS sim FROM pydoc WHERE id < 8", {"q": "loops"}
    ).pl()
    assert sim.height == 8 and sim["sim"].is_between(-1.0001, 1.0001).all()


def test_model_results_match_direct_computation(data_session):
    r = data_session.sql("SELECT pixels, digits(pixels).label AS l FROM digits WHERE id < 40 ORDER BY id").pl()
    model = data_session.catalog.get("digits").module
    x = torch.tensor(np.stack(r["pixels"].to_list()), dtype=torch.float32)
    assert (model(x).argmax(-1).numpy() == r["l"].to_numpy()).all()


def test_register_model_from_python_and_nested_calls(session):
    torch.manual_seed(0)
    half = torch.nn.Sequential(torch.nn.Linear(384, 2))
    session.register_model("head", half, task="classify", labels=["neg", "pos"])
    session.sql("CREATE TABLE t AS SELECT * FROM (VALUES ('a cat'), ('a dog'), ('a cat')) v(txt)")
    r = session.sql("SELECT txt, head(minilm(txt)).label AS l FROM t ORDER BY txt")
    assert set(r.pl()["l"]) <= {"neg", "pos"}
    assert [s["model"] for s in r.stats] == ["minilm", "head"]
    assert r.stats[0]["rows"] == 2  # 'a cat' once


def test_create_model_from_python_variable(session):
    net = torch.nn.Sequential(torch.nn.Linear(64, 3))  # noqa: F841 - read by FROM PYTHON net
    session.sql("CREATE MODEL tri FROM PYTHON net WITH (task = 'embed')")
    out = session.sql("SELECT tri(list_transform(range(64), i -> 1.0)) AS e").pl()["e"][0]
    assert len(out) == 3
    assert "tri" in set(session.sql("SHOW MODELS").pl()["name"])
    assert "FLOAT[3]" in session.sql("DESCRIBE MODEL tri").pl()["value"].to_list()
    session.sql("DROP MODEL tri")
    assert "tri" not in set(session.sql("SHOW MODELS").pl()["name"])


@pytest.mark.parametrize(
    "sql, error, fragment",
    [
        ("SELEC 1", SQLSyntaxError, "SELEC"),
        ("SELECT nope(1)", CatalogError, "nope"),
        ("SELECT missing_col FROM digits", CatalogError, "missing_col"),
        ("SELECT * FROM no_such_table", CatalogError, "no_such_table"),
        ("SELECT minilm(42)", InputTypeError, "minilm(42)"),
        ("DESCRIBE MODEL ghost", UnknownModelError, "ghost"),
        ("DROP MODEL ghost", UnknownModelError, "ghost"),
        ("CREATE MODEL m FROM '/no/such/dir'", ModelLoadError, "/no/such/dir"),
        ("CREATE MODEL sum FROM PYTHON x", CatalogError, "DuckDB function"),
        ("SELECT 1/0::INT AS x, 'a'::INT", ExecutionError, "Could not convert"),
    ],
)
def test_errors_are_short_and_session_survives(data_session, sql, error, fragment):
    with pytest.raises(error) as info:
        data_session.sql(sql)
    msg = str(info.value)
    assert fragment in msg and "Traceback" not in msg and len(msg) < 600
    assert data_session.sql("SELECT 42 AS x").pl()["x"][0] == 42


def test_model_that_raises_names_model_and_batch(session):
    class Broken(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 2)

        def forward(self, x):
            raise ValueError("boom")

    session.register_model("broken", Broken(), task="classify", input_dim=4, output_dim=2)
    with pytest.raises(ModelError, match=r"model 'broken' failed on batch 1.*ValueError: boom"):
        session.sql("SELECT broken([1.0, 2.0, 3.0, 4.0])")
    assert session.sql("SELECT 1 AS x").pl()["x"][0] == 1


def test_half_written_result_is_never_visible(session):
    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("nope")

    session.register_model("broken", Broken(), task="regress", input_dim=2, output_dim=1)
    with pytest.raises(ModelError):
        session.sql("CREATE TABLE saved AS SELECT broken([1.0, 2.0]) AS y")
    assert session.sql("SELECT count(*) AS n FROM duckdb_tables() WHERE table_name = 'saved'").pl()["n"][0] == 0
    # no temporary lookup objects are left behind either
    left = session.sql("SELECT count(*) AS n FROM duckdb_functions() WHERE function_name LIKE '__wb_%'").pl()
    assert left["n"][0] == 0


def test_explain_returns_plan_with_operators(data_session):
    plan = data_session.explain("SELECT id FROM digits WHERE digits(pixels).label <> label AND id < 500")
    assert isinstance(plan, workbench.Plan)
    (op,) = plan.operators
    assert op.model == "digits" and op.paradigm == "dl_centric" and "id < 500" in op.input_sql
    d = plan.to_dict()
    assert d["operators"][0]["model"] == "digits" and "ModelOperator" in plan.text()
    analyzed = data_session.explain("SELECT digits(pixels) FROM digits WHERE id < 10", analyze=True)
    assert analyzed.analyzed and analyzed.operators[0].actual_rows == 10
    r = data_session.sql("EXPLAIN SELECT minilm(body) FROM pydoc WHERE id < 3")
    assert r.plan is not None and "minilm(body)" in repr(r)


def test_persistence_across_reconnect(tmp_path):
    db = str(tmp_path / "wb.duckdb")
    net = torch.nn.Sequential(torch.nn.Linear(64, 10))
    from workbench.models import mlp

    weights = tmp_path / "m.safetensors"
    model = mlp.MLP([64, 16, 10])
    mlp.save(model, weights)
    with workbench.connect(db) as s:
        s.sql("CALL load_dataset('digits')")
        s.sql(f"CREATE MODEL saved_mlp FROM '{weights}'")
        s.register_model("transient", net)
        first = s.sql("SELECT saved_mlp(pixels).label AS l FROM digits WHERE id < 5 ORDER BY id").pl()
    with workbench.connect(db) as s:
        assert s.sql("SELECT count(*) AS n FROM digits").pl()["n"][0] == 1797
        again = s.sql("SELECT saved_mlp(pixels).label AS l FROM digits WHERE id < 5 ORDER BY id").pl()
        assert again.equals(first)
        with pytest.raises(ModelLoadError, match="register it again"):
            s.sql("SELECT transient(pixels) FROM digits LIMIT 1")
