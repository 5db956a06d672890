"""A model whose weights load only when it must run.

Loading a transformers model costs seconds (importing transformers alone takes several), yet
a query whose inputs are all in the inference cache never runs the model: planning and the
cache read only its signature (input and output types, fingerprint, determinism) and the
optimizer's profile of it. The engine stores both the first time a model runs
(`workbench_model_records`, keyed by the model's files, size and modification time, and its
options), so in a later process a `Deferred` stands in for the model and loads it on the
first call that needs the weights (a cache miss, a relational form, a variant).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from workbench.models.base import Model, exclusive

#: bump when what a record holds changes meaning: old records are then ignored
FORMAT = 1
#: attributes read without the weights (the telemetry's weight count): None until loaded
_UNLOADED_NONE = frozenset({"module", "model", "runtime"})  # (runtime: nothing ran it yet)


@dataclass(frozen=True)
class Signature:
    """What the engine reads of a model before it runs: enough to plan and read the cache."""

    input_kind: str
    input_dim: int | None
    task: str
    device: str
    deterministic: bool
    output_type: str
    arrow_output_type: str  # an Arrow schema, serialized (base64)
    fingerprint: str
    batch_size: int | None
    batch_candidates: tuple[int, ...]
    small_run_batch: str
    allow_inf: bool

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Signature:
        d = json.loads(text)
        d["batch_candidates"] = tuple(d["batch_candidates"])
        return cls(**d)


def signature_of(model: Model) -> Signature:
    schema = pa.schema([pa.field("v", model.arrow_output_type())])
    return Signature(
        input_kind=model.input_kind,
        input_dim=model.input_dim,
        task=model.task,
        device=model.device,
        deterministic=model.deterministic,
        output_type=model.output_type,
        arrow_output_type=base64.b64encode(schema.serialize().to_pybytes()).decode(),
        fingerprint=model.fingerprint(),
        batch_size=model.batch_size,
        batch_candidates=tuple(model.batch_candidates),
        small_run_batch=model.small_run_batch,
        allow_inf=model.allow_inf,
    )


def source_key(path: str | None, options: dict[str, Any]) -> str | None:
    """A hash of a model's files (names, sizes, modification times) and options; None when
    the model has no files (a Python object) or they are gone."""
    if path is None:
        return None
    root = Path(path)
    if not root.exists():
        return None
    files = (
        [root]
        if root.is_file()
        else sorted(p for p in root.rglob("*") if p.is_file() and len(p.parts) - len(root.parts) <= 2)
    )
    h = hashlib.sha256(f"{FORMAT}|{json.dumps(options, sort_keys=True, default=str)}".encode())
    for f in files:
        st = os.stat(f)
        h.update(f"{f.relative_to(root) if f != root else f.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


class Deferred(Model):
    """Stands in for a model until something needs its weights, then loads it (once) and
    passes every call on to it."""

    def __init__(self, signature: Signature, load: Callable[[], Model]):
        self.signature = signature
        self._load = load
        self._model: Model | None = None
        self._lock = threading.Lock()
        self.input_kind = signature.input_kind
        self.input_dim = signature.input_dim
        self.task = signature.task
        self.device = signature.device
        self.deterministic = signature.deterministic
        self.batch_size = signature.batch_size
        self.batch_candidates = signature.batch_candidates
        self.small_run_batch = signature.small_run_batch
        self.allow_inf = signature.allow_inf
        self.continuous = signature.task == "generate"  # (models/generate.py decodes continuously)
        self.precision = "float32"
        self.memory = "resident"

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def model_now(self) -> Model:
        """The real model, loaded on first use."""
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    @property
    def output_type(self) -> str:
        return self.signature.output_type

    def arrow_output_type(self) -> pa.DataType:
        schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(self.signature.arrow_output_type)))
        return schema.field(0).type

    def fingerprint(self) -> str:
        return self.signature.fingerprint

    @property
    def tuned_batch_size(self) -> int | None:
        return self._model.tuned_batch_size if self._model is not None else None

    @tuned_batch_size.setter
    def tuned_batch_size(self, value: int | None) -> None:  # what the batch tuner found
        self.model_now().tuned_batch_size = value

    def predict(self, batch: Any) -> pa.Array:
        model = self.model_now()
        with exclusive(model):  # the real model's own lock: other sessions may hold it loaded
            return model.predict(batch)

    def predict_continuous(self, batch: Any, slots: int) -> pa.Array:
        model = self.model_now()
        with exclusive(model):
            return model.predict_continuous(batch, slots)

    def work_units(self, batch: Any) -> int:
        return self.model_now().work_units(batch)

    def sort_keys(self, inputs: Any) -> Any:
        return self.model_now().sort_keys(inputs)

    def describe(self) -> dict[str, Any]:
        return self.model_now().describe()

    def __getattr__(self, name: str) -> Any:
        # only attributes this class does not define reach here
        if name.startswith("__") or name in ("_model", "_load", "_lock", "signature"):
            raise AttributeError(name)
        if self._model is None and name in _UNLOADED_NONE:
            raise AttributeError(name)  # no weights held yet
        return getattr(self.model_now(), name)
