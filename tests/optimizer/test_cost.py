"""The cost model's choices that no single rule fixture shows: estimates follow the rules
that ran, dedup is costed, and a relational plan must win by a margin (fake catalog and
fixed machine constants: no DuckDB, no torch)."""

from dataclasses import replace

from tests.optimizer import fake
from workbench.optimizer import hints
from workbench.optimizer.cost import RELATIONAL_MARGIN, CostModel, Estimate, Facts, preferred
from workbench.optimizer.optimize import optimize
from workbench.optimizer.rules import choose_paradigm

BIG = "SELECT avg(digits(pixels).score) FROM bigdigits"


def planned(query, disabled=frozenset()):
    planner = fake.planner()
    plan = planner.logical(query)
    return optimize(plan, planner.context(plan, {}, hints.Hints()), disabled=disabled)


def test_without_dedup_the_estimate_is_every_row_reaching_the_call():
    op = planned(BIG, frozenset({"dedup_inputs"})).operators[0]
    assert op.estimated_rows == op.estimated_input_rows == 100632
    assert op.paradigm == "udf_centric"  # not relation_centric on 1,797 imagined rows


def test_dedup_is_skipped_where_hashing_wide_keys_costs_more_than_a_cheap_model():
    plan = planned(BIG)
    assert not plan.operators[0].inputs[0].distinct
    assert any("runs on every row" in n for n in plan.notes)
    wide = planned("SELECT avg(wide(pixels).score) FROM bigdigits").operators[0]
    assert wide.inputs[0].distinct and wide.estimated_rows == 1797


def test_dedup_pays_for_an_expensive_model():
    profile = fake.PROFILES["minilm"]
    facts = Facts(rows=1912, input_rows=2331, key_bytes=189.0, avg_chars=189.0)
    assert fake.planner().cost.dedup_pays(profile, facts, batch=32)


def test_a_relational_plan_must_win_by_the_margin():
    torch = Estimate("dl_centric", 1.0)
    assert preferred([torch, Estimate("relation_centric", 1.0 / RELATIONAL_MARGIN + 0.01)]) is torch
    fast = Estimate("hybrid", 1.0 / RELATIONAL_MARGIN - 0.01)
    assert preferred([torch, fast]) is fast
    only = Estimate("relation_centric", 5.0)
    assert preferred([only]) is only  # the only feasible plan


def test_the_margin_shows_in_the_reason():
    planner = fake.planner()
    # a machine where SQL layers look cheaper than torch for the wide MLP, but not 3x cheaper
    planner.cost = CostModel(
        {**fake.REFERENCE_MACHINE, "rel_s_per_mac": 5e-12, "rel_s_per_output": 1e-9, "store_s_per_byte": 1e-12}
    )
    plan = planner.logical("SELECT wide(pixels).label FROM digits")
    ctx = planner.context(plan, {}, hints.Hints())
    (op,) = plan.operators
    deduped = replace(plan, operators=(replace(op, inputs=tuple(replace(q, distinct=True) for q in op.inputs)),))
    (chosen,) = choose_paradigm.apply(deduped, ctx).operators
    estimates = dict(chosen.alternatives)
    assert min(estimates, key=lambda p: estimates[p] or float("inf")) == "relation_centric"
    assert chosen.paradigm == "dl_centric"
    assert f"under the {RELATIONAL_MARGIN:g}x a relational plan must win by" in chosen.reason
