"""Paradigm hints: the user overrides the optimizer's choice.

Three ways, from widest to narrowest (the narrowest wins):

    session.sql(text, paradigm='udf_centric')            every model call of the query
    %%dlsql --paradigm udf_centric                          the same, from the magic
    SELECT /*+ paradigm(digits, relation_centric) */ ...   one model, in the SQL itself

Hint comments are read from the tokenizer's comments, so text inside a string literal is
never taken for a hint.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from workbench.errors import ParameterError
from workbench.plan.nodes import PARADIGMS

_HINT = re.compile(r"paradigm\s*\(\s*([A-Za-z_][\w]*)\s*,\s*'?([A-Za-z_]+)'?\s*\)", re.IGNORECASE)


@dataclass(frozen=True)
class Hints:
    paradigm: str | None = None  # for every model call of the query
    per_model: dict[str, str] = field(default_factory=dict)

    def forced(self, model: str) -> str | None:
        return self.per_model.get(model.lower(), self.paradigm)


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
    for comment in comments:
        text = comment.strip()
        if not text.startswith("+"):
            continue
        body = text[1:]
        found = list(_HINT.finditer(body))
        if not found and "paradigm" in body.lower():
            raise ParameterError(f"cannot read the hint /*{comment}*/; write /*+ paradigm(model_name, udf_centric) */")
        for m in found:
            per_model[m.group(1).lower()] = check(m.group(2))  # type: ignore[assignment]
    return Hints(check(paradigm), per_model)
