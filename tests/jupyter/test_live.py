"""The live widget's driver: it pushes state during the query and freezes into a static
summary carrying the same facts as the text form."""

from __future__ import annotations

import html

import workbench.jupyter.live as live_module
from workbench.jupyter.live import LiveDisplay
from workbench.telemetry import Tracker
from workbench.telemetry.summary import facts, summary_html, summary_text


class Output:
    """Stands in for the notebook's output area: records what is displayed and updated."""

    def __init__(self):
        self.shown, self.updates = [], []

    def display(self, bundle, raw=False, display_id=False):
        self.shown.append(bundle)
        return self

    def update(self, bundle, raw=False):
        self.updates.append(bundle)


def test_live_display_updates_during_the_query_then_freezes(data_session, monkeypatch):
    s = data_session
    out = Output()
    monkeypatch.setattr(live_module, "display", out.display)
    s.sql("ALTER MODEL minilm SET cache = 'off'")
    states = []
    try:
        with LiveDisplay(s.telemetry, interval=0.0, show_after=0.0) as live:
            s.telemetry.subscribe(lambda e: live.widget is not None and states.append(dict(live.widget.state)))
            s.sql("SELECT count(minilm(body)) AS n FROM pydoc WHERE id < 150")
    finally:
        s.sql("ALTER MODEL minilm SET cache = 'exact'")
    assert len(out.shown) == 1 and "application/vnd.jupyter.widget-view+json" in out.shown[0]
    assert "text/html" in out.shown[0], "a fallback for front ends without widgets"
    texts = [st["progress_text"] for st in states if st.get("progress_text")]
    assert live.pushes >= 2 and len(set(texts)) >= 3, texts
    fractions = [st["fraction"] for st in states]
    assert fractions == sorted(fractions) and states[-1]["chart"]["cpu"]
    (final,) = out.updates
    assert set(final) == {"text/html", "text/plain"}, "frozen: no widget left in the saved notebook"
    assert "wb-live-summary" in final["text/html"] and "model rows in" in final["text/plain"]
    assert live.widget is None


def test_summary_html_and_text_show_the_same_facts(digits_session):
    tracker = Tracker()
    unsubscribe = digits_session.telemetry.subscribe(tracker)
    try:
        digits_session.sql("SELECT digits(pixels).label FROM digits")
    finally:
        unsubscribe()
    snap = tracker.copy()
    page, text = html.unescape(summary_html(snap)), summary_text(snap)
    assert "wb-live-summary" in page and "<svg" in page and "<script" not in page
    assert facts(snap)
    for key, value in facts(snap):
        assert f"{key}: {value}" in text and key in page and value in page


def test_a_quick_query_shows_nothing(digits_session, monkeypatch):
    out = Output()
    monkeypatch.setattr(live_module, "display", out.display)
    with LiveDisplay(digits_session.telemetry, show_after=60.0):
        digits_session.sql("SELECT digits(pixels).label FROM digits WHERE id < 5")
    assert not out.shown and not out.updates


class FakeKernel:
    """ipykernel's status publishing, as far as KernelStaysBusy uses it."""

    def __init__(self):
        self.published, self.parents = [], {"shell": {"header": {"msg_id": "cell"}}}

    def _publish_status(self, status, channel, parent=None):
        self.published.append((status, (parent or self.parents[channel])["header"]["msg_id"]))

    def get_parent(self, channel="shell"):
        return self.parents.get(channel, {})


def test_kernel_stays_busy_until_the_cell_itself_is_idle():
    kernel = FakeKernel()
    with live_module.KernelStaysBusy(kernel):
        kernel.parents["control"] = {"header": {"msg_id": "subshell"}}
        publish = kernel._publish_status  # noqa: SLF001 - what ipykernel calls
        publish("busy", "control")
        publish("idle", "control")  # JupyterLab would show Idle: not published
    kernel._publish_status("idle", "shell")  # noqa: SLF001
    assert kernel.published == [("busy", "subshell"), ("idle", "cell")]
    assert "_publish_status" not in vars(kernel), "the kernel's own method is back"


def test_the_widget_module_bundles_uplot_before_live_js():
    esm, css = live_module.LiveQuery._esm, live_module.LiveQuery._css  # noqa: SLF001 - anywidget's names
    assert esm.index("var uPlot=") < esm.index("export default { render }")
    assert "MIT" in esm[:400] and ".uplot" in css


def test_static_summary_has_labelled_axes_budget_and_layer_lane():
    from workbench.telemetry.tracker import Snapshot

    s = Snapshot(sql="q", started=1.0, elapsed=3.0, finished=True, budgets={"cpu": 10**9}, baseline={"cpu": 10**9})
    s.memory = [(t / 4, {"cpu": {"rss": 10**9 + t * 10**7}}) for t in range(12)]
    s.peak = {"cpu": 10**9 + 11 * 10**7}
    page = summary_html(s, [(0.5, "layers.0", 0.02, 0.05), (1.0, "layers.1", 0.03, 0.04)])
    assert "seconds since the query started" in page and "resident memory" in page
    assert "class='wb-budget'" in page and "budget (limit 2.0 GB)" in page
    assert "wb-layer-chart" in page and "layer read (disk)" in page and "layers.1 computed" in page
    assert "wb-layer-chart" not in summary_html(s), "no lane without an offloaded model"
