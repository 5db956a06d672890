"""What every model looks like to the engine: typed input, typed output, batched predict.

An adapter turns one kind of model (a transformers encoder, a torch module...) into this
shape, so executors never need to know where a model came from.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from workbench.errors import ModelLoadError, shorten

#: models called with more than one argument: the arguments' names and SQL types. The
#: builder packs a call's arguments into one STRUCT of these fields, so the rest of the
#: engine (dedup, cache, lookups) sees one key per call as for any other model.
ARGUMENTS: dict[str, tuple[tuple[str, str], ...]] = {
    "text_pair": (("query", "VARCHAR"), ("document", "VARCHAR")),  # rerank: score(query, doc)
    "text_labels": (("text", "VARCHAR"), ("labels", "VARCHAR[]")),  # zero_shot: zs(text, ['a', 'b'])
}
#: input kinds whose values reach the model as Python objects (str, bytes, dicts), one a row
OBJECT_KINDS = frozenset({"text", "image", *ARGUMENTS})
#: input kinds made of text, whose cost grows with its length
TEXT_KINDS = frozenset({"text", "text_pair", "text_labels"})


def cached_by_value(input_kind: str, input_type: str) -> bool:
    """Whether an input's value is all the model sees: an image path names a file whose bytes
    may change in place, so calls over paths are never answered from the cache (bytes are)."""
    return not (input_kind == "image" and input_type == "VARCHAR")


def arguments_of(input_kind: str) -> tuple[str, ...]:
    """The names of a model's arguments (one unnamed argument for most models)."""
    return tuple(name for name, _ in ARGUMENTS.get(input_kind, ()))


def sql_input_type(input_kind: str, input_dim: int | None) -> str:
    """The SQL type a model takes: VARCHAR text, a BIGINT id, a FLOAT array, BLOB image bytes
    (or a VARCHAR path), or a STRUCT of several arguments."""
    if input_kind == "text":
        return "VARCHAR"
    if input_kind == "ids":
        return "BIGINT"
    if input_kind == "image":
        return "BLOB"
    if input_kind in ARGUMENTS:
        return "STRUCT(" + ", ".join(f'"{n}" {t}' for n, t in ARGUMENTS[input_kind]) + ")"
    return f"FLOAT[{input_dim}]" if input_dim else "FLOAT[]"


@dataclass
class ModelInfo:
    """Catalog facts about a model, shown by SHOW MODELS and DESCRIBE MODEL."""

    name: str
    source: str
    task: str
    options: dict[str, Any] = field(default_factory=dict)


class Model:
    """A loaded model the engine can run.

    `input_kind` is 'text' (VARCHAR), 'tensor' (a fixed-length numeric array), 'ids'
    (an integer id, for models that start with an embedding), 'image' (BLOB bytes or a
    VARCHAR path) or a kind of `ARGUMENTS` (several arguments, packed into one STRUCT).
    `predict` takes a Python list (texts, image bytes or paths, dicts of arguments) or a 2-D
    float32 numpy array and returns an Arrow array of `output_type` with one value per input.
    """

    input_kind: str = "text"
    input_dim: int | None = None
    task: str = "embed"
    device: str = "cpu"
    deterministic: bool = True
    #: batch sizes the tuner tries; the best by measured throughput is kept
    batch_candidates: tuple[int, ...] = (8, 16, 32, 64, 128)
    batch_size: int | None = None  # fixed by the user (WITH batch_size=...) or tuned
    tuned_batch_size: int | None = None
    #: batch for runs too small to measure candidates: text pads to its longest input, so
    #: small; a tensor model has no padding, so one batch of everything (up to the largest)
    small_run_batch: str = "smallest"
    #: ±inf outputs are refused like NaN unless the user allows them (WITH (allow_inf = true))
    allow_inf: bool = False
    #: a generator: `predict_continuous(batch, slots)` decodes `slots` rows at once, the others
    #: taking the slots that sequences ending free up (execution/batching.py gives it more rows)
    continuous: bool = False

    @property
    def input_type(self) -> str:
        return sql_input_type(self.input_kind, self.input_dim)

    @property
    def output_type(self) -> str:
        raise NotImplementedError

    def arrow_output_type(self) -> pa.DataType:
        raise NotImplementedError

    def predict(self, batch: Any) -> pa.Array:
        raise NotImplementedError

    def work_units(self, batch: Any) -> int:
        """Work in a batch, for throughput measurement (tokens for text, rows otherwise)."""
        return len(batch)

    def sort_keys(self, inputs: Any) -> np.ndarray | None:
        """Keys to group similar inputs into one batch (text length), or None."""
        return None

    def fingerprint(self) -> str:
        """Hash of everything that changes this model's outputs (see models/fingerprint.py).
        Within one statement (`one_statement`) it is computed once: planning and running
        ask several times, and a large model's stamp takes milliseconds to check."""
        memo = _STATEMENT_FINGERPRINTS.get()
        if memo is not None and id(self) in memo:
            return memo[id(self)][1]
        found = self._fingerprint()
        if memo is not None:
            memo[id(self)] = (self, found)  # the model is kept, so its id is not reused meanwhile
        return found

    def _fingerprint(self) -> str:
        from workbench.models.fingerprint import Fingerprinter

        named, facts = self.fingerprint_parts()
        if not hasattr(self, "_fingerprinter"):
            self._fingerprinter = Fingerprinter()
        # allow_inf decides which outputs are refused: entries stored while allowed are not
        # answers once it is switched off
        shown = {"allow_inf": True} if self.allow_inf else {}
        return self._fingerprinter(named, {"adapter": type(self).__qualname__, **facts, **shown})

    def fingerprint_parts(self) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
        """(named tensors, other facts) that determine the outputs."""
        raise NotImplementedError

    def predict_continuous(self, batch: Any, slots: int) -> pa.Array:
        """`predict` with at most `slots` inputs in flight (models with `continuous` only)."""
        return self.predict(batch)

    def with_options(self, options: dict[str, Any]) -> Model:
        """This model with a call's named options applied (models/call_options.py checked
        their names and types against the task); a task without such options has none."""
        raise ModelLoadError(f"a {self.task} model takes no named options")

    def describe(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "input_type": self.input_type,
            "output_type": self.output_type,
            "device": self.device,
            "batch_size": self.batch_size or self.tuned_batch_size or "auto",
            "deterministic": self.deterministic,
        }


#: widest output stored as a fixed-size ARRAY; DuckDB allocates a whole vector of 2,048
#: arrays at once, so FLOAT[8192] would take 64 MB per vector: wider outputs are lists
MAX_ARRAY_WIDTH = 1024


def vector_types(width: int) -> tuple[str, pa.DataType]:
    """(DuckDB type, Arrow type) of a model output of `width` floats."""
    if width <= MAX_ARRAY_WIDTH:
        return f"FLOAT[{width}]", pa.list_(pa.float32(), width)
    return "FLOAT[]", pa.list_(pa.float32())


def fixed_size_list(matrix: np.ndarray) -> pa.Array:
    """A 2-D float array as FLOAT[n] (a fixed-size list), or FLOAT[] beyond MAX_ARRAY_WIDTH."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    width = matrix.shape[1]
    values = pa.array(matrix.reshape(-1))
    if width <= MAX_ARRAY_WIDTH:
        return pa.FixedSizeListArray.from_arrays(values, width)
    offsets = pa.array(np.arange(0, (len(matrix) + 1) * width, width, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, values)


def check_labels(labels: list[str] | None, outputs: int) -> None:
    """A classifier's labels name its outputs one to one (raised at CREATE, not mid-query)."""
    if labels is not None and len(labels) != outputs:
        given = shorten(", ".join(labels), 80)
        raise ModelLoadError(
            f"{len(labels)} labels given ({given}) but the classifier has {outputs} output{'s' * (outputs != 1)}"
        )


def check_head(task: str, labels: list[str] | None, outputs: int, what: str) -> None:
    """A tensor model's task fits its number of outputs (raised at CREATE, not mid-query)."""
    if task == "classify" and outputs < 2 and not labels:
        raise ModelLoadError(f"task='classify' needs 2 or more outputs and the {what} has 1; use task='regress'")
    if task == "regress" and outputs != 1:
        raise ModelLoadError(
            f"task='regress' needs 1 output and the {what} has {outputs}; use task='embed' for vectors"
        )
    if labels and task != "classify":
        raise ModelLoadError(f"labels name a classifier's outputs; this model's task is '{task}'")
    if task == "classify":
        check_labels(labels, outputs)


def label_score(labels: list[Any] | np.ndarray, scores: np.ndarray, label_type: pa.DataType) -> pa.Array:
    """A classifier's output: STRUCT(label, score)."""
    return pa.StructArray.from_arrays(
        [pa.array(labels, type=label_type), pa.array(np.asarray(scores, dtype=np.float32))],
        names=["label", "score"],
    )


# One lock per loaded text model (keyed by the object, dropped with it): a transformers
# tokenizer is not thread-safe, so calls of one text model from many threads take turns.
_LOCKS: weakref.WeakKeyDictionary[Model, threading.Lock] = weakref.WeakKeyDictionary()
_LOCKS_LOCK = threading.Lock()


_STATEMENT_FINGERPRINTS: contextvars.ContextVar[dict[int, tuple[Model, str]] | None] = contextvars.ContextVar(
    "workbench_statement_fingerprints", default=None
)


@contextlib.contextmanager
def one_statement() -> Iterator[None]:
    """Within it, each model's fingerprint is computed once (on this thread): a model does not
    change in the middle of a statement."""
    token = _STATEMENT_FINGERPRINTS.set({})
    try:
        yield
    finally:
        _STATEMENT_FINGERPRINTS.reset(token)


@contextlib.contextmanager
def exclusive(model: Model) -> Iterator[None]:
    """Hold the model's lock while it runs, when it needs one (tokenizers, image processors)."""
    if model.input_kind not in OBJECT_KINDS:
        yield
        return
    with _LOCKS_LOCK:
        lock = _LOCKS.setdefault(model, threading.Lock())
    with lock:
        yield
