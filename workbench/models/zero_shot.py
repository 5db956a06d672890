"""Zero-shot classification: `zs(text, ['sports', 'politics'])` → STRUCT(label, score), the
labels chosen per call, so one model sorts texts into any set of topics without training.

Two ways, picked from the directory:

* an NLI model (a *ForSequenceClassification whose config's id2label has a label starting
  'entail'): as transformers' zero-shot-classification pipeline with multi_label=False, each
  label becomes the hypothesis `hypothesis_template.format(label)` (default 'This example is
  {}.'), the model reads (text, hypothesis) cut from the text's end when too long, and the
  scores are the softmax over labels of the entailment logits; with one label, the softmax of
  its (contradiction, entailment) logits, as the pipeline does.
* any embedder (`FROM 'minilm'`, a sentence-transformers directory, a plain encoder): the text
  and each label (through `hypothesis_template`, default '{}': the label as written) are
  embedded, and the scores are the softmax over labels of cosine similarity / `temperature`.
  The default temperature 0.05 (a scale of 20) is the one sentence-transformers trains such
  embedders with (MultipleNegativesRankingLoss): cosines that differ by 0.1 give odds of
  e^2 ≈ 7.4 to 1. A label's embedding is computed once per batch, however many rows name it.

NULL text or NULL labels give NULL; an empty label list, or a NULL among the labels, is an
input error.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from workbench.errors import InputTypeError, ModelLoadError
from workbench.models.base import Model
from workbench.models.rerank import PairClassifier, model_limit, pretrained
from workbench.models.sentence import Recipe
from workbench.models.text import TextEmbedder, text_model

#: options this task takes besides loading.KNOWN_OPTIONS
OPTIONS = frozenset({"hypothesis_template", "temperature"})
NLI_TEMPLATE = "This example is {}."
EMBED_TEMPLATE = "{}"
DEFAULT_TEMPERATURE = 0.05
#: labels embedded at once (distinct labels of a batch)
LABEL_CHUNK = 256

Row = tuple[str, list[str]]


class _ZeroShot(Model):
    input_kind = "text_labels"
    task = "zero_shot"
    template: str

    @property
    def output_type(self) -> str:
        return "STRUCT(label VARCHAR, score FLOAT)"

    def arrow_output_type(self) -> pa.DataType:
        return pa.struct([("label", pa.string()), ("score", pa.float32())])

    def predict(self, batch: list[dict[str, Any] | None]) -> pa.Array:
        rows = [_row(r) for r in batch]
        present = [r for r in rows if r is not None]
        scored = iter(self._score(present) if present else [])
        labels: list[str | None] = []
        scores: list[float] = []
        for r in rows:
            if r is None:
                labels.append(None)
                scores.append(0.0)
                continue
            probs = next(scored)
            best = int(np.argmax(probs))
            labels.append(r[1][best])
            scores.append(float(probs[best]))
        mask = pa.array([r is None for r in rows], type=pa.bool_())
        return pa.StructArray.from_arrays(
            [pa.array(labels, type=pa.string()), pa.array(np.asarray(scores, dtype=np.float32))],
            names=["label", "score"],
            mask=mask,
        )

    def _score(self, rows: list[Row]) -> list[np.ndarray]:
        """Each row's probabilities over its labels."""
        raise NotImplementedError

    def sort_keys(self, inputs: list[Any]) -> np.ndarray:
        return np.fromiter((_chars(r) for r in inputs), dtype=np.int64, count=len(inputs))


class EmbeddingZeroShot(_ZeroShot):
    """Zero-shot from an embedder: softmax over labels of cosine(text, label) / temperature."""

    def __init__(
        self, embedder: TextEmbedder, *, template: str = EMBED_TEMPLATE, temperature: float = DEFAULT_TEMPERATURE
    ):
        self.embedder = embedder
        self.model = embedder.model  # (the torch module: weight counts, compressed variants)
        self.template = template
        self.temperature = float(temperature)
        self.device = embedder.device
        self.batch_size = embedder.batch_size
        self.max_length = embedder.max_length

    def _score(self, rows: list[Row]) -> list[np.ndarray]:
        texts = list(dict.fromkeys(t for t, _ in rows))
        names = list(dict.fromkeys(label for _, labels in rows for label in labels))
        text_at = {t: i for i, t in enumerate(texts)}
        label_at = {name: i for i, name in enumerate(names)}
        t = self._embed(texts)
        lab = self._embed([self.template.format(name) for name in names])
        cosine = (t @ lab.T).cpu().numpy().astype(np.float64)
        out = []
        for text, labels in rows:
            logits = cosine[text_at[text], [label_at[x] for x in labels]] / self.temperature
            out.append(_softmax(logits))
        return out

    def _embed(self, texts: list[str]) -> torch.Tensor:
        embedder = self._inner()
        parts = [embedder.embed(texts[i : i + LABEL_CHUNK]).float() for i in range(0, len(texts), LABEL_CHUNK)]
        return torch.nn.functional.normalize(torch.cat(parts), p=2, dim=1)

    def _inner(self) -> TextEmbedder:
        """The embedder, running this adapter's module (a compressed variant is a copy of the
        adapter with another `model`: its embedder is then a copy too, never the base's)."""
        if self.embedder.model is not self.model:
            self.embedder = copy.copy(self.embedder)
            self.embedder.model = self.model
            self.embedder.__dict__.pop("_fingerprinter", None)
        return self.embedder

    def work_units(self, batch: list[Any]) -> int:
        return sum(min(_chars(r) // 4 + 2, self.max_length) for r in batch)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "max_length": self.max_length,
            "hypothesis_template": self.template,
            "temperature": self.temperature,
        }

    def fingerprint_parts(self) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
        named, facts = self._inner().fingerprint_parts()
        return named, {**facts, "zero_shot": "embedding", "template": self.template, "temperature": self.temperature}


class NLIZeroShot(_ZeroShot, PairClassifier):
    """Zero-shot from an NLI model, as transformers' zero-shot-classification pipeline."""

    def __init__(self, model: Any, tokenizer: Any, *, template: str, entailment: int, **kw: Any):
        PairClassifier.__init__(self, model, tokenizer, **kw)
        self.template = template
        self.entailment = int(entailment)
        # the pipeline's choice for a single label's (contradiction, entailment) softmax
        self.contradiction = -1 if self.entailment == 0 else 0

    def _score(self, rows: list[Row]) -> list[np.ndarray]:
        texts = [text for text, labels in rows for _ in labels]
        hypotheses = [self.template.format(label) for _, labels in rows for label in labels]
        logits = self.pair_logits(texts, hypotheses, truncation="only_first").cpu().numpy().astype(np.float64)
        out, at = [], 0
        for _, labels in rows:
            mine = logits[at : at + len(labels)]
            at += len(labels)
            if len(labels) == 1:
                out.append(_softmax(mine[0, [self.contradiction, self.entailment]])[1:])
            else:
                out.append(_softmax(mine[:, self.entailment]))
        return out

    def _pairs_of(self, batch: list[Any]) -> list[tuple[str, str]]:
        pairs = []
        for r in batch:
            text, labels = ((r or {}).get("text") or ""), ((r or {}).get("labels") or [])
            pairs += [(text, self.template.format(x or "")) for x in labels]
        return pairs

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "hypothesis_template": self.template}

    def _head_facts(self) -> dict[str, Any]:
        return {"zero_shot": "nli", "template": self.template, "entailment": self.entailment}


def _row(r: dict[str, Any] | None) -> Row | None:
    """(text, labels) of one call, None for a NULL text or labels; refuses empty labels."""
    if r is None or r.get("text") is None or r.get("labels") is None:
        return None
    labels = list(r["labels"])
    if not labels:
        raise InputTypeError(f"an empty label list for the text {_quote(r['text'])}: give at least one label")
    if any(x is None for x in labels):
        raise InputTypeError(f"a NULL label in {_quote(str(labels))}: labels must be strings")
    return str(r["text"]), [str(x) for x in labels]


def _quote(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _chars(r: dict[str, Any] | None) -> int:
    if not r:
        return 0
    return len(r.get("text") or "") + sum(len(x or "") for x in (r.get("labels") or []))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def load(name: str, directory: Path, options: dict[str, Any], recipe: Recipe | None) -> Model:
    """A zero-shot classifier from a transformers directory (WITH (task = 'zero_shot'))."""
    if options.get("labels"):
        raise ModelLoadError(f"model '{name}': zero-shot labels are given per call, e.g. {name}(text, ['a', 'b'])")
    config = json.loads((directory / "config.json").read_text())
    archs = config.get("architectures") or []
    entailment = _entailment_id(config)
    nli = any("SequenceClassification" in a for a in archs)
    if nli and entailment is None:
        given = ", ".join(str(v) for v in (config.get("id2label") or {}).values())
        raise ModelLoadError(
            f"model '{name}': task='zero_shot' needs an NLI model (a label 'entailment') or an embedder; "
            f"{directory.name} is a classifier with labels {given}"
        )
    template = options.get("hypothesis_template", NLI_TEMPLATE if nli else EMBED_TEMPLATE)
    _check_template(name, template)
    try:
        if nli:
            if "temperature" in options:
                raise ModelLoadError(
                    "temperature applies to an embedder's zero-shot; an NLI model's scores are the "
                    "softmax of its entailment logits"
                )
            from transformers import AutoModelForSequenceClassification

            model, tokenizer = pretrained(directory, AutoModelForSequenceClassification, options)
            adapter: Model = NLIZeroShot(
                model,
                tokenizer,
                template=template,
                entailment=int(entailment),  # type: ignore[arg-type]
                max_length=model_limit(options, recipe, tokenizer, model.config),
                batch_size=options.get("batch_size"),
            )
        else:
            adapter = EmbeddingZeroShot(
                _embedder(name, directory, options, recipe),
                template=template,
                temperature=_temperature(options.get("temperature", DEFAULT_TEMPERATURE)),
            )
    except ModelLoadError as exc:
        raise ModelLoadError(f"model '{name}': {exc}") from None
    adapter.allow_inf = bool(options.get("allow_inf", False))
    return adapter


def _embedder(name: str, directory: Path, options: dict[str, Any], recipe: Recipe | None) -> TextEmbedder:
    from transformers import AutoModel

    model, tokenizer = pretrained(directory, AutoModel, options)
    keep = {k: v for k, v in options.items() if k in ("max_length", "batch_size", "normalize")}
    embedder = text_model(name, model, tokenizer, {**keep, "task": "embed"}, recipe)
    assert isinstance(embedder, TextEmbedder)
    return embedder


def _entailment_id(config: dict[str, Any]) -> int | None:
    """The index of the label starting 'entail' (as the pipeline looks it up), or None."""
    label2id = config.get("label2id") or {v: k for k, v in (config.get("id2label") or {}).items()}
    for label, index in label2id.items():
        if str(label).lower().startswith("entail"):
            return int(index)
    return None


def _check_template(name: str, template: Any) -> None:
    try:
        ok = isinstance(template, str) and template.format("x") != template
    except (IndexError, KeyError, ValueError):
        ok = False
    if not ok:
        raise ModelLoadError(
            f"model '{name}': hypothesis_template must hold {{}} where the label goes, e.g. 'This example is {{}}.', "
            f"not {template!r}"
        )


def _temperature(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise ModelLoadError(f"temperature must be a positive number, not {value!r}")
    return float(value)
