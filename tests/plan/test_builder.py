"""The plan builder against input/expected fixtures (tests/fixtures/model_calls.sql).

Each case: a query, the logical plan before any optimizer rule (the query over the call's
own table only where that is safe that computes each model operator's inputs, with the
model-free conjuncts the push_filters rule may move into it after `pushable:`), and the
final SQL in which each call reads its operator's output (`lookup_N`). The builder runs on
the schema dict of tests/optimizer/fake.py; the same queries then run for real.
"""

import re
from pathlib import Path

import pytest

import workbench
from tests.optimizer import fake
from workbench.engine.planner import bind
from workbench.errors import InputTypeError, WorkbenchError
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


@pytest.fixture(scope="module")
def s():
    s = workbench.connect()
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


def test_view_over_model_is_refused_clearly(s):
    with pytest.raises(WorkbenchError, match="CREATE TABLE"):
        s.sql("CREATE VIEW v AS SELECT minilm(body) FROM pydoc")
