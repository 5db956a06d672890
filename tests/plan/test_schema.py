"""The plan JSON has one schema: workbench/plan/plan.schema.json.

`Plan.to_dict()` (the application/vnd.workbench.plan+json output) must match it, and the
JupyterLab renderer takes its types, MIME type and paradigm colours from
labextension/src/schema.ts, generated from it (`python -m workbench.plan.schema_ts`). These
tests fail when the plan, the schema, the generated TypeScript or the colours drift apart.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import jsonschema
import pytest
import torch

from workbench.display import PARADIGM_COLORS
from workbench.plan import schema_ts
from workbench.plan.nodes import PARADIGMS, InputQuery, ModelOperator, Plan

ROOT = Path(__file__).parents[2]
LABEXTENSION = ROOT / "labextension"
SCHEMA = schema_ts.load_schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

PLANS = [
    ("SELECT digits(pixels).label FROM digits WHERE id < 10", {}),
    ("SELECT id, digits(pixels).label AS guess FROM digits WHERE id % 3 = 0 AND digits(pixels).score > 0.5", {}),
    ("SELECT digits(pixels).label FROM digits WHERE id < 4", {"paradigm": "hybrid"}),
    ("SELECT digits(pixels).label FROM digits LIMIT 5", {}),
    ("SELECT id FROM digits WHERE id < 20 AND digits(pixels).label = 3 AND again([id::FLOAT]::FLOAT[1]).label = 1", {}),
    ("SELECT again([digits(pixels).label::FLOAT]::FLOAT[1]) FROM digits WHERE id < 3", {}),
    ("SELECT again([digits(pixels).label::FLOAT]::FLOAT[1]) FROM digits WHERE id < 3", {"analyze": True}),
    ("SELECT id, digits(pixels).label AS l FROM digits WHERE id < 40", {"analyze": True}),
    ("SELECT 1 AS x", {}),
]


def errors(d: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '(plan)'}: {e.message}" for e in VALIDATOR.iter_errors(d)]


@pytest.fixture(scope="module")
def s(digits_session):
    digits_session.sql(
        "CREATE OR REPLACE MODEL again FROM PYTHON head WITH (task = 'classify')",
        {"head": torch.nn.Sequential(torch.nn.Linear(1, 2))},
    )
    return digits_session


def hand_built() -> Plan:
    """An analyzed plan with every optional field: a nested call, model filters (pending and
    applied), hybrid parts, a limit, threads."""
    digits = ModelOperator(
        id=1,
        model="digits",
        call="digits(pixels)",
        output_type="STRUCT(label INTEGER, score FLOAT)",
        inputs=(InputQuery(key="pixels", source="digits", filters=("id < 20",), distinct=True),),
        alternatives=(("dl_centric", 0.01), ("udf_centric", 0.02), ("relation_centric", None), ("hybrid", 0.03)),
        reason="cheapest",
        estimated_rows=20,
        estimated_input_rows=20,
        estimated_seconds=0.01,
        actual_rows=20,
        actual_seconds=0.012,
        actual_cache_hits=0,
        threads=(2, 4),
        batch_size=64,
    )
    again = ModelOperator(
        id=2,
        model="again",
        call="again([digits(pixels).label::FLOAT]::FLOAT[1])",
        reads=(1,),
        inputs=(
            InputQuery(
                key="[lookup_1(pixels).label::FLOAT]::FLOAT[1]",
                source="digits",
                model_filters=(((1,), "lookup_1(pixels).score > 0.5"),),
                after=(((1,), "lookup_1(pixels).label = 3"),),
            ),
        ),
        paradigm="hybrid",
        forced=True,
        parts=("relation_centric: layer 1", "dl_centric: the rest"),
        limit=5,
        alternatives=(("hybrid", 0.5),),
        cache_policy="read-write",
        expected_hit_ratio=0.25,
        actual_rows=3,
        actual_seconds=0.2,
        actual_cache_hits=1,
    )
    return Plan(
        sql="SELECT again(...) FROM digits",
        final_sql="SELECT lookup_2(x) FROM digits",
        operators=(digits, again),
        reads=(2,),
        analyzed=True,
        notes=("push_filters: ...",),
        actual_rows=3,
        actual_seconds=0.3,
    )


def test_the_schema_is_a_valid_2020_12_schema():
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("query, options", PLANS, ids=[f"{q[:50]}{' ' + str(o) if o else ''}" for q, o in PLANS])
def test_real_plans_match_the_schema(s, query, options):
    plan = s.explain(query, **options)
    d = plan.to_dict()
    assert errors(d) == []
    assert plan._repr_mimebundle_()[SCHEMA["x-mime-type"]] == d


def test_a_plan_with_every_optional_field_matches_the_schema():
    d = hand_built().to_dict()
    assert errors(d) == []
    again = d["root"]["children"][0]
    assert {"parts", "limit", "actual_cache_hit_ratio", "estimate_error"} <= set(again)
    assert [c["operator"] for c in again["children"]] == ["ModelOperator", "Inputs"]
    unanalyzed = Plan(
        sql="x",
        final_sql="y",
        operators=tuple(
            ModelOperator(**{**vars(op), "actual_rows": None, "actual_seconds": None, "actual_cache_hits": None})
            for op in hand_built().operators
        ),
        reads=(2,),
    ).to_dict()
    assert errors(unanalyzed) == []


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda d: d["operators"][0].update(lookup="lookup_1"), "'lookup' was unexpected"),
        (lambda d: d.pop("reads"), "'reads' is a required property"),
        (lambda d: d["operators"][1]["inputs"][0].update(model_filters=[["lookup_1", "x > 1"]]), "is not of type"),
        (lambda d: d["root"]["children"][0].pop("reads"), "'reads' is a required property"),
        (lambda d: d["root"]["children"][0].update(colour="red"), "'colour' was unexpected"),
        (
            lambda d: d["root"]["children"][0]["children"][0].update(paradigm="gpu_centric"),
            "is not valid under any of the given schemas",
        ),
        (lambda d: d["operators"][0].update(paradigm="gpu_centric"), "'gpu_centric' is not one of"),
        (lambda d: d["operators"][0].pop("actual_rows"), "'actual_rows' is a required property"),
        (lambda d: d.update(analyzed=False), "should not be valid under"),
    ],
    ids=[
        "old lookup",
        "no reads",
        "old model_filters",
        "node without reads",
        "unknown node key",
        "unknown node paradigm",
        "unknown paradigm",
        "analyzed without actuals",
        "actuals not analyzed",
    ],
)
def test_the_schema_catches_drift(change, expected):
    d = copy.deepcopy(hand_built().to_dict())
    change(d)
    found = errors(d)
    assert found and any(expected in e for e in found), found


def test_schema_ts_is_generated_from_the_schema():
    checked_in = (LABEXTENSION / "src" / "schema.ts").read_text(encoding="utf-8")
    assert checked_in == schema_ts.generate(), (
        "labextension/src/schema.ts is out of date: run `python -m workbench.plan.schema_ts`"
    )


def test_the_paradigm_enum_is_the_engines():
    assert schema_ts.paradigms(SCHEMA) == PARADIGMS
    assert list(schema_ts.paradigm_colours(SCHEMA)) == list(PARADIGMS)


def test_the_html_plan_uses_the_schemas_colours():
    assert PARADIGM_COLORS == schema_ts.paradigm_colours(SCHEMA)


def test_the_labextension_has_no_colours_or_plan_types_of_its_own():
    """Only the generated schema.ts holds the paradigm colours and the MIME type; plan.ts
    and mime.ts import them (and the plan's types) from it; no stylesheet repeats a colour."""
    colours = {c.lower() for c in schema_ts.paradigm_colours(SCHEMA).values()}
    sources = [p for p in (LABEXTENSION / "src").glob("*.ts") if p.name != "schema.ts"]
    sources += list((LABEXTENSION / "style").glob("*.css"))
    assert sources
    for path in sources:
        text = path.read_text(encoding="utf-8")
        found = {c.lower() for c in re.findall(r"#[0-9a-fA-F]{6}\b", text)} & colours
        assert not found, f"{path.relative_to(ROOT)} repeats paradigm colours {found}: take them from ./schema"
        mime_literal = re.compile("['\"]" + re.escape(SCHEMA["x-mime-type"]) + "['\"]")
        assert not mime_literal.search(text), f"{path.relative_to(ROOT)}: take PLAN_MIME_TYPE from ./schema"
    plan_ts = (LABEXTENSION / "src" / "plan.ts").read_text(encoding="utf-8")
    assert re.search(r"import \{[^}]*\bPARADIGM_COLOURS\b[^}]*\bPlanNode\b[^}]*\} from '\./schema'", plan_ts)
    mime_ts = (LABEXTENSION / "src" / "mime.ts").read_text(encoding="utf-8")
    assert "from './schema'" in mime_ts
