"""Train the built-in `digits` classifier on scikit-learn's bundled 8x8 digits.

Reproducible: fixed seed, full-batch training, deterministic torch ops. Rows whose id is a
multiple of 5 are held out (the same split as `WHERE id % 5 = 0` on the `digits` table),
so accuracy can be checked in SQL on data the model never saw.

    python -m workbench.models.train_digits          # rewrites weights/digits.safetensors
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from workbench.models import mlp

WEIGHTS = Path(__file__).with_name("weights") / "digits.safetensors"
WIDTHS = [64, 128, 64, 10]
PIXEL_MAX = 16.0  # sklearn's digits use 0..16 grey levels


def held_out(ids: np.ndarray) -> np.ndarray:
    return ids % 5 == 0


def train(path: Path = WEIGHTS, epochs: int = 300, seed: int = 0) -> float:
    """Train, save to `path` and return held-out accuracy."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / PIXEL_MAX
    y = torch.tensor(data.target, dtype=torch.long)
    test = torch.from_numpy(held_out(np.arange(len(y))))
    torch.manual_seed(seed)
    model = mlp.MLP(WIDTHS)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-4)
    for _ in range(epochs):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x[~test]), y[~test])
        loss.backward()
        opt.step()
    # Fold the 1/16 pixel scaling into the first layer: the saved model takes raw pixels,
    # exactly as they are stored in the `digits` table.
    with torch.no_grad():
        first = model[0]
        assert isinstance(first, torch.nn.Linear)
        first.weight.div_(PIXEL_MAX)
        accuracy = (model(x[test] * PIXEL_MAX).argmax(-1) == y[test]).float().mean().item()
    path.parent.mkdir(parents=True, exist_ok=True)
    mlp.save(model, path, task="classify")
    return accuracy


if __name__ == "__main__":
    acc = train(Path(sys.argv[1]) if len(sys.argv) > 1 else WEIGHTS)
    print(f"held-out accuracy {acc:.4f} -> {WEIGHTS if len(sys.argv) < 2 else sys.argv[1]}")
