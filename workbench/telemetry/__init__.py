"""The engine's event stream: what a running query is doing, for widgets and progress bars.

`session.telemetry.subscribe(fn)` receives every `Event`; `Tracker` folds them into a
`Snapshot` (progress, ETA, memory per device, bytes moved, cache hits) that the live
widget and the text progress bar draw.
"""

from workbench.telemetry.memory import MemorySampler, sample
from workbench.telemetry.stream import Event, Telemetry
from workbench.telemetry.text import TextProgress
from workbench.telemetry.tracker import Snapshot, Tracker

__all__ = ["Event", "MemorySampler", "Snapshot", "Telemetry", "TextProgress", "Tracker", "sample"]
