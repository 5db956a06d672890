"""Each optimizer rule against input/expected fixtures (tests/fixtures/rules/<rule>.sql).

A case is a query and the plan after applying only that rule to the builder's logical
plan, rendered one line per operator (`op <call> [fields]: <input query>`) and the final
SQL. Costs come from a fixed set of machine constants (a reference machine), so paradigm
choices in fixtures do not depend on the machine running the tests.
"""

import re
from pathlib import Path

import pytest
import torch

import workbench
from workbench.execution.lookups import Lookups
from workbench.optimizer import hints
from workbench.optimizer.context import Context
from workbench.optimizer.cost import CostModel
from workbench.optimizer.rules import RULES
from workbench.sql import statements as st

FIXTURES = Path(__file__).parents[1] / "fixtures" / "rules"
REFERENCE_MACHINE = {
    "transfer_s_per_byte": 1e-9, "dl_fixed_s": 4e-3, "lookup_s_per_row": 1e-7, "udf_chunk_s": 1e-4,
    "rel_s_per_mac": 1.5e-9, "rel_s_per_output": 1e-7, "rel_fixed_s": 3e-3, "store_s_per_byte": 3e-8,
    "torch_s_per_mac": 1.5e-11, "torch_batch_s": 1e-5,
}
PHYSICAL = {"choose_paradigm", "choose_batch_threads"}


def cases():
    for path in sorted(FIXTURES.glob("*.sql")):
        rule = path.stem
        for block in path.read_text().strip().split("\n\n"):
            _, query, expected = re.split(r"^-- (?:query|expected)\n", block.strip(), flags=re.M)
            yield pytest.param(rule, query.strip(), expected.strip(), id=f"{rule}: {query.strip()[:50]}")


@pytest.fixture(scope="module")
def s():
    s = workbench.connect()
    s.sql("CALL load_dataset('digits'); CALL load_dataset('pydoc');"
          "CREATE TABLE big AS SELECT i AS id, [i % 7, i % 5, i % 3, 1]::FLOAT[4] AS v FROM range(50000) t(i)")
    torch.manual_seed(0)
    cheap = torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.ReLU(), torch.nn.Linear(8, 10))
    wide = torch.nn.Sequential(torch.nn.Linear(64, 2048), torch.nn.ReLU(), torch.nn.Linear(2048, 2048),
                               torch.nn.ReLU(), torch.nn.Linear(2048, 10))
    small = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    s.register_model("cheap", cheap, task="classify", batch_size=512)
    s.register_model("wide", wide, task="classify", batch_size=512)
    s.register_model("small", small, task="classify", batch_size=512)
    s.sql("ALTER MODEL digits SET cache = 'off', batch_size = 256")
    yield s
    s.close()


def render(plan, rule):
    lines = []
    for op in plan.operators:
        fields = []
        if rule in PHYSICAL:
            fields.append(op.paradigm + (" (forced)" if op.forced else ""))
        if rule == "choose_batch_threads":
            fields += [f"batch {op.batch_size}", f"threads {op.threads[0]}/{op.threads[1]}"]
        if op.limit is not None:
            fields.append(f"limit {op.limit}")
        shown = f" [{', '.join(fields)}]" if fields else ""
        lines.append(f"op {op.call}{shown}: {op.input_sql}")
    lines.append(f"final: {plan.final_sql}")
    return re.sub(r"__wb_\d+_(lookup|udf)_", r"\1_", "\n".join(lines))


def apply_one(s, rule_name, query):
    (stmt,) = st.split(query, frozenset(s.procedures), workbench.settings.SETTINGS)
    text, values = s._bind(stmt, {})
    with Lookups(s) as temp:
        plan = s._build_plan(text, temp, values)
        ctx = Context(cost=CostModel(REFERENCE_MACHINE, learned=False), facts=s._facts_of(values), model=s.catalog.get,
                      hints=s._hints(stmt, None), cores=2, batch_size=s.catalog.batch_size)
        rule = {r.NAME: r for r in RULES}[rule_name]
        if rule_name == "choose_batch_threads":  # it reads the paradigm the previous rule chose
            plan = {r.NAME: r for r in RULES}["choose_paradigm"].apply(plan, ctx)
        return rule.apply(plan, ctx)


@pytest.mark.parametrize("rule, query, expected", list(cases()))
def test_rule_fixture(s, rule, query, expected):
    assert render(apply_one(s, rule, query), rule) == expected


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
