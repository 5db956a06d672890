"""DuckDB execution for one call: its own cursor, interrupts, and short errors.

Every `Session` call runs on a `Cursor` over its thread's own DuckDB connection, so one
session serves any number of threads (DuckDB refuses a second statement on a connection
that is busy, but cursors of one database run side by side), and what a user's statement
leaves on its connection (TEMP tables, an open transaction) is there for the next call of
the same thread. The functions, views and DataFrames the engine registers for a statement
are removed when the call ends.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import duckdb
import pyarrow as pa

from workbench.db import quiet_progress_bar, translate_error
from workbench.errors import QueryInterrupted
from workbench.models.base import one_statement
from workbench.plan.nodes import Plan
from workbench.sql.params import INTERNAL_PREFIX

INTERRUPTED = "query interrupted; nothing was saved"
# the threads DuckDB calls of the main thread run on (so Ctrl-C reaches the main thread at once)
_HELPERS = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="workbench-duckdb")


class Cursor:
    """A DuckDB cursor for one call. `fetch` runs a query to an Arrow table; errors come
    back as workbench errors naming the user's models, never the engine's functions."""

    def __init__(self, con: duckdb.DuckDBPyConnection, model_names: Callable[[], set[str]], *, shared: bool = False):
        """`shared`: `con` is the calling thread's own connection, kept between calls (so the
        user's TEMP tables and open transaction live on); the cursor leaves it as it found it
        apart from what the user's statements did. Otherwise a new cursor of `con`."""
        self.shared = shared
        self.con = con if shared else con.cursor()
        self.model_names = model_names
        self.plan: Plan | None = None  # the statement being run, for error messages
        self._frames: list[str] = []  # DataFrames registered for this call only
        # called at Ctrl-C, after DuckDB was asked to stop: what runs inside the statement
        # (a UDF's model, which DuckDB cannot stop mid-call) is told to stop too
        self.on_interrupt: list[Callable[[], None]] = []
        # DuckDB's own progress bar becomes an ipywidget that outlives the cell as a blank box
        quiet_progress_bar(self.con)

    def __enter__(self) -> Cursor:
        self._statement = one_statement()
        self._statement.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.close()
        finally:
            self._statement.__exit__(None, None, None)

    def close(self) -> None:
        if self.shared:  # the connection stays; the frames this call registered go
            for name in self._frames:
                try:
                    self.con.unregister(name)
                except duckdb.Error:  # pragma: no cover - gone with the database
                    pass
            return
        try:
            self.con.close()
        except duckdb.Error:  # pragma: no cover - already closed with the database
            pass

    # -- DataFrames the statement reads ---------------------------------------------------
    def register_frames(self, frames: Mapping[str, Any]) -> None:
        """Make each DataFrame / Arrow table scannable under its name, on this cursor alone
        (DuckDB keeps it as a temporary view that goes with the cursor), before planning, so
        planning and running both read it. A name that already is a table or view of the
        database stays that table: the database wins, as with DuckDB's replacement scans
        (DuckDB's own scan cannot see the caller's variables: queries run on another thread)."""
        for name, frame in frames.items():
            if name.startswith(INTERNAL_PREFIX) or not self._is_relation(name):
                self.guarded(lambda: self.con.register(name, frame))  # noqa: B023 - called at once
                self._frames.append(name)

    def _is_relation(self, name: str) -> bool:
        """Whether `name` is a table or view here. (DuckDB's replacement scan looks at the
        calling Python frame: this one holds no DataFrame for it to pick up instead.)"""
        quoted = '"' + name.replace('"', '""') + '"'
        try:
            self.con.sql(f"SELECT * FROM {quoted} LIMIT 0")
        except duckdb.Error:
            return False
        return True

    # -- queries ------------------------------------------------------------------------
    def fetch(self, sql: str, params: dict[str, Any] | None = None) -> pa.Table:
        """Run one statement and return its rows (an empty table for a statement without)."""

        def go() -> pa.Table:
            rel = self.con.sql(sql, params=params or None)
            return pa.table({}) if rel is None else rel.to_arrow_table()

        return self.guarded(lambda: interruptible(go, self.con, self._interrupted))

    def _interrupted(self) -> None:
        for stop in self.on_interrupt:
            stop()

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


@contextlib.contextmanager
def interrupts_as_errors() -> Iterator[None]:
    """Ctrl-C anywhere inside (planning, a model's first load, DuckDB) is `QueryInterrupted`,
    never a raw KeyboardInterrupt (DuckDB statements are atomic: the interrupted one saved
    nothing; one interrupted before DuckDB ran it had nothing to save)."""
    try:
        yield
    except KeyboardInterrupt:
        raise QueryInterrupted(INTERRUPTED) from None


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


def interruptible(
    fn: Callable[[], Any], con: duckdb.DuckDBPyConnection, on_interrupt: Callable[[], None] | None = None
) -> Any:
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
        if on_interrupt is not None:
            on_interrupt()
        concurrent.futures.wait([future])
        raise
