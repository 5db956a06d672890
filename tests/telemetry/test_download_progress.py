"""Hub downloads in the progress displays: `download` events fold into the tracker's snapshot
(an activity of their own outside a query, a fact of the query inside one), and the text
progress bar, the live widget and its static summary draw them; hub.py's own stderr line
steps aside while one of those draws.

The end-to-end test downloads from tests/hub_server.py on 127.0.0.1 (the fixtures of
tests/models/test_hub.py); nothing else is reached."""

from __future__ import annotations

import html
import io

import workbench.jupyter.live as live_module
from tests.models.test_hub import REPO, server, weights  # noqa: F401 - the hub's fixtures
from workbench.jupyter.live import LiveDisplay, widget_state
from workbench.models import hub
from workbench.telemetry import Telemetry, TextProgress, Tracker
from workbench.telemetry.summary import facts, progress_text, summary_html, summary_text

LABEL = "test-org/tiny@abc1234"
MB = 1_000_000


def _download(tele: Telemetry, steps=((0, 0), (1, 1 * MB), (2, 2 * MB), (3, 3 * MB)), total=(3, 3 * MB)):
    """Emit a download's events as hub.py does: progress, then a last one with finished=True."""
    for files, size in steps[:-1]:
        tele.emit("download", repo=LABEL, files_done=files, files_total=total[0], bytes_done=size,
                  bytes_total=total[1], finished=False)  # fmt: skip
    files, size = steps[-1]
    tele.emit("download", repo=LABEL, files_done=files, files_total=total[0], bytes_done=size,
              bytes_total=total[1], finished=True)  # fmt: skip


def _query(tele: Telemetry, sql: str = "SELECT m(x) FROM t") -> None:
    tele.emit("query_start", sql=sql, operators=[{"id": 1, "call": "m", "paradigm": "dl_centric"}])
    tele.emit("operator_start", id=1, call="m", paradigm="dl_centric", rows_total=10)
    tele.emit("progress", id=1, rows_done=10, rows_total=10, batches=1)


class Output:
    """Stands in for the notebook's output area."""

    def __init__(self):
        self.shown, self.updates = [], []

    def display(self, bundle, raw=False, display_id=False):
        self.shown.append(bundle)
        return self

    def update(self, bundle, raw=False):
        self.updates.append(bundle)


# -- the tracker ----------------------------------------------------------------------------
def test_a_download_outside_a_query_is_an_activity_of_its_own():
    tele, tracker = Telemetry(), Tracker()
    tele.subscribe(tracker)
    _query(tele)
    tele.emit("query_end", rows=10, seconds=0.5, error=None)
    tele.emit("download", repo=LABEL, files_done=1, files_total=3, bytes_done=MB, bytes_total=4 * MB, finished=False)
    s = tracker.copy()
    assert s.activity == "download" and not s.finished and s.sql == "" and s.rows_done == 0
    assert s.download is not None and (s.download.files_done, s.download.bytes_done) == (1, MB)
    assert s.fraction == 0.25
    assert progress_text(s) == f"downloading {LABEL}: 1/3 files, 1.0/4.0 MB"
    d = s.to_dict()
    assert d["activity"] == "download"
    assert d["download"] == {
        "repo": LABEL,
        "files_done": 1,
        "files_total": 3,
        "bytes_done": MB,
        "bytes_total": 4 * MB,
        "finished": False,
        "fraction": 0.25,
        "seconds": d["download"]["seconds"],
    }
    tele.emit("download", repo=LABEL, files_done=3, files_total=3, bytes_done=4 * MB, bytes_total=4 * MB, finished=True)
    s = tracker.copy()
    assert s.finished and s.fraction == 1.0 and s.to_dict()["download"]["finished"]
    assert progress_text(s).startswith(f"downloaded {LABEL}: 3 files, 4.0 MB in ")
    assert facts(s) == [] and summary_text(s) == progress_text(s)
    page = summary_html(s)
    assert "data-state='done'" in page and html.escape(progress_text(s)) in page and "<svg" not in page

    _query(tele)  # the next query starts afresh
    s = tracker.copy()
    assert s.activity == "query" and s.download is None and s.rows_done == 10


def test_a_download_during_a_query_is_that_querys_fact():
    tele, tracker = Telemetry(), Tracker()
    tele.subscribe(tracker)
    _query(tele)
    tele.emit("download", repo=LABEL, files_done=1, files_total=2, bytes_done=MB, bytes_total=2 * MB, finished=False)
    s = tracker.copy()
    assert s.activity == "query" and s.sql and s.rows_done == 10 and not s.finished
    assert ("download", f"downloading {LABEL}: 1/2 files, 1.0/2.0 MB") in facts(s)
    tele.emit("query_end", rows=None, seconds=0.5, error="ModelLoadError: gone")  # it failed mid-download
    s = tracker.copy()
    assert ("download", f"download of {LABEL} stopped at 1/2 files, 1.0/2.0 MB") in facts(s)
    assert "failed" in summary_html(s)


def test_counts_never_go_back():
    tele, tracker = Telemetry(), Tracker()
    tele.subscribe(tracker)
    _download(tele, steps=((0, 0), (2, 2 * MB), (1, MB), (3, 3 * MB)))
    s = tracker.copy()
    assert s.download is not None and s.download.files_done == 3 and s.download.bytes_done == 3 * MB


# -- the text progress bar ------------------------------------------------------------------
def test_text_progress_draws_a_download_and_ends_with_its_line():
    out, tele = io.StringIO(), Telemetry()
    tele.subscribe(TextProgress(out, after=0.0, interval=0.0))
    _download(tele)
    frames = out.getvalue().split("\r")[1:]
    assert frames[0] == f"[{'.' * 24}] downloading {LABEL}: 0/3 files, 0.0/3.0 MB\x1b[K"
    assert f"[{'#' * 8}{'.' * 16}] downloading {LABEL}: 1/3 files, 1.0/3.0 MB\x1b[K" in frames
    assert frames[-1].startswith(f"[{'#' * 24}] downloaded {LABEL}: 3 files, 3.0 MB in ")
    assert out.getvalue().endswith("\x1b[K\n") and out.getvalue().count("\n") == 1


def test_text_progress_a_quick_download_leaves_only_its_last_line():
    out, tele = io.StringIO(), Telemetry()
    tele.subscribe(TextProgress(out, after=60.0))
    _download(tele)
    text = out.getvalue()
    assert text.count("\r") == 1 and "downloading" not in text and f"downloaded {LABEL}: 3 files" in text


def test_text_progress_a_download_after_a_finished_query_draws_its_own_line():
    out, tele = io.StringIO(), Telemetry()
    tele.subscribe(TextProgress(out, after=0.0, interval=0.0))
    _query(tele)
    tele.emit("query_end", rows=10, seconds=0.5, error=None)
    after_query = out.getvalue()
    assert after_query.endswith("\n") and "10 model rows" in after_query.split("\r")[-1]
    tele.emit("memory", devices={"cpu": {"rss": 1}})  # a late event: the query's bar stays as it ended
    assert out.getvalue() == after_query
    _download(tele)
    lines = out.getvalue().split("\n")
    assert (
        len(lines) == 3 and lines[2] == "" and "downloading" in lines[1] and lines[1].split("\r")[-1].startswith("[###")
    )
    assert f"downloaded {LABEL}" in lines[1].split("\r")[-1]


def test_text_progress_a_download_during_a_query_shows_in_its_bar():
    out, tele = io.StringIO(), Telemetry()
    tele.subscribe(TextProgress(out, after=0.0, interval=0.0))
    tele.emit("query_start", sql="SELECT m(x) FROM t", operators=[{"id": 1, "call": "m", "paradigm": "dl_centric"}])
    tele.emit("download", repo=LABEL, files_done=1, files_total=2, bytes_done=MB, bytes_total=2 * MB, finished=False)
    assert out.getvalue().split("\r")[-1].startswith(f"[{'#' * 12}{'.' * 12}] downloading {LABEL}: 1/2 files")
    tele.emit("download", repo=LABEL, files_done=2, files_total=2, bytes_done=2 * MB, bytes_total=2 * MB, finished=True)
    tele.emit("progress", id=1, rows_done=5, rows_total=10, batches=1)
    assert "5 / 10 rows" in out.getvalue().split("\r")[-1]
    tele.emit("query_end", rows=10, seconds=0.5, error=None)
    assert out.getvalue().endswith("\n") and out.getvalue().count("\n") == 1


def test_a_stopped_download_line_is_ended_before_the_next_activity():
    out, tele = io.StringIO(), Telemetry()
    tele.subscribe(TextProgress(out, after=0.0, interval=0.0))
    tele.emit("download", repo=LABEL, files_done=1, files_total=3, bytes_done=MB, bytes_total=3 * MB, finished=False)
    _query(tele)  # the download failed (no finished event); a query follows
    first, second = out.getvalue().split("\n")
    assert "downloading" in first and "rows" in second


# -- hub.py's own line ------------------------------------------------------------------------
def test_hub_line_only_when_no_listener_draws_downloads():
    sizes = {"config.json": 10, "model.safetensors": 90}
    for listener, printed in ((None, True), ([].append, True), (Tracker(), True), (TextProgress(io.StringIO()), False)):
        tele = Telemetry()
        if listener is not None:
            tele.subscribe(listener)
        err = io.StringIO()
        p = hub.Progress(LABEL, list(sizes), sizes, tele, err)
        p.start("config.json")
        p.add(10)
        p.start("model.safetensors")
        p.add(90)
        p.finish()
        assert ("downloaded" in err.getvalue()) is printed, listener
        assert (err.getvalue() == "") is not printed


# -- the live widget --------------------------------------------------------------------------
def test_widget_state_of_a_download():
    tele, tracker = Telemetry(), Tracker()
    tele.subscribe(tracker)
    tele.emit("download", repo=LABEL, files_done=3, files_total=7, bytes_done=12_300_000, bytes_total=90_100_000,
              finished=False)  # fmt: skip
    st = widget_state(tracker, 1)
    assert st["activity"] == "download" and not st["finished"]
    assert st["progress_text"] == f"downloading {LABEL}: 3/7 files, 12.3/90.1 MB"
    assert abs(st["fraction"] - 12.3 / 90.1) < 1e-3 and st["facts"] == [] and st["chart"] == {}
    assert st["download"]["text"] == st["progress_text"] and st["download"]["files_total"] == 7

    _query(tele)  # during a query: the query's state, with the download as its own line
    tele.emit("download", repo=LABEL, files_done=1, files_total=2, bytes_done=MB, bytes_total=2 * MB, finished=False)
    st = widget_state(tracker, 2)
    assert st["activity"] == "query" and "rows" in st["progress_text"]
    assert st["download"]["text"] == f"downloading {LABEL}: 1/2 files, 1.0/2.0 MB" and st["download"]["fraction"] == 0.5
    assert "download" not in [k for k, _ in st["facts"]], "drawn as its own line, not twice"


def test_live_display_shows_a_download_then_freezes(monkeypatch):
    out, tele = Output(), Telemetry()
    monkeypatch.setattr(live_module, "display", out.display)
    states = []
    with LiveDisplay(tele, interval=0.0, show_after=0.0) as live:
        tele.subscribe(lambda e: live.widget is not None and states.append(dict(live.widget.state)))
        _download(tele)
    assert len(out.shown) == 1 and "application/vnd.jupyter.widget-view+json" in out.shown[0]
    assert "downloading" in out.shown[0]["text/html"]
    texts = [st["progress_text"] for st in states]
    assert f"downloading {LABEL}: 2/3 files, 2.0/3.0 MB" in texts
    (final,) = out.updates
    assert set(final) == {"text/html", "text/plain"}
    assert final["text/plain"].startswith(f"downloaded {LABEL}: 3 files, 3.0 MB in ")
    assert "wb-live-summary" in final["text/html"] and "data-state='done'" in final["text/html"]
    assert live.widget is None


def test_live_display_a_quick_download_leaves_its_static_line(monkeypatch):
    out, tele = Output(), Telemetry()
    monkeypatch.setattr(live_module, "display", out.display)
    with LiveDisplay(tele, show_after=60.0):
        _download(tele)
    (shown,) = out.shown
    assert set(shown) == {"text/html", "text/plain"} and shown["text/plain"].startswith(f"downloaded {LABEL}")
    assert not out.updates


def test_live_display_a_stopped_download_freezes_as_failed(monkeypatch):
    out, tele = Output(), Telemetry()
    monkeypatch.setattr(live_module, "display", out.display)
    with LiveDisplay(tele, show_after=0.0):
        tele.emit("download", repo=LABEL, files_done=1, files_total=3, bytes_done=MB, bytes_total=3 * MB,
                  finished=False)  # fmt: skip
    (final,) = out.updates
    assert final["text/plain"] == f"download of {LABEL} stopped at 1/3 files, 1.0/3.0 MB"
    assert "data-state='failed'" in final["text/html"]


# -- end to end: CREATE MODEL from the (local) hub --------------------------------------------
def test_create_model_from_the_hub_reports_files_and_bytes(session, server, capsys):  # noqa: F811
    tracker, bar = Tracker(), io.StringIO()
    events = []
    session.telemetry.subscribe(tracker)
    session.telemetry.subscribe(TextProgress(bar, after=0.0, interval=0.0))
    session.telemetry.subscribe(lambda e: e.kind == "download" and events.append(e.data))
    session.sql(f"CREATE MODEL tiny FROM 'hf://{REPO}'")
    sha = server.repos[REPO].refs["main"]
    label = f"{REPO}@{sha[:7]}"

    s = tracker.copy()
    assert s.activity == "download" and s.finished and s.download is not None
    d = s.download
    assert d.repo == label and d.finished
    assert d.files_done == d.files_total == 6
    assert d.bytes_done == d.bytes_total > 4_000_000
    assert d.bytes_total == sum(len(server.repos[REPO].commits[sha][f]) for f in server.fetched())
    assert [e["files_done"] for e in events] == sorted(e["files_done"] for e in events)
    assert events[0]["files_done"] == 0 and events[-1]["finished"]

    text = bar.getvalue()
    assert f"downloading {label}: 0/6 files, 0.0/4.7 MB" in text
    assert text.split("\r")[-1].startswith(f"[{'#' * 24}] downloaded {label}: 6 files, 4.7 MB in ")
    assert text.endswith("\n")
    assert "downloading" not in capsys.readouterr().err, "the bar draws it: hub.py's own line steps aside"
