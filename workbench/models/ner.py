"""Named entities: a token classifier's tags turned into the entities of a text,
`ner(text)` → LIST(STRUCT(text, entity, start, "end", score)).

What transformers' token-classification pipeline computes, with the same `aggregation`
strategies (default 'simple'):

* 'none': every word piece with its tag (B-PER, I-LOC...), 'O' left out;
* 'simple': adjacent pieces whose tags continue one entity (PER after B-PER or I-PER, not a
  new B-PER) merged; score = the mean of their probabilities;
* 'first', 'average', 'max': first each word's pieces agree on one tag (the first piece's,
  the mean of their probabilities, the most confident piece's), then words merged as in
  'simple'. Words are told apart as the pipeline does (a '##' piece continues its word).

`start` and `end` are character offsets into the input text (end exclusive, as in Python
slices) and `text` is the input's characters between them (the pipeline's `word` is the
pieces decoded instead, lower-cased by an uncased tokenizer). Texts are cut at `max_length`
tokens (by default what the model allows): entities beyond the cut are not found.
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
from workbench.models.rerank import model_limit, pretrained
from workbench.models.sentence import Recipe
from workbench.models.text import _TextModel

#: options this task takes besides loading.KNOWN_OPTIONS
OPTIONS = frozenset({"aggregation"})
AGGREGATIONS = ("none", "simple", "first", "average", "max")
#: tags that are no entity (the pipeline's default ignore_labels)
IGNORED = frozenset({"O"})
ENTITY = pa.struct(
    [
        ("text", pa.string()),
        ("entity", pa.string()),
        ("start", pa.int32()),
        ("end", pa.int32()),
        ("score", pa.float32()),
    ]
)


class TokenClassifier(_TextModel):
    """Token classification → the entities of each text (see the module's doc)."""

    task = "ner"

    def __init__(self, model: Any, tokenizer: Any, *, aggregation: str = "simple", **kw: Any):
        super().__init__(model, tokenizer, **kw)
        self.aggregation = aggregation
        names = model.config.id2label
        self.tags = [str(names[i]) for i in range(int(model.config.num_labels))]
        # a word-aware tokenizer ('##' pieces) tells words apart exactly; others by spaces
        backend = getattr(tokenizer, "_tokenizer", None)
        self._word_aware = bool(backend is not None and getattr(backend.model, "continuing_subword_prefix", None))

    @property
    def output_type(self) -> str:
        return 'STRUCT(text VARCHAR, entity VARCHAR, start INTEGER, "end" INTEGER, score FLOAT)[]'

    def arrow_output_type(self) -> pa.DataType:
        return pa.list_(ENTITY)

    def predict(self, batch: list[str | None]) -> pa.Array:
        present = [i for i, t in enumerate(batch) if t is not None]
        out: list[list[dict[str, Any]] | None] = [None] * len(batch)
        if present:
            texts = [batch[i] for i in present]
            for i, entities in zip(present, self._entities(texts)):  # type: ignore[arg-type]
                out[i] = entities
        return pa.array(out, type=pa.list_(ENTITY))

    def _entities(self, texts: list[str]) -> list[list[dict[str, Any]]]:
        enc = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
            return_tensors="pt",
        )
        offsets = enc.pop("offset_mapping").numpy()
        special = enc.pop("special_tokens_mask").numpy()
        inputs = {k: v.to(self.device) for k, v in enc.items()}
        with evaluating(self.model), torch.inference_mode():
            logits = self.model(**inputs).logits.float().cpu().numpy()
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probs = shifted / shifted.sum(axis=-1, keepdims=True)  # (as the pipeline computes them)
        ids = enc["input_ids"].numpy()
        mask = enc["attention_mask"].numpy()
        return [
            self._of_text(text, ids[k], probs[k], offsets[k], special[k] | (mask[k] == 0))
            for k, text in enumerate(texts)
        ]

    def _of_text(
        self, text: str, ids: np.ndarray, probs: np.ndarray, offsets: np.ndarray, skip: np.ndarray
    ) -> list[dict[str, Any]]:
        pieces = []
        for j in np.flatnonzero(~skip.astype(bool)):
            start, end = int(offsets[j][0]), int(offsets[j][1])
            piece = self.tokenizer.convert_ids_to_tokens(int(ids[j]))
            if int(ids[j]) == self.tokenizer.unk_token_id:
                subword = False
            elif self._word_aware:
                subword = len(piece) != len(text[start:end])
            else:
                subword = start > 0 and " " not in text[start - 1 : start + 1]
            pieces.append({"scores": probs[j], "start": start, "end": end, "subword": subword})
        if self.aggregation in ("none", "simple"):
            tagged = [self._tagged(p["scores"], p["start"], p["end"]) for p in pieces]
        else:
            tagged = [self._word(group) for group in _words(pieces)]
        if self.aggregation != "none":
            tagged = [_merged(group) for group in _entity_runs(tagged)]
        return [
            {
                "text": text[e["start"] : e["end"]],
                "entity": e["entity"],
                "start": e["start"],
                "end": e["end"],
                "score": e["score"],
            }
            for e in tagged
            if e["entity"] not in IGNORED
        ]

    def _tagged(self, scores: np.ndarray, start: int, end: int) -> dict[str, Any]:
        best = int(scores.argmax())
        return {"entity": self.tags[best], "score": float(scores[best]), "start": start, "end": end}

    def _word(self, pieces: list[dict[str, Any]]) -> dict[str, Any]:
        """One word's pieces agreeing on one tag ('first', 'average' or 'max')."""
        if self.aggregation == "first":
            scores = pieces[0]["scores"]
        elif self.aggregation == "max":
            scores = max(pieces, key=lambda p: p["scores"].max())["scores"]
        else:
            scores = np.nanmean(np.stack([p["scores"] for p in pieces]), axis=0)
        return self._tagged(scores, pieces[0]["start"], pieces[-1]["end"])

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "aggregation": self.aggregation, "tags": self.tags}

    def _head_facts(self) -> dict[str, Any]:
        return {"aggregation": self.aggregation, "tags": self.tags}


def _words(pieces: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Pieces grouped into words: a subword piece joins the word before it."""
    words: list[list[dict[str, Any]]] = []
    for p in pieces:
        if words and p["subword"]:
            words[-1].append(p)
        else:
            words.append([p])
    return words


def _split_tag(tag: str) -> tuple[str, str]:
    """('B' or 'I', entity type) of a tag; a tag without B-/I- continues like I-."""
    if tag.startswith("B-"):
        return "B", tag[2:]
    if tag.startswith("I-"):
        return "I", tag[2:]
    return "I", tag


def _entity_runs(tagged: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Adjacent tagged pieces or words of one entity: same type, not starting a new B-."""
    runs: list[list[dict[str, Any]]] = []
    for t in tagged:
        bi, kind = _split_tag(t["entity"])
        if runs and kind == _split_tag(runs[-1][-1]["entity"])[1] and bi != "B":
            runs[-1].append(t)
        else:
            runs.append([t])
    return runs


def _merged(run: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "entity": run[0]["entity"].split("-", 1)[-1],
        "score": float(np.nanmean([t["score"] for t in run])),
        "start": run[0]["start"],
        "end": run[-1]["end"],
    }


def load(name: str, directory: Path, options: dict[str, Any], recipe: Recipe | None) -> Model:
    """A token classifier from a transformers directory (WITH (task = 'ner'))."""
    from transformers import AutoModelForTokenClassification

    config = json.loads((directory / "config.json").read_text())
    archs = config.get("architectures") or []
    if archs and not any("TokenClassification" in a for a in archs):
        raise ModelLoadError(
            f"model '{name}': task='ner' needs a token classifier (*ForTokenClassification); "
            f"{directory.name} is a {archs[0]}"
        )
    if options.get("labels"):
        raise ModelLoadError(f"model '{name}': task='ner' takes its tags from the model's config (id2label)")
    aggregation = str(options.get("aggregation", "simple")).lower()
    if aggregation not in AGGREGATIONS:
        raise ModelLoadError(
            f"model '{name}': aggregation must be one of {', '.join(AGGREGATIONS)}, not {options['aggregation']!r}"
        )
    model, tokenizer = pretrained(directory, AutoModelForTokenClassification, options)
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(
            f"model '{name}': task='ner' needs a fast tokenizer (a tokenizer.json) to find character offsets"
        )
    adapter = TokenClassifier(
        model,
        tokenizer,
        aggregation=aggregation,
        max_length=model_limit(options, recipe, tokenizer, model.config),
        batch_size=options.get("batch_size"),
    )
    adapter.allow_inf = bool(options.get("allow_inf", False))
    return adapter
