"""The timeline's legend names each kind of mark by what it means, once."""

from __future__ import annotations

import pytest

from workbench.scheduler.future import QueryFuture
from workbench.scheduler.timeline import DEADLINE, NAMES, WAITING, timeline

pytest.importorskip("plotly")


def _future(seq: int, status: str, deadline_ms: float | None = 100.0) -> QueryFuture:
    f = QueryFuture("SELECT 1", None, deadline_ms, seq)
    f.submitted = 10.0 + seq * 0.01
    if status == "dropped":
        f.status, f.reason, f.finished_at = "dropped", "cannot make its deadline", 0.0
    else:
        f.status, f.started_at, f.finished_at = status, 0.02, 0.05
    return f


def test_legend_names_each_mark_once() -> None:
    statuses = ["done", "late", "done", "dropped", "late", "dropped", "failed"]
    fig = timeline([_future(i, s) for i, s in enumerate(statuses)])
    shown = [t.name for t in fig.data if t.showlegend is not False]
    assert sorted(shown) == sorted({NAMES["done"], NAMES["late"], NAMES["dropped"], NAMES["failed"], WAITING, DEADLINE})
    assert NAMES["done"] == "ran, on time" and NAMES["late"] == "ran, late"
    assert NAMES["dropped"] == "dropped (not run)"
    assert not {"done", "late", "dropped"} & {t.name for t in fig.data}
    # every trace belongs to a legend group, so clicking an entry hides all its marks
    assert all(t.legendgroup == t.name for t in fig.data)


def test_no_deadline_no_deadline_entry() -> None:
    fig = timeline([_future(0, "done", deadline_ms=None)])
    assert {t.name for t in fig.data} == {NAMES["done"], WAITING}
