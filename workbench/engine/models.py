"""Which form of a catalog model runs, and what the optimizer knows of it.

A query runs a model as the catalog holds it, as its offloaded form (weights streamed from
disk when they exceed the session's budget), or as a compressed variant its options ask for
(built and validated on a sample of the operator's inputs the first time). The optimizer
sees none of these objects: it reads a `ModelProfile` record built here.
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from workbench.engine.config import Config
from workbench.errors import WorkbenchError
from workbench.models import offloaded, variants
from workbench.models.base import Model, exclusive
from workbench.models.catalog import Catalog
from workbench.models.layers import Embedding, Linear, chain_of, macs, split_after_first_linear, weight_bytes
from workbench.plan.profile import LayerShape, ModelProfile
from workbench.telemetry.stream import Telemetry

# A probe's timings per loaded model (keyed by the object, dropped with it): a model that
# is not a layer chain is timed once per process, not once per query.
_PROBES: weakref.WeakKeyDictionary[Model, dict[str, float]] = weakref.WeakKeyDictionary()
_PROBES_LOCK = threading.Lock()
_SHAPES: weakref.WeakKeyDictionary[Model, tuple[str, list[Any], str, int, int | None]] = weakref.WeakKeyDictionary()


class Models:
    def __init__(self, catalog: Catalog, telemetry: Telemetry):
        self.catalog = catalog
        self.telemetry = telemetry
        # the offloaded form of each model, for the options and budget it was built for: one
        # instance (and one window of buffers) per model, not one per query
        self._offloaded: dict[str, tuple[tuple[Any, ...], Model]] = {}
        self._lock = threading.Lock()

    def base(self, name: str, config: Config) -> Model:
        """The catalog's model, or its offloaded form when its options and the budget say so."""
        info = self.catalog.info(name)
        device = str(info.options.get("device", "cpu"))
        budget = config.budget_for(device)
        directory = offloaded.should_offload(info.options, info.source, budget)
        if directory is None:
            return self.catalog.get(name)
        key = (str(directory), json.dumps(info.options, sort_keys=True, default=str), budget, device)
        with self._lock:
            found = self._offloaded.get(name)
            if found is None or found[0] != key:
                model = offloaded.load(name, directory, info.options, budget, device=device)
                model.offloaded.telemetry = self.telemetry  # type: ignore[attr-defined]
                found = self._offloaded[name] = (key, model)
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

    def profile(self, name: str, config: Config, constants: dict[str, float]) -> ModelProfile:
        return profile_of(name, self.base(name, config), constants)


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


def _time_predictions(model: Model) -> dict[str, float]:
    """Time a few predictions on synthetic inputs (once per loaded model)."""
    if model.input_kind == "text":

        def timed(texts: list[str]) -> float:
            with exclusive(model):
                model.predict(texts[:2])  # warm-up
                t0 = time.perf_counter()
                model.predict(texts)
                return time.perf_counter() - t0

        short, long_, n = 40, 400, 16
        t_short = timed(["word " * (short // 5)] * n)
        t_long = timed(["word " * (long_ // 5)] * n)
        char_s = max(t_long - t_short, 0.0) / n / (long_ - short)
        max_len = getattr(model, "max_length", 128) or 128
        return {
            "row_s": max(t_short / n - char_s * short, 0.0),
            "batch_s": 0.0,
            "char_s": char_s,
            "max_chars": float(max_len * 4),
        }
    width = model.input_dim or 1
    x = np.zeros(64, dtype=np.int64) if model.input_kind == "ids" else np.zeros((64, width), dtype=np.float32)
    model.predict(x[:2])
    t0 = time.perf_counter()
    model.predict(x)
    return {"row_s": (time.perf_counter() - t0) / 64, "batch_s": 0.0}
