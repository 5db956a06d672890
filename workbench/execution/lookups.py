"""Temporary lookup functions through which the final SQL reads model outputs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from workbench.db import run
from workbench.models.base import Model
from workbench.plan.nodes import ModelOperator

if TYPE_CHECKING:
    from workbench.session import Session


# The macro's argument is substituted into its body, so the output table's column names
# must not be names a user's table could have (a user column `v` would bind to ours).
KEY, VALUE = "__wb_key", "__wb_value"


class Lookups:
    """Lookup functions and output tables of one statement; always removed afterwards.

    Each model operator gets a temporary view of its (input, output) Arrow table and a
    temporary macro that the rewritten SQL calls in place of the model. They are declared
    empty while planning (so later input queries can be typed) and filled once it ran.
    """

    def __init__(self, session: Session):
        self.s = session
        self._view_of: dict[str, str] = {}
        self.views: list[str] = []
        self.macros: list[str] = []
        self.udfs: list[Any] = []  # UDF operators, referenced until the statement finished

    def __enter__(self) -> Lookups:
        return self

    def declare(self, op: ModelOperator, model: Model) -> str:
        n = next(self.s._temp)
        view, macro = f"__wb_{self.s._id}_out_{n}", f"__wb_{self.s._id}_lookup_{op.id}"
        empty = pa.table({KEY: pa.array([], type=pa.null()),
                          VALUE: pa.array([], type=model.arrow_output_type())})
        self.s.con.register(view, empty)
        self.views.append(view)
        run(self.s.con, f"CREATE OR REPLACE TEMP MACRO {macro}(x) AS (SELECT {VALUE} FROM {view} WHERE {KEY} = x)")
        self.macros.append(macro)
        self._view_of[macro] = view
        return macro

    def fill(self, op: ModelOperator, table: pa.Table, *, distinct: bool = True) -> None:
        view = self._view_of[op.lookup]
        table = table.rename_columns([KEY, VALUE])
        if not distinct:  # inputs were not deduplicated: the lookup needs one row per input
            self.s.con.register(view, table)
            table = self.s._fetch(f"SELECT DISTINCT ON ({KEY}) {KEY}, {VALUE} FROM {view}", None)
        self.s.con.register(view, table)

    def keep(self, udf: Any) -> None:
        self.udfs.append(udf)

    def __exit__(self, *exc: Any) -> None:
        for udf in self.udfs:
            udf.remove()
        for macro in self.macros:
            try:
                run(self.s.con, f"DROP MACRO IF EXISTS {macro}")
            except duckdb.Error:
                pass
        for view in self.views:
            try:
                self.s.con.unregister(view)
            except duckdb.Error:
                pass
