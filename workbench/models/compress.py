"""Post-training compression of a model's linear layers, and what it costs in accuracy.

- `quantize(module, 'int8')`: on the CPU, torch's dynamic int8 quantization (int8 weights with
  one scale per output channel, activations quantized per batch, int8 matrix products); where
  that kernel does not exist (CUDA) weight-only int8 with per-channel scales.
- `quantize(module, 'int4')`: weight-only int4, two weights per byte, one scale per output
  channel; the weights are dequantized per call (smaller, not faster).
- `low_rank(module, ranks)`: each chosen `nn.Linear` W (out x in) becomes two, of rank r, from
  the truncated SVD W ~ (U_r S_r^1/2)(S_r^1/2 V_r^T); `choose_ranks` picks r per layer, the
  fewest parameters whose validation loss stays within the tolerance.
- `accuracy(reference, candidate, task)`: mean cosine similarity of embeddings, or the share
  of classifications that agree, on the same validation inputs.

The input module is never changed: each function returns a new one.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

PRECISIONS = ("float32", "int8", "int4")


# -- quantization ------------------------------------------------------------------------
class WeightOnlyLinear(nn.Module):
    """int8 or int4 weights (per output channel scale), dequantized at each call."""

    qweight: torch.Tensor  # buffers (register_buffer), declared for type checkers
    scale: torch.Tensor

    def __init__(self, linear: nn.Linear, bits: int):
        super().__init__()
        w = linear.weight.detach().float()
        levels = 2 ** (bits - 1) - 1  # 127 or 7: symmetric, zero stays exact
        scale = w.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / levels
        q = torch.round(w / scale).clamp(-levels, levels).to(torch.int8)
        self.bits, self.in_features, self.out_features = bits, linear.in_features, linear.out_features
        if bits == 4:  # two signed nibbles per byte
            flat = (q.reshape(-1) + 8).to(torch.uint8)
            if flat.numel() % 2:
                flat = torch.cat([flat, flat.new_zeros(1)])
            q = (flat[0::2] | (flat[1::2] << 4)).contiguous()
        self.register_buffer("qweight", q)
        self.register_buffer("scale", scale.to(torch.float32))
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    def weight(self) -> torch.Tensor:
        q = self.qweight
        if self.bits == 4:
            n = self.in_features * self.out_features
            q = torch.stack([(q & 0x0F), (q >> 4)], dim=1).reshape(-1)[:n].to(torch.int8) - 8
            q = q.reshape(self.out_features, self.in_features)
        return q.to(self.scale.dtype) * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight().to(x.dtype), None if self.bias is None else self.bias.to(x.dtype))


def _replace_linears(module: nn.Module, make: Callable[[str, nn.Linear], nn.Module | None]) -> nn.Module:
    for name, child in list(module.named_modules()):
        for attr, sub in list(child.named_children()):
            if isinstance(sub, nn.Linear):
                full = f"{name}.{attr}" if name else attr
                new = make(full, sub)
                if new is not None:
                    setattr(child, attr, new)
    return module


def quantize(module: nn.Module, precision: str, device: str = "cpu") -> nn.Module:
    """A copy of `module` with its `nn.Linear` layers in `precision` ('int8' or 'int4')."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    out = copy.deepcopy(module).eval()
    if precision == "float32":
        return out
    if precision == "int8" and device == "cpu":
        with warnings.catch_warnings():  # torch marks the eager API as moving to torchao; it works
            warnings.simplefilter("ignore")
            return torch.ao.quantization.quantize_dynamic(out, {nn.Linear}, dtype=torch.qint8)
    bits = 8 if precision == "int8" else 4
    return _replace_linears(out, lambda _n, lin: WeightOnlyLinear(lin, bits))


# -- low rank ----------------------------------------------------------------------------
class LowRankLinear(nn.Module):
    def __init__(self, linear: nn.Linear, rank: int, svd: tuple[torch.Tensor, ...] | None = None):
        super().__init__()
        u, s, vh = svd if svd is not None else torch.linalg.svd(linear.weight.detach().float(), full_matrices=False)
        root = s[:rank].sqrt()
        self.down = nn.Linear(linear.in_features, rank, bias=False)
        self.up = nn.Linear(rank, linear.out_features, bias=linear.bias is not None)
        with torch.no_grad():
            self.down.weight.copy_(root[:, None] * vh[:rank])
            self.up.weight.copy_(u[:, :rank] * root[None, :])
            if linear.bias is not None:
                self.up.bias.copy_(linear.bias)
        self.rank = rank
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))


def linear_layers(module: nn.Module) -> dict[str, nn.Linear]:
    return {n: m for n, m in module.named_modules() if isinstance(m, nn.Linear)}


def break_even_rank(linear: nn.Linear) -> int:
    """Below this rank the two factors hold fewer parameters than the layer."""
    return (linear.in_features * linear.out_features) // (linear.in_features + linear.out_features)


def low_rank(module: nn.Module, ranks: dict[str, int]) -> nn.Module:
    """A copy with each layer named in `ranks` factored at its rank (others unchanged)."""
    out = copy.deepcopy(module).eval()
    return _replace_linears(out, lambda name, lin: LowRankLinear(lin, ranks[name]) if name in ranks else None)


def ranks_for_fraction(module: nn.Module, fraction: float, names: list[str] | None = None) -> dict[str, int]:
    """Ranks that keep `fraction` of each layer's parameters."""
    layers = linear_layers(module)
    return {n: max(1, int(fraction * break_even_rank(layers[n]))) for n in (names or layers)}


def ranks_for_energy(module: nn.Module, energy: float, names: list[str]) -> dict[str, int]:
    """Per layer, the smallest rank keeping `energy` of the squared singular values, if it
    saves parameters (layers where it would not are left whole)."""
    layers = linear_layers(module)
    out = {}
    for n in names:
        s = torch.linalg.svdvals(layers[n].weight.detach().float())
        share = (s**2).cumsum(0) / (s**2).sum()
        r = int(torch.searchsorted(share, torch.tensor(energy)).item()) + 1
        if r < break_even_rank(layers[n]):
            out[n] = r
    return out


@dataclass(frozen=True)
class RankChoice:
    ranks: dict[str, int]
    energy: float
    loss: float  # 1 - accuracy on the validation sample
    params_kept: float  # share of the linear layers' parameters left


def choose_ranks(
    module: nn.Module,
    loss_of: Callable[[nn.Module], float],
    tolerance: float,
    names: list[str] | None = None,
    energies: tuple[float, ...] = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999),
) -> RankChoice:
    """The fewest parameters whose validation loss is within `tolerance`: a search over the
    share of spectral energy kept, which sets each layer's rank by its own spectrum."""
    layers = linear_layers(module)
    names = names or list(layers)
    total = sum(layers[n].weight.numel() for n in names)
    best = RankChoice({}, 1.0, 0.0, 1.0)  # nothing factored: always within tolerance
    lo, hi = 0, len(energies) - 1
    while lo <= hi:  # loss falls as energy rises: binary search for the lowest energy that fits
        mid = (lo + hi) // 2
        ranks = ranks_for_energy(module, energies[mid], names)
        loss = loss_of(low_rank(module, ranks)) if ranks else 0.0
        if loss <= tolerance:
            kept = sum(r * (layers[n].in_features + layers[n].out_features) for n, r in ranks.items())
            kept += sum(layers[n].weight.numel() for n in names if n not in ranks)
            best = RankChoice(ranks, energies[mid], loss, kept / total)
            hi = mid - 1
        else:
            lo = mid + 1
    return best


# -- sizes and accuracy ------------------------------------------------------------------
def size_bytes(module: nn.Module) -> int:
    """Bytes of everything the module holds (packed quantized weights included)."""
    total = 0
    for value in module.state_dict().values():
        if isinstance(value, torch.Tensor):
            total += value.numel() * value.element_size()
        elif isinstance(value, tuple):  # dynamic-quantized Linear: (packed weight, bias)
            for t in value:
                if isinstance(t, torch.Tensor):
                    total += t.numel() * t.element_size()
    return total


def accuracy(reference: np.ndarray, candidate: np.ndarray, task: str) -> float:
    """Mean cosine similarity (embeddings) or agreement share (labels) of two output sets."""
    if task == "embed":
        a = reference / np.maximum(np.linalg.norm(reference, axis=1, keepdims=True), 1e-12)
        b = candidate / np.maximum(np.linalg.norm(candidate, axis=1, keepdims=True), 1e-12)
        return float((a * b).sum(axis=1).mean())
    return float((np.asarray(reference) == np.asarray(candidate)).mean())


class QuantizedEmbedding(nn.Module):
    """An embedding table stored int8 with one scale per row; rows dequantized on lookup."""

    qweight: torch.Tensor  # buffers (register_buffer), declared for type checkers
    scale: torch.Tensor

    def __init__(self, embedding: nn.Embedding):
        super().__init__()
        w = embedding.weight.detach().float()
        scale = w.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127
        self.register_buffer("qweight", torch.round(w / scale).clamp(-127, 127).to(torch.int8))
        self.register_buffer("scale", scale)
        self.padding_idx = embedding.padding_idx
        self.num_embeddings, self.embedding_dim = embedding.num_embeddings, embedding.embedding_dim

    @property
    def weight(self) -> torch.Tensor:  # some models read the table directly (tied output layers)
        return self.qweight.float() * self.scale

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.qweight[ids].float() * self.scale[ids]


def quantize_embeddings(module: nn.Module, min_rows: int = 1024) -> nn.Module:
    """Store large embedding tables (vocabularies) int8 per row, in place."""
    for child in list(module.modules()):
        for attr, sub in list(child.named_children()):
            if isinstance(sub, nn.Embedding) and sub.num_embeddings >= min_rows:
                setattr(child, attr, QuantizedEmbedding(sub))
    return module
