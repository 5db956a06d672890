"""Compressed variants of a model, chosen within the accuracy loss the user allowed.

`CREATE MODEL m ... WITH (precision = 'int8', max_accuracy_loss = 0.01)` (or `ALTER MODEL m
SET ...`, also for the built-in models) asks for a variant; `low_rank = true` asks for a
truncated-SVD one. The variant is built the first time a query runs the model, and checked
on a validation sample of that query's own inputs against the float32 model: mean cosine
similarity for embedders, agreement for classifiers and regressors within 1e-3 relative.

- int8 on the CPU: torch's dynamic int8 for every linear layer; when that loses more than
  allowed, the layers that cost the most accuracy on their own stay float32, the fewest
  needed to get within the tolerance (a binary search over the sensitivity order). An
  embedding table is stored int8 per row.
- int4: weight-only int4 linear layers (smaller, not faster); rejected beyond the tolerance.
- low_rank: per-layer ranks from the spectrum, the fewest parameters within the tolerance.

When nothing fits the tolerance the model runs float32, and EXPLAIN and the stats say why.
A variant has its own fingerprint (the float32 one plus what was changed), so the
inference cache never mixes its outputs with the float32 model's.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch import nn

from workbench.errors import ModelLoadError
from workbench.models import compress
from workbench.models.base import Model

SAMPLE_ROWS = 64
DEFAULT_LOSS = 0.01


@dataclass(frozen=True)
class Spec:
    precision: str = "float32"
    low_rank: bool = False
    max_accuracy_loss: float = DEFAULT_LOSS

    @property
    def label(self) -> str:
        parts = [self.precision] + (["low-rank"] if self.low_rank else [])
        return "+".join(parts)


def spec_of(options: dict[str, Any]) -> Spec | None:
    """The variant the model's options ask for, or None for the plain float32 model."""
    precision = str(options.get("precision", "float32")).lower()
    if precision not in compress.PRECISIONS:
        raise ModelLoadError(f"precision must be one of {', '.join(compress.PRECISIONS)}, not {precision!r}")
    low = options.get("low_rank", False)
    if not isinstance(low, bool):
        low = str(low).lower() in ("true", "1", "yes", "auto")
    loss = options.get("max_accuracy_loss", DEFAULT_LOSS)
    try:
        loss = float(loss)
    except (TypeError, ValueError):
        raise ModelLoadError(f"max_accuracy_loss must be a number between 0 and 1, not {loss!r}") from None
    if not 0 <= loss < 1:
        raise ModelLoadError(f"max_accuracy_loss must be between 0 and 1, not {loss}")
    if precision == "float32" and not low:
        return None
    return Spec(precision, bool(low), loss)


@dataclass
class Report:
    """What the variant is and what it cost, measured on the validation sample."""

    spec: Spec
    applied: str  # what runs: e.g. 'int8 (30 of 36 linear layers)', or 'float32'
    metric: str  # 'cosine' or 'agreement'
    accuracy: float  # of what runs, against float32, on the sample
    sample_rows: int
    size_bytes: int
    float32_bytes: int
    seconds: float  # to build and validate
    note: str = ""
    layers: dict[str, str] = field(default_factory=dict)  # layer -> how it is stored

    def to_dict(self) -> dict[str, Any]:
        return {
            "asked": self.spec.label,
            "max_accuracy_loss": self.spec.max_accuracy_loss,
            "applied": self.applied,
            "metric": self.metric,
            "accuracy": round(self.accuracy, 4),
            "sample_rows": self.sample_rows,
            "size_ratio": round(self.size_bytes / max(self.float32_bytes, 1), 3),
            "note": self.note,
        }


def _module_attr(model: Model) -> str:
    for attr in ("module", "model"):
        if isinstance(getattr(model, attr, None), nn.Module):
            return attr
    raise ModelLoadError(f"a {type(model).__name__} has no torch module to compress")


def _outputs(model: Model, sample: Any) -> np.ndarray:
    # in the engine's batch sizes, not all at once: 64 texts in one batch hold ~0.5 GB of
    # activations, more than the model itself, and the search runs the sample many times
    step = 16 if isinstance(sample, list) else 4096
    parts = [model.predict(sample[i : i + step]) for i in range(0, len(sample), step)]
    out = parts[0] if len(parts) == 1 else pa.concat_arrays(parts)
    if model.task in ("classify", "image_classify"):
        return np.asarray(out.field("label").to_pylist(), dtype=object)
    flat = out.flatten().to_numpy(zero_copy_only=False) if hasattr(out, "flatten") else out.to_numpy()
    return np.asarray(flat, dtype=np.float64).reshape(len(out), -1)


def _accuracy(model: Model, reference: np.ndarray, candidate: np.ndarray) -> tuple[str, float]:
    if model.task in ("classify", "image_classify"):
        return "agreement", compress.accuracy(reference, candidate, "classify")
    if model.task == "regress":
        close = np.isclose(reference, candidate, rtol=1e-3, atol=1e-6).all(axis=1)
        return "agreement", float(close.mean())
    return "cosine", compress.accuracy(reference, candidate, "embed")


class Variants:
    """Process-wide: one built variant per (float32 fingerprint, spec)."""

    def __init__(self) -> None:
        self._built: dict[tuple[str, Spec], tuple[Model, Report]] = {}
        self._lock = threading.Lock()

    def report(self, base: Model, spec: Spec) -> Report | None:
        hit = self._built.get((base.fingerprint(), spec))
        return hit[1] if hit else None

    def get(self, base: Model, spec: Spec, sample: Callable[[], Any]) -> tuple[Model, Report]:
        key = (base.fingerprint(), spec)
        with self._lock:
            if key not in self._built:
                self._built[key] = build(base, spec, sample())
            return self._built[key]


VARIANTS = Variants()


def build(base: Model, spec: Spec, sample: Any) -> tuple[Model, Report]:
    """The variant of `base` that fits `spec` on `sample` (inputs as the model takes them)."""
    t0 = time.perf_counter()
    attr = _module_attr(base)
    module: nn.Module = getattr(base, attr)
    if not len(sample):
        raise ModelLoadError("a compressed variant needs a validation sample: the query has no inputs")
    reference = _outputs(base, sample)
    fp32_bytes = compress.size_bytes(module)

    def with_module(m: nn.Module) -> Model:
        v = copy.copy(base)
        setattr(v, attr, m)
        v.__dict__.pop("_fingerprinter", None)
        return v

    def accuracy_of(m: nn.Module) -> float:
        return _accuracy(base, reference, _outputs(with_module(m), sample))[1]

    metric = _accuracy(base, reference, reference)[0]
    tolerance = spec.max_accuracy_loss
    chosen, applied, note, layers = module, "float32", "", {}
    names = [n for n in compress.linear_layers(module) if not n.endswith("pooler.dense")]
    if spec.low_rank:
        choice = compress.choose_ranks(module, lambda m: 1 - accuracy_of(m), tolerance, names)
        if choice.ranks:
            chosen = compress.low_rank(module, choice.ranks)
            applied = (
                f"low-rank ({len(choice.ranks)} of {len(names)} linear layers, {choice.params_kept:.0%} of "
                f"their parameters)"
            )
            layers.update({n: f"rank {r}" for n, r in choice.ranks.items()})
        else:
            note = "no low-rank factoring saves parameters within the tolerance"
    if spec.precision == "int8":
        chosen, applied, note8, layers8 = _int8_within(chosen, base.device, accuracy_of, tolerance, names, applied)
        note, layers = "; ".join(x for x in (note, note8) if x), {**layers, **layers8}
    elif spec.precision == "int4":
        candidate = compress.quantize(chosen, "int4", base.device)
        if 1 - accuracy_of(candidate) <= tolerance:
            chosen, applied = candidate, ("int4" if applied == "float32" else f"{applied} + int4")
        else:
            note = "; ".join(
                x for x in (note, f"int4 loses more than {tolerance:.2%}: kept the weights as they were") if x
            )
    variant = with_module(chosen)
    acc = accuracy_of(chosen) if chosen is not module else 1.0
    extra = {"variant": applied, "layers": layers}
    base_fp = base.fingerprint()
    digest = hashlib.blake2b(f"{base_fp}|{json.dumps(extra, sort_keys=True)}".encode(), digest_size=16).hexdigest()
    variant.fingerprint = lambda: digest  # type: ignore[method-assign]
    variant.precision = applied  # type: ignore[attr-defined]
    report = Report(
        spec,
        applied,
        metric,
        acc,
        len(sample),
        compress.size_bytes(chosen),
        fp32_bytes,
        time.perf_counter() - t0,
        note,
        layers,
    )
    return variant, report


def _int8_within(
    module: nn.Module,
    device: str,
    accuracy_of: Callable[[nn.Module], float],
    tolerance: float,
    names: list[str],
    before: str,
) -> tuple[nn.Module, str, str, dict[str, str]]:
    """Dynamic int8 for the most linear layers the tolerance allows (CPU), else weight-only."""
    prefix = "" if before == "float32" else f"{before} + "
    linears = [n for n in names if isinstance(_get(module, n), nn.Linear)]
    if device != "cpu":  # no dynamic int8 kernels: weight-only int8 with per-channel scales
        candidate = _weight_only(module, linears)
        if 1 - accuracy_of(candidate) <= tolerance:
            return candidate, f"{prefix}int8 weight-only", "", {n: "int8 weight-only" for n in linears}
        return module, before, f"int8 loses more than {tolerance:.2%}", {}
    every = dynamic_int8(module, linears)
    if 1 - accuracy_of(every) <= tolerance:
        return (
            every,
            f"{prefix}int8 ({len(linears)} of {len(linears)} linear layers)",
            "",
            {n: "int8 dynamic" for n in linears},
        )
    # each layer's own error on the inputs it really sees, then the costliest stay float32:
    # the fewest that fit (a binary search, each step one run over the sample)
    cost = _layer_errors(module, linears, accuracy_of)
    order = sorted(linears, key=lambda n: cost[n])  # cheapest first
    lo, hi, best = 0, len(order) - 1, None
    while lo <= hi:
        k = (lo + hi + 1) // 2
        candidate = dynamic_int8(module, order[:k])
        if k and 1 - accuracy_of(candidate) <= tolerance:
            best, lo = (k, candidate), k + 1
        else:
            hi = k - 1
    if best is None:
        return module, before, f"int8 on any linear layer loses more than {tolerance:.2%}", {}
    k, candidate = best
    return (
        candidate,
        f"{prefix}int8 ({k} of {len(linears)} linear layers; the rest float32)",
        f"{len(linears) - k} layers stay float32 to keep the loss within {tolerance:.2%}",
        {n: ("int8 dynamic" if n in order[:k] else "float32") for n in linears},
    )


def _layer_errors(module: nn.Module, names: list[str], run: Callable[[nn.Module], Any]) -> dict[str, float]:
    """Relative output error of each linear layer quantized alone, on the activations the
    sample sends it (captured in one run of the float32 module)."""
    import warnings

    from torch.ao.quantization import per_channel_dynamic_qconfig

    seen: dict[str, torch.Tensor] = {}

    def keep(name: str) -> Callable[..., None]:
        def hook(_m: nn.Module, inp: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:  # None: output unchanged
            if name not in seen:
                seen[name] = inp[0].detach().reshape(-1, inp[0].shape[-1])[:4096].clone()

        return hook

    hooks = [module.get_submodule(n).register_forward_hook(keep(n)) for n in names]
    try:
        run(module)
    finally:
        for h in hooks:
            h.remove()
    errors = {}
    for n in names:
        layer = module.get_submodule(n)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            q = torch.ao.quantization.quantize_dynamic(
                nn.Sequential(copy.deepcopy(layer)), {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8
            )
        x = seen.get(n)
        if x is None:  # never reached by this sample: costs nothing measurable
            errors[n] = 0.0
            continue
        with torch.inference_mode():
            exact, approx = layer(x), q(x)
        errors[n] = float((approx - exact).norm() / exact.norm().clamp(min=1e-12))
    return errors


def _get(module: nn.Module, name: str) -> nn.Module:
    return module.get_submodule(name)


def dynamic_int8(module: nn.Module, names: list[str]) -> nn.Module:
    """A copy of `module` with the Linear layers `names` dynamically quantized to int8 (per
    channel), and its large embedding tables stored int8."""
    import warnings

    from torch.ao.quantization import per_channel_dynamic_qconfig

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(module).eval(), {n: per_channel_dynamic_qconfig for n in names}, dtype=torch.qint8
        )
    return compress.quantize_embeddings(out)


def _weight_only(module: nn.Module, names: list[str]) -> nn.Module:
    out = copy.deepcopy(module).eval()
    for n in names:
        parent, _, attr = n.rpartition(".")
        layer = out.get_submodule(n)
        if not isinstance(layer, nn.Linear):
            raise TypeError(f"{n} is a {type(layer).__name__}, not a Linear layer")
        setattr(out.get_submodule(parent) if parent else out, attr, compress.WeightOnlyLinear(layer, 8))
    return compress.quantize_embeddings(out)
