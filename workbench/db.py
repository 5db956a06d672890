"""Small helpers over a DuckDB connection.

DuckDB 2.0 keeps a statement's result open until it is fetched, and refuses new work on the
connection meanwhile; `run` always fetches, so side-effect statements never leave one open.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import duckdb


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
