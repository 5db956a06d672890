"""The hand-written corpus (`corpus.sql`, the spec) read into `Case`s.

A case says what to compare: `ordered`, the top-level ORDER BY ends in a unique key, so rows
are compared in order (otherwise as multisets); `tables`, the statement changes these tables
(made afresh from `FRESH` before each run, compared after it); `copy`, the statement writes
`{out}` in this format, read back and compared; `params`, values of its `:name` parameters.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).with_name("corpus.sql")

#: tables a statement may change, made afresh (in both databases) before each run
FRESH = {
    "t_px": "CREATE OR REPLACE TABLE t_px AS SELECT * FROM px WHERE id < 40 OR id >= 300",
    "t_nums": "CREATE OR REPLACE TABLE t_nums AS SELECT * FROM nums",
    "t_ev": "CREATE OR REPLACE TABLE t_ev AS SELECT * FROM ev",
    "t_out": "CREATE OR REPLACE TABLE t_out (id INTEGER, l INTEGER, s FLOAT)",
}


@dataclass(frozen=True)
class Case:
    id: str
    sql: str
    ordered: bool = False
    tables: tuple[str, ...] = ()
    copy: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


_HEADER = re.compile(r"-- @(?P<shape>[\w-]+)(?P<flags>.*)$")


def parse(text: str) -> list[Case]:
    """Cases from corpus text: a `-- @shape flags` line, then the SQL up to the next header."""
    numbers: Counter[str] = Counter()
    cases: list[Case] = []
    header: re.Match[str] | None = None
    lines: list[str] = []

    def close() -> None:
        if header is None:
            return
        sql = "\n".join(lines).strip().rstrip(";").strip()
        shape, flags = header["shape"], header["flags"].strip()
        numbers[shape] += 1
        params = {}
        if "params=" in flags:
            flags, raw = flags.split("params=", 1)
            params = json.loads(raw)
        words = dict(w.split("=", 1) if "=" in w else (w, "") for w in flags.split())
        unknown = set(words) - {"ordered", "tables", "copy"}
        if unknown or not sql:
            raise ValueError(f"corpus case {shape}-{numbers[shape]}: bad flags {sorted(unknown)} or no SQL")
        tables = tuple(words["tables"].split(",")) if "tables" in words else ()
        cases.append(Case(f"{shape}-{numbers[shape]}", sql, "ordered" in words, tables, words.get("copy"), params))

    for line in text.splitlines():
        match = _HEADER.match(line)
        if match:
            close()
            header, lines = match, []
        elif not line.startswith("--"):
            lines.append(line)
    close()
    return cases


CORPUS = parse(SOURCE.read_text())
