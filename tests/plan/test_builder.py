"""The plan builder against input/expected fixtures (tests/fixtures/model_calls.sql).

Each case: a query, the logical plan before any optimizer rule (the query over the call's
own table only where that is safe that computes each model operator's inputs, with the
model-free conjuncts the push_filters rule may move into it after `pushable:`), and the
final SQL in which each call reads its operator's output (`lookup_N`). The builder runs on
the schema dict of tests/optimizer/fake.py; the same queries then run for real.
"""

import re
from pathlib import Path

import pyarrow as pa
import pytest

import workbench
from tests.optimizer import fake
from workbench.engine.planner import bind
from workbench.errors import InputTypeError, WorkbenchError
from workbench.models.base import Model
from workbench.plan.names import public_sql
from workbench.settings import SETTINGS
from workbench.sql import statements as st

FIXTURES = Path(__file__).parents[1] / "fixtures" / "model_calls.sql"


def cases():
    for block in FIXTURES.read_text().strip().split("\n\n"):
        sections = re.split(r"^-- (query|inputs \w+|final)\n", block.strip(), flags=re.M)[1:]
        pairs = list(zip(sections[::2], (s.strip() for s in sections[1::2])))
        query = pairs[0][1]
        inputs = [(k.split()[1], v) for k, v in pairs if k.startswith("inputs")]
        final = [v for k, v in pairs if k == "final"][0]
        yield pytest.param(query, inputs, final, id=query[:60])


class WordOverlap(Model):
    """A model of two arguments: the words a query and a document share (the fixtures' `rerank`)."""

    input_kind = "text_pair"
    task = "rerank"
    output_type = "FLOAT"

    def arrow_output_type(self):
        return pa.float32()

    def predict(self, batch):
        return pa.array([len(set(r["query"].split()) & set(r["document"].split())) for r in batch], pa.float32())

    def fingerprint_parts(self):
        return [], {"words": "whitespace"}


@pytest.fixture(scope="module")
def s():
    s = workbench.connect()
    s.register_model("rerank", WordOverlap())
    s.sql(
        "CALL load_dataset('digits'); CALL load_dataset('pydoc');"
        "CREATE TABLE notes AS SELECT * FROM (VALUES (1, 'if', 'a note'), (2, 'for', 'another note')) "
        "t(id, topic, txt)"
    )
    yield s
    s.close()


def normal(sql):
    return public_sql(sql)


def logical(query):
    (stmt,) = st.split(query, frozenset(), SETTINGS)
    text, _ = bind(stmt, {"q": "x"})
    return fake.planner().logical(text)


def shown(op):
    pushable = [p for q in op.inputs for p in q.pushable]
    return normal(op.input_sql) + (f" -- pushable: {' AND '.join(pushable)}" if pushable else "")


@pytest.mark.parametrize("query, inputs, final", list(cases()))
def test_plan_matches_fixture(query, inputs, final):
    plan = logical(query)
    assert [(op.model, shown(op)) for op in plan.operators] == inputs
    assert normal(plan.final_sql) == final


@pytest.mark.parametrize("query, inputs, final", list(cases()))
def test_fixture_queries_run(s, query, inputs, final):
    """Every fixture query runs in DuckDB after its operators ran."""
    result = s.sql(query, {"q": "x"})
    assert [st["model"] for st in result.stats] == [m for m, _ in inputs]


def test_calls_run_once_per_distinct_input(s):
    r = s.sql("SELECT digits(pixels).label, digits(pixels).score FROM digits, range(3) WHERE id < 10")
    assert len(r) == 30 and len(r.stats) == 1 and r.stats[0]["rows"] == 10


def test_wrong_arity_and_type(s):
    with pytest.raises(InputTypeError, match="takes one input"):
        s.explain("SELECT minilm(body, body) FROM pydoc")
    with pytest.raises(InputTypeError, match=r"digits\(body\).*expects FLOAT\[64\].*VARCHAR"):
        s.explain("SELECT digits(body) FROM pydoc")


def test_a_call_of_several_arguments_is_one_struct_input(s):
    query = "SELECT n.id, p.id, rerank(n.txt, p.body) AS sc FROM notes AS n, pydoc AS p WHERE p.id < 3 ORDER BY ALL"
    want = s.sql(
        "SELECT n.id, p.id, len(list_intersect(list_distinct(string_split(n.txt, ' ')), "
        "list_distinct(string_split(p.body, ' '))))::FLOAT AS sc "
        "FROM notes AS n, pydoc AS p WHERE p.id < 3 ORDER BY ALL"
    ).arrow()
    for paradigm in ("dl_centric", "udf_centric"):
        r = s.sql(query, paradigm=paradigm)
        assert r.arrow().to_pylist() == want.to_pylist()
        assert r.stats[0]["call"] == "rerank(n.txt, p.body)"


def test_a_call_of_several_arguments_checks_count_and_types(s):
    with pytest.raises(InputTypeError, match=r"takes 2 inputs \(query, document\), got 1"):
        s.explain("SELECT rerank(body) FROM pydoc")
    with pytest.raises(InputTypeError, match=r"takes \(query VARCHAR, document VARCHAR\), got STRUCT"):
        s.explain("SELECT rerank(body, id) FROM pydoc")
    assert len(s.sql("SELECT rerank(body, body) FROM pydoc WHERE id < 2")) == 2  # still usable


def test_explain_of_create_view_says_what_to_explain(s):
    with pytest.raises(WorkbenchError, match="EXPLAIN the view's query"):
        s.explain("CREATE VIEW v AS SELECT minilm(body) FROM pydoc")


def test_alias_of_a_model_output_in_other_expressions(s):
    """DuckDB binds no lateral alias over a subquery: the builder writes the call out."""
    got = s.sql("SELECT id, digits(pixels).score AS sc FROM digits ORDER BY -sc, id LIMIT 3").arrow()
    want = s.sql("SELECT id, digits(pixels).score AS sc FROM digits ORDER BY -digits(pixels).score, id LIMIT 3")
    assert got.to_pylist() == want.arrow().to_pylist()
    rows = s.sql("SELECT digits(pixels).label AS p, p + 1 AS q, p FROM digits WHERE id < 3 ORDER BY q").arrow()
    assert rows.column_names == ["p", "q", "p"]
    assert rows.to_pylist() == [{"p": 0, "q": 1}, {"p": 1, "q": 2}, {"p": 2, "q": 3}]
    plan = s.explain("SELECT digits(pixels).label AS p, p + 1 AS q FROM digits WHERE p > 5")
    assert len(plan.operators) == 1  # every copy of the call is the one operator


def test_a_source_column_wins_over_an_alias_outside_order_by(s):
    # `label` is a column of digits: in the SELECT list and WHERE it means the column
    rows = s.sql("SELECT digits(pixels).label AS label, label + 100 AS c FROM digits WHERE id = 7").arrow()
    true_label = s.sql("SELECT label FROM digits WHERE id = 7").arrow().column(0)[0].as_py()
    assert rows.column("c")[0].as_py() == true_label + 100


def test_pivot_statement_with_order_by(s):
    q = "PIVOT (SELECT digits(pixels).label AS p, label FROM digits WHERE id < 200) ON p USING count(*) GROUP BY label"
    got = s.sql(q + " ORDER BY label LIMIT 4").arrow()
    want = s.sql(f"SELECT * FROM ({q}) ORDER BY label LIMIT 4").arrow()
    assert got.num_rows == 4 and got.to_pylist() == want.to_pylist()


@pytest.mark.parametrize("paradigm", [None, "dl_centric", "udf_centric", "relation_centric", "hybrid"])
def test_model_call_inside_a_lambda(s, paradigm):
    rows = s.sql(
        "SELECT id, list_transform([pixels, pixels], x -> digits(x).label) AS ls, digits(pixels).label AS one "
        "FROM digits WHERE id < 4 ORDER BY id",
        paradigm=paradigm,
    ).arrow()
    assert [r["ls"] for r in rows.to_pylist()] == [[r["one"], r["one"]] for r in rows.to_pylist()]


def test_model_call_in_a_lambda_reading_other_columns_streams(s):
    """The input reads the lambda's parameter and the row: only computable where it stands."""
    q = (
        "SELECT id, list_transform([1, 2], x -> digits(list_transform(pixels, y -> y * x)::FLOAT[64]).label) AS ls "
        "FROM digits WHERE id < 4 ORDER BY id"
    )
    plan = s.explain(q)
    assert [op.paradigm for op in plan.operators] == ["udf_centric"]
    want = s.sql(
        "SELECT id, [digits(pixels).label, digits(list_transform(pixels, y -> y * 2)::FLOAT[64]).label] AS ls "
        "FROM digits WHERE id < 4 ORDER BY id"
    )
    assert s.sql(q).arrow().to_pylist() == want.arrow().to_pylist()


def test_correlated_subquery_input_in_a_recursive_cte(s):
    q = (
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 4) "
        "SELECT n, digits((SELECT pixels FROM digits WHERE id = n)).label AS l FROM r ORDER BY n"
    )
    got = [r["l"] for r in s.sql(q).arrow().to_pylist()]
    want = [
        r["l"]
        for r in s.sql("SELECT digits(pixels).label AS l FROM digits WHERE id BETWEEN 1 AND 4 ORDER BY id")
        .arrow()
        .to_pylist()
    ]
    assert got == want


def test_an_alias_over_an_alias_of_a_model_output(s):
    rows = s.sql("SELECT digits(pixels).score AS r, r * 2 AS r2, r2 - r AS d FROM digits WHERE id < 3").arrow()
    for row in rows.to_pylist():
        assert row["r2"] == pytest.approx(2 * row["r"]) and row["d"] == pytest.approx(row["r"])


@pytest.mark.parametrize(
    "query",
    [
        # RETURNING reads the rows as the statement changed them
        "UPDATE scratch SET pixels = pixels WHERE id < 3 RETURNING id, digits(pixels).label AS l",
        # the recursion's rows exist only while it runs
        "WITH RECURSIVE t(n, s) AS (SELECT 1, digits((SELECT pixels FROM digits WHERE id = 1)).score "
        "UNION ALL SELECT n + 1, s + digits((SELECT pixels FROM digits WHERE id = n + 1)).score FROM t WHERE n < 3) "
        "SELECT n, s FROM t",
        # the input reads the outer row of a LATERAL
        "SELECT b.id, t.l FROM (SELECT id, [pixels, pixels] AS vs FROM digits WHERE id < 3) b, "
        "LATERAL (SELECT digits(u).label AS l FROM unnest(b.vs) AS t2(u)) t",
        # a list comprehension's variable
        "SELECT [digits(x).label FOR x IN [pixels]] AS ls FROM digits WHERE id < 3",
    ],
)
def test_calls_that_can_only_run_where_they_stand_stream(s, query):
    s.sql("CREATE OR REPLACE TABLE scratch AS SELECT * FROM digits WHERE id < 5")
    plan = s.explain(query)
    streaming = [op for op in plan.operators if op.streaming_only]
    assert streaming and all(op.paradigm == "udf_centric" for op in streaming)
    assert all(op.reason.startswith("only udf_centric") for op in streaming)
    assert s.sql(query).arrow().num_rows > 0
    with pytest.raises(WorkbenchError, match="cannot run dl_centric"):
        s.sql(query, paradigm="dl_centric")


def test_untyped_null_input_gives_null(s):
    row = s.sql("SELECT digits(NULL).label AS l, minilm(NULL) AS e").arrow().to_pylist()[0]
    assert row == {"l": None, "e": None}


def test_unaliased_columns_are_named_by_the_call_as_written(s):
    # deliberately not DuckDB's rendering `(digits(pixels))."label"`: the user's own spelling
    assert s.sql("SELECT digits(pixels).label FROM digits WHERE id < 2").columns == ["digits(pixels).label"]
