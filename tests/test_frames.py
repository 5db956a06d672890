"""DataFrames and Arrow tables read as tables: by name, registered, or bound as `FROM :df`."""

import re

import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from tests.conftest import run
from workbench.engine.commands import table_names
from workbench.errors import CatalogError, ParameterError
from workbench.sql import params, statements

PARADIGMS = ["dl_centric", "udf_centric", "relation_centric", "hybrid"]


@pytest.mark.parametrize(
    "sql, tables",
    [
        ("SELECT count(*) FROM pkgs", {"pkgs"}),
        ("CREATE TABLE t AS SELECT * FROM df", {"df"}),
        ("INSERT INTO t (a) SELECT a FROM df JOIN other USING (a)", {"df", "other"}),
        ("WITH df AS (SELECT 1) SELECT * FROM df, main.x, range(3)", set()),
        ("UPDATE t SET a = 1 FROM df", {"df"}),
        ("DELETE FROM t USING df", {"df"}),
        ("DROP TABLE df", set()),
        ('SELECT * FROM "MyFrame"', {"MyFrame"}),
    ],
)
def test_the_tables_a_statement_reads(sql, tables):
    (stmt,) = statements.split(sql)
    assert table_names(stmt) == tables


@pytest.mark.parametrize(
    "sql, expected",
    [
        ("SELECT * FROM :df", 'SELECT * FROM T AS "df"'),
        ("SELECT * FROM $df d", "SELECT * FROM T d"),
        ("SELECT * FROM t JOIN :df AS b ON true", "SELECT * FROM t JOIN T AS b ON true"),
        (
            "SELECT * FROM t, :df WHERE a IN (SELECT a FROM :df)",
            'SELECT * FROM t, T AS "df" WHERE a IN (SELECT a FROM T AS "df")',
        ),
        ("SELECT :df, a FROM t", "SELECT :df, a FROM t"),  # a value, not a table: bind says why
        ("SELECT * FROM :n", "SELECT * FROM :n"),  # not a frame
    ],
)
def test_frame_parameters_in_from_become_internal_names(sql, expected):
    (stmt,) = statements.split(sql)
    text, tables = params.tables_in_from(stmt.text, stmt.start, stmt.tokens, {"df": pl.DataFrame(), "n": 1})
    assert re.sub(rf"{params.INTERNAL_PREFIX}\d+", "T", text) == expected
    assert all(params.is_table(v) for v in tables.values()) and len(tables) == expected.count(" T")


def test_a_polars_frame_in_scope_is_a_table(digits_session):
    pkgs = pl.DataFrame({"name": ["duckdb", "polars", "torch"], "stars": [3, 2, 1]})  # noqa: F841 - read by name
    r = digits_session.sql("SELECT count(*) AS n, sum(stars) AS s FROM pkgs")
    assert r.pl().row(0) == (3, 6)


def test_arrow_tables_batches_and_datasets_by_name(digits_session):
    arrow_table = pa.table({"k": [1, 2, 3]})  # noqa: F841
    batch = pa.record_batch({"k": [2, 3]})  # noqa: F841
    dataset = ds.dataset(pa.table({"k": [3]}))  # noqa: F841
    r = digits_session.sql("SELECT k FROM arrow_table JOIN batch USING (k) JOIN dataset USING (k)")
    assert r.pl()["k"].to_list() == [3]


def test_a_frame_joins_a_table_and_fills_tables(session):
    session.sql("CREATE TABLE owners AS SELECT * FROM (VALUES ('duckdb', 'dbl'), ('torch', 'meta')) o(name, who)")
    pkgs = pl.DataFrame({"name": ["duckdb", "polars", "torch"], "stars": [3, 2, 1]})  # noqa: F841
    r = session.sql("SELECT p.name, o.who FROM pkgs p JOIN owners o USING (name) ORDER BY p.name")
    assert r.pl().rows() == [("duckdb", "dbl"), ("torch", "meta")]
    session.sql("CREATE TABLE saved AS SELECT * FROM pkgs WHERE stars > 1; INSERT INTO saved SELECT * FROM pkgs")
    assert session.sql("SELECT count(*) AS n FROM saved").pl()["n"][0] == 5
    del pkgs  # the table keeps its rows: nothing refers to the frame any more
    assert session.sql("SELECT count(*) AS n FROM saved").pl()["n"][0] == 5


@pytest.mark.parametrize("paradigm", PARADIGMS)
def test_model_calls_over_a_frame_match_the_same_table(digits_session, paradigm):
    sample = digits_session.sql("SELECT id, pixels FROM digits WHERE id < 24").pl()  # noqa: F841
    over_frame = digits_session.sql(
        "SELECT id, digits(pixels).label AS label FROM sample ORDER BY id", paradigm=paradigm
    ).pl()
    over_table = digits_session.sql(
        "SELECT id, digits(pixels).label AS label FROM digits WHERE id < 24 ORDER BY id", paradigm=paradigm
    ).pl()
    assert over_frame.height == 24 and over_frame.equals(over_table)
    bound = digits_session.sql(
        "SELECT count(*) AS n FROM :d WHERE digits(pixels).label = 1", {"d": sample}, paradigm=paradigm
    )
    assert bound.pl()["n"][0] == (over_table["label"] == 1).sum()


def test_explain_plans_over_a_frame(digits_session):
    sample = digits_session.sql("SELECT id, pixels FROM digits WHERE id < 5").pl()  # noqa: F841
    plan = digits_session.explain("SELECT digits(pixels).label FROM sample")
    assert [op.model for op in plan.operators] == ["digits"] and plan.operators[0].estimated_rows == 5


def test_register_wins_over_variables_and_unregister_forgets(session):
    scores = pl.DataFrame({"from_variable": [1]})  # noqa: F841
    session.register("Scores", pa.table({"registered": [1, 2]}))
    assert session.sql("SELECT * FROM scores").columns == ["registered"]  # SQL names ignore case
    session.unregister("SCORES")
    assert session.sql("SELECT * FROM scores").columns == ["from_variable"]
    with pytest.raises(ParameterError, match="cannot register a int as table 'n'"):
        session.register("n", 5)


def test_registered_frames_reach_submitted_queries(session):
    session.register("events", pl.DataFrame({"k": [1, 2, 3, 4]}))
    local = pl.DataFrame({"k": [2, 4]})
    future = session.submit("SELECT count(*) AS n FROM events JOIN :other USING (k)", {"other": local})
    assert future.result().pl()["n"][0] == 2


def test_from_parameter_keeps_its_name_as_alias(session):
    df = pl.DataFrame({"a": [1, 2, 3]})
    assert session.sql("SELECT count(*) AS n FROM :df", {"df": df}).pl()["n"][0] == 3
    assert session.sql("SELECT df.a FROM $df WHERE a > 1 ORDER BY a", {"df": df}).pl()["a"].to_list() == [2, 3]
    r = session.sql("SELECT x.a FROM t0, :df AS x WHERE x.a = t0.a", {"df": df, "t0": pl.DataFrame({"a": [2]})})
    assert r.pl()["a"].to_list() == [2]
    assert "FROM :df" in session.sql("SELECT * FROM :df", {"df": df}).statement
    assert session.explain("SELECT * FROM :df", {"df": df}).sql == "SELECT * FROM :df"
    with pytest.raises(ParameterError, match="a table goes after FROM"):
        session.sql("SELECT :df AS v", {"df": df})


def test_a_table_of_the_database_shadows_a_frame(session):
    session.sql("CREATE TABLE shadow AS SELECT 'table' AS source")
    shadow = pl.DataFrame({"source": ["frame"]})  # noqa: F841
    assert session.sql("SELECT source FROM shadow").pl()["source"].to_list() == ["table"]
    session.register("shadow", pl.DataFrame({"source": ["registered"]}))
    assert session.sql("SELECT source FROM shadow").pl()["source"].to_list() == ["table"]


def test_names_that_are_not_frames_stay_catalog_errors(session):
    nums = 5  # noqa: F841
    with pytest.raises(CatalogError, match="nums"):
        session.sql("SELECT * FROM nums")
    frame = pl.DataFrame({"a": [1]})  # noqa: F841
    # a CTE and a column of that name are not the frame; neither is the table a statement writes
    assert session.sql("WITH frame AS (SELECT 2 AS b) SELECT * FROM frame").columns == ["b"]
    with pytest.raises(CatalogError, match="frame"):
        session.sql("INSERT INTO frame VALUES (1)")


def test_frames_through_the_magic(shell):
    shell.user_ns["people"] = pl.DataFrame({"name": ["ada", "alan"], "born": [1815, 1912]})
    ok, value = run(shell, "%%dlsql\nSELECT name FROM people WHERE born > 1900")
    assert ok, value
    assert value.pl()["name"].to_list() == ["alan"]
    ok, value = run(shell, "%%dlsql\nCREATE TABLE born AS SELECT * FROM people; SELECT count(*) AS n FROM born")
    assert ok and value.pl()["n"][0] == 2
    ok, value = run(shell, "%%dlsql\nSELECT count(*) AS n FROM :people")
    assert ok and value.pl()["n"][0] == 2
    shell.user_ns["pixels_df"] = run(shell, "%%dlsql\nSELECT id, pixels FROM digits WHERE id < 3")[1].pl()
    ok, value = run(shell, "%%dlsql --paradigm udf_centric\nSELECT digits(pixels).label AS l FROM pixels_df")
    assert ok and value.pl().height == 3
    ok, value = run(shell, "%%dlsql --deadline 60s\nSELECT count(*) AS n FROM people")
    assert ok and value.pl()["n"][0] == 2


def test_a_pandas_frame_in_scope_is_a_table(session):
    pd = pytest.importorskip("pandas")
    pdf = pd.DataFrame({"a": [1, 2, 3]})  # noqa: F841
    assert session.sql("SELECT sum(a) AS s FROM pdf").pl()["s"][0] == 6
    assert session.sql("SELECT count(*) AS n FROM :pdf", {"pdf": pdf}).pl()["n"][0] == 3


def test_the_cache_estimate_sees_a_frame(digits_session):
    """Planning reads the cache through the statement's own connection, where the frame is."""
    recent = digits_session.sql("SELECT * FROM digits WHERE id < 50").pl()  # noqa: F841 - read by name
    digits_session.sql("SELECT digits(pixels).label FROM recent")
    plan = digits_session.explain("SELECT digits(pixels).label FROM recent")
    assert plan.operators[0].expected_hit_ratio == 1.0


def test_a_changed_variable_is_read_anew(session):
    frame = pl.DataFrame({"a": [1]})
    assert session.sql("SELECT a FROM frame").pl()["a"].to_list() == [1]
    frame = pl.DataFrame({"a": [2]})  # noqa: F841 - read by name in the SQL below
    assert session.sql("SELECT a FROM frame").pl()["a"].to_list() == [2]


def test_temp_tables_live_on_between_calls(session):
    session.sql("CREATE TEMP TABLE scratch AS SELECT 42 AS x")
    assert session.sql("SELECT x FROM scratch").pl()["x"].to_list() == [42]
    session.sql("CREATE TABLE kept (x INTEGER)")
    session.sql("BEGIN TRANSACTION")
    session.sql("INSERT INTO kept VALUES (1)")
    session.sql("ROLLBACK")
    assert session.sql("SELECT count(*) AS n FROM kept").pl()["n"].to_list() == [0]
