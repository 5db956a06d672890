"""Result of a dlsql statement: the rows (Arrow), how each model call ran, and timings."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from workbench.plan.nodes import Plan


class Result:
    """Rows plus facts. `.pl()` polars, `.arrow()` Arrow, `.stats` one dict per model operator.

    Each stats record has: model, paradigm, rows (distinct inputs run), seconds, batch_size,
    device, cache_hits, cache_misses (and call, batches).
    """

    def __init__(
        self,
        table: pa.Table,
        *,
        statement: str = "",
        elapsed: float = 0.0,
        stats: list[dict[str, Any]] | None = None,
        message: str | None = None,
        plan: Plan | None = None,
    ):
        self._table = table
        self.statement = statement
        self.elapsed = elapsed
        self.stats: list[dict[str, Any]] = stats or []
        self.message = message
        self.plan = plan
        self.display_limit = 20  # rows shown by the text/HTML renderings

    def arrow(self) -> pa.Table:
        return self._table

    def pl(self) -> Any:
        import polars as pl

        return pl.from_arrow(self._table)

    def df(self) -> Any:
        return self._table.to_pandas()

    @property
    def columns(self) -> list[str]:
        return self._table.column_names

    def __len__(self) -> int:
        return self._table.num_rows

    def summary(self) -> str:
        from workbench.display import summary_line

        return summary_line(self)

    def __repr__(self) -> str:
        from workbench.display import result_text

        return result_text(self, self.display_limit)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        if self.plan is not None:  # EXPLAIN: the plan's own bundle (with the vendor JSON)
            return self.plan._repr_mimebundle_(include, exclude)
        return {"text/html": self._repr_html_(), "text/plain": repr(self)}

    def _repr_html_(self) -> str:
        from workbench.display import result_html

        return result_html(self, self.display_limit)
