"""`:name` parameters: find them and turn them into DuckDB's own `$name` parameters.

Python values reach SQL only as bound parameters, never by string formatting. DuckDB binds
`$name` natively; `:name` is the spelling notebook users know from other SQL tools, so we
rewrite the token (not the value) and let DuckDB do the binding.
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlglot.tokens import Token, TokenType

from workbench.errors import ParameterError

# After one of these a ':' is an operator (struct literal `{'a': b}`, slice `x[1:n]`),
# never the start of a parameter.
_VALUE_END = {
    TokenType.VAR,
    TokenType.IDENTIFIER,
    TokenType.STRING,
    TokenType.NUMBER,
    TokenType.R_PAREN,
    TokenType.R_BRACKET,
    TokenType.R_BRACE,
}


def rewrite(text: str, start: int, tokens: Sequence[Token]) -> tuple[str, list[str]]:
    """Return `text` with `:name` spelled `$name`, and the parameter names it uses.

    `start` is the offset of `text` inside the text the tokens were made from.
    """
    names: list[str] = []
    cuts: list[int] = []
    for i, tok in enumerate(tokens):
        if tok.token_type == TokenType.PARAMETER and i + 1 < len(tokens):
            names.append(tokens[i + 1].text)  # already DuckDB's $name
            continue
        if tok.token_type != TokenType.COLON or i + 1 >= len(tokens):
            continue
        nxt = tokens[i + 1]
        adjacent = nxt.start == tok.end + 1
        after_value = i > 0 and tokens[i - 1].token_type in _VALUE_END
        if adjacent and not after_value and nxt.text.isidentifier():
            names.append(nxt.text)
            cuts.append(tok.start - start)
    for cut in reversed(cuts):
        text = text[:cut] + "$" + text[cut + 1 :]
    return text, list(dict.fromkeys(names))


def bind(names: list[str], params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The values for `names`, or a short error naming the first missing one."""
    values: dict[str, Any] = {}
    for name in names:
        if params is None or name not in params:
            raise ParameterError(
                f"no value for parameter :{name} (pass params={{'{name}': ...}}, or define "
                f"a Python variable '{name}' in the notebook)"
            )
        values[name] = _plain(params[name], name)
    return values


_SCALARS = (
    type(None),
    bool,
    int,
    float,
    str,
    bytes,
    decimal.Decimal,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    uuid.UUID,
)


def _plain(value: Any, name: str) -> Any:
    """Values DuckDB binds natively (numpy/torch arrays and scalars become lists/numbers)."""
    if hasattr(value, "tolist") and not isinstance(value, _SCALARS):
        value = value.tolist()
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, name) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain(v, name) for k, v in value.items()}
    raise ParameterError(f"parameter :{name} is a {type(value).__name__}, which cannot be bound to SQL")
