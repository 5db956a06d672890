"""The errors a user can see. Every one is a short message that names the object at fault.

Users of SQL tools read error messages, not tracebacks: the magic prints these without a
Python traceback, and the Python API raises them as ordinary exceptions.
"""

from __future__ import annotations

import re

#: longest message we show: a 10 KB identifier echoed back by DuckDB would bury the point
MAX_MESSAGE = 300
#: an identifier or literal longer than this is shown as its start, '…' and its end
LONG_WORD, KEEP_HEAD, KEEP_TAIL = 50, 40, 10

_WORD = re.compile(rf"[^\s\"']{{{LONG_WORD + 1},}}")  # quotes stay around what they quote
_BREAK = re.compile(r"\s*[\r\n]\s*")


def shorten(message: str, limit: int = MAX_MESSAGE) -> str:
    """`message` on one line of at most `limit` characters.

    Over the limit, long words (identifiers, literals, paths) are abbreviated in the middle,
    longest first, until the message fits: the words that say what went wrong stay whole.
    When that cannot make it fit (a long list of short words), only the words too long to
    keep anyway are abbreviated, and the message is cut in the middle.
    """
    text = _BREAK.sub(" ", message.strip())
    excess = len(text) - limit
    if excess <= 0:
        return text
    kept = KEEP_HEAD + 1 + KEEP_TAIL
    words = sorted(_WORD.finditer(text), key=lambda m: -len(m.group()))
    if sum(len(m.group()) - kept for m in words) < excess:
        words = [m for m in words if len(m.group()) > limit // 3]
    cuts = []
    for m in words:
        if excess <= 0:
            break
        cuts.append(m)
        excess -= len(m.group()) - kept
    for m in sorted(cuts, key=lambda m: -m.start()):
        word = m.group()
        text = text[: m.start()] + word[:KEEP_HEAD] + "…" + word[-KEEP_TAIL:] + text[m.end() :]
    if len(text) <= limit:
        return text
    half = (limit - 3) // 2
    return f"{text[: limit - 3 - half].rstrip()} … {text[-half:].lstrip()}"


class WorkbenchError(Exception):
    """Base of every error the workbench raises on purpose. Its message is one line of at
    most MAX_MESSAGE characters, whoever raised it (users read it, not a traceback)."""

    def __init__(self, message: object = "", *args: object):
        super().__init__(shorten(str(message)), *args)


class SQLSyntaxError(WorkbenchError):
    """The dlsql text does not parse (DuckDB's or our own model-statement grammar)."""


class CatalogError(WorkbenchError):
    """A table, column, function or model name that does not exist (or already exists)."""


class UnknownModelError(CatalogError):
    """A model name that is not in the model catalog."""


class InputTypeError(WorkbenchError):
    """A model was called with an input of the wrong SQL type."""


class ModelLoadError(WorkbenchError):
    """A model could not be loaded: missing file, unsafe format, bad config."""


class ModelError(WorkbenchError):
    """A model raised, or returned something of the wrong shape or type, while running."""


class ParameterError(WorkbenchError):
    """A `:name` parameter has no value, or a value that cannot be bound."""


class ExecutionError(WorkbenchError):
    """DuckDB refused or failed a statement (conversion, constraint, I/O...)."""


class QueryInterrupted(WorkbenchError):
    """The user interrupted the query (Ctrl-C, kernel interrupt). Nothing partial was kept."""


class OutOfMemoryBudget(WorkbenchError):
    """A query needed more memory than the session's budget (SET memory_budget_cpu) allows."""


class ParadigmUnavailable(WorkbenchError):
    """A paradigm forced by a hint or `paradigm=` cannot run this model (no relational form,
    a compressed variant, ...). Over the memory budget it is `OutOfMemoryBudget` instead."""


class ClusterError(WorkbenchError):
    """A Ray cluster cannot be reached, is not installed, or vanished while a query ran
    (nothing of that query was written)."""


class ClusterUnavailable(ClusterError):
    """The Ray cluster vanished (its nodes stopped, its head went away) while the session used
    it: the query failed and wrote nothing, the session goes on, and reconnects once it is back."""


class UnsupportedCall(WorkbenchError):
    """A model call in a position the engine cannot run yet."""


class CacheError(WorkbenchError):
    """A bad inference-cache setting."""


class QueryDropped(WorkbenchError):
    """The sequencer did not run the query (it could not meet its deadline, or was cancelled)."""


class UsageError(WorkbenchError):
    """The `%%dlsql` magic's own options are wrong."""


class DlsqlError(Exception):
    """Shown in the notebook as one short line, without a Python traceback (raised by the
    magic for every error, ours or not, so the kernel never prints a stack)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind

    def _render_traceback_(self) -> list[str]:
        return [f"{self.kind}: {self}"]
