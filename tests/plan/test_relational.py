"""DuckDB's operator tree in EXPLAIN: parsing its JSON plan and profile (fixtures of real
DuckDB 2.0 output, no engine), placing the model operators, and the engine's EXPLAIN
[ANALYZE] of a join with a model call in text, HTML and JSON."""

from __future__ import annotations

import dataclasses
import re

import pytest

from workbench.plan.relational import RelationalPlan, parse_plan, parse_profile, place

# `EXPLAIN (FORMAT JSON)` of
#   SELECT l.name, __wb_7_lookup_1(d.pixels).label AS p FROM digits AS d JOIN labels AS l
#   ON d.label = l.label WHERE d.id < 500
# with the lookup a stand-in function (as the engine explains it), and DuckDB's profile of
# the same statement run with the lookup a macro over its outputs (`__wb_8_lookup_1`), kept to
# the fields the parser reads.
PLAN = '[{"name":"PROJECTION","children":[{"name":"HASH_JOIN","children":[{"name":"SEQ_SCAN","children":[],"extra_info":{"Table":"memory.main.digits","Type":"Sequential Scan","Projections":["label","pixels"],"Filters":"(id < 500)","Estimated Cardinality":"400"}},{"name":"SEQ_SCAN","children":[],"extra_info":{"Table":"memory.main.labels","Type":"Sequential Scan","Projections":["label","name"],"Estimated Cardinality":"10"}}],"extra_info":{"Join Type":"INNER","Conditions":"label = label","Estimated Cardinality":"363"}}],"extra_info":{"Projections":["name","p"],"Estimated Cardinality":"363"}}]'  # noqa: E501
PROFILE = '{"operator":[{"name":"RESULT_COLLECTOR","timing":2.0008e-05,"intermediate_rows":0,"extra_info":{},"children":[{"name":"CTE","timing":0.001513948,"intermediate_rows":0,"extra_info":{"CTE Name":"__duckdb_delim_25","Table Index":"25","Execution Mode":"HYBRID_FANOUT","Fanout Mode":"DIRECT","Consumers":"1","Direct Consumers":"1","Buffered Consumers":"0","Chunk Storage":"NONE","Order Mode":"BATCH_INDEX","Materialized Consumers":"1","Estimated Cardinality":"363"},"children":[{"name":"PROJECTION","timing":5.61e-07,"intermediate_rows":500,"extra_info":{"Projections":["#0","#1","#2"],"Estimated Cardinality":"363"},"children":[{"name":"WINDOW","timing":9.044000000000001e-05,"intermediate_rows":500,"extra_info":{"Projections":"limit_rownum","Estimated Cardinality":"363"},"children":[{"name":"HASH_JOIN","timing":0.00021839899999999998,"intermediate_rows":500,"extra_info":{"Join Type":"INNER","Conditions":"label = label","Estimated Cardinality":"363"},"children":[{"name":"SEQ_SCAN","timing":0.000126968,"intermediate_rows":500,"extra_info":{"Table":"memory.main.digits","Type":"Sequential Scan","Projections":["label","pixels"],"Filters":"(id < 500)","Dynamic Filters":"optional: label IN PRF(label)","Estimated Cardinality":"400"},"children":[]},{"name":"SEQ_SCAN","timing":1.9166000000000003e-05,"intermediate_rows":10,"extra_info":{"Table":"memory.main.labels","Type":"Sequential Scan","Projections":["label","name"],"Estimated Cardinality":"10"},"children":[]}]}]}]},{"name":"HASH_JOIN","timing":0.00020863,"intermediate_rows":500,"extra_info":{"Join Type":"SINGLE","Conditions":"delim_index IS NOT DISTINCT FROM delim_index","Estimated Cardinality":"363"},"children":[{"name":"CTE_SCAN","timing":4.508e-06,"intermediate_rows":500,"extra_info":{"CTE Index":"25","Estimated Cardinality":"363"},"children":[]},{"name":"PROJECTION","timing":2.776e-06,"intermediate_rows":500,"extra_info":{"Projections":["struct_extract(__wb_value, \'label\')","delim_index"],"Estimated Cardinality":"181"},"children":[{"name":"HASH_JOIN","timing":0.0005682649999999999,"intermediate_rows":500,"extra_info":{"Join Type":"INNER","Conditions":"__wb_key = pixels","Estimated Cardinality":"181"},"children":[{"name":"PYTHON_ARROW_SCAN","timing":6.0303e-05,"intermediate_rows":500,"extra_info":{"Function":"PYTHON_ARROW_SCAN","Projections":["__wb_key","__wb_value.label"],"Estimated Cardinality":"500"},"children":[]},{"name":"HASH_GROUP_BY","timing":0.001489011,"intermediate_rows":500,"extra_info":{"Groups":["#0","#1"],"Aggregates":"","Estimated Cardinality":"181"},"children":[{"name":"PROJECTION","timing":1.3e-07,"intermediate_rows":500,"extra_info":{"Projections":["#[21.0]","#[0.2]"],"Estimated Cardinality":"363"},"children":[{"name":"CTE_SCAN","timing":5e-08,"intermediate_rows":500,"extra_info":{"CTE Index":"25","CTE Mode":"DIRECT","Consumer":"1","Estimated Cardinality":"363"},"children":[]}]}]}]}]}]}]}]}]}'  # noqa: E501
# the same lookup in a filter: DuckDB names it in the FILTER's expression
FILTER_PLAN = (
    '[{"name":"FILTER","children":[{"name":"SEQ_SCAN","children":[],"extra_info":{"Table":"memory.main.digits",'
    '"Filters":"(id < 500)","Estimated Cardinality":"400"}}],"extra_info":{"Expression":'
    '"(CAST(struct_extract(__wb_7_lookup_1(pixels), \'label\') AS BIGINT) = label)","Estimated Cardinality":"80"}}]'
)


def names(node) -> list[str]:
    return [n.name for n in node.walk()]


def test_the_json_plan_becomes_nodes_with_estimated_rows_and_key_details():
    root = parse_plan(PLAN)
    assert names(root) == ["PROJECTION", "HASH_JOIN", "SEQ_SCAN", "SEQ_SCAN"]
    join, scan = root.children[0], root.children[0].children[0]
    assert join.estimated_rows == 363 and join.detail == "INNER · label = label"
    assert scan.detail == "digits · (id < 500)" and scan.estimated_rows == 400
    assert all(n.actual_rows is None and n.seconds is None for n in root.walk())


def test_a_model_read_in_a_filter_hangs_under_the_filter():
    root = place(parse_plan(FILTER_PLAN), {1: "__wb_7_lookup_1"})
    assert root.name == "FILTER" and root.models == (1,) and root.children[0].models == ()


def test_a_model_read_in_the_select_list_hangs_under_its_projection():
    root = place(parse_plan(PLAN), {1: "__wb_7_lookup_1"})
    assert root.name == "PROJECTION" and root.models == (1,)


def test_the_profile_has_actual_rows_and_time_on_every_node_without_the_result_collector():
    root = parse_profile(PROFILE)
    assert "RESULT_COLLECTOR" not in names(root)
    assert all(n.actual_rows is not None and n.seconds is not None for n in root.walk())
    scans = [n for n in root.walk() if n.name == "SEQ_SCAN"]
    assert {n.detail.split(" ·")[0] for n in scans} == {"digits", "labels"}
    assert any("JOIN" in n.name for n in root.walk())


def test_a_materialized_model_hangs_under_the_scan_of_its_outputs():
    root = place(parse_profile(PROFILE), {1: "__wb_8_lookup_1"}, {1: "d.pixels"})
    (holder,) = [n for n in root.walk() if n.models]
    assert holder.models == (1,) and "ARROW_SCAN" in holder.name


def test_time_shares_and_the_hottest_node():
    tree = RelationalPlan(place(parse_profile(PROFILE), {1: "__wb_8_lookup_1"}), "profile")
    total = sum(n.seconds for n in tree.root.walk())
    assert tree.total_seconds() == pytest.approx(total)
    slow = tree.with_model_seconds({1: total * 9})  # the model took 90% of the time
    assert slow.share(total * 9) == pytest.approx(0.9)
    assert slow.hottest() == ("model", 1)
    d = slow.to_dict()
    assert d["hottest_model"] == 1 and d["model_shares"] == {"1": 0.9}
    hottest = max(tree.root.walk(), key=lambda n: n.seconds)
    assert tree.hottest() == ("node", hottest)


def test_an_explain_tree_has_no_timings_and_public_lookup_names():
    d = RelationalPlan(place(parse_plan(FILTER_PLAN), {1: "__wb_7_lookup_1"})).to_dict()
    assert d["source"] == "explain" and "total_seconds" not in d and "seconds" not in d["root"]
    assert "lookup_1(pixels)" in d["root"]["detail"] and "__wb_" not in str(d)


def test_unreadable_json_gives_no_tree():
    assert parse_plan("not json") is None and parse_profile("[]") is None


# -- the engine ------------------------------------------------------------------------------
JOIN = (
    "SELECT l.name, count(*) AS n FROM digits d JOIN labels l ON d.label = l.label "
    "WHERE digits(d.pixels).label = d.label AND d.id < 500 GROUP BY l.name"
)


@pytest.fixture(scope="module")
def s(digits_session):
    digits_session.sql(
        "CREATE OR REPLACE TABLE labels AS SELECT range AS label, 'digit ' || range AS name FROM range(10)"
    )
    return digits_session


def all_nodes(d: dict) -> list[dict]:
    return [d, *(n for c in d["children"] for n in all_nodes(c))]


def test_explain_shows_the_join_the_scans_and_the_model_in_one_tree(s):
    plan = s.explain(JOIN)
    nodes = all_nodes(plan.to_dict()["relational"]["root"])
    assert any("JOIN" in n["name"] for n in nodes)
    assert {n["detail"].split(" ·")[0] for n in nodes if n["name"] == "SEQ_SCAN"} == {"digits", "labels"}
    (holder,) = [n for n in nodes if n["models"]]
    assert holder["models"] == [1] and "lookup_1" in holder["detail"]
    assert all(isinstance(n["estimated_rows"], int) for n in nodes)
    text = plan.text()
    assert "DuckDB plan" in text and "HASH_JOIN" in text and "  ModelOperator #1 digits(d.pixels) [" in text


def test_explain_analyze_gives_actual_rows_and_time_on_every_node(s):
    plan = s.explain(JOIN, analyze=True)
    rel = plan.to_dict()["relational"]
    nodes = all_nodes(rel["root"])
    assert rel["source"] == "profile" and rel["total_seconds"] > 0
    assert all(isinstance(n["actual_rows"], int) and n["seconds"] is not None for n in nodes)
    assert any("JOIN" in n["name"] for n in nodes) and [n for n in nodes if n["models"] == [1]]
    hottest = [n for n in nodes if n["hottest"]]
    assert len(hottest) + (rel["hottest_model"] is not None) == 1


def test_profiling_is_off_after_explain_analyze(s):
    s.explain(JOIN, analyze=True)
    assert s.con.sql("SELECT current_setting('enable_profiling')").fetchall() == [(None,)]


def test_text_and_html_show_the_same_facts(s):
    plan = s.explain(JOIN, analyze=True)
    text, page = plan.text(), plan._repr_html_()
    lines = [line.strip() for line in text.splitlines()]
    tree = lines[lines.index("DuckDB plan (profiled)") + 1 :]
    assert len(tree) >= 6
    for line in tree:
        fact = line.split(" [")[0] if line.startswith("ModelOperator") else line.split("  [")[0]
        assert fact.replace("<", "&lt;").replace(">", "&gt;").replace("'", "&#x27;") in page
    shares = re.findall(r" (\d+)%", "\n".join(tree))
    assert len(shares) == len(tree)  # a bar and share on every node
    assert text.count("<- hottest") == 1 and page.count("<b>hottest</b>") == 1


def test_a_plain_query_has_duckdbs_tree_too(s):
    plan = s.explain("SELECT label, count(*) FROM digits GROUP BY label", analyze=True)
    nodes = all_nodes(plan.to_dict()["relational"]["root"])
    assert any("GROUP_BY" in n["name"] for n in nodes) and all(n["models"] == [] for n in nodes)


def test_a_streaming_models_time_is_not_counted_twice():
    """A udf_centric operator runs inside a DuckDB operator, whose time already holds its own."""
    tree = RelationalPlan(place(parse_plan(FILTER_PLAN), {1: "__wb_7_lookup_1"}), "profile")
    tree = RelationalPlan(replace_seconds(tree.root, 1.0), "profile")
    assert tree.with_model_seconds({1: 0.5}).total_seconds() == pytest.approx(2.5)
    assert tree.with_model_seconds({1: 0.5}, frozenset({1})).total_seconds() == pytest.approx(2.0)


def replace_seconds(node, seconds):
    return dataclasses.replace(
        node, seconds=seconds, children=tuple(replace_seconds(c, seconds) for c in node.children)
    )
