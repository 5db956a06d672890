"""EXPLAIN / EXPLAIN ANALYZE as a plan object: text, HTML and the JSON form show the same
facts; the JSON is deterministic and has the contract's keys; calibration is stored."""

import json

import pytest

import workbench
from tests.conftest import run
from workbench.display import PARADIGM_COLORS
from workbench.plan.nodes import PARADIGMS

QUERY = "SELECT id, digits(pixels).label AS guess FROM digits WHERE id % 3 = 0 AND digits(pixels).score > 0.5"


@pytest.fixture(scope="module")
def s(digits_session):
    return digits_session


def walk(node):
    yield node
    for child in node["children"]:
        yield from walk(child)


def test_to_dict_has_the_contract_keys(s):
    d = s.explain(QUERY).to_dict()
    nodes = list(walk(d["root"]))
    assert d["root"]["operator"] == "Query"
    assert all("operator" in n and "children" in n for n in nodes)
    (op,) = [n for n in nodes if n["operator"] == "ModelOperator"]
    assert op["model"] == "digits" and op["paradigm"] in PARADIGMS and op["device"] == "cpu"
    assert set(op["alternatives"]) == set(PARADIGMS) and "batch_size" in op
    assert (
        op["alternatives"][op["paradigm"]] == min(v for v in op["alternatives"].values() if v is not None)
        or "cache" in op["reason"]
    )
    assert [n["operator"] for n in op["children"]] == ["Inputs"]
    assert "actual_seconds" not in json.dumps(d) and "__wb_" not in json.dumps(d["root"])


def test_to_dict_is_deterministic_across_sessions(s):
    other = workbench.connect()
    other.sql("CALL load_dataset('digits')")
    assert s.explain(QUERY).to_dict() == other.explain(QUERY).to_dict()
    other.close()


def test_analyze_adds_actuals_and_estimate_error(s):
    plan = s.explain(QUERY, analyze=True)
    (op,) = plan.operators
    assert op.actual_rows == 599 and op.actual_seconds is not None
    node = plan.to_dict()["root"]["children"][0]
    assert node["actual_rows"] == 599 and node["estimate_error"] is not None
    assert "estimate error" in plan.text()


def test_text_and_html_show_the_same_facts(s):
    plan = s.explain(QUERY, paradigm="relation_centric")
    text, page = plan.text(), plan._repr_html_()
    for fact in ("relation_centric (forced)", "costs:", "why", "forced by a hint", "push_filters"):
        assert fact in text and fact in page.replace("<i>", "").replace("</i>", "")


def test_hybrid_reports_its_parts(s):
    plan = s.explain("SELECT digits(pixels).label FROM digits WHERE id < 4", paradigm="hybrid")
    (op,) = plan.operators
    assert op.paradigm == "hybrid" and len(op.parts) == 2 and "relation_centric" in op.parts[0]
    assert plan.to_dict()["root"]["children"][0]["parts"] == list(op.parts)


def test_nested_calls_form_a_tree(s):
    s.sql(
        "CREATE OR REPLACE MODEL again FROM PYTHON head WITH (task = 'classify')",
        {"head": __import__("torch").nn.Sequential(__import__("torch").nn.Linear(1, 2))},
    )
    d = s.explain("SELECT again([digits(pixels).label::FLOAT]::FLOAT[1]) FROM digits WHERE id < 3").to_dict()
    outer = d["root"]["children"][0]
    assert outer["model"] == "again"
    assert [c.get("model", c["operator"]) for c in outer["children"]] == ["digits", "Inputs"]


def test_calibrate_measures_and_stores(s):
    table = s.sql("CALL calibrate()").pl()
    assert {"transfer_s_per_byte", "udf_chunk_s", "rel_s_per_mac", "torch_s_per_mac"} <= set(table["name"])
    assert (table["value"] > 0).all()
    stored = s.sql("SELECT count(*) AS n FROM workbench_calibration").pl()["n"][0]
    assert stored == len(table)


def test_the_magic_forces_a_paradigm(shell):
    ok, value = run(shell, "%%dlsql --paradigm relation_centric\nSELECT digits(pixels).label FROM digits WHERE id < 4")
    assert ok and value.stats[0]["paradigm"] == "relation_centric"
    ok, value = run(shell, "%%dlsql --paradigm cpu_centric\nSELECT 1")
    assert not ok


def test_mime_bundle_carries_the_plan_json(s):
    plan = s.explain(QUERY, paradigm="hybrid")
    bundle = plan._repr_mimebundle_()
    assert set(bundle) == {"application/vnd.workbench.plan+json", "text/html", "text/plain"}
    assert bundle["application/vnd.workbench.plan+json"] == plan.to_dict()
    assert bundle["text/plain"] == plan.text() and PARADIGM_COLORS["hybrid"] in bundle["text/html"]
    explained = s.sql(f"EXPLAIN {QUERY}")
    assert "application/vnd.workbench.plan+json" in explained._repr_mimebundle_()
    assert set(s.sql("SELECT 1 AS x")._repr_mimebundle_()) == {"text/html", "text/plain"}


def test_every_node_shows_rows_estimated_and_actual(s):
    d = s.explain("SELECT id, digits(pixels).label AS l FROM digits WHERE id < 40", analyze=True).to_dict()
    root = d["root"]
    assert root["actual_rows"] == 40 and root["actual_seconds"] > 0
    (op,) = root["children"]
    assert op["estimated_rows"] == op["actual_rows"] == 40 and op["precision"] == "float32"
    assert "expected_hit_ratio" in op and "actual_cache_hit_ratio" in op
    (inputs,) = op["children"]
    assert inputs["operator"] == "Inputs" and inputs["estimated_rows"] == inputs["actual_rows"] == 40
    plain = s.explain("SELECT id, digits(pixels).label AS l FROM digits WHERE id < 40").to_dict()
    assert "actual_rows" not in plain and "actual_rows" not in plain["root"]


def test_text_and_html_show_the_same_analyzed_facts(s):
    plan = s.explain("SELECT digits(pixels).label FROM digits WHERE id < 40", analyze=True)
    text, page = plan.text(), plan._repr_html_()
    for fact in ("result: 40 rows", "float32", "actual rows 40", "est. rows 40"):
        assert fact in text and fact in page.replace("<i>", "").replace("</i>", "")
