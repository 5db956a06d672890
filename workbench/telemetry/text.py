"""A text progress bar for terminals and plain Python, driven by the same event stream."""

from __future__ import annotations

import sys
import time
from typing import IO

from workbench.telemetry.stream import Event
from workbench.telemetry.summary import download_text, progress_text
from workbench.telemetry.tracker import Snapshot, Tracker

WIDTH = 24


def at_terminal() -> bool:
    """Plain Python at a terminal (not a notebook kernel, not a pipe): a text progress bar helps."""
    if "ipykernel" in sys.modules:
        return False
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


class TextProgress:
    """Redraws one line on `stream` at most every `interval` seconds, only for queries that
    run longer than `after` seconds (a quick query prints nothing).

    A hub download outside a query (CREATE MODEL ... FROM 'hf://...') draws its own line the
    same way, and always leaves its last line ('downloaded org/name@abc1234: 7 files, 90.1 MB
    in 4.2 s'): it tells what came into the cache. A download during a query draws in place
    of that query's bar until it ends."""

    draws_downloads = True  # hub.py prints no line of its own while this listens

    def __init__(self, stream: IO[str] | None = None, *, after: float = 1.0, interval: float = 0.2):
        self.stream = stream or sys.stderr
        self.after, self.interval = after, interval
        self.tracker = Tracker()
        self._last = 0.0
        self._drawn = False  # this activity drew a line
        self._open = False  # a drawn line waits for its end (no newline yet)
        self._started = 0.0  # the activity drawn for (its start)

    def __call__(self, event: Event) -> None:
        self.tracker(event)
        s = self.tracker.copy()
        if s.started != self._started:  # a new activity: a query, or a download of its own
            if self._open:  # the last one stopped without an end (e.g. a failed download)
                self._write("\n")
            self._started, self._drawn, self._last = s.started, False, 0.0
        if event.kind == "download" and s.activity == "download":
            if s.finished:
                self._draw(s, end="\n")
                return
        elif s.finished and event.kind not in ("query_start", "query_end"):
            return  # (e.g. a late event after a query ended: not that query's bar)
        now = time.perf_counter()
        if event.kind == "query_end":
            if self._drawn:
                self._draw(s, end="\n")
            return
        if s.elapsed < self.after or now - self._last < self.interval:
            return
        self._last = now
        self._draw(s, end="")

    def _draw(self, s: Snapshot, end: str) -> None:
        text, fraction = progress_text(s), s.fraction
        d = s.download
        if s.activity == "query" and not s.finished and d is not None and not d.finished:
            text, fraction = download_text(d), d.fraction  # the query waits for its model
        filled = int(WIDTH * fraction)
        bar = "#" * filled + "." * (WIDTH - filled)
        self._write(f"\r[{bar}] {text}\x1b[K{end}")
        self._drawn, self._open = True, not end

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
