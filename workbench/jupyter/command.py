"""Parse the options of a `%dlsql` / `%%dlsql` line, without IPython (unit-testable).

    %%dlsql [-o NAME] [--limit N] [--db PATH] [--batch-size N]
    <dlsql text>

    %dlsql [options] <dlsql text on one line>
    %dlsql --session            the Session object of this notebook
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from workbench.errors import WorkbenchError


class UsageError(WorkbenchError):
    """The magic's own options are wrong."""


@dataclass(frozen=True)
class Command:
    sql: str
    output: str | None = None
    limit: int | None = None
    database: str | None = None
    batch_size: int | None = None
    session: bool = False


_VALUED = {"-o": "output", "--out": "output", "--limit": "limit", "--db": "database",
           "--batch-size": "batch_size"}
_INTS = {"limit", "batch_size"}


def parse(line: str, cell: str | None = None) -> Command:
    """Options come first on the line; the rest of the line (line magic) or the cell is SQL."""
    values: dict[str, object] = {}
    rest = line.strip()
    while rest.startswith("-"):
        head, _, tail = rest.partition(" ")
        if "=" in head and head.split("=", 1)[0] in _VALUED:
            head, value = head.split("=", 1)
            tail = f"{shlex.quote(value)} {tail}"
        if head in ("--session", "-s"):
            values["session"] = True
            rest = tail.strip()
            continue
        if head not in _VALUED:
            raise UsageError(f"unknown option {head} (options: -o NAME, --limit N, --db PATH, "
                             "--batch-size N, --session)")
        try:
            parts = shlex.split(tail, posix=True)
        except ValueError as exc:
            raise UsageError(f"cannot read the value of {head}: {exc}") from None
        if not parts:
            raise UsageError(f"option {head} needs a value")
        key, raw = _VALUED[head], parts[0]
        if key in _INTS:
            if not raw.isdigit() or int(raw) < 1:
                raise UsageError(f"option {head} needs a positive integer, got {raw!r}")
            values[key] = int(raw)
        elif key == "output" and not raw.isidentifier():
            raise UsageError(f"-o needs a Python variable name, got {raw!r}")
        else:
            values[key] = raw
        # drop the value token from the raw text (keep the SQL exactly as typed)
        tail = tail.lstrip()
        tail = tail[len(raw):] if tail.startswith(raw) else tail.split(None, 1)[1] if " " in tail else ""
        rest = tail.strip()
    sql = rest if cell is None else (rest + "\n" + cell if rest else cell)
    return Command(sql=sql, **values)  # type: ignore[arg-type]
