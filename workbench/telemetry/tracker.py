"""Fold the event stream into a snapshot of one activity: what the widget and progress bar draw.

An activity is a query (`query_start` .. `query_end`) or a hub download that runs outside
any query (`CREATE MODEL m FROM 'hf://org/name'` emits `download` events but no
`query_start`): such a download is an activity of its own (`Snapshot.activity ==
"download"`), which its `finished` event ends. A download during a query (a hub model whose
cached snapshot was lost) is that query's `download` fact instead.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from workbench.telemetry.stream import Event

MAX_POINTS = 600  # memory samples kept per query (older ones are thinned out, never the newest)


@dataclass
class Download:
    """One hub download's progress (the `download` events' data), and when it began."""

    repo: str = ""  # 'org/name@abc1234'
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    finished: bool = False
    started: float = 0.0
    seconds: float = 0.0

    @property
    def fraction(self) -> float:
        if self.finished:
            return 1.0
        if self.bytes_total:
            return min(self.bytes_done / self.bytes_total, 1.0)
        return min(self.files_done / self.files_total, 1.0) if self.files_total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "files_done": self.files_done,
            "files_total": self.files_total,
            "bytes_done": self.bytes_done,
            "bytes_total": self.bytes_total,
            "finished": self.finished,
            "fraction": round(self.fraction, 4),
            "seconds": round(self.seconds, 3),
        }


@dataclass
class Snapshot:
    activity: str = "query"  # or "download": a hub download outside any query
    sql: str = ""
    started: float = 0.0
    elapsed: float = 0.0
    finished: bool = False
    error: str | None = None
    operator: str = ""  # the call running now, with its paradigm
    rows_done: int = 0
    rows_total: int = 0
    batches: int = 0
    result_rows: int | None = None
    cache_hits: int = 0
    cache_misses: int = 0
    budgets: dict[str, int | None] = field(default_factory=dict)  # device kind -> bytes of growth allowed
    baseline: dict[str, int] = field(default_factory=dict)  # device kind -> resident bytes at the start
    memory: list[tuple[float, dict[str, dict[str, int]]]] = field(default_factory=list)
    peak: dict[str, int] = field(default_factory=dict)  # device -> the highest resident figure seen
    moved: dict[str, int] = field(default_factory=dict)  # 'source->target' -> bytes
    download: Download | None = None  # the latest hub download of this activity
    #: a cluster run: per node ("address node-id-prefix"), its rows, blocks and actors so far
    nodes: dict[str, dict[str, int]] = field(default_factory=dict)
    tokens: int = 0  # a generator's new tokens so far (`generation` events)
    tokens_per_s: float = 0.0
    kv_bytes: int = 0  # its KV cache's largest size
    stream: str | None = None  # a one-row generation: its text so far (shown while it runs)
    updates: int = 0  # events folded in

    @property
    def fraction(self) -> float:
        if self.finished:
            return 1.0
        if self.activity == "download":
            return self.download.fraction if self.download is not None else 0.0
        return min(self.rows_done / self.rows_total, 1.0) if self.rows_total else 0.0

    @property
    def eta(self) -> float | None:
        f = self.fraction
        if self.finished or f <= 0:
            return None
        return self.elapsed * (1 - f) / f

    @property
    def batches_per_second(self) -> float:
        return self.batches / self.elapsed if self.elapsed > 0 else 0.0

    def limits(self) -> dict[str, int]:
        """Per device kind, the resident figure the budget allows: the start plus the budget."""
        return {k: self.baseline.get(k, 0) + v for k, v in self.budgets.items() if v}

    @property
    def hit_ratio(self) -> float | None:
        seen = self.cache_hits + self.cache_misses
        return self.cache_hits / seen if seen else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the widget's synced state)."""
        return {
            "activity": self.activity,
            "sql": self.sql,
            "elapsed": round(self.elapsed, 3),
            "finished": self.finished,
            "error": self.error,
            "operator": self.operator,
            "rows_done": self.rows_done,
            "rows_total": self.rows_total,
            "fraction": round(self.fraction, 4),
            "eta": None if self.eta is None else round(self.eta, 2),
            "batches": self.batches,
            "batches_per_second": round(self.batches_per_second, 2),
            "result_rows": self.result_rows,
            "cache_hits": self.cache_hits,
            "cache_misses": self.cache_misses,
            "hit_ratio": self.hit_ratio,
            "budgets": self.budgets,
            "limits": self.limits(),
            "memory": [[round(t, 3), m] for t, m in self.memory],
            "peak": self.peak,
            "moved": self.moved,
            "download": None if self.download is None else self.download.to_dict(),
            "nodes": self.nodes,
            "tokens": self.tokens,
            "tokens_per_s": round(self.tokens_per_s, 2),
            "kv_bytes": self.kv_bytes,
            "stream": self.stream,
        }


def resident(device: str, figures: dict[str, int]) -> int:
    """The one figure per device drawn against its budget: RSS on the CPU, reserved on a GPU."""
    return figures.get("rss", figures.get("reserved", 0))


def _continues(s: Snapshot, d: dict[str, Any]) -> bool:
    """Whether a `download` event belongs to the running activity: a query, or this download."""
    if not s.started or s.finished:
        return False
    return s.activity == "query" or (s.download is not None and s.download.repo == d.get("repo"))


class Tracker:
    """A subscriber that keeps the current query's `Snapshot` (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ops: dict[int, list[int]] = {}  # operator id -> [done, total]
        self.snapshot = Snapshot()

    @property
    def activity(self) -> str:
        """What the current snapshot follows: 'query' or 'download' (a cheap read, no copy)."""
        return self.snapshot.activity

    def copy(self) -> Snapshot:
        with self._lock:
            s = self.snapshot
            if not s.finished and s.started:
                s.elapsed = time.perf_counter() - s.started
            return Snapshot(
                **{
                    **s.__dict__,
                    "memory": list(s.memory),
                    "peak": dict(s.peak),
                    "moved": dict(s.moved),
                    "budgets": dict(s.budgets),
                    "baseline": dict(s.baseline),
                    "download": None if s.download is None else Download(**s.download.__dict__),
                }
            )

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._fold(event)

    def _fold(self, e: Event) -> None:
        s, d = self.snapshot, e.data
        if e.kind == "query_start":
            self.snapshot = s = Snapshot(
                sql=d.get("sql", ""),
                started=e.t,
                budgets=dict(d.get("budgets", {})),
                baseline=dict(d.get("baseline", {})),
            )
            self._ops = {op["id"]: [0, int(op.get("estimated_rows") or 0)] for op in d.get("operators", [])}
        elif e.kind == "download" and not _continues(s, d):
            # no query runs (nor this download): the download is an activity of its own
            self.snapshot = s = Snapshot(activity="download", started=e.t)
            self._ops = {}
        s.updates += 1
        if s.started:
            s.elapsed = e.t - s.started
        if e.kind == "operator_start":
            s.operator = f"{d['call']} ({d['paradigm']})"
            self._ops.setdefault(d["id"], [0, 0])[1] = int(d.get("rows_total") or 0)
        elif e.kind == "progress":
            op = self._ops.setdefault(d["id"], [0, 0])
            op[0] = max(op[0], int(d["rows_done"]))  # monotone even if reports cross threads
            op[1] = max(int(d["rows_total"]), op[0])
            s.batches += 1
        elif e.kind == "cache":
            s.cache_hits += int(d.get("hits", 0))
            s.cache_misses += int(d.get("misses", 0))
        elif e.kind == "bytes":
            key = f"{d['source']}->{d['target']}"
            s.moved[key] = s.moved.get(key, 0) + int(d["bytes"])
        elif e.kind == "memory":
            devices = d["devices"]
            s.memory.append((round(s.elapsed, 3), devices))
            if len(s.memory) > MAX_POINTS:
                s.memory = s.memory[:-1:2] + s.memory[-1:]
            for device, figures in devices.items():
                s.peak[device] = max(s.peak.get(device, 0), resident(device, figures))
        elif e.kind == "download":
            self._download(s, e)
        elif e.kind == "node_progress":  # one cluster node's running totals
            s.nodes[f"{d['node']} {str(d['node_id'])[:8]}"] = {k: int(d[k]) for k in ("rows", "blocks", "actors")}
        elif e.kind == "generation":  # one operator's running totals
            s.tokens, s.tokens_per_s = int(d["tokens"]), float(d["tokens_per_s"])
            s.kv_bytes = max(s.kv_bytes, int(d.get("kv_bytes") or 0))
            if d.get("text") is not None:
                s.stream = str(d["text"])
        elif e.kind == "operator_end":
            op = self._ops.setdefault(d["id"], [0, 0])
            op[0] = op[1] = max(op[0], int(d.get("rows", op[0])))
        elif e.kind == "query_end":
            for op in self._ops.values():  # the true counts: what each operator really processed
                op[1] = op[0]
            s.finished = True
            s.error = d.get("error")
            s.result_rows = d.get("rows")
            s.elapsed = d.get("seconds", s.elapsed)
            s.operator = ""
        s.rows_done = sum(op[0] for op in self._ops.values())
        s.rows_total = sum(op[1] for op in self._ops.values())

    def _download(self, s: Snapshot, e: Event) -> None:
        d = e.data
        repo = str(d.get("repo", ""))
        dl = s.download
        if dl is None or dl.finished or dl.repo != repo:  # a new download (a query may hold several)
            dl = s.download = Download(repo=repo, started=e.t)
        dl.files_total = int(d.get("files_total") or 0)
        dl.bytes_total = int(d.get("bytes_total") or 0)
        dl.files_done = max(dl.files_done, int(d.get("files_done") or 0))  # monotone, as rows are
        dl.bytes_done = max(dl.bytes_done, int(d.get("bytes_done") or 0))
        dl.finished = bool(d.get("finished"))
        dl.seconds = e.t - dl.started
        if s.activity == "download":
            s.finished = dl.finished
