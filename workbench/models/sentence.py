"""The recipe a sentence-transformers directory writes down for its embeddings.

A directory saved by sentence-transformers lists its steps in `modules.json`: a Transformer
(where the transformers checkpoint lives and `sentence_bert_config.json`'s `max_seq_length`
and `do_lower_case`), a Pooling (`config.json`: cls, max, mean or mean_sqrt_len_tokens, or
several concatenated), optional Dense layers and an optional Normalize.
`config_sentence_transformers.json` may name a default prompt put before every text. Reading
the recipe here (instead of assuming mean pooling, L2 normalisation and 128 tokens) makes the
engine's vectors the ones sentence-transformers gives for the same directory.

Example: all-MiniLM-L6-v2 lists Transformer, Pooling, Normalize; its recipe is 256 tokens,
pooling ('mean',), no Dense step, normalize=True, no prompt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from workbench.errors import ModelLoadError

#: the pooling modes the engine computes, in sentence-transformers' legacy concatenation order
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens")
_LEGACY_POOLING = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
_ACTIVATIONS = {
    "Identity": torch.nn.Identity,
    "Tanh": torch.nn.Tanh,
    "ReLU": torch.nn.ReLU,
    "GELU": torch.nn.GELU,
    "Sigmoid": torch.nn.Sigmoid,
}


@dataclass(frozen=True)
class Dense:
    """A Dense step: activation(x @ weight.T + bias)."""

    weight: torch.Tensor  # (out, in)
    bias: torch.Tensor | None
    activation: str  # a key of _ACTIVATIONS

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(device=x.device, dtype=x.dtype)
        b = self.bias.to(device=x.device, dtype=x.dtype) if self.bias is not None else None
        return _ACTIVATIONS[self.activation]()(torch.nn.functional.linear(x, w, b))


@dataclass(frozen=True)
class Recipe:
    transformer_dir: Path
    max_length: int | None  # sentence_bert_config.json's max_seq_length, when it has one
    lowercase: bool
    pooling: tuple[str, ...]
    dense: tuple[Dense, ...]
    normalize: bool
    prompt: str  # the default prompt, '' for none


def read(directory: Path) -> Recipe | None:
    """The recipe of a sentence-transformers directory; None for a plain transformers one."""
    listing = directory / "modules.json"
    if not listing.exists():
        return None
    steps = _json(listing)
    if not isinstance(steps, list) or not steps:
        raise ModelLoadError(f"{listing} does not list any modules")
    kinds = [str(s.get("type", "")).rsplit(".", 1)[-1] for s in steps]
    paths = [directory / str(s.get("path", "")) for s in steps]
    for kind, path in zip(kinds, paths):
        if kind not in ("Transformer", "Pooling", "Dense", "Normalize"):
            raise ModelLoadError(
                f"{directory.name}: sentence-transformers step {kind or '?'} ({path.name or 'root'}) cannot be run "
                "by the engine (it runs Transformer, Pooling, Dense, Normalize)"
            )
    if kinds[:2] != ["Transformer", "Pooling"] or "Normalize" in kinds[:-1]:
        raise ModelLoadError(
            f"{directory.name}: modules.json lists {', '.join(kinds)}; the engine runs Transformer, Pooling, "
            "then Dense steps and an optional Normalize last"
        )
    bert = paths[0] / "sentence_bert_config.json"
    bert_config = _json(bert) if bert.exists() else {}
    pooling, include_prompt = _pooling(paths[1])
    prompt = _default_prompt(directory)
    if prompt and not include_prompt:
        raise ModelLoadError(
            f"{directory.name}: its pooling leaves the default prompt out (include_prompt = false), "
            "which the engine does not do"
        )
    max_seq = bert_config.get("max_seq_length")
    return Recipe(
        transformer_dir=paths[0],
        max_length=int(max_seq) if max_seq else None,
        lowercase=bool(bert_config.get("do_lower_case", False)),
        pooling=pooling,
        dense=tuple(_dense(p) for k, p in zip(kinds, paths) if k == "Dense"),
        normalize=kinds[-1] == "Normalize",
        prompt=prompt,
    )


def pool(hidden: torch.Tensor, mask: torch.Tensor, modes: tuple[str, ...]) -> torch.Tensor:
    """Token vectors (batch, tokens, dim) to sentence vectors (batch, dim * len(modes)), as
    sentence-transformers' Pooling computes them (padding excluded by `mask`)."""
    out = []
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    for mode in modes:
        if mode == "cls":  # the first real token (padding may be on the left)
            first = mask.to(torch.int).argmax(dim=1)
            out.append(hidden[torch.arange(hidden.shape[0], device=hidden.device), first])
        elif mode == "max":
            out.append(hidden.masked_fill(weights == 0, float("-inf")).max(dim=1).values)
        else:
            counts = weights.sum(1).clamp(min=1e-9)
            total = (hidden * weights).sum(1)
            out.append(total / (counts if mode == "mean" else counts.sqrt()))
    return torch.cat(out, dim=-1) if len(out) > 1 else out[0]


def _pooling(path: Path) -> tuple[tuple[str, ...], bool]:
    config = _json(path / "config.json") if (path / "config.json").exists() else {}
    mode = config.get("pooling_mode")
    if mode is None:  # sentence-transformers before v5: one boolean per mode
        modes = tuple(m for key, m in _LEGACY_POOLING.items() if config.get(key)) or ("mean",)
    else:
        modes = (mode,) if isinstance(mode, str) else tuple(mode)
    unknown = [m for m in modes if m not in POOLING_MODES]
    if unknown:
        raise ModelLoadError(
            f"{path.parent.name}: pooling mode {unknown[0]!r} is not supported (supported: {', '.join(POOLING_MODES)})"
        )
    return modes, bool(config.get("include_prompt", True))


def _dense(path: Path) -> Dense:
    from safetensors.torch import load_file

    config = _json(path / "config.json")
    weights = path / "model.safetensors"
    if not weights.exists():
        raise ModelLoadError(f"{path.name}: its Dense step has no model.safetensors (pickle weights are refused)")
    activation = str(config.get("activation_function", "torch.nn.modules.activation.Tanh"))
    kind = activation.rsplit(".", 1)[-1]
    if not activation.startswith("torch.") or kind not in _ACTIVATIONS:
        raise ModelLoadError(
            f"{path.name}: Dense activation {activation!r} is not supported ({', '.join(_ACTIVATIONS)})"
        )
    tensors = load_file(str(weights))
    bias = tensors.get("linear.bias") if config.get("bias", True) else None
    return Dense(tensors["linear.weight"].float(), bias.float() if bias is not None else None, kind)


def _default_prompt(directory: Path) -> str:
    path = directory / "config_sentence_transformers.json"
    if not path.exists():
        return ""
    config = _json(path)
    name = config.get("default_prompt_name")
    return str((config.get("prompts") or {}).get(name, "")) if name else ""


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {path.parent.name}/{path.name}: {exc}") from None
