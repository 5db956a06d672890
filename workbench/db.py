"""Small helpers over a DuckDB connection, and DuckDB errors turned into workbench errors.

DuckDB 2.0 keeps a statement's result open until it is fetched, and refuses new work on the
connection meanwhile; `run` always fetches, so side-effect statements never leave one open.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import duckdb

from workbench.errors import (
    CatalogError,
    ExecutionError,
    OutOfMemoryBudget,
    QueryInterrupted,
    SQLSyntaxError,
    WorkbenchError,
)

if TYPE_CHECKING:
    from workbench.plan.nodes import Plan


def run(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> list:
    return con.execute(sql, params).fetchall() if params is not None else con.execute(sql).fetchall()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    run(con, "BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        run(con, "ROLLBACK")
        raise
    run(con, "COMMIT")


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def position(caret_block: str) -> str:
    """' (line n, column c)' from the rest of DuckDB's 'LINE n: <excerpt>' / '   ^' block
    (no column when DuckDB cut the excerpt's start, as it does on a long line)."""
    excerpt, _, marks = caret_block.partition("\n")
    number, _, text = excerpt.partition(": ")
    if not number.isdigit():
        return ""
    column = len(marks) - len(marks.lstrip(" ")) - len(f"LINE {number}: ") + 1
    if text.startswith("...") or column < 1 or "^" not in marks:
        return f" (line {number})"
    return f" (line {number}, column {column})"


def translate_error(exc: duckdb.Error, plan: Plan | None, models: set[str]) -> WorkbenchError:
    msg = re.sub(r"^[A-Za-z ]+ Error: ", "", str(exc).strip())  # our error class names the kind
    # one line: DuckDB's "LINE n:" excerpt with a caret under it becomes "(line n, column c)"
    head, sep, caret = msg.partition("\n\nLINE ")
    msg = " ".join(line.strip() for line in head.splitlines() if line.strip()) + (position(caret) if sep else "")
    if "Possible solutions:" in msg:  # DuckDB's tuning advice; our message says what to do
        msg = msg.split("Possible solutions:")[0].rstrip()
    if "Candidate functions:" in msg:  # DuckDB lists every overload; the first line says it
        head, _, rest = msg.partition("Candidate functions:")
        msg = head.rstrip() + f" ({len(rest.strip().splitlines())} candidate signatures)"
    names = {str(op.id): op.model for op in plan.operators} if plan is not None else {}
    # show the user's model names, never our lookup functions
    msg = re.sub(
        r"__wb_(?:\d+_)?lookup_(\d+)", lambda m: names.get(m.group(1), "<model call>"), msg, flags=re.IGNORECASE
    )
    if isinstance(exc, duckdb.InterruptException) or "interrupted" in msg.lower():
        return QueryInterrupted("query interrupted; nothing was saved")
    if isinstance(exc, duckdb.OutOfMemoryException):
        return OutOfMemoryBudget(
            f"out of memory budget in DuckDB: {msg} (SET memory_budget_cpu = ... to raise "
            "the budget, or select fewer rows)"
        )
    if isinstance(exc, duckdb.ParserException):
        return SQLSyntaxError(msg)
    if isinstance(exc, duckdb.CatalogException):
        if "Function with name" in msg:
            known = sorted(models)
            msg += f" (models: {', '.join(known[:12])}{', …' if len(known) > 12 else ''})"
        return CatalogError(msg)
    if isinstance(exc, duckdb.BinderException) and ("not found" in msg or "does not exist" in msg):
        return CatalogError(msg)
    return ExecutionError(msg)


def quiet_progress_bar(con: duckdb.DuckDBPyConnection) -> None:
    """Turn DuckDB's progress bar off on a new cursor: in a kernel it becomes a widget that
    outlives the cell as a blank box; the engine's own telemetry reports instead. (A local
    setting; safe mode's locked configuration keeps DuckDB's default, silent under 2 s.)"""
    try:
        con.execute("SET enable_progress_bar = false").fetchall()
    except duckdb.Error:
        pass


class PerThread:
    """A DuckDB cursor of `con` for each thread that asks: an object shared by a session's
    threads (the catalog, the cache) runs its statements on the calling thread's own
    cursor, so two threads never share one connection."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.root = con
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[duckdb.DuckDBPyConnection] = []

    def get(self) -> duckdb.DuckDBPyConnection:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            with self._lock:
                cursor = self.root.cursor()
                self._all.append(cursor)
            quiet_progress_bar(cursor)
            self._local.cursor = cursor
        return cursor

    def close(self) -> None:
        """Close every thread's cursor (the database file is released once all are closed)."""
        with self._lock:
            cursors, self._all = self._all, []
        for cursor in cursors:
            try:
                cursor.close()
            except duckdb.Error:  # pragma: no cover - closed with the database already
                pass
