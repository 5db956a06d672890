"""The plan builder against input/expected fixtures (tests/fixtures/model_calls.sql).

Each case: a query, the DuckDB query that computes each model operator's distinct inputs
(filters that need no model pushed in, the call's own table only where that is safe), and
the final SQL in which each call reads its operator's output (`lookup_N`).
"""

import re
from pathlib import Path

import pytest

import workbench
from workbench.errors import InputTypeError, WorkbenchError

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
    s.sql("CALL load_dataset('digits'); CALL load_dataset('pydoc');"
          "CREATE TABLE notes AS SELECT * FROM (VALUES (1, 'if', 'a note'), (2, 'for', 'another note')) "
          "t(id, topic, txt)")
    yield s
    s.close()


def normal(sql):
    return re.sub(r"__wb_\d+_lookup_", "lookup_", sql, flags=re.I)


@pytest.mark.parametrize("query, inputs, final", list(cases()))
def test_plan_matches_fixture(s, query, inputs, final):
    plan = s.explain(query, {"q": "x"}, paradigm="dl_centric")
    assert [(op.model, normal(op.input_sql)) for op in plan.operators] == inputs
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
