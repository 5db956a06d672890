"""ONNX graphs run with onnxruntime: `CREATE MODEL m FROM 'model.onnx'`.

The graph's signature gives the model's SQL types: one input of shape [batch, n] of floats
(float32, float64 or float16) takes FLOAT[n]; one integer input of shape [batch] (int64 or
int32, or [batch, 1]) takes a BIGINT id. Its first output, [batch, k] or [batch], goes
through the same head as a torch module's (models/tensor.py): task 'embed' gives FLOAT[k],
'classify' STRUCT(label, score) from softmax/argmax of the k outputs, 'regress' FLOAT (k = 1).
Without a task, labels mean a classifier, one output a regressor, and more an embedding.

A graph with a fixed batch dimension (e.g. exported for one row) runs in chunks of that
size, the last one padded with zero rows that are dropped. onnxruntime's intra-op thread
count is fixed when a session is made, so the model keeps one session per thread count the
engine decides (choose_batch_threads sets torch's count for the operator; we read it).

Safe by construction: ONNX files are protobuf, never pickle; a graph whose tensors keep
their data in external files may name only files inside the model's own directory (checked
here before onnxruntime reads the graph, and by onnxruntime itself). The fingerprint hashes
the graph file and those external files, so the inference cache changes when either does.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import torch

from workbench.errors import ModelError, ModelLoadError, shorten
from workbench.models.base import Model, check_head, fixed_size_list, label_score, vector_types

#: onnxruntime input types we feed: float arrays (FLOAT[n] cast to the graph's type) and ids
FLOATS: dict[str, type[np.floating[Any]]] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
}
INTEGERS: dict[str, type[np.signedinteger[Any]]] = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}
SUPPORTED = "one input, float [batch, n] (float32, float64, float16) or integer ids [batch] (int64, int32)"
_DECLARE = "declare input_dim=... in WITH (...)"
#: largest graph (file plus external data) kept in more than one session (one per thread count)
MAX_SESSIONS_BYTES = 256 * 2**20


def load(name: str, path: Path, options: dict[str, Any]) -> Model:
    """The model for `CREATE MODEL name FROM 'path.onnx' WITH (options)`."""
    from workbench.models.variants import spec_of

    if spec_of(options) is not None:
        raise ModelLoadError(
            f"model '{name}': precision and low_rank compress torch modules; an ONNX graph runs as it is "
            "(quantize it with onnxruntime.quantization)"
        )
    keep = ("task", "labels", "input_dim", "output_dim", "batch_size", "deterministic", "allow_inf", "device")
    try:
        return OnnxModel(path, **{k: v for k, v in options.items() if k in keep})
    except ModelLoadError as exc:
        raise ModelLoadError(f"model '{name}': {exc}") from None


class OnnxModel(Model):
    """An ONNX graph run by onnxruntime over FLOAT[n] arrays or BIGINT ids (module docstring)."""

    input_kind = "tensor"
    batch_candidates = (64, 256, 1024, 4096)
    small_run_batch = "largest"
    runtime = "onnx"  # (Result.stats)

    def __init__(
        self,
        path: str | Path,
        *,
        task: str | None = None,
        labels: list[str] | None = None,
        input_dim: int | None = None,
        output_dim: int | None = None,
        batch_size: int | None = None,
        deterministic: bool = True,
        allow_inf: bool = False,
        device: str = "cpu",
    ):
        if task not in (None, "classify", "embed", "regress"):
            raise ModelLoadError(f"an ONNX graph's task must be 'classify', 'embed' or 'regress', not {task!r}")
        self.path = Path(path)
        self.labels = list(labels) if labels else None
        self.batch_size = int(batch_size) if batch_size else None
        self.deterministic = bool(deterministic)
        self.allow_inf = bool(allow_inf)
        data = self.path.read_bytes()
        try:
            locations = external_locations(data)
        except ValueError as exc:
            raise ModelLoadError(f"{self.path.name} is not an ONNX model ({exc})") from None
        externals = _external_files(self.path, locations)
        self.graph_hash = _hash(data, externals)
        self.resident_bytes = len(data) + sum(f.stat().st_size for f in externals)  # the cost model's weight bytes
        # sessions read the bytes hashed; external data resolves beside the file, and a large
        # graph (one session only) is read from it rather than kept twice in memory
        small = not externals and len(data) <= MAX_SESSIONS_BYTES
        self._source: bytes | str = data if small else str(self.path)
        self.device, self.providers = _providers(str(device or "cpu"), ort.get_available_providers())
        self._sessions: dict[int, Any] = {}
        self._lock = threading.Lock()
        session = self._session(torch.get_num_threads())
        if self.device.startswith("cuda") and "CUDAExecutionProvider" not in session.get_providers():
            raise ModelLoadError(f"device={device!r}: onnxruntime could not start its CUDA provider; use device='cpu'")
        self._read_input(session, input_dim)
        self._read_output(session, output_dim)
        self.task = task or ("classify" if self.labels else "regress" if self.output_dim == 1 else "embed")
        check_head(self.task, self.labels, self.output_dim, "graph")

    # -- the graph's signature -------------------------------------------------------------
    def _read_input(self, session: Any, declared: int | None) -> None:
        inputs = session.get_inputs()
        file = self.path.name
        if len(inputs) != 1:
            names = ", ".join(f"'{i.name}'" for i in inputs)
            raise ModelLoadError(f"{file} has {len(inputs)} inputs ({names}); supported: {SUPPORTED}")
        node = inputs[0]
        shape = list(node.shape or [])
        what = f"{file} has an input '{node.name}' of type {node.type} {_shape_text(shape)}"
        self.input_name = node.name
        self.input_rank = len(shape)
        if node.type in FLOATS and len(shape) == 2:
            self.input_dtype: type[np.generic] = FLOATS[node.type]
            width = shape[1] if isinstance(shape[1], int) and shape[1] > 0 else None
            if declared and width and int(declared) != width:
                raise ModelLoadError(f"input_dim={declared} was declared but {what}")
            if not (declared or width):
                raise ModelLoadError(f"{what}: its width is not fixed in the graph; {_DECLARE}")
            self.input_dim = width or int(declared or 0)
        elif node.type in INTEGERS and (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
            self.input_kind = "ids"
            self.input_dtype = INTEGERS[node.type]
            self.input_dim = None
        else:
            raise ModelLoadError(f"{what}; supported: {SUPPORTED}")
        rows = shape[0]
        self.fixed_batch = rows if isinstance(rows, int) and rows > 0 else None

    def _read_output(self, session: Any, declared: int | None) -> None:
        node = session.get_outputs()[0]  # (a graph's further outputs are not used)
        shape = list(node.shape or [])  # (empty when the graph does not say: the probe tells)
        self.output_name = node.name
        what = f"{self.path.name}'s output '{node.name}' is {node.type} {_shape_text(shape)}"
        if node.type not in FLOATS or len(shape) > 2:
            raise ModelLoadError(f"{what}; supported: float [batch, k] or [batch]")
        # one run on zero inputs: the width when the graph leaves it open, and a graph that
        # drops or folds the batch dimension fails here rather than mid-query
        rows = self.fixed_batch or 2
        probe = np.zeros(rows, dtype=np.int64) if self.input_kind == "ids" else np.zeros((rows, self.input_dim or 0))
        try:
            out = session.run([self.output_name], {self.input_name: self._feed(probe)})[0]
        except Exception as exc:  # noqa: BLE001 - any failure of the graph is the same advice
            raise ModelLoadError(f"{self.path.name} fails on {rows} rows of zeros ({ort_message(exc)})") from None
        out = np.asarray(out)
        if out.ndim not in (1, 2) or out.shape[0] != rows:
            raise ModelLoadError(f"{what} and returned shape {out.shape} for {rows} rows; expected ({rows}, k)")
        self.output_dim = int(out.shape[1]) if out.ndim == 2 else 1
        if declared and int(declared) != self.output_dim:
            raise ModelLoadError(f"output_dim={declared} was declared but {what} ({self.output_dim} values a row)")

    # -- running ---------------------------------------------------------------------------
    def _session(self, threads: int) -> Any:
        """The session for `threads` intra-op threads (made on first use; one session only
        for a large graph, whose weights each session would hold again)."""
        key = threads if self.resident_bytes <= MAX_SESSIONS_BYTES or not self._sessions else next(iter(self._sessions))
        with self._lock:
            found = self._sessions.get(key)
            if found is None:
                found = self._sessions[key] = self._new_session(key)
            return found

    def _new_session(self, threads: int) -> Any:
        try:
            return ort.InferenceSession(self._source, sess_options=session_options(threads), providers=self.providers)
        except Exception as exc:  # noqa: BLE001 - a corrupt graph, an unknown operator...
            raise ModelLoadError(f"cannot load {self.path.name}: {ort_message(exc)}") from None

    def _feed(self, batch: np.ndarray) -> np.ndarray:
        """A batch as the graph takes it: its dtype, ids as [batch] or [batch, 1]."""
        if self.input_kind == "ids":
            ids = np.asarray(batch).reshape(-1)
            if len(ids) and ids.min() < 0:  # (onnxruntime's Gather would count them from the end)
                raise ModelError(f"an input id is negative ({ids.min()}); ids start at 0")
            if self.input_dtype is np.int32 and len(ids) and (ids.min() < -(2**31) or ids.max() >= 2**31):
                raise ModelError("an input id does not fit the graph's int32 input")
            ids = ids.astype(self.input_dtype, copy=False)
            return ids.reshape(-1, 1) if self.input_rank == 2 else ids
        return np.ascontiguousarray(batch, dtype=self.input_dtype)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The graph's first output for a batch, as (rows, k) float32."""
        x = self._feed(batch)
        session = self._session(torch.get_num_threads())  # the engine's decision for this operator
        rows = len(x)
        try:
            if self.fixed_batch is None:
                out = session.run([self.output_name], {self.input_name: x})[0]
            else:
                out = np.concatenate(
                    [
                        session.run([self.output_name], {self.input_name: c})[0][:n]
                        for c, n in _chunks(x, self.fixed_batch)
                    ]
                )
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own (unexported) classes
            raise ModelError(ort_message(exc)) from None
        out = np.asarray(out, dtype=np.float32)
        if out.ndim == 1:
            out = out.reshape(-1, 1)
        if out.ndim != 2 or out.shape[0] != rows:
            raise ModelError(f"returned shape {out.shape} for {rows} inputs; expected ({rows}, k)")
        return out

    def predict(self, batch: np.ndarray) -> pa.Array:
        return head(torch.from_numpy(self.run(batch)), self.task, self.labels)

    # -- what the engine reads -------------------------------------------------------------
    @property
    def output_type(self) -> str:
        if self.task == "classify":
            return f"STRUCT(label {'VARCHAR' if self.labels else 'INTEGER'}, score FLOAT)"
        if self.task == "regress":
            return "FLOAT"
        return vector_types(self.output_dim)[0]

    def arrow_output_type(self) -> pa.DataType:
        if self.task == "classify":
            return pa.struct([("label", pa.string() if self.labels else pa.int32()), ("score", pa.float32())])
        if self.task == "regress":
            return pa.float32()
        return vector_types(self.output_dim)[1]

    def fingerprint_parts(self) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
        facts = {
            "graph": self.graph_hash,
            "output": self.output_name,
            "task": self.task,
            "labels": self.labels,
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
        }
        return [], facts

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["runtime"] = f"onnxruntime ({', '.join(p if isinstance(p, str) else p[0] for p in self.providers)})"
        d["graph_input"] = f"{self.input_name} {np.dtype(self.input_dtype).name}"
        d["graph_output"] = self.output_name
        if self.fixed_batch:
            d["graph_batch"] = self.fixed_batch
        if self.labels:
            d["labels"] = self.labels
        return d


def session_options(threads: int) -> Any:
    """onnxruntime options for `threads` intra-op threads (the count the engine set for torch)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(int(threads), 0)  # (0: onnxruntime's own choice)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 4  # fatal only: its errors reach the user as our one-line messages
    # threads that spin between runs would take cores from DuckDB, which runs in between
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def head(out: torch.Tensor, task: str, labels: list[str] | None) -> pa.Array:
    """(rows, k) outputs as the task's values: the head of TensorModel.predict_with, the
    same torch operations so a graph and its torch module give the same labels and scores."""
    out = out.float()
    if task == "classify":
        score, idx = out.softmax(-1).max(-1)
        idx_np = idx.cpu().numpy()
        if labels:
            return label_score([labels[i] for i in idx_np], score.cpu().numpy(), pa.string())
        return label_score(idx_np.astype(np.int32), score.cpu().numpy(), pa.int32())
    if task == "regress":
        return pa.array(out[:, 0].cpu().numpy())
    return fixed_size_list(out.cpu().numpy())


def _chunks(x: np.ndarray, size: int) -> Iterator[tuple[np.ndarray, int]]:
    """(chunk of exactly `size` rows, rows that are real): the last one padded with zeros."""
    for start in range(0, len(x), size):
        chunk = x[start : start + size]
        n = len(chunk)
        if n < size:
            chunk = np.concatenate([chunk, np.zeros((size - n, *chunk.shape[1:]), dtype=chunk.dtype)])
        yield chunk, n


def _providers(device: str, available: list[str]) -> tuple[str, list[Any]]:
    """(device, onnxruntime providers) for the `device` option."""
    if device == "cpu":
        return "cpu", ["CPUExecutionProvider"]
    if device == "cuda" or device.startswith("cuda:"):
        if "CUDAExecutionProvider" not in available:
            raise ModelLoadError(
                f"device={device!r} but this onnxruntime has no CUDA provider (it has {', '.join(available)}); "
                "install onnxruntime-gpu or use device='cpu'"
            )
        index = int(device.partition(":")[2] or 0)
        return device, [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    raise ModelLoadError(f"device must be 'cpu' or 'cuda' for an ONNX graph, not {device!r}")


def _shape_text(shape: list[Any]) -> str:
    return "[" + ", ".join("batch" if i == 0 and not isinstance(d, int) else str(d) for i, d in enumerate(shape)) + "]"


def ort_message(exc: BaseException) -> str:
    """onnxruntime's message without its '[ONNXRuntimeError] : 2 : INVALID_ARGUMENT :' prefix."""
    text = str(exc).strip()
    if text.startswith("[ONNXRuntimeError]"):
        text = text.split(" : ", 3)[-1]
    text = _NODE_FAILED.sub(r"\1 node '\2': ", text)
    return shorten(text or type(exc).__name__, 200)


#: onnxruntime's wording for an operator that failed, said shorter
_NODE_FAILED = re.compile(r"Non-zero status code returned while running (\w+) node\. Name:'([^']*)' Status Message: ")


def _hash(data: bytes, externals: list[Path]) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(data)
    for f in externals:
        h.update(f"\0{f.name}\0".encode())
        with f.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def data_files(path: Path) -> list[Path]:
    """The external data files the graph at `path` reads (each checked to lie beside it)."""
    try:
        locations = external_locations(path.read_bytes())
    except ValueError as exc:
        raise ModelLoadError(f"{path.name} is not an ONNX model ({exc})") from None
    return _external_files(path, locations)


def _external_files(path: Path, locations: list[str]) -> list[Path]:
    """The files external data names, each checked to lie inside the model's directory."""
    root = path.parent.resolve()
    files: dict[Path, None] = {}
    for location in locations:
        target = (root / location).resolve()  # (symlinks followed: a link may not point out)
        if os.path.isabs(location) or not target.is_relative_to(root):
            raise ModelLoadError(
                f"{path.name} keeps tensor data in {shorten(location, 80)!r}, outside the model's directory; refused"
            )
        if not target.is_file():
            raise ModelLoadError(f"{path.name} keeps tensor data in {shorten(location, 80)!r}, which is missing")
        files[target] = None
    return sorted(files)


# -- the few protobuf fields that say where tensor data lives (no `onnx` package needed) -----
# ModelProto.graph = 7, .functions = 25; FunctionProto.node = 7; GraphProto.node = 1,
# .initializer = 5, .sparse_initializer = 15; NodeProto.attribute = 5; AttributeProto.t = 5,
# .g = 6, .tensors = 10, .graphs = 11, .sparse_tensor = 22, .sparse_tensors = 23;
# SparseTensorProto.values = 1, .indices = 2; TensorProto.external_data = 13 (key 1, value 2).
_TENSOR_FIELDS = {5: "tensor", 10: "tensor", 6: "graph", 11: "graph", 22: "sparse", 23: "sparse"}


def external_locations(data: bytes) -> list[str]:
    """Every external data `location` an ONNX model names (in its graph, subgraphs and
    functions); raises ValueError for bytes that are not a model."""
    found: list[str] = []
    graphs = 0
    for field, start, end in _messages(data, 0, len(data)):
        if field == 7:
            graphs += 1
            _graph(data, start, end, found)
        elif field == 25:
            for f, s, e in _messages(data, start, end):
                if f == 7:
                    _node(data, s, e, found)
    if not graphs:
        raise ValueError("no graph in it")
    return found


def _graph(data: bytes, start: int, end: int, found: list[str]) -> None:
    for field, s, e in _messages(data, start, end):
        if field == 1:
            _node(data, s, e, found)
        elif field == 5:
            _tensor(data, s, e, found)
        elif field == 15:
            _sparse(data, s, e, found)


def _node(data: bytes, start: int, end: int, found: list[str]) -> None:
    for field, s, e in _messages(data, start, end):
        if field == 5:  # an attribute: tensors and subgraphs (If, Loop, Scan bodies)
            for f, s2, e2 in _messages(data, s, e):
                kind = _TENSOR_FIELDS.get(f)
                if kind == "tensor":
                    _tensor(data, s2, e2, found)
                elif kind == "graph":
                    _graph(data, s2, e2, found)
                elif kind == "sparse":
                    _sparse(data, s2, e2, found)


def _sparse(data: bytes, start: int, end: int, found: list[str]) -> None:
    for field, s, e in _messages(data, start, end):
        if field in (1, 2):
            _tensor(data, s, e, found)


def _tensor(data: bytes, start: int, end: int, found: list[str]) -> None:
    for field, s, e in _messages(data, start, end):
        if field == 13:
            entry = {f: data[s2:e2] for f, s2, e2 in _messages(data, s, e)}
            if entry.get(1) == b"location":
                found.append(entry.get(2, b"").decode("utf-8", "replace"))


def _messages(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(field number, start, end) of each length-delimited field between start and end;
    fields of other wire types are skipped. Raises ValueError on malformed bytes."""
    pos = start
    while pos < end:
        key, pos = _varint(data, pos, end)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise ValueError(f"bad field number at byte {pos}")
        if wire == 0:
            _, pos = _varint(data, pos, end)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            size, pos = _varint(data, pos, end)
            if pos + size > end:
                raise ValueError(f"a field runs past its end at byte {pos}")
            yield field, pos, pos + size
            pos += size
        else:
            raise ValueError(f"bad wire type {wire} at byte {pos}")
    if pos != end:
        raise ValueError("truncated")


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while pos < end and shift < 64:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise ValueError(f"bad varint at byte {pos}")
