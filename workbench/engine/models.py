"""Which form of a catalog model runs, and what the optimizer knows of it.

A query runs a model as the catalog holds it, as its offloaded form (weights streamed from
disk when they exceed the session's budget), or as a compressed variant its options ask for
(built and validated on a sample of the operator's inputs the first time). The optimizer
sees none of these objects: it reads a `ModelProfile` record built here.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

import numpy as np

from workbench.engine.config import Config
from workbench.errors import WorkbenchError
from workbench.models import builtin, generate, offloaded, runtimes, variants
from workbench.models.base import TEXT_KINDS, Model, exclusive
from workbench.models.catalog import Catalog
from workbench.models.deferred import Deferred, Signature, signature_of, source_key
from workbench.models.layers import Embedding, Linear, chain_of, macs, split_after_first_linear, weight_bytes
from workbench.models.onnx_store import store
from workbench.plan.profile import LayerShape, ModelProfile, RuntimeOption, runtime_key
from workbench.telemetry.stream import Telemetry

# A probe's timings per loaded model (keyed by the object, dropped with it): a model that
# is not a layer chain is timed once per process, not once per query.
_PROBES: weakref.WeakKeyDictionary[Model, dict[str, float]] = weakref.WeakKeyDictionary()
_PROBES_LOCK = threading.Lock()
#: before an ONNX form exists: its seconds per row as a share of eager torch's (measured on
#: this 2-core CPU for minilm: float32 0.4-0.6, int8 0.3; small MLPs: about even)
PRIOR_SCALE = {("text", "float32"): 0.6, ("text", "int8"): 0.35, ("tensor", "float32"): 1.0, ("tensor", "int8"): 1.0}
#: seconds per byte of float32 weights to export (TorchScript exporter), to quantize, to load
EXPORT_S_PER_BYTE = 3e-8
QUANTIZE_S_PER_BYTE = 3e-8
LOAD_S_PER_BYTE = 5e-9
_SHAPES: weakref.WeakKeyDictionary[Model, tuple[str, list[Any], str, int, int | None]] = weakref.WeakKeyDictionary()
#: what the engine stores of a model that ran, so a later process plans and reads the cache
#: without loading it (models/deferred.py)
RECORDS = "workbench_model_records"


class _Record:
    def __init__(self, key: str, signature: Signature, constants: str, profile: str):
        self.key, self.signature, self.constants, self.profile = key, signature, constants, profile


class Models:
    def __init__(self, catalog: Catalog, telemetry: Telemetry):
        self.catalog = catalog
        self.telemetry = telemetry
        # the offloaded form of each model, for the options and budget it was built for: one
        # instance (and one window of buffers) per model, not one per query
        self._offloaded: dict[str, tuple[tuple[Any, ...], Model]] = {}
        self._lock = threading.Lock()
        self._records: dict[str, _Record] | None = None  # read on first use
        self._deferred: dict[str, tuple[str, Deferred]] = {}
        self._keys: dict[str, tuple[tuple[str, int, str], str | None]] = {}  # name -> (path stamp, source key)

    def forget(self, _con: Any, name: str) -> None:
        """A dropped model: nothing of it stays here (its offloaded form holds a window of
        buffers, its deferred form the loaded weights)."""
        key = name.lower()
        with self._lock:
            self._offloaded.pop(key, None)
            self._deferred.pop(key, None)
            self._keys.pop(key, None)

    def base(self, name: str, config: Config) -> Model:
        """The catalog's model, or its offloaded form when its options and the budget say so."""
        info = self.catalog.info(name)
        device = str(info.options.get("device", "cpu"))
        budget = config.budget_for(device)
        directory = offloaded.should_offload(info.options, info.source, budget)
        if directory is None:
            return self._deferred_or_loaded(name)
        key = (str(directory), json.dumps(info.options, sort_keys=True, default=str), budget, device)
        with self._lock:
            found = self._offloaded.get(name.lower())
            if found is None or found[0] != key:
                model = offloaded.load(name, directory, info.options, budget, device=device)
                model.offloaded.telemetry = self.telemetry  # type: ignore[attr-defined]
                found = self._offloaded[name.lower()] = (key, model)
            return found[1]

    def memory(self, name: str, config: Config) -> str:
        """How a model's weights are held, for EXPLAIN (decided without reading weights)."""
        info = self.catalog.info(name)
        try:
            directory = offloaded.should_offload(
                info.options, info.source, config.budget_for(str(info.options.get("device", "cpu")))
            )
        except WorkbenchError:
            return "resident"
        if directory is None:
            return "resident"
        return str(getattr(self.base(name, config), "memory", "resident"))

    def precision(self, name: str) -> str:
        spec = variants.spec_of(self.catalog.info(name).options)
        return "float32" if spec is None else spec.label

    def variant(self, name: str, config: Config, sample: Callable[[Model], Any]) -> Model:
        """The model an operator runs: the base form, or the compressed variant its options
        ask for (`sample(base)` gives validation inputs the first time it is built)."""
        base = self.base(name, config)
        spec = variants.spec_of(self.catalog.info(name).options)
        if spec is None:
            return base
        model, _report = variants.VARIANTS.get(base, spec, lambda: sample(base))
        return model

    def runtime_options(
        self, name: str, config: Config, constants: dict[str, float], torch_profile: ModelProfile
    ) -> tuple[RuntimeOption, ...]:
        """The ONNX Runtime forms the optimizer may weigh against eager torch for `name`."""
        options = self.catalog.info(name).options
        choice = runtimes.runtime_option(options)
        if choice == "torch":
            return ()
        base = self.base(name, config)
        if isinstance(base, Deferred) and not base.loaded and choice != "onnx":
            return ()  # planned without loading it (every input may be cached): torch as recorded
        base = real(base)
        spec = variants.spec_of(options)
        tolerance = runtimes.int8_tolerance(options)
        if spec is not None and spec.precision not in ("float32", "int8") or (spec is not None and spec.low_rank):
            return ()  # int4 and low-rank variants are torch modules
        precisions = ["int8"] if spec is not None else ["float32"] + (["int8"] if tolerance is not None else [])
        why = runtimes.not_exportable(base)
        forced = choice == "onnx"
        fingerprint = torch_profile.fingerprint or base.fingerprint()
        kind = "text" if base.input_kind in TEXT_KINDS else "tensor"
        out: list[RuntimeOption] = []
        float32_form = runtimes.FORMS.form(fingerprint, "float32")
        float32_profile = profile_of(name, float32_form, constants) if float32_form is not None else None
        for precision in precisions:
            form_fp = fingerprint if precision == "float32" else runtimes.int8_fingerprint(fingerprint)
            key = runtime_key(form_fp, "onnx", precision)
            if why is not None:
                out.append(
                    RuntimeOption("onnx", precision, torch_profile, blocked=f"no ONNX form: {why}", forced=forced)
                )
                continue
            report = runtimes.FORMS.report(fingerprint, precision, tolerance)
            form = runtimes.FORMS.form(fingerprint, precision, tolerance)
            if report is not None and form is None and not report.reason.startswith("check pending"):
                out.append(RuntimeOption("onnx", precision, torch_profile, blocked=report.reason, forced=forced))
                continue
            if form is not None:  # built and checked in this process: its own measured profile
                profile = replace(profile_of(name, form, constants), fingerprint=key)
                out.append(RuntimeOption("onnx", precision, profile, forced=forced))
                continue
            scale = PRIOR_SCALE[(kind, precision)]
            start = torch_profile
            reference = None
            if precision == "int8" and float32_profile is not None:  # from the measured float32 form
                start, scale, reference = (
                    float32_profile,
                    PRIOR_SCALE[(kind, "int8")] / PRIOR_SCALE[(kind, "float32")],
                    float32_profile,
                )
            profile = replace(
                start,
                row_s=start.row_s * scale,
                batch_s=start.batch_s * scale,
                char_s=start.char_s * scale,
                fingerprint=key,
                tuned_batch_size=None,
            )
            weights = torch_profile.weight_bytes
            setup = weights * LOAD_S_PER_BYTE
            if not store().has(f"{fingerprint}-float32"):
                setup += weights * EXPORT_S_PER_BYTE
            if precision == "int8" and not store().has(f"{fingerprint}-int8"):
                setup += weights * QUANTIZE_S_PER_BYTE
            rows = runtimes.FLOAT32_SAMPLE_ROWS if precision == "float32" else runtimes.INT8_SAMPLE_ROWS
            out.append(
                RuntimeOption(
                    "onnx", precision, profile, setup_s=setup, check_rows=rows, forced=forced, reference=reference
                )
            )
        return tuple(out)

    def form(
        self, name: str, config: Config, runtime: str, precision: str, sample: Callable[[Model, int], Any]
    ) -> tuple[Model | None, str]:
        """The ONNX Runtime form an operator was planned with, built and checked on first use
        (`sample(base, rows)` gives the query's inputs), or None and why it cannot run."""
        if runtime == "torch":
            return None, ""
        base = real(self.base(name, config))
        tolerance = runtimes.int8_tolerance(self.catalog.info(name).options)
        form, report = runtimes.FORMS.get(base, precision, lambda rows: sample(base, rows), tolerance)
        return form, report.reason

    def profile(self, name: str, config: Config, constants: dict[str, float]) -> ModelProfile:
        model = self.base(name, config)
        if isinstance(model, Deferred) and not model.loaded:
            record = self._read_records().get(name.lower())
            if record is not None and record.constants == _constants_key(constants):
                found = _profile_from_json(record.profile)
                if found is not None:
                    return found
        return profile_of(name, real(model), constants)

    # -- models that need not load ---------------------------------------------------------
    def _source_key(self, name: str) -> str | None:
        info = self.catalog.info(name)
        if name.lower() == "minilm":
            path: str | None = builtin.minilm_path()
        elif name.lower() == "digits":
            path = str(builtin.DIGITS_WEIGHTS)
        elif info.source.startswith("builtin") or info.source.startswith("python:"):
            path = None
        else:
            path = info.source
        if variants.spec_of(info.options) is not None or path is None:
            return None  # a compressed variant is built from the loaded model
        # hashing every file is read once per change of the path itself (as the catalog
        # decides to reload), not on each of the many times a query asks for the model
        try:
            stamp = (path, os.stat(path).st_mtime_ns, json.dumps(info.options, sort_keys=True, default=str))
        except OSError:
            return None
        with self._lock:
            known = self._keys.get(name.lower())
        if known is not None and known[0] == stamp:
            return known[1]
        key = source_key(path, info.options)
        with self._lock:
            self._keys[name.lower()] = (stamp, key)
        return key

    def _read_records(self) -> dict[str, _Record]:
        with self._lock:
            if self._records is None:
                try:
                    rows = self.catalog.con.execute(
                        f"SELECT name, source_key, signature, constants, profile FROM {RECORDS}"
                    ).fetchall()
                except Exception:  # noqa: BLE001 - no model ever ran in this database
                    rows = []
                self._records = {r[0]: _Record(r[1], Signature.from_json(r[2]), r[3], r[4]) for r in rows}
            return self._records

    def _deferred_or_loaded(self, name: str) -> Model:
        """The model, or a `Deferred` for it when a record of the same files and options says
        what planning and the cache need to know (and it is not loaded yet)."""
        key = name.lower()
        record = self._read_records().get(key)
        if record is None:
            return self.catalog.get(name)
        source = self._source_key(name)
        if source is None or source != record.key:
            return self.catalog.get(name)
        with self._lock:
            found = self._deferred.get(key)
            if found is None or found[0] != source:
                found = self._deferred[key] = (source, Deferred(record.signature, lambda: self.catalog.get(name)))
        return found[1]

    def remember(self, name: str, model: Model, constants: dict[str, float], con: Any) -> None:
        """Store what a later process needs to plan `name` and read its cache unloaded (called
        after the model ran; written only when it changed)."""
        if isinstance(model, Deferred) and not model.loaded:
            return
        model = real(model)
        key = self._source_key(name)
        if key is None:
            return
        profile = profile_of(name, model, constants)
        signature = signature_of(model)
        constants_key = _constants_key(constants)
        known = self._read_records().get(name.lower())
        if known is not None and (known.key, known.signature, known.constants) == (key, signature, constants_key):
            return
        text = json.dumps(asdict(profile))
        con.execute(
            f"CREATE TABLE IF NOT EXISTS {RECORDS} (name VARCHAR PRIMARY KEY, source_key VARCHAR, "
            "signature VARCHAR, constants VARCHAR, profile VARCHAR)"
        )
        con.execute(
            f"INSERT OR REPLACE INTO {RECORDS} VALUES (?, ?, ?, ?, ?)",
            [name.lower(), key, signature.to_json(), constants_key, text],
        )
        with self._lock:
            assert self._records is not None
            self._records[name.lower()] = _Record(key, signature, constants_key, text)


# A model with a call's named options applied, per model and options (dropped with the model):
# its fingerprint is computed once, not once per query.
_WITH_OPTIONS: weakref.WeakKeyDictionary[Model, dict[tuple[tuple[str, Any], ...], Model]] = weakref.WeakKeyDictionary()


def for_call(model: Model, options: tuple[tuple[str, Any], ...]) -> Model:
    """The model an operator with named options runs (`gen(p, seed := 1)`): the model with
    them applied, its own fingerprint and determinism included; the model itself without."""
    if not options:
        return model
    model = real(model)
    with _PROBES_LOCK:
        known = _WITH_OPTIONS.setdefault(model, {})
        found = known.get(options)
        if found is None:
            found = known[options] = model.with_options(dict(options))
    return found


def torch_form(model: Model) -> Model:
    """The eager torch model behind an ONNX Runtime form (or the model itself)."""
    return model.base if isinstance(model, runtimes.OrtModel) else model


def real(model: Model) -> Model:
    """The loaded model behind a `Deferred` (loading it), or the model itself."""
    return model.model_now() if isinstance(model, Deferred) else model


def _constants_key(constants: dict[str, float]) -> str:
    return hashlib.sha256(json.dumps(constants, sort_keys=True).encode()).hexdigest()[:16]


def decoding_facts(model: Model) -> dict[str, str]:
    """What EXPLAIN says of a generator's decoding (planner.decoding), as profile strings."""
    if not isinstance(model, generate.Generator):
        return {}
    per_token = generate.kv_bytes_per_row(model.model.config, 1)
    return {
        "max_new_tokens": str(model.max_new_tokens),
        "context": str(model.context),
        "kv_bytes_per_token": str(per_token),
    }


def _profile_from_json(text: str) -> ModelProfile | None:
    d = json.loads(text)
    if "task" not in d:  # a record from before profiles named the task: plan from the model
        return None
    d["layers"] = tuple(LayerShape(layer["kind"], tuple(layer["shape"])) for layer in d["layers"])
    return ModelProfile(**d)


def profile_of(name: str, model: Model, constants: dict[str, float]) -> ModelProfile:
    """The record the optimizer plans with, from a loaded model."""
    fingerprint = model.fingerprint()
    with _PROBES_LOCK:
        shape = _SHAPES.get(model)
    if shape is None or shape[0] != fingerprint:  # once per version of the weights, not per query
        shape = (fingerprint, *_shape_of(model))
        with _PROBES_LOCK:
            _SHAPES[model] = shape
    _, layers, why, resident, tail_bytes = shape
    if layers:
        n_linear = sum(isinstance(layer, Linear) for layer in layers)
        # per batch: each layer's launch, plus the Python/Arrow work of one predict call
        timing = {
            "row_s": macs(layers) * constants["torch_s_per_mac"],
            "batch_s": constants["torch_batch_s"] * (n_linear + 10),
        }
    else:
        timing = _probe(model)
    return ModelProfile(
        name=name,
        input_kind=model.input_kind,
        output_type=model.output_type,
        task=model.task,
        input_dim=model.input_dim,
        device=model.device,
        batch_size=model.batch_size,
        tuned_batch_size=model.tuned_batch_size,
        max_batch=max(model.batch_candidates),
        weight_bytes=resident,
        layers=tuple(_shape(layer) for layer in layers),
        no_chain=why,
        hybrid_tail_bytes=tail_bytes,
        row_s=timing["row_s"],
        batch_s=timing["batch_s"],
        char_s=timing.get("char_s", 0.0),
        max_chars=timing.get("max_chars", 0.0),
        fingerprint=fingerprint,
        extra=decoding_facts(model),
    )


def _shape_of(model: Model) -> tuple[list[Any], str, int, int | None]:
    """(relational layer chain, why none, bytes held while running, torch part of hybrid)."""
    layers, why = chain_of(model)
    module = getattr(model, "module", None)
    resident = getattr(model, "resident_bytes", None)  # offloaded: only its window is held
    if resident is None:
        resident = weight_bytes(module) if module is not None else _param_bytes(model)
    split = split_after_first_linear(module) if module is not None and layers else None
    return layers, why, int(resident), weight_bytes(split[1]) if split is not None else None


def _shape(layer: Any) -> LayerShape:
    if isinstance(layer, Linear):
        return LayerShape("linear", layer.shape)
    if isinstance(layer, Embedding):
        return LayerShape("embedding", layer.shape)
    return LayerShape("activation")


def _param_bytes(model: Model) -> int:
    inner = getattr(model, "model", None)
    if inner is not None and hasattr(inner, "parameters"):
        return sum(p.numel() * p.element_size() for p in inner.parameters())
    return 0


def _probe(model: Model) -> dict[str, float]:
    with _PROBES_LOCK:
        found = _PROBES.get(model)
    if found is None:
        try:
            found = _time_predictions(model)
        except Exception:  # noqa: BLE001 - a model that fails here fails clearly when it runs
            found = {"row_s": 1e-4, "batch_s": 0.0}
        with _PROBES_LOCK:
            _PROBES[model] = found
    return found


def _text_input(input_kind: str, text: str) -> Any:
    """One input of a text model's kind, made of `text`."""
    if input_kind == "text_pair":
        return {"query": text, "document": text}
    if input_kind == "text_labels":
        return {"text": text, "labels": ["yes", "no"]}
    return text


def _time_images(model: Model) -> dict[str, float]:
    """Time an image model on a few small PNGs (its processor resizes them as it would any)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (128, 64, 32)).save(buf, format="PNG")
    images = [buf.getvalue()] * 16
    with exclusive(model):
        model.predict(images[:2])  # warm-up
        t0 = time.perf_counter()
        model.predict(images)
    return {"row_s": (time.perf_counter() - t0) / len(images), "batch_s": 0.0}


def _time_predictions(model: Model) -> dict[str, float]:
    """Time a few predictions on synthetic inputs (once per loaded model)."""
    if model.input_kind in TEXT_KINDS:

        def timed(text: str) -> float:
            one = _text_input(model.input_kind, text)
            with exclusive(model):
                model.predict([one] * 2)  # warm-up
                t0 = time.perf_counter()
                model.predict([one] * n)
                return time.perf_counter() - t0

        short, long_, n = 40, 400, 16
        t_short = timed("word " * (short // 5))
        t_long = timed("word " * (long_ // 5))
        char_s = max(t_long - t_short, 0.0) / n / (long_ - short)
        max_len = getattr(model, "max_length", 128) or 128
        return {
            "row_s": max(t_short / n - char_s * short, 0.0),
            "batch_s": 0.0,
            "char_s": char_s,
            "max_chars": float(max_len * 4),
        }
    if model.input_kind == "image":
        return _time_images(model)
    width = model.input_dim or 1
    x = np.zeros(64, dtype=np.int64) if model.input_kind == "ids" else np.zeros((64, width), dtype=np.float32)
    model.predict(x[:2])
    t0 = time.perf_counter()
    model.predict(x)
    return {"row_s": (time.perf_counter() - t0) / 64, "batch_s": 0.0}
