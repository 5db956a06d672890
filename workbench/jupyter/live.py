"""The live query widget under a `%%dlsql` cell.

While a model query runs, an anywidget shows a progress bar with ETA, a memory chart per
device with its budget as a dashed line, bytes moved, batches per second and the cache hit
ratio. The engine's event stream drives it from whatever thread reports (the query thread,
DuckDB's threads, the memory sampler), at most `INTERVAL_S` apart, so the front end gets
updates during the query. When the query ends the output is replaced by a static HTML and
text summary of the same facts: it renders after the notebook is saved and reopened without
a kernel, in nbviewer and on GitHub. A query done within `SHOW_AFTER_S` shows nothing but
its result.

A hub download outside any query (`CREATE MODEL m FROM 'hf://org/name'`, which emits
`download` events but no `query_start`) is an activity of its own: the widget shows
'downloading org/name@abc1234: 3/7 files, 12.3/90.1 MB' over a bar of the bytes, and freezes
into 'downloaded ...' when it ends. A quicker download leaves just that static line (hub.py
prints no stderr line of its own while this display listens). A download during a query is
a line with its own small bar under the query's.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import anywidget
import traitlets
from IPython.display import display

from workbench.telemetry import Tracker
from workbench.telemetry.stream import Event, Telemetry
from workbench.telemetry.summary import (
    download_text,
    facts,
    memory_series,
    progress_text,
    summary_html,
    summary_text,
)

INTERVAL_S = 0.2
#: a query quicker than this shows no widget and leaves no summary
SHOW_AFTER_S = 0.3

_HERE = Path(__file__).parent


class LiveQuery(anywidget.AnyWidget):
    """The widget itself: the front end draws `state` (built by `LiveDisplay`)."""

    _esm = _HERE / "live.js"
    _css = _HERE / "live.css"
    state = traitlets.Dict().tag(sync=True)


def widget_state(tracker: Tracker, pushes: int) -> dict[str, Any]:
    s = tracker.copy()
    budgets = s.limits()  # drawn where the budget puts the limit: above the start
    dl = s.download
    return {
        "activity": s.activity,  # 'query', or 'download' (a hub download outside any query)
        "sql": " ".join(s.sql.split())[:200],
        "fraction": s.fraction,
        "progress_text": progress_text(s),
        # the widget draws a query's download as a line with its own bar, not as a fact
        "facts": [list(f) for f in facts(s) if f[0] != "download"],
        "chart": {d: [list(p) for p in pts] for d, pts in memory_series(s).items()},
        "budgets": budgets,
        "download": None if dl is None else {**dl.to_dict(), "text": download_text(dl, stopped=s.finished)},
        "finished": s.finished,
        "updates": pushes,
    }


class LiveDisplay:
    """While active, every model query of `telemetry` that runs longer than `show_after`
    seconds shows a live widget, which freezes into a static summary when the query ends; a
    quicker query shows nothing (its result says all there is to say). A hub download outside
    a query shows the same way, and a quicker one leaves its static line ('downloaded ...').
    Use as a context manager around a cell's work."""

    draws_downloads = True  # hub.py prints no line of its own while this listens

    def __init__(self, telemetry: Telemetry, interval: float = INTERVAL_S, show_after: float = SHOW_AFTER_S):
        self.telemetry = telemetry
        self.interval = interval
        self.show_after = show_after
        self.pushes = 0  # widget updates sent (a figure for the closing note and tests)
        self._tracker = Tracker()
        self._widget: LiveQuery | None = None
        self._handle: Any = None
        self._started: float | None = None  # the running query's start; None between queries
        self._last = 0.0
        self._lock = threading.Lock()
        self._unsubscribe: Any = None

    @property
    def widget(self) -> LiveQuery | None:
        """The live widget while a query shows one (None before it appears and once frozen)."""
        return self._widget

    def __enter__(self) -> LiveDisplay:
        self._unsubscribe = self.telemetry.subscribe(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._unsubscribe()
        self._freeze()

    def __call__(self, event: Event) -> None:
        self._tracker(event)
        if event.kind == "query_start":
            self._freeze()
            self._started = event.t
            if self.show_after <= 0:
                self._show()
            return
        if event.kind == "query_end":
            self._freeze()
            return
        if event.kind == "download" and self._tracker.activity == "download":
            if event.data.get("finished"):
                self._download_done()
                return
            if self._started is None:  # a download outside any query: an activity of its own
                self._started = event.t
                if self.show_after <= 0:
                    self._show()
                    return
        now = time.perf_counter()
        if self._widget is None:
            # shown from whichever thread reports first after the moment has passed (the
            # memory sampler reports every quarter second): the kernel routes it to this cell
            if self._started is not None and now - self._started >= self.show_after:
                self._show()
            return
        if now - self._last < self.interval:
            return
        with self._lock:  # several threads report; one pushes at a time
            if self._widget is None or now - self._last < self.interval:
                return
            self._last = now
            self.pushes += 1
            self._widget.state = widget_state(self._tracker, self.pushes)

    def _show(self) -> None:
        with self._lock:
            if self._widget is not None or self._started is None:
                return
            self._widget = LiveQuery(state=widget_state(self._tracker, self.pushes))
            mime = self._widget._repr_mimebundle_()  # None only for a widget without a view
            bundle = dict(mime[0]) if mime else {}
            bundle["text/html"] = summary_html(self._tracker.copy())  # shown where widgets are not
            self._handle = display(bundle, raw=True, display_id=True)
            self._last = time.perf_counter()

    def _download_done(self) -> None:
        """A download outside a query ended: its widget freezes; a quick one that showed no
        widget leaves its static line (what came into the cache)."""
        if self._widget is not None:
            self._freeze()
            return
        with self._lock:
            self._started = None
        s = self._tracker.copy()
        display({"text/html": summary_html(s), "text/plain": summary_text(s)}, raw=True)

    def _freeze(self) -> None:
        """Replace the live widget by the static summary (the same facts, no kernel needed)."""
        with self._lock:
            widget, handle = self._widget, self._handle
            self._widget = self._handle = None
            self._started = None
        if widget is None:
            return
        s = self._tracker.copy()
        if s.activity == "download" and not s.finished:
            s.finished = True  # the cell ended before the download did: it stopped (an error)
        handle.update({"text/html": summary_html(s), "text/plain": summary_text(s)}, raw=True)
        widget.close()
