"""A small multi-layer perceptron and its safetensors file format.

The architecture lives in the safetensors metadata (layer widths, activation, task,
labels), so an MLP file is self-describing and loads without pickle.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, safe_open, save_file

ARCH = "workbench.mlp"
_ACTIVATIONS = {"relu": torch.nn.ReLU, "gelu": torch.nn.GELU, "tanh": torch.nn.Tanh}


class MLP(torch.nn.Sequential):
    """Linear layers with an activation between them: widths (in, hidden..., out)."""

    def __init__(self, widths: list[int], activation: str = "relu"):
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, not {activation!r}")
        layers: list[torch.nn.Module] = []
        for i, (a, b) in enumerate(zip(widths, widths[1:])):
            layers.append(torch.nn.Linear(a, b))
            if i < len(widths) - 2:
                layers.append(_ACTIVATIONS[activation]())
        super().__init__(*layers)
        self.widths = list(widths)
        self.activation = activation


def save(model: MLP, path: str | Path, *, task: str | None = None, labels: list[str] | None = None) -> None:
    """Write the MLP; without a task, the loader's default applies (one output: regress)."""
    meta = {
        "arch": ARCH,
        "widths": json.dumps(model.widths),
        "activation": model.activation,
    }
    if task:
        meta["task"] = task
    if labels:
        meta["labels"] = json.dumps(labels)
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata=meta)


def metadata(path: str | Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def is_mlp_file(path: str | Path) -> bool:
    return metadata(path).get("arch") == ARCH


def load(path: str | Path) -> tuple[MLP, dict[str, Any]]:
    """The MLP and its options (task, labels, and its widths: no probe needed) from a file
    written by `save`."""
    return from_state(metadata(path), load_file(str(path)))


def from_state(meta: dict[str, str], state_dict: dict[str, torch.Tensor]) -> tuple[MLP, dict[str, Any]]:
    """The MLP and its options from a file's metadata and its tensors (read from the file, or
    from the database's blocks)."""
    widths = json.loads(meta["widths"])
    model = MLP(widths, meta.get("activation", "relu"))
    model.load_state_dict(state_dict)
    options: dict[str, Any] = {"input_dim": widths[0], "output_dim": widths[-1]}
    if "task" in meta:
        options["task"] = meta["task"]
    if "labels" in meta:
        options["labels"] = json.loads(meta["labels"])
    return model.eval(), options
