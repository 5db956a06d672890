"""The live widget in a real JupyterLab: the kernel status stays Busy while a `%%dlsql` cell
with the widget runs, and the widget's memory chart (uPlot) has labelled axes and a budget
line; the static summary it freezes into (what a saved notebook shows) has them too.

Screenshots: tests/browser/artifacts/live_chart.png (the live chart mid-run) and
live_chart_saved.png (the frozen summary). See conftest.py for the harness.
"""

from __future__ import annotations

import json
import time

from tests.browser.test_lab import assert_no_error, describe_output, expect_in_output

CELLS = [
    "%load_ext workbench",
    # the %%dlsql cells run in the magic's own session; a CPU budget draws a budget line
    "import workbench\ns = %dlsql --session\n"
    "s.sql(\"CALL load_dataset('pydoc'); ALTER MODEL minilm SET cache = 'off'; SET memory_budget_cpu = '2GB'\")",
    "%%dlsql\nSELECT count(minilm(body)) AS n FROM pydoc WHERE id < 300",
]
LONG = 2  # the cell that runs several seconds with the widget
RUN_TIMEOUT_S = 300

# Samples, inside the page every 150 ms, the long cell's prompt, the kernel status of the
# notebook toolbar's execution indicator and of the status bar ('Python 3 (ipykernel) | Busy'),
# and whether the live widget / the frozen summary show in its output.
_START_JS = """
([i]) => {
  const t0 = performance.now();
  window.__wbStatus = [];
  const poll = () => {
    const cell = document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell')[i];
    if (!cell) return;
    const prompt = cell.querySelector('.jp-InputArea-prompt');
    const ind = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
    const bar = Array.from(document.querySelectorAll('#jp-main-statusbar span, .jp-StatusBar-TextItem'))
      .map(e => e.textContent.trim()).find(t => /\\|\\s*(Idle|Busy|Starting|Unknown)/i.test(t)) || null;
    window.__wbStatus.push({
      t: (performance.now() - t0) / 1000,
      prompt: prompt ? prompt.textContent.trim() : null,
      indicator: ind ? ind.getAttribute('data-status') : null,
      statusbar: bar,
      live: !!cell.querySelector('.jp-OutputArea .wb-live'),
      frozen: !!cell.querySelector('.jp-OutputArea .wb-live-summary'),
    });
  };
  window.__wbStatusTimer = setInterval(poll, 150);
  poll();
}
"""
_STOP_JS = "() => { clearInterval(window.__wbStatusTimer); return window.__wbStatus; }"

# What the live uPlot chart shows: its axes' labels, its series' labels (legend) and whether
# its canvas has a size.
_CHART_JS = """
(el) => {
  const u = el.wbPlot;
  const canvas = el.querySelector('canvas');
  return {
    uplot: !!u,
    axes: u ? u.axes.map(a => a.label || null) : [],
    series: u ? u.series.map(s => s.label) : [],
    points: u ? (u.data[0] || []).length : 0,
    legend: Array.from(el.querySelectorAll('.u-legend .u-series')).map(e => e.textContent.trim()),
    canvas: canvas ? [canvas.width, canvas.height] : null,
    dataset: {...el.dataset},
  };
}
"""


def test_status_stays_busy_and_the_live_chart_has_axes_and_budget(notebook, artifacts_dir):
    nb = notebook(CELLS)
    for i in range(LONG):
        nb.run_cell(i)
        assert_no_error(nb, i)

    nb.page.evaluate(_START_JS, [LONG])
    t0 = time.monotonic()
    before = nb.trigger_cell(LONG)
    chart: dict = {}
    live_shot = artifacts_dir / "live_chart.png"
    while True:
        state = nb.state(LONG)
        prompt = state["prompt"] or ""
        if prompt != before and prompt.strip("[]: ").isdigit() and state["kernel"] in ("idle", None):
            break
        plot = nb.output(LONG).locator(".wb-live .wb-memory-plot")
        if not chart.get("points") or chart["points"] < 4:
            if plot.count() and plot.first.locator("canvas").count():
                chart = plot.first.evaluate(_CHART_JS)
                if chart.get("points", 0) >= 4:
                    nb.cell(LONG).scroll_into_view_if_needed()
                    nb.page.screenshot(path=str(live_shot))
        if time.monotonic() - t0 > RUN_TIMEOUT_S:
            shot = nb.screenshot("timeout", cell=LONG)
            raise AssertionError(f"the long cell did not finish within {RUN_TIMEOUT_S} s; {state}\nscreenshot: {shot}")
        nb.page.wait_for_timeout(200)
    samples = nb.page.evaluate(_STOP_JS)
    assert_no_error(nb, LONG)

    # -- the kernel status: Busy on every sample while the cell runs --------------------------
    # From the kernel's first 'busy' (the prompt shows [*] a moment before the kernel says so)
    # until the frozen summary shows (the cell is finishing: its idle may beat the prompt).
    first_busy = next((k for k, s in enumerate(samples) if s["prompt"] == "[*]:" and s["indicator"] == "busy"), None)
    window = [
        s for s in samples[first_busy or 0 :] if s["prompt"] == "[*]:" and not s["frozen"] and first_busy is not None
    ]
    fig = nb.write_json("status-samples", {"samples": samples, "chart": chart})
    where = f"samples: {fig}\n{describe_output(nb, LONG)}\n{nb.where()}"
    assert first_busy is not None, f"never saw the kernel busy while the cell showed [*]\n{where}"
    with_widget = [s for s in window if s["live"]]
    assert len(window) >= 5 and with_widget, (
        f"expected several samples while the cell ran, some with the live widget; "
        f"{len(window)} samples, {len(with_widget)} with .wb-live\n{where}"
    )
    not_busy = [s for s in window if s["indicator"] != "busy" or (s["statusbar"] and "Busy" not in s["statusbar"])]
    assert not not_busy, (
        f"the kernel status must stay Busy while the widget cell runs ([*]); {len(not_busy)} of "
        f"{len(window)} samples were not: {json.dumps(not_busy[:5])}\n{where}"
    )
    assert any(s["statusbar"] for s in window), f"found no kernel status in the status bar\n{where}"

    # -- the live chart: a uPlot with labelled axes and a budget line -------------------------
    assert chart.get("uplot"), f"expected a uPlot chart in .wb-live .wb-memory-plot; saw {chart}\n{where}"
    x_label, y_label = chart["axes"][:2]
    assert x_label and "second" in x_label, f"the x axis needs a label in seconds; axes {chart['axes']}"
    assert y_label and "memory" in y_label, f"the y axis needs a memory label; axes {chart['axes']}"
    assert any(s and s.startswith("cpu") and "budget" not in s for s in chart["series"]), chart
    assert any(s and "budget" in s for s in chart["series"]), f"no budget series in {chart['series']}"
    assert any("budget" in t for t in chart["legend"]), f"the legend should name the budget: {chart['legend']}"
    assert chart["canvas"] and min(chart["canvas"]) > 50, f"the chart's canvas has no size: {chart['canvas']}"
    assert live_shot.exists(), f"no screenshot of the live chart at {live_shot}\n{where}"

    # -- the saved form: the frozen summary has the same chart as static SVG -----------------
    svg = expect_in_output(nb, LONG, ".wb-live-summary svg.wb-memory-chart", "the static memory chart").first
    labels = {
        "x": svg.locator(".wb-x-label").all_text_contents(),
        "y": svg.locator(".wb-y-label").all_text_contents(),
        "budget_lines": svg.locator(".wb-budget").count(),
        "lines": svg.locator("polyline").count(),
    }
    svg.scroll_into_view_if_needed()
    nb.page.screenshot(path=str(artifacts_dir / "live_chart_saved.png"))
    assert labels["x"] and "second" in labels["x"][0], labels
    assert labels["y"] and "memory" in labels["y"][0], labels
    assert labels["budget_lines"] >= 1 and labels["lines"] >= 1, labels
