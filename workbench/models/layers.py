"""The layer chain of a torch module, when it is one the relational engine can run.

Relation-centric execution compiles a model to SQL layer by layer, so it needs the model
as a straight chain of supported layers: an Embedding first (its lookup becomes a join on
the input id), then Linear (with or without bias), ReLU, GELU, Tanh, Identity and Dropout
(a no-op: the engine runs models in eval mode, models/modes.py). Anything else (attention,
convolutions, a custom forward) makes `chain` return the reason it cannot, which EXPLAIN shows.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import numpy as np
import torch

_ACTIVATIONS = {torch.nn.ReLU: "relu", torch.nn.Tanh: "tanh"}
#: torch's dropout layers (every subclass of torch.nn.modules.dropout._DropoutNd)
DROPOUTS = (
    torch.nn.Dropout,
    torch.nn.Dropout1d,
    torch.nn.Dropout2d,
    torch.nn.Dropout3d,
    torch.nn.AlphaDropout,
    torch.nn.FeatureAlphaDropout,
)
# chains computed per loaded model (keyed by the object, dropped with it) and weights version
_CHAINS: weakref.WeakKeyDictionary[object, tuple[str, list[Layer], str]] = weakref.WeakKeyDictionary()
_CHAINS_LOCK = threading.Lock()


@dataclass(frozen=True)
class Linear:
    weight: np.ndarray  # (out, in) float32
    bias: np.ndarray  # (out,) float32, zeros when the layer has none

    @property
    def shape(self) -> tuple[int, int]:
        return self.weight.shape


@dataclass(frozen=True)
class Embedding:
    weight: np.ndarray  # (ids, dim) float32: row i is the vector of id i

    @property
    def shape(self) -> tuple[int, int]:
        return self.weight.shape


@dataclass(frozen=True)
class Activation:
    name: str  # relu | tanh | gelu | gelu_tanh


Layer = Linear | Embedding | Activation


def _leaves(module: torch.nn.Module) -> list[torch.nn.Module] | None:
    """Leaf modules in call order, or None when the order is not the registration order."""
    if isinstance(module, torch.nn.Sequential):
        out: list[torch.nn.Module] = []
        for child in module:
            leaves = _leaves(child)
            if leaves is None:
                return None
            out += leaves
        return out
    if type(module).forward is not torch.nn.Module.forward and not list(module.children()):
        return [module]  # a leaf layer with its own forward (Linear, ReLU...)
    return None


def chain(module: torch.nn.Module) -> tuple[list[Layer], str]:
    """(layers, '') for a supported chain, or ([], reason) when it is not one."""
    leaves = _leaves(module)
    if leaves is None:
        return [], f"{type(module).__name__} is not a Sequential chain of layers"
    layers: list[Layer] = []
    for leaf in leaves:
        if isinstance(leaf, torch.nn.Embedding):
            if layers or leaf.max_norm is not None:
                return [], "an Embedding is supported only as the first layer (and without max_norm)"
            layers.append(Embedding(np.ascontiguousarray(leaf.weight.detach().float().cpu().numpy())))
        elif isinstance(leaf, torch.nn.Linear):
            w = leaf.weight.detach().float().cpu().numpy()
            b = leaf.bias.detach().float().cpu().numpy() if leaf.bias is not None else np.zeros(w.shape[0], np.float32)
            layers.append(Linear(np.ascontiguousarray(w), np.ascontiguousarray(b)))
        elif isinstance(leaf, (torch.nn.GELU, *_ACTIVATIONS)) and (not layers or isinstance(layers[-1], Embedding)):
            return [], "an activation must follow a Linear layer"
        elif type(leaf) in _ACTIVATIONS:
            layers.append(Activation(_ACTIVATIONS[type(leaf)]))
        elif isinstance(leaf, torch.nn.GELU):
            layers.append(Activation("gelu_tanh" if leaf.approximate == "tanh" else "gelu"))
        elif isinstance(leaf, (torch.nn.Identity, *DROPOUTS)):  # whatever its mode: queries run in eval mode
            continue
        else:
            return [], f"layer {type(leaf).__name__} has no relational form (supported: Linear, ReLU, GELU, Tanh)"
    if not any(isinstance(layer, Linear) for layer in layers):
        return [], "the model has no Linear layer"
    return layers, ""


def chain_of(model: object) -> tuple[list[Layer], str]:
    """`chain` of a loaded model's module, computed once per version of its weights (the
    layers hold copies of them: planning must not copy a 200 MB model every query)."""
    module = getattr(model, "module", None)
    if module is None:
        return [], "it is not a torch layer chain"
    fingerprint = model.fingerprint()  # type: ignore[attr-defined]
    with _CHAINS_LOCK:
        cached = _CHAINS.get(model)
    if cached is None or cached[0] != fingerprint:
        layers, why = chain(module)
        cached = (fingerprint, layers, why)
        with _CHAINS_LOCK:
            _CHAINS[model] = cached
    return cached[1], cached[2]


def split_after_first_linear(module: torch.nn.Module) -> tuple[int, torch.nn.Module] | None:
    """(number of leading leaves, the rest as a module) for the hybrid paradigm: the first
    Linear layer and the activations right after it (or a leading Embedding) run
    relationally, the rest in torch."""
    leaves = _leaves(module)
    if leaves is None:
        return None
    kept = [m for m in leaves if not isinstance(m, (torch.nn.Identity, *DROPOUTS))]
    if kept and isinstance(kept[0], torch.nn.Embedding):  # the embedding lookup as a join, the rest in torch
        return (1, torch.nn.Sequential(*kept[1:])) if len(kept) > 1 else None
    if not kept or not isinstance(kept[0], torch.nn.Linear):
        return None
    n = 1
    while n < len(kept) and not isinstance(kept[n], torch.nn.Linear):
        n += 1
    if n == len(kept):
        return None  # one Linear layer only: nothing would be left for torch
    return n, torch.nn.Sequential(*kept[n:])


def macs(layers: list[Layer]) -> int:
    """Multiply-adds per input row."""
    return sum(int(np.prod(layer.shape)) for layer in layers if isinstance(layer, Linear))


def weight_bytes(module: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def first_embedding(module: torch.nn.Module) -> torch.nn.Embedding | None:
    """The Embedding a model starts with (its input is then an integer id), if any."""
    leaves = _leaves(module)
    return leaves[0] if leaves and isinstance(leaves[0], torch.nn.Embedding) else None
