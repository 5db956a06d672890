"""Where models exported to ONNX live between sessions: a directory bounded in size.

An export is keyed by the model's fingerprint and its precision (`<key>.onnx`), and written
with a manifest (`<key>.json`: the fingerprint, the exporter's format, the file's size and
hash). A later session finds it by key and checks it before use: a file whose hash or size
differs from its manifest (corrupt), or whose manifest names another fingerprint or an older
exporter format (stale), is removed and exported again. Files are written under a temporary
name and renamed, manifest last, so a crash never leaves an export that looks whole.

The directory is `$WORKBENCH_ONNX_CACHE`, else `$XDG_CACHE_HOME/workbench/onnx`, else
`~/.cache/workbench/onnx`; its size is bounded by `$WORKBENCH_ONNX_CACHE_MB` (2,048 by
default): the least recently used exports go first.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

#: bump when what an export holds changes (inputs, outputs, pooling in the graph...)
FORMAT = "workbench-onnx-1"
DEFAULT_MB = 2048


def default_root() -> Path:
    explicit = os.environ.get("WORKBENCH_ONNX_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "workbench" / "onnx"


def default_max_bytes() -> int:
    try:
        return int(float(os.environ.get("WORKBENCH_ONNX_CACHE_MB", DEFAULT_MB)) * 2**20)
    except ValueError:
        return DEFAULT_MB * 2**20


def file_hash(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


class ExportStore:
    """Exports by key, checked on first use in this process, evicted least recently used."""

    def __init__(self, root: Path | str | None = None, max_bytes: int | None = None):
        self.root = Path(root) if root is not None else default_root()
        self.max_bytes = default_max_bytes() if max_bytes is None else int(max_bytes)
        self.exports = 0  # exports written by this store (tests: a second session writes none)
        self.rebuilt: list[str] = []  # keys found corrupt or stale and exported again
        self._checked: dict[str, tuple[int, int]] = {}  # key -> (size, mtime) verified in this process
        self._lock = threading.Lock()

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.root / f"{key}.onnx", self.root / f"{key}.json"

    def has(self, key: str) -> bool:
        """Whether an export seems stored (planning: no hashing)."""
        graph, manifest = self._paths(key)
        return graph.exists() and manifest.exists()

    def get(self, key: str, fingerprint: str) -> Path | None:
        """The stored export, checked; None when missing, corrupt or stale (then removed)."""
        graph, manifest = self._paths(key)
        if not (graph.exists() and manifest.exists()):
            return None
        why = self._problem(key, fingerprint, graph, manifest)
        if why:
            self._remove(key)
            self.rebuilt.append(key)
            return None
        os.utime(manifest)  # recently used: evicted last
        return graph

    def _problem(self, key: str, fingerprint: str, graph: Path, manifest: Path) -> str:
        try:
            meta = json.loads(manifest.read_text())
            stat = graph.stat()
        except (OSError, ValueError):
            return "unreadable manifest"
        if meta.get("format") != FORMAT or meta.get("fingerprint") != fingerprint:
            return "stale"
        if meta.get("size") != stat.st_size:
            return "corrupt"
        stamp = (stat.st_size, stat.st_mtime_ns)
        if self._checked.get(key) == stamp:
            return ""
        if meta.get("hash") != file_hash(graph):
            return "corrupt"
        self._checked[key] = stamp
        return ""

    def get_or_build(self, key: str, fingerprint: str, build: Callable[[Path], None]) -> Path:
        """The export for `key`, written by `build(path)` when missing, corrupt or stale."""
        with self._lock:
            found = self.get(key, fingerprint)
            if found is not None:
                return found
            self.root.mkdir(parents=True, exist_ok=True)
            graph, manifest = self._paths(key)
            tmp = self.root / f".{key}.{uuid.uuid4().hex}.tmp"
            try:
                build(tmp)
                meta = {"format": FORMAT, "fingerprint": fingerprint, "size": tmp.stat().st_size}
                meta["hash"] = file_hash(tmp)
                os.replace(tmp, graph)
                tmp_manifest = manifest.with_suffix(f".{uuid.uuid4().hex}.tmp")
                tmp_manifest.write_text(json.dumps(meta))
                os.replace(tmp_manifest, manifest)
            finally:
                tmp.unlink(missing_ok=True)
            self.exports += 1
            self._checked[key] = (graph.stat().st_size, graph.stat().st_mtime_ns)
            self._evict(keep=key)
            return graph

    def _remove(self, key: str) -> None:
        for path in self._paths(key):
            path.unlink(missing_ok=True)
        self._checked.pop(key, None)

    def _evict(self, keep: str) -> None:
        """Remove the least recently used exports until the directory fits its bound."""
        entries = []
        for manifest in self.root.glob("*.json"):
            key = manifest.stem
            graph = self.root / f"{key}.onnx"
            try:
                entries.append((manifest.stat().st_mtime, key, graph.stat().st_size if graph.exists() else 0))
            except OSError:
                continue
        total = sum(size for _, _, size in entries)
        for _, key, size in sorted(entries):
            if total <= self.max_bytes:
                break
            if key != keep:
                self._remove(key)
                total -= size


_STORE: ExportStore | None = None
_STORE_LOCK = threading.Lock()


def store() -> ExportStore:
    """The process's store (its directory read from the environment when first used; a test
    that points `WORKBENCH_ONNX_CACHE` elsewhere gets a store there)."""
    global _STORE
    with _STORE_LOCK:
        if _STORE is None or _STORE.root != default_root():
            _STORE = ExportStore()
        return _STORE
