"""ONNX graphs run with onnxruntime (being written)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench.errors import ModelLoadError
from workbench.models.base import Model


def load(name: str, path: Path, options: dict[str, Any]) -> Model:
    raise ModelLoadError(f"model '{name}': ONNX models are not supported yet")
