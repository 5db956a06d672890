"""Result comparison: floats within 1e-4 (relative or absolute), NULL equal to NULL only,
rows in order where the statement fixes it, otherwise as multisets."""

from __future__ import annotations

import datetime
import math
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

TOLERANCE = 1e-4


@dataclass(frozen=True)
class Rows:
    """A statement's answer: column names and rows (tuples of Python values)."""

    columns: tuple[str, ...]
    types: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    @classmethod
    def of(cls, table: pa.Table) -> Rows:
        rows = tuple(zip(*(column.to_pylist() for column in table.columns)))  # duplicate names kept
        return cls(tuple(table.column_names), tuple(str(t) for t in table.schema.types), rows)


def close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=TOLERANCE)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(close(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _key(v: Any) -> tuple:
    """A sort key that puts rows equal within the tolerance next to each other (mostly)."""
    if v is None:
        return (0,)
    if isinstance(v, bool):
        return (1, int(v))
    if isinstance(v, float):
        return (2, 0.0) if math.isnan(v) else (1, round(v, 3))
    if isinstance(v, (int, str, bytes, datetime.date, datetime.time, datetime.timedelta)):
        return (1, v) if not isinstance(v, (str, bytes)) else (3, v)
    if isinstance(v, (list, tuple)):
        return (4, tuple(_key(x) for x in v))
    if isinstance(v, dict):
        return (5, tuple((k, _key(x)) for k, x in v.items()))
    return (6, repr(v))


def _show(row: tuple) -> str:
    text = repr(row)
    return text if len(text) < 400 else text[:400] + " ..."


def first_difference(expected: Rows, got: Rows, *, ordered: bool) -> str | None:
    """None when the answers agree; else what differs first, in words."""
    if [c.lower() for c in expected.columns] != [c.lower() for c in got.columns]:
        return f"columns differ: expected {list(expected.columns)}, got {list(got.columns)}"
    if expected.types != got.types:
        return f"column types differ: expected {list(expected.types)}, got {list(got.types)}"
    if len(expected.rows) != len(got.rows):
        extra = _unmatched(expected.rows, got.rows)
        return (
            f"{len(got.rows)} rows instead of {len(expected.rows)}; "
            + (f"first expected row not in the result: {_show(extra[0])}" if extra[0] else "")
            + (f" first unexpected row: {_show(extra[1])}" if extra[1] else "")
        ).strip()
    if ordered:
        for i, (a, b) in enumerate(zip(expected.rows, got.rows)):
            if not close(a, b):
                return f"row {i}: expected {_show(a)}, got {_show(b)}"
        return None
    missing, unexpected = _unmatched(expected.rows, got.rows)
    if missing is None:
        return None
    return f"expected row {_show(missing)} is missing; unexpected row {_show(unexpected)}"


def _unmatched(expected: tuple[tuple, ...], got: tuple[tuple, ...]) -> tuple[tuple | None, tuple | None]:
    """(first expected row with no equal row in `got`, first row of `got` left unmatched)."""
    a = sorted(expected, key=lambda r: tuple(_key(v) for v in r))
    b = sorted(got, key=lambda r: tuple(_key(v) for v in r))
    if len(a) == len(b) and all(close(x, y) for x, y in zip(a, b)):
        return None, None
    left = list(b)
    missing = None
    for row in a:  # greedy matching: rows near a rounding edge may sort apart
        for j, other in enumerate(left):
            if close(row, other):
                del left[j]
                break
        else:
            missing = missing or row
    return missing, (left[0] if left else None)
