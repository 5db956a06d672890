"""How SQL names a model operator's output: the one place the convention is written.

The builder writes `__wb_lookup_<id>` where a statement reads operator `<id>`; the runner
renames it `__wb_<execution>_lookup_<id>` for one execution (DuckDB keeps Python UDFs
database-wide, so concurrent statements need names of their own); people read `lookup_<id>`.
"""

from __future__ import annotations

import re

_PREFIX = "__wb_lookup_"
_NAME = re.compile(r"__wb_lookup_(\d+)$", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"\b__wb_lookup_(\d+)\b", re.IGNORECASE)
_ANY = re.compile(r"\b__wb_(?:\d+_)?lookup_(\d+)\b", re.IGNORECASE)


def lookup_name(op_id: int) -> str:
    """The function through which a planned statement reads operator `op_id`'s output."""
    return f"{_PREFIX}{op_id}"


def operator_id(function_name: str) -> int | None:
    """The operator a function name stands for (`__wb_lookup_12` -> 12), or None."""
    m = _NAME.match(function_name)
    return int(m.group(1)) if m else None


def for_execution(sql: str, execution: int) -> str:
    """`sql` with the plan's names made unique to one execution (exact tokens: renaming
    `__wb_lookup_1` never touches `__wb_lookup_10`)."""
    return _PLACEHOLDER.sub(rf"__wb_{execution}_lookup_\1", sql)


def public_sql(sql: str) -> str:
    """SQL as users read it: `lookup_3(x)` instead of the engine's `__wb_lookup_3(x)` or
    `__wb_7_lookup_3(x)`."""
    return _ANY.sub(r"lookup_\1", sql)
