"""Adapters for transformers text models: sentence embedders and sequence classifiers."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from workbench.models.base import Model, fixed_size_list, label_score, vector_types


class _TextModel(Model):
    input_kind = "text"

    def __init__(self, model: Any, tokenizer: Any, *, max_length: int = 128, batch_size: int | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.batch_size = int(batch_size) if batch_size else None
        self.device = str(next(model.parameters()).device)
        self._tokenizer_hash = _tokenizer_hash(tokenizer)

    def _encode(self, texts: list[str]) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        return {k: v.to(self.device) for k, v in enc.items()}

    def sort_keys(self, inputs: list[str]) -> np.ndarray:
        # Character length is a cheap, good proxy for token length: batches of similar
        # length waste little work on padding.
        return np.fromiter((len(t) for t in inputs), dtype=np.int64, count=len(inputs))

    def work_units(self, batch: list[str]) -> int:
        return sum(min(len(t) // 4 + 2, self.max_length) for t in batch)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "max_length": self.max_length}

    def fingerprint_parts(self) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
        from workbench.models.fingerprint import tensors

        config = self.model.config.to_json_string(use_diff=False) if hasattr(self.model, "config") else ""
        facts = {
            "task": self.task,
            "max_length": self.max_length,
            "config": config,
            "tokenizer": self._tokenizer_hash,
            "vocab_size": len(self.tokenizer),
            "normalize": getattr(self, "normalize", None),
            "pooling": "mean",
        }
        return tensors(self.model), facts


def _tokenizer_hash(tokenizer: Any) -> str:
    """Hash of the tokenizer's full definition (vocabulary, normalisers, special tokens)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))
    text += repr(getattr(tokenizer, "init_kwargs", {}))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class TextEmbedder(_TextModel):
    """Mean-pooled, L2-normalised sentence embeddings (the sentence-transformers recipe)."""

    task = "embed"

    def __init__(self, model: Any, tokenizer: Any, *, normalize: bool = True, **kw: Any):
        super().__init__(model, tokenizer, **kw)
        self.normalize = bool(normalize)
        self.dim = int(model.config.hidden_size)

    @property
    def output_type(self) -> str:
        return vector_types(self.dim)[0]

    def arrow_output_type(self) -> pa.DataType:
        return vector_types(self.dim)[1]

    def embed(self, texts: list[str]) -> torch.Tensor:
        enc = self._encode(texts)
        with torch.inference_mode():
            hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            if self.normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled

    def predict(self, batch: list[str]) -> pa.Array:
        return fixed_size_list(self.embed(batch).float().cpu().numpy())


class TextClassifier(_TextModel):
    """A sequence classifier: STRUCT(label VARCHAR, score FLOAT), score = softmax prob."""

    task = "classify"

    @property
    def output_type(self) -> str:
        return "STRUCT(label VARCHAR, score FLOAT)"

    def arrow_output_type(self) -> pa.DataType:
        return pa.struct([("label", pa.string()), ("score", pa.float32())])

    def predict(self, batch: list[str]) -> pa.Array:
        with torch.inference_mode():
            probs = self.model(**self._encode(batch)).logits.float().softmax(-1).cpu()
        score, idx = probs.max(-1)
        names = self.model.config.id2label
        return label_score([str(names.get(int(i), int(i))) for i in idx], score.numpy(), pa.string())
