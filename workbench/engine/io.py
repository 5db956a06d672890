"""DuckDB execution for one call: its own cursor, interrupts, and short errors.

Every `Session` call (and every worker thread of the scheduler) runs on a `Cursor` of its
own, so one session serves any number of threads: DuckDB refuses a second statement on a
connection that is busy, but cursors of one database run side by side. The temporary
functions and views a statement defines live on its cursor and vanish with it.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any

import duckdb
import pyarrow as pa

from workbench.db import quiet_progress_bar, translate_error
from workbench.errors import QueryInterrupted
from workbench.plan.nodes import Plan

INTERRUPTED = "query interrupted; nothing was saved"
# the threads DuckDB calls of the main thread run on (so Ctrl-C reaches the main thread at once)
_HELPERS = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="workbench-duckdb")


class Cursor:
    """A DuckDB cursor for one call. `fetch` runs a query to an Arrow table; errors come
    back as workbench errors naming the user's models, never the engine's functions."""

    def __init__(self, con: duckdb.DuckDBPyConnection, model_names: Callable[[], set[str]]):
        self.con = con.cursor()
        self.model_names = model_names
        self.plan: Plan | None = None  # the statement being run, for error messages
        # DuckDB's own progress bar becomes an ipywidget that outlives the cell as a blank box
        quiet_progress_bar(self.con)

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.con.close()
        except duckdb.Error:  # pragma: no cover - already closed with the database
            pass

    # -- queries ------------------------------------------------------------------------
    def fetch(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        """Run one statement and return its rows (an empty table for a statement without)."""

        def go() -> pa.Table:
            rel = self.con.sql(sql, params=params or None)
            return pa.table({}) if rel is None else rel.to_arrow_table()

        return self.guarded(lambda: interruptible(go, self.con))

    def guarded(self, fn: Callable[[], Any]) -> Any:
        """Run `fn`, turning DuckDB errors and interrupts into short workbench errors."""
        return guarded(fn, self.plan, self.model_names)

    # -- what planning reads --------------------------------------------------------------
    def columns_of(self, from_item: str) -> set[str] | None:
        try:
            return {c.lower() for c in self.con.sql(f"SELECT * FROM {from_item} LIMIT 0").columns}
        except duckdb.Error:
            return None

    def type_of(self, query: str, params: dict[str, Any]) -> str:
        rel = self.guarded(lambda: self.con.sql(f"SELECT * FROM ({query}) LIMIT 0", params=params or None))
        return str(rel.types[0])

    def relational_plan(self, sql: str, params: dict[str, Any]) -> str:
        """DuckDB's own EXPLAIN of a statement ('' when it cannot explain it)."""
        try:
            rows = self.con.sql(f"EXPLAIN {sql}", params=params or None).fetchall()
        except duckdb.Error:
            return ""
        return "\n".join(str(r[1]) for r in rows)


def guarded(fn: Callable[[], Any], plan: Plan | None, model_names: Callable[[], set[str]]) -> Any:
    try:
        return fn()
    except KeyboardInterrupt:
        raise QueryInterrupted(INTERRUPTED) from None
    except RuntimeError as exc:  # DuckDB reports an interrupted query as RuntimeError
        if "interrupted" in str(exc).lower():
            raise QueryInterrupted(INTERRUPTED) from None
        raise
    except duckdb.Error as exc:
        raise translate_error(exc, plan, model_names()) from None


def interruptible(fn: Callable[[], Any], con: duckdb.DuckDBPyConnection) -> Any:
    """Run a DuckDB call so that Ctrl-C stops it at once.

    DuckDB notices a SIGINT only between result chunks (an Arrow fetch of a long aggregate
    can run on for many seconds). On the main thread (where Python delivers Ctrl-C) the call
    runs on a helper thread while the main thread waits, and a KeyboardInterrupt asks DuckDB
    to interrupt this cursor's query. Other threads never see Ctrl-C: they call directly.
    """
    if threading.current_thread() is not threading.main_thread():
        return fn()
    future = _HELPERS.submit(fn)  # a pooled thread: starting one per query costs more than the query
    try:
        while True:
            try:
                return future.result(timeout=0.1)
            except concurrent.futures.TimeoutError:
                continue
    except KeyboardInterrupt:
        con.interrupt()
        concurrent.futures.wait([future])
        raise
