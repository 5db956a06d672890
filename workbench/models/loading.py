"""Turn a path or a Python object into a runnable `Model`, safely.

Safe by default: weights load from safetensors only; pickle-based files (.bin, .pt, .pkl,
.pth) are refused unless the user passes `allow_pickle = true`; configs that ask for remote
code are refused; a model hub is reached only for a hub name (`hf://org/name`, models/hub.py).
"""

from __future__ import annotations

import copy
import importlib
import json
from pathlib import Path
from typing import Any

from workbench.models import offline  # noqa: F401  (before torch and transformers: they stay local)

# isort: split
import torch

from workbench.errors import ModelLoadError
from workbench.models import mlp, sentence
from workbench.models.base import Model
from workbench.models.tensor import TensorModel
from workbench.models.text import text_model

PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}
TASKS = ("embed", "classify", "regress", "zero_shot", "ner", "rerank", "image_classify", "image_embed", "generate")
#: tasks whose adapter lives in a module of its own: (module, function), called with
#: (name, directory, options, recipe) for a transformers directory; returns a Model
TASK_LOADERS: dict[str, tuple[str, str]] = {
    "zero_shot": ("workbench.models.zero_shot", "load"),
    "ner": ("workbench.models.ner", "load"),
    "rerank": ("workbench.models.rerank", "load"),
    "image_classify": ("workbench.models.images", "load"),
    "image_embed": ("workbench.models.images", "load"),
    "generate": ("workbench.models.generate", "load"),
}
#: options every model accepts; adapters take the ones that apply
KNOWN_OPTIONS = {
    "task",
    "batch_size",
    "max_length",
    "normalize",
    "labels",
    "input_dim",
    "output_dim",
    "allow_pickle",
    "allow_inf",
    "device",
    "deterministic",
    "cache",
    "cache_normalize",
    "cache_threshold",
    "cache_max_mb",
    "precision",
    "max_accuracy_loss",
    "low_rank",
    "offload",
    "revision",  # hub models: a branch, tag or commit
    "runtime",  # 'auto' | 'torch' | 'onnx' (models/runtimes.py)
    "storage",  # 'file' | 'database' (workbench/storage: the weights as tensor blocks in the database)
    "validate_on",  # a query whose first column is the validation sample (accuracy-aware dedup)
}
STORAGE = ("file", "database")
#: tasks a model stored in the database loads as (the generic transformers path, and MLP files)
STORED_TASKS = ("embed", "classify", "regress")


def task_options(task: str | None) -> frozenset[str]:
    """Options a task's own module takes besides KNOWN_OPTIONS (its `OPTIONS`)."""
    if task not in TASK_LOADERS:
        return frozenset()
    return frozenset(getattr(importlib.import_module(TASK_LOADERS[task][0]), "OPTIONS", ()))


def check_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    task = options.get("task")
    if task is not None and task not in TASKS:
        raise ModelLoadError(f"model '{name}': task must be one of {', '.join(TASKS)}, not {task!r}")
    # (no task named: the directory's architecture may imply one, whose options then apply)
    implied = [task] if task is not None else list(TASK_LOADERS)
    known = KNOWN_OPTIONS.union(*(task_options(t) for t in implied))
    unknown = sorted(set(options) - known)
    if unknown:
        raise ModelLoadError(f"model '{name}': unknown option {unknown[0]!r} (known: {', '.join(sorted(known))})")
    storage = options.get("storage", "file")
    if storage not in STORAGE:
        raise ModelLoadError(f"model '{name}': storage must be 'file' or 'database', not {storage!r}")
    validate_on = options.get("validate_on")
    if validate_on is not None and (not isinstance(validate_on, str) or not validate_on.strip()):
        raise ModelLoadError(f"model '{name}': validate_on must be a query, e.g. 'SELECT body FROM pydoc LIMIT 64'")
    runtime = str(options.get("runtime", "auto")).lower()
    if runtime not in ("auto", "torch", "onnx"):
        raise ModelLoadError(f"model '{name}': runtime must be 'auto', 'torch' or 'onnx', not {runtime!r}")
    bs = options.get("batch_size")
    if bs is not None and (not isinstance(bs, int) or isinstance(bs, bool) or bs < 1):
        raise ModelLoadError(f"model '{name}': batch_size must be a positive integer, not {bs!r}")
    if isinstance(options.get("labels"), str):
        options = {**options, "labels": [s.strip() for s in options["labels"].split(",")]}
    labels = options.get("labels")
    if labels is not None:
        if not isinstance(labels, (list, tuple)) or not labels or not all(isinstance(x, str) and x for x in labels):
            raise ModelLoadError(f"model '{name}': labels must be a list of names, e.g. labels = 'neg,pos'")
        if len(set(labels)) != len(labels):
            raise ModelLoadError(f"model '{name}': labels must be distinct, not {', '.join(labels)}"[:300])
        options = {**options, "labels": list(labels)}
    allow_inf = options.get("allow_inf")
    if isinstance(allow_inf, str) and allow_inf.lower() in ("true", "false"):
        options = {**options, "allow_inf": allow_inf.lower() == "true"}
    elif allow_inf is not None and not isinstance(allow_inf, bool):
        raise ModelLoadError(f"model '{name}': allow_inf must be true or false, not {allow_inf!r}")
    from workbench.models import offloaded, variants

    try:
        variants.spec_of(options)
        offloaded.mode_of(options)
    except ModelLoadError as exc:
        raise ModelLoadError(f"model '{name}': {exc}") from None
    return options


def from_path(
    name: str, path: str, options: dict[str, Any], state_dict: dict[str, torch.Tensor] | None = None
) -> Model:
    """The model at `path`. With `state_dict` (a model stored in the database), `path` is a
    directory of its small files (config, tokenizer) and the weights are the given tensors."""
    p = Path(path).expanduser()
    if state_dict is not None:
        return _from_transformers_dir(name, p, options, state_dict)
    if not p.exists():
        raise ModelLoadError(f"model '{name}': no such file or directory: {path}")
    try:
        if p.is_dir():
            return _from_transformers_dir(name, p, options)
        if p.suffix == ".safetensors":
            if mlp.is_mlp_file(p):
                module, saved = mlp.load(p)
                return _tensor_model(name, module, {**saved, **options})
            if (p.parent / "config.json").exists():
                return _from_transformers_dir(name, p.parent, options)
            raise ModelLoadError(
                f"model '{name}': {path} has no architecture: save it with "
                "workbench.models.mlp.save, or put a transformers config.json beside it"
            )
        if p.suffix in PICKLE_SUFFIXES:
            return _from_pickle(name, p, options)
        if p.suffix == ".onnx":
            from workbench.models import onnx_graph

            return onnx_graph.load(name, p, options)
    except ModelLoadError:
        raise
    except Exception as exc:  # a corrupt file, a bad config: say which file and why
        raise ModelLoadError(f"model '{name}': cannot load {path}: {_short(exc)}") from None
    raise ModelLoadError(
        f"model '{name}': unsupported file {p.name} (use a transformers directory, a .safetensors or an .onnx file)"
    )


def from_python(name: str, obj: Any, options: dict[str, Any]) -> Model:
    """A model from a notebook object: nn.Module, (model, tokenizer), or a `Model`.

    The object is used as it is, never changed: its modules run in eval mode for each call
    and are put back in the mode they had (models/modes.py)."""
    if isinstance(obj, Model):
        if "allow_inf" in options:  # on a copy: the user's adapter keeps its own setting
            obj = copy.copy(obj)
            obj.allow_inf = bool(options["allow_inf"])
        return obj
    if options.get("task") in ("image_classify", "image_embed"):
        from workbench.models import images

        return images.from_python(name, obj, options)
    if isinstance(obj, (tuple, list)) and len(obj) == 2:
        model, tokenizer = obj
        if not callable(tokenizer) or not isinstance(model, torch.nn.Module):
            raise ModelLoadError(f"model '{name}': expected (transformers model, tokenizer)")
        return text_model(name, model, tokenizer, options)
    if isinstance(obj, dict) and {"model", "tokenizer"} <= set(obj):
        return text_model(name, obj["model"], obj["tokenizer"], options)
    if isinstance(obj, torch.nn.Module):
        if hasattr(obj, "config") and hasattr(obj.config, "model_type"):
            raise ModelLoadError(
                f"model '{name}': a transformers model needs its tokenizer: register (model, tokenizer)"
            )
        return _tensor_model(name, obj, options)
    raise ModelLoadError(
        f"model '{name}': cannot use a {type(obj).__name__} as a model "
        "(expected a torch nn.Module or a (model, tokenizer) pair)"
    )


def _tensor_model(name: str, module: torch.nn.Module, options: dict[str, Any]) -> TensorModel:
    keep = ("task", "labels", "input_dim", "output_dim", "batch_size", "deterministic", "allow_inf")
    try:
        return TensorModel(module, **{k: v for k, v in options.items() if k in keep})
    except ModelLoadError as exc:
        raise ModelLoadError(f"model '{name}': {exc}") from None


def from_mlp_state(
    name: str, metadata: dict[str, str], state_dict: dict[str, torch.Tensor], options: dict[str, Any]
) -> Model:
    """An MLP stored in the database: its architecture from the file's metadata, its weights given."""
    try:
        module, saved = mlp.from_state(metadata, state_dict)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"model '{name}': cannot build the stored MLP: {_short(exc)}") from None
    return _tensor_model(name, module, {**saved, **options})


def _from_transformers_dir(
    name: str, d: Path, options: dict[str, Any], state_dict: dict[str, torch.Tensor] | None = None
) -> Model:
    try:
        recipe = sentence.read(d)
    except ModelLoadError as exc:
        raise ModelLoadError(f"model '{name}': {exc}") from None
    if recipe is not None:
        d = recipe.transformer_dir  # (the directory itself, or an older layout's 0_Transformer/)
    config_file = d / "config.json"
    if not config_file.exists():
        raise ModelLoadError(f"model '{name}': {d} has no config.json (not a transformers model directory)")
    config = json.loads(config_file.read_text())
    if config.get("auto_map"):
        raise ModelLoadError(
            f"model '{name}': {d} asks to run its own Python code (auto_map); remote code is never run"
        )
    has_safetensors = state_dict is not None or any(d.glob("*.safetensors"))
    allow_pickle = bool(options.get("allow_pickle"))
    if not has_safetensors and not allow_pickle:
        raise ModelLoadError(
            f"model '{name}': {d} has no .safetensors weights; pickle weights are refused "
            "unless you add WITH (allow_pickle = true) and trust the file"
        )
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a notebook cell should show our output, not theirs

    archs = config.get("architectures") or []
    has_head = any("SequenceClassification" in a for a in archs)
    outputs = len(config.get("id2label") or {}) or int(config.get("num_labels", 2))
    task = options.get("task") or _default_task(archs, has_head, outputs)
    from workbench.models import images

    if task == "embed" and images.is_dual_encoder(archs):  # CLIP-like: its text tower, in the image space
        return images.load_text(name, d, {**options, "task": task}, recipe)
    if state_dict is not None and task not in STORED_TASKS:
        raise ModelLoadError(
            f"model '{name}': storage = 'database' serves tasks {', '.join(STORED_TASKS)}, "
            f"not {task} (keep it in its file)"
        )
    if task in TASK_LOADERS:
        module, function = TASK_LOADERS[task]
        load = getattr(importlib.import_module(module), function)
        return load(name, d, {**options, "task": task}, recipe)
    if task in ("classify", "regress") and archs and not has_head:
        # transformers would add a randomly initialised head: outputs that mean nothing
        raise ModelLoadError(
            f"model '{name}': {d.name} is a {archs[0]} without a classification head; it can only embed (task='embed')"
        )
    cls = AutoModelForSequenceClassification if task in ("classify", "regress") else AutoModel
    if state_dict is not None:  # weights from the database's blocks, no weights file
        from transformers import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING, MODEL_MAPPING, AutoConfig

        config_obj = AutoConfig.from_pretrained(str(d), trust_remote_code=False, local_files_only=True)
        mapping = MODEL_MAPPING if cls is AutoModel else MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING
        # (an Auto class needs a path; the architecture's own class takes a state dict alone)
        arch: Any = mapping[type(config_obj)]
        model = arch.from_pretrained(None, config=config_obj, state_dict=state_dict)
    else:
        model = cls.from_pretrained(
            str(d),
            use_safetensors=not allow_pickle or has_safetensors,
            trust_remote_code=False,
            local_files_only=True,
        )
    tokenizer = AutoTokenizer.from_pretrained(str(d), trust_remote_code=False, local_files_only=True)
    return text_model(name, model.eval(), tokenizer, {**options, "task": task}, recipe)


def _default_task(archs: list[str], has_head: bool, outputs: int) -> str:
    """The task a directory's architecture implies, when the user names none."""
    if any("TokenClassification" in a for a in archs):
        return "ner"
    if any("ImageClassification" in a for a in archs):
        return "image_classify"
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        return "generate"  # a decoder language model continues text
    if not has_head:
        return "embed"
    return "regress" if outputs == 1 else "classify"


def _from_pickle(name: str, p: Path, options: dict[str, Any]) -> Model:
    if not options.get("allow_pickle"):
        raise ModelLoadError(
            f"model '{name}': {p.name} is a pickle file, which can run arbitrary code when "
            "loaded; refused unless you add WITH (allow_pickle = true) and trust the file"
        )
    obj = torch.load(str(p), map_location="cpu", weights_only=False)
    if not isinstance(obj, torch.nn.Module):
        raise ModelLoadError(f"model '{name}': {p.name} holds a {type(obj).__name__}, not a torch module")
    return _tensor_model(name, obj, options)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
