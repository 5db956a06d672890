"""The event stream: monotone progress ending at the true row count, memory per device, and a
clean end whatever happens to the query."""

from __future__ import annotations

import io
import threading

import pytest
import torch

from workbench.errors import ModelError
from workbench.plan.nodes import PARADIGMS
from workbench.telemetry import Telemetry, TextProgress, Tracker


def record(session):
    events = []
    unsubscribe = session.telemetry.subscribe(events.append)
    return events, unsubscribe


def progress_of(events):
    return [(e.data["rows_done"], e.data["rows_total"]) for e in events if e.kind == "progress"]


@pytest.mark.parametrize("paradigm", PARADIGMS)
def test_progress_is_monotone_and_ends_at_the_true_row_count(digits_session, paradigm):
    s = digits_session
    s.sql("ALTER MODEL digits SET cache = 'off'")
    events, unsubscribe = record(s)
    tracker = Tracker()
    s.telemetry.subscribe(tracker)
    try:
        result = s.sql("SELECT digits(pixels).label AS l FROM digits WHERE id < 1500", paradigm=paradigm)
    finally:
        unsubscribe()
        s.telemetry.unsubscribe(tracker)
    kinds = [e.kind for e in events]
    assert kinds[0] == "query_start" and kinds[-1] == "query_end"
    done = [d for d, _ in progress_of(events)]
    assert done and done == sorted(done)
    true_rows = result.stats[0]["rows"]
    assert true_rows == 1500 and done[-1] == true_rows
    snap = tracker.copy()
    assert snap.finished and snap.rows_done == snap.rows_total == true_rows and snap.result_rows == 1500


def test_text_model_reports_every_batch(data_session):
    s = data_session
    s.sql("ALTER MODEL minilm SET cache = 'off'")
    events, unsubscribe = record(s)
    try:
        result = s.sql("SELECT count(minilm(body)) AS n FROM pydoc WHERE id < 200")
    finally:
        unsubscribe()
        s.sql("ALTER MODEL minilm SET cache = 'exact'")
    done = [d for d, _ in progress_of(events)]
    assert len(done) >= 3, "a text model reports after each batch, not once per DuckDB vector"
    assert done == sorted(done) and done[-1] == result.stats[0]["rows"]


def test_memory_samples_cover_each_device(digits_session):
    s = digits_session
    events, unsubscribe = record(s)
    try:
        s.sql("SELECT count(digits(pixels).label) FROM digits")
    finally:
        unsubscribe()
    samples = [e.data["devices"] for e in events if e.kind == "memory"]
    assert len(samples) >= 2  # one as the query starts, one as it ends
    devices = {"cpu"} | (
        {f"cuda:{i}" for i in range(torch.cuda.device_count())}
        if torch.cuda.is_available() and torch.cuda.is_initialized()
        else set()
    )
    for sample in samples:
        assert set(sample) == devices
        assert sample["cpu"]["rss"] > 0 and sample["cpu"]["duckdb"] >= 0 and sample["cpu"]["torch"] > 0
    moved = [e.data for e in events if e.kind == "bytes"]
    assert any(m["source"] == "duckdb" and m["bytes"] > 0 for m in moved)
    assert not [t for t in threading.enumerate() if t.name == "workbench-memory"], "the sampler stops"


def test_a_failing_model_still_ends_the_query_with_its_error(session):
    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    session.register_model("broken", Broken(), task="regress", input_dim=2, output_dim=1)
    session.sql("CREATE TABLE t AS SELECT [i, i]::FLOAT[2] AS v FROM range(5) r(i)")
    events, unsubscribe = record(session)
    try:
        with pytest.raises(ModelError):
            session.sql("SELECT broken(v) FROM t", paradigm="dl_centric")
    finally:
        unsubscribe()
    end = events[-1]
    assert end.kind == "query_end" and "boom" in end.data["error"]
    assert not [t for t in threading.enumerate() if t.name == "workbench-memory"]


def test_unobserved_queries_emit_nothing_and_a_broken_listener_is_dropped(digits_session):
    tele = Telemetry()
    assert tele.progress(1) is None  # nobody listens: executors get no callback at all

    def broken(event):
        raise ValueError("display bug")

    tele.subscribe(broken)
    with pytest.warns(UserWarning, match="display bug"):
        tele.emit("progress", id=1, rows_done=1, rows_total=2, batches=1)
    assert not tele.active


def test_text_progress_bar_draws_and_ends_with_a_newline(digits_session):
    out = io.StringIO()
    bar = TextProgress(out, after=0.0, interval=0.0)
    unsubscribe = digits_session.telemetry.subscribe(bar)
    try:
        digits_session.sql("SELECT digits(pixels).label FROM digits", paradigm="dl_centric")
    finally:
        unsubscribe()
    text = out.getvalue()
    assert "rows" in text and "[" in text and text.endswith("\n")
    assert "1,797 model rows" in text.splitlines()[-1].split("\r")[-1]
