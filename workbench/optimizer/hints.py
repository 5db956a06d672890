"""Paradigm hints: the user overrides the optimizer's choice.

Three ways, from widest to narrowest (the narrowest wins):

    session.sql(text, paradigm='udf_centric')            every model call of the query
    %%dlsql --paradigm udf_centric                          the same, from the magic
    SELECT /*+ paradigm(digits, relation_centric) */ ...   one model, in the SQL itself

Where a model runs, with a cluster set (`SET cluster = ...`):

    SELECT /*+ placement(minilm, ray) */ ...      on the cluster (actors by the cost model)
    SELECT /*+ placement(minilm, ray, 2) */ ...   on the cluster, with 2 actors
    SELECT /*+ placement(minilm, local) */ ...    on this machine

Hint comments are read from the tokenizer's comments, so text inside a string literal is
never taken for a hint.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from workbench.errors import ParameterError
from workbench.plan.nodes import PARADIGMS

_PLACEMENT = re.compile(r"placement\s*\(\s*([A-Za-z_][\w]*)\s*,\s*'?(ray|local)'?\s*(?:,\s*(\d+)\s*)?\)", re.IGNORECASE)
_HINT = re.compile(r"paradigm\s*\(\s*([A-Za-z_][\w]*)\s*,\s*'?([A-Za-z_]+)'?\s*\)", re.IGNORECASE)


@dataclass(frozen=True)
class Hints:
    paradigm: str | None = None  # for every model call of the query
    per_model: dict[str, str] = field(default_factory=dict)
    #: model -> ('ray' | 'local', actors or None)
    placements: dict[str, tuple[str, int | None]] = field(default_factory=dict)

    def forced(self, model: str) -> str | None:
        return self.per_model.get(model.lower(), self.paradigm)

    def placement(self, model: str) -> tuple[str, int | None] | None:
        return self.placements.get(model.lower())


def check(name: str | None) -> str | None:
    if name is None:
        return None
    value = str(name).lower()
    if value not in PARADIGMS:
        raise ParameterError(f"unknown paradigm {name!r}; choose one of {', '.join(PARADIGMS)}")
    return value


def parse(comments: Iterable[str], paradigm: str | None = None) -> Hints:
    """Hints from the statement's comments (`+ paradigm(model, NAME)` inside `/*+ ... */`)."""
    per_model: dict[str, str] = {}
    placements: dict[str, tuple[str, int | None]] = {}
    for comment in comments:
        text = comment.strip()
        if not text.startswith("+"):
            continue
        body = text[1:]
        for m in _PLACEMENT.finditer(body):
            actors = int(m.group(3)) if m.group(3) else None
            if actors == 0:
                raise ParameterError(f"placement({m.group(1)}, ray, 0): a cluster run needs one actor or more")
            placements[m.group(1).lower()] = (m.group(2).lower(), actors)
        if "placement" in body.lower() and not _PLACEMENT.search(body):
            raise ParameterError(f"cannot read the hint /*{comment}*/; write /*+ placement(model_name, ray) */")
        found = list(_HINT.finditer(body))
        if not found and "paradigm" in body.lower():
            raise ParameterError(f"cannot read the hint /*{comment}*/; write /*+ paradigm(model_name, udf_centric) */")
        for m in found:
            per_model[m.group(1).lower()] = check(m.group(2))  # type: ignore[assignment]
    return Hints(check(paradigm), per_model, placements)
