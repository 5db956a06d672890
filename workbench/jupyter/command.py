"""Parse the options of a `%dlsql` / `%%dlsql` line, without IPython (unit-testable).

%%dlsql [-o NAME] [--limit N] [--db PATH] [--batch-size N]
<dlsql text>

%%dlsql --deadline 500ms --async     submit to the worker pool; returns a QueryFuture
%%dlsql --paradigm udf_centric       force how every model call runs
%%dlsql --cluster local              connect the notebook's session to a Ray cluster first
                                     ('ray://host:port', 'host:port', 'auto', 'local', 'none')

%dlsql [options] <dlsql text on one line>
%dlsql --session            the Session object of this notebook
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from workbench.errors import UsageError, WorkbenchError

__all__ = ["Command", "UsageError", "parse"]


@dataclass(frozen=True)
class Command:
    sql: str
    output: str | None = None
    limit: int | None = None
    database: str | None = None
    batch_size: int | None = None
    session: bool = False
    deadline_ms: float | None = None
    run_async: bool = False
    paradigm: str | None = None
    cluster: str | None = None


_VALUED = {
    "-o": "output",
    "--out": "output",
    "--limit": "limit",
    "--db": "database",
    "--batch-size": "batch_size",
    "--deadline": "deadline_ms",
    "--paradigm": "paradigm",
    "--cluster": "cluster",
}
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
        if head in ("--session", "-s", "--async"):
            values["run_async" if head == "--async" else "session"] = True
            rest = tail.strip()
            continue
        if head not in _VALUED:
            raise UsageError(
                f"unknown option {head} (options: -o NAME, --limit N, --db PATH, "
                "--batch-size N, --deadline 500ms, --async, --paradigm NAME, --cluster SPEC, --session)"
            )
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
        elif key == "deadline_ms":
            values[key] = _duration_ms(raw)
        elif key == "paradigm":
            from workbench.optimizer.hints import check

            try:
                values[key] = check(raw)
            except WorkbenchError as exc:
                raise UsageError(f"--paradigm: {exc}") from None
        elif key == "cluster":
            from workbench.engine.config import cluster_spec

            try:
                values[key] = cluster_spec(raw) or "none"
            except WorkbenchError as exc:
                raise UsageError(f"--cluster: {exc}") from None
        else:
            values[key] = raw
        # drop the value token from the raw text (keep the SQL exactly as typed)
        tail = tail.lstrip()
        tail = tail[len(raw) :] if tail.startswith(raw) else tail.split(None, 1)[1] if " " in tail else ""
        rest = tail.strip()
    sql = rest if cell is None else (rest + "\n" + cell if rest else cell)
    return Command(sql=sql, **values)  # type: ignore[arg-type]


def _duration_ms(text: str) -> float:
    """'500ms', '2s', '1.5s' or a number of milliseconds."""
    import re

    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s)?", text.strip().lower())
    if not m or float(m.group(1)) <= 0:
        raise UsageError(f"--deadline needs a duration like 500ms or 2s, got {text!r}")
    return float(m.group(1)) * (1000 if m.group(2) == "s" else 1)
