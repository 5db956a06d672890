"""Runtimes a model can run in besides eager torch: ONNX Runtime, float32 and int8.

A transformers text encoder or classifier (its pooling, Dense steps and normalisation
inside the graph) or a torch module (models/tensor.py) is exported to ONNX once per
fingerprint and kept in the export store (models/onnx_store.py), so later sessions reuse
it. int8 is onnxruntime's dynamic quantization of the float32 export (MatMul only for text
encoders, per channel; MatMul and Gemm for torch modules).

Before its first use in a process, a form is checked against eager torch on a sample of
the query's own inputs: float32 must agree within `FLOAT32_TOLERANCE` (max abs error of the
raw outputs); int8 must lose no more than the model's `max_accuracy_loss`, judged on the
mean per-row loss plus three standard errors (cosine for embeddings, label agreement for
classifiers). The int8 check compares with the float32 ONNX form when that one passed its
own check (it matches eager torch within 1e-4, and costs a fraction of eager torch's time).
A form that cannot be exported or fails its check is not used: the operator runs in torch
and EXPLAIN and `Result.stats` say why.

`WITH (runtime = 'onnx' | 'torch' | 'auto')` forces a runtime ('auto', the default, lets the
optimizer choose by estimated cost). `max_accuracy_loss` given without `precision` lets the
optimizer pick int8 within it; `precision = 'int8'` asks for int8 outright.
"""

from __future__ import annotations

import copy
import hashlib
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import torch

from workbench.errors import ModelLoadError, shorten
from workbench.models.base import Model
from workbench.models.modes import evaluating
from workbench.models.onnx_graph import head, ort_message, session_options
from workbench.models.onnx_store import ExportStore, store
from workbench.models.tensor import TensorModel
from workbench.models.text import TextClassifier, TextEmbedder, TextRegressor

RUNTIME_OPTIONS = ("auto", "torch", "onnx")
FLOAT32_TOLERANCE = 1e-4
FLOAT32_SAMPLE_ROWS = 64
#: inputs the int8 check runs on: with three standard errors of margin, minilm's cosine loss
#: (about 0.008, standard deviation about 0.002 a row) is told from 0.01 on 128 inputs
INT8_SAMPLE_ROWS = 128
#: standard errors added to the measured int8 loss before comparing it with the tolerance
MARGIN_SE = 3.0
OPSET = 17
_TEXT_TYPES = (TextEmbedder, TextClassifier, TextRegressor)


def runtime_option(options: dict[str, Any]) -> str:
    """The runtime a model's options ask for: 'auto' (the optimizer's choice), 'torch' or 'onnx'."""
    value = str(options.get("runtime", "auto")).lower()
    if value not in RUNTIME_OPTIONS:
        raise ModelLoadError(f"runtime must be one of {', '.join(RUNTIME_OPTIONS)}, not {value!r}")
    return value


def int8_tolerance(options: dict[str, Any]) -> float | None:
    """The accuracy loss int8 may cost (None: int8 not allowed). `precision = 'int8'` asks for
    it; `max_accuracy_loss` alone allows it; `precision = 'float32'` forbids it."""
    precision = str(options.get("precision", "")).lower()
    if precision == "int8" or (not precision and "max_accuracy_loss" in options):
        try:
            return float(options.get("max_accuracy_loss", 0.01))
        except (TypeError, ValueError):
            return None
    return None


def not_exportable(model: Model) -> str | None:
    """Why `model` has no ONNX form (None: it may have one; the export itself may still fail)."""
    if getattr(model, "offloaded", None) is not None:
        return "an offloaded model streams its layers in torch"
    if model.device != "cpu":
        return f"ONNX forms run on the CPU; the model is on {model.device}"
    if getattr(model, "precision", "float32") != "float32":
        return "a compressed torch variant runs in torch"
    if type(model) in _TEXT_TYPES:
        return None
    if type(model) is TensorModel:
        return None
    return f"no ONNX export for a {type(model).__name__}"


# -- export ------------------------------------------------------------------------------
class _TextGraph(torch.nn.Module):
    """A text adapter's forward as one graph: encoder, then pooling, Dense and normalisation
    (embedders) or the logits (classifiers, regressors)."""

    def __init__(self, adapter: Any, names: tuple[str, ...]):
        super().__init__()
        self.inner = adapter.model
        self.adapter = adapter
        self.names = names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        from workbench.models.sentence import pool

        enc = dict(zip(self.names, tensors))
        out = self.inner(**enc)
        if not isinstance(self.adapter, TextEmbedder):
            return out.logits.float()
        pooled = pool(out.last_hidden_state, enc["attention_mask"], self.adapter.pooling)
        for step in self.adapter.dense:
            pooled = step(pooled)
        if self.adapter.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled


def text_inputs(adapter: Any) -> tuple[str, ...]:
    """The tokenizer outputs the encoder takes (input_ids, attention_mask, token_type_ids...)."""
    import inspect

    produced = list(adapter.tokenize(adapter.tokenizer, ["a", "b c"], "pt").keys())
    accepted = set(inspect.signature(adapter.model.forward).parameters)
    return tuple(n for n in produced if n in accepted)


def export_graph(model: Model, path: Path) -> None:
    """Write `model`'s float32 ONNX graph to `path` (TorchScript exporter: one file, seconds)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if isinstance(model, _TEXT_TYPES):
            names = text_inputs(model)
            enc = model.tokenize(model.tokenizer, ["a short text", "a somewhat longer text than that"], "pt")
            args = tuple(enc[n] for n in names)
            graph: torch.nn.Module = _TextGraph(model, names)
            axes = {n: {0: "batch", 1: "tokens"} for n in names}
            inner = model.model
        else:
            assert isinstance(model, TensorModel)
            names = ("x",)
            if model.input_kind == "ids":
                args = (torch.zeros(2, dtype=torch.long),)
            else:
                args = (torch.zeros(2, model.input_dim or 1, dtype=model.dtype),)
            graph = model.module
            axes = {"x": {0: "batch"}}
            inner = model.module
        with evaluating(inner), torch.inference_mode(False), torch.no_grad():
            torch.onnx.export(
                graph,
                args,
                str(path),
                input_names=list(names),
                output_names=["y"],
                dynamic_axes={**axes, "y": {0: "batch"}},
                opset_version=OPSET,
                dynamo=False,
            )


def quantize_graph(source: Path, target: Path, text: bool) -> None:
    """onnxruntime's dynamic int8 of a float32 graph, per channel (MatMul only for text
    encoders: their attention and feed-forward weights; MatMul and Gemm for modules)."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process is printed as a warning
    try:
        quantize_dynamic(
            str(source),
            str(target),
            op_types_to_quantize=["MatMul"] if text else ["MatMul", "Gemm"],
            per_channel=True,
            weight_type=QuantType.QInt8,
        )
    finally:
        logging.getLogger().setLevel(level)


# -- the forms ---------------------------------------------------------------------------
class OrtModel(Model):
    """A model run by onnxruntime from its exported graph: inputs, outputs and head are the
    torch adapter's (`base`); only the forward runs in the graph."""

    runtime = "onnx"

    def __init__(self, base: Model, path: Path, precision: str, fingerprint: str):
        self.base = base
        self.path = Path(path)
        self.precision = precision
        self._form_fingerprint = fingerprint
        self.input_kind = base.input_kind
        self.input_dim = base.input_dim
        self.task = base.task
        self.device = "cpu"
        self.deterministic = base.deterministic
        self.batch_candidates = base.batch_candidates
        self.batch_size = base.batch_size
        self.small_run_batch = base.small_run_batch
        self.allow_inf = base.allow_inf
        self.text = isinstance(base, _TEXT_TYPES)
        if self.text:
            self.max_length = getattr(base, "max_length", 128)
            # its own tokenizer: calls of the torch form may run at the same time (each
            # form takes turns with itself only; a tokenizer is not thread-safe)
            try:
                self.tokenizer = copy.deepcopy(base.tokenizer)  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001 - a tokenizer that cannot be copied is shared
                self.tokenizer = base.tokenizer  # type: ignore[attr-defined]
            self.names = text_inputs(base)
        self.resident_bytes = self.path.stat().st_size
        self._sessions: dict[int, Any] = {}
        self._lock = threading.Lock()

    def session(self, threads: int | None = None) -> Any:
        """The onnxruntime session for `threads` intra-op threads (the engine's count for this
        operator, read from torch as the ONNX graph adapter does)."""
        n = int(threads if threads is not None else torch.get_num_threads())
        with self._lock:
            found = self._sessions.get(n)
            if found is None:
                try:
                    found = ort.InferenceSession(
                        str(self.path), sess_options=session_options(n), providers=["CPUExecutionProvider"]
                    )
                except Exception as exc:  # noqa: BLE001 - a graph onnxruntime cannot load
                    raise ModelLoadError(f"onnxruntime cannot load the export: {ort_message(exc)}") from None
                self._sessions[n] = found
            return found

    def raw(self, batch: Any) -> np.ndarray:
        """The graph's float output for a batch (embeddings or logits), as the torch
        adapter's `raw` would give it."""
        if self.text:
            enc = self.base.tokenize(self.tokenizer, list(batch), "np")  # type: ignore[attr-defined]
            feed = {n: np.asarray(enc[n], dtype=np.int64) for n in self.names}
        elif self.input_kind == "ids":
            feed = {"x": np.asarray(batch, dtype=np.int64).reshape(-1)}
        else:
            feed = {"x": np.ascontiguousarray(batch, dtype=np.float32)}
        return np.asarray(self.session().run(["y"], feed)[0], dtype=np.float32)

    def predict(self, batch: Any) -> pa.Array:
        out = torch.from_numpy(self.raw(batch))
        if self.text:
            return self.base.from_raw(out)  # type: ignore[attr-defined]
        base = self.base
        assert isinstance(base, TensorModel)
        if out.dim() == 1:
            out = out.unsqueeze(-1)
        return head(out, base.task, base.labels)

    @property
    def output_type(self) -> str:
        return self.base.output_type

    def arrow_output_type(self) -> pa.DataType:
        return self.base.arrow_output_type()

    def work_units(self, batch: Any) -> int:
        return self.base.work_units(batch)

    def sort_keys(self, inputs: Any) -> np.ndarray | None:
        return self.base.sort_keys(inputs)

    def token_lengths(self, texts: list[str]) -> np.ndarray:
        return self.base.token_lengths(texts, self.tokenizer)  # type: ignore[attr-defined]

    def fingerprint(self) -> str:
        return self._form_fingerprint

    def fingerprint_parts(self) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
        return self.base.fingerprint_parts()

    def describe(self) -> dict[str, Any]:
        return {**self.base.describe(), "runtime": f"onnxruntime {self.precision}"}


def eager_raw(model: Model, batch: Any) -> np.ndarray:
    """The torch adapter's raw float output (embeddings, logits, a module's output)."""
    if isinstance(model, _TEXT_TYPES):
        return model.raw(list(batch)).cpu().numpy()
    assert isinstance(model, TensorModel)
    dtype = torch.long if model.input_kind == "ids" else model.dtype
    x = torch.as_tensor(np.asarray(batch)).to(dtype=dtype)
    with evaluating(model.module), torch.inference_mode():
        out = model.module(x).float()
    return out.reshape(len(batch), -1).cpu().numpy()


@dataclass(frozen=True)
class Report:
    """How a runtime form fared: used, or why not, and what its check measured."""

    runtime: str
    precision: str
    ok: bool
    reason: str  # why it is not used ('' when it is)
    metric: str = ""  # 'max abs error', 'cosine loss', 'disagreement'
    error: float = 0.0  # the measured error (int8: mean loss)
    margin: float = 0.0  # int8: the standard errors added
    sample_rows: int = 0
    seconds: float = 0.0  # export, quantization and check

    @property
    def label(self) -> str:
        return f"{self.runtime} {self.precision}"


def row_losses(model: Model, reference: np.ndarray, candidate: np.ndarray) -> tuple[str, np.ndarray]:
    """Per-row loss of int8 outputs against float32 ones."""
    if model.task == "classify":
        return "disagreement", (reference.argmax(1) != candidate.argmax(1)).astype(np.float64)
    if model.task == "regress":
        close = np.isclose(reference, candidate, rtol=1e-3, atol=1e-6).all(axis=1)
        return "disagreement", (~close).astype(np.float64)
    a = reference / np.maximum(np.linalg.norm(reference, axis=1, keepdims=True), 1e-12)
    b = candidate / np.maximum(np.linalg.norm(candidate, axis=1, keepdims=True), 1e-12)
    return "cosine loss", 1.0 - (a * b).sum(1)


def check(
    base: Model, form: OrtModel, sample: Any, tolerance: float | None, reference_form: OrtModel | None = None
) -> Report:
    """`form` against eager torch on `sample` (tolerance: int8's allowed loss); int8 against
    `reference_form` (the checked float32 form) when given."""
    n = len(sample)
    # in length-sorted batches, as the engine runs them (one padded batch of all would
    # cost many times more)
    keys = base.sort_keys(sample)
    order = np.argsort(keys, kind="stable") if keys is not None else np.arange(n)
    step = 32 if keys is not None else max(n, 1)
    parts = [_take(sample, order[i : i + step]) for i in range(0, n, step)]
    if reference_form is not None and form.precision != "float32":
        reference = np.concatenate([reference_form.raw(p).reshape(len(p), -1) for p in parts])
    else:
        reference = np.concatenate([eager_raw(base, p) for p in parts]) if parts else np.zeros((0, 1))
    got = np.concatenate([form.raw(p).reshape(len(p), -1) for p in parts]) if parts else np.zeros((0, 1))
    if form.precision == "float32":
        error = float(np.abs(reference - got).max()) if n else 0.0
        ok = bool(error <= FLOAT32_TOLERANCE)
        reason = "" if ok else f"float32 export differs from torch by {error:.1e} > {FLOAT32_TOLERANCE:.0e}"
        return Report("onnx", "float32", ok, reason, "max abs error", error, 0.0, n)
    metric, losses = row_losses(base, reference, got)
    mean = float(losses.mean()) if n else 0.0
    margin = MARGIN_SE * float(losses.std(ddof=1)) / float(np.sqrt(n)) if n > 1 else 0.0
    allowed = tolerance or 0.0
    ok = bool(mean + margin <= allowed)
    reason = "" if ok else f"int8 loses {mean:.4f} (+{margin:.4f} margin) > max_accuracy_loss {allowed:g} on {n} inputs"
    return Report("onnx", "int8", ok, reason, metric, mean, margin, n)


def _take(inputs: Any, idx: np.ndarray) -> Any:
    return inputs[idx] if isinstance(inputs, np.ndarray) else [inputs[i] for i in idx]


def int8_fingerprint(base_fingerprint: str) -> str:
    return hashlib.blake2b(f"{base_fingerprint}|onnx-int8-matmul-per-channel".encode(), digest_size=16).hexdigest()


class Forms:
    """Process-wide: one checked form (or the reason for none) per (fingerprint, precision)."""

    def __init__(self) -> None:
        self._built: dict[tuple[str, str, float | None], tuple[OrtModel | None, Report]] = {}
        self._lock = threading.Lock()

    def report(self, fingerprint: str, precision: str, tolerance: float | None = None) -> Report | None:
        found = self._built.get((fingerprint, precision, tolerance if precision == "int8" else None))
        return found[1] if found else None

    def forget(self) -> None:
        """Drop every form (tests: a new session's first use)."""
        with self._lock:
            self._built.clear()

    def form(self, fingerprint: str, precision: str, tolerance: float | None = None) -> OrtModel | None:
        found = self._built.get((fingerprint, precision, tolerance if precision == "int8" else None))
        return found[0] if found else None

    def get(
        self,
        base: Model,
        precision: str,
        sample: Callable[[int], Any],
        tolerance: float | None = None,
        exports: ExportStore | None = None,
    ) -> tuple[OrtModel | None, Report]:
        """The checked form of `base` at `precision`, built on first use (`sample(rows)`
        gives the query's inputs to check it on), or None and the reason."""
        key = (base.fingerprint(), precision, tolerance if precision == "int8" else None)
        with self._lock:
            found = self._built.get(key)
            if found is not None and not found[1].reason.startswith("check pending"):
                return found
            reference = self._built.get((key[0], "float32", None), (None, None))[0] if precision == "int8" else None
            built = _build(base, precision, sample, tolerance, exports or store(), reference)
            self._built[key] = built
            return built


FORMS = Forms()


def _build(
    base: Model,
    precision: str,
    sample: Callable[[int], Any],
    tolerance: float | None,
    exports: ExportStore,
    reference: OrtModel | None = None,
) -> tuple[OrtModel | None, Report]:
    t0 = time.perf_counter()
    why = not_exportable(base)
    if why is not None:
        return None, Report("onnx", precision, False, f"no ONNX form: {why}")
    fingerprint = base.fingerprint()
    try:
        fp32 = exports.get_or_build(f"{fingerprint}-float32", fingerprint, lambda p: export_graph(base, p))
        path, form_fp = fp32, fingerprint
        if precision == "int8":
            form_fp = int8_fingerprint(fingerprint)
            is_text = isinstance(base, _TEXT_TYPES)
            path = exports.get_or_build(f"{fingerprint}-int8", form_fp, lambda p: quantize_graph(fp32, p, is_text))
        form = OrtModel(base, path, precision, form_fp)
        form.session()  # loads now: a graph onnxruntime refuses fails here, not mid-query
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - any exporter or onnxruntime failure means: run in torch
        text = str(exc).strip().splitlines()
        reason = f"export failed: {shorten(text[0] if text else type(exc).__name__, 160)}"
        return None, Report("onnx", precision, False, reason, seconds=time.perf_counter() - t0)
    rows = FLOAT32_SAMPLE_ROWS if precision == "float32" else INT8_SAMPLE_ROWS
    inputs = sample(rows)
    if not len(inputs):
        return None, Report("onnx", precision, False, "check pending: the query has no inputs to check it on")
    try:
        report = check(base, form, inputs, tolerance, reference)
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as exc:  # noqa: BLE001 - a graph that fails on real inputs is not used
        text = str(exc).strip().splitlines()
        report = Report("onnx", precision, False, f"check failed: {shorten(text[0] if text else '', 160)}")
    report = Report(**{**report.__dict__, "seconds": time.perf_counter() - t0})
    return (form if report.ok else None), report
