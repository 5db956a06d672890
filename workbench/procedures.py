"""The workbench's own `CALL` procedures (other CALLs go to DuckDB).

CALL load_dataset('pydoc' | 'digits')
CALL cache_stats()
CALL clear_cache() / CALL clear_cache('model')
CALL calibrate()          measure the cost model's machine constants again
CALL storage_stats()      models stored in the database: logical and physical bytes, sharing
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import duckdb
import pyarrow as pa

from workbench import datasets
from workbench.cache import InferenceCache
from workbench.engine import calibration
from workbench.errors import ParameterError
from workbench.models.catalog import Catalog
from workbench.result import Result
from workbench.storage import stats as storage
from workbench.telemetry.summary import count


class Host(Protocol):
    """What a procedure may use of the session that calls it."""

    catalog: Catalog
    cache: InferenceCache

    def cursor(self) -> duckdb.DuckDBPyConnection: ...

    def calibrate(self) -> dict[str, float]: ...


def _message(msg: str, statement: str, start: float) -> Result:
    return Result(pa.table({"status": [msg]}), statement=statement, elapsed=time.perf_counter() - start, message=msg)


def load_dataset(session: Host, name: Any = None, *rest: Any) -> Result:
    start = time.perf_counter()
    if not isinstance(name, str) or rest:
        raise ParameterError("usage: CALL load_dataset('pydoc' | 'digits')")
    rows = datasets.load(session.cursor(), name)
    return _message(f"table {name} loaded ({count(rows, 'row')})", f"CALL load_dataset('{name}')", start)


def cache_stats(session: Host, *args: Any) -> Result:
    if args:
        raise ParameterError("usage: CALL cache_stats()")
    start = time.perf_counter()
    return Result(session.cache.stats(), statement="CALL cache_stats()", elapsed=time.perf_counter() - start)


def clear_cache(session: Host, name: Any = None, *rest: Any) -> Result:
    start = time.perf_counter()
    if rest or (name is not None and not isinstance(name, str)):
        raise ParameterError("usage: CALL clear_cache() or CALL clear_cache('model')")
    if name is not None:
        session.catalog.info(name)  # unknown model: a clear error
    removed = session.cache.clear(name)
    return _message(
        f"cache cleared{' for ' + name if name else ''} ({removed:,} entries removed)", "CALL clear_cache()", start
    )


def calibrate(session: Host, *args: Any) -> Result:
    """Re-run the cost model's micro-benchmarks (a few seconds) and store the results."""
    if args:
        raise ParameterError("usage: CALL calibrate()")
    start = time.perf_counter()
    values = session.calibrate()
    table = pa.table(
        {"name": list(values), "value": list(values.values()), "unit": [calibration.UNITS.get(n, "") for n in values]}
    )
    return Result(table, statement="CALL calibrate()", elapsed=time.perf_counter() - start)


def storage_stats(session: Host, *args: Any) -> Result:
    """Models stored in the database as tensor blocks (`storage = 'database'`): per model its
    logical bytes, the physical bytes of its blocks, the models it shares blocks with."""
    if args:
        raise ParameterError("usage: CALL storage_stats()")
    start = time.perf_counter()
    con = session.cursor()
    try:
        table = storage.table(con)
        total = storage.total_physical_bytes(con)
    finally:
        con.close()
    logical = sum(table.column("logical_bytes").to_pylist())
    msg = f"{count(table.num_rows, 'stored model')}: {logical:,} logical bytes in {total:,} physical bytes"
    return Result(table, statement="CALL storage_stats()", elapsed=time.perf_counter() - start, message=msg)


PROCEDURES: dict[str, Callable[..., Result]] = {
    "calibrate": calibrate,
    "load_dataset": load_dataset,
    "cache_stats": cache_stats,
    "clear_cache": clear_cache,
    "storage_stats": storage_stats,
}
