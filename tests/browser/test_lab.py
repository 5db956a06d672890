"""The JupyterLab front end in a real browser: cells run, the plan tree renders, the live
progress widget moves while a query runs, and %%dlsql cells get SQL highlighting.

The contracts of the plan tree, the live widget and the highlighting are DOM contracts of the
workbench labextension and widget (classes `wb-*`); see each test. Screenshots and figures go
to tests/browser/artifacts/ (see conftest.py).
"""

from __future__ import annotations

import json
import time

PARADIGM_COLOURS = {
    "dl_centric": "rgb(76, 120, 168)",  # #4C78A8
    "udf_centric": "rgb(245, 133, 24)",  # #F58518
    "relation_centric": "rgb(84, 162, 75)",  # #54A24B
    "hybrid": "rgb(178, 121, 162)",  # #B279A2
}

RENDER_TIMEOUT_MS = 20_000  # a front-end element shows after its cell finished


def describe_output(nb, i: int) -> str:
    """What cell i's output holds, for failure messages: its outputs' MIME types and text."""
    out = nb.cell(i).locator(".jp-OutputArea-output")
    kinds = [out.nth(k).get_attribute("data-mime-type") or "?" for k in range(out.count())]
    text = nb.output_text(i).strip().replace("\n", " | ")
    if len(text) > 600:
        text = text[:600] + " ..."
    return f"outputs of cell {i}: {kinds or 'none'}; text: {text!r}"


def expect_in_output(nb, i: int, selector: str, what: str, timeout_ms: int = RENDER_TIMEOUT_MS):
    """Wait for `selector` in cell i's output; fail saying what was expected and what is there."""
    loc = nb.output(i).locator(selector)
    try:
        loc.first.wait_for(state="attached", timeout=timeout_ms)
    except Exception:
        shot = nb.screenshot(f"missing-{selector.strip('.').replace(' ', '_')}", cell=i)
        raise AssertionError(
            f"expected {what} (`{selector}`) in the output of cell {i} within {timeout_ms / 1000:.0f} s; "
            f"not there. {describe_output(nb, i)}\nscreenshot: {shot}\n{nb.where()}"
        ) from None
    return loc


def assert_no_error(nb, i: int) -> None:
    err = nb.errors_in_output(i)
    assert not err, f"cell {i} failed: {err.strip()[:800]}\nscreenshot: {nb.screenshot(f'cell{i}-error', cell=i)}"


# -- the harness itself ------------------------------------------------------------------------


def test_lab_runs_a_cell(notebook, lab_server):
    nb = notebook(['import workbench; s = workbench.connect(); s.sql("SELECT 41 + 1 AS x").pl()'])
    t0 = time.monotonic()
    count = nb.run_cell(0)
    elapsed = time.monotonic() - t0
    shot = nb.screenshot("result", cell=0)
    print(
        f"\nlab started in {lab_server.started_in_s:.1f} s; cell ran in {elapsed:.1f} s "
        f"(execution count {count}); screenshot {shot}"
    )
    assert_no_error(nb, 0)
    text = nb.cell(0).locator(".jp-OutputArea-output").all_inner_texts()
    assert any("42" in t for t in text), (
        f"expected 42 in the output of the cell; {describe_output(nb, 0)}\nscreenshot: {shot}"
    )


# -- the plan tree -----------------------------------------------------------------------------

# Marks, in the page, the first model node (data-paradigm) and a node with children and a
# toggle of its own, so that Playwright locators can address them. Returns what it found.
_MARK_NODES_JS = """
(tree) => {
  const nodes = Array.from(tree.querySelectorAll('div.wb-node'));
  const own = (node, sel) => Array.from(node.querySelectorAll(sel)).filter(
      el => el.closest('div.wb-node') === node);
  const info = nodes.map(n => ({
    operator: n.getAttribute('data-operator'),
    paradigm: n.getAttribute('data-paradigm'),
    border: getComputedStyle(n).borderLeftColor,
    header: own(n, '.wb-node-header').length
        ? getComputedStyle(own(n, '.wb-node-header')[0]).backgroundColor : null,
    children: n.querySelectorAll('div.wb-node').length,
    toggle: own(n, '.wb-toggle').length > 0,
  }));
  const model = nodes.find(n => n.hasAttribute('data-paradigm'));
  if (model) model.setAttribute('data-wbtest', 'model');
  const withToggle = nodes.filter(n => own(n, '.wb-toggle').length > 0);
  const parent = withToggle.find(n => n.querySelector('div.wb-node')) || withToggle[0];
  if (parent) {
    parent.setAttribute('data-wbtest-parent', '1');
    own(parent, '.wb-toggle')[0].setAttribute('data-wbtest', 'toggle');
  }
  return info;
}
"""


def check_plan_tree(nb, cell: int) -> None:
    """The plan-tree contract, on the output of `cell` (see the test below)."""
    tree = expect_in_output(nb, cell, ".wb-plan-tree", "the plan tree of the labextension").first
    tree.scroll_into_view_if_needed()
    info = tree.evaluate(_MARK_NODES_JS)
    before = nb.screenshot("before-click", cell=cell)
    where = f"nodes seen: {json.dumps(info)}\nscreenshot: {before}"

    assert info, f"expected div.wb-node elements in .wb-plan-tree; there are none\n{where}"
    assert all(n["operator"] for n in info), f"every div.wb-node needs data-operator\n{where}"
    assert (
        nb.output(cell).locator(".wb-plan-tree div.wb-node").count()
        == nb.output(cell).locator(".wb-plan-tree .wb-node-header").count()
    ), f"every node needs its .wb-node-header\n{where}"
    models = [n for n in info if n["paradigm"] is not None]
    assert models, f"expected a model node (div.wb-node[data-paradigm]) for digits(...); none\n{where}"
    for n in models:
        assert n["paradigm"] in PARADIGM_COLOURS, (
            f"data-paradigm must be one of {sorted(PARADIGM_COLOURS)}, saw {n['paradigm']!r}\n{where}"
        )
        want = PARADIGM_COLOURS[n["paradigm"]]
        assert want in (n["border"], n["header"]), (
            f"model node {n['operator']} ({n['paradigm']}) should be coloured {want} (border-left-color or "
            f"header background); saw border-left-color {n['border']}, header background {n['header']}\n{where}"
        )

    # Clicking the model node's header shows its details with the four paradigms.
    model = nb.output(cell).locator('div.wb-node[data-wbtest="model"]')
    header = model.locator(".wb-node-header").first
    header.click()
    details = model.locator(".wb-node-details").first
    try:
        details.wait_for(state="visible", timeout=5_000)
    except Exception:
        shot = nb.screenshot("after-click", cell=cell)
        raise AssertionError(
            f"clicking the model node's .wb-node-header should show .wb-node-details; not visible\nscreenshot: {shot}"
        ) from None
    after = nb.screenshot("after-click", cell=cell)
    alternatives = details.locator(".wb-alternatives")
    assert alternatives.count(), f".wb-node-details should hold .wb-alternatives; it has none\nscreenshot: {after}"
    alt_text = alternatives.first.inner_text()
    missing = [p for p in PARADIGM_COLOURS if p not in alt_text]
    assert not missing, (
        f".wb-alternatives should list all four paradigms; missing {missing} in {alt_text!r}\nscreenshot: {after}"
    )

    # .wb-toggle collapses a node (class wb-collapsed, children hidden) and expands it again.
    parent = nb.output(cell).locator('div.wb-node[data-wbtest-parent="1"]')
    assert parent.count(), f"expected a node with a .wb-toggle of its own\n{where}"
    toggle = parent.locator('[data-wbtest="toggle"]')
    kids = parent.locator("div.wb-node")
    n_kids = kids.count()

    def classes() -> str:
        return parent.get_attribute("class") or ""

    toggle.click()
    nb.page.wait_for_timeout(300)
    collapsed = nb.screenshot("collapsed", cell=cell)
    assert "wb-collapsed" in classes().split(), (
        f"clicking .wb-toggle should add wb-collapsed to its node; classes are {classes()!r}\nscreenshot: {collapsed}"
    )
    if n_kids:
        shown = [kids.nth(k).is_visible() for k in range(n_kids)]
        assert not any(shown), (
            f"children of a collapsed node should be hidden; visible: {shown}\nscreenshot: {collapsed}"
        )
    toggle.click()
    nb.page.wait_for_timeout(300)
    expanded = nb.screenshot("expanded", cell=cell)
    assert "wb-collapsed" not in classes().split(), (
        f"a second click on .wb-toggle should expand the node; classes are {classes()!r}\nscreenshot: {expanded}"
    )
    if n_kids:
        assert kids.first.is_visible(), f"children of an expanded node should show\nscreenshot: {expanded}"


def test_plan_tree_renders_and_shows_alternatives(notebook):
    nb = notebook(
        [
            "%load_ext workbench",
            "%%dlsql\nCALL load_dataset('digits')",
            "%%dlsql\nEXPLAIN ANALYZE SELECT id, digits(pixels).label AS l FROM digits WHERE id < 200",
        ]
    )
    for i in range(3):
        nb.run_cell(i)
        assert_no_error(nb, i)

    check_plan_tree(nb, 2)


# -- the live progress widget ------------------------------------------------------------------

# Samples the cell's `.wb-progress-text` every 100 ms inside the page (independent of the
# round trips of the test) and keeps each change with its time.
_START_SAMPLER_JS = """
([i]) => {
  const t0 = performance.now();
  const cellOf = () => document.querySelectorAll(
      '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell')[i];
  window.__wbSamples = [];
  window.__wbSeen = {live: false, summary: false, polls: 0};
  let last = null;
  const poll = () => {
    const cell = cellOf();
    if (!cell) return;
    window.__wbSeen.polls += 1;
    if (cell.querySelector('.jp-OutputArea .wb-live')) window.__wbSeen.live = true;
    if (cell.querySelector('.jp-OutputArea .wb-live-summary')) window.__wbSeen.summary = true;
    const el = cell.querySelector('.jp-OutputArea .wb-progress-text');
    const text = el ? el.textContent.trim() : null;
    if (text !== last) {
      window.__wbSamples.push({t: (performance.now() - t0) / 1000, text});
      last = text;
    }
  };
  window.__wbSampler = setInterval(poll, 100);
  poll();
}
"""

_STOP_SAMPLER_JS = """
() => { clearInterval(window.__wbSampler); return {samples: window.__wbSamples, seen: window.__wbSeen}; }
"""


def test_live_widget_progress_changes_while_running(notebook):
    # The %%dlsql cells run in the magic's own session (`%dlsql --session`), so the dataset
    # and the model setting go there.
    nb = notebook(
        [
            "%load_ext workbench",
            "import workbench\ns = %dlsql --session\n"
            "s.sql(\"CALL load_dataset('pydoc'); ALTER MODEL minilm SET cache = 'off'\")",
            "%%dlsql\nSELECT count(minilm(body)) AS n FROM pydoc WHERE id < 900",
        ]
    )
    for i in range(2):
        nb.run_cell(i)
        assert_no_error(nb, i)

    nb.page.evaluate(_START_SAMPLER_JS, [2])
    t0 = time.monotonic()
    before = nb.trigger_cell(2)
    mid_shot = None
    deadline = t0 + 300
    while True:
        state = nb.state(2)
        prompt = state["prompt"] or ""
        if prompt != before and prompt.strip("[]: ").isdigit() and state["kernel"] in ("idle", None):
            break
        if mid_shot is None:
            n_seen = nb.page.evaluate("() => new Set(window.__wbSamples.map(s => s.text).filter(Boolean)).size")
            if n_seen >= 5 or time.monotonic() - t0 > 15:
                mid_shot = nb.screenshot("mid-run", cell=2)
        if time.monotonic() > deadline:
            shot = nb.screenshot("timeout", cell=2)
            raise AssertionError(f"the long cell did not finish within 300 s; last state {state}\nscreenshot: {shot}")
        nb.page.wait_for_timeout(100)
    run_s = time.monotonic() - t0
    sampled = nb.page.evaluate(_STOP_SAMPLER_JS)
    end_shot = nb.screenshot("end", cell=2)

    samples = sampled["samples"]
    distinct = list(dict.fromkeys(s["text"] for s in samples if s["text"]))
    shown = [s["t"] for s in samples if s["text"]]
    span = (max(shown) - min(shown)) if len(shown) > 1 else 0.0
    figures = {
        "cell_seconds": round(run_s, 2),
        "polls": sampled["seen"]["polls"],
        "distinct_progress_texts": len(distinct),
        "updates_per_second": round(len(distinct) / run_s, 2) if run_s else None,
        "progress_visible_seconds": round(span, 2),
        "updates_per_second_while_visible": round((len(distinct) - 1) / span, 2) if span else None,
        "saw_wb_live": sampled["seen"]["live"],
        "saw_wb_live_summary_while_polling": sampled["seen"]["summary"],
        "first_texts": distinct[:5],
        "last_texts": distinct[-3:],
        "screenshots": [str(p) for p in (mid_shot, end_shot) if p],
    }
    fig_path = nb.write_json("figures", figures)
    print(
        f"\nlive widget: {len(distinct)} distinct progress texts in {run_s:.1f} s "
        f"({figures['updates_per_second']} /s over the cell, "
        f"{figures['updates_per_second_while_visible']} /s while visible); figures {fig_path}"
    )

    where = f"{describe_output(nb, 2)}\nscreenshots: mid-run {mid_shot}, end {end_shot}\nfigures: {fig_path}"
    assert_no_error(nb, 2)
    assert len(distinct) >= 3, (
        f"expected .wb-progress-text inside .wb-live to change at least twice while the query ran "
        f"(3+ distinct texts); saw {len(distinct)}: {distinct[:5]} (.wb-live seen: {sampled['seen']['live']})\n"
        f"{where}"
    )
    summary = expect_in_output(nb, 2, ".wb-live-summary", "the static summary that replaces the live widget")
    table = nb.output(2).locator("table")
    assert table.count(), f"expected the result table after .wb-live-summary; no <table> in the output\n{where}"
    order = summary.first.evaluate(
        "(s, t) => !!(s.compareDocumentPosition(t) & Node.DOCUMENT_POSITION_FOLLOWING)", table.last.element_handle()
    )
    assert order, f"the result table should follow .wb-live-summary\n{where}"


# -- SQL highlighting of %%dlsql cells -------------------------------------------------------

# The computed colour of the word SELECT in a cell's editor: the colour of the element holding
# the text node where the word starts (a token span, or the line when there is no span).
_WORD_COLOUR_JS = """
(content, word) => {
  const walker = document.createTreeWalker(content, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const at = node.textContent.search(new RegExp('\\\\b' + word + '\\\\b'));
    if (at >= 0) {
      const el = node.parentElement;
      return {colour: getComputedStyle(el).color, tag: el.tagName.toLowerCase(),
              cls: el.className, text: node.textContent};
    }
  }
  return null;
}
"""


def test_dlsql_cells_get_sql_highlighting(notebook):
    nb = notebook(["%%dlsql\nSELECT id FROM range(3) t(id) WHERE id > 0", "SELECT = 1"])
    dlsql_cell = nb.cell(0)
    try:
        nb.page.wait_for_function(
            "(el) => el.classList.contains('wb-dlsql-cell')", arg=dlsql_cell.element_handle(), timeout=RENDER_TIMEOUT_MS
        )
    except Exception:
        shot = nb.screenshot("no-dlsql-class", cell=0)
        raise AssertionError(
            f"expected the %%dlsql cell's node (.jp-Cell) to get class wb-dlsql-cell within "
            f"{RENDER_TIMEOUT_MS / 1000:.0f} s; its classes are {dlsql_cell.get_attribute('class')!r}\n"
            f"screenshot: {shot}\n{nb.where()}"
        ) from None

    # The editor's language may change a moment later (languages load lazily): wait until
    # SELECT is a token span of its own in the %%dlsql cell, or the time is up.
    sql_editor, py_editor = dlsql_cell.locator(".cm-content").first, nb.cell(1).locator(".cm-content").first
    deadline = time.monotonic() + RENDER_TIMEOUT_MS / 1000
    sql = sql_editor.evaluate(_WORD_COLOUR_JS, "SELECT")
    while (not sql or sql["tag"] != "span") and time.monotonic() < deadline:
        nb.page.wait_for_timeout(250)
        sql = sql_editor.evaluate(_WORD_COLOUR_JS, "SELECT")
    nb.page.wait_for_timeout(300)
    sql = sql_editor.evaluate(_WORD_COLOUR_JS, "SELECT")
    py = py_editor.evaluate(_WORD_COLOUR_JS, "SELECT")
    shot = nb.screenshot("highlighting", cell=0)
    langs = [e.get_attribute("data-language") for e in (sql_editor, py_editor)]
    where = (
        f"in the %%dlsql cell: {sql}; in the python cell: {py}; editor languages "
        f"(.cm-content[data-language]): {langs}\nscreenshot: {shot}"
    )
    assert sql and py, f"could not find SELECT in both editors\n{where}"
    assert sql["tag"] == "span", (
        f"SELECT in the %%dlsql cell should be a token span of its own (highlighted "
        f"as SQL) within {RENDER_TIMEOUT_MS / 1000:.0f} s; it is plain text\n{where}"
    )
    assert sql["colour"] != py["colour"], (
        f"SELECT should be coloured as an SQL keyword in the %%dlsql cell, unlike the python variable "
        f"SELECT; both are {sql['colour']}\n{where}"
    )
