"""A model's files read as entries: each tensor's raw bytes (from its .safetensors file,
without converting them), and every other file (config, tokenizer) as bytes.

Two layouts are stored: a transformers directory (its top-level .safetensors files hold the
tensors; the rest are small files the loader reads) and a single .safetensors file written
by `workbench.models.mlp.save` (its architecture is in the file's metadata).
"""

from __future__ import annotations

import json
import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path

from workbench.errors import ModelLoadError

#: a file's bytes, not a tensor: its dtype in `workbench_tensors`
FILE_DTYPE = "bytes"
#: safetensors dtype names and their item sizes
ITEMSIZE = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
    "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1,
}  # fmt: skip
_SKIPPED = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".onnx", ".h5", ".msgpack"}


@dataclass(frozen=True)
class Entry:
    file: str  # path relative to the model's directory (the file's name for a single file)
    tensor: str  # the tensor's name; '' for a plain file
    dtype: str  # safetensors dtype, or FILE_DTYPE
    shape: tuple[int, ...]
    data: memoryview


@dataclass
class Source:
    layout: str  # 'transformers' | 'mlp'
    entries: list[Entry] = field(default_factory=list)
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)  # per .safetensors file
    maps: list[mmap.mmap] = field(default_factory=list)  # the mapped files the entries view

    def close(self) -> None:
        for view in self.entries:
            view.data.release()
        for m in self.maps:
            try:
                m.close()
            except BufferError:  # a block view still alive somewhere: the map closes when it is collected
                pass

    @property
    def logical_bytes(self) -> int:
        return sum(len(e.data) for e in self.entries)


def read(name: str, path: str, *, is_mlp: bool) -> Source:
    """The entries of the model at `path` (a directory, or an MLP .safetensors file)."""
    p = Path(path).expanduser()
    if p.is_file() and p.suffix == ".safetensors" and is_mlp:
        source = Source("mlp")
        _tensors(source, p, p.name)
        return source
    if p.is_file() and (p.parent / "config.json").exists():
        p = p.parent
    if not p.is_dir() or not any(p.glob("*.safetensors")):
        raise ModelLoadError(
            f"model '{name}': storage = 'database' takes a transformers directory with .safetensors weights "
            f"or a workbench MLP .safetensors file, not {path}"
        )
    source = Source("transformers")
    for f in sorted(p.rglob("*")):
        rel = f.relative_to(p).as_posix()
        if not f.is_file() or any(part.startswith(".") for part in f.relative_to(p).parts):
            continue
        if f.suffix in _SKIPPED:
            continue
        if f.suffix == ".safetensors" and f.parent == p:
            _tensors(source, f, rel)
        else:
            source.entries.append(Entry(rel, "", FILE_DTYPE, (f.stat().st_size,), memoryview(f.read_bytes())))
    return source


def _tensors(source: Source, f: Path, rel: str) -> None:
    with open(f, "rb") as fh:
        size = f.stat().st_size
        mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else None
    if mapped is None or size < 8:
        raise ModelLoadError(f"{f}: not a safetensors file (too short)")
    source.maps.append(mapped)
    (n,) = struct.unpack("<Q", mapped[:8])
    if n > size - 8:
        raise ModelLoadError(f"{f}: not a safetensors file (header length {n} past the end)")
    header = json.loads(bytes(mapped[8 : 8 + n]))
    source.metadata[rel] = dict(header.pop("__metadata__", None) or {})
    base = 8 + n
    view = memoryview(mapped)
    for tensor, spec in sorted(header.items()):
        begin, end = spec["data_offsets"]
        dtype = spec["dtype"]
        if dtype not in ITEMSIZE:
            raise ModelLoadError(f"{f}: tensor {tensor} has dtype {dtype}, which storage = 'database' does not take")
        source.entries.append(Entry(rel, tensor, dtype, tuple(spec["shape"]), view[base + begin : base + end]))
