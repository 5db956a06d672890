"""`:name` parameters: find them and turn them into DuckDB's own `$name` parameters.

Python values reach SQL only as bound parameters, never by string formatting. DuckDB binds
`$name` natively; `:name` is the spelling notebook users know from other SQL tools, so we
rewrite the token (not the value) and let DuckDB do the binding.

A DataFrame or Arrow table cannot be bound as a value: in a FROM or JOIN (`FROM :df`) it is
a table, and `tables_in_from` swaps the parameter for an internal table name that the
caller registers on the statement's cursor (the SQL names the data; it never contains it).
"""

from __future__ import annotations

import datetime
import decimal
import itertools
import sys
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


def is_table(value: Any) -> bool:
    """Whether DuckDB can scan `value` as a table: a polars DataFrame or LazyFrame, a pandas
    DataFrame, a pyarrow Table, RecordBatch or Dataset. Each library is looked up among the
    imported modules, never imported here: a value of a library not imported cannot be one."""
    library = type(value).__module__.partition(".")[0]
    if library == "polars":
        pl = sys.modules["polars"]
        return isinstance(value, (pl.DataFrame, pl.LazyFrame))
    if library == "pandas":
        return isinstance(value, sys.modules["pandas"].DataFrame)
    if library == "pyarrow":
        pa, ds = sys.modules["pyarrow"], sys.modules.get("pyarrow.dataset")
        return isinstance(value, (pa.Table, pa.RecordBatch)) or (ds is not None and isinstance(value, ds.Dataset))
    return False


#: the names `tables_in_from` gives tables bound as parameters (fresh per statement)
_internal = itertools.count(1)
INTERNAL_PREFIX = "__wb_table_"

# a parameter right after one of these is a table, not a value
_TABLE_BEFORE = {TokenType.FROM, TokenType.JOIN}
# the clause keywords that say whether a `, :name` continues a FROM list
_CLAUSES = _TABLE_BEFORE | {
    TokenType.SELECT,
    TokenType.WHERE,
    TokenType.GROUP_BY,
    TokenType.HAVING,
    TokenType.ORDER_BY,
    TokenType.LIMIT,
    TokenType.ON,
    TokenType.USING,
    TokenType.SET,
    TokenType.VALUES,
    TokenType.QUALIFY,
    TokenType.WINDOW,
}
_OPEN = {TokenType.L_PAREN, TokenType.L_BRACKET, TokenType.L_BRACE}
_CLOSE = {TokenType.R_PAREN, TokenType.R_BRACKET, TokenType.R_BRACE}


def tables_in_from(
    text: str, start: int, tokens: Sequence[Token], params: Mapping[str, Any] | None
) -> tuple[str, dict[str, Any]]:
    """`text` with each `:name` / `$name` in table position (after FROM or JOIN, or in a
    FROM list) whose value is a table (`is_table`) replaced by a fresh internal name, kept
    as `name` by an alias unless the query gives its own; and those internal names' values.

    `start` is the offset of `text` inside the text the tokens were made from."""
    if not params:
        return text, {}
    swaps: list[tuple[int, int, str]] = []
    tables: dict[str, Any] = {}
    for i, tok in enumerate(tokens[:-1]):
        if tok.token_type not in (TokenType.COLON, TokenType.PARAMETER) or not _table_position(tokens, i):
            continue
        name_tok = tokens[i + 1]
        name = name_tok.text
        if name_tok.start != tok.end + 1 or not name.isidentifier() or not is_table(params.get(name)):
            continue
        internal = f"{INTERNAL_PREFIX}{next(_internal)}"
        tables[internal] = params[name]
        follows = tokens[i + 2].token_type if i + 2 < len(tokens) else None
        aliased = follows in (TokenType.ALIAS, TokenType.VAR, TokenType.IDENTIFIER)
        spelled = internal if aliased else f'{internal} AS "{name}"'
        swaps.append((tok.start - start, name_tok.end + 1 - start, spelled))
    for begin, end, spelled in reversed(swaps):
        text = text[:begin] + spelled + text[end:]
    return text, tables


def _table_position(tokens: Sequence[Token], i: int) -> bool:
    """Whether the token before `tokens[i]` puts it where a table goes."""
    if i == 0:
        return False
    before = tokens[i - 1].token_type
    if before in _TABLE_BEFORE:
        return True
    if before != TokenType.COMMA:
        return False
    depth = 0  # the nearest clause keyword at this nesting depth says which list the comma is in
    for tok in reversed(tokens[: i - 1]):
        if tok.token_type in _CLOSE:
            depth += 1
        elif tok.token_type in _OPEN:
            if depth == 0:
                return False
            depth -= 1
        elif depth == 0 and tok.token_type in _CLAUSES:
            return tok.token_type in _TABLE_BEFORE
    return False


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
    if is_table(value):
        raise ParameterError(
            f"parameter :{name} is a {type(value).__name__}: a table goes after FROM or JOIN (SELECT ... FROM :{name})"
        )
    raise ParameterError(f"parameter :{name} is a {type(value).__name__}, which cannot be bound to SQL")
