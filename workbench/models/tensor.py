"""Adapter for plain torch modules over fixed-length numeric inputs (FLOAT[n] columns)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import torch

from workbench.errors import ModelError
from workbench.models.base import Model, fixed_size_list, label_score, vector_types
from workbench.models.layers import first_embedding

#: torch's dropout layers (every subclass of torch.nn.modules.dropout._DropoutNd)
_DROPOUTS = (
    torch.nn.Dropout,
    torch.nn.Dropout1d,
    torch.nn.Dropout2d,
    torch.nn.Dropout3d,
    torch.nn.AlphaDropout,
    torch.nn.FeatureAlphaDropout,
)


def _first_linear_width(module: torch.nn.Module) -> int | None:
    for layer in module.modules():
        if isinstance(layer, torch.nn.Linear):
            return int(layer.in_features)
    return None


class TensorModel(Model):
    """A torch module mapping (batch, n) float tensors to (batch, k); a module that starts
    with an Embedding maps (batch,) integer ids instead (input type BIGINT).

    task='classify': STRUCT(label, score) from argmax/softmax of the k outputs (labels from
    the `labels` option when given, else the class index); task='embed': FLOAT[k];
    task='regress': FLOAT (k must be 1).
    """

    input_kind = "tensor"
    batch_candidates = (64, 256, 1024, 4096)
    small_run_batch = "largest"

    def __init__(
        self,
        module: torch.nn.Module,
        *,
        task: str = "classify",
        labels: list[str] | None = None,
        input_dim: int | None = None,
        output_dim: int | None = None,
        batch_size: int | None = None,
        deterministic: bool = True,
    ):
        if task not in ("classify", "embed", "regress"):
            raise ValueError(f"task must be 'classify', 'embed' or 'regress', not {task!r}")
        self.module = module.eval()
        self.task = task
        self.labels = list(labels) if labels else None
        embedding = first_embedding(module)
        if embedding is not None:  # the input is an integer id
            self.input_kind = "ids"
            self.vocabulary = int(embedding.num_embeddings)
        if embedding is not None:
            self.input_dim = None
        else:
            self.input_dim = int(input_dim) if input_dim else _first_linear_width(module)
        self.batch_size = int(batch_size) if batch_size else None
        self._declared_deterministic = bool(deterministic)
        params = list(module.parameters())
        self.device = str(params[0].device) if params else "cpu"
        self.dtype = params[0].dtype if params else torch.float32
        self.output_dim = int(output_dim) if output_dim else self._probe_output_dim()

    def _probe_output_dim(self) -> int | None:
        if self.input_kind == "ids":
            probe = torch.zeros(1, dtype=torch.long, device=self.device)
        elif not self.input_dim:
            return None
        else:
            probe = torch.zeros(1, self.input_dim, dtype=self.dtype, device=self.device)
        with torch.inference_mode():
            out = self.module(probe)
        return int(out.shape[-1]) if out.dim() > 1 else 1

    @property
    def output_type(self) -> str:
        if self.task == "classify":
            return f"STRUCT(label {'VARCHAR' if self.labels else 'INTEGER'}, score FLOAT)"
        if self.task == "regress":
            return "FLOAT"
        return self._vector_types()[0]

    def arrow_output_type(self) -> pa.DataType:
        if self.task == "classify":
            return pa.struct([("label", pa.string() if self.labels else pa.int32()), ("score", pa.float32())])
        if self.task == "regress":
            return pa.float32()
        return self._vector_types()[1]

    def _vector_types(self) -> tuple[str, pa.DataType]:
        if self.output_dim is None:
            raise ModelError("the output width is unknown: give the model an input_dim or an output_dim")
        return vector_types(self.output_dim)

    def predict(self, batch: np.ndarray) -> pa.Array:
        return self.predict_with(self.module, batch, ids=self.input_kind == "ids")

    def predict_with(self, module: torch.nn.Module, batch: np.ndarray, *, ids: bool = False) -> pa.Array:
        """Outputs of `module` (the whole model, or its tail in a hybrid plan) through this
        model's head; `ids`: the batch holds integer ids (for a leading embedding)."""
        if ids:
            x = torch.from_numpy(batch).to(device=self.device, dtype=torch.long)
        else:
            x = torch.from_numpy(batch).to(device=self.device, dtype=self.dtype)
        with torch.inference_mode():
            out = module(x)
        if not isinstance(out, torch.Tensor):
            raise ModelError(f"returned {type(out).__name__}, expected a tensor")
        out = out.float()
        if out.dim() == 1:
            out = out.unsqueeze(-1)
        if out.dim() != 2 or out.shape[0] != len(batch):
            raise ModelError(f"returned shape {tuple(out.shape)} for {len(batch)} inputs; expected ({len(batch)}, k)")
        if self.task == "classify":
            score, idx = out.softmax(-1).max(-1)
            idx_np = idx.cpu().numpy()
            if self.labels:
                return label_score([self.labels[i] for i in idx_np], score.cpu().numpy(), pa.string())
            return label_score(idx_np.astype(np.int32), score.cpu().numpy(), pa.int32())
        if self.task == "regress":
            return pa.array(out[:, 0].cpu().numpy())
        return fixed_size_list(out.cpu().numpy())

    @property
    def deterministic(self) -> bool:  # type: ignore[override]
        """False when the user says so, or when dropout is active (module in training mode)."""
        sampling = any(isinstance(m, _DROPOUTS) and m.training for m in self.module.modules())
        return self._declared_deterministic and not sampling

    def fingerprint_parts(self) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
        from workbench.models.fingerprint import module_source, tensors

        facts = {
            "task": self.task,
            "labels": self.labels,
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "architecture": module_source(self.module),
            "training": self.module.training,
        }
        return tensors(self.module), facts

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        if self.labels:
            d["labels"] = self.labels
        return d
