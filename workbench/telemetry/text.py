"""A text progress bar for terminals and plain Python, driven by the same event stream."""

from __future__ import annotations

import sys
import time
from typing import IO

from workbench.telemetry.stream import Event
from workbench.telemetry.summary import progress_text
from workbench.telemetry.tracker import Tracker

WIDTH = 24


def at_terminal() -> bool:
    """Plain Python at a terminal (not a notebook kernel, not a pipe): a text progress bar helps."""
    if "ipykernel" in sys.modules:
        return False
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


class TextProgress:
    """Redraws one line on `stream` at most every `interval` seconds, only for queries that
    run longer than `after` seconds (a quick query prints nothing)."""

    def __init__(self, stream: IO[str] | None = None, *, after: float = 1.0, interval: float = 0.2):
        self.stream = stream or sys.stderr
        self.after, self.interval = after, interval
        self.tracker = Tracker()
        self._last = 0.0
        self._drawn = False

    def __call__(self, event: Event) -> None:
        self.tracker(event)
        if event.kind == "query_start":
            self._drawn, self._last = False, 0.0
        s = self.tracker.copy()
        if s.finished and event.kind not in ("query_start", "query_end"):
            return  # (e.g. a download's progress after a query ended: not that query's bar)
        now = time.perf_counter()
        if event.kind == "query_end":
            if self._drawn:
                self._draw(s, end="\n")
            return
        if s.elapsed < self.after or now - self._last < self.interval:
            return
        self._last = now
        self._draw(s, end="")

    def _draw(self, s, end: str) -> None:  # noqa: ANN001
        filled = int(WIDTH * s.fraction)
        bar = "#" * filled + "." * (WIDTH - filled)
        self.stream.write(f"\r[{bar}] {progress_text(s)}\x1b[K{end}")
        self.stream.flush()
        self._drawn = True
