"""The live query widget under a `%%dlsql` cell.

While a model query runs, an anywidget shows a progress bar with ETA, a time-series chart of
resident memory per device with its budget as a dashed line (uPlot, vendored under vendor/),
for an offloaded model a lane of its layers' read and compute seconds, bytes moved, batches
per second and the cache hit ratio. The engine's event stream drives it from whatever thread reports (the query thread,
DuckDB's threads, the memory sampler), at most `INTERVAL_S` apart, so the front end gets
updates during the query. When the query ends the output is replaced by a static HTML and
text summary of the same facts, the charts drawn as inline SVG with the same axes and budget
line (summary.memory_svg, layers_svg): it renders after the notebook is saved and reopened
without a kernel or any script, in nbviewer and on GitHub. While the cell runs the kernel's
status stays busy (`KernelStaysBusy`: JupyterLab asks for a subshell when the widget's comm
opens, and ipykernel's answer would otherwise publish idle). A query done within `SHOW_AFTER_S` shows nothing but
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
    Layer,
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
#: layer timings of an offloaded model kept for the chart's lane (the latest ones)
MAX_LAYERS = 400

_HERE = Path(__file__).parent
_VENDOR = _HERE / "vendor"


def _front_end(*paths: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in paths)


class LiveQuery(anywidget.AnyWidget):
    """The widget itself: the front end draws `state` (built by `LiveDisplay`).

    Its ES module is uPlot (vendored, MIT: vendor/uPlot.iife.min.js, which defines the
    module-level name `uPlot`) followed by live.js, as one string: anywidget loads `_esm` as
    a single module (from a blob URL, where a relative import would not resolve)."""

    _esm = _front_end(_VENDOR / "uPlot.iife.min.js", _HERE / "live.js")
    _css = _front_end(_VENDOR / "uPlot.min.css", _HERE / "live.css")
    state = traitlets.Dict().tag(sync=True)


def widget_state(tracker: Tracker, pushes: int, layers: list[Layer] | None = None) -> dict[str, Any]:
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
        # an offloaded model's layers: [seconds since the start, name, read s, compute s]
        "layers": [list(layer) for layer in (layers or [])[-MAX_LAYERS:]],
    }


class KernelStaysBusy:
    """While a cell runs, keep the kernel's published status at busy.

    Why: JupyterLab (4.4+, 'Kernel Comms over subshells', on by default) answers the kernel's
    `comm_open` of a widget by asking it for a subshell (`create_subshell_request` on the
    control channel). ipykernel handles that on its control thread and publishes `status:
    busy` then `status: idle` with that request as parent, and JupyterLab takes any iopub
    status as the kernel's: the status bar says Idle while the cell still runs. A comm message
    the front end sends over that subshell does the same. So, for the cell's duration, an
    `idle` whose parent is not the running cell's request is not published (a `busy` is, it
    is true anyway); the cell's own `idle` at its end is. Outside ipykernel, nothing happens."""

    def __init__(self, kernel: Any):
        self.kernel = kernel
        self._patched = False

    def __enter__(self) -> KernelStaysBusy:
        kernel = self.kernel
        publish = getattr(kernel, "_publish_status", None)
        get_parent = getattr(kernel, "get_parent", None)
        if publish is None or get_parent is None or "_publish_status" in vars(kernel):
            return self
        running = (get_parent("shell") or {}).get("header", {}).get("msg_id")

        def publish_status(status: str, channel: str, parent: Any = None) -> None:
            if status == "idle" and running is not None:
                header = (parent or get_parent(channel) or {}).get("header", {})
                if header.get("msg_id") != running:
                    return  # a control/subshell request finished; the cell has not
            publish(status, channel, parent)

        kernel._publish_status = publish_status  # noqa: SLF001 - ipykernel has no public hook
        self._patched = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._patched:
            del self.kernel._publish_status  # noqa: SLF001 - back to the class's method
            self._patched = False


class LiveDisplay:
    """While active, every model query of `telemetry` that runs longer than `show_after`
    seconds shows a live widget, which freezes into a static summary when the query ends; a
    quicker query shows nothing (its result says all there is to say). A hub download outside
    a query shows the same way, and a quicker one leaves its static line ('downloaded ...').
    Use as a context manager around a cell's work."""

    draws_downloads = True  # hub.py prints no line of its own while this listens

    def __init__(
        self,
        telemetry: Telemetry,
        interval: float = INTERVAL_S,
        show_after: float = SHOW_AFTER_S,
        kernel: Any = None,
    ):
        self.telemetry = telemetry
        self._busy = KernelStaysBusy(kernel)  # the status bar says Busy while the widget shows
        self.interval = interval
        self.show_after = show_after
        self.pushes = 0  # widget updates sent (a figure for the closing note and tests)
        self._tracker = Tracker()
        self._layers: list[Layer] = []  # the running query's `layer` events (offloading)
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
        self._busy.__enter__()
        self._unsubscribe = self.telemetry.subscribe(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self._unsubscribe()
            self._freeze()
        finally:
            self._busy.__exit__()

    def __call__(self, event: Event) -> None:
        self._tracker(event)
        if event.kind == "layer" and self._started is not None:
            d = event.data
            self._layers.append(
                (
                    round(event.t - self._started, 3),
                    str(d.get("name", "")),
                    d.get("read_s", 0.0),
                    d.get("compute_s", 0.0),
                )
            )
            del self._layers[:-MAX_LAYERS]
        if event.kind == "query_start":
            self._freeze()
            self._started = event.t
            self._layers = []
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
            self._widget.state = widget_state(self._tracker, self.pushes, self._layers)

    def _show(self) -> None:
        with self._lock:
            if self._widget is not None or self._started is None:
                return
            self._widget = LiveQuery(state=widget_state(self._tracker, self.pushes, self._layers))
            mime = self._widget._repr_mimebundle_()  # None only for a widget without a view
            bundle = dict(mime[0]) if mime else {}
            bundle["text/html"] = summary_html(self._tracker.copy(), self._layers)  # where widgets are not
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
        # the saved form: the same facts, and the chart as a static SVG (summary.memory_svg)
        handle.update({"text/html": summary_html(s, self._layers), "text/plain": summary_text(s)}, raw=True)
        widget.close()
