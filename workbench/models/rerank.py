"""Cross-encoders: `score(query, document)` reads both texts together and returns how well the
document answers the query (FLOAT), for reranking the candidates a join or a vector search
found.

The model is a transformers *ForSequenceClassification with one output; each pair is
tokenized as the tokenizer pairs texts (BERT: `[CLS] query [SEP] document [SEP]`), cut to
`max_length` tokens (the longer text loses tokens first) and the output is the logit.

Activation: the raw logit by default, which is what the model computes. sentence-transformers'
CrossEncoder applies the activation its config.json names (`sentence_transformers.activation_fn`,
or the older `sbert_ce_default_activation_function`) and, when none is named, a sigmoid for one
output; the engine follows a named Identity or Sigmoid, and `activation = 'sigmoid'` gives
CrossEncoder's unnamed default. A sigmoid never changes the order of the documents.

The pair machinery (`PairClassifier`) is shared with zero-shot classification over an NLI
model (models/zero_shot.py), which scores (text, hypothesis) pairs the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from workbench.errors import ModelLoadError
from workbench.models.base import Model
from workbench.models.modes import evaluating
from workbench.models.sentence import Recipe
from workbench.models.text import DEFAULT_MAX_LENGTH, _TextModel, max_length_of

#: options this task takes besides loading.KNOWN_OPTIONS
OPTIONS = frozenset({"activation"})
ACTIVATIONS = ("none", "sigmoid")
#: pairs run through the model at once: a batch of rows may hold many more pairs (zero-shot
#: makes one per label), and this bounds the padded tensors of one forward pass
PAIR_CHUNK = 64
#: sentence-transformers' names of the activations the engine applies
_ST_ACTIVATIONS = {
    "torch.nn.modules.linear.Identity": "none",
    "torch.nn.modules.activation.Sigmoid": "sigmoid",
}


class PairClassifier(_TextModel):
    """A sequence classifier over pairs of texts (the base of cross-encoders and NLI)."""

    def pair_logits(self, firsts: list[str], seconds: list[str], truncation: str = "longest_first") -> torch.Tensor:
        """(pairs, outputs) float logits of tokenizer(first, second) for each pair, run in
        chunks of PAIR_CHUNK pairs, shortest pairs together."""
        if self.prompt:
            firsts = [self.prompt + t for t in firsts]
        if self.lowercase:
            firsts, seconds = [t.lower() for t in firsts], [t.lower() for t in seconds]
        order = np.argsort([len(a) + len(b) for a, b in zip(firsts, seconds)], kind="stable")
        parts: list[torch.Tensor] = []
        for start in range(0, len(order), PAIR_CHUNK):
            idx = order[start : start + PAIR_CHUNK]
            enc = self._encode_pairs([firsts[i] for i in idx], [seconds[i] for i in idx], truncation)
            with evaluating(self.model), torch.inference_mode():
                parts.append(self.model(**enc).logits.float())
        logits = torch.cat(parts) if parts else torch.empty(0, int(self.model.config.num_labels))
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.from_numpy(order)] = torch.arange(len(order))
        return logits[inverse.to(logits.device)]

    def _encode_pairs(self, firsts: list[str], seconds: list[str], truncation: str) -> dict[str, torch.Tensor]:
        kw = {"padding": True, "max_length": self.max_length, "return_tensors": "pt"}
        try:
            enc = self.tokenizer(firsts, seconds, truncation=truncation, **kw)
        except Exception as exc:
            # 'only_first' cannot cut a pair whose second text alone is too long: like
            # transformers' zero-shot pipeline, such pairs run uncut
            if "too short" not in str(exc):
                raise
            enc = self.tokenizer(firsts, seconds, truncation=False, **kw)
        return {k: v.to(self.device) for k, v in enc.items()}

    def work_units(self, batch: list[Any]) -> int:
        return sum(min(len(a) // 4 + len(b) // 4 + 3, self.max_length) for a, b in self._pairs_of(batch))

    def _pairs_of(self, batch: list[Any]) -> list[tuple[str, str]]:
        raise NotImplementedError


class CrossEncoder(PairClassifier):
    """`score(query, document)` → FLOAT: the one logit of the pair (see the module's doc)."""

    input_kind = "text_pair"
    task = "rerank"

    def __init__(self, model: Any, tokenizer: Any, *, activation: str = "none", **kw: Any):
        super().__init__(model, tokenizer, **kw)
        self.activation = activation

    @property
    def output_type(self) -> str:
        return "FLOAT"

    def arrow_output_type(self) -> pa.DataType:
        return pa.float32()

    def predict(self, batch: list[dict[str, Any] | None]) -> pa.Array:
        """One score per {'query', 'document'}; NULL where either is NULL."""
        present = [i for i, r in enumerate(batch) if r and r["query"] is not None and r["document"] is not None]
        out = np.zeros(len(batch), dtype=np.float32)
        if present:
            queries = [str(batch[i]["query"]) for i in present]  # type: ignore[index]
            documents = [str(batch[i]["document"]) for i in present]  # type: ignore[index]
            logits = self.pair_logits(queries, documents)[:, 0]
            if self.activation == "sigmoid":
                logits = logits.sigmoid()
            out[present] = logits.cpu().numpy()
        missing = np.ones(len(batch), dtype=bool)
        missing[present] = False
        return pa.array(out, mask=missing)

    def sort_keys(self, inputs: list[Any]) -> np.ndarray:
        return np.fromiter((len(a) + len(b) for a, b in self._pairs_of(inputs)), dtype=np.int64, count=len(inputs))

    def _pairs_of(self, batch: list[Any]) -> list[tuple[str, str]]:
        return [((row or {}).get("query") or "", (row or {}).get("document") or "") for row in batch]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "activation": self.activation}

    def _head_facts(self) -> dict[str, Any]:
        return {"activation": self.activation}


def load(name: str, directory: Path, options: dict[str, Any], recipe: Recipe | None) -> Model:
    """A cross-encoder from a transformers directory (WITH (task = 'rerank'))."""
    from transformers import AutoModelForSequenceClassification

    config = json.loads((directory / "config.json").read_text())
    archs = config.get("architectures") or []
    if archs and not any("SequenceClassification" in a for a in archs):
        raise ModelLoadError(
            f"model '{name}': task='rerank' needs a cross-encoder (a *ForSequenceClassification "
            f"with 1 output); {directory.name} is a {archs[0]}"
        )
    outputs = len(config.get("id2label") or {}) or int(config.get("num_labels", 2))
    if outputs != 1:
        raise ModelLoadError(
            f"model '{name}': task='rerank' needs a head with 1 output and this one has {outputs} "
            "(use task='classify', or task='zero_shot' for an NLI model)"
        )
    activation = options.get("activation") or _named_activation(config) or "none"
    if activation not in ACTIVATIONS:
        raise ModelLoadError(f"model '{name}': activation must be one of {', '.join(ACTIVATIONS)}, not {activation!r}")
    model, tokenizer = pretrained(directory, AutoModelForSequenceClassification, options)
    adapter = CrossEncoder(
        model,
        tokenizer,
        activation=activation,
        max_length=model_limit(options, recipe, tokenizer, model.config),
        batch_size=options.get("batch_size"),
    )
    adapter.allow_inf = bool(options.get("allow_inf", False))
    return adapter


def _named_activation(config: dict[str, Any]) -> str | None:
    """The activation a sentence-transformers CrossEncoder directory names, if one we apply."""
    named = (config.get("sentence_transformers") or {}).get("activation_fn") or config.get(
        "sbert_ce_default_activation_function"
    )
    return _ST_ACTIVATIONS.get(str(named)) if named else None


# -- helpers shared by the task modules (zero_shot, ner) ------------------------------------
def pretrained(directory: Path, cls: Any, options: dict[str, Any]) -> tuple[Any, Any]:
    """(model in eval mode, tokenizer) from a local transformers directory, as loading.py
    loads one: safetensors unless pickle is allowed, no remote code, nothing fetched."""
    from transformers import AutoTokenizer

    allow_pickle = bool(options.get("allow_pickle"))
    has_safetensors = any(directory.glob("*.safetensors"))
    model = cls.from_pretrained(
        str(directory),
        use_safetensors=not allow_pickle or has_safetensors,
        trust_remote_code=False,
        local_files_only=True,
    )
    tokenizer = AutoTokenizer.from_pretrained(str(directory), trust_remote_code=False, local_files_only=True)
    return model.eval(), tokenizer


def model_limit(options: dict[str, Any], recipe: Recipe | None, tokenizer: Any, config: Any) -> int:
    """Tokens kept per input: the user's max_length, a sentence-transformers recipe's, else
    what the tokenizer and the position embeddings allow (as transformers' pipelines and
    CrossEncoder cut), else DEFAULT_MAX_LENGTH."""
    if options.get("max_length") or recipe is not None:
        return max_length_of(options, recipe, tokenizer, config)
    limits = [int(getattr(tokenizer, "model_max_length", 0) or 0), int(getattr(config, "max_position_embeddings", 0))]
    sane = [n for n in limits if 0 < n < 1_000_000]  # an unset model_max_length is 1e30
    return min(sane) if sane else DEFAULT_MAX_LENGTH
