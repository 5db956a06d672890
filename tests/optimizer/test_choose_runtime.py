"""choose_paradigm weighs runtimes with paradigms: each (paradigm, runtime, precision) is
costed, the cheapest wins, and every runtime's estimate is kept for EXPLAIN. Run on the fake
catalog (no DuckDB, no torch, fixed machine constants)."""

from dataclasses import replace

from tests.optimizer import fake
from workbench.engine.planner import Planner
from workbench.optimizer.cost import CostModel
from workbench.optimizer.hints import Hints
from workbench.plan.profile import RuntimeOption

QUERY = "SELECT minilm(body) FROM pydoc"


def plan_with(options, query=QUERY):
    catalog = replace(fake.catalog(), runtimes=lambda name: options if name == "minilm" else ())
    planner = Planner(catalog, fake.Schema(), fake.Counter(), CostModel(fake.REFERENCE_MACHINE), cores=2)
    return planner.plan(query, {}, Hints())


def onnx(precision, scale, **kw):
    torch_profile = fake.PROFILES["minilm"]
    profile = replace(
        torch_profile,
        row_s=torch_profile.row_s * scale,
        char_s=torch_profile.char_s * scale,
        fingerprint=f"minilm|onnx-{precision}",
    )
    return RuntimeOption("onnx", precision, profile, **kw)


def test_without_other_runtimes_torch_runs_and_explain_says_nothing_new():
    (op,) = plan_with(()).operators
    assert op.runtime == "torch" and op.runtime_alternatives == () and "runtime:" not in plan_with(()).text()


def test_a_cheaper_runtime_wins_and_every_estimate_is_kept():
    plan = plan_with((onnx("float32", 0.5), onnx("int8", 0.25)))
    (op,) = plan.operators
    assert (op.runtime, op.precision) == ("onnx", "int8")
    estimates = dict(op.runtime_alternatives)
    assert estimates["onnx int8"] < estimates["onnx float32"] < estimates["torch float32"]
    assert op.estimated_seconds == estimates["onnx int8"]
    assert "runtime: onnx int8 (vs torch float32" in plan.text()


def test_one_off_setup_keeps_a_small_query_in_torch():
    """Exporting and checking cost more than they save on a few rows."""
    small = "SELECT minilm(body) FROM pydoc WHERE id < 5"
    (op,) = plan_with((onnx("float32", 0.5, setup_s=3.0, check_rows=64),), small).operators
    assert op.runtime == "torch"
    (op,) = plan_with((onnx("float32", 0.5, setup_s=3.0, check_rows=64),)).operators
    assert op.runtime == "onnx"  # 1,912 rows: the setup pays for itself


def test_a_blocked_runtime_shows_why_and_never_runs():
    plan = plan_with((onnx("float32", 0.1, blocked="export failed: unsupported operator"),))
    (op,) = plan.operators
    assert op.runtime == "torch" and ("onnx float32", None) in op.runtime_alternatives
    assert "onnx float32: export failed: unsupported operator" in op.runtime_reason


def test_a_forced_runtime_wins_even_when_slower():
    (op,) = plan_with((onnx("float32", 3.0, forced=True),)).operators
    assert op.runtime == "onnx" and "forced" in op.runtime_reason


def test_the_plan_json_carries_the_runtime():
    d = plan_with((onnx("float32", 0.5),)).to_dict()
    node = d["root"]["children"][0]
    assert node["runtime"] == "onnx" and set(node["runtime_alternatives"]) == {"torch float32", "onnx float32"}
    assert d["operators"][0]["runtime_alternatives"][0][0] == "torch float32"
