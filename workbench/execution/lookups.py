"""The lookup functions through which a statement reads its model operators' outputs.

Each operator `n` is read in SQL as `__wb_lookup_n(x)` (named by the plan). On the cursor
of the one statement being run, the runner defines that function: for a materialized
operator, a temporary macro over its registered (input, output) table (or over its
temporary table inside DuckDB, built from the inference cache); for a streaming one
(udf_centric), the model itself as a vectorized UDF. The cursor is the statement's own, so
the names never meet another query's; everything is removed when the statement ends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import duckdb
import pyarrow as pa

from workbench.db import run
from workbench.execution.dl_centric import KEY, VALUE
from workbench.execution.udf_centric import UdfOperator
from workbench.plan.nodes import ModelOperator


class Lookups:
    def __init__(self, cursor: Any):
        self.cursor = cursor  # has .con (a DuckDB cursor) and .fetch(sql, params)
        self.views: list[str] = []
        self.macros: list[str] = []
        self.udfs: list[UdfOperator] = []  # referenced until the statement finished
        self.functions: list[str] = []
        self.tables: list[str] = []
        self.releases: list[Callable[[], None]] = []

    def __enter__(self) -> Lookups:
        return self

    def fill(self, op: ModelOperator, table: pa.Table, *, distinct: bool = True) -> None:
        """Define the operator's lookup over its outputs (one row per distinct input)."""
        con = self.cursor.con
        view = f"{op.lookup}_out"
        table = table.rename_columns([KEY, VALUE])
        con.register(view, table)
        self.views.append(view)
        if not distinct:  # inputs were not deduplicated: the lookup needs one row per input
            table = self.cursor.fetch(f"SELECT DISTINCT ON ({KEY}) {KEY}, {VALUE} FROM {view}")
            con.register(view, table)
        if op.in_lambda:
            self._function(op, self.cursor.fetch(f"SELECT {KEY}, {VALUE} FROM {view}"))
            return
        run(con, f"CREATE OR REPLACE TEMP MACRO {op.lookup}(x) AS (SELECT {VALUE} FROM {view} WHERE {KEY} = x)")
        self.macros.append(op.lookup)

    def fill_relation(
        self, op: ModelOperator, table: str, body: str, release: Callable[[], None] = lambda: None
    ) -> None:
        """Define the operator's lookup as `body` over its argument `x`: a read of its
        temporary (KEY, VALUE) table (one row per distinct input), or of the inference cache
        table itself; the outputs never leave the database. `release` is called when the
        statement has ended."""
        self.releases.append(release)
        if table:
            self.tables.append(table)
        if op.in_lambda:
            self._function(op, self.cursor.fetch(f"SELECT {KEY}, {VALUE} FROM {table}"))
            return
        run(self.cursor.con, f"CREATE OR REPLACE TEMP MACRO {op.lookup}(x) AS {body}")
        self.macros.append(op.lookup)

    def _function(self, op: ModelOperator, table: pa.Table) -> None:
        """A lookup DuckDB can call inside a lambda (where it allows no subquery): a
        vectorized function that finds each key among the outputs."""
        keys = table.column(0).to_pylist()
        values = table.column(1).combine_chunks()
        position = {_hashable(k): i for i, k in enumerate(keys)}

        def lookup(column: pa.ChunkedArray | pa.Array) -> pa.Array:
            found = [position.get(_hashable(k)) for k in column.to_pylist()]
            return values.take(pa.array(found, pa.int64()))

        self.cursor.con.create_function(op.lookup, lookup, [op.input_type], op.output_type, type="arrow")
        self.functions.append(op.lookup)

    def stream(self, udf: UdfOperator) -> None:
        """The operator's lookup is its UDF (already registered under the lookup's name)."""
        self.udfs.append(udf)

    def __exit__(self, *exc: Any) -> None:
        con = self.cursor.con
        for udf in self.udfs:
            udf.remove()
        for name in self.functions:
            try:
                con.remove_function(name)
            except Exception:  # noqa: BLE001 - already gone with the cursor
                pass
        for macro in self.macros:
            try:
                run(con, f"DROP MACRO IF EXISTS {macro}")
            except duckdb.Error:
                pass
        for release in self.releases:
            release()
        for table in self.tables:
            try:
                run(con, f"DROP TABLE IF EXISTS {table}")
            except duckdb.Error:
                pass
        for view in self.views:
            try:
                con.unregister(view)
            except duckdb.Error:
                pass


def _hashable(key: Any) -> Any:
    """A key as a dict key (array inputs come back from Arrow as lists)."""
    return tuple(key) if isinstance(key, list) else key
