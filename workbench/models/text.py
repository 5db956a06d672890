"""Adapters for transformers text models: sentence embedders, sequence classifiers and
sequence regressors (a classification head with one output).

The transformers model is the user's object (or the loader's): it runs in eval mode for each
call and is left in the mode it had (models/modes.py).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from workbench.errors import ModelLoadError
from workbench.models.base import Model, check_labels, fixed_size_list, label_score, vector_types
from workbench.models.modes import evaluating
from workbench.models.sentence import Dense, Recipe, pool

#: tokens kept of each text when neither the user nor the model's directory says
DEFAULT_MAX_LENGTH = 128


class _TextModel(Model):
    input_kind = "text"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_length: int = DEFAULT_MAX_LENGTH,
        batch_size: int | None = None,
        lowercase: bool = False,
        prompt: str = "",
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.batch_size = int(batch_size) if batch_size else None
        self.lowercase = bool(lowercase)
        self.prompt = str(prompt)
        self.device = str(next(model.parameters()).device)
        self._tokenizer_hash = _tokenizer_hash(tokenizer)

    def _encode(self, texts: list[str]) -> dict[str, torch.Tensor]:
        enc = self.tokenize(self.tokenizer, texts, "pt")
        return {k: v.to(self.device) for k, v in enc.items()}

    def tokenize(self, tokenizer: Any, texts: list[str], tensors: str) -> Any:
        """`texts` as the model reads them (prompt, lowercase, padded, cut at max_length), as
        `tensors` ('pt' or 'np') from `tokenizer` (this model's, or a copy of it)."""
        if self.prompt:
            texts = [self.prompt + t for t in texts]
        if self.lowercase:
            texts = [t.lower() for t in texts]
        return tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors=tensors)

    def token_lengths(self, texts: list[str], tokenizer: Any = None) -> np.ndarray:
        """Tokens each text takes (specials included, cut at max_length): what its cost and
        its padding in a batch depend on. (Call it holding the model's lock.)"""
        if self.prompt:
            texts = [self.prompt + t for t in texts]
        if self.lowercase:
            texts = [t.lower() for t in texts]
        ids = (tokenizer or self.tokenizer)(texts, truncation=True, max_length=self.max_length)["input_ids"]
        return np.fromiter((len(i) for i in ids), dtype=np.int64, count=len(ids))

    def raw(self, texts: list[str]) -> torch.Tensor:
        """The model's float output before its head: embeddings, or logits."""
        return self._logits(texts)

    def from_raw(self, raw: torch.Tensor) -> pa.Array:
        """The SQL values of raw outputs (what `predict` returns)."""
        raise NotImplementedError

    def predict(self, batch: Any) -> pa.Array:
        return self.from_raw(self.raw(batch))

    def _logits(self, texts: list[str]) -> torch.Tensor:
        with evaluating(self.model), torch.inference_mode():
            return self.model(**self._encode(texts)).logits.float()

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
            **self._head_facts(),
        }
        if self.lowercase or self.prompt:  # (absent by default: fingerprints stored before stay valid)
            facts.update(lowercase=self.lowercase, prompt=self.prompt)
        return tensors(self.model) + self._head_tensors(), facts

    def _head_facts(self) -> dict[str, Any]:
        return {}

    def _head_tensors(self) -> list[tuple[str, Any]]:
        return []


def _tokenizer_hash(tokenizer: Any) -> str:
    """Hash of the tokenizer's full definition (vocabulary, normalisers, special tokens)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))
    text += repr(getattr(tokenizer, "init_kwargs", {}))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class TextEmbedder(_TextModel):
    """Sentence embeddings: the token vectors pooled (mean by default; a sentence-transformers
    directory's own modes), its Dense steps, then L2-normalised when `normalize`."""

    task = "embed"

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        normalize: bool = True,
        pooling: tuple[str, ...] = ("mean",),
        dense: tuple[Dense, ...] = (),
        **kw: Any,
    ):
        super().__init__(model, tokenizer, **kw)
        self.normalize = bool(normalize)
        self.pooling = tuple(pooling)
        self.dense = tuple(dense)
        hidden = int(model.config.hidden_size)
        self.dim = int(dense[-1].weight.shape[0]) if dense else hidden * len(self.pooling)

    @property
    def output_type(self) -> str:
        return vector_types(self.dim)[0]

    def arrow_output_type(self) -> pa.DataType:
        return vector_types(self.dim)[1]

    def embed(self, texts: list[str]) -> torch.Tensor:
        enc = self._encode(texts)
        with evaluating(self.model), torch.inference_mode():
            hidden = self.model(**enc).last_hidden_state
            pooled = pool(hidden, enc["attention_mask"], self.pooling)
            for step in self.dense:
                pooled = step(pooled)
            if self.normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled

    def raw(self, texts: list[str]) -> torch.Tensor:
        return self.embed(texts).float()

    def from_raw(self, raw: torch.Tensor) -> pa.Array:
        return fixed_size_list(raw.float().cpu().numpy())

    def _head_facts(self) -> dict[str, Any]:
        facts: dict[str, Any] = {"normalize": self.normalize, "pooling": "+".join(self.pooling)}
        if self.dense:
            facts["dense"] = [d.activation for d in self.dense]
        return facts

    def _head_tensors(self) -> list[tuple[str, Any]]:
        named = []
        for i, d in enumerate(self.dense):
            named.append((f"dense.{i}.weight", d.weight))
            if d.bias is not None:
                named.append((f"dense.{i}.bias", d.bias))
        return named


def outputs_of(model: Any) -> int:
    """How many outputs a transformers classification head has (its config's num_labels)."""
    return int(model.config.num_labels)


class TextClassifier(_TextModel):
    """A sequence classifier: STRUCT(label VARCHAR, score FLOAT), score = softmax prob.
    Labels are the user's (`labels = 'neg,pos'`) or the checkpoint's `config.id2label`."""

    task = "classify"

    def __init__(self, model: Any, tokenizer: Any, *, labels: list[str] | None = None, **kw: Any):
        super().__init__(model, tokenizer, **kw)
        outputs = outputs_of(model)
        check_labels(labels, outputs)
        names = getattr(model.config, "id2label", None) or {}
        self.labels = list(labels) if labels else [str(names.get(i, i)) for i in range(outputs)]

    @property
    def output_type(self) -> str:
        return "STRUCT(label VARCHAR, score FLOAT)"

    def arrow_output_type(self) -> pa.DataType:
        return pa.struct([("label", pa.string()), ("score", pa.float32())])

    def from_raw(self, raw: torch.Tensor) -> pa.Array:
        score, idx = raw.float().softmax(-1).max(-1)
        return label_score([self.labels[i] for i in idx.cpu().numpy()], score.cpu().numpy(), pa.string())

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "labels": self.labels}

    def _head_facts(self) -> dict[str, Any]:
        return {"labels": self.labels}


class TextRegressor(_TextModel):
    """A classification head with one output (transformers' regression problem): FLOAT."""

    task = "regress"

    @property
    def output_type(self) -> str:
        return "FLOAT"

    def arrow_output_type(self) -> pa.DataType:
        return pa.float32()

    def from_raw(self, raw: torch.Tensor) -> pa.Array:
        return pa.array(raw.float()[:, 0].cpu().numpy())


def text_model(name: str, model: Any, tokenizer: Any, options: dict[str, Any], recipe: Recipe | None = None) -> Model:
    """The adapter for a transformers model and its tokenizer, as `options` and, for a
    sentence-transformers directory, its `recipe` say (explicit options win)."""
    task = options.get("task") or _task_of(model)
    labels = options.get("labels")
    if labels and task != "classify":
        raise ModelLoadError(f"model '{name}': labels name a classifier's outputs; this model's task is '{task}'")
    kw: dict[str, Any] = {
        "max_length": max_length_of(options, recipe, tokenizer, getattr(model, "config", None)),
        "batch_size": options.get("batch_size"),
    }
    if recipe is not None:
        kw.update(lowercase=recipe.lowercase, prompt=recipe.prompt)
    try:
        if task == "classify":
            adapter: Model = TextClassifier(model, tokenizer, labels=labels, **kw)
        elif task == "regress":
            outputs = int(getattr(getattr(model, "config", None), "num_labels", 0) or 0)
            if outputs != 1:
                raise ModelLoadError(f"task='regress' needs a head with 1 output and this one has {outputs}")
            adapter = TextRegressor(model, tokenizer, **kw)
        elif task == "embed":
            normalize = options.get("normalize", recipe.normalize if recipe else True)
            if recipe is not None:
                kw.update(pooling=recipe.pooling, dense=recipe.dense)
            adapter = TextEmbedder(model, tokenizer, normalize=normalize, **kw)
        else:
            raise ModelLoadError(f"task {task!r} is not supported for text models (embed, classify or regress)")
    except ModelLoadError as exc:
        raise ModelLoadError(f"model '{name}': {exc}") from None
    adapter.allow_inf = bool(options.get("allow_inf", False))
    return adapter


def max_length_of(options: dict[str, Any], recipe: Recipe | None, tokenizer: Any, config: Any) -> int:
    """Tokens kept per text: the user's max_length, else a sentence-transformers directory's
    max_seq_length (or, without one, what its tokenizer and positions allow, as
    sentence-transformers does), else DEFAULT_MAX_LENGTH."""
    if options.get("max_length"):
        return int(options["max_length"])
    if recipe is None:
        return DEFAULT_MAX_LENGTH
    if recipe.max_length:
        return recipe.max_length
    limits = [int(getattr(tokenizer, "model_max_length", 0) or 0), int(getattr(config, "max_position_embeddings", 0))]
    sane = [n for n in limits if 0 < n < 1_000_000]  # an unset model_max_length is 1e30
    return min(sane) if sane else DEFAULT_MAX_LENGTH


def _task_of(model: Any) -> str:
    config = getattr(model, "config", None)
    archs = [*(getattr(config, "architectures", None) or []), type(model).__name__]
    if not any("SequenceClassification" in a for a in archs):
        return "embed"
    return "regress" if int(getattr(config, "num_labels", 2)) == 1 else "classify"
