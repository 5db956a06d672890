"""DuckDB's operator tree in the JupyterLab plan renderer: EXPLAIN ANALYZE of a join with a
model call shows the join, the scans and the model operator in one tree, each with its share
of the time; a click on a node shows DuckDB's timing for it.

DOM contract: labextension/src/plan.ts (div.wb-rel-node[data-operator], .wb-bar-fill,
.wb-hottest, .wb-rel-timing). The screenshot goes to tests/browser/artifacts/plan_tree.png.
"""

from __future__ import annotations

from tests.browser.test_lab import assert_no_error, expect_in_output

QUERY = (
    "EXPLAIN ANALYZE SELECT l.name, count(*) AS n FROM digits d JOIN labels l ON d.label = l.label "
    "WHERE digits(d.pixels).label = d.label AND d.id < 500 GROUP BY l.name"
)


def test_the_plan_tree_shows_duckdbs_operators_and_the_model(notebook, artifacts_dir):
    nb = notebook(
        [
            "%load_ext workbench",
            "%%dlsql\nCALL load_dataset('digits'); "
            "CREATE TABLE labels AS SELECT range AS label, 'digit ' || range AS name FROM range(10)",
            f"%%dlsql\n{QUERY}",
        ]
    )
    for i in range(3):
        nb.run_cell(i)
        assert_no_error(nb, i)

    tree = expect_in_output(nb, 2, ".wb-plan-tree.wb-relational", "DuckDB's operator tree").first
    out = nb.output(2)
    join = out.locator('div.wb-rel-node[data-operator*="JOIN"]')
    scans = out.locator('div.wb-rel-node[data-operator="SEQ_SCAN"]')
    model = out.locator('div.wb-rel-node div.wb-node[data-operator="ModelOperator"]')
    shot = nb.screenshot("tree", cell=2)
    assert join.count(), f"expected a join node (div.wb-rel-node[data-operator*=JOIN])\nscreenshot: {shot}"
    details = [scans.nth(k).locator(".wb-rel-detail").first.inner_text() for k in range(scans.count())]
    assert any(d.startswith("digits") for d in details) and any(d.startswith("labels") for d in details), (
        f"expected scans of digits and labels; saw {details}\nscreenshot: {shot}"
    )
    assert model.count() == 1, f"expected the model operator under a DuckDB node\nscreenshot: {shot}"
    assert model.first.get_attribute("data-paradigm"), f"the model node keeps its paradigm\nscreenshot: {shot}"

    # every DuckDB node and the model carry a time bar; one node is the hottest
    rel_nodes = out.locator("div.wb-rel-node").count()
    bars = out.locator(".wb-bar-fill").count()
    assert bars == rel_nodes + 1, f"expected {rel_nodes + 1} time bars, saw {bars}\nscreenshot: {shot}"
    assert out.locator("div.wb-node.wb-hottest").count() == 1, f"expected one hottest node\nscreenshot: {shot}"

    # a click on the join's header shows DuckDB's timing and details for it
    header = join.first.locator(":scope > .wb-node-header")
    header.click()
    timing = join.first.locator(":scope > .wb-node-details .wb-rel-timing")
    timing.wait_for(state="visible", timeout=5_000)
    text = timing.inner_text()
    shot = nb.screenshot("join-details", cell=2)
    assert "DuckDB time" in text and "actual rows" in text, f"timing details: {text!r}\nscreenshot: {shot}"
    info = join.first.locator(":scope > .wb-node-details .wb-rel-info").inner_text()
    assert "Conditions" in info, f"the join's details should show its condition; saw {info!r}\nscreenshot: {shot}"

    tree.scroll_into_view_if_needed()
    path = artifacts_dir / "plan_tree.png"
    out.screenshot(path=str(path))
    assert path.stat().st_size > 0
