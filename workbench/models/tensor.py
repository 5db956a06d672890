"""Adapter for plain torch modules over fixed-length numeric inputs (FLOAT[n] columns)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import torch

from workbench.errors import ModelError, ModelLoadError
from workbench.models.base import Model, check_head, fixed_size_list, label_score, vector_types
from workbench.models.layers import first_embedding
from workbench.models.modes import evaluating


def _first_linear_width(module: torch.nn.Module) -> int | None:
    """A guess at the input width: the first Linear layer's (the probe checks it)."""
    for layer in module.modules():
        if isinstance(layer, torch.nn.Linear):
            return int(layer.in_features)
    return None


_DECLARE = "declare input_dim=... and output_dim=... in WITH (...)"


class TensorModel(Model):
    """A torch module mapping (batch, n) float tensors to (batch, k); a module that starts
    with an Embedding maps (batch,) integer ids instead (input type BIGINT).

    task='classify': STRUCT(label, score) from argmax/softmax of the k >= 2 outputs (labels
    from the `labels` option when given, else the class index); task='embed': FLOAT[k];
    task='regress': FLOAT (k must be 1). Without a task, one output is a regressor and more
    are a classifier.

    The input and output widths come from `input_dim` / `output_dim` when declared, else from
    one probe on a zero input (the input width guessed from the first Linear layer); a module
    the probe cannot run raises a `ModelLoadError` that says which options to declare.
    The module runs in eval mode and is left in the mode it had (models/modes.py).
    """

    input_kind = "tensor"
    batch_candidates = (64, 256, 1024, 4096)
    small_run_batch = "largest"

    def __init__(
        self,
        module: torch.nn.Module,
        *,
        task: str | None = None,
        labels: list[str] | None = None,
        input_dim: int | None = None,
        output_dim: int | None = None,
        batch_size: int | None = None,
        deterministic: bool = True,
        allow_inf: bool = False,
    ):
        if task not in (None, "classify", "embed", "regress"):
            raise ValueError(f"task must be 'classify', 'embed' or 'regress', not {task!r}")
        self.module = module  # the user's object, never put in eval mode for good (see modes.py)
        self.labels = list(labels) if labels else None
        embedding = first_embedding(module)
        if embedding is not None:  # the input is an integer id
            self.input_kind = "ids"
            self.vocabulary = int(embedding.num_embeddings)
            self.input_dim = None
        else:
            self.input_dim = int(input_dim) if input_dim else _first_linear_width(module)
        self.batch_size = int(batch_size) if batch_size else None
        self.deterministic = bool(deterministic)
        self.allow_inf = bool(allow_inf)
        params = list(module.parameters())
        self.device = str(params[0].device) if params else "cpu"
        self.dtype = params[0].dtype if params else torch.float32
        input_known = embedding is not None or bool(input_dim)
        if output_dim and (input_known or self.input_dim is None):
            self.output_dim = int(output_dim)  # nothing to check: no probe (FLOAT[] input without a width)
        else:
            self.output_dim = self._probe_output_dim(guessed=not input_known)
            if output_dim and int(output_dim) != self.output_dim:
                raise ModelLoadError(
                    f"output_dim={output_dim} was declared but it returns {self.output_dim} values on a zero "
                    f"input of {self.input_dim} values; {_DECLARE}"
                )
        self.task = task or ("classify" if self.labels or self.output_dim > 1 else "regress")
        check_head(self.task, self.labels, self.output_dim, "module")

    def _probe_output_dim(self, *, guessed: bool) -> int:
        """The output width, from one run on a zero input of two rows (two, so a module that
        drops or folds the batch dimension is caught here rather than mid-query)."""
        if self.input_kind == "ids":
            probe = torch.zeros(2, dtype=torch.long, device=self.device)
            what = "a zero id"
        elif not self.input_dim:
            raise ModelLoadError(f"cannot tell its input size (it has no Linear layer); {_DECLARE}")
        else:
            probe = torch.zeros(2, self.input_dim, dtype=self.dtype, device=self.device)
            what = f"a zero input of {self.input_dim} values"
        try:
            with evaluating(self.module), torch.inference_mode():
                out = self.module(probe)
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of the user's forward is the same advice
            text = str(exc).strip().splitlines()
            why = f"{type(exc).__name__}: {text[0] if text else ''}"[:90]
            raise ModelLoadError(
                f"could not find its output size by running it on {what} ({why}); {_DECLARE}"
            ) from None
        if not isinstance(out, torch.Tensor):
            raise ModelLoadError(f"returned a {type(out).__name__} on {what}; expected a tensor of shape (rows, k)")
        if out.dim() not in (1, 2) or out.shape[0] != 2:
            advice = f"; if {self.input_dim} is not its input size, {_DECLARE}" if guessed else ""
            raise ModelLoadError(f"returned shape {tuple(out.shape)} for 2 rows of {what}; expected (2, k){advice}")
        return int(out.shape[1]) if out.dim() == 2 else 1

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
        # `module` is self.module or a tail made of its layers: eval mode for the whole model
        with evaluating(self.module), torch.inference_mode():
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

    def fingerprint_parts(self) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
        from workbench.models.fingerprint import module_source, tensors

        facts = {
            "task": self.task,
            "labels": self.labels,
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "architecture": module_source(self.module),
        }
        return tensors(self.module), facts

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        if self.labels:
            d["labels"] = self.labels
        return d
