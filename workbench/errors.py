"""The errors a user can see. Every one is a short message that names the object at fault.

Users of SQL tools read error messages, not tracebacks: the magic prints these without a
Python traceback, and the Python API raises them as ordinary exceptions.
"""

from __future__ import annotations

#: longest message we show; longer ones (a 10 KB identifier echoed back) are cut in the middle
MAX_MESSAGE = 1000


def shorten(message: str, limit: int = MAX_MESSAGE) -> str:
    if len(message) <= limit:
        return message
    half = limit // 2 - 10
    return f"{message[:half]} … ({len(message) - 2 * half:,} characters cut) … {message[-half:]}"


class WorkbenchError(Exception):
    """Base of every error the workbench raises on purpose."""


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
