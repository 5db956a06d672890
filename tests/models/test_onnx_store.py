"""The export store: exports by key, checked before use, bounded in size (least recently used go)."""

import json
import os
import time

from workbench.models.onnx_store import ExportStore, default_root


def writer(size: int, byte: bytes = b"x"):
    def build(path):
        path.write_bytes(byte * size)

    return build


def test_an_export_is_written_once_and_found_by_a_later_store(tmp_path):
    first = ExportStore(tmp_path, max_bytes=10_000)
    path = first.get_or_build("k", "fp", writer(100))
    assert path.read_bytes() == b"x" * 100 and first.exports == 1
    later = ExportStore(tmp_path, max_bytes=10_000)  # another session
    assert later.get_or_build("k", "fp", writer(100, b"y")) == path
    assert later.exports == 0 and path.read_bytes() == b"x" * 100


def test_a_corrupt_export_is_rebuilt(tmp_path):
    ExportStore(tmp_path).get_or_build("k", "fp", writer(100))
    graph = tmp_path / "k.onnx"
    graph.write_bytes(b"x" * 50 + b"!" + b"x" * 49)  # same size, one byte changed
    store = ExportStore(tmp_path)
    assert store.get_or_build("k", "fp", writer(100, b"z")).read_bytes() == b"z" * 100
    assert store.exports == 1 and store.rebuilt == ["k"]


def test_a_stale_export_is_rebuilt(tmp_path):
    ExportStore(tmp_path).get_or_build("k", "fp", writer(100))
    manifest = tmp_path / "k.json"
    meta = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**meta, "format": "workbench-onnx-0"}))  # an older exporter's
    store = ExportStore(tmp_path)
    store.get_or_build("k", "fp", writer(100, b"z"))
    assert store.rebuilt == ["k"] and (tmp_path / "k.onnx").read_bytes() == b"z" * 100


def test_an_export_without_its_manifest_is_not_used(tmp_path):
    (tmp_path / "k.onnx").write_bytes(b"half written")
    store = ExportStore(tmp_path)
    assert store.get("k", "fp") is None
    assert store.get_or_build("k", "fp", writer(10)).read_bytes() == b"x" * 10


def test_the_least_recently_used_exports_go_first(tmp_path):
    store = ExportStore(tmp_path, max_bytes=250)
    store.get_or_build("a", "fp", writer(100))
    store.get_or_build("b", "fp", writer(100))
    old = time.time() - 100
    os.utime(tmp_path / "b.json", (old, old))  # b: used longest ago
    os.utime(tmp_path / "a.json", (old + 50, old + 50))
    store.get_or_build("c", "fp", writer(100))
    assert not (tmp_path / "b.onnx").exists() and not (tmp_path / "b.json").exists()
    assert (tmp_path / "a.onnx").exists() and (tmp_path / "c.onnx").exists()


def test_the_directory_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_ONNX_CACHE", str(tmp_path / "mine"))
    assert default_root() == tmp_path / "mine"
    monkeypatch.delenv("WORKBENCH_ONNX_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_root() == tmp_path / "xdg" / "workbench" / "onnx"
