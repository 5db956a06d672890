"""Each optimizer rule against input/expected fixtures (tests/fixtures/rules/<rule>.sql).

A case is a query and the plan after applying only that rule to the builder's logical
plan, rendered one line per operator (`op <call> [fields]: <input query>`) and the final
SQL. The rules run on a schema dict and a fake catalog (tests/optimizer/fake.py): no
DuckDB, no torch, no session, and fixed machine constants, so choices do not depend on the
machine running the tests.
"""

import re
from pathlib import Path

import pytest
import torch

import workbench
from tests.optimizer import fake
from workbench.engine.planner import bind, hints_of
from workbench.optimizer import hints
from workbench.optimizer.cost import CostModel
from workbench.optimizer.rules import RULES
from workbench.plan.names import public_sql
from workbench.settings import SETTINGS
from workbench.sql import statements as st

FIXTURES = Path(__file__).parents[1] / "fixtures" / "rules"
PHYSICAL = {"choose_paradigm", "choose_batch_threads", "place_on_cluster"}


def cases():
    for path in sorted(FIXTURES.glob("*.sql")):
        rule = path.stem
        for block in path.read_text().strip().split("\n\n"):
            _, query, expected = re.split(r"^-- (?:query|expected)\n", block.strip(), flags=re.M)
            yield pytest.param(rule, query.strip(), expected.strip(), id=f"{rule}: {query.strip()[:50]}")


def render(plan, rule):
    lines = []
    for op in plan.operators:
        fields = []
        if rule in PHYSICAL:
            fields.append(op.where + (" (forced)" if op.forced else ""))
        if rule == "choose_batch_threads":
            fields += [f"batch {op.batch_size}", f"threads {op.threads[0]}/{op.threads[1]}"]
        if op.limit is not None:
            fields.append(f"limit {op.limit}")
        shown = f" [{', '.join(fields)}]" if fields else ""
        lines.append(f"op {op.call}{shown}: {op.input_sql}")
    lines.append(f"final: {plan.final_sql}")
    return public_sql("\n".join(lines))


def apply_one(rule_name, query):
    (stmt,) = st.split(query, frozenset(), SETTINGS)
    text, values = bind(stmt, {})
    planner = fake.planner()
    plan = planner.logical(text)
    ctx = planner.context(plan, values, hints_of(stmt, None))
    rules = {r.NAME: r for r in RULES}
    if rule_name in ("choose_batch_threads", "place_on_cluster"):  # they read the paradigm chosen before
        plan = rules["choose_paradigm"].apply(plan, ctx)
    if rule_name == "place_on_cluster":  # on a fake cluster of two nodes (tests/optimizer/fake.py)
        plan = rules["choose_batch_threads"].apply(plan, ctx)
        ctx.cluster = lambda profile: fake.CLUSTER
    return rules[rule_name].apply(plan, ctx)


@pytest.fixture(scope="module")
def s():
    s = workbench.connect()
    s.sql("CALL load_dataset('digits'); CALL load_dataset('pydoc')")
    torch.manual_seed(0)
    cheap = torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.ReLU(), torch.nn.Linear(8, 10))
    s.register_model("cheap", cheap, task="classify", batch_size=512)
    yield s
    s.close()


@pytest.mark.parametrize("rule, query, expected", list(cases()))
def test_rule_fixture(rule, query, expected):
    assert render(apply_one(rule, query), rule) == expected


def test_every_rule_has_fixtures():
    covered = {p.stem for p in FIXTURES.glob("*.sql")}
    assert covered == {r.NAME for r in RULES}


def test_rules_compose_to_the_same_rows(s):
    """All rules on, or the SQL rules off: the same answer (rules change cost, not meaning)."""
    q = "SELECT id, cheap(pixels).label AS c FROM digits WHERE id % 50 = 0 ORDER BY id"
    on = s.sql(q).pl()
    s.sql("SET disabled_rules = 'push_filters,dedup_inputs,prune_outputs,order_predicates,lazy_limit'")
    try:
        off = s.sql(q)
    finally:
        s.sql("SET disabled_rules = ''")
    assert off.pl().equals(on)
    assert off.stats[0]["rows"] == 1797 and s.sql(q).stats[0]["rows"] == len(on)


def test_unknown_or_required_rules_cannot_be_disabled(s):
    with pytest.raises(workbench.WorkbenchError, match="unknown optimizer rule"):
        s.sql("SET disabled_rules = 'push_filter'")
    with pytest.raises(workbench.WorkbenchError, match="cannot be disabled"):
        s.sql("SET disabled_rules = 'choose_paradigm'")


def test_bad_hints_are_clear_errors(s):
    with pytest.raises(workbench.WorkbenchError, match="unknown paradigm 'gpu_centric'"):
        s.sql("SELECT /*+ paradigm(digits, gpu_centric) */ digits(pixels) FROM digits LIMIT 1")
    with pytest.raises(workbench.WorkbenchError, match="cannot read the hint"):
        s.sql("SELECT /*+ paradigm digits */ digits(pixels) FROM digits LIMIT 1")
    with pytest.raises(workbench.WorkbenchError, match="cannot run relation_centric: no relational form"):
        s.sql("SELECT minilm(body) FROM pydoc LIMIT 1", paradigm="relation_centric")
    assert hints.parse(["+ paradigm(Digits, 'UDF_CENTRIC') "]).forced("digits") == "udf_centric"


def test_a_call_no_paradigm_can_run_is_one_clear_error():
    """Weights over the budget block dl_centric and udf_centric, and a model with no layer chain
    has no relational form: the rule says so in one line (never a raw Python error)."""
    (stmt,) = st.split("SELECT minilm(body) FROM pydoc", frozenset(), SETTINGS)
    text, values = bind(stmt, {})
    planner = fake.planner()
    planner.cost = CostModel(fake.REFERENCE_MACHINE, memory_budget=20 * 10**6)
    plan = planner.logical(text)
    ctx = planner.context(plan, values, hints_of(stmt, None))
    rule = {r.NAME: r for r in RULES}["choose_paradigm"]
    with pytest.raises(workbench.OutOfMemoryBudget) as err:
        rule.apply(plan, ctx)
    message = str(err.value)
    assert message.startswith("minilm(body): no way to run it: weights 91 MB exceed the memory budget 20 MB")
    assert "no relational form" in message and "offload = 'auto'" in message and "\n" not in message
